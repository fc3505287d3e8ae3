// CssSet: the interned tuple "one cgroup per hierarchy, and so one css per
// controller" shared by every task with those memberships (the kernel's
// css_set). Tasks point at their css_set; the css_set lists its tasks.
//
// Invariants (checked by InvariantChecker):
//   * Two css_sets in the table never have the same cgroups and csses.
//   * refs == live tasks on tasks + mg_tasks + migration pins (+1 for the
//     engine's root css_set); at zero the css_set is unhashed and freed.
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
#include "core/intrusive_list.h"
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

  CssSet(int nr_links, size_t nr_controllers);
  ~CssSet() = default;

  std::atomic<int64_t> refs_{0};

  // Immutable key (see Thread-safety).
  std::unique_ptr<CsetLink[]> links_;  // indexed by HierarchyId
  int nr_links_;
  std::vector<Css*> csses_;  // indexed by ControllerId; each holds a reference
  size_t hash_ = 0;

  // Guarded by css_set_lock.
  CssSet* hash_next_ = nullptr;
  IntrusiveList<Task, &Task::cset_node> tasks_;
  IntrusiveList<Task, &Task::cset_node> mg_tasks_;  // targets of a migration
  int64_t nr_tasks_ = 0;                            // on tasks_ + mg_tasks_

  // Migration state (see MigrationContext). Guarded by cgroup_mutex, lists
  // changed under css_set_lock.
  ListHook mg_src_preload_node_;  // on the context's source list
  ListHook mg_dst_preload_node_;  // on the context's destination list
  ListHook mg_node_;              // on the taskset's css_set list
  Cgroup* mg_src_cgrp_ = nullptr;
  Cgroup* mg_dst_cgrp_ = nullptr;  // null with mg_dst_hierarchy_ set: leave it
  HierarchyId mg_dst_hierarchy_ = -1;
  CssSet* mg_dst_cset_ = nullptr;
};

// The hash table of css_sets, keyed by (cgroups, csses). Grows by doubling, so
// lookups stay O(1) however many css_sets exist. Not thread-safe: guarded by
// the engine's css_set lock.
class CssSetTable {
 public:
  CssSetTable();
  // The key a css_set would have; used to look up before creating one.
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
