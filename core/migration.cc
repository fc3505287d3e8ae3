// The migration transaction and the engine's migrate operations.
#include "core/migration.h"

#include <algorithm>
#include <new>

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
  engine_.pin_cset_locked(src);  // src may have no other holder left (or be kept)
  preloaded_src_.push_back(src);
}

void MigrationContext::dst_key(const CssSet& src, CssSetTable::Key* key) {
  engine_.cgroup_mutex_.AssertHeld();
  const HierarchyId h = src.mg_dst_hierarchy_;
  Cgroup* const dst = src.mg_dst_cgrp_;
  // src's cgroups with hierarchy h's replaced by dst (null: h is going), and
  // src's csses with those of h's controllers taken from dst.
  std::vector<const Cgroup*>& cgroups = engine_.scratch_cgroups_;
  std::vector<Css*>& csses = engine_.scratch_csses_;
  for (size_t i = 0; i < cgroups.size(); ++i) cgroups[i] = src.cgroup(static_cast<HierarchyId>(i));
  cgroups[h] = dst;
  std::copy(src.csses_.begin(), src.csses_.end(), csses.begin());
  if (dst) {
    engine_.hierarchies_[h]->controllers_.for_each([&](ControllerId id) {
      engine_.cgroup_mutex_.AssertHeld();
      csses[id] = dst->is_root() ? engine_.root_csses_[id] : engine_.effective_css_locked(*dst, id);
    });
  }
  *key = CssSetTable::Key{cgroups.data(), static_cast<int>(cgroups.size()), csses.data(),
                          csses.size()};
}

Status MigrationContext::size_scratch() {
  engine_.cgroup_mutex_.AssertHeld();
  // The destination keys are built in the engine's buffers of the one
  // migration in progress, sized here: no allocation once they have grown
  // to the number of hierarchy slots and controllers.
  const size_t nr_h = engine_.hierarchies_.size(), nr_ss = engine_.nr_controllers();
  if (engine_.scratch_cgroups_.size() == nr_h && engine_.scratch_csses_.size() == nr_ss)
    return Status::Ok();
  try {
    engine_.scratch_cgroups_.resize(nr_h);
    engine_.scratch_csses_.resize(nr_ss);
  } catch (const std::bad_alloc&) {
    return Status::Error(ENOMEM, "out of memory looking up a css_set");
  }
  return Status::Ok();
}

Result<bool> MigrationContext::prepare_dst_locked() {
  engine_.cgroup_mutex_.AssertHeld();
  engine_.css_set_lock_.AssertHeld();
  if (Status st = size_scratch(); !st.ok()) return st;
  bool complete = true;
  Status st;
  preloaded_src_.for_each_safe([&](CssSet& src) {
    engine_.cgroup_mutex_.AssertHeld();
    engine_.css_set_lock_.AssertHeld();
    if (!st.ok() || src.mg_dst_cset_) return;
    CssSetTable::Key key;
    dst_key(src, &key);
    Result<CssSet*> dst = engine_.find_css_set_locked(key, CssSetTable::hash(key));
    if (!dst.ok()) {
      st = dst.status();
    } else if (!dst.value()) {
      complete = false;  // prepare_dst() allocates it
    } else {
      link_dst(src, *dst.value());
    }
  });
  if (!st.ok()) return st;
  prepared_ = complete;
  return complete;
}

Status MigrationContext::prepare_dst() {
  engine_.cgroup_mutex_.AssertHeld();
  if (Status st = size_scratch(); !st.ok()) return st;
  Status st;
  // A source that is its own destination has no mg_dst_cset_ either: looked
  // up again, it is found and linked as before (a reference taken and
  // dropped).
  preloaded_src_.for_each_safe([&](CssSet& src) {
    engine_.cgroup_mutex_.AssertHeld();
    if (!st.ok() || src.mg_dst_cset_) return;
    CssSetTable::Key key;
    dst_key(src, &key);
    Result<CssSet*> dst = engine_.find_css_set(key);
    if (!dst.ok()) {
      st = dst.status();
      return;
    }
    link_dst(src, *dst.value());
  });
  if (!st.ok()) return st;
  prepared_ = true;
  return Status::Ok();
}

