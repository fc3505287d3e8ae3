// The order in which kernfs lists a directory: by the hash of each name
// (kernfs keeps a directory's children in a tree ordered by that hash, then
// by name), files and subdirectories mixed. Programs that read a cgroup
// directory with readdir see its entries in this order on the kernel, and
// some depend on it (libcgroup's cgget -g returns the status of the last
// entry it looked at).
//
// Thread-safety: pure functions.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

namespace cgcore::fs {

// The kernfs hash of a name in no namespace: an 11-multiplier running sum
// of the bytes, folded to 32 bits by the 64-bit golden-ratio multiply, kept
// within [2, INT_MAX - 1] (0, 1 and INT_MAX mark "." , ".." and the end).
inline uint32_t kernfs_name_hash(std::string_view name) {
  uint64_t h = 0;
  for (unsigned char c : name) h = (h + (static_cast<uint64_t>(c) << 4) + (c >> 4)) * 11;
  uint32_t v = static_cast<uint32_t>((h * 0x61C8864680B583EBull) >> 32) & 0x7fffffffu;
  if (v < 2) v += 2;
  if (v >= 0x7fffffffu) v = 0x7fffffffu - 1;
  return v;
}

// Sorts entries (anything with a `name`) into kernfs' listing order.
template <typename E>
void sort_kernfs_order(std::vector<E>& entries) {
  std::stable_sort(entries.begin(), entries.end(), [](const E& a, const E& b) {
    const uint32_t ha = kernfs_name_hash(a.name), hb = kernfs_name_hash(b.name);
    return ha != hb ? ha < hb : a.name < b.name;
  });
}

}  // namespace cgcore::fs
