// Engine: one instance of the cgroup core — hierarchies, cgroups, controllers,
// css_sets, tasks — and the operations on them.
//
// Thread-safety: every public method is thread-safe and takes the locks it
// needs (see core/locking.h for what each protects and their order). Methods
// named *_locked expect the caller to hold the cgroup mutex (cgroup_mutex()),
// as the file layer does while it runs a control file's handler.
//
// Ownership: the engine owns its controllers, hierarchies, cgroups, css_sets
// and tasks. Hierarchy& and Cgroup& handed out stay valid while the hierarchy
// exists / while a CgroupPtr to the cgroup is held.
//
// Errors are returned as errno Statuses, as the kernel's cgroup code returns
// them; an operation that fails changes nothing.
#pragma once

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/cgroup.h"
#include "core/controller.h"
#include "core/css.h"
#include "core/css_set.h"
#include "core/function_ref.h"
#include "core/hierarchy.h"
#include "core/locking.h"
#include "core/result.h"
#include "core/slab.h"
#include "core/task.h"
#include "core/task_table.h"
#include "core/types.h"

namespace cgcore {

class MigrationContext;
class InvariantChecker;

// Told about state changes the file layer turns into notifications.
class EngineObserver {
 public:
  virtual ~EngineObserver() = default;
  // `cgroup.populated()` changed. Called with the css_set lock held: must not
  // call into the engine.
  virtual void populated_changed(Cgroup& /*cgroup*/, bool /*populated*/) {}
  // The effective freeze state of `cgroup` changed (cgroup.freeze of it or
  // an ancestor). Called with the cgroup mutex held: must not call into the
  // engine's locking methods.
  virtual void frozen_changed(Cgroup& /*cgroup*/, bool /*frozen*/) {}
  // A controller's control file of `cgroup` changed without a state change
  // the callbacks above report (an event counter: pids.events,
  // memory.events), where the kernel notifies its watchers. Called with any
  // engine locks held: must only record.
  virtual void file_changed(Cgroup& /*cgroup*/, std::string_view /*file*/) {}
};

// What a move check sees of the process (migrate_process_locked: its leader, or the
// named thread if the leader is gone) or thread (migrate_thread_locked) about to move.
struct MoveTarget {
  Pid tid;             // the named thread / the process's leader
  Pid tgid;
  const Creds& creds;  // the process's credentials
  Cgroup& src;         // its current cgroup in dst's hierarchy
};
// Decides whether a move may happen: Ok to go on, or the refusal to return.
using MoveCheck = FunctionRef<Status(const MoveTarget&)>;

struct SpawnOptions {
  std::optional<Pid> pid;  // the id to use (host mode); default: next free
  Creds creds;
};

struct ForkOptions {
  std::optional<Pid> pid;        // the child's id; default: next free
  bool share_mm = false;         // CLONE_VM / vfork: share the parent's mm
  std::optional<Creds> creds;    // default: the parent process's
};

class Engine {
 public:
  Engine();
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // ---------------------------------------------------------------- controllers

  // Registers a controller, bound to the default hierarchy, and allocates
  // its root css. Fails with EBUSY once any hierarchy has a non-root cgroup,
  // EEXIST for a duplicate name, EINVAL for a bad name, or the controller's
  // css_alloc/css_online error.
  Result<ControllerId> register_controller(std::unique_ptr<Controller> controller)
      CG_EXCLUDES(cgroup_mutex_);
  // Number of registered controllers. Stable once a non-root cgroup exists.
  size_t nr_controllers() const { return nr_controllers_.load(std::memory_order_acquire); }
  Controller& controller(ControllerId id) const { return *controllers_[id]; }
  // The controller of that name, or null.
  Controller* find_controller(std::string_view name) const;
  // The controller's root css (in whichever hierarchy it is bound to).
  Css& root_css(ControllerId id) const { return *root_csses_[id]; }
  // Reserves one of Mm::kSlots for a controller; ENOSPC when none is left.
  // The _locked form may be called from css_alloc of the root css (which
  // runs at registration, cgroup mutex held).
  Result<int> reserve_mm_slot() CG_EXCLUDES(cgroup_mutex_);
  Result<int> reserve_mm_slot_locked() CG_REQUIRES(cgroup_mutex_);

  // ---------------------------------------------------------------- hierarchies

