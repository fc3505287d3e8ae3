// Engine: tasks — spawn, fork, thread creation, exit, exec, credentials.
#include <new>

#include "core/engine.h"

namespace cgcore {

Engine::TaskRef Engine::lookup_task(Pid tid) const {
  SharedLock<RwLock> lock(task_table_lock_);
  Task* t = task_table_.get(tid);
  if (!t || t->embryo()) return TaskRef();
  t->get();
  return TaskRef(t);
}

void Engine::free_process(Process* process) {
  Mm* mm = process->mm();
  process->~Process();
  process_slab_.deallocate(process);
  live_processes_.fetch_sub(1, std::memory_order_relaxed);
  if (mm) mm->put();
}

void Mm::put() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) engine_->free_mm(this);
}

void Engine::free_mm(Mm* mm) {
  const size_t nr_ss = nr_controllers();
  for (size_t i = 0; i < nr_ss; ++i) controllers_[i]->mm_release(*mm);
  for (int i = 0; i < Mm::kSlots; ++i)
    if (Css* css = mm->exchange_slot(i, nullptr)) css->put();
  delete mm;
  live_mms_.fetch_sub(1, std::memory_order_relaxed);
}

Result<Task*> Engine::new_task(Process* join, const Creds& creds, Mm* parent_mm, bool share_mm,
                               std::optional<Pid> want) {
  if (want && (*want <= 0 || *want > TaskTable::kMaxPid))
    return Status::Error(EINVAL, "task id out of range");
  Mm* mm = nullptr;
  Process* proc = join;
  Task* task = nullptr;
  try {
    if (!proc) {
      if (share_mm) {
        mm = parent_mm;
        mm->get();
      } else {
        mm = new Mm(this);
        live_mms_.fetch_add(1, std::memory_order_relaxed);
        // A forked address space is a copy: same size, no resident charges.
        if (parent_mm) mm->total_vm.store(parent_mm->total_vm.load());
      }
      void* slot = process_slab_.allocate();
      if (!slot) throw std::bad_alloc();
      proc = new (slot) Process(this, creds, mm);
      mm = nullptr;  // the process owns the reference now
      live_processes_.fetch_add(1, std::memory_order_relaxed);
    }
    void* mem = task_slab_.allocate();
    if (!mem) throw std::bad_alloc();
    task = new (mem) Task(0, proc);  // takes a process reference
    live_tasks_.fetch_add(1, std::memory_order_relaxed);
  } catch (const std::bad_alloc&) {
    if (mm) mm->put();
    if (proc && proc != join) {
      proc->get();
      proc->put();  // frees it and its mm
    }
    return Status::Error(ENOMEM, "out of memory creating a task");
  }
  return task;
}

Result<Pid> Engine::create_process_locked(CssSet& cset, const Creds& creds, Mm* parent_mm,
                                          bool share_mm, std::optional<Pid> id) {
  threadgroup_rwsem_.AssertReaderHeld();
  Result<Task*> made = new_task(nullptr, creds, parent_mm, share_mm, id);
  if (!made.ok()) return made.status();
  Task* task = made.value();
  Process& proc = task->process();
  // A new process is visible once linked, and could be migrated or exit
  // before its fork hooks ran; its own threadgroup lock, held shared from
  // before it is published until the hooks return, prevents that.
  Result<Pid> r = Pid{0};
  {
    SharedLock<RwSem> hold(proc.threadgroup_lock_);
    r = publish_task_locked(*task, proc, cset, id);
  }
  if (!r.ok()) task->put();  // frees the task, its process and address space
  return r;
}

Result<Pid> Engine::create_thread_locked(CssSet& cset, Process& proc, std::optional<Pid> id) {
  threadgroup_rwsem_.AssertReaderHeld();
  Result<Task*> made = new_task(&proc, Creds{}, nullptr, false, id);
  if (!made.ok()) return made.status();
  // The caller's hold of the process's lock keeps the new thread from being
  // migrated or ended before its fork hooks ran.
  Result<Pid> r = publish_task_locked(*made.value(), proc, cset, id);
  if (!r.ok()) made.value()->put();
  return r;
}

