// The migration transaction: moving tasks between cgroups all or nothing,
// with every controller's consent, allocating nothing per task.
//
// One MigrationContext moves a set of tasks to one destination cgroup per
// hierarchy (a migration normally has one destination; re-homing css_sets
// after a controller rebind gives each source its own), all or nothing:
//
//   1. add_src(cset, dst)  Pin each source css_set and remember where its
//                          tasks go. No allocation.
//   2. prepare_dst_locked() / prepare_dst()
//                          Find or create the destination css_set of every
//                          source. The only step that allocates; on failure
//                          nothing has changed. The _locked form works in the
//                          caller's css_set lock hold and leaves to
//                          prepare_dst() only what must be allocated.
//   3. add_task(task)      Put each target on its css_set's mg_tasks list (no
//      execute()           allocation), then run the controllers' prepare
//                          hooks (which may veto: everything is undone), then
//                          the commit point, after which nothing can fail.
//   4. finish()            Unpin every css_set (the destructor does it).
//                          execute() does it in its commit hold unless a
//                          controller's post_attach walks the tasks, so a
//                          move takes the css_set lock exclusive twice: once
//                          to prepare (steps 1-3a), once to commit.
//
// The lists change meaning at the commit point: before it, the taskset's
// css_set list holds the *source* css_sets and each target sits on its
// source's mg_tasks; after it, the list holds the *destination* css_sets and
// each target sits on its destination's mg_tasks until the post hooks ran;
// finish() splices it onto the destination's tasks.
//
// Locking: the context lives entirely under the engine's cgroup mutex. The
// caller holds the threadgroup locks of every target (exclusive), or the
// global threadgroup lock exclusive, from add_task until execute() returns, so
// that no target forks, exits or changes css_set meanwhile.
#pragma once

#include <cstddef>

#include "core/css_set.h"
#include "core/result.h"
#include "core/types.h"

namespace cgcore {

class Engine;
class MigrationContext;

// What the controllers' migration hooks see.
class TaskSet {
 public:
  // Calls fn(Task& task, CssSet* src, CssSet& dst) for every task of the
  // transaction. `src` is null after the commit point (attach, post_attach):
  // a controller that needs a task's source records it in can_attach.
  template <typename Fn>
  void for_each(Fn&& fn) const {
    if constexpr (kLockDebug)
      if (released_) lock_debug::fail("taskset walked after its transaction ended", this);
    for (CssSet& cs : csets_) {
      for (Task& t : cs.mg_tasks_) {
        if (committed_) {
          fn(t, static_cast<CssSet*>(nullptr), cs);
        } else {
          fn(t, &cs, *cs.mg_dst_cset_);
        }
      }
    }
  }
  // Calls fn(CssSet& src, CssSet& dst) once per source css_set with targets
  // (before the commit point only).
  template <typename Fn>
  void for_each_cset_pair(Fn&& fn) const {
    if constexpr (kLockDebug)
      if (released_) lock_debug::fail("taskset walked after its transaction ended", this);
    if (committed_) return;
    for (CssSet& cs : csets_)
      if (!cs.mg_tasks_.empty()) fn(cs, *cs.mg_dst_cset_);
  }
  size_t nr_tasks() const { return nr_tasks_; }
  bool committed() const { return committed_; }
  // The engine the transaction runs in.
  Engine& engine() const { return *engine_; }

 private:
  friend class MigrationContext;
  explicit TaskSet(Engine* engine) : engine_(engine) {}

  Engine* engine_;
  IntrusiveList<CssSet, &CssSet::mg_node_> csets_;
  size_t nr_tasks_ = 0;
  bool committed_ = false;
  // The transaction ended in the commit hold (no post hook walks the
  // tasks): the lists are gone and post_attach must not walk them.
  bool released_ = false;
};

class MigrationContext {
 public:
  // Locking: cgroup mutex held.
  explicit MigrationContext(Engine& engine);
  // Runs finish().
  ~MigrationContext();
  MigrationContext(const MigrationContext&) = delete;
  MigrationContext& operator=(const MigrationContext&) = delete;

