// The id -> task table: a two-level array indexed by pid, so lookup is two
// loads and a task costs one CompactRef (4 bytes: tasks come from a slab in
// the compact arena, core/compact_arena.h) here. Pages of 4096 slots are allocated
// on first use and kept (freeing a page as it empties made a fork that lands
// alone on a page allocate and zero 32 KiB, and its exit free it); ids are
// handed out below pid_max and wrap, as Linux's are, so the table is bounded
// by pid_max (4 bytes per id: 16 MiB at the default), not by the number of
// forks ever made. Not thread-safe: guarded by Engine::task_table_lock_.
#pragma once

#include <array>
#include <memory>
#include <vector>

#include "core/compact_arena.h"
#include "core/result.h"
#include "core/types.h"

namespace cgcore {

class Task;

class TaskTable {
 public:
  // Ids are 1 .. kMaxPid (Linux's PID_MAX_LIMIT is 4194304; virtual engines
  // may go far beyond it). next_free() hands out ids below pid_max().
  static constexpr Pid kMaxPid = (1 << 30) - 1;
  static constexpr Pid kDefaultPidMax = 4194304;

  Pid pid_max() const { return pid_max_; }
  // REQUIRES: 2 <= pid_max <= kMaxPid + 1.
  void set_pid_max(Pid pid_max) { pid_max_ = pid_max; }

  // The task with this id, or null.
  Task* get(Pid pid) const {
    size_t p = static_cast<size_t>(pid) >> kPageBits;
    if (pid <= 0 || p >= pages_.size() || !pages_[p]) return nullptr;
    return compact_ptr<Task>((*pages_[p])[pid & kPageMask]);
  }
  // Makes sure the slot of `pid` exists, so that set() cannot fail. ENOMEM.
  Status reserve(Pid pid);
  // REQUIRES: reserve(pid) succeeded. `task` null clears the slot.
  void set(Pid pid, Task* task);
  // The first free id after the last one handed out, wrapping below
  // pid_max (as Linux's pid allocator does). 0 if every such id is in use.
  Pid next_free();
  size_t size() const { return size_; }
  // Calls fn(Pid, Task*) for every occupied slot.
  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (size_t p = 0; p < pages_.size(); ++p) {
      if (!pages_[p]) continue;
      for (size_t i = 0; i < kPageSize; ++i)
        if (CompactRef t = (*pages_[p])[i])
          fn(static_cast<Pid>((p << kPageBits) | i), compact_ptr<Task>(t));
    }
  }

 private:
  static constexpr int kPageBits = 12;
  static constexpr size_t kPageSize = size_t{1} << kPageBits;
  static constexpr Pid kPageMask = kPageSize - 1;
  using Page = std::array<CompactRef, kPageSize>;

  std::vector<std::unique_ptr<Page>> pages_;
  size_t size_ = 0;
  Pid last_ = 0;
  Pid pid_max_ = kDefaultPidMax;
};

}  // namespace cgcore
