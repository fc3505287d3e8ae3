// The slab allocator behind Task objects (core/slab.h).
#include "core/slab.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

namespace cgcore {
namespace {

TEST(Slab, SlotsAreDistinctAlignedAndReused) {
  Slab<56, 8> slab;
  std::vector<void*> got;
  std::set<uintptr_t> seen;
  for (int i = 0; i < 5000; ++i) {  // several 64 KiB chunks
    void* p = slab.allocate();
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 8, 0u);
    EXPECT_TRUE(seen.insert(reinterpret_cast<uintptr_t>(p)).second) << "slot handed out twice";
    std::memset(p, 0xab, 56);  // the whole slot is ours
    got.push_back(p);
  }
  for (void* p : got) slab.deallocate(p);
#ifndef CGCORE_SLAB_USES_HEAP
  // Freed slots come back before new memory is used.
  for (int i = 0; i < 5000; ++i) {
    void* p = slab.allocate();
    EXPECT_TRUE(seen.count(reinterpret_cast<uintptr_t>(p))) << "fresh memory despite free slots";
    got[i] = p;
  }
  for (void* p : got) slab.deallocate(p);
#endif
}

TEST(Slab, ThreadsShareIt) {
  Slab<40, 8> slab;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&slab, t] {
      std::vector<uint64_t*> mine;
      for (int round = 0; round < 200; ++round) {
        for (int i = 0; i < 50; ++i) {
          auto* p = static_cast<uint64_t*>(slab.allocate());
          ASSERT_NE(p, nullptr);
          *p = static_cast<uint64_t>(t);
          mine.push_back(p);
        }
        for (uint64_t* p : mine) {
          EXPECT_EQ(*p, static_cast<uint64_t>(t)) << "another thread wrote our slot";
          slab.deallocate(p);
        }
        mine.clear();
      }
    });
  for (auto& th : threads) th.join();
}

}  // namespace
}  // namespace cgcore