// The preload lists and the mg_* fields belong to this context (cgroup
// mutex), and neither reference dropped here is the last one, so no css_set
// lock is needed.
void MigrationContext::link_dst(CssSet& src, CssSet& dst) {
  engine_.cgroup_mutex_.AssertHeld();
  if (&dst == &src) {
    // Nothing would change for its tasks: src stays a source without a
    // destination (add_task skips its tasks) and finish() drops add_src's
    // reference.
    src.put_not_last();  // find_css_set's; add_src's is still held
    return;
  }
  src.mg_dst_cset_ = &dst;
  if (dst.mg_dst_preload_node_.linked()) {
    dst.put_not_last();  // the destination of an earlier source: referenced already
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
  for (CssSet& src : preloaded_src_)
    if (src.mg_dst_cset_) src.tasks_.for_each_safe([this](Task& t) { add_task(t); });
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
  bool post_attach_tasks = false;
  for (ControllerId id : ids) {
    stable_mm |= engine_.controllers_[id]->needs_stable_mm();
    post_attach_tasks |= engine_.controllers_[id]->post_attach_needs_tasks();
  }
  if (stable_mm) lock_mms();

  Status st;
  size_t nr_prepared = 0;
  for (; nr_prepared < ids.size(); ++nr_prepared) {
    st = engine_.controllers_[ids[nr_prepared]]->can_attach(tset_);
    if (!st.ok()) break;
  }
  if (st.ok()) {
    ExclusiveLock<RwLock> cs(engine_.css_set_lock_);
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
        dst.get(n);
        if (dst.nr_tasks_ == 0) engine_.cset_populated_changed_locked(dst, true);
        dst.nr_tasks_ += n;
        src.nr_tasks_ -= n;
        if (src.nr_tasks_ == 0) engine_.cset_populated_changed_locked(src, false);
        src.put_not_last(n);  // add_src's reference is still held
        src.mg_node_.unlink();
        if (!dst.mg_node_.linked()) dsts.push_back(dst);
      });
      tset_.csets_.splice_back(dsts);
      tset_.committed_ = true;
      for (ControllerId id : ids) engine_.controllers_[id]->attach(tset_);
      // Unless a post hook walks the tasks, the transaction ends in this
      // same hold: the commit is the one css_set lock hold after prepare.
      if (!post_attach_tasks) finish_locked();
    }
  }
  if (!st.ok()) {
    for (size_t i = nr_prepared; i-- > 0;) engine_.controllers_[ids[i]]->cancel_attach(tset_);
    unlock_mms();
    restore_targets();
    return st;
  }
  // Otherwise targets stay on their destinations' mg_tasks (visible to
  // readers, who walk both lists) until the post hooks have seen them;
  // finish() splices them onto the destinations' task lists.
  for (ControllerId id : ids) engine_.controllers_[id]->post_attach(tset_);
  unlock_mms();
  return Status::Ok();
}

// The address spaces' locks are a set known only at run time, which the
// analysis cannot name. Order: after the threadgroup locks, before the css_set lock.
void MigrationContext::lock_mms() CG_NO_THREAD_SAFETY_ANALYSIS {
  for (CssSet& cs : tset_.csets_) {
    for (Task& t : cs.mg_tasks_) {
      Mm* mm = t.process().mm();
      if (mm->mg_locked_) continue;
      mm->mmap_lock().LockShared();
      mm->mg_locked_ = true;
      mm->mg_next_ = locked_mms_;
      locked_mms_ = mm;
    }
  }
}

// Releases the run-time set lock_mms() took (see there).
void MigrationContext::unlock_mms() CG_NO_THREAD_SAFETY_ANALYSIS {
  while (Mm* mm = locked_mms_) {
    locked_mms_ = mm->mg_next_;
    mm->mg_next_ = nullptr;
    mm->mg_locked_ = false;
    mm->mmap_lock().UnlockShared();
  }
}

void MigrationContext::restore_targets() {
  // Not committed: finish_locked puts every target back on its source's
  // list, and ends the transaction in the same hold.
  ExclusiveLock<RwLock> cs(engine_.css_set_lock_);
  finish_locked();
}