  Hierarchy& default_hierarchy() const { return *hierarchies_[kDefaultHierarchy]; }
  // Mounts a v1 hierarchy with these controllers and optional name, as the
  // kernel's cgroup v1 mount does: the same controllers (and name, if given)
  // return the existing hierarchy; a controller bound to another v1
  // hierarchy, or with cgroups of its own in the default hierarchy, gives
  // EBUSY; an unknown controller or bad name EINVAL; no controllers and no
  // name EINVAL. Binding re-homes every task's css_set through one migration
  // (ENOMEM leaves nothing changed).
  Result<Hierarchy*> mount(const std::vector<std::string>& controllers, std::string_view name)
      CG_EXCLUDES(cgroup_mutex_);
  // Destroys a v1 hierarchy, giving its controllers back to the default
  // hierarchy. EBUSY while it has child cgroups; EINVAL for the default one.
  Status destroy_hierarchy(Hierarchy& hierarchy) CG_EXCLUDES(cgroup_mutex_);
  // Every hierarchy, the default one first.
  std::vector<Hierarchy*> hierarchies() const CG_EXCLUDES(cgroup_mutex_);
  std::vector<Hierarchy*> hierarchies_locked() const CG_REQUIRES(cgroup_mutex_);
  // The hierarchy a controller is bound to. Locking: cgroup mutex held.
  Hierarchy& hierarchy_of_locked(ControllerId id) const CG_REQUIRES(cgroup_mutex_);

  // ---------------------------------------------------------------- cgroups

  // Creates a child cgroup. EINVAL for "", ".", "..", or a name with '/' or
  // '\n' (like the kernel, no length limit of its own); EEXIST if taken; ENOENT if the parent
  // was removed; EAGAIN past an ancestor's max.depth / max.descendants; or a
  // controller's css_alloc/css_online error (then no css survives and the
  // cgroup never appears).
  Result<CgroupPtr> mkdir(Cgroup& parent, std::string_view name) CG_EXCLUDES(cgroup_mutex_);
  Result<CgroupPtr> mkdir_locked(Cgroup& parent, std::string_view name) CG_REQUIRES(cgroup_mutex_);
  // Removes a cgroup. EBUSY while it holds tasks (exiting ones included) or
  // children, or for a root; ENOENT if already removed.
  Status rmdir(Cgroup& cgroup) CG_EXCLUDES(cgroup_mutex_);
  Status rmdir_locked(Cgroup& cgroup) CG_REQUIRES(cgroup_mutex_);
  // Renames within the same parent. EEXIST if taken, the mkdir name errors,
  // EBUSY for a root, ENOENT if removed.
  Status rename(Cgroup& cgroup, std::string_view new_name) CG_EXCLUDES(cgroup_mutex_);
  Status rename_locked(Cgroup& cgroup, std::string_view new_name) CG_REQUIRES(cgroup_mutex_);
  // The child of that name, or null.
  CgroupPtr find_child(Cgroup& parent, std::string_view name) CG_EXCLUDES(cgroup_mutex_);
  // The live cgroup with this id (Cgroup::id), or null (removed, never
  // existed, or in a destroyed hierarchy).
  Cgroup* find_cgroup_locked(uint64_t id) const CG_REQUIRES(cgroup_mutex_);
  // The next cgroup made gets id `next` at least (ids are never reused, so
  // this only moves forward). A restored state (journal/) makes its cgroups
  // again under the ids they had, so that inode numbers derived from them
  // stay valid for clients across a daemon restart.
  void advance_cgroup_ids_locked(uint64_t next) CG_REQUIRES(cgroup_mutex_) {
    if (next > next_cgroup_id_) next_cgroup_id_ = next;
  }
  // Limits on descendants below `cgroup` (cgroup.max.depth /
  // cgroup.max.descendants); INT_MAX is "max". EINVAL if negative.
  Status set_max_depth_locked(Cgroup& cgroup, int depth) CG_REQUIRES(cgroup_mutex_);
  Status set_max_descendants_locked(Cgroup& cgroup, int n) CG_REQUIRES(cgroup_mutex_);
  // Changes a default-hierarchy cgroup's cgroup.subtree_control: enables
  // `enable` and disables `disable` for its children, creating / offlining
  // the children's csses and re-homing every task below through one
  // migration — all or nothing. EINVAL outside the default hierarchy or if a
  // controller is in both sets; ENOENT enabling a controller the cgroup does
  // not have (not in its parent's subtree_control, or bound to v1); EBUSY
  // disabling one a child still enables, or enabling on a non-root cgroup
  // that has tasks of its own (no internal processes); ENODEV if removed;
  // a controller's css_alloc / css_online / migration veto error; ENOMEM.
  Status set_subtree_control(Cgroup& cgroup, const ControllerSet& enable,
                             const ControllerSet& disable) CG_EXCLUDES(cgroup_mutex_);
  Status set_subtree_control_locked(Cgroup& cgroup, const ControllerSet& enable,
                                    const ControllerSet& disable) CG_REQUIRES(cgroup_mutex_);
  // The controllers available on a default-hierarchy cgroup
  // (cgroup.controllers): the root's are every controller bound there; a
  // threaded cgroup's only the threaded ones its parent enables.
  ControllerSet available_controllers_locked(const Cgroup& cgroup) const
      CG_REQUIRES(cgroup_mutex_);