Result<Pid> Engine::publish_task_locked(Task& task, Process& proc, CssSet& cset,
                                        std::optional<Pid> want) {
  threadgroup_rwsem_.AssertReaderHeld();
  proc.threadgroup_lock_.AssertReaderHeld();
  const bool new_process = proc.tgid_ == 0;  // set once, here
  Pid id;
  {
    ExclusiveLock<RwLock> t(task_table_lock_);
    Status st;
    id = want ? *want : task_table_.next_free();
    if (id == 0)
      st = Status::Error(EAGAIN, "no free task id");
    else if (task_table_.get(id))
      st = Status::Error(EEXIST, "task id " + std::to_string(id) + " is in use");
    else
      st = task_table_.reserve(id);
    if (!st.ok()) return st;
    task.tid_.store(id, std::memory_order_relaxed);
    if (new_process) proc.tgid_ = id;
    task_table_.set(id, &task);  // adopts the creation reference on success
  }

  // can_fork against the css_set the child joins; the caller's threadgroup
  // locks keep that css_set the parent's until the child is linked.
  const size_t nr_ss = nr_controllers();
  for (size_t i = 0; i < nr_ss; ++i) {
    Status st = controllers_[i]->can_fork(task, cset);
    if (st.ok()) continue;
    for (size_t j = i; j-- > 0;) controllers_[j]->cancel_fork(task, cset);
    {
      ExclusiveLock<RwLock> t(task_table_lock_);
      task_table_.set(id, nullptr);
    }
    return st;
  }

  {
    ExclusiveLock<RwLock> cs(css_set_lock_);
    link_task_locked(task, cset);
    proc.threads_.push_back(task);
    ++proc.nr_threads_;
    task.state_.fetch_and(~Task::kEmbryo, std::memory_order_release);
  }
  nr_live_tasks_.fetch_add(1, std::memory_order_relaxed);
  for (size_t i = 0; i < nr_ss; ++i) controllers_[i]->fork(task);
  return id;
}

Result<Pid> Engine::spawn(const SpawnOptions& opts) {
  SharedLock<ShardedRwSem> tg(threadgroup_rwsem_);
  CssSet* cset;
  {
    // Stable while the global threadgroup lock is held (rebinds take it
    // exclusive), and pinned by the engine.
    SharedLock<RwLock> cs(css_set_lock_);
    cset = root_cset_;
  }
  return create_process_locked(*cset, opts.creds, nullptr, false, opts.pid);
}

Result<Pid> Engine::fork(Pid parent_tid, const ForkOptions& opts) {
  TaskRef parent = lookup_task(parent_tid);
  if (!parent) return Status::Error(ESRCH, "no task " + std::to_string(parent_tid));
  Process& pp = parent->process();
  SharedLock<ShardedRwSem> tg(threadgroup_rwsem_);
  SharedLock<RwSem> ptg(pp.threadgroup_lock_);
  if (parent->exiting())
    return Status::Error(ESRCH, "task " + std::to_string(parent_tid) + " is exiting");
  // The shared hold of the parent's threadgroup lock keeps its credentials.
  const Creds creds = opts.creds.value_or(pp.creds_);
  return create_process_locked(*parent->cset(), creds, pp.mm(), opts.share_mm, opts.pid);
}

Result<Pid> Engine::clone_thread(Pid tid, std::optional<Pid> new_tid) {
  TaskRef parent = lookup_task(tid);
  if (!parent) return Status::Error(ESRCH, "no task " + std::to_string(tid));
  Process& pp = parent->process();
  SharedLock<ShardedRwSem> tg(threadgroup_rwsem_);
  SharedLock<RwSem> ptg(pp.threadgroup_lock_);
  if (parent->exiting()) return Status::Error(ESRCH, "task " + std::to_string(tid) + " is exiting");
  return create_thread_locked(*parent->cset(), pp, new_tid);
}