void MigrationContext::finish() {
  engine_.cgroup_mutex_.AssertHeld();
  if (preloaded_src_.empty() && preloaded_dst_.empty() && tset_.csets_.empty()) return;
  ExclusiveLock<RwLock> cs(engine_.css_set_lock_);
  finish_locked();
}

void MigrationContext::finish_locked() {
  engine_.cgroup_mutex_.AssertHeld();
  engine_.css_set_lock_.AssertHeld();
  // A re-homing transaction keeps no source (its key is about to go stale).
  const bool keep_src = !include_exiting_;
  // Targets still on a taskset css_set's mg_tasks are home either way: on
  // their sources' if the transaction never committed, on their
  // destinations' if it did.
  tset_.csets_.for_each_safe([](CssSet& c) {
    c.tasks_.splice_back(c.mg_tasks_);
    c.mg_node_.unlink();
  });
  tset_.nr_tasks_ = 0;
  tset_.committed_ = false;
  tset_.released_ = true;
  preloaded_src_.for_each_safe([&](CssSet& src) {
    engine_.css_set_lock_.AssertHeld();
    src.mg_src_preload_node_.unlink();
    src.mg_src_cgrp_ = nullptr;
    src.mg_dst_cgrp_ = nullptr;
    src.mg_dst_hierarchy_ = -1;
    src.mg_dst_cset_ = nullptr;
    engine_.put_cset_locked(&src, keep_src);
  });
  preloaded_dst_.for_each_safe([&](CssSet& dst) {
    engine_.css_set_lock_.AssertHeld();
    dst.mg_dst_preload_node_.unlink();
    // One this transaction made is kept only through tasks it received (then
    // this is not the last reference); one it found stays as it was.
    const bool keep = !dst.mg_made_;
    dst.mg_made_ = false;
    engine_.put_cset_locked(&dst, keep);
  });
}

// ------------------------------------------------------------ Engine

Status Engine::check_dst_locked(const Cgroup& dst) const {
  cgroup_mutex_.AssertHeld();
  if (dst.dead()) return Status::Error(ENODEV, "the destination cgroup was removed");
  if (!dst.hierarchy().is_default()) return Status::Ok();
  if (!is_valid_domain_locked(*dst.dom_cgrp_))
    return Status::Error(EOPNOTSUPP, "the destination is an invalid domain");
  // No internal processes: a domain that enables controllers for its
  // children holds no tasks itself, unless it is the root, or threaded, or a
  // (possible) thread root. Tested in that order, since the last takes the
  // css_set lock and most destinations enable nothing.
  if (dst.subtree_control_.empty() || dst.is_root() || is_threaded_locked(dst) ||
      can_be_thread_root_locked(dst))
    return Status::Ok();
  return Status::Error(EBUSY, "the destination enables controllers for its children");
}

template <typename ForEachTarget>
Status Engine::migrate_targets_locked(Cgroup& dst, ForEachTarget&& for_each_target) {
  cgroup_mutex_.AssertHeld();
  if (Status st = check_dst_locked(dst); !st.ok()) return st;
  const HierarchyId h = dst.hierarchy().id();
  MigrationContext ctx(*this);
  // One css_set lock hold prepares (sources, destinations, targets) unless a
  // destination css_set has to be allocated, which happens outside it.
  bool prepared;
  {
    ExclusiveLock<RwLock> cs(css_set_lock_);
    for_each_target([&](Task& t) {
      if (!t.exiting()) ctx.add_src(*t.cset(), &dst, h);
    });
    Result<bool> r = ctx.prepare_dst_locked();
    if (!r.ok()) return r.status();
    prepared = r.value();
    if (prepared) for_each_target([&](Task& t) { ctx.add_task(t); });
  }
  if (!prepared) {
    if (Status st = ctx.prepare_dst(); !st.ok()) return st;
    ExclusiveLock<RwLock> cs(css_set_lock_);
    for_each_target([&](Task& t) { ctx.add_task(t); });
  }
  return ctx.execute();
}