  // ---- cgroup v2 threaded mode (core/threaded.cc), the kernel's rules.
  // The cgroup's threaded domain: itself unless it is threaded.
  Cgroup& threaded_domain_locked(const Cgroup& cgroup) const CG_REQUIRES(cgroup_mutex_);
  bool is_threaded_locked(const Cgroup& cgroup) const CG_REQUIRES(cgroup_mutex_);
  // A domain whose subtree may hold resources: no threaded ancestor, no
  // non-root thread root above it.
  bool is_valid_domain_locked(const Cgroup& cgroup) const CG_REQUIRES(cgroup_mutex_);
  // cgroup.type: "domain", "domain threaded", "domain invalid", "threaded".
  const char* cgroup_type_locked(const Cgroup& cgroup) const CG_REQUIRES(cgroup_mutex_);
  // Makes a default-hierarchy cgroup threaded (one-way; a no-op if it is).
  // EOPNOTSUPP if it or a descendant has tasks, if it enables domain
  // controllers, or if its parent's domain cannot host threads; EINVAL on a
  // v1 hierarchy.
  Status enable_threaded_locked(Cgroup& cgroup) CG_REQUIRES(cgroup_mutex_);

  // cgroup v2 freezer: sets cgroup.freeze of `cgroup`; the effective state
  // of it and its descendants follows (any ancestor frozen: frozen), and the
  // observer hears of every change. Virtual tasks freeze at once.
  void set_freeze_locked(Cgroup& cgroup, bool freeze) CG_REQUIRES(cgroup_mutex_);
  bool frozen_locked(const Cgroup& cgroup) const CG_REQUIRES(cgroup_mutex_);
  // Removed cgroups (descendants of `cgroup`) and offline csses of
  // controller `id` (of `cgroup` or below) that references keep alive: the
  // kernel's "dying" counts of cgroup.stat.
  int nr_dying_descendants_locked(const Cgroup& cgroup) const CG_REQUIRES(cgroup_mutex_);
  int nr_dying_csses_locked(const Cgroup& cgroup, ControllerId id) const
      CG_REQUIRES(cgroup_mutex_);

  // The css a controller applies to tasks of `cgroup`: its own, or (v2, where
  // the controller is not enabled) the nearest ancestor's. Null if the
  // controller is not bound to the cgroup's hierarchy.
  Css* effective_css_locked(const Cgroup& cgroup, ControllerId id) const
      CG_REQUIRES(cgroup_mutex_);

  // ---------------------------------------------------------------- tasks

  // Creates a process of one thread in the root cgroup of every hierarchy,
  // as if forked by the kernel before any cgroup existed (init, or a host
  // process found at start). EEXIST if the id is taken, EINVAL if it is not
  // positive, or a controller's can_fork error.
  Result<Pid> spawn(const SpawnOptions& opts);
  // Forks a new process (one thread) from thread `parent`; the child starts
  // in the parent's css_set. ESRCH if the parent does not exist or is
  // exiting; EEXIST / EINVAL for a bad requested id; a controller's can_fork
  // error (pids: EAGAIN).
  Result<Pid> fork(Pid parent, const ForkOptions& opts = {});
  // Creates a new thread in the process of thread `tid`, in `tid`'s css_set.
  // Errors as fork.
  Result<Pid> clone_thread(Pid tid, std::optional<Pid> new_tid = std::nullopt);
  // Marks a thread as exiting (it stays in its cgroup until exit_thread;
  // migration skips it). ESRCH if there is no such live thread.
  Status mark_exiting(Pid tid);
  // A thread exits; the process ends with its last thread. ESRCH if none.
  Status exit_thread(Pid tid);
  // Every thread of the process exits. ESRCH if none.
  Status exit_process(Pid tgid);
  // Thread `tid` execs: the other threads of its process exit, it takes the
  // process id (as Linux's de_thread does), and the process gets a new, empty
  // address space. ESRCH if none.
  Status exec(Pid tid);
  // Gives task `from` — a thread, or a single-threaded process's leader —
  // the id `to`: the backend created it with a provisional id (types.h) and
  // has learnt the real one. Cgroups, charges and everything else stay.
  // EINVAL for an id out of range or a leader with other threads; ESRCH if
  // there is no such live task; EEXIST if `to` is taken.
  // Locking: takes the cgroup mutex (to take the process's lock exclusive),
  // then the css_set and task-table locks.
  Status change_task_id(Pid from, Pid to) CG_EXCLUDES(cgroup_mutex_);
  // Credentials of a process (ESRCH if none). set_creds takes the process's
  // threadgroup lock, so it waits for a move check and its move to finish.
  Status set_creds(Pid tgid, const Creds& creds);
  Result<Creds> creds(Pid tid) const;
  // The process id of thread `tid` (ESRCH if none).
  Result<Pid> tgid_of(Pid tid) const;
  // The live threads of the process of `tid`, leader first if alive.
  Result<std::vector<Pid>> threads_of(Pid tid) const;
  size_t nr_tasks() const { return nr_live_tasks_.load(std::memory_order_relaxed); }
  // Ids handed out are below pid_max (default 4194304, Linux's
  // PID_MAX_LIMIT) and wrap. EINVAL outside 2 .. 2^30.
  Status set_pid_max(Pid pid_max);
  // The address space of the process of `tid`, referenced (ESRCH if none).
  Result<MmRef> mm_of(Pid tid) const;

