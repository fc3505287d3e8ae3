// The lock candidates for the engine's short critical sections, side by
// side (part of core_bench; filter with --benchmark_filter=BM_Lock):
//
//   SharedMutex  std::shared_mutex (a pthread rwlock) behind the debug wrapper
//   RwLock       the engine's four-byte futex reader-writer lock
//   RwSem        the per-process threadgroup semaphore (atomic wait/notify)
//   Mutex        std::mutex (exclusive only)
//   SpinLock     a test-and-test-and-set spinlock (exclusive only; never
//                sleeps, so a preempted holder stalls every waiter)
//
// Each is timed uncontended (one thread, lock + unlock) and contended (two
// threads, each holding it around ~100 ns of work, the css_set lock's typical
// hold). Built Release, the lock debug tracking is compiled out, as it is in
// the benchmarked engine; on a shared or loaded machine the contended rows
// are noise, the uncontended ones less so.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>

#include "core/locking.h"

namespace cgcore::bench {
namespace {

class CG_CAPABILITY("spinlock") SpinLock {
 public:
  void Lock() CG_ACQUIRE() {
    for (;;) {
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      while (locked_.load(std::memory_order_relaxed)) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      }
    }
  }
  void Unlock() CG_RELEASE() { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

// About 100 ns of dependent work standing in for a commit's list operations.
inline void critical_section(uint64_t* data) {
  for (int i = 0; i < 40; ++i) {
    data[i & 7] = data[(i + 3) & 7] * 2654435761u + static_cast<uint64_t>(i);
  }
  benchmark::DoNotOptimize(data);
}

template <typename L>
void BM_LockUncontended(benchmark::State& state) {
  static L lock;
  for (auto _ : state) {
    lock.Lock();
    benchmark::ClobberMemory();
    lock.Unlock();
  }
}

template <typename L>
void BM_LockSharedUncontended(benchmark::State& state) {
  static L lock;
  for (auto _ : state) {
    lock.LockShared();
    benchmark::ClobberMemory();
    lock.UnlockShared();
  }
}

template <typename L>
void BM_LockContended(benchmark::State& state) {
  static L lock;
  static uint64_t data[8];
  for (auto _ : state) {
    lock.Lock();
    critical_section(data);
    lock.Unlock();
  }
}

// Thread 0 writes, the others read: fork's reads against a migration's holds.
template <typename L>
void BM_LockReadersAndWriter(benchmark::State& state) {
  static L lock;
  static uint64_t data[8];
  uint64_t mine[8] = {};
  const bool writer = state.thread_index() == 0;
  for (auto _ : state) {
    if (writer) {
      lock.Lock();
      critical_section(data);
      lock.Unlock();
    } else {
      lock.LockShared();
      for (int i = 0; i < 8; ++i) mine[i] = data[i];
      lock.UnlockShared();
      critical_section(mine);
    }
  }
}

BENCHMARK_TEMPLATE(BM_LockUncontended, SharedMutex);
BENCHMARK_TEMPLATE(BM_LockUncontended, RwLock);
BENCHMARK_TEMPLATE(BM_LockUncontended, RwSem);
BENCHMARK_TEMPLATE(BM_LockUncontended, Mutex);
BENCHMARK_TEMPLATE(BM_LockUncontended, SpinLock);
BENCHMARK_TEMPLATE(BM_LockSharedUncontended, SharedMutex);
BENCHMARK_TEMPLATE(BM_LockSharedUncontended, RwLock);
BENCHMARK_TEMPLATE(BM_LockSharedUncontended, RwSem);
BENCHMARK_TEMPLATE(BM_LockContended, SharedMutex)->Threads(1)->Threads(2);
BENCHMARK_TEMPLATE(BM_LockContended, RwLock)->Threads(1)->Threads(2);
BENCHMARK_TEMPLATE(BM_LockContended, RwSem)->Threads(1)->Threads(2);
BENCHMARK_TEMPLATE(BM_LockContended, Mutex)->Threads(1)->Threads(2);
BENCHMARK_TEMPLATE(BM_LockContended, SpinLock)->Threads(1)->Threads(2);
BENCHMARK_TEMPLATE(BM_LockReadersAndWriter, SharedMutex)->Threads(2);
BENCHMARK_TEMPLATE(BM_LockReadersAndWriter, RwLock)->Threads(2);
BENCHMARK_TEMPLATE(BM_LockReadersAndWriter, RwSem)->Threads(2);

}  // namespace
}  // namespace cgcore::bench
