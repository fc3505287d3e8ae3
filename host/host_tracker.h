// HostTracker: the real-process backend. It mirrors the host's processes and
// threads into an engine as tasks (real pids, real credentials) and keeps
// the mirror live; and it applies the engine's decisions to the real
// processes where user space can do so faithfully.
//
//   * start(): every process and thread of the host (from /proc) becomes a
//     task in the root cgroup of every hierarchy, with its uid/euid/suid.
//   * Fork, exec and exit are followed through the kernel's process-events
//     connector (netlink, needs CAP_NET_ADMIN); without it, /proc is
//     rescanned periodically, and the log says so. A lost event (socket
//     buffer overrun) triggers a resynchronisation from /proc that neither
//     loses nor duplicates a task. Start times guard against pid reuse: a
//     recycled pid never inherits a dead process's cgroups.
//   * ensure_pid(pid): a pid written to cgroup.procs that the engine has not
//     seen yet is looked up in /proc at once (installed as the fs's pid
//     resolver), so `sleep 100 & echo $! > cgroup.procs` always works.
//   * Effects: cpuset's effective CPUs become each thread's CPU affinity (on
//     attach, fork and cpuset.cpus changes); cgroup.kill sends SIGKILL;
//     cgroup.freeze sends SIGSTOP / SIGCONT (see docs/compatibility.md for
//     how this differs from the kernel's freezer); memory.current /
//     memrlimit follow each process's RssAnon / VmSize, synchronised
//     periodically (usage only: limits are not enforced on the host).
//
// docs/host.md describes the design: the rules that make event handling
// idempotent, the pid-reuse guard, locking, and what user space cannot do.
//
// Thread-safety: start() and stop() from one thread; everything else is
// thread-safe. The tracker runs one background thread while started.
// start() installs the fs's pid resolver and kill sink, the cpuset
// controller's affinity sink and an engine observer, and stop() removes
// them: call both while the fs serves no request (the fs's setters and the
// engine's observer list are not synchronised).
//
// Locking: the tracker's own locks come before every engine lock (it calls
// the engine with them held) except its record lock, a leaf the sinks and
// the observer take under engine locks. Nothing of the tracker may be called
// from an engine hook, sink or observer.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "core/engine.h"
#include "fs/cgroupfs.h"

namespace cgcore::host {

struct HostOptions {
  // Follow events through the process-events connector when possible.
  bool use_connector = true;
  // Rescan period of the /proc fallback, in milliseconds (stretched on a
  // large host so that scanning takes at most a fifth of the time). Also the
  // period of the freezer pass and of re-checks of doubtful events.
  int rescan_ms = 200;
  // Where log lines go (default: stderr). Called from the tracker's thread
  // and from fs request threads (sinks): must be thread-safe.
  std::function<void(const std::string&)> log;
  // How often memory usage is brought in line with the processes' resident
  // memory (memory controller: RssAnon; memrlimit: VmSize), in
  // milliseconds; 0 disables it.
  int memory_sync_ms = 1000;
  // Socket buffer asked for the connector (bytes; root may exceed
  // net.core.rmem_max). Tests shrink it to provoke lost events.
  int rcvbuf_bytes = 8 << 20;
  // Where /proc is. Anything but "/proc" is a fabricated tree (tests): no
  // connector, and no effect ever reaches a real process.
  std::string proc_root = "/proc";
  // Apply effects (affinity, signals) to the real processes. Off: observe
  // only (cgroup.kill and cgroup.freeze then change nothing on the host).
  bool apply_effects = true;
};

class HostTracker {
 public:
  // `fs` may be null (no file-level sinks are installed then).
  HostTracker(Engine& engine, fs::CgroupFs* fs, HostOptions options = {});
  ~HostTracker();  // stops
  HostTracker(const HostTracker&) = delete;
  HostTracker& operator=(const HostTracker&) = delete;

  // Scans /proc and starts following events (a second call while started
  // does nothing). Errors: EIO if /proc cannot be read.
  Status start();
  void stop();

  // Adds `pid` (a process or a thread) from /proc if the engine lacks it.
  // True if the engine has the task afterwards.
  bool ensure_pid(Pid pid);
  // Brings the engine in line with /proc now (tasks that appeared are added
  // under their parent, those gone or whose id was recycled exit). Used
  // after a lost event, by the fallback, and by tests.
  void resync();

  // Whether events come from the connector (false: /proc rescans).
  bool using_connector() const { return using_connector_.load(); }
  // Counters, for tests and the log.
  int64_t events_seen() const { return events_seen_.load(); }
  int64_t resyncs() const { return resyncs_.load(); }

  struct Stats {
    int64_t overflows = 0;         // ENOBUFS: events lost, then a resync
    int64_t stale_events = 0;      // older than the last scan: skipped
    int64_t affinity_set = 0;      // sched_setaffinity calls made
    int64_t affinity_errors = 0;   // ... that failed
    int64_t signals = 0;           // SIGSTOP / SIGCONT / SIGKILL sent
    int64_t forks_over_limit = 0;  // real forks a controller refused (added by migration)
    int64_t threads_refused = 0;   // thread creations a controller refused (retried)
    int64_t memory_refused = 0;    // memory / memrlimit syncs refused by a limit
  };
  Stats stats() const;

  // Test hooks. Stops (true) or resumes (false) reading the connector, so
  // that a burst of events overflows the socket buffer.
  void TEST_pause_events(bool paused);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> using_connector_{false};
  std::atomic<int64_t> events_seen_{0};
  std::atomic<int64_t> resyncs_{0};
};

}  // namespace cgcore::host
