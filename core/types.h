// Small value types shared by the whole engine.
#pragma once

#include <cstdint>
#include <vector>

namespace cgcore {

// A task (thread) id or a process (thread-group) id, as in Linux.
using Pid = int32_t;

// Ids from here up are never a kernel's (Linux's PID_MAX_LIMIT is 2^22):
// a backend gives them to tasks it creates before it knows their real id
// (a fork charged before the kernel makes it), and renames them with
// Engine::change_task_id once it does. The file layer lists none of them.
inline constexpr Pid kFirstProvisionalId = Pid{1} << 29;
inline bool is_provisional_id(Pid id) { return id >= kFirstProvisionalId; }
// Index of a registered controller, dense from 0 in registration order.
using ControllerId = int;
// Index of a hierarchy; 0 is the default (v2) hierarchy.
using HierarchyId = int;

inline constexpr HierarchyId kDefaultHierarchy = 0;

// A process's credentials, used by the file layer's permission checks.
struct Creds {
  uint32_t uid = 0;
  uint32_t euid = 0;
  uint32_t suid = 0;
  uint32_t gid = 0;
  uint32_t egid = 0;
  bool operator==(const Creds&) const = default;
};

// A set of controllers, as a bitset sized to the number registered (there is
// no fixed limit on how many controllers an engine has).
class ControllerSet {
 public:
  ControllerSet() = default;

  bool test(ControllerId id) const {
    size_t w = static_cast<size_t>(id) / 64;
    return w < words_.size() && (words_[w] >> (id % 64) & 1);
  }
  void set(ControllerId id) {
    size_t w = static_cast<size_t>(id) / 64;
    if (w >= words_.size()) words_.resize(w + 1, 0);
    words_[w] |= uint64_t{1} << (id % 64);
  }
  void reset(ControllerId id) {
    size_t w = static_cast<size_t>(id) / 64;
    if (w < words_.size()) words_[w] &= ~(uint64_t{1} << (id % 64));
  }
  bool empty() const {
    for (uint64_t w : words_)
      if (w) return false;
    return true;
  }
  bool operator==(const ControllerSet& o) const {
    size_t n = words_.size() > o.words_.size() ? words_.size() : o.words_.size();
    for (size_t i = 0; i < n; ++i) {
      uint64_t a = i < words_.size() ? words_[i] : 0;
      uint64_t b = i < o.words_.size() ? o.words_[i] : 0;
      if (a != b) return false;
    }
    return true;
  }
  // Calls fn(ControllerId) for each member in increasing order.
  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (size_t w = 0; w < words_.size(); ++w)
      for (uint64_t bits = words_[w]; bits; bits &= bits - 1)
        fn(static_cast<ControllerId>(w * 64 + __builtin_ctzll(bits)));
  }

 private:
  std::vector<uint64_t> words_;
};

}  // namespace cgcore