bool Engine::exit_task_locked(Task& task, Task** next_thread) {
  threadgroup_rwsem_.AssertReaderHeld();
  Process& proc = task.process();
  proc.threadgroup_lock_.AssertReaderHeld();
  task.state_.fetch_or(Task::kExiting, std::memory_order_acq_rel);
  CssSet* cset;
  bool last;
  {
    ExclusiveLock<RwLock> cs(css_set_lock_);
    // Whoever picks the next thread here saves exit_process a second hold.
    auto pick_next = [&] {
      if (!next_thread) return;
      *next_thread = proc.threads_.front();
      if (*next_thread) (*next_thread)->get();
    };
    if (task.dead()) {  // two callers raced to end it; the other one did
      pick_next();
      return false;
    }
    cset = task.cset();
    unlink_task_locked(task);
    task.cset_.store(nullptr, std::memory_order_release);
    task.thread_node.unlink();
    last = --proc.nr_threads_ == 0;
    task.state_.fetch_or(Task::kDead, std::memory_order_release);
    pick_next();
  }
  nr_live_tasks_.fetch_sub(1, std::memory_order_relaxed);
  const size_t nr_ss = nr_controllers();
  for (size_t i = 0; i < nr_ss; ++i) controllers_[i]->exit(task, *cset);
  for (size_t i = 0; i < nr_ss; ++i) controllers_[i]->release(task, *cset);
  // The common case (other tasks share the css_set) needs no lock.
  if (!cset->put_unless_last()) {
    ExclusiveLock<RwLock> cs(css_set_lock_);
    put_cset_locked(cset);
  }

  // The id table: a non-leader leaves at once; a leader stays as a zombie
  // (keeping the process id) until the last thread is gone.
  Task* drop[2] = {nullptr, nullptr};
  {
    ExclusiveLock<RwLock> t(task_table_lock_);
    const Pid tid = task.tid();
    if (tid != proc.tgid_ || last) {
      task_table_.set(tid, nullptr);
      drop[0] = &task;
    }
    if (last && tid != proc.tgid_) {
      if (Task* leader = task_table_.get(proc.tgid_); leader && &leader->process() == &proc) {
        task_table_.set(proc.tgid_, nullptr);
        drop[1] = leader;
      }
    }
  }
  // Callers hold their own reference, so these never free `task` under them.
  for (Task* t : drop)
    if (t) t->put();
  return true;
}

Status Engine::mark_exiting(Pid tid) {
  TaskRef t = lookup_task(tid);
  if (!t) return Status::Error(ESRCH, "no task " + std::to_string(tid));
  SharedLock<ShardedRwSem> tg(threadgroup_rwsem_);
  SharedLock<RwSem> ptg(t->process().threadgroup_lock_);
  if (t->dead()) return Status::Error(ESRCH, "task " + std::to_string(tid) + " has exited");
  t->state_.fetch_or(Task::kExiting, std::memory_order_acq_rel);
  return Status::Ok();
}

Status Engine::exit_thread(Pid tid) {
  TaskRef t = lookup_task(tid);
  if (!t) return Status::Error(ESRCH, "no task " + std::to_string(tid));
  SharedLock<ShardedRwSem> tg(threadgroup_rwsem_);
  SharedLock<RwSem> ptg(t->process().threadgroup_lock_);
  if (!exit_task_locked(*t.get()))
    return Status::Error(ESRCH, "task " + std::to_string(tid) + " has exited");
  return Status::Ok();
}

