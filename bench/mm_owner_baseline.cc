#include "bench/mm_owner_baseline.h"

#include <cstddef>

namespace cgcore::bench::mm_owner {

Proc* Model::proc_of_tasks_node(Hook* h) {
  return reinterpret_cast<Proc*>(reinterpret_cast<char*>(h) - offsetof(Proc, tasks_node));
}
Proc* Model::proc_of_sibling_node(Hook* h) {
  return reinterpret_cast<Proc*>(reinterpret_cast<char*>(h) - offsetof(Proc, sibling_node));
}
Task* Model::task_of_thread_node(Hook* h) {
  return reinterpret_cast<Task*>(reinterpret_cast<char*>(h) - offsetof(Task, thread_node));
}

Model::Model() {
  init_ = new_proc(nullptr);
  new_task(init_, nullptr, 0);  // init: a kernel-thread-like task without mm
}

Model::~Model() {
  // Free everything still alive (threads, processes, address spaces).
  while (all_procs_.linked()) {
    Proc* p = proc_of_tasks_node(all_procs_.next);
    while (p->threads.linked()) {
      Task* t = task_of_thread_node(p->threads.next);
      if (t->mm && --t->mm->users == 0) delete t->mm;
      t->thread_node.unlink();
      delete t;
    }
    p->tasks_node.unlink();
    delete p;
  }
}

Proc* Model::new_proc(Proc* parent) {
  Proc* p = new Proc;
  p->tgid = next_id_;
  p->parent = parent;
  p->tasks_node.insert_before(all_procs_);  // tail: creation order
  if (parent) p->sibling_node.insert_before(parent->children);
  ++nr_procs_;
  return p;
}

Task* Model::new_task(Proc* proc, Mm* mm, int32_t memcg) {
  Task* t = new Task;
  t->tid = next_id_++;
  t->proc = proc;
  t->mm = mm;
  t->memcg = memcg;
  if (mm) ++mm->users;
  t->thread_node.insert_before(proc->threads);
  ++proc->nr_threads;
  return t;
}

Task* Model::first_thread(Proc* proc) {
  return proc->threads.linked() ? task_of_thread_node(proc->threads.next) : nullptr;
}

Task* Model::spawn() {
  Proc* p = new_proc(init_);
  Mm* mm = new Mm;
  Task* t = new_task(p, mm, 0);
  mm->owner = t;
  return t;
}

Task* Model::fork(Task* parent) {
  Proc* p = new_proc(parent->proc);
  Mm* mm = new Mm;  // dup_mm: a copy
  Task* t = new_task(p, mm, parent->memcg);
  mm->owner = t;  // mm_init_owner(mm, p)
  return t;
}

Task* Model::clone_thread(Task* t) { return new_task(t->proc, t->mm, t->memcg); }

void Model::update_next_owner(Mm* mm, Task* p) {
  if (mm->owner != p) return;  // not the owner: someone else's problem
  if (mm->users <= 1) {        // no other user (p still counts here)
    mm->owner = nullptr;
    return;
  }
  Task* found = nullptr;
  // Search in the children.
  for (Hook* h = p->proc->children.next; !found && h != &p->proc->children; h = h->next) {
    Task* c = first_thread(proc_of_sibling_node(h));
    if (c && c->mm == mm) found = c;
  }
  // Search in the siblings.
  if (!found && p->proc->parent) {
    Hook& head = p->proc->parent->children;
    for (Hook* h = head.next; !found && h != &head; h = h->next) {
      Task* c = first_thread(proc_of_sibling_node(h));
      if (c && c->mm == mm) found = c;
    }
  }
  // Search through everything else: for_each_process, for_each_thread,
  // stopping at each process's first thread that has an address space.
  for (Hook* h = all_procs_.next; !found && h != &all_procs_; h = h->next) {
    ++walk_steps_;
    Proc* g = proc_of_tasks_node(h);
    for (Hook* th = g->threads.next; th != &g->threads; th = th->next) {
      Task* c = task_of_thread_node(th);
      if (c->mm == mm) {
        found = c;
        break;
      }
      if (c->mm) break;
    }
  }
  mm->owner = found;  // null: racing with get_task_mm users, as the kernel
}

void Model::exit_task(Task* t) {
  // exit_mm: leave the address space, then find it a new owner, then mmput.
  if (Mm* mm = t->mm) {
    t->mm = nullptr;
    update_next_owner(mm, t);
    if (--mm->users == 0) delete mm;
  }
  Proc* p = t->proc;
  t->thread_node.unlink();
  --p->nr_threads;
  delete t;
  if (p->nr_threads > 0) return;
  // The process ends: its children go to init (forget_original_parent).
  while (p->children.linked()) {
    Proc* c = proc_of_sibling_node(p->children.next);
    c->sibling_node.unlink();
    c->parent = init_;
    c->sibling_node.insert_before(init_->children);
  }
  p->sibling_node.unlink();
  p->tasks_node.unlink();
  --nr_procs_;
  delete p;
}

}  // namespace cgcore::bench::mm_owner