  // ---------------------------------------------------------------- migration

  // Moves one thread to `dst` (in dst's hierarchy). One transaction: either
  // it moved and every controller committed, or nothing changed. ESRCH for
  // no such thread; ENODEV if dst was removed; a controller's veto errno;
  // ENOMEM. A thread already in dst, or exiting, is left as it is (success).
  Status migrate_thread(Pid tid, Cgroup& dst) CG_EXCLUDES(cgroup_mutex_);
  // Moves every live thread of the process of `pid` to dst, as one
  // transaction. Errors as migrate_thread.
  Status migrate_process(Pid pid, Cgroup& dst) CG_EXCLUDES(cgroup_mutex_);
  // Moves thread `tid` / every thread of the process of `pid` to `dst` as one
  // transaction, after `check` accepted the target. The check runs with the
  // cgroup mutex and the target's threadgroup lock held (nothing can move,
  // rename or fork the target meanwhile, nor change its credentials); it may
  // call *_locked engine methods and read cgroup metadata, and must not take
  // engine locks. A refusal is returned as is and changes nothing. Other
  // errors as migrate_thread / migrate_process; ENODEV for a removed dst comes
  // before the check. A thread that has exited (or a process with no live
  // thread left) moves nothing: Ok, without asking the check.
  Status migrate_thread_locked(Pid tid, Cgroup& dst, MoveCheck check) CG_REQUIRES(cgroup_mutex_);
  Status migrate_process_locked(Pid pid, Cgroup& dst, MoveCheck check)
      CG_REQUIRES(cgroup_mutex_);
  // Moves all these processes as one transaction: all or nothing.
  Status migrate_processes(std::span<const Pid> pids, Cgroup& dst) CG_EXCLUDES(cgroup_mutex_);
  // Moves every task of `from` (not of its descendants) to `to`, as one
  // transaction (the kernel's cgroup_transfer_tasks, made all-or-nothing).
  // EINVAL if the two are in different hierarchies; ENODEV if removed.
  Status transfer(Cgroup& from, Cgroup& to) CG_EXCLUDES(cgroup_mutex_);
  Status transfer_locked(Cgroup& from, Cgroup& to) CG_REQUIRES(cgroup_mutex_);

  // ---------------------------------------------------------------- queries

  // The cgroup of thread `tid` in hierarchy `h` (ESRCH if none).
  Result<CgroupPtr> task_cgroup(Pid tid, const Hierarchy& h) const;
  // The thread ids / process ids of the tasks in `cgroup` (not descendants),
  // unsorted, process ids repeated once per thread.
  std::vector<Pid> cgroup_tids(const Cgroup& cgroup) const;
  std::vector<Pid> cgroup_tgids(const Cgroup& cgroup) const;
  // The same, for a caller that already holds the css_set lock (a
  // controller's check_invariants hook); asserted at run time.
  std::vector<Pid> cgroup_tids_locked(const Cgroup& cgroup) const;
  bool populated(const Cgroup& cgroup) const;
  // css_sets in the table, kept ones (no tasks, no references) included.
  size_t nr_css_sets() const;
  // Of those, the kept ones.
  size_t nr_kept_css_sets() const;

  // Validates every structural invariant (see core/invariants.h); returns
  // EIO with a description of the first violation.
  Status check_invariants() const;

