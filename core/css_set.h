// CssSet: the interned tuple "one cgroup per hierarchy, and so one css per
// controller" shared by every task with those memberships (the kernel's
// css_set). Tasks point at their css_set; the css_set lists its tasks.
//
// Invariants (checked by InvariantChecker):
//   * Two css_sets in the table never have the same cgroups and csses.
//   * refs == live tasks on tasks + mg_tasks + migration pins (+1 for the
//     engine's root css_set). References change only through get() /
//     put_not_last() / Engine::put_cset_locked().
//   * A css_set whose count reaches zero is either freed (unhashed, its
//     cgroup and css references dropped) or *kept*: it stays hashed, linked
//     and referencing its cgroups and csses exactly like a live one, with no
//     tasks and no references of its own, on the engine's kept list
//     (kept_node_ linked <=> refs == 0). A lookup of its key revives it
//     (Engine::find_css_set_locked), so a task moving back finds it. Kept
//     ones are bounded (Engine::kMaxKeptCssSets, oldest reclaimed first), are
//     never kept with a dead cgroup or an offline css, and are reclaimed
//     whenever effective csses may change (cgroup.subtree_control, threaded
//     mode, rebinding, css offlining) or their cgroup is removed, so that
//     every key stays exact.
//   * css(ss) is the effective css of cgroup(hierarchy of ss) for ss.
//   * Outside a migration, mg_tasks is empty and no mg_* field is set.
//
// Thread-safety: cgroup()/css() are immutable while the css_set exists (they
// change only during controller registration, which stops the world). Task
// lists, nr_tasks and the hash link are guarded by the css_set lock. The mg_*
// fields belong to the migration in progress (cgroup mutex held) and are
// changed under the css_set lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/cgroup.h"
#include "core/compact_list.h"
#include "core/intrusive_list.h"
#include "core/locking.h"
#include "core/task.h"
#include "core/types.h"

namespace cgcore {

class Css;

class CssSet {
 public:
  CssSet(const CssSet&) = delete;
  CssSet& operator=(const CssSet&) = delete;

  // The cgroup this css_set holds in hierarchy `h`, or null if the hierarchy
  // does not exist (or did not when the css_set was made).
  Cgroup* cgroup(HierarchyId h) const {
    return h < nr_links_ ? links_[h].cgroup : nullptr;
  }
  // The css of a controller for tasks of this css_set.
  Css* css(ControllerId id) const { return csses_[id]; }
  // Guarded by the css_set lock.
  int64_t nr_tasks() const { return nr_tasks_; }
  // Calls fn(Task&) for each task, migrating ones included.
  // Locking: css_set lock held (shared is enough).
  template <typename Fn>
  void for_each_task(Fn&& fn) const {
    for (Task& t : tasks_) fn(t);
    for (Task& t : mg_tasks_) fn(t);
  }

 private:
  friend class Engine;
  friend class CssSetTable;
  friend class MigrationContext;
  friend class TaskSet;
  friend class InvariantChecker;

  // REQUIRES: in the compact arena (Engine::cset_slab_), for the task
  // lists. std::bad_alloc if memory runs out.
  CssSet(int nr_links, size_t nr_controllers);
  ~CssSet() = default;

  // Takes n references. A new reference to a css_set found in the table (or
  // through a cgroup's links) is taken with the css_set lock exclusive, by
  // Engine::pin_cset_locked, which also revives a kept one (a count only
  // reaches zero under the lock exclusive, so a lookup never races a free);
  // a holder of a reference may take more without the lock.
  void get(int64_t n = 1) { refs_.fetch_add(n, std::memory_order_relaxed); }
  // Drops n references that are not the last ones (the caller holds another,
  // or knows of a holder that stays); no lock needed.
  void put_not_last(int64_t n = 1) {
    const int64_t before = refs_.fetch_sub(n, std::memory_order_relaxed);
    if constexpr (kLockDebug)
      if (before <= n) lock_debug::fail("css_set's last reference dropped by put_not_last", this);
  }
  // Drops one reference unless it is the last one; false (and nothing
  // dropped) if it is. No lock needed: a count reaches zero, and a zero count
  // is revived, only under the css_set lock exclusive (Engine::put_cset_locked),
  // and a count of two or more may drop to one anywhere.
  [[nodiscard]] bool put_unless_last() {
    int64_t r = refs_.load(std::memory_order_relaxed);
    while (r > 1)
      if (refs_.compare_exchange_weak(r, r - 1, std::memory_order_release,
                                      std::memory_order_relaxed))
        return true;
    return false;
  }
  // Drops one reference; true if it was the last. Only
  // Engine::put_cset_locked calls it (css_set lock exclusive), and frees the
  // css_set then.
  [[nodiscard]] bool put_and_test() { return refs_.fetch_sub(1, std::memory_order_acq_rel) == 1; }

  std::atomic<int64_t> refs_{0};

  // Immutable key (see Thread-safety).
  std::unique_ptr<CsetLink[]> links_;  // indexed by HierarchyId
  int nr_links_;
  std::vector<Css*> csses_;  // indexed by ControllerId; each holds a reference
  size_t hash_ = 0;

  // Guarded by css_set_lock.
  CssSet* hash_next_ = nullptr;
  CompactList<Task, &Task::cset_node> tasks_;
  CompactList<Task, &Task::cset_node> mg_tasks_;  // targets of a migration
  int64_t nr_tasks_ = 0;                            // on tasks_ + mg_tasks_

  // Migration state (see MigrationContext), that of the one migration in
  // progress: guarded by cgroup_mutex. The taskset list (mg_node_) is also
  // changed only under css_set_lock, with the task lists it indexes.
  ListHook kept_node_;  // on Engine::kept_csets_ while kept (guarded by css_set_lock)

  ListHook mg_src_preload_node_;  // on the context's source list
  ListHook mg_dst_preload_node_;  // on the context's destination list
  ListHook mg_node_;              // on the taskset's css_set list
  Cgroup* mg_src_cgrp_ = nullptr;
  Cgroup* mg_dst_cgrp_ = nullptr;  // null with mg_dst_hierarchy_ set: leave it
  HierarchyId mg_dst_hierarchy_ = -1;
  CssSet* mg_dst_cset_ = nullptr;
  bool mg_made_ = false;  // a destination this migration made (not found)
};

// The hash table of css_sets, keyed by (cgroups, csses). Grows by doubling, so
// lookups stay O(1) however many css_sets exist. Not thread-safe: guarded by
// the engine's css_set lock.
class CssSetTable {
 public:
  CssSetTable();
  // The key of a css_set: its cgroup in each hierarchy slot (null for an
  // empty slot) and its css of each controller.
  struct Key {
    const Cgroup* const* cgroups;  // indexed by HierarchyId
    int nr_cgroups;
    Css* const* csses;  // indexed by ControllerId
    size_t nr_csses;
  };
  static size_t hash(const Key& key);
  // The css_set with this key, or null.
  CssSet* find(const Key& key, size_t hash) const;
  // Inserts; never fails. Growing the bucket array is an optimisation: if
  // its allocation fails the table keeps its buckets and chains grow longer.
  void insert(CssSet* cset);
  void erase(CssSet* cset);
  size_t size() const { return size_; }
  // Calls fn(CssSet&) for every css_set; fn must not insert or erase.
  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (CssSet* b : buckets_)
      for (CssSet* c = b; c; c = c->hash_next_) fn(*c);
  }

 private:
  static bool matches(const CssSet& cset, const Key& key);
  void grow();
  std::vector<CssSet*> buckets_;
  size_t size_ = 0;
};

}  // namespace cgcore
