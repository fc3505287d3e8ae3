// FileEvents: changes of control files that pollers must hear of
// (cgroup.events: populated, frozen), kept as kernfs keeps them — an event
// count per file that has open handles. A front end watches a file while it
// has handles open, compares counts to tell whether the file changed since a
// handle last read it, and takes the files that changed to wake its pollers.
//
// The engine's observers call notify() while the engine's locks are held:
// it only counts and records. One consumer, a front end's notifier thread,
// takes what was recorded.
//
// Invariants: counts exist exactly for watched files; a file is recorded as
// changed at most once until taken, and only while watched unless
// set_record_unwatched — so memory is bounded by the open handles (or by
// the files that changed since the consumer last took them).
//
// Thread-safety: thread-safe. notify() takes only a leaf mutex.
#pragma once

#include <chrono>
#include <cstdint>
#include <semaphore>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/locking.h"

namespace cgcore::fs {

class FileEvents {
 public:
  FileEvents() = default;
  FileEvents(const FileEvents&) = delete;
  FileEvents& operator=(const FileEvents&) = delete;

  // A handle of `ino` was opened / closed. watch returns the file's count.
  uint64_t watch(uint64_t ino);
  void unwatch(uint64_t ino);
  // The file's event count (0 if unwatched).
  uint64_t count(uint64_t ino) const;

  // File `ino` changed: counts it if watched, and wakes the consumer.
  void notify(uint64_t ino);
  // Whether changes of files nobody has open are recorded for the consumer
  // too (a front end that makes the kernel emit inotify events, which need
  // no open handle); they are not counted. Bounded: each file is recorded
  // once until taken.
  void set_record_unwatched(bool on);
  // Waits until a watched file changed or wake() was called, at most
  // `timeout`, then moves the changed files into `out` (replacing its
  // content).
  void wait_take(std::vector<uint64_t>& out, std::chrono::milliseconds timeout);
  // Makes a waiting (or the next) wait_take return at once.
  void wake();

 private:
  struct Watch {
    uint64_t count = 0;
    int handles = 0;
  };
  void post() CG_REQUIRES(mu_);

  mutable Mutex mu_;
  std::unordered_map<uint64_t, Watch> watched_ CG_GUARDED_BY(mu_);
  std::unordered_set<uint64_t> changed_ CG_GUARDED_BY(mu_);
  bool record_unwatched_ CG_GUARDED_BY(mu_) = false;
  bool posted_ CG_GUARDED_BY(mu_) = false;  // ready_ released and not yet taken
  std::binary_semaphore ready_{0};
};

}  // namespace cgcore::fs
