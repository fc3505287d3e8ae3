// ProcessRecords: what the host mirror knows of each real task it put in the
// engine — the identity (process id, start time) that tells the task from a
// later one that reuses its id — and the marks the effects leave on
// processes (stopped by the freezer, sent SIGKILL by cgroup.kill).
//
// Invariants: every recorded thread's process is recorded (while the mirror
// is not in the middle of a change); marks exist only on recorded
// processes (forgetting a process drops its marks).
//
// Thread-safety: thread-safe. Its mutex is a leaf: the cpuset sink and the
// engine observers may reach it under engine locks, and nothing is called
// with it held.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/locking.h"
#include "core/types.h"

namespace cgcore::host {

// One live thread of the mirror.
struct TaskRecord {
  Pid tgid;
  uint64_t start;  // /proc start time (ticks); 0: unknown (gone when seen)
};

// One process of the mirror.
struct ProcessRecord {
  uint64_t start;  // its leader's start time
  bool kthread;    // a kernel thread: never signalled or pinned
  // Its pidfs inode number (ProcFs::pidfs_ino), which no later process
  // shares even within the start time's clock tick; 0: not known.
  uint64_t ino = 0;
};

class ProcessRecords {
 public:
  ProcessRecords() = default;
  ProcessRecords(const ProcessRecords&) = delete;
  ProcessRecords& operator=(const ProcessRecords&) = delete;

  std::optional<TaskRecord> task(Pid tid) const;
  std::optional<ProcessRecord> process(Pid tgid) const;
  void note_task(Pid tid, Pid tgid, uint64_t start);
  void forget_task(Pid tid);
  void note_process(Pid tgid, uint64_t start, bool kthread, uint64_t ino = 0);
  // Forgets the process and its marks (not its threads: forget_tasks).
  void forget_process(Pid tgid);
  // Forgets `threads` and records `tid` alone as `tgid`'s (exec: one thread
  // takes the process id, the others are gone).
  void replace_threads(std::span<const Pid> threads, Pid tgid, uint64_t start);
  void forget_tasks(std::span<const Pid> tids);

  // Every recorded process, and the user (non-kernel) processes only.
  std::vector<std::pair<Pid, ProcessRecord>> processes() const;
  std::vector<Pid> user_processes() const;
  size_t nr_processes() const;
  size_t nr_tasks() const;

  // ---- marks
  // Marks a recorded process as stopped by the freezer; false if unknown.
  bool mark_frozen(Pid tgid);
  // Removes the mark; the record if the process was marked and is known.
  std::optional<ProcessRecord> unmark_frozen(Pid tgid);
  bool frozen_by_us(Pid tgid) const;
  std::vector<Pid> frozen() const;
  // Marks a recorded process as killed by cgroup.kill; its record, or
  // nullopt if unknown.
  std::optional<ProcessRecord> mark_killed(Pid tgid);
  // If `parent` was killed, marks `child` killed too (a fork racing
  // cgroup.kill dies as well); whether it did.
  bool inherit_killed(Pid parent, Pid child);

 private:
  mutable Mutex mu_;
  std::unordered_map<Pid, TaskRecord> tasks_ CG_GUARDED_BY(mu_);
  std::unordered_map<Pid, ProcessRecord> procs_ CG_GUARDED_BY(mu_);
  std::set<Pid> frozen_ CG_GUARDED_BY(mu_);
  std::set<Pid> killed_ CG_GUARDED_BY(mu_);
};

}  // namespace cgcore::host
