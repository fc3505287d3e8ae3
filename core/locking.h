// Locks of the engine, what each protects, and the order they nest in.
//
// Lock order (outermost first; a thread holding one may only take those
// below it):
//
//   1. Engine::cgroup_mutex_      Serialises every change of the hierarchy
//                                 (hierarchies, cgroups, controllers, css
//                                 lifecycle) and every migration. Held across
//                                 a whole migration transaction.
//   2. Engine::threadgroup_rwsem_ The global threadgroup lock. Fork, exit and
//                                 exec take it shared; a transfer of every
//                                 task of a cgroup (mode ALL) and controller
//                                 rebinding take it exclusive, which freezes
//                                 the set of tasks of the whole engine.
//   3. Process::threadgroup_lock  Per process. Fork (from any thread of the
//                                 process), thread creation and exit take it
//                                 shared; migrating any thread of the
//                                 process, exec and credential changes take
//                                 it exclusive, which freezes the process's
//                                 threads and their css_sets (what a move
//                                 reads); its credentials (what fork and a
//                                 move check read) change only exclusive.
//   4. Engine::css_set_lock_      Guards css_set task lists (tasks and
//                                 mg_tasks), css_set reference drops to zero,
//                                 the css_set hash table, cgroup <-> css_set
//                                 links, populated counters, every process's
//                                 thread list, and writes of Task::cset.
//                                 Readers of task lists take it shared.
//   5. Engine::task_table_lock_   Guards the id -> task table and id
//                                 allocation.
//   6. Engine::dying_mu_          Guards the sets of removed-but-referenced
//                                 cgroups and csses. A leaf, taken where they
//                                 are freed (any context).
//   7. Slab's lock (core/slab.h)  Guards a slab's free list. A leaf, taken
//                                 where a Task is made or freed.
//
// Several Process::threadgroup_locks are held at once only by a migration,
// which holds cgroup_mutex_, so two such holders never race.
//
// Every lock type here carries clang capability annotations, and in debug
// builds (NDEBUG undefined) remembers which thread holds it so that
// AssertHeld() / AssertReaderHeld() really check.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <shared_mutex>

#include "core/thread_annotations.h"

namespace cgcore {

namespace lock_debug {
// Per-thread record of held locks, used by the assertions in debug builds.
// Returns 0 if the current thread does not hold `lock`, 1 if shared, 2 if
// exclusive.
int held_mode(const void* lock);
void note_acquire(const void* lock, bool exclusive);
void note_release(const void* lock);
[[noreturn]] void fail(const char* what, const void* lock);
}  // namespace lock_debug

// What two locks written by different CPUs are kept apart by (this
// machine kind's line; std::hardware_destructive_interference_size is not in
// every standard library we build with).
inline constexpr size_t kCacheLineBytes = 64;

#ifdef NDEBUG
inline constexpr bool kLockDebug = false;
#else
inline constexpr bool kLockDebug = true;
#endif

// A mutual-exclusion lock. Thread-safe; not copyable.
class CG_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() CG_ACQUIRE() {
    mu_.lock();
    if constexpr (kLockDebug) lock_debug::note_acquire(this, true);
  }
  void Unlock() CG_RELEASE() {
    if constexpr (kLockDebug) lock_debug::note_release(this);
    mu_.unlock();
  }
  // Aborts (debug builds) unless the calling thread holds the lock.
  void AssertHeld() const CG_ASSERT_CAPABILITY(this) {
    if constexpr (kLockDebug)
      if (lock_debug::held_mode(this) != 2) lock_debug::fail("Mutex not held", this);
  }

 private:
  std::mutex mu_;
};

// A reader-writer lock (std::shared_mutex underneath). Thread-safe.
class CG_CAPABILITY("shared_mutex") SharedMutex {
 public:
  SharedMutex() = default;
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;

