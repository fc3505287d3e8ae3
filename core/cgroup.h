// Cgroup: a node of a hierarchy.
//
// Fields are grouped by what protects them. Accessors that read guarded
// state assert the lock in debug builds. A Cgroup object outlives its removal
// (rmdir) while references remain (CgroupPtr, csses of the cgroup); a removed
// cgroup is dead(): it is no longer in its parent's children and accepts no
// tasks, children or writes.
#pragma once

#include <atomic>
#include <climits>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/intrusive_list.h"
#include "core/types.h"

namespace cgcore {

class Cgroup;
class Css;
class CssSet;
class Engine;
class Hierarchy;

// The link between a css_set and the cgroup it holds for one hierarchy.
// Lives inside the CssSet (one per hierarchy slot); threaded on the cgroup's
// list of css_sets. Guarded by the css_set lock.
struct CsetLink {
  CssSet* cset = nullptr;
  Cgroup* cgroup = nullptr;  // null: the hierarchy did not exist for this cset
  ListHook cgroup_node;
};

class Cgroup {
 public:
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;

  // --- Immutable after creation ---
  Hierarchy& hierarchy() const { return *hierarchy_; }
  Cgroup* parent() const { return parent_; }
  bool is_root() const { return parent_ == nullptr; }
  // Depth below the hierarchy's root (root: 0).
  int level() const { return level_; }
  // Unique in the engine, never reused; usable as an inode number.
  uint64_t id() const { return id_; }

  // --- Guarded by the cgroup mutex ---
  const std::string& name() const;
  // This cgroup's own css of a controller, or null if the controller is not
  // active here (v2: see Engine::effective_css).
  Css* css(ControllerId id) const;
  const std::map<std::string, Cgroup*, std::less<>>& children() const;
  // v2: the controllers enabled for the children (cgroup.subtree_control).
  const ControllerSet& subtree_control() const;
  int max_depth() const;
  int max_descendants() const;
  int nr_descendants() const;
  // cgroup.freeze as written here (the effective state also follows the
  // ancestors: Engine::frozen_locked).
  bool self_freeze() const;
  // The path from the hierarchy root ("/" for the root, "/a/b" below it).
  std::string path() const;

  // --- Guarded by the css_set lock ---
  // Whether any task is in this cgroup or a descendant (cgroup.events).
  bool populated() const;
  // Whether any task is in this very cgroup.
  bool has_tasks() const;

  // --- Safe from any thread ---
  bool dead() const { return dead_.load(std::memory_order_acquire); }
  bool notify_on_release() const { return notify_on_release_.load(std::memory_order_relaxed); }
  void set_notify_on_release(bool v) { notify_on_release_.store(v, std::memory_order_relaxed); }
  bool clone_children() const { return clone_children_.load(std::memory_order_relaxed); }
  void set_clone_children(bool v) { clone_children_.store(v, std::memory_order_relaxed); }

  // cgroup v2's base CPU statistics (the v2 cpu.stat usage lines, present
  // in every cgroup of the default hierarchy whatever its controllers): CPU
  // time, in nanoseconds, of the tasks of this cgroup and its descendants,
  // charged by the embedder (CpuController::charge) at this cgroup and every
  // ancestor at once, so that a removed child's or an exited task's time
  // stays counted. Counters only grow. Atomics: safe from any thread.
  struct CpuTime {
    std::atomic<uint64_t> user_ns{0};
    std::atomic<uint64_t> system_ns{0};
    std::atomic<uint64_t> nice_ns{0};  // the part of user_ns run at nice > 0
  };
  CpuTime& cputime() { return cputime_; }
  const CpuTime& cputime() const { return cputime_; }

  // Reference counting. The parent's children map and the hierarchy hold the
  // base reference until rmdir; each child, each css of this cgroup and each
  // css_set linked to it hold one. The root cgroup is owned by its Hierarchy.
  void get() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void put();

 private:
  friend class Engine;
  friend class MigrationContext;
  friend class InvariantChecker;
  friend class Hierarchy;

  Cgroup(Engine* engine, Hierarchy* hierarchy, Cgroup* parent, std::string name,
         uint64_t id, size_t nr_controllers);
  ~Cgroup();

  // Immutable.
  Engine* const engine_;
  Hierarchy* const hierarchy_;
  Cgroup* const parent_;
  const int level_;
  const uint64_t id_;

  // Guarded by cgroup_mutex.
  std::string name_;
  std::map<std::string, Cgroup*, std::less<>> children_;
  std::vector<Css*> csses_;  // indexed by ControllerId; each holds a reference
  ControllerSet subtree_control_;
  int max_depth_ = INT_MAX;
  int max_descendants_ = INT_MAX;
  int nr_descendants_ = 0;
  bool freeze_ = false;
  // cgroup v2 threaded mode: the threaded domain (this cgroup unless it is
  // threaded) and the number of threaded children (> 0: a thread root).
  Cgroup* dom_cgrp_;
  int nr_threaded_children_ = 0;

  // Guarded by css_set_lock.
  IntrusiveList<CsetLink, &CsetLink::cgroup_node> cset_links_;
  int64_t nr_populated_csets_ = 0;              // linked css_sets that have tasks
  int64_t nr_populated_domain_children_ = 0;    // non-threaded children populated()
  int64_t nr_populated_threaded_children_ = 0;  // threaded children populated()

  std::atomic<bool> dead_{false};
  std::atomic<bool> notify_on_release_{false};
  std::atomic<bool> clone_children_{false};
  std::atomic<int64_t> refs_{1};
  CpuTime cputime_;
};

// An owning reference to a cgroup (Cgroup::get/put); keeps the object valid,
// not the cgroup alive in the tree.
class CgroupPtr {
 public:
  CgroupPtr() = default;
  explicit CgroupPtr(Cgroup* c) : c_(c) {
    if (c_) c_->get();
  }
  CgroupPtr(const CgroupPtr& o) : CgroupPtr(o.c_) {}
  CgroupPtr(CgroupPtr&& o) noexcept : c_(o.c_) { o.c_ = nullptr; }
  CgroupPtr& operator=(CgroupPtr o) noexcept {
    std::swap(c_, o.c_);
    return *this;
  }
  ~CgroupPtr() {
    if (c_) c_->put();
  }
  Cgroup* get() const { return c_; }
  Cgroup& operator*() const { return *c_; }
  Cgroup* operator->() const { return c_; }
  explicit operator bool() const { return c_ != nullptr; }

 private:
  Cgroup* c_ = nullptr;
};

}  // namespace cgcore
