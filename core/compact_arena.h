// One range of address space, reserved once per process, from which every
// engine's slabs (core/slab.h) carve their chunks. An object in it is named
// by a CompactRef: its distance from the range's start in 8-byte units, 32
// bits where a pointer takes 64. The task lists (core/compact_list.h) and
// the id table link tasks by CompactRef, which is what keeps a task at
// 40 bytes plus 4 in the table.
//
// The range is reserved without access (PROT_NONE, so no commit charge and
// no memory) and made readable and writable a chunk at a time as slabs
// grow; a chunk a slab gives back is emptied (MADV_DONTNEED) and reused
// before the range grows. 32 GiB are asked for, less where the address
// space is limited (RLIMIT_AS): at least 256 MiB, or chunk allocation
// fails (ENOMEM for a new task).
//
// Thread-safety: chunk allocation takes the arena's mutex (a leaf); refs
// are converted without locks: the start never changes once set, and an
// object in the range is reached only after its allocation happened before.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/locking.h"

namespace cgcore {

// 0 names nothing: the range's first chunk is never handed out.
using CompactRef = uint32_t;

class CompactArena {
 public:
  static constexpr size_t kUnit = 8;
  static constexpr size_t kChunkBytes = 64 * 1024;

  // The process's arena, reserved on first use. Never destroyed.
  static CompactArena& instance();

  // kChunkBytes of zeroed, page-aligned read-write memory, or null once the
  // range is used up or the kernel refuses memory.
  void* allocate_chunk();
  // Gives a chunk back; its memory is released. REQUIRES: from
  // allocate_chunk, nothing in it used any more.
  void free_chunk(void* chunk);

  // Bytes of address space reserved (0 if the reservation failed).
  size_t reserved_bytes() const { return reserved_; }
  // Whether `p` points into the range.
  bool contains(const void* p) const {
    const char* c = static_cast<const char*>(p);
    return base_ && c >= base_ && c < base_ + reserved_;
  }

 private:
  CompactArena();
  struct FreeChunk {
    FreeChunk* next;
  };

  char* base_ = nullptr;  // Immutable after construction.
  size_t reserved_ = 0;   // Immutable after construction.
  Mutex mu_;
  size_t used_ CG_GUARDED_BY(mu_) = kChunkBytes;  // the first chunk stays unmapped
  FreeChunk* free_ CG_GUARDED_BY(mu_) = nullptr;
};

namespace compact_internal {
// The arena's start: set once, before the first chunk is handed out.
inline char* base = nullptr;
}  // namespace compact_internal

// The ref of `p`, an 8-byte-aligned address inside the arena.
// REQUIRES: p is not null (compact_ref maps null to 0).
inline CompactRef compact_ref_nonnull(const void* p) {
  return static_cast<CompactRef>(
      (static_cast<const char*>(p) - compact_internal::base) / CompactArena::kUnit);
}
inline CompactRef compact_ref(const void* p) { return p ? compact_ref_nonnull(p) : 0; }

// The object ref `r` names. REQUIRES: r != 0 (compact_ptr maps 0 to null).
template <typename T>
T* compact_ptr_nonnull(CompactRef r) {
  return reinterpret_cast<T*>(compact_internal::base + size_t{r} * CompactArena::kUnit);
}
template <typename T>
T* compact_ptr(CompactRef r) {
  return r ? compact_ptr_nonnull<T>(r) : nullptr;
}

}  // namespace cgcore