  void Lock() CG_ACQUIRE() {
    mu_.lock();
    if constexpr (kLockDebug) lock_debug::note_acquire(this, true);
  }
  void Unlock() CG_RELEASE() {
    if constexpr (kLockDebug) lock_debug::note_release(this);
    mu_.unlock();
  }
  void LockShared() CG_ACQUIRE_SHARED() {
    mu_.lock_shared();
    if constexpr (kLockDebug) lock_debug::note_acquire(this, false);
  }
  void UnlockShared() CG_RELEASE_SHARED() {
    if constexpr (kLockDebug) lock_debug::note_release(this);
    mu_.unlock_shared();
  }
  // Aborts (debug builds) unless the calling thread holds the lock exclusive.
  void AssertHeld() const CG_ASSERT_CAPABILITY(this) {
    if constexpr (kLockDebug)
      if (lock_debug::held_mode(this) != 2)
        lock_debug::fail("SharedMutex not held exclusive", this);
  }
  // Aborts (debug builds) unless the calling thread holds the lock at all.
  void AssertReaderHeld() const CG_ASSERT_SHARED_CAPABILITY(this) {
    if constexpr (kLockDebug)
      if (lock_debug::held_mode(this) == 0) lock_debug::fail("SharedMutex not held", this);
  }

 private:
  std::shared_mutex mu_;
};

// A reader-writer lock for short critical sections (the css_set lock's are a
// few list operations, ~100 ns), its state one 32-bit word (beside a debug
// counter of exclusive holds): uncontended, a lock or unlock is one atomic
// instruction with no call into libc. A contended acquirer
// spins briefly, then sleeps on a futex; an unlock makes the futex call
// only when someone sleeps. Waiting writers block new readers, so a stream
// of readers cannot starve a writer; for that reason a thread must not take
// it shared twice (a writer waiting in between would deadlock it), which
// debug builds check.
class CG_CAPABILITY("rwlock") RwLock {
 public:
  RwLock() = default;
  RwLock(const RwLock&) = delete;
  RwLock& operator=(const RwLock&) = delete;

  void Lock() CG_ACQUIRE() {
    uint32_t s = 0;
    if (!state_.compare_exchange_strong(s, kWriter, std::memory_order_acquire,
                                        std::memory_order_relaxed))
      lock_slow();
    if constexpr (kLockDebug) {
      lock_debug::note_acquire(this, true);
      ++exclusive_holds_;  // written only by the holder
    }
  }
  void Unlock() CG_RELEASE() {
    if constexpr (kLockDebug) lock_debug::note_release(this);
    if (state_.exchange(0, std::memory_order_release) & kWaiters) wake_all();
  }
  // Debug builds: how many times the lock was taken exclusive (0 in NDEBUG
  // builds). Read it with the lock held, or when no other thread uses it.
  uint64_t debug_exclusive_holds() const { return exclusive_holds_; }
  void LockShared() CG_ACQUIRE_SHARED() {
    if constexpr (kLockDebug)
      if (lock_debug::held_mode(this) != 0) lock_debug::fail("RwLock taken twice", this);
    uint32_t s = state_.load(std::memory_order_relaxed);
    if ((s & (kWriter | kWaiters)) != 0 ||
        !state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire,
                                      std::memory_order_relaxed))
      lock_shared_slow();
    if constexpr (kLockDebug) lock_debug::note_acquire(this, false);
  }
  void UnlockShared() CG_RELEASE_SHARED() {
    if constexpr (kLockDebug) lock_debug::note_release(this);
    const uint32_t prev = state_.fetch_sub(1, std::memory_order_release);
    if ((prev & kReaderMask) == 1 && (prev & kWaiters)) unlock_shared_wake();
  }
  void AssertHeld() const CG_ASSERT_CAPABILITY(this) {
    if constexpr (kLockDebug)
      if (lock_debug::held_mode(this) != 2) lock_debug::fail("RwLock not held exclusive", this);
  }
  void AssertReaderHeld() const CG_ASSERT_SHARED_CAPABILITY(this) {
    if constexpr (kLockDebug)
      if (lock_debug::held_mode(this) == 0) lock_debug::fail("RwLock not held", this);
  }

 private:
  static constexpr uint32_t kWriter = 1u << 31;
  static constexpr uint32_t kWaiters = 1u << 30;  // someone sleeps (or is about to)
  static constexpr uint32_t kReaderMask = kWaiters - 1;
  // The contended paths: spin, then sleep on the word until it changes.
  void lock_slow();
  void lock_shared_slow();
  template <class Free, class Take>
  void acquire_slow(Free free, Take take);
  // The last reader left while someone sleeps: wake them.
  void unlock_shared_wake();
  // futex(2) wait while the word is `expected` / wake every sleeper.
  void wait(uint32_t expected);
  void wake_all();
  std::atomic<uint32_t> state_{0};
  uint64_t exclusive_holds_ = 0;
};