  // Step 1: tasks of `src` are about to move to `dst` (in dst's hierarchy),
  // or, with dst null, out of hierarchy `h` altogether (it is being
  // destroyed). Pins `src`. A css_set already added is not added twice; one
  // already in the destination is ignored.
  // Locking: cgroup mutex and css_set lock (exclusive) held.
  void add_src(CssSet& src, Cgroup* dst, HierarchyId h);

  // Step 2: finds or creates the destination css_set of every source, pins
  // it and links it to the source (Engine::find_css_set's lock holds only:
  // linking needs none). A source that is its own destination stays without
  // one and its tasks are not targets. Fails with ENOMEM (allocation,
  // including injected failures); nothing visible has changed then, and
  // finish() drops what was pinned.
  // Locking: cgroup mutex held; takes the css_set lock.
  Status prepare_dst();
  // Step 2 within the caller's hold: finds, revives or makes from the cache
  // every destination that needs no allocation. True if none is missing
  // (then prepare_dst() is not needed), false if prepare_dst() must
  // allocate the rest; ENOMEM as prepare_dst.
  // Locking: cgroup mutex and css_set lock (exclusive) held.
  Result<bool> prepare_dst_locked();

  // Step 3a: makes `task` a target. Skips exiting tasks and tasks whose
  // css_set was not added as a source (already in the destination). REQUIRES
  // prepare_dst() succeeded. Locking: cgroup mutex, the task's threadgroup
  // lock (or the global one) exclusive, css_set lock exclusive.
  void add_task(Task& task);

  // Step 3a, for the ALL mode: makes every task of every source a target.
  // Locking: as add_task, with the global threadgroup lock exclusive.
  void add_all_tasks();

  // Re-homing (controller rebind, subtree_control changes) moves exiting
  // tasks as well: their css_sets must not keep a hierarchy or css that is
  // going away. Call before add_task.
  void include_exiting_tasks() { include_exiting_ = true; }

  // Step 3b: runs the controllers' hooks and commits. On a veto every
  // controller that prepared is cancelled in reverse order, every target is
  // back on its source's list, and the veto's Status is returned.
  // Locking: cgroup mutex and the targets' threadgroup locks held; takes the
  // css_set lock.
  Status execute();

  // Step 4: unpins everything; idempotent. A destination this transaction
  // made is kept only if tasks moved into it (so a failed transaction leaves
  // no css_set behind); with include_exiting_tasks() no source is kept.
  // Locking: cgroup mutex held; takes the css_set lock if anything is left.
  void finish();

  // The number of targets added so far.
  size_t nr_tasks() const { return tset_.nr_tasks_; }

 private:
  // The key of the css_set the tasks of `src` move to (from src's mg_dst_*
  // fields), in the engine's scratch buffers (sized by prepare_dst).
  void dst_key(const CssSet& src, CssSetTable::Key* key);
  // Records `dst` (referenced for this context by find_css_set) as src's
  // destination; if it is src itself, src keeps no destination.
  void link_dst(CssSet& src, CssSet& dst);
  // Puts every target back on its source's tasks list, and finishes.
  void restore_targets();
  // finish() within the caller's css_set lock hold.
  void finish_locked();
  // Sizes the engine's scratch key buffers. ENOMEM.
  Status size_scratch();
  // Takes / drops each distinct target address space's mmap_lock shared
  // (for controllers that need_stable_mm()).
  void lock_mms();
  void unlock_mms();

  Engine& engine_;
  IntrusiveList<CssSet, &CssSet::mg_src_preload_node_> preloaded_src_;
  IntrusiveList<CssSet, &CssSet::mg_dst_preload_node_> preloaded_dst_;
  TaskSet tset_;
  bool prepared_ = false;
  bool include_exiting_ = false;
  Mm* locked_mms_ = nullptr;  // chained through Mm::mg_next_
};

}  // namespace cgcore
