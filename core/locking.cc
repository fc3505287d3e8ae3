#include "core/locking.h"

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

// The shard methods are annotated on the whole object; the analysis cannot
// follow the per-shard locks, so it is switched off inside.
void ShardedRwSem::LockShared() CG_NO_THREAD_SAFETY_ANALYSIS {
  shards_[my_shard()].sem.LockShared();
  if constexpr (kLockDebug) lock_debug::note_acquire(this, false);
}

void ShardedRwSem::UnlockShared() CG_NO_THREAD_SAFETY_ANALYSIS {
  if constexpr (kLockDebug) lock_debug::note_release(this);
  shards_[my_shard()].sem.UnlockShared();
}

void ShardedRwSem::Lock() CG_NO_THREAD_SAFETY_ANALYSIS {
  for (auto& s : shards_) s.sem.Lock();
  if constexpr (kLockDebug) lock_debug::note_acquire(this, true);
}

void ShardedRwSem::Unlock() CG_NO_THREAD_SAFETY_ANALYSIS {
  if constexpr (kLockDebug) lock_debug::note_release(this);
  for (int i = kShards - 1; i >= 0; --i) shards_[i].sem.Unlock();
}

}  // namespace cgcore