// A four-byte reader-writer semaphore for per-process threadgroup locks, so
// that a process costs a word rather than std::shared_mutex's 56 bytes.
// Waiting readers defer to a waiting writer, so a stream of forks cannot
// starve a migration. Several writers may wait at once (address-space
// chargers do); they are then served in no particular order.
class CG_CAPABILITY("rwsem") RwSem {
 public:
  RwSem() = default;
  RwSem(const RwSem&) = delete;
  RwSem& operator=(const RwSem&) = delete;

  void Lock() CG_ACQUIRE();
  void Unlock() CG_RELEASE();
  void LockShared() CG_ACQUIRE_SHARED();
  void UnlockShared() CG_RELEASE_SHARED();
  void AssertHeld() const CG_ASSERT_CAPABILITY(this) {
    if constexpr (kLockDebug)
      if (lock_debug::held_mode(this) != 2) lock_debug::fail("RwSem not held exclusive", this);
  }
  void AssertReaderHeld() const CG_ASSERT_SHARED_CAPABILITY(this) {
    if constexpr (kLockDebug)
      if (lock_debug::held_mode(this) == 0) lock_debug::fail("RwSem not held", this);
  }

 private:
  static constexpr uint32_t kWriter = 1u << 31;
  static constexpr uint32_t kWriterWaiting = 1u << 30;
  static constexpr uint32_t kReaderMask = kWriterWaiting - 1;
  std::atomic<uint32_t> state_{0};
};

// A reader-writer lock whose readers spread over cache-line-sized shards, so
// that concurrent forks and exits on different threads do not bounce one
// counter between cores (the kernel's percpu_rw_semaphore, in small). A writer
// takes every shard, in order.
class CG_CAPABILITY("sharded_rwsem") ShardedRwSem {
 public:
  ShardedRwSem() = default;
  ShardedRwSem(const ShardedRwSem&) = delete;
  ShardedRwSem& operator=(const ShardedRwSem&) = delete;

  void Lock() CG_ACQUIRE();
  void Unlock() CG_RELEASE();
  void LockShared() CG_ACQUIRE_SHARED();
  void UnlockShared() CG_RELEASE_SHARED();
  void AssertHeld() const CG_ASSERT_CAPABILITY(this) {
    if constexpr (kLockDebug)
      if (lock_debug::held_mode(this) != 2)
        lock_debug::fail("ShardedRwSem not held exclusive", this);
  }
  void AssertReaderHeld() const CG_ASSERT_SHARED_CAPABILITY(this) {
    if constexpr (kLockDebug)
      if (lock_debug::held_mode(this) == 0) lock_debug::fail("ShardedRwSem not held", this);
  }

 private:
  static constexpr int kShards = 16;
  struct alignas(kCacheLineBytes) Shard {
    RwSem sem;
  };
  // The shard the calling thread reads through (stable per thread).
  static int my_shard();
  std::array<Shard, kShards> shards_;
};

// Scoped exclusive hold of any of the lock types above.
template <typename Lock>
class CG_SCOPED_CAPABILITY ExclusiveLock {
 public:
  explicit ExclusiveLock(Lock& lock) CG_ACQUIRE(lock) : lock_(lock) { lock_.Lock(); }
  ~ExclusiveLock() CG_RELEASE() { lock_.Unlock(); }
  ExclusiveLock(const ExclusiveLock&) = delete;
  ExclusiveLock& operator=(const ExclusiveLock&) = delete;

 private:
  Lock& lock_;
};

// Scoped shared hold.
template <typename Lock>
class CG_SCOPED_CAPABILITY SharedLock {
 public:
  explicit SharedLock(Lock& lock) CG_ACQUIRE_SHARED(lock) : lock_(lock) {
    lock_.LockShared();
  }
  ~SharedLock() CG_RELEASE_GENERIC() { lock_.UnlockShared(); }
  SharedLock(const SharedLock&) = delete;
  SharedLock& operator=(const SharedLock&) = delete;

 private:
  Lock& lock_;
};

using MutexLock = ExclusiveLock<Mutex>;

}  // namespace cgcore
