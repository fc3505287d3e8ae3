// The compact arena, its 32-bit refs, and the lists linked by them
// (core/compact_arena.h, core/compact_list.h).
#include "core/compact_list.h"

#include <gtest/gtest.h>

#include <new>
#include <vector>

#include "core/slab.h"

namespace cgcore {
namespace {

struct Elem {
  int value = 0;
  CompactHook hook;
};
using ElemList = CompactList<Elem, &Elem::hook>;

// Makes Ts in the arena, as the engine's slabs do, and destroys them.
template <typename T>
class ArenaObjects {
 public:
  ~ArenaObjects() {
    for (T* t : made_) {
      t->~T();
      slab_.deallocate(t);
    }
  }
  T& make() {
    void* mem = slab_.allocate();
    if (!mem) throw std::bad_alloc();
    made_.push_back(new (mem) T());
    return *made_.back();
  }

 private:
  Slab<sizeof(T), alignof(T) < 8 ? 8 : alignof(T)> slab_;
  std::vector<T*> made_;
};

std::vector<int> values(const ElemList& list) {
  std::vector<int> out;
  for (const Elem& e : list) out.push_back(e.value);
  return out;
}

TEST(CompactArena, RefsNameTheirObjectsAndZeroNamesNothing) {
  ArenaObjects<Elem> objs;
  Elem& a = objs.make();
  Elem& b = objs.make();
  EXPECT_TRUE(CompactArena::instance().contains(&a));
  EXPECT_GE(CompactArena::instance().reserved_bytes(), size_t{256} << 20);
  EXPECT_NE(compact_ref(&a), 0u);
  EXPECT_NE(compact_ref(&a), compact_ref(&b));
  EXPECT_EQ(compact_ptr<Elem>(compact_ref(&a)), &a);
  EXPECT_EQ(compact_ptr<Elem>(compact_ref(&b)), &b);
  EXPECT_EQ(compact_ref(nullptr), 0u);
  EXPECT_EQ(compact_ptr<Elem>(0), nullptr);
  int on_stack = 0;
  EXPECT_FALSE(CompactArena::instance().contains(&on_stack));
}

TEST(CompactArena, AGivenBackChunkComesBackZeroed) {
  CompactArena& arena = CompactArena::instance();
  void* c = arena.allocate_chunk();
  ASSERT_NE(c, nullptr);
  static_cast<unsigned char*>(c)[100] = 0xab;
  arena.free_chunk(c);
  // Another thread's slab may take it first; ours is then a fresh one.
  void* d = arena.allocate_chunk();
  ASSERT_NE(d, nullptr);
  const unsigned char* bytes = static_cast<const unsigned char*>(d);
  for (size_t i = 0; i < CompactArena::kChunkBytes; i += 4096) EXPECT_EQ(bytes[i], 0) << i;
  EXPECT_EQ(bytes[100], 0);
  arena.free_chunk(d);
}

TEST(CompactList, LinksUnlinksAndSplicesLikeAPointerList) {
  ArenaObjects<Elem> elems;
  ArenaObjects<ElemList> lists;
  ElemList& l = lists.make();
  ElemList& m = lists.make();
  EXPECT_TRUE(l.empty());
  EXPECT_EQ(l.front(), nullptr);
  std::vector<Elem*> e;
  for (int i = 0; i < 5; ++i) {
    e.push_back(&elems.make());
    e.back()->value = i;
    EXPECT_FALSE(e.back()->hook.linked());
    l.push_back(*e.back());
    EXPECT_TRUE(e.back()->hook.linked());
  }
  EXPECT_EQ(values(l), (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(l.front(), e[0]);
  e[0]->hook.unlink();  // first
  e[2]->hook.unlink();  // middle
  e[4]->hook.unlink();  // last
  EXPECT_FALSE(e[2]->hook.linked());
  EXPECT_EQ(values(l), (std::vector<int>{1, 3}));
  EXPECT_TRUE(l.contains(*e[3]));
  EXPECT_FALSE(l.contains(*e[2]));
  m.push_back(*e[4]);
  m.push_back(*e[0]);
  l.splice_back(m);
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(values(l), (std::vector<int>{1, 3, 4, 0}));
  l.splice_back(m);  // an empty list adds nothing
  EXPECT_EQ(values(l), (std::vector<int>{1, 3, 4, 0}));
  // for_each_safe lets the visited element move to another list.
  l.for_each_safe([&](Elem& x) {
    if (x.value % 2 == 0) {
      x.hook.unlink();
      m.push_back(x);
    }
  });
  EXPECT_EQ(values(l), (std::vector<int>{1, 3}));
  EXPECT_EQ(values(m), (std::vector<int>{4, 0}));
  l.for_each_safe([](Elem& x) { x.hook.unlink(); });
  m.for_each_safe([](Elem& x) { x.hook.unlink(); });
  EXPECT_TRUE(l.empty());
  EXPECT_TRUE(m.empty());
}

}  // namespace
}  // namespace cgcore
