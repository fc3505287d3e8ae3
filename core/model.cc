// Small out-of-line pieces of the model classes: accessors that assert their
// lock, and the reference-count releases.
#include <string>

#include "core/cgroup.h"
#include "core/css.h"
#include "core/engine.h"
#include "core/hierarchy.h"
#include "core/task.h"

namespace cgcore {

// ------------------------------------------------------------ Cgroup

Cgroup::Cgroup(Engine* engine, Hierarchy* hierarchy, Cgroup* parent, std::string name,
               uint64_t id, size_t nr_controllers)
    : engine_(engine),
      hierarchy_(hierarchy),
      parent_(parent),
      level_(parent ? parent->level_ + 1 : 0),
      id_(id),
      name_(std::move(name)),
      csses_(nr_controllers, nullptr),
      dom_cgrp_(this) {
  if (parent_) parent_->get();
}

Cgroup::~Cgroup() = default;

const std::string& Cgroup::name() const {
  engine_->cgroup_mutex_.AssertHeld();
  return name_;
}
Css* Cgroup::css(ControllerId id) const {
  engine_->cgroup_mutex_.AssertHeld();
  return static_cast<size_t>(id) < csses_.size() ? csses_[id] : nullptr;
}
const std::map<std::string, Cgroup*, std::less<>>& Cgroup::children() const {
  engine_->cgroup_mutex_.AssertHeld();
  return children_;
}
const ControllerSet& Cgroup::subtree_control() const {
  engine_->cgroup_mutex_.AssertHeld();
  return subtree_control_;
}
int Cgroup::max_depth() const {
  engine_->cgroup_mutex_.AssertHeld();
  return max_depth_;
}
int Cgroup::max_descendants() const {
  engine_->cgroup_mutex_.AssertHeld();
  return max_descendants_;
}
int Cgroup::nr_descendants() const {
  engine_->cgroup_mutex_.AssertHeld();
  return nr_descendants_;
}
bool Cgroup::self_freeze() const {
  engine_->cgroup_mutex_.AssertHeld();
  return freeze_;
}
std::string Cgroup::path() const {
  engine_->cgroup_mutex_.AssertHeld();
  if (!parent_) return "/";
  std::string p;
  for (const Cgroup* c = this; c->parent_; c = c->parent_) p.insert(0, "/" + c->name_);
  return p;
}
bool Cgroup::populated() const {
  engine_->css_set_lock_.AssertReaderHeld();
  return nr_populated_csets_ + nr_populated_domain_children_ + nr_populated_threaded_children_ > 0;
}
bool Cgroup::has_tasks() const {
  engine_->css_set_lock_.AssertReaderHeld();
  return nr_populated_csets_ > 0;
}

void Cgroup::put() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  engine_->free_cgroup(this);
}

// ------------------------------------------------------------ Hierarchy

Hierarchy::Hierarchy(Engine* engine, HierarchyId id, std::string name, uint64_t root_id,
                     size_t nr_controllers)
    : engine_(engine),
      id_(id),
      name_(std::move(name)),
      root_(new Cgroup(engine, this, nullptr, "", root_id, nr_controllers)) {}

// The root cgroup is not deleted here: removed cgroups of the hierarchy may
// still reference it (Engine::retire_hierarchy_locked drops its base
// reference, and the last reference frees it).
Hierarchy::~Hierarchy() = default;

const ControllerSet& Hierarchy::controllers() const {
  engine_->cgroup_mutex_.AssertHeld();
  return controllers_;
}
int Hierarchy::nr_cgroups() const {
  engine_->cgroup_mutex_.AssertHeld();
  return nr_cgroups_;
}

// ------------------------------------------------------------ Css, Task, Process

void Css::put() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  engine_->free_css(this);
}

void Task::put() {
  if ((state_.fetch_sub(1, std::memory_order_acq_rel) & kRefMask) != 1) return;
  Process* p = process_;
  Engine* engine = p->engine_;
  this->~Task();
  engine->task_slab_.deallocate(this);
  engine->live_tasks_.fetch_sub(1, std::memory_order_relaxed);
  p->put();
}

void Process::put() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  engine_->free_process(this);
}

}  // namespace cgcore
