// mm_owner_baseline: a small model of the kernel's old mm->owner scheme,
// kept only as cgbench's point of comparison for cgcore's mm->memcg model
// (docs/design-history.md). It is not part of cgcore.
//
// Before that patch an address space pointed at the task that "owns" it
// (mm->owner), and its memory cgroup was found through that task. When the
// owner exited (exit_mm) while others still used the address space,
// mm_update_next_owner() looked for a new owner: among the exiting task's
// children, then its siblings, then — "we should not get here often" — over
// every process of the system (for_each_process), checking the first thread
// of each that has an address space. A multi-threaded process whose leader
// exits first reaches that last walk, and so does a CLONE_VM child whose
// parent exits: the exit then costs time proportional to the number of
// processes created before it.
//
// The model keeps just what that walk touches: processes in creation order
// (the kernel's init_task.tasks list), each with its threads, its children
// and its place among its parent's children; tasks with their address space;
// address spaces with their owner and user count. Memory cgroups are plain
// ids: mm_memcg() is mem_cgroup_from_task(mm->owner).
//
// Not thread-safe (one benchmark thread drives it).
#pragma once

#include <cstdint>

namespace cgcore::bench::mm_owner {

struct Task;
struct Proc;

// An intrusive doubly-linked list hook.
struct Hook {
  Hook* prev = this;
  Hook* next = this;
  bool linked() const { return next != this; }
  void unlink() {
    prev->next = next;
    next->prev = prev;
    prev = next = this;
  }
  void insert_before(Hook& pos) {  // this goes just before pos
    prev = pos.prev;
    next = &pos;
    pos.prev->next = this;
    pos.prev = this;
  }
};

struct Mm {
  Task* owner = nullptr;  // the kernel's mm->owner
  int32_t users = 0;      // mm_users: tasks using it
};

struct Task {
  int32_t tid = 0;
  Proc* proc = nullptr;
  Mm* mm = nullptr;  // null once the task has left its address space
  int32_t memcg = 0;  // the task's memory cgroup (its css)
  Hook thread_node;  // on proc->threads
};

struct Proc {
  int32_t tgid = 0;
  Proc* parent = nullptr;  // the real parent's process
  Hook tasks_node;         // on the model's process list (creation order)
  Hook sibling_node;       // on parent->children
  Hook children;           // head: child processes
  Hook threads;            // head: live threads, leader first
  int32_t nr_threads = 0;
};

class Model {
 public:
  Model();
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // A new one-thread process, child of init, with its own address space.
  Task* spawn();
  // `parent` forks: a new process (child of parent's process) with a copy
  // of the address space, whose owner is the child (mm_init_owner).
  Task* fork(Task* parent);
  // A new thread in t's process, sharing its address space.
  Task* clone_thread(Task* t);
  // Task `t` exits: exit_mm (the next-owner search if it owned its address
  // space), then it leaves its process; the process ends with its last
  // thread, its children going to init.
  void exit_task(Task* t);

  // The memory cgroup the address space is charged to: its owner's.
  int32_t mm_memcg(const Mm& mm) const { return mm.owner ? mm.owner->memcg : 0; }
  int64_t nr_procs() const { return nr_procs_; }
  // Processes visited by next-owner walks so far (for the report).
  int64_t walk_steps() const { return walk_steps_; }

 private:
  Proc* new_proc(Proc* parent);
  Task* new_task(Proc* proc, Mm* mm, int32_t memcg);
  // The kernel's mm_update_next_owner(mm), called by exiting task `p` after
  // it cleared its own mm pointer.
  void update_next_owner(Mm* mm, Task* p);
  static Task* first_thread(Proc* proc);
  static Proc* proc_of_tasks_node(Hook* h);
  static Proc* proc_of_sibling_node(Hook* h);
  static Task* task_of_thread_node(Hook* h);

  Proc* init_ = nullptr;
  Hook all_procs_;  // for_each_process order
  int32_t next_id_ = 1;
  int64_t nr_procs_ = 0;
  int64_t walk_steps_ = 0;
};

}  // namespace cgcore::bench::mm_owner
