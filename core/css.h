// Css: one controller's state for one cgroup (the kernel's
// cgroup_subsys_state). Controllers derive their per-cgroup state from it.
//
// Lifecycle: css_alloc -> css_online -> (rmdir) css_offline -> freed when the
// last reference drops. An offline css stays valid for holders of a reference
// (css_sets that still point at it, an address space charging to it); its
// cgroup() then still answers, but the cgroup is no longer in the tree.
//
// Thread-safety: get()/put()/online()/parent()/controller_id() are safe from
// any thread. cgroup() of a root css changes when its controller is rebound
// to another hierarchy, which happens under the engine's cgroup mutex.
#pragma once

#include <atomic>
#include <cstdint>

#include "core/types.h"

namespace cgcore {

class Cgroup;
class Controller;
class Engine;

class Css {
 public:
  Css() = default;
  virtual ~Css() = default;
  Css(const Css&) = delete;
  Css& operator=(const Css&) = delete;

  // The cgroup this state belongs to.
  Cgroup* cgroup() const { return cgroup_.load(std::memory_order_acquire); }
  // The parent cgroup's css of the same controller; null for a root css.
  // Immutable.
  Css* parent() const { return parent_; }
  ControllerId controller_id() const { return id_; }
  Controller& controller() const { return *controller_; }
  bool is_root() const { return parent_ == nullptr; }
  // True between css_online and css_offline.
  bool online() const { return online_.load(std::memory_order_acquire); }

  // Reference counting. The owning cgroup holds one reference until rmdir;
  // every css_set that points at the css holds one. put() of the last
  // reference frees the css (its controller's destructor runs, then the
  // parent css and the cgroup are released). Root csses are never freed
  // before their engine.
  void get() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void put();
  int64_t TEST_refs() const { return refs_.load(std::memory_order_relaxed); }

 private:
  friend class Engine;
  friend class InvariantChecker;

  std::atomic<Cgroup*> cgroup_{nullptr};
  Controller* controller_ = nullptr;  // Immutable after css_alloc.
  Css* parent_ = nullptr;             // Immutable; holds a reference.
  Engine* engine_ = nullptr;          // Immutable.
  ControllerId id_ = -1;              // Immutable.
  std::atomic<bool> online_{false};
  std::atomic<int64_t> refs_{1};
};

}  // namespace cgcore