  // Observers (not owned) hear of state changes; add and remove them before
  // or after concurrent use, not during it (the list is read without a lock).
  void add_observer(EngineObserver* observer) { observers_.push_back(observer); }
  // Tells the observers that a control file changed (EngineObserver::
  // file_changed); for controllers, with whatever locks they hold.
  void notify_file_changed(Cgroup& cgroup, std::string_view file) {
    for (EngineObserver* o : observers_) o->file_changed(cgroup, file);
  }
  void remove_observer(EngineObserver* observer) {
    std::erase(observers_, observer);
  }

  // The cgroup mutex, for callers of *_locked methods.
  Mutex& cgroup_mutex() const CG_RETURN_CAPABILITY(cgroup_mutex_) { return cgroup_mutex_; }

  // Test hook: the nth css_set allocation from now fails with ENOMEM
  // (1 = the next one); 0 disables.
  void TEST_fail_cset_alloc(int nth) { fail_cset_alloc_.store(nth); }
  // Test hook (debug builds; 0 otherwise): exclusive holds of the css_set
  // lock so far. Read while no other thread uses the engine.
  uint64_t TEST_css_set_lock_holds() const { return css_set_lock_.debug_exclusive_holds(); }
  // Live object counts, for leak checks.
  struct ObjectCounts {
    int64_t css_sets, csses, cgroups, tasks, processes, mms;
  };
  ObjectCounts TEST_object_counts() const;

 private:
  friend class MigrationContext;
  friend class InvariantChecker;
  friend class Css;
  friend class Cgroup;
  friend class Task;
  friend class Process;
  friend class Hierarchy;
  friend class Mm;
  friend class MmRef;

  // A task looked up by id, pinned (reference held) while in scope.
  class TaskRef {
   public:
    TaskRef() = default;
    explicit TaskRef(Task* t) : t_(t) {}  // adopts a reference
    TaskRef(TaskRef&& o) noexcept : t_(o.t_) { o.t_ = nullptr; }
    TaskRef& operator=(TaskRef&& o) noexcept {
      std::swap(t_, o.t_);
      return *this;
    }
    ~TaskRef() {
      if (t_) t_->put();
    }
    Task* get() const { return t_; }
    Task* operator->() const { return t_; }
    explicit operator bool() const { return t_ != nullptr; }

   private:
    Task* t_ = nullptr;
  };
  // The task with this id (zombie leaders included), or an empty ref.
  TaskRef lookup_task(Pid tid) const CG_EXCLUDES(task_table_lock_);

  // Asserts (debug builds) that the caller holds what InvariantChecker::check
  // takes: every engine lock, the global threadgroup lock exclusive.
  void assert_all_held() const CG_ASSERT_CAPABILITY(cgroup_mutex_)
      CG_ASSERT_CAPABILITY(threadgroup_rwsem_) CG_ASSERT_SHARED_CAPABILITY(css_set_lock_)
          CG_ASSERT_SHARED_CAPABILITY(task_table_lock_) {
    cgroup_mutex_.AssertHeld();
    threadgroup_rwsem_.AssertHeld();
    css_set_lock_.AssertReaderHeld();
    task_table_lock_.AssertReaderHeld();
  }

