// The lock types: exclusion, reader sharing, and the debug assertions.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "core/locking.h"

namespace cgcore {
namespace {

template <typename Lock>
void exercise_exclusion() {
  Lock lock;
  int64_t counter = 0;  // protected by `lock` when written
  std::atomic<int> readers_inside{0};
  std::atomic<bool> overlap{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        if ((i + t) % 4 == 0) {
          ExclusiveLock<Lock> w(lock);
          if (readers_inside.load() != 0) overlap = true;
          ++counter;
        } else {
          SharedLock<Lock> r(lock);
          readers_inside.fetch_add(1);
          (void)counter;
          readers_inside.fetch_sub(1);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_FALSE(overlap.load());
  EXPECT_EQ(counter, 4 * 2000 / 4);
}

TEST(Locking, RwSemExcludesWritersFromReaders) { exercise_exclusion<RwSem>(); }
TEST(Locking, ShardedRwSemExcludesWritersFromReaders) { exercise_exclusion<ShardedRwSem>(); }
TEST(Locking, SharedMutexExcludesWritersFromReaders) { exercise_exclusion<SharedMutex>(); }

TEST(Locking, ReadersShare) {
  RwSem sem;
  sem.LockShared();
  std::atomic<bool> got{false};
  std::thread other([&] {
    sem.LockShared();
    got = true;
    sem.UnlockShared();
  });
  other.join();
  EXPECT_TRUE(got.load());
  sem.UnlockShared();
}

TEST(Locking, AssertionsKnowWhoHoldsWhat) {
  if (!kLockDebug) GTEST_SKIP() << "lock assertions are compiled out in NDEBUG builds";
  Mutex mu;
  SharedMutex smu;
  EXPECT_DEATH(mu.AssertHeld(), "Mutex not held");
  mu.Lock();
  mu.AssertHeld();
  // Another thread does not hold it.
  std::thread([&] { EXPECT_EQ(lock_debug::held_mode(&mu), 0); }).join();
  mu.Unlock();
  smu.LockShared();
  smu.AssertReaderHeld();
  EXPECT_DEATH(smu.AssertHeld(), "not held exclusive");
  smu.UnlockShared();
  EXPECT_DEATH(smu.AssertReaderHeld(), "SharedMutex not held");
}

}  // namespace
}  // namespace cgcore