Status Engine::exit_process(Pid tgid) {
  TaskRef t = lookup_task(tgid);
  if (!t) return Status::Error(ESRCH, "no process " + std::to_string(tgid));
  Process& proc = t->process();
  SharedLock<ShardedRwSem> tg(threadgroup_rwsem_);
  SharedLock<RwSem> ptg(proc.threadgroup_lock_);
  // The task looked up first (the leader, unless it is a zombie already),
  // then whichever thread is first in the list when the previous one left.
  bool any = false;
  Task* next = t.get();
  next->get();
  while (next) {
    Task* after = nullptr;
    any |= exit_task_locked(*next, &after);
    next->put();
    next = after;
  }
  if (!any) return Status::Error(ESRCH, "process " + std::to_string(tgid) + " has exited");
  return Status::Ok();
}

Status Engine::exec(Pid tid) {
  TaskRef t = lookup_task(tid);
  if (!t) return Status::Error(ESRCH, "no task " + std::to_string(tid));
  Process& proc = t->process();
  Mm* fresh = new (std::nothrow) Mm(this);
  if (!fresh) return Status::Error(ENOMEM, "out of memory for a new address space");
  live_mms_.fetch_add(1, std::memory_order_relaxed);  // (the checker is exact only when quiescent)

  // The process lock is taken exclusive (no fork of this process may read
  // its mm meanwhile); exclusive holders are serialised by the cgroup mutex.
  MutexLock m(cgroup_mutex_);
  SharedLock<ShardedRwSem> tg(threadgroup_rwsem_);
  ExclusiveLock<RwSem> ptg(proc.threadgroup_lock_);
  if (t->exiting()) {
    fresh->put();
    return Status::Error(ESRCH, "task " + std::to_string(tid) + " is exiting");
  }
  // de_thread: every other thread exits.
  for (;;) {
    Task* other = nullptr;
    {
      SharedLock<RwLock> cs(css_set_lock_);
      for (Task& th : proc.threads_)
        if (&th != t.get()) {
          other = &th;
          other->get();
          break;
        }
    }
    if (!other) break;
    exit_task_locked(*other);
    other->put();
  }
  // A non-leader that execs takes over the process id; the old leader (a
  // zombie by now) is gone.
  if (t->tid() != proc.tgid_) {
    Task* old_leader;
    {
      ExclusiveLock<RwLock> cs(css_set_lock_);
      ExclusiveLock<RwLock> tt(task_table_lock_);
      old_leader = task_table_.get(proc.tgid_);
      task_table_.set(t->tid(), nullptr);
      task_table_.set(proc.tgid_, t.get());  // the table's reference moves along
      t->tid_.store(proc.tgid_, std::memory_order_relaxed);
    }
    if (old_leader) old_leader->put();
  }
  Mm* old = proc.mm_.exchange(fresh, std::memory_order_acq_rel);
  old->put();
  const size_t nr_ss = nr_controllers();
  for (size_t i = 0; i < nr_ss; ++i) controllers_[i]->exec(*t.get());
  return Status::Ok();
}

Status Engine::change_task_id(Pid from, Pid to) {
  if (to <= 0 || to > TaskTable::kMaxPid) return Status::Error(EINVAL, "task id out of range");
  TaskRef t = lookup_task(from);
  if (!t) return Status::Error(ESRCH, "no task " + std::to_string(from));
  Process& proc = t->process();
  // Exclusive holders of a process's lock are serialised by the cgroup
  // mutex (as exec's); exclusive, the lock keeps migration checks, forks and
  // exits of the process away while its ids change.
  MutexLock lock(cgroup_mutex_);
  ExclusiveLock<RwSem> ptg(proc.threadgroup_lock_);
  if (t->dead() || t->exiting()) return Status::Error(ESRCH, "task " + std::to_string(from) + " is exiting");
  ExclusiveLock<RwLock> cs(css_set_lock_);
  const bool leader = t->tid() == proc.tgid_;
  if (leader && proc.nr_threads_ != 1)
    return Status::Error(EINVAL, "the id of a process with several threads cannot change");
  ExclusiveLock<RwLock> tt(task_table_lock_);
  if (task_table_.get(to)) return Status::Error(EEXIST, "task id " + std::to_string(to) + " is in use");
  if (Status st = task_table_.reserve(to); !st.ok()) return st;
  task_table_.set(to, t.get());  // the table's reference moves along
  task_table_.set(from, nullptr);
  t->tid_.store(to, std::memory_order_relaxed);
  if (leader) proc.tgid_.store(to, std::memory_order_relaxed);
  return Status::Ok();
}