  // -- css_sets (css_set.cc)
  // The css_set with this key (every hierarchy slot and controller), found in
  // the table (a kept one is revived) or made (from the cache of freed
  // css_sets if it holds one of the right shape, else the heap), referenced
  // for the caller. One css_set lock hold when it exists or comes from the
  // cache, two when it is allocated. ENOMEM (nothing changed then); an
  // allocation failure first reclaims the kept css_sets and tries again.
  // Locking: cgroup mutex held (its holder is the only creator of css_sets);
  // takes the css_set lock.
  Result<CssSet*> find_css_set(const CssSetTable::Key& key)
      CG_REQUIRES(cgroup_mutex_) CG_EXCLUDES(css_set_lock_);
  // The part of find_css_set that needs no allocation: the css_set found (or
  // revived, or made from the cache), referenced; null if one must be
  // allocated. ENOMEM only for an injected failure. `hash` is
  // CssSetTable::hash(key). Locking: cgroup mutex and css_set lock held.
  Result<CssSet*> find_css_set_locked(const CssSetTable::Key& key, size_t hash)
      CG_REQUIRES(cgroup_mutex_, css_set_lock_);
  // Takes a reference on a css_set reached through the table or a cgroup's
  // links, reviving it if it was kept.
  void pin_cset_locked(CssSet& cset) CG_REQUIRES(css_set_lock_);
  // Gives `cset` (empty, nr_links_ == key.nr_cgroups, room for the key's
  // csses) the key, its references on cgroups and csses, and a table entry.
  // Allocates nothing but (optionally) a larger bucket array.
  void install_cset_locked(CssSet& cset, const CssSetTable::Key& key, size_t hash)
      CG_REQUIRES(css_set_lock_);
  // Drops a reference. On the last one the css_set is kept (see css_set.h)
  // if `keep` and it links no dead cgroup and holds no offline css, else
  // freed (unhashed, its references dropped, its memory cached or released).
  void put_cset_locked(CssSet* cset, bool keep = true) CG_REQUIRES(css_set_lock_);
  // Whether an unreferenced css_set may be kept: its cgroups alive, its
  // csses online.
  bool keepable_locked(const CssSet& cset) const CG_REQUIRES(css_set_lock_);
  // Frees a css_set without references (kept or just released).
  void destroy_cset_locked(CssSet* cset) CG_REQUIRES(css_set_lock_);
  // A css_set made in cset_slab_, with no cgroups or csses yet;
  // std::bad_alloc when memory runs out. delete_cset destroys one and gives
  // its slot back. Locking: none needed (the slab has its own lock).
  CssSet* new_cset(int nr_links);
  void delete_cset(CssSet* cset);
  // Frees every kept css_set / those linking `cgroup`: before effective
  // csses change, when a cgroup is removed, and under memory pressure.
  void reclaim_kept_csets_locked() CG_REQUIRES(css_set_lock_);
  void reclaim_kept_csets_locked(const Cgroup& cgroup) CG_REQUIRES(css_set_lock_);
  // Links / unlinks a task to a css_set's task list, keeping nr_tasks, the
  // css_set reference and populated counts right.
  void link_task_locked(Task& task, CssSet& cset) CG_REQUIRES(css_set_lock_);
  void unlink_task_locked(Task& task) CG_REQUIRES(css_set_lock_);
  // nr_tasks of `cset` went 0 -> n (true) or n -> 0 (false).
  void cset_populated_changed_locked(CssSet& cset, bool populated) CG_REQUIRES(css_set_lock_);
  void cgroup_populated_step_locked(Cgroup& cgroup, bool was, bool now)
      CG_REQUIRES(css_set_lock_);
  // Cgroup::populated() without its lock assertion, for the walks above
  // (whose callers hold the css_set lock exclusive throughout).
  static bool populated_now(const Cgroup& cg) {
    return cg.nr_populated_csets_ + cg.nr_populated_domain_children_ +
               cg.nr_populated_threaded_children_ > 0;
  }
  bool take_injected_cset_failure();

  // -- hierarchy changes (engine.cc)
  // Re-homes every css_set for hierarchy `h` gaining root `root` (or, with
  // root null, losing it) through one migration. Locking: cgroup mutex and
  // the global threadgroup lock held exclusive.
  Status rehome_all_csets_locked(HierarchyId h, Cgroup* root)
      CG_REQUIRES(cgroup_mutex_, threadgroup_rwsem_);
  void move_root_css_locked(ControllerId id, Cgroup& to) CG_REQUIRES(cgroup_mutex_);
  Cgroup* new_cgroup(Hierarchy* h, Cgroup* parent, std::string name);
  // Takes a hierarchy out of its slot: its root dies and drops the base
  // reference (removed cgroups may keep it alive a while), and the object
  // is kept until the engine goes, since dead cgroups point at it.
  void retire_hierarchy_locked(HierarchyId h) CG_REQUIRES(cgroup_mutex_);
  // The one way a css is made: creates the csses of the controllers `ids`
  // for `cgroup`. Allocates each (css_alloc, given the parent cgroup's
  // effective css; none for a root css) and links it (references on the
  // parent css and, below a root, on the cgroup), then onlines them, in id
  // order. All or nothing: on a failure the csses made so far are offlined
  // (those onlined) and freed, last first, and the error is returned. out[i]
  // receives the css of the ith controller of `ids` (REQUIRES: out has room
  // for them all). The csses are not stored in cgroup.csses_: the caller
  // publishes them. Locking: cgroup mutex held.
  Status create_csses_locked(Cgroup& cgroup, const ControllerSet& ids, std::span<Css*> out)
      CG_REQUIRES(cgroup_mutex_);
  // Undoes create_csses_locked for csses never published: offlines the
  // online ones and drops their base references, last first.
  void discard_csses_locked(std::span<Css* const> csses) CG_REQUIRES(cgroup_mutex_);
  // Offlines a css and drops its base reference; with reclaim_kept, frees
  // the kept css_sets holding it (takes the css_set lock).
  void kill_css_locked(Css* css, bool reclaim_kept = true) CG_REQUIRES(cgroup_mutex_);
  void free_cgroup(Cgroup* cgroup);
  void free_css(Css* css);
  void free_task(Task* task);
  void free_process(Process* process);

