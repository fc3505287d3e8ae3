// ProcFs: what the host backend reads from /proc (proc(5)), parsed, and the
// clocks it compares /proc's start times with.
//
// Every reader returns nullopt (or an empty list) when the file is missing
// or unreadable: the task is gone, which is an ordinary outcome on a live
// system, not an error. The root is configurable so that tests can point the
// backend at a fabricated tree (see HostOptions::proc_root); such a tree
// needs, per process P with threads T: P/stat, P/status, P/task/T/stat and
// T/stat, T/status (the real /proc serves every thread id at the top level
// too, only unlisted).
//
// Thread-safety: immutable after construction; every method is thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/types.h"

namespace cgcore::host {

// The kernel's PF_KTHREAD (field 9 of stat): kernel threads are never
// signalled or re-pinned, as the kernel's freezer and cgroup.kill skip them.
inline constexpr uint32_t kPfKthread = 0x00200000;

// /proc/TID/stat, the fields the backend uses.
struct ThreadStat {
  char state = '?';    // field 3
  Pid ppid = 0;        // field 4: the parent process
  uint32_t flags = 0;  // field 9: PF_*
  uint64_t utime = 0;  // field 14: user time, clock ticks
  uint64_t stime = 0;  // field 15: system time, clock ticks
  int nice = 0;        // field 19
  uint64_t start = 0;  // field 22: start time, clock ticks after boot
  // Exited (zombie or dead): no longer a task of any cgroup here.
  bool dead() const { return state == 'Z' || state == 'X' || state == 'x'; }
  // Stopped by a signal or by a tracer.
  bool stopped() const { return state == 'T' || state == 't'; }
  bool kthread() const { return flags & kPfKthread; }
};

// /proc/TID/status, the fields the backend uses.
struct ProcStatus {
  Pid tgid = 0;
  Pid ppid = 0;
  Creds creds;               // Uid: real, effective, saved; Gid: real, effective
  int64_t rss_anon = -1;     // RssAnon in bytes; -1 if absent (kernel threads)
  int64_t vm_size = -1;      // VmSize in bytes; -1 if absent
  int64_t vm_swap = -1;      // VmSwap in bytes; -1 if absent (kernel threads)
};

// One process as a scan saw it.
struct ProcSnap {
  Pid tgid = 0;
  Pid ppid = 0;
  uint64_t start = 0;  // the leader's (the process's) start time
  uint32_t flags = 0;  // the leader's PF_* flags
  bool leader_dead = false;  // a zombie leader whose other threads still run
  Creds creds;
  // The live threads (tid, start time), the leader first if it is alive.
  std::vector<std::pair<Pid, uint64_t>> threads;
};

class ProcFs {
 public:
  explicit ProcFs(std::string root = "/proc");

  const std::string& root() const { return root_; }
  // Whether this is the host's /proc (effects and the connector apply only
  // to it).
  bool is_host() const { return root_ == "/proc"; }
  // The pidfs inode number of the live (or zombie) task `pid`: the same for
  // the same task however often asked, never the same for a later task
  // with that pid (pidfs counts them in 64 bits; Linux 6.9+). 0 if there is
  // no such task, no pidfs, or this is not the host's /proc
  // (docs/host.md, "Process identity").
  uint64_t pidfs_ino(Pid pid) const;

  // ROOT/TID/stat: any thread id (listed or not).
  std::optional<ThreadStat> stat(Pid tid) const;
  // ROOT/TGID/task/TID/stat.
  std::optional<ThreadStat> thread_stat(Pid tgid, Pid tid) const;
  // The first field of ROOT/TGID/task/TID/schedstat: the thread's CPU
  // time in ns (the scheduler's sum_exec_runtime).
  std::optional<uint64_t> thread_runtime_ns(Pid tgid, Pid tid) const;
  // ROOT/TID/status.
  std::optional<ProcStatus> status(Pid tid) const;
  // The process ids listed in ROOT (nullopt if ROOT cannot be read).
  std::optional<std::vector<Pid>> pids() const;
  // The thread ids listed in ROOT/TGID/task (empty if gone).
  std::vector<Pid> tids(Pid tgid) const;
  // The live children of every thread of the process (ROOT/TGID/task/*/
  // children; empty if gone).
  std::vector<Pid> children(Pid tgid) const;
  // Whether the thread is inside clone, clone3, fork or vfork right now
  // (ROOT/TGID/task/TID/syscall; false if gone or unreadable).
  bool in_fork_call(Pid tgid, Pid tid) const;
  // One process with its live threads; nullopt if it is gone or has no live
  // thread left (a zombie waiting to be reaped).
  std::optional<ProcSnap> process(Pid tgid) const;
  // The NSpid line of ROOT/TID/status: the task's id in each pid namespace
  // from ROOT's down to its own (ROOT's id first). Empty if the task is gone
  // or the kernel does not say.
  std::vector<Pid> nspid(Pid tid) const;

 private:
  std::string root_;
};

// Parsers, exposed for tests.
std::optional<ThreadStat> parse_stat(std::string_view text);
std::optional<ProcStatus> parse_status(std::string_view text);
// The ids of the NSpid line of a status text (empty without one).
std::vector<Pid> parse_nspid(std::string_view status_text);

// Whether this process sees the initial pid namespace (NSpid of
// /proc/self/status has one entry; true if the kernel does not say). The
// connector reports the initial namespace's ids.
bool in_initial_pid_namespace();

// ---- clocks

// CLOCK_MONOTONIC as the kernel stamps process events (ktime_get_ns), i.e.
// without this process's time-namespace offset.
uint64_t event_clock_ns();
// A /proc start time (clock ticks after boot, as this process's namespace
// shows it) in ns on the event clock. Never later than the truth: it is
// truncated to a tick, and if the machine was suspended since the task
// started it comes out earlier by the time suspended — which only makes the
// pid-reuse check (is this task younger than an event?) more lenient.
uint64_t start_to_event_clock_ns(uint64_t start_ticks);
// One clock tick in ns.
uint64_t tick_ns();

}  // namespace cgcore::host
