// A slab allocator for one object size: objects are carved from 64 KiB
// chunks of the compact arena (core/compact_arena.h), so that each has a
// CompactRef, and freed slots are reused first, so an object costs its size
// and nothing more (a malloc'd Task would cost 8 bytes of header on top of
// its 40), and a fork + exit pair makes no malloc call once the slab has
// warmed up. Chunks are kept until the slab goes: memory is bounded by the
// peak number of live objects, as the id table's pages are.
//
// Under AddressSanitizer a freed slot is poisoned until it is handed out
// again, so that a use after free is still caught.
//
// Thread-safe: one RwLock (a leaf, taken exclusive for a few instructions).
#pragma once

#include <cstddef>
#include <new>

#include "core/compact_arena.h"
#include "core/locking.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CGCORE_SLAB_POISONS 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define CGCORE_SLAB_POISONS 1
#endif
#ifdef CGCORE_SLAB_POISONS
#include <sanitizer/asan_interface.h>
#endif

namespace cgcore {

template <size_t Size, size_t Align>
class Slab {
 public:
  Slab() = default;
  Slab(const Slab&) = delete;
  Slab& operator=(const Slab&) = delete;
  // REQUIRES: every slot was given back.
  ~Slab() {
    while (Chunk* c = chunks_) {
      chunks_ = c->next;
      unpoison(c, CompactArena::kChunkBytes);
      CompactArena::instance().free_chunk(c);
    }
  }

  // Room for one object; null if memory is exhausted.
  void* allocate() {
    ExclusiveLock<RwLock> l(lock_);
    if (Free* f = free_) {
      unpoison(f, kSlot);
      free_ = f->next;
      return f;
    }
    if (bump_ == end_) {
      void* mem = CompactArena::instance().allocate_chunk();
      if (!mem) return nullptr;
      Chunk* c = static_cast<Chunk*>(mem);
      c->next = chunks_;
      chunks_ = c;
      bump_ = static_cast<char*>(mem) + kHeader;
      end_ = bump_ + kSlotsPerChunk * kSlot;
    }
    void* slot = bump_;
    bump_ += kSlot;
    return slot;
  }

  // Gives back what allocate() returned (the object already destroyed).
  void deallocate(void* p) {
    ExclusiveLock<RwLock> l(lock_);
    Free* f = static_cast<Free*>(p);
    f->next = free_;
    free_ = f;
    poison(p, kSlot);  // allocate() unpoisons it before it reads the link
  }

 private:
  struct Free {
    Free* next;
  };
  struct Chunk {
    Chunk* next;
  };
  static constexpr size_t kSlot = (Size + Align - 1) / Align * Align;
  static_assert(kSlot >= sizeof(Free) && Align >= alignof(Free));
  static constexpr size_t kChunkBytes = CompactArena::kChunkBytes;
  static_assert(Align % CompactArena::kUnit == 0, "a slot must have a CompactRef");
  static constexpr size_t kHeader = (sizeof(Chunk) + Align - 1) / Align * Align;
  static constexpr size_t kSlotsPerChunk = (kChunkBytes - kHeader) / kSlot;

#ifdef CGCORE_SLAB_POISONS
  static void poison(void* p, size_t n) { ASAN_POISON_MEMORY_REGION(p, n); }
  static void unpoison(void* p, size_t n) { ASAN_UNPOISON_MEMORY_REGION(p, n); }
#else
  static void poison(void*, size_t) {}
  static void unpoison(void*, size_t) {}
#endif

  alignas(kCacheLineBytes) RwLock lock_;  // slabs side by side share no line
  Free* free_ CG_GUARDED_BY(lock_) = nullptr;
  Chunk* chunks_ CG_GUARDED_BY(lock_) = nullptr;
  char* bump_ CG_GUARDED_BY(lock_) = nullptr;  // the newest chunk's unused part
  char* end_ CG_GUARDED_BY(lock_) = nullptr;
};

}  // namespace cgcore
