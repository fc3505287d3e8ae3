// The migration transaction and the engine's migrate operations.
#include "core/migration.h"

#include <algorithm>

#include "core/engine.h"

namespace cgcore {

MigrationContext::MigrationContext(Engine& engine) : engine_(engine), tset_(&engine) {
  engine_.cgroup_mutex_.AssertHeld();
}

MigrationContext::~MigrationContext() { finish(); }

void MigrationContext::add_src(CssSet& src, Cgroup* dst, HierarchyId h) {
  engine_.cgroup_mutex_.AssertHeld();
  engine_.css_set_lock_.AssertHeld();
  // A source already in dst is still added: its destination may differ in
  // csses (re-homing after cgroup.subtree_control changed). prepare_dst()
  // drops sources that turn out to be their own destination.
  if (src.mg_src_preload_node_.linked()) return;
  src.mg_src_cgrp_ = src.cgroup(h);
  src.mg_dst_cgrp_ = dst;
  src.mg_dst_hierarchy_ = h;
  src.refs_.fetch_add(1, std::memory_order_relaxed);
  preloaded_src_.push_back(src);
}

Status MigrationContext::prepare_dst() {
  engine_.cgroup_mutex_.AssertHeld();
  Status st;
  preloaded_src_.for_each_safe([&](CssSet& src) {
    engine_.cgroup_mutex_.AssertHeld();
    if (!st.ok()) return;
    // Links the destination to src under the same css_set lock hold as
    // the lookup (link_dst_locked).
    Result<CssSet*> r = engine_.find_css_set(src, src.mg_dst_cgrp_, src.mg_dst_hierarchy_, *this);
    if (!r.ok()) st = r.status();
  });
  if (!st.ok()) return st;
  prepared_ = true;
  return Status::Ok();
}

// The analysis cannot match engine_.css_set_lock_ with the engine's own
// name for it (find_css_set holds it); asserted at run time.
void MigrationContext::link_dst_locked(CssSet& src, CssSet& dst) CG_NO_THREAD_SAFETY_ANALYSIS {
  engine_.css_set_lock_.AssertHeld();
  if (&dst == &src) {  // nothing would change for its tasks
    src.mg_src_preload_node_.unlink();
    src.mg_src_cgrp_ = nullptr;
    src.mg_dst_cgrp_ = nullptr;
    src.mg_dst_hierarchy_ = -1;
    engine_.put_cset_locked(&src);  // find_css_set's pin
    engine_.put_cset_locked(&src);  // add_src's pin; tasks still hold it
    return;
  }
  src.mg_dst_cset_ = &dst;
  if (dst.mg_dst_preload_node_.linked()) {
    engine_.put_cset_locked(&dst);  // pinned already; cannot reach zero
  } else {
    preloaded_dst_.push_back(dst);
  }
}

void MigrationContext::add_task(Task& task) {
  engine_.css_set_lock_.AssertHeld();
  if (task.exiting() && !include_exiting_) return;
  CssSet* cset = task.cset();
  if (!cset->mg_dst_cset_) return;  // not a source: already in the destination
  task.cset_node.unlink();
  cset->mg_tasks_.push_back(task);
  if (!cset->mg_node_.linked()) tset_.csets_.push_back(*cset);
  ++tset_.nr_tasks_;
}

void MigrationContext::add_all_tasks() {
  engine_.css_set_lock_.AssertHeld();
  for (CssSet& src : preloaded_src_) src.tasks_.for_each_safe([this](Task& t) { add_task(t); });
}

Status MigrationContext::execute() {
  engine_.cgroup_mutex_.AssertHeld();
  if (tset_.nr_tasks_ == 0) return Status::Ok();

  // The controllers whose css changes for some target, in id order.
  std::vector<ControllerId>& ids = engine_.scratch_ss_ids_;
  ids.clear();
  const size_t nr_ss = engine_.nr_controllers();
  for (size_t id = 0; id < nr_ss; ++id) {
    bool changes = false;
    for (CssSet& src : tset_.csets_)
      if (src.csses_[id] != src.mg_dst_cset_->csses_[id]) changes = true;
    if (changes) ids.push_back(static_cast<ControllerId>(id));  // capacity: nr_ss, kept
  }

  bool stable_mm = false;
  for (ControllerId id : ids) stable_mm |= engine_.controllers_[id]->needs_stable_mm();
  if (stable_mm) lock_mms();

  Status st;
  size_t nr_prepared = 0;
  for (; nr_prepared < ids.size(); ++nr_prepared) {
    st = engine_.controllers_[ids[nr_prepared]]->can_attach(tset_);
    if (!st.ok()) break;
  }
  if (st.ok()) {
    ExclusiveLock<SharedMutex> cs(engine_.css_set_lock_);
    size_t nr_locked = 0;
    for (; nr_locked < ids.size(); ++nr_locked) {
      st = engine_.controllers_[ids[nr_locked]]->can_attach_locked(tset_);
      if (!st.ok()) break;
    }
    if (!st.ok()) {
      for (size_t i = nr_locked; i-- > 0;)
        engine_.controllers_[ids[i]]->cancel_attach_locked(tset_);
    } else {
      // ---- The commit point: no failure cases after here. ----
      IntrusiveList<CssSet, &CssSet::mg_node_> dsts;
      tset_.csets_.for_each_safe([&](CssSet& src) {
        engine_.css_set_lock_.AssertHeld();
        CssSet& dst = *src.mg_dst_cset_;
        int64_t n = 0;
        src.mg_tasks_.for_each_safe([&](Task& t) {
          t.cset_node.unlink();
          dst.mg_tasks_.push_back(t);
          t.cset_.store(&dst, std::memory_order_release);
          ++n;
        });
        // Destination first, so that a common ancestor never looks empty.
        dst.refs_.fetch_add(n, std::memory_order_relaxed);
        if (dst.nr_tasks_ == 0) engine_.cset_populated_changed_locked(dst, true);
        dst.nr_tasks_ += n;
        src.nr_tasks_ -= n;
        if (src.nr_tasks_ == 0) engine_.cset_populated_changed_locked(src, false);
        src.refs_.fetch_sub(n, std::memory_order_relaxed);  // still pinned by us
        src.mg_node_.unlink();
        if (!dst.mg_node_.linked()) dsts.push_back(dst);
      });
      tset_.csets_.splice_back(dsts);
      tset_.committed_ = true;
      for (ControllerId id : ids) engine_.controllers_[id]->attach(tset_);
    }
  }
  if (!st.ok()) {
    for (size_t i = nr_prepared; i-- > 0;) engine_.controllers_[ids[i]]->cancel_attach(tset_);
    unlock_mms();
    restore_targets();
    return st;
  }
  // Targets stay on their destinations' mg_tasks (visible to readers, who
  // walk both lists) until the post hooks have seen them; finish() splices
  // them onto the destinations' task lists under the lock it takes anyway.
  for (ControllerId id : ids) engine_.controllers_[id]->post_attach(tset_);
  unlock_mms();
  return Status::Ok();
}

// The set of locks is only known at run time, which the analysis cannot
// follow. Order: after the threadgroup locks, before the css_set lock.
void MigrationContext::lock_mms() CG_NO_THREAD_SAFETY_ANALYSIS {
  tset_.for_each([this](Task& t, CssSet*, CssSet&) CG_NO_THREAD_SAFETY_ANALYSIS {
    Mm* mm = t.process().mm();
    if (mm->mg_locked_) return;
    mm->mmap_lock().LockShared();
    mm->mg_locked_ = true;
    mm->mg_next_ = locked_mms_;
    locked_mms_ = mm;
  });
}

void MigrationContext::unlock_mms() CG_NO_THREAD_SAFETY_ANALYSIS {
  while (Mm* mm = locked_mms_) {
    locked_mms_ = mm->mg_next_;
    mm->mg_next_ = nullptr;
    mm->mg_locked_ = false;
    mm->mmap_lock().UnlockShared();
  }
}

void MigrationContext::restore_targets() {
  ExclusiveLock<SharedMutex> cs(engine_.css_set_lock_);
  tset_.csets_.for_each_safe([](CssSet& cs) {
    cs.tasks_.splice_back(cs.mg_tasks_);
    cs.mg_node_.unlink();
  });
  tset_.nr_tasks_ = 0;
}

void MigrationContext::finish() {
  engine_.cgroup_mutex_.AssertHeld();
  ExclusiveLock<SharedMutex> cs(engine_.css_set_lock_);
  // Targets still on a taskset css_set's mg_tasks are home either way: on
  // their sources' if the transaction never committed, on their
  // destinations' if it did.
  tset_.csets_.for_each_safe([](CssSet& c) {
    c.tasks_.splice_back(c.mg_tasks_);
    c.mg_node_.unlink();
  });
  tset_.nr_tasks_ = 0;
  tset_.committed_ = false;
  preloaded_src_.for_each_safe([this](CssSet& src) {
    engine_.css_set_lock_.AssertHeld();
    src.mg_src_preload_node_.unlink();
    src.mg_src_cgrp_ = nullptr;
    src.mg_dst_cgrp_ = nullptr;
    src.mg_dst_hierarchy_ = -1;
    src.mg_dst_cset_ = nullptr;
    engine_.put_cset_locked(&src);
  });
  preloaded_dst_.for_each_safe([this](CssSet& dst) {
    engine_.css_set_lock_.AssertHeld();
    dst.mg_dst_preload_node_.unlink();
    engine_.put_cset_locked(&dst);
  });
}

// ------------------------------------------------------------ Engine

Status Engine::check_dst_locked(const Cgroup& dst) const {
  cgroup_mutex_.AssertHeld();
  if (dst.dead()) return Status::Error(ENODEV, "the destination cgroup was removed");
  if (!dst.hierarchy().is_default()) return Status::Ok();
  if (!is_valid_domain_locked(*dst.dom_cgrp_))
    return Status::Error(EOPNOTSUPP, "the destination is an invalid domain");
  if (dst.is_root() || can_be_thread_root_locked(dst) || is_threaded_locked(dst))
    return Status::Ok();
  // No internal processes: a domain that enables controllers for its
  // children holds no tasks itself.
  if (!dst.subtree_control_.empty())
    return Status::Error(EBUSY, "the destination enables controllers for its children");
  return Status::Ok();
}

template <typename ForEachTarget>
Status Engine::migrate_targets_locked(Cgroup& dst, ForEachTarget&& for_each_target) {
  cgroup_mutex_.AssertHeld();
  if (Status st = check_dst_locked(dst); !st.ok()) return st;
  const HierarchyId h = dst.hierarchy().id();
  MigrationContext ctx(*this);
  {
    ExclusiveLock<SharedMutex> cs(css_set_lock_);
    for_each_target([&](Task& t) {
      if (!t.exiting()) ctx.add_src(*t.cset(), &dst, h);
    });
  }
  if (Status st = ctx.prepare_dst(); !st.ok()) return st;
  {
    ExclusiveLock<SharedMutex> cs(css_set_lock_);
    for_each_target([&](Task& t) { ctx.add_task(t); });
  }
  return ctx.execute();
}

Status Engine::migrate_thread(Pid tid, Cgroup& dst) {
  TaskRef t = lookup_task(tid);
  if (!t) return Status::Error(ESRCH, "no task " + std::to_string(tid));
  MutexLock lock(cgroup_mutex_);
  ExclusiveLock<RwSem> ptg(t->process().threadgroup_lock_);
  return migrate_targets_locked(dst, [&](auto&& fn) { fn(*t.get()); });
}

Status Engine::migrate_process(Pid pid, Cgroup& dst) {
  TaskRef t = lookup_task(pid);
  if (!t) return Status::Error(ESRCH, "no task " + std::to_string(pid));
  Process& proc = t->process();
  MutexLock lock(cgroup_mutex_);
  ExclusiveLock<RwSem> ptg(proc.threadgroup_lock_);
  // The thread list cannot change: every change takes the process lock.
  return migrate_targets_locked(dst, [&](auto&& fn) {
    proc.threads_.for_each_safe([&](Task& th) { fn(th); });
  });
}

namespace {
// Locks / unlocks the threadgroup locks of a set of processes. The analysis
// cannot follow a runtime set of capabilities, so it is off here; the lock
// order holds because only cgroup-mutex holders take more than one.
void lock_processes(std::span<Process* const> procs) CG_NO_THREAD_SAFETY_ANALYSIS {
  for (Process* p : procs) p->threadgroup_lock().Lock();
}
void unlock_processes(std::span<Process* const> procs) CG_NO_THREAD_SAFETY_ANALYSIS {
  for (size_t i = procs.size(); i-- > 0;) procs[i]->threadgroup_lock().Unlock();
}
}  // namespace

Status Engine::migrate_processes(std::span<const Pid> pids, Cgroup& dst) {
  std::vector<TaskRef> refs;
  std::vector<Process*> procs;
  refs.reserve(pids.size());
  procs.reserve(pids.size());
  for (Pid pid : pids) {
    TaskRef t = lookup_task(pid);
    if (!t) return Status::Error(ESRCH, "no task " + std::to_string(pid));
    procs.push_back(&t->process());
    refs.push_back(std::move(t));
  }
  std::sort(procs.begin(), procs.end());
  procs.erase(std::unique(procs.begin(), procs.end()), procs.end());
  MutexLock lock(cgroup_mutex_);
  lock_processes(procs);
  Status st = migrate_targets_locked(dst, [&](auto&& fn) {
    for (Process* p : procs) p->threads_.for_each_safe([&](Task& th) { fn(th); });
  });
  unlock_processes(procs);
  return st;
}

Status Engine::transfer(Cgroup& from, Cgroup& to) {
  MutexLock lock(cgroup_mutex_);
  return transfer_locked(from, to);
}

Status Engine::transfer_locked(Cgroup& from, Cgroup& to) {
  cgroup_mutex_.AssertHeld();
  if (&from.hierarchy() != &to.hierarchy())
    return Status::Error(EINVAL, "source and destination are in different hierarchies");
  if (Status st = check_dst_locked(to); !st.ok()) return st;
  if (&from == &to) return Status::Ok();
  // Mode ALL: freeze every fork and exit of the engine, so the source's task
  // set is fixed for the whole transaction and one pass moves them all.
  ExclusiveLock<ShardedRwSem> tg(threadgroup_rwsem_);
  MigrationContext ctx(*this);
  {
    ExclusiveLock<SharedMutex> cs(css_set_lock_);
    for (CsetLink& link : from.cset_links_) ctx.add_src(*link.cset, &to, to.hierarchy().id());
  }
  if (Status st = ctx.prepare_dst(); !st.ok()) return st;
  {
    ExclusiveLock<SharedMutex> cs(css_set_lock_);
    ctx.add_all_tasks();
  }
  return ctx.execute();
}

}  // namespace cgcore
