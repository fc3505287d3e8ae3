#include "core/locking.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>

namespace cgcore {

namespace lock_debug {
namespace {
struct Held {
  const void* lock;
  bool exclusive;
};
// Deep enough for the lock order in locking.h plus the per-process locks a
// multi-process migration holds; beyond it tracking stops (never a false
// failure: see held_mode).
constexpr int kMaxTracked = 256;
thread_local Held held[kMaxTracked];
thread_local int nheld = 0;
thread_local int overflow = 0;
}  // namespace

int held_mode(const void* lock) {
  for (int i = nheld - 1; i >= 0; --i)
    if (held[i].lock == lock) return held[i].exclusive ? 2 : 1;
  return overflow > 0 ? 2 : 0;  // untracked: do not report a false failure
}

void note_acquire(const void* lock, bool exclusive) {
  if (nheld == kMaxTracked) {
    ++overflow;
    return;
  }
  held[nheld++] = Held{lock, exclusive};
}

void note_release(const void* lock) {
  for (int i = nheld - 1; i >= 0; --i) {
    if (held[i].lock == lock) {
      for (int j = i; j + 1 < nheld; ++j) held[j] = held[j + 1];
      --nheld;
      return;
    }
  }
  if (overflow > 0) {
    --overflow;
    return;
  }
  fail("releasing a lock that is not held", lock);
}

void fail(const char* what, const void* lock) {
  std::fprintf(stderr, "cgcore: lock assertion failed: %s (lock %p)\n", what, lock);
  std::abort();
}
}  // namespace lock_debug

namespace {
// Iterations of busy waiting before sleeping: a few microseconds, longer
// than the css_set lock's holds, shorter than a futex round trip's cost in
// wasted sleeps.
constexpr int kSpins = 200;
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}
}  // namespace

void RwLock::wait(uint32_t expected) {
  // EAGAIN (the word changed) and EINTR both mean: look again.
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&state_), FUTEX_WAIT_PRIVATE, expected,
          nullptr, nullptr, 0);
}

void RwLock::wake_all() {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&state_), FUTEX_WAKE_PRIVATE, INT_MAX,
          nullptr, nullptr, 0);
}

// The slow path of both lock modes: `free(s)` says whether the word `s`
// lets this mode in, `take(s)` is the word that holds it. Spins a while,
// then sets the sleepers' bit and sleeps until the word changes.
template <class Free, class Take>
void RwLock::acquire_slow(Free free, Take take) {
  for (int spins = 0;; ++spins) {
    uint32_t s = state_.load(std::memory_order_relaxed);
    if (free(s)) {
      if (state_.compare_exchange_weak(s, take(s), std::memory_order_acquire, std::memory_order_relaxed))
        return;
      continue;
    }
    if (spins < kSpins) {
      cpu_relax();
      continue;
    }
    if (!(s & kWaiters) && !state_.compare_exchange_weak(s, s | kWaiters, std::memory_order_relaxed))
      continue;
    wait(s | kWaiters);
    spins = 0;
  }
}

// Free, maybe with sleepers: the writer keeps their bit, so that its unlock
// wakes them.
void RwLock::lock_slow() {
  acquire_slow([](uint32_t s) { return (s & ~kWaiters) == 0; }, [](uint32_t s) { return s | kWriter; });
}

// Readers do not pass sleepers (a waiting writer is not starved).
void RwLock::lock_shared_slow() {
  acquire_slow([](uint32_t s) { return !(s & (kWriter | kWaiters)); }, [](uint32_t s) { return s + 1; });
}

void RwLock::unlock_shared_wake() {
  // The last reader left and someone sleeps. If the word is still just the
  // sleepers' bit, clear it and wake them all; if it changed, a writer took
  // the lock keeping the bit, and its unlock wakes them.
  uint32_t s = kWaiters;
  if (state_.compare_exchange_strong(s, 0, std::memory_order_relaxed)) wake_all();
}

void RwSem::LockShared() {
  for (;;) {
    uint32_t s = state_.load(std::memory_order_relaxed);
    if (s & (kWriter | kWriterWaiting)) {
      state_.wait(s, std::memory_order_relaxed);
      continue;
    }
    if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire,
                                     std::memory_order_relaxed))
      break;
  }
  if constexpr (kLockDebug) lock_debug::note_acquire(this, false);
}

void RwSem::UnlockShared() {
  if constexpr (kLockDebug) lock_debug::note_release(this);
  uint32_t prev = state_.fetch_sub(1, std::memory_order_release);
  if ((prev & kReaderMask) == 1 && (prev & kWriterWaiting)) state_.notify_all();
}

void RwSem::Lock() {
  for (;;) {
    uint32_t s = state_.load(std::memory_order_relaxed);
    if ((s & (kReaderMask | kWriter)) == 0) {
      if (state_.compare_exchange_weak(s, kWriter, std::memory_order_acquire,
                                       std::memory_order_relaxed))
        break;
      continue;
    }
    if (!(s & kWriterWaiting)) {
      if (!state_.compare_exchange_weak(s, s | kWriterWaiting, std::memory_order_relaxed))
        continue;
      s |= kWriterWaiting;
    }
    state_.wait(s, std::memory_order_relaxed);
  }
  if constexpr (kLockDebug) lock_debug::note_acquire(this, true);
}

void RwSem::Unlock() {
  if constexpr (kLockDebug) lock_debug::note_release(this);
  state_.store(0, std::memory_order_release);
  state_.notify_all();
}

int ShardedRwSem::my_shard() {
  static std::atomic<int> next{0};
  thread_local int shard = next.fetch_add(1, std::memory_order_relaxed) % kShards;
  return shard;
}

// The methods below are annotated on the whole object and take per-shard
// locks underneath.

// The calling thread's shard is chosen at run time: not nameable.
void ShardedRwSem::LockShared() CG_NO_THREAD_SAFETY_ANALYSIS {
  shards_[my_shard()].sem.LockShared();
  if constexpr (kLockDebug) lock_debug::note_acquire(this, false);
}

// The calling thread's shard is chosen at run time: not nameable.
void ShardedRwSem::UnlockShared() CG_NO_THREAD_SAFETY_ANALYSIS {
  if constexpr (kLockDebug) lock_debug::note_release(this);
  shards_[my_shard()].sem.UnlockShared();
}

// Takes every shard in a loop: a set of locks the analysis cannot follow.
void ShardedRwSem::Lock() CG_NO_THREAD_SAFETY_ANALYSIS {
  for (auto& s : shards_) s.sem.Lock();
  if constexpr (kLockDebug) lock_debug::note_acquire(this, true);
}

// Releases every shard in a loop: a set of locks the analysis cannot follow.
void ShardedRwSem::Unlock() CG_NO_THREAD_SAFETY_ANALYSIS {
  if constexpr (kLockDebug) lock_debug::note_release(this);
  for (int i = kShards - 1; i >= 0; --i) shards_[i].sem.Unlock();
}

}  // namespace cgcore
