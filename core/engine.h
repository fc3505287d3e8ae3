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
#include "core/hierarchy.h"
#include "core/locking.h"
#include "core/result.h"
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
};

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
  // Credentials of a process (ESRCH if none).
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
  size_t nr_css_sets() const;

  // Validates every structural invariant (see core/invariants.h); returns
  // EIO with a description of the first violation.
  Status check_invariants() const;

  // Observers (not owned) hear of state changes; add and remove them before
  // or after concurrent use, not during it (the list is read without a lock).
  void add_observer(EngineObserver* observer) { observers_.push_back(observer); }
  void remove_observer(EngineObserver* observer) {
    std::erase(observers_, observer);
  }

  // The cgroup mutex, for callers of *_locked methods.
  Mutex& cgroup_mutex() const CG_RETURN_CAPABILITY(cgroup_mutex_) { return cgroup_mutex_; }

  // Test hook: the nth css_set allocation from now fails with ENOMEM
  // (1 = the next one); 0 disables.
  void TEST_fail_cset_alloc(int nth) { fail_cset_alloc_.store(nth); }
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

  // -- css_sets (css_set.cc)
  // Finds or creates the css_set `src` becomes when moved to `dst` in
  // hierarchy `h` (dst null: out of h), pins it, and links it into `ctx` as
  // src's destination under the same css_set lock hold (one hold when it
  // exists, two when it is made). ENOMEM on allocation failure (nothing is
  // linked then). Locking: cgroup mutex held; takes the css_set lock.
  Result<CssSet*> find_css_set(CssSet& src, Cgroup* dst, HierarchyId h, MigrationContext& ctx)
      CG_REQUIRES(cgroup_mutex_) CG_EXCLUDES(css_set_lock_);
  // Drops a reference; the last one unhashes and frees the css_set.
  void put_cset_locked(CssSet* cset) CG_REQUIRES(css_set_lock_);
  // Links / unlinks a task to a css_set's task list, keeping nr_tasks, the
  // css_set reference and populated counts right.
  void link_task_locked(Task& task, CssSet& cset) CG_REQUIRES(css_set_lock_);
  void unlink_task_locked(Task& task) CG_REQUIRES(css_set_lock_);
  // nr_tasks of `cset` went 0 -> n (true) or n -> 0 (false).
  void cset_populated_changed_locked(CssSet& cset, bool populated) CG_REQUIRES(css_set_lock_);
  void cgroup_populated_step_locked(Cgroup& cgroup, bool was, bool now)
      CG_REQUIRES(css_set_lock_);
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
  // Allocates and onlines the css of controller `id` for `cgroup` (not yet
  // stored in cgroup.csses_). Locking: cgroup mutex held.
  Result<Css*> create_css_locked(Cgroup& cgroup, ControllerId id) CG_REQUIRES(cgroup_mutex_);
  // Offlines a css and drops its base reference.
  void kill_css_locked(Css* css) CG_REQUIRES(cgroup_mutex_);
  void free_cgroup(Cgroup* cgroup);
  void free_css(Css* css);
  void free_task(Task* task);
  void free_process(Process* process);

  // -- tasks (task_ops.cc)
  // Creates a thread or process in `cset`, runs can_fork / fork hooks.
  // Locking: the global threadgroup lock and the parent process's threadgroup
  // lock (if any) held shared.
  // parent_mm: the forking process's address space (null for spawn and
  // threads); shared when share_mm, else its size is copied.
  Result<Pid> create_task_locked(CssSet& cset, Process* join, const Creds& creds,
                                 Mm* parent_mm, bool share_mm, std::optional<Pid> id)
      CG_REQUIRES_SHARED(threadgroup_rwsem_);
  // Takes / drops a process's threadgroup lock shared while it is being
  // created (create_task_locked), before anyone else can see it.
  // Locking: the global threadgroup lock held shared.
  void lock_new_process(Process& proc);
  void unlock_new_process(Process& proc);
  // Unlinks a thread, runs exit/release hooks, ends the process with its last
  // thread. Locking: global and the process's threadgroup lock held shared.
  void exit_task_locked(Task& task) CG_REQUIRES_SHARED(threadgroup_rwsem_);

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
  // Moves the targets named by for_each_target(fn) (which calls fn(Task&)
  // for each) to dst as one transaction. Locking: cgroup mutex held, and the
  // targets' threadgroup locks exclusive.
  template <typename ForEachTarget>
  Status migrate_targets_locked(Cgroup& dst, ForEachTarget&& for_each_target)
      CG_REQUIRES(cgroup_mutex_);
  void free_mm(Mm* mm);

  // ---- Constant after construction
  std::vector<std::unique_ptr<Hierarchy>> hierarchies_;  // slots; guarded by cgroup_mutex_ except [0]
  std::vector<std::unique_ptr<Hierarchy>> retired_hierarchies_;  // guarded by cgroup_mutex_

  // ---- Locks (order in core/locking.h)
  mutable Mutex cgroup_mutex_;
  mutable ShardedRwSem threadgroup_rwsem_ CG_ACQUIRED_AFTER(cgroup_mutex_);
  mutable SharedMutex css_set_lock_ CG_ACQUIRED_AFTER(threadgroup_rwsem_);
  mutable SharedMutex task_table_lock_ CG_ACQUIRED_AFTER(css_set_lock_);

  // ---- Guarded by cgroup_mutex_ (growth also stops the world)
  std::vector<std::unique_ptr<Controller>> controllers_;
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

  // ---- Guarded by task_table_lock_
  TaskTable task_table_ CG_GUARDED_BY(task_table_lock_);

  std::vector<EngineObserver*> observers_;

  // Removed cgroups and offline csses still referenced (cgroup.stat).
  mutable Mutex dying_mu_ CG_ACQUIRED_AFTER(task_table_lock_);
  std::unordered_set<const Cgroup*> dying_cgroups_ CG_GUARDED_BY(dying_mu_);
  std::unordered_set<const Css*> dying_csses_ CG_GUARDED_BY(dying_mu_);
  std::atomic<int> fail_cset_alloc_{0};
  std::atomic<size_t> nr_live_tasks_{0};
  mutable std::atomic<int64_t> nr_mm_refs_{0};  // MmRefs handed out and not yet dropped

  // Live object counters (leak checks).
  mutable std::atomic<int64_t> live_csets_{0}, live_csses_{0}, live_cgroups_{0},
      live_tasks_{0}, live_processes_{0}, live_mms_{0};
};

}  // namespace cgcore