Status Engine::check_move_locked(Process& proc, Task* target, const Cgroup& dst,
                                 MoveCheck check) {
  cgroup_mutex_.AssertHeld();
  if (dst.dead()) return Status::Error(ENODEV, "the destination cgroup was removed");
  if (!target) return Status::Ok();
  // The target's css_set and the process's credentials cannot change while
  // its threadgroup lock is held exclusive (migrations of the process also
  // need the cgroup mutex).
  CssSet* cset = target->cset();
  if (!cset) return Status::Ok();  // exited meanwhile: nothing will move
  return check(MoveTarget{target->tid(), proc.tgid_, proc.creds_,
                          *cset->cgroup(dst.hierarchy().id())});
}

Status Engine::migrate_thread(Pid tid, Cgroup& dst) {
  MutexLock lock(cgroup_mutex_);
  return migrate_thread_locked(tid, dst, [](const MoveTarget&) { return Status::Ok(); });
}

Status Engine::migrate_thread_locked(Pid tid, Cgroup& dst, MoveCheck check) {
  cgroup_mutex_.AssertHeld();
  TaskRef t = lookup_task(tid);
  if (!t) return Status::Error(ESRCH, "no task " + std::to_string(tid));
  Process& proc = t->process();
  ExclusiveLock<RwSem> ptg(proc.threadgroup_lock_);
  if (Status st = check_move_locked(proc, t.get(), dst, check); !st.ok()) return st;
  return migrate_targets_locked(dst, [&](auto&& fn) { fn(*t.get()); });
}

Status Engine::migrate_process(Pid pid, Cgroup& dst) {
  MutexLock lock(cgroup_mutex_);
  return migrate_process_locked(pid, dst, [](const MoveTarget&) { return Status::Ok(); });
}

Status Engine::migrate_process_locked(Pid pid, Cgroup& dst, MoveCheck check) {
  cgroup_mutex_.AssertHeld();
  TaskRef t = lookup_task(pid);
  if (!t) return Status::Error(ESRCH, "no task " + std::to_string(pid));
  Process& proc = t->process();
  ExclusiveLock<RwSem> ptg(proc.threadgroup_lock_);
  // The thread list cannot change: every change takes the process lock.
  // The check sees the leader; if it has exited, the thread named by `pid`;
  // if that one has too, any live thread (none: nothing moves).
  Task* target = nullptr;
  if (t->tid() == proc.tgid_ && !t->dead()) {
    target = t.get();
  } else {
    for (Task& th : proc.threads_) {
      if (th.tid() == proc.tgid_) {
        target = &th;
        break;
      }
    }
    if (!target) target = !t->dead() ? t.get() : proc.threads_.front();
  }
  if (Status st = check_move_locked(proc, target, dst, check); !st.ok()) return st;
  return migrate_targets_locked(dst, [&](auto&& fn) {
    proc.threads_.for_each_safe([&](Task& th) { fn(th); });
  });
}

namespace {
// Locks / unlocks the threadgroup locks of a set of processes; the lock
// order holds because only cgroup-mutex holders take more than one.
// A set of locks known only at run time: the analysis cannot name it.
void lock_processes(std::span<Process* const> procs) CG_NO_THREAD_SAFETY_ANALYSIS {
  for (Process* p : procs) p->threadgroup_lock().Lock();
}
// Releases the run-time set lock_processes() took.
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
  bool prepared;  // in one hold, as migrate_targets_locked
  {
    ExclusiveLock<RwLock> cs(css_set_lock_);
    for (CsetLink& link : from.cset_links_)  // a kept css_set has no task to move
      if (!link.cset->kept_node_.linked()) ctx.add_src(*link.cset, &to, to.hierarchy().id());
    Result<bool> r = ctx.prepare_dst_locked();
    if (!r.ok()) return r.status();
    prepared = r.value();
    if (prepared) ctx.add_all_tasks();
  }
  if (!prepared) {
    if (Status st = ctx.prepare_dst(); !st.ok()) return st;
    ExclusiveLock<RwLock> cs(css_set_lock_);
    ctx.add_all_tasks();
  }
  return ctx.execute();
}

}  // namespace cgcore