  // -- tasks (task_ops.cc)
  // Creates a process of one thread in `cset` (spawn, fork) / a thread of
  // `proc` in `cset` (clone_thread), and runs the can_fork / fork hooks.
  // parent_mm: the forking process's address space (null for spawn); shared
  // when share_mm, else its size is copied. Locking: the global threadgroup
  // lock held shared (and, forking, the parent process's); for a thread,
  // that process's threadgroup lock held shared.
  Result<Pid> create_process_locked(CssSet& cset, const Creds& creds, Mm* parent_mm,
                                    bool share_mm, std::optional<Pid> id)
      CG_REQUIRES_SHARED(threadgroup_rwsem_);
  Result<Pid> create_thread_locked(CssSet& cset, Process& proc, std::optional<Pid> id)
      CG_REQUIRES_SHARED(threadgroup_rwsem_, proc.threadgroup_lock_);
  // The objects of a new task (and, join null, of its process and address
  // space), invisible to everyone; ENOMEM, or EINVAL for an id out of range.
  Result<Task*> new_task(Process* join, const Creds& creds, Mm* parent_mm, bool share_mm,
                         std::optional<Pid> id);
  // Publishes `task` (of `proc`) in the id table as an embryo, runs can_fork,
  // links it to `cset` and runs the fork hooks; the table then holds the
  // creation reference. On an error the task is out of the table again and
  // the caller drops that reference (after releasing a new process's lock,
  // which goes with the process).
  Result<Pid> publish_task_locked(Task& task, Process& proc, CssSet& cset, std::optional<Pid> id)
      CG_REQUIRES_SHARED(threadgroup_rwsem_, proc.threadgroup_lock_);
  // Unlinks a thread, runs exit/release hooks, ends the process with its last
  // thread; false (and nothing done) if the thread is dead already. If
  // `next_thread` is given, it receives another live thread of the process,
  // with a reference, or null. Locking: global and the process's
  // threadgroup lock held shared.
  bool exit_task_locked(Task& task, Task** next_thread = nullptr)
      CG_REQUIRES_SHARED(threadgroup_rwsem_);

  bool is_thread_root_locked(const Cgroup& cgroup) const CG_REQUIRES(cgroup_mutex_);
  bool can_be_thread_root_locked(const Cgroup& cgroup) const CG_REQUIRES(cgroup_mutex_);
  // The controllers that cannot follow threads (fixed once registration
  // closes; kept so that migrations need not rebuild it).
  const ControllerSet& domain_controllers() const { return domain_controllers_; }

  // -- migration helpers (migration.cc)
  // Whether tasks may move into dst: ENODEV if removed; v2: EOPNOTSUPP for
  // an invalid domain, EBUSY for a domain that enables controllers for its
  // children (no internal processes).
  Status check_dst_locked(const Cgroup& dst) const CG_REQUIRES(cgroup_mutex_);
  // Runs `check` on `target` (a live thread of `proc`; null: none is left,
  // nothing to ask) for a move to dst. ENODEV if dst was removed.
  Status check_move_locked(Process& proc, Task* target, const Cgroup& dst, MoveCheck check)
      CG_REQUIRES(cgroup_mutex_, proc.threadgroup_lock_);
  // Moves the targets named by for_each_target(fn) (which calls fn(Task&)
  // for each) to dst as one transaction. Locking: cgroup mutex held, and the
  // targets' threadgroup locks exclusive.
  template <typename ForEachTarget>
  Status migrate_targets_locked(Cgroup& dst, ForEachTarget&& for_each_target)
      CG_REQUIRES(cgroup_mutex_);
  void free_mm(Mm* mm);

  // Where tasks, processes and css_sets live: in the compact arena, for
  // their task lists (declared first: they outlive every object). A task
  // costs its 40 bytes here plus its 4-byte id-table slot.
  Slab<sizeof(Task), alignof(Task)> task_slab_;
  Slab<sizeof(Process), alignof(Process)> process_slab_;
  Slab<sizeof(CssSet), alignof(CssSet)> cset_slab_;

  // ---- Constant after construction
  std::vector<std::unique_ptr<Hierarchy>> hierarchies_;  // slots; guarded by cgroup_mutex_ except [0]
  std::vector<std::unique_ptr<Hierarchy>> retired_hierarchies_;  // guarded by cgroup_mutex_