Status Engine::set_creds(Pid tgid, const Creds& creds) {
  TaskRef t = lookup_task(tgid);
  if (!t) return Status::Error(ESRCH, "no process " + std::to_string(tgid));
  Process& proc = t->process();
  // Both locks, so that a holder of either reads them: fork and a move
  // check under the threadgroup lock, anyone else (a controller hook in a
  // migration, say) under the css_set lock.
  ExclusiveLock<RwSem> ptg(proc.threadgroup_lock_);
  ExclusiveLock<RwLock> cs(css_set_lock_);
  proc.creds_ = creds;
  return Status::Ok();
}

Result<Creds> Engine::creds(Pid tid) const {
  TaskRef t = lookup_task(tid);
  if (!t) return Status::Error(ESRCH, "no task " + std::to_string(tid));
  SharedLock<RwLock> cs(css_set_lock_);
  return t->process().creds_;
}

Result<Pid> Engine::tgid_of(Pid tid) const {
  TaskRef t = lookup_task(tid);
  if (!t) return Status::Error(ESRCH, "no task " + std::to_string(tid));
  return t->process().tgid();
}

Result<std::vector<Pid>> Engine::threads_of(Pid tid) const {
  TaskRef t = lookup_task(tid);
  if (!t) return Status::Error(ESRCH, "no task " + std::to_string(tid));
  std::vector<Pid> out;
  SharedLock<RwLock> cs(css_set_lock_);
  const Process& proc = t->process();
  for (const Task& th : proc.threads_)
    if (th.tid() == proc.tgid_) out.insert(out.begin(), th.tid());
    else out.push_back(th.tid());
  return out;
}

MmRef::MmRef(Mm* mm) : mm_(mm) {
  mm_->engine_->nr_mm_refs_.fetch_add(1, std::memory_order_relaxed);
}

MmRef::~MmRef() {
  if (!mm_) return;
  // Put first: until the count drops, the checker allows for this ref.
  Engine* engine = mm_->engine_;
  mm_->put();
  engine->nr_mm_refs_.fetch_sub(1, std::memory_order_relaxed);
}

Status Engine::set_pid_max(Pid pid_max) {
  if (pid_max < 2 || pid_max > TaskTable::kMaxPid + 1)
    return Status::Error(EINVAL, "pid_max out of range");
  ExclusiveLock<RwLock> t(task_table_lock_);
  task_table_.set_pid_max(pid_max);
  return Status::Ok();
}

Result<MmRef> Engine::mm_of(Pid tid) const {
  TaskRef t = lookup_task(tid);
  if (!t) return Status::Error(ESRCH, "no task " + std::to_string(tid));
  // exec swaps the pointer and then drops the old reference: take ours
  // under the process lock so the swap cannot free it in between.
  // A zombie leader's process lives on with its other threads: its
  // address space is still theirs.
  SharedLock<RwSem> ptg(t->process().threadgroup_lock_);
  Mm* mm = t->process().mm();
  mm->get();
  return MmRef(mm);
}

Result<CgroupPtr> Engine::task_cgroup(Pid tid, const Hierarchy& h) const {
  TaskRef t = lookup_task(tid);
  if (!t) return Status::Error(ESRCH, "no task " + std::to_string(tid));
  SharedLock<RwLock> cs(css_set_lock_);
  CssSet* cset = t->cset();
  if (!cset) return Status::Error(ESRCH, "task " + std::to_string(tid) + " has exited");
  return CgroupPtr(cset->cgroup(h.id()));
}

}  // namespace cgcore

