// Task (a thread), Process (a thread group) and Mm (an address space).
//
// A Task is in exactly one css_set while alive; its cset pointer is written
// under the css_set lock and may be read without it by a holder of the task's
// process threadgroup lock (which excludes migration of that process) or as a
// racy hint. A thread-group leader that exits before its other threads stays
// as a zombie (dead, in no css_set) so that the process keeps its id.
//
// Lifetime: tasks and processes are reference counted. The engine's id table
// holds one reference on each task it maps; lookups take one while they work;
// every task holds one on its process; a process holds one on its Mm.
#pragma once

#include <atomic>
#include <cstdint>
#include <utility>

#include "core/compact_list.h"
#include "core/intrusive_list.h"
#include "core/locking.h"
#include "core/types.h"

namespace cgcore {

class Css;
class CssSet;
class Engine;
class Process;

// An address space, shared by the threads of a process and by CLONE_VM /
// vfork children. Carries the sizes the memory controllers account and a few
// css slots a controller can reserve (Engine::reserve_mm_slot) to point the
// address space at the css it charges (the memory controller's mm->memcg).
class Mm {
 public:
  static constexpr int kSlots = 4;

  explicit Mm(Engine* engine) : engine_(engine) {}
  Mm(const Mm&) = delete;
  Mm& operator=(const Mm&) = delete;

  // Held exclusive while an address space's sizes or charges change, and
  // shared by a migration across a transaction that moves charges, so that
  // what the controllers' hooks read of the address space stays true until
  // the commit.
  RwSem& mmap_lock() { return mmap_lock_; }

  // The css a controller's slot points at (null if never set). Switching is
  // an atomic exchange, so that two racing switches never both release one
  // old css: each gets back the pointer it replaced, and that pointer's
  // reference passes to it.
  Css* slot(int i) const { return slots_[i].load(std::memory_order_acquire); }
  Css* exchange_slot(int i, Css* css) {
    return slots_[i].exchange(css, std::memory_order_acq_rel);
  }

  // Address-space size in bytes (memrlimit), and its charged resident and
  // swapped-out bytes (memory). Changed with mmap_lock held exclusive.
  std::atomic<int64_t> total_vm{0};
  std::atomic<int64_t> charged{0};
  std::atomic<int64_t> swapped{0};

  // References: one per process using the address space, one per MmRef.
  // The last put() frees it (controllers' mm_release hooks run first).
  void get() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void put();
  int32_t users() const { return refs_.load(std::memory_order_relaxed); }

 private:
  friend class Engine;
  friend class MigrationContext;
  friend class MmRef;

  Engine* const engine_;
  RwSem mmap_lock_;
  // Guarded by the cgroup mutex: the migration in progress holds mmap_lock
  // shared (see MigrationContext::lock_mms).
  bool mg_locked_ = false;
  Mm* mg_next_ = nullptr;
  std::atomic<Css*> slots_[kSlots] = {};
  std::atomic<int32_t> refs_{1};
};

// An owning reference to an address space.
class MmRef {
 public:
  MmRef() = default;
  explicit MmRef(Mm* mm);  // adopts a reference (counted for the checker)
  MmRef(MmRef&& o) noexcept : mm_(o.mm_) { o.mm_ = nullptr; }
  MmRef& operator=(MmRef&& o) noexcept {
    std::swap(mm_, o.mm_);
    return *this;
  }
  ~MmRef();
  Mm* get() const { return mm_; }
  Mm* operator->() const { return mm_; }
  Mm& operator*() const { return *mm_; }

 private:
  Mm* mm_ = nullptr;
};

class Task {
 public:
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;

  Pid tid() const { return tid_.load(std::memory_order_relaxed); }
  Process& process() const { return *process_; }
  // The task's css_set; null once it has exited. See the file comment.
  CssSet* cset() const { return cset_.load(std::memory_order_acquire); }
  // The task has begun to exit; migration skips it.
  bool exiting() const { return state_.load(std::memory_order_acquire) & kExiting; }
  // The task has exited (unlinked from its css_set).
  bool dead() const { return state_.load(std::memory_order_acquire) & kDead; }

 private:
  friend class Engine;
  friend class MigrationContext;
  friend class TaskSet;
  friend class CssSet;
  friend class Process;
  friend class InvariantChecker;

  static constexpr uint32_t kExiting = 1u << 31;
  static constexpr uint32_t kDead = 1u << 30;
  static constexpr uint32_t kEmbryo = 1u << 29;  // forked, not yet linked
  static constexpr uint32_t kRefMask = kEmbryo - 1;

  Task(Pid tid, Process* process);
  ~Task() = default;
  bool embryo() const { return state_.load(std::memory_order_acquire) & kEmbryo; }
  void get() { state_.fetch_add(1, std::memory_order_relaxed); }
  // Drops a reference; frees the task (and releases its process) on the last.
  void put();

  std::atomic<Pid> tid_;  // changes only when a non-leader execs (de_thread)
  std::atomic<uint32_t> state_;  // flags above | reference count
  Process* const process_;       // holds a reference
  std::atomic<CssSet*> cset_{nullptr};  // holds a reference; written under css_set_lock

 public:
  // Guarded by css_set_lock: on cset()->tasks or ->mg_tasks while alive.
  CompactHook cset_node;
  // Guarded by css_set_lock: on process().threads while alive.
  CompactHook thread_node;
};
// The engine's memory per task is this plus a 4-byte id-table slot.
static_assert(sizeof(Task) <= 40);

class Process {
 public:
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // The process id (the leader's tid). Fixed once published, except that a
  // provisional process takes its real id (Engine::change_task_id).
  Pid tgid() const { return tgid_.load(std::memory_order_relaxed); }
  // Fork, thread creation and exit of this process take it shared;
  // migrating any of its threads, exec and credential changes take it
  // exclusive.
  RwSem& threadgroup_lock() { return threadgroup_lock_; }
  // The address space; changes on exec. Holds a reference.
  Mm* mm() const { return mm_.load(std::memory_order_acquire); }

 private:
  friend class Engine;
  friend class Task;
  friend class MigrationContext;
  friend class InvariantChecker;

  // REQUIRES: in the compact arena (Engine::process_slab_), for threads_.
  Process(Engine* engine, Creds creds, Mm* mm) : engine_(engine), creds_(creds), mm_(mm) {}
  ~Process() = default;
  void get() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void put();

  Engine* const engine_;
  // Set before the process is published; changed only by change_task_id,
  // with the process's threadgroup lock exclusive and the css_set and
  // task-table locks held.
  std::atomic<Pid> tgid_{0};
  RwSem threadgroup_lock_;
  std::atomic<uint32_t> refs_{0};  // one per Task object of the process

  // Written with threadgroup_lock_ exclusive and the css_set lock exclusive;
  // read holding either (threadgroup_lock_ in either mode).
  Creds creds_;
  // Guarded by css_set_lock; changed only under threadgroup_lock_ too, so a
  // holder of that lock exclusive may read it without the css_set lock.
  CompactList<Task, &Task::thread_node> threads_;  // live threads
  int32_t nr_threads_ = 0;

  std::atomic<Mm*> mm_;
};

inline Task::Task(Pid tid, Process* process) : tid_(tid), state_(kEmbryo | 1), process_(process) {
  process_->get();
}

}  // namespace cgcore