  // ---- Locks (order in core/locking.h)
  // The two locks every fork and exit writes each have a cache line of their
  // own: sharing one, or sharing it with the read-mostly fields below (which
  // every fork reads), made two forking threads on two CPUs ~20% slower.
  mutable Mutex cgroup_mutex_;
  mutable ShardedRwSem threadgroup_rwsem_ CG_ACQUIRED_AFTER(cgroup_mutex_);
  alignas(kCacheLineBytes) mutable RwLock css_set_lock_ CG_ACQUIRED_AFTER(threadgroup_rwsem_);
  alignas(kCacheLineBytes) mutable RwLock task_table_lock_ CG_ACQUIRED_AFTER(css_set_lock_);

  // ---- Guarded by cgroup_mutex_ (growth also stops the world)
  alignas(kCacheLineBytes) std::vector<std::unique_ptr<Controller>> controllers_;
  std::vector<Css*> root_csses_;       // indexed by ControllerId; one reference each
  std::vector<HierarchyId> bound_to_;  // indexed by ControllerId
  std::atomic<size_t> nr_controllers_{0};
  ControllerSet domain_controllers_;  // changes with registration only
  int mm_slots_used_ CG_GUARDED_BY(cgroup_mutex_) = 0;
  // Scratch space of the one migration in progress, reused so that a
  // migration allocates nothing once warm.
  std::vector<const Cgroup*> scratch_cgroups_ CG_GUARDED_BY(cgroup_mutex_);
  std::vector<Css*> scratch_csses_ CG_GUARDED_BY(cgroup_mutex_);
  std::vector<ControllerId> scratch_ss_ids_ CG_GUARDED_BY(cgroup_mutex_);
  int nr_nonroot_cgroups_ CG_GUARDED_BY(cgroup_mutex_) = 0;
  uint64_t next_cgroup_id_ CG_GUARDED_BY(cgroup_mutex_) = 1;
  // Every live cgroup (roots included) by id.
  std::unordered_map<uint64_t, Cgroup*> cgroups_by_id_ CG_GUARDED_BY(cgroup_mutex_);

  // ---- Guarded by css_set_lock_
  CssSetTable cset_table_ CG_GUARDED_BY(css_set_lock_);
  // The css_set of all root cgroups (where spawned processes start); holds a
  // reference. Changes when hierarchies come and go.
  CssSet* root_cset_ CG_GUARDED_BY(css_set_lock_) = nullptr;
  // Freed css_sets kept for reuse (chained through hash_next_), so that a
  // task moving back and forth between two cgroups does not allocate.
  static constexpr int kCssSetCacheSize = 64;
  CssSet* cset_cache_ CG_GUARDED_BY(css_set_lock_) = nullptr;
  int nr_cached_csets_ CG_GUARDED_BY(css_set_lock_) = 0;
  // css_sets without references kept for their key (see css_set.h), oldest
  // first. The bound caps their memory (a few hundred bytes each) whatever
  // the pattern of moves.
  static constexpr int kMaxKeptCssSets = 1024;
  IntrusiveList<CssSet, &CssSet::kept_node_> kept_csets_ CG_GUARDED_BY(css_set_lock_);
  int nr_kept_csets_ CG_GUARDED_BY(css_set_lock_) = 0;

  // ---- Guarded by task_table_lock_ (on lines apart from the css_set lock's data)
  alignas(kCacheLineBytes) TaskTable task_table_ CG_GUARDED_BY(task_table_lock_);

  std::vector<EngineObserver*> observers_;

  // Removed cgroups and offline csses still referenced (cgroup.stat).
  mutable Mutex dying_mu_ CG_ACQUIRED_AFTER(task_table_lock_);
  std::unordered_set<const Cgroup*> dying_cgroups_ CG_GUARDED_BY(dying_mu_);
  std::unordered_set<const Css*> dying_csses_ CG_GUARDED_BY(dying_mu_);
  std::atomic<int> fail_cset_alloc_{0};
  // Counters every fork and exit bumps, kept off the lines above.
  alignas(kCacheLineBytes) std::atomic<size_t> nr_live_tasks_{0};
  mutable std::atomic<int64_t> nr_mm_refs_{0};  // MmRefs handed out and not yet dropped

  // Live object counters (leak checks).
  alignas(kCacheLineBytes) mutable std::atomic<int64_t> live_csets_{0}, live_csses_{0},
      live_cgroups_{0}, live_tasks_{0}, live_processes_{0}, live_mms_{0};
};

}  // namespace cgcore
