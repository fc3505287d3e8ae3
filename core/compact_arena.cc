#include "core/compact_arena.h"

#include <sys/mman.h>

namespace cgcore {

namespace {
// 2^32 units of 8 bytes: every CompactRef names a place in it.
constexpr size_t kMaxReserve = size_t{1} << 35;
constexpr size_t kMinReserve = size_t{256} << 20;
}  // namespace

CompactArena& CompactArena::instance() {
  static CompactArena* arena = new CompactArena();  // outlives every engine
  return *arena;
}

CompactArena::CompactArena() {
  for (size_t size = kMaxReserve; size >= kMinReserve; size /= 2) {
    void* p = mmap(nullptr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) continue;
    base_ = static_cast<char*>(p);
    reserved_ = size;
    break;
  }
  compact_internal::base = base_;
}

void* CompactArena::allocate_chunk() {
  MutexLock lock(mu_);
  if (FreeChunk* f = free_) {
    free_ = f->next;
    f->next = nullptr;  // handed out zeroed, as a fresh chunk is
    return f;
  }
  if (!base_ || reserved_ - used_ < kChunkBytes) return nullptr;
  char* chunk = base_ + used_;
  // Growing the accessible part next to the last chunk keeps it one mapping.
  if (mprotect(chunk, kChunkBytes, PROT_READ | PROT_WRITE) != 0) return nullptr;
  used_ += kChunkBytes;
  return chunk;
}

void CompactArena::free_chunk(void* chunk) {
  // The pages go back to the kernel and read as zeros when touched again.
  madvise(chunk, kChunkBytes, MADV_DONTNEED);
  MutexLock lock(mu_);
  FreeChunk* f = static_cast<FreeChunk*>(chunk);
  f->next = free_;
  free_ = f;
}

}  // namespace cgcore
