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
  // Freed slots come back before new memory is used.
  for (int i = 0; i < 5000; ++i) {
    void* p = slab.allocate();
    EXPECT_TRUE(seen.count(reinterpret_cast<uintptr_t>(p))) << "fresh memory despite free slots";
    got[i] = p;
  }
  for (void* p : got) slab.deallocate(p);
}

TEST(Slab, SlotsAreInTheCompactArena) {
  Slab<40, 8> slab;
  void* p = slab.allocate();
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(CompactArena::instance().contains(p));
  EXPECT_EQ(compact_ptr<void>(compact_ref(p)), p);
  slab.deallocate(p);
#ifdef CGCORE_SLAB_POISONS
  // A use after free is reported: the slot is poisoned until handed out.
  EXPECT_TRUE(__asan_address_is_poisoned(p));
  EXPECT_TRUE(__asan_address_is_poisoned(static_cast<char*>(p) + 39));
  void* q = slab.allocate();
  EXPECT_EQ(q, p);
  EXPECT_FALSE(__asan_address_is_poisoned(q));
  slab.deallocate(q);
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
