// Engine: construction, controllers, hierarchies and cgroups.
#include "core/engine.h"

#include <algorithm>
#include <new>

#include "core/migration.h"

namespace cgcore {

namespace {

// Names the kernel refuses for a cgroup directory, and why.
Status check_cgroup_name(std::string_view name) {
  if (name.empty() || name == "." || name == "..")
    return Status::Error(EINVAL, "invalid cgroup name '" + std::string(name) + "'");
  if (name.find('/') != std::string_view::npos)
    return Status::Error(EINVAL, "a cgroup name cannot contain '/'");
  if (name.find('\n') != std::string_view::npos)
    return Status::Error(EINVAL, "a cgroup name cannot contain a newline");
  return Status::Ok();
}

bool valid_controller_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// The kernel's rule for a v1 hierarchy name: [A-Za-z0-9_.-], at most 64.
bool valid_hierarchy_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
  });
}

}  // namespace

Engine::Engine() {
  MutexLock lock(cgroup_mutex_);
  hierarchies_.push_back(std::unique_ptr<Hierarchy>(
      new Hierarchy(this, kDefaultHierarchy, "", next_cgroup_id_++, 0)));
  Cgroup& root = hierarchies_[0]->root();
  cgroups_by_id_.emplace(root.id(), &root);
  const Cgroup* cgroups[1] = {&root};
  Result<CssSet*> cset = find_css_set({cgroups, 1, nullptr, 0});
  if (!cset.ok()) throw std::bad_alloc();  // as the allocations above would
  ExclusiveLock<RwLock> cs(css_set_lock_);
  root_cset_ = cset.value();  // adopts find_css_set's reference
  root_cset_->mg_made_ = false;  // not a migration's
}

Engine::~Engine() {
  // Tear down without running controller hooks: tasks first (their address
  // spaces may hold css references), then css_sets, cgroups, root csses, and
  // the controllers last, since css destructors are their code.
  std::vector<Task*> tasks;
  {
    ExclusiveLock<RwLock> t(task_table_lock_);
    std::vector<Pid> ids;
    task_table_.for_each([&](Pid pid, Task* task) {
      ids.push_back(pid);
      tasks.push_back(task);
    });
    for (Pid pid : ids) task_table_.set(pid, nullptr);  // not while walking the table
  }
  {
    ExclusiveLock<RwLock> cs(css_set_lock_);
    for (Task* task : tasks) {
      if (CssSet* cset = task->cset()) {
        unlink_task_locked(*task);
        task->cset_.store(nullptr);
        task->thread_node.unlink();
        put_cset_locked(cset);
      }
    }
    put_cset_locked(root_cset_);
    root_cset_ = nullptr;
    reclaim_kept_csets_locked();
    while (CssSet* c = cset_cache_) {
      cset_cache_ = c->hash_next_;
      delete_cset(c);
    }
    nr_cached_csets_ = 0;
  }
  for (Task* task : tasks) task->put();

  MutexLock lock(cgroup_mutex_);
  // Remove cgroups bottom-up, as rmdir would.
  for (auto& h : hierarchies_) {
    if (!h) continue;
    std::vector<Cgroup*> order;
    std::vector<Cgroup*> stack{&h->root()};
    while (!stack.empty()) {
      Cgroup* c = stack.back();
      stack.pop_back();
      order.push_back(c);
      for (auto& [name, child] : c->children_) stack.push_back(child);
    }
    for (auto it = order.rbegin(); it != order.rend(); ++it)
      if (!(*it)->is_root()) (void)rmdir_locked(**it);
  }
  for (HierarchyId h = 0; h < static_cast<HierarchyId>(hierarchies_.size()); ++h)
    if (hierarchies_[h]) retire_hierarchy_locked(h);
  for (ControllerId id = 0; id < static_cast<ControllerId>(root_csses_.size()); ++id) {
    controllers_[id]->css_offline(*root_csses_[id]);
    root_csses_[id]->put();
  }
  hierarchies_.clear();
  retired_hierarchies_.clear();
  controllers_.clear();
}

// ------------------------------------------------------------ controllers

Result<ControllerId> Engine::register_controller(std::unique_ptr<Controller> controller) {
  MutexLock lock(cgroup_mutex_);
  if (nr_nonroot_cgroups_ > 0)
    return Status::Error(EBUSY, "controllers must be registered before any cgroup is created");
  std::string_view name = controller->name();
  if (!valid_controller_name(name))
    return Status::Error(EINVAL, "invalid controller name '" + std::string(name) + "'");
  if (find_controller(name))
    return Status::Error(EEXIST, "controller '" + std::string(name) + "' already registered");

  // Stop the world: forks read the csses arrays this grows.
  ExclusiveLock<ShardedRwSem> tg(threadgroup_rwsem_);
  const ControllerId id = static_cast<ControllerId>(controllers_.size());
  std::vector<CssSet*> csets;
  ControllerSet new_domain = domain_controllers_;
  ControllerSet only_id;
  try {
    only_id.set(id);
    if (!controller->threaded()) new_domain.set(id);
    controllers_.reserve(id + 1);
    root_csses_.reserve(id + 1);
    bound_to_.reserve(id + 1);
    for (auto& h : hierarchies_)
      if (h) h->root().csses_.reserve(id + 1);
    SharedLock<RwLock> cs(css_set_lock_);
    csets.reserve(cset_table_.size());
    cset_table_.for_each([&](CssSet& c) {
      c.csses_.reserve(id + 1);
      csets.push_back(&c);
    });
  } catch (const std::bad_alloc&) {
    return Status::Error(ENOMEM, "out of memory registering a controller");
  }

  // The root css is made with the controller in the registry (beyond
  // nr_controllers(), so nobody else looks at it yet).
  controller->engine_ = this;
  controller->id_ = id;
  controllers_.push_back(std::move(controller));  // within capacity
  Css* root_css = nullptr;
  if (Status st = create_csses_locked(default_hierarchy().root(), only_id, {&root_css, 1});
      !st.ok()) {
    controllers_.pop_back();
    return st;
  }

  // Nothing below allocates (capacity reserved above).
  domain_controllers_ = std::move(new_domain);
  root_csses_.push_back(root_css);
  bound_to_.push_back(kDefaultHierarchy);
  hierarchies_[kDefaultHierarchy]->controllers_.set(id);
  for (auto& h : hierarchies_)
    if (h) h->root().csses_.push_back(h->is_default() ? root_css : nullptr);
  {
    ExclusiveLock<RwLock> cs(css_set_lock_);
    for (CssSet* c : csets) cset_table_.erase(c);
    for (CssSet* c : csets) {
      c->csses_.push_back(root_css);
      root_css->get();
      std::vector<const Cgroup*> cgroups(c->nr_links_);
      for (int i = 0; i < c->nr_links_; ++i) cgroups[i] = c->links_[i].cgroup;
      c->hash_ = CssSetTable::hash({cgroups.data(), c->nr_links_, c->csses_.data(), c->csses_.size()});
      cset_table_.insert(c);
    }
  }
  nr_controllers_.store(id + 1, std::memory_order_release);
  return id;
}

Controller* Engine::find_controller(std::string_view name) const {
  for (const auto& c : controllers_)
    if (c->name() == name) return c.get();
  return nullptr;
}

Result<int> Engine::reserve_mm_slot() {
  MutexLock lock(cgroup_mutex_);
  return reserve_mm_slot_locked();
}

Result<int> Engine::reserve_mm_slot_locked() {
  cgroup_mutex_.AssertHeld();
  if (mm_slots_used_ >= Mm::kSlots) return Status::Error(ENOSPC, "no address-space slot left");
  return mm_slots_used_++;
}

// ------------------------------------------------------------ hierarchies

std::vector<Hierarchy*> Engine::hierarchies() const {
  MutexLock lock(cgroup_mutex_);
  return hierarchies_locked();
}

std::vector<Hierarchy*> Engine::hierarchies_locked() const {
  cgroup_mutex_.AssertHeld();
  std::vector<Hierarchy*> out;
  for (const auto& h : hierarchies_)
    if (h) out.push_back(h.get());
  return out;
}

Hierarchy& Engine::hierarchy_of_locked(ControllerId id) const {
  cgroup_mutex_.AssertHeld();
  return *hierarchies_[bound_to_[id]];
}

Result<Hierarchy*> Engine::mount(const std::vector<std::string>& names, std::string_view name) {
  MutexLock lock(cgroup_mutex_);
  if (!name.empty() && !valid_hierarchy_name(name))
    return Status::Error(EINVAL, "invalid hierarchy name '" + std::string(name) + "'");
  ControllerSet wanted;
  for (const std::string& n : names) {
    Controller* c = find_controller(n);
    if (!c) return Status::Error(EINVAL, "unknown controller '" + n + "'");
    wanted.set(c->id());
  }
  if (wanted.empty() && name.empty())
    return Status::Error(EINVAL, "a hierarchy without controllers needs a name");

  // An existing hierarchy with the same name, or (no name given) the same
  // controllers, is mounted again.
  for (auto& h : hierarchies_) {
    if (!h || h->is_default()) continue;
    if (!name.empty()) {
      if (h->name() != name) continue;
      if (!wanted.empty() && !(wanted == h->controllers_))
        return Status::Error(EBUSY, "hierarchy '" + std::string(name) +
                                        "' exists with other controllers");
      return h.get();
    }
    if (!wanted.empty() && wanted == h->controllers_) return h.get();
  }

  Status busy;
  Hierarchy& dfl = default_hierarchy();
  wanted.for_each([&](ControllerId id) {
    if (!busy.ok()) return;
    if (bound_to_[id] != kDefaultHierarchy)
      busy = Status::Error(EBUSY, "controller '" + std::string(controllers_[id]->name()) +
                                      "' is bound to another hierarchy");
    else if (dfl.root().subtree_control_.test(id))
      busy = Status::Error(EBUSY, "controller '" + std::string(controllers_[id]->name()) +
                                      "' is in use in the unified hierarchy");
  });
  if (!busy.ok()) return busy;

  HierarchyId h = 1;
  while (h < static_cast<HierarchyId>(hierarchies_.size()) && hierarchies_[h]) ++h;
  try {
    if (h == static_cast<HierarchyId>(hierarchies_.size())) hierarchies_.emplace_back();
    hierarchies_[h].reset(
        new Hierarchy(this, h, std::string(name), next_cgroup_id_++, nr_controllers()));
  } catch (const std::bad_alloc&) {
    return Status::Error(ENOMEM, "out of memory creating a hierarchy");
  }
  Hierarchy& hier = *hierarchies_[h];
  hier.controllers_ = wanted;
  try {
    cgroups_by_id_.emplace(hier.root().id(), &hier.root());
  } catch (const std::bad_alloc&) {
    retire_hierarchy_locked(h);
    return Status::Error(ENOMEM, "out of memory creating a hierarchy");
  }

  ExclusiveLock<ShardedRwSem> tg(threadgroup_rwsem_);
  if (Status st = rehome_all_csets_locked(h, &hier.root()); !st.ok()) {
    retire_hierarchy_locked(h);
    return st;
  }
  wanted.for_each([&](ControllerId id) {
    cgroup_mutex_.AssertHeld();
    move_root_css_locked(id, hier.root());
    bound_to_[id] = h;
    dfl.controllers_.reset(id);
    controllers_[id]->bind(*root_csses_[id]);
  });
  return &hier;
}

Status Engine::destroy_hierarchy(Hierarchy& hier) {
  MutexLock lock(cgroup_mutex_);
  if (hier.is_default()) return Status::Error(EINVAL, "the default hierarchy cannot be destroyed");
  if (!hier.root().children_.empty())
    return Status::Error(EBUSY, "the hierarchy still has cgroups");
  ExclusiveLock<ShardedRwSem> tg(threadgroup_rwsem_);
  if (Status st = rehome_all_csets_locked(hier.id(), nullptr); !st.ok()) return st;
  Hierarchy& dfl = default_hierarchy();
  hier.controllers_.for_each([&](ControllerId id) {
    cgroup_mutex_.AssertHeld();
    move_root_css_locked(id, dfl.root());
    bound_to_[id] = kDefaultHierarchy;
    dfl.controllers_.set(id);
    controllers_[id]->bind(*root_csses_[id]);
  });
  retire_hierarchy_locked(hier.id());
  return Status::Ok();
}

void Engine::retire_hierarchy_locked(HierarchyId h) {
  cgroup_mutex_.AssertHeld();
  std::unique_ptr<Hierarchy> hier = std::move(hierarchies_[h]);
  Cgroup& root = hier->root();
  cgroups_by_id_.erase(root.id());
  std::fill(root.csses_.begin(), root.csses_.end(), nullptr);  // root csses live on
  root.dead_.store(true, std::memory_order_release);
  try {
    retired_hierarchies_.push_back(std::move(hier));
  } catch (const std::bad_alloc&) {
    // Keeping it is a courtesy to dead cgroups that still point at it; if
    // even that fails, leak it rather than leave them dangling.
    (void)hier.release();
  }
  root.put();
}

void Engine::move_root_css_locked(ControllerId id, Cgroup& to) {
  cgroup_mutex_.AssertHeld();
  Css* css = root_csses_[id];
  css->cgroup()->csses_[id] = nullptr;
  to.csses_[id] = css;
  css->cgroup_.store(&to, std::memory_order_release);
}

Status Engine::rehome_all_csets_locked(HierarchyId h, Cgroup* root) {
  cgroup_mutex_.AssertHeld();
  threadgroup_rwsem_.AssertHeld();
  MigrationContext ctx(*this);
  ctx.include_exiting_tasks();  // and keep no source: every key changes
  {
    ExclusiveLock<RwLock> cs(css_set_lock_);
    reclaim_kept_csets_locked();  // nothing to re-home in them
    cset_table_.for_each([&](CssSet& cset) { ctx.add_src(cset, root, h); });
  }
  if (Status st = ctx.prepare_dst(); !st.ok()) return st;
  {
    ExclusiveLock<RwLock> cs(css_set_lock_);
    ctx.add_all_tasks();
    // The root css_set follows too: pin its destination before finish()
    // drops the context's pins.
    CssSet* old_root = root_cset_;
    if (!old_root->mg_dst_cset_) lock_debug::fail("root css_set not re-homed", old_root);
    root_cset_ = old_root->mg_dst_cset_;
    root_cset_->get();
    put_cset_locked(old_root);
  }
  // No controller's css changes in a rebind, so nothing can veto.
  return ctx.execute();
}

// ------------------------------------------------------------ cgroups

Cgroup* Engine::new_cgroup(Hierarchy* h, Cgroup* parent, std::string name) {
  cgroup_mutex_.AssertHeld();
  auto* cg = new Cgroup(this, h, parent, std::move(name), next_cgroup_id_++, nr_controllers());
  live_cgroups_.fetch_add(1, std::memory_order_relaxed);
  return cg;
}

void Engine::free_cgroup(Cgroup* cgroup) {
  if (!cgroup->dead() || !cgroup->cset_links_.empty() || !cgroup->children_.empty())
    lock_debug::fail("freeing a cgroup still in use", cgroup);
  Cgroup* parent = cgroup->parent_;
  {
    MutexLock d(dying_mu_);
    dying_cgroups_.erase(cgroup);
  }
  delete cgroup;
  if (parent) live_cgroups_.fetch_sub(1, std::memory_order_relaxed);  // roots are not counted
  if (parent) parent->put();
}

void Engine::free_css(Css* css) {
  Css* parent = css->parent_;
  Cgroup* cgroup = css->is_root() ? nullptr : css->cgroup();
  {
    MutexLock d(dying_mu_);
    dying_csses_.erase(css);
  }
  delete css;
  live_csses_.fetch_sub(1, std::memory_order_relaxed);
  if (parent) parent->put();
  if (cgroup) cgroup->put();
}

Status Engine::create_csses_locked(Cgroup& cgroup, const ControllerSet& ids,
                                   std::span<Css*> out) {
  cgroup_mutex_.AssertHeld();
  // Every css is allocated before any is onlined, so that an allocation
  // failure reaches no controller's css_online (and needs no css_offline).
  Status st;
  size_t n = 0;
  ids.for_each([&](ControllerId id) {
    cgroup_mutex_.AssertHeld();
    if (!st.ok()) return;
    Controller& ctl = *controllers_[id];
    Css* parent_css = cgroup.is_root() ? nullptr : effective_css_locked(*cgroup.parent_, id);
    Result<std::unique_ptr<Css>> r = ctl.css_alloc(parent_css);
    if (!r.ok()) {
      st = r.status();
      return;
    }
    Css* css = r.value().release();
    live_csses_.fetch_add(1, std::memory_order_relaxed);
    css->cgroup_.store(&cgroup, std::memory_order_release);
    css->controller_ = &ctl;
    css->engine_ = this;
    css->id_ = id;
    css->parent_ = parent_css;
    // A root css holds no reference on its cgroup: it moves between the
    // roots of the hierarchies its controller is bound to.
    if (parent_css) {
      parent_css->get();
      cgroup.get();
    }
    out[n++] = css;
  });
  for (size_t i = 0; st.ok() && i < n; ++i) {
    st = out[i]->controller().css_online(*out[i]);
    if (st.ok()) out[i]->online_.store(true, std::memory_order_release);
  }
  if (!st.ok()) discard_csses_locked(out.first(n));
  return st;
}

void Engine::discard_csses_locked(std::span<Css* const> csses) {
  cgroup_mutex_.AssertHeld();
  for (size_t i = csses.size(); i-- > 0;) {
    Css* css = csses[i];
    if (css->online()) {
      css->controller().css_offline(*css);
      css->online_.store(false, std::memory_order_release);
    }
    css->put();
  }
}

Css* Engine::effective_css_locked(const Cgroup& cgroup, ControllerId id) const {
  cgroup_mutex_.AssertHeld();
  if (bound_to_[id] != cgroup.hierarchy().id()) return nullptr;
  for (const Cgroup* c = &cgroup; c; c = c->parent_)
    if (c->csses_[id]) return c->csses_[id];
  return nullptr;
}

Result<CgroupPtr> Engine::mkdir(Cgroup& parent, std::string_view name) {
  MutexLock lock(cgroup_mutex_);
  return mkdir_locked(parent, name);
}

Result<CgroupPtr> Engine::mkdir_locked(Cgroup& parent, std::string_view name) {
  cgroup_mutex_.AssertHeld();
  if (Status st = check_cgroup_name(name); !st.ok()) return st;
  if (parent.dead()) return Status::Error(ENOENT, "the parent cgroup was removed");
  if (parent.children_.find(name) != parent.children_.end())
    return Status::Error(EEXIST, "cgroup '" + std::string(name) + "' exists");
  int level = 1;
  for (const Cgroup* c = &parent; c; c = c->parent_, ++level) {
    if (c->nr_descendants_ >= c->max_descendants_)
      return Status::Error(EAGAIN, "cgroup.max.descendants reached");
    if (level > c->max_depth_) return Status::Error(EAGAIN, "cgroup.max.depth reached");
  }

  Hierarchy& hier = parent.hierarchy();
  const ControllerSet active = hier.is_default() ? parent.subtree_control_ : hier.controllers_;
  size_t nr_active = 0;
  active.for_each([&](ControllerId) { ++nr_active; });
  Cgroup* cg = nullptr;
  std::vector<Css*> made;
  try {
    cg = new_cgroup(&hier, &parent, std::string(name));
    made.resize(nr_active);
  } catch (const std::bad_alloc&) {
    if (cg) {
      cg->dead_.store(true);
      cg->put();
    }
    return Status::Error(ENOMEM, "out of memory creating a cgroup");
  }

  // The v1 flags are inherited before the controllers see the cgroup
  // (cpuset's css_online reads clone_children, as in the kernel).
  cg->notify_on_release_.store(parent.notify_on_release());
  cg->clone_children_.store(parent.clone_children());

  // Every css, all or nothing, before the cgroup appears anywhere: a failure
  // leaves no css behind and the cgroup never seen.
  Status st = create_csses_locked(*cg, active, made);
  if (st.ok()) {
    for (Css* css : made) cg->csses_[css->id_] = css;
    try {
      cgroups_by_id_.emplace(cg->id(), cg);
      parent.children_.emplace(std::string(name), cg);
    } catch (const std::bad_alloc&) {
      cgroups_by_id_.erase(cg->id());
      std::fill(cg->csses_.begin(), cg->csses_.end(), nullptr);
      discard_csses_locked(made);
      st = Status::Error(ENOMEM, "out of memory creating a cgroup");
    }
  }
  if (!st.ok()) {
    cg->dead_.store(true);
    cg->put();
    return st;
  }

  for (Cgroup* c = &parent; c; c = c->parent_) ++c->nr_descendants_;
  ++hier.nr_cgroups_;
  ++nr_nonroot_cgroups_;
  return CgroupPtr(cg);
}

Status Engine::rmdir(Cgroup& cgroup) {
  MutexLock lock(cgroup_mutex_);
  return rmdir_locked(cgroup);
}

Status Engine::rmdir_locked(Cgroup& cgroup) {
  cgroup_mutex_.AssertHeld();
  if (cgroup.is_root()) return Status::Error(EBUSY, "a hierarchy's root cannot be removed");
  if (cgroup.dead()) return Status::Error(ENOENT, "the cgroup was already removed");
  if (!cgroup.children_.empty()) return Status::Error(EBUSY, "the cgroup has children");
  {
    // Only a migration (cgroup mutex) can put tasks into an empty cgroup,
    // so the answer stays true after the lock is dropped. Task-less
    // css_sets may still link the cgroup: those of tasks whose exit is
    // finishing (their reference drops after the exit hooks). They keep the
    // removed cgroup's object alive until then, as in the kernel. Kept
    // css_sets go now: they must not keep it alive.
    ExclusiveLock<RwLock> cs(css_set_lock_);
    if (cgroup.populated()) return Status::Error(EBUSY, "the cgroup has tasks");
    // Dead first: a css_set released after this hold is not kept.
    cgroup.dead_.store(true, std::memory_order_release);
    reclaim_kept_csets_locked(cgroup);
  }
  Cgroup& parent = *cgroup.parent_;
  if (cgroup.dom_cgrp_ != &cgroup) --parent.nr_threaded_children_;
  parent.children_.erase(parent.children_.find(cgroup.name_));
  cgroups_by_id_.erase(cgroup.id());
  for (Cgroup* c = &parent; c; c = c->parent_) --c->nr_descendants_;
  --cgroup.hierarchy_->nr_cgroups_;
  --nr_nonroot_cgroups_;
  for (size_t id = cgroup.csses_.size(); id-- > 0;) {
    Css* css = cgroup.csses_[id];
    if (!css) continue;
    cgroup.csses_[id] = nullptr;
    // Only css_sets linking this cgroup hold its csses (it has no
    // children), and none of those can be kept any more.
    kill_css_locked(css, /*reclaim_kept=*/false);
  }
  {
    MutexLock d(dying_mu_);
    dying_cgroups_.insert(&cgroup);
  }
  cgroup.put();  // the parent's reference
  return Status::Ok();
}

Status Engine::rename(Cgroup& cgroup, std::string_view new_name) {
  MutexLock lock(cgroup_mutex_);
  return rename_locked(cgroup, new_name);
}

Status Engine::rename_locked(Cgroup& cgroup, std::string_view new_name) {
  cgroup_mutex_.AssertHeld();
  if (cgroup.is_root()) return Status::Error(EBUSY, "a hierarchy's root cannot be renamed");
  if (cgroup.dead()) return Status::Error(ENOENT, "the cgroup was removed");
  if (Status st = check_cgroup_name(new_name); !st.ok()) return st;
  if (cgroup.name_ == new_name) return Status::Ok();
  auto& siblings = cgroup.parent_->children_;
  if (siblings.find(new_name) != siblings.end())
    return Status::Error(EEXIST, "cgroup '" + std::string(new_name) + "' exists");
  std::string key, name;
  try {
    key.assign(new_name);
    name.assign(new_name);
  } catch (const std::bad_alloc&) {
    return Status::Error(ENOMEM, "out of memory renaming a cgroup");
  }
  auto node = siblings.extract(cgroup.name_);
  node.key().swap(key);
  siblings.insert(std::move(node));
  cgroup.name_.swap(name);
  return Status::Ok();
}

void Engine::set_freeze_locked(Cgroup& cgroup, bool freeze) {
  cgroup_mutex_.AssertHeld();
  if (cgroup.freeze_ == freeze) return;
  const bool parent_frozen = cgroup.parent_ && frozen_locked(*cgroup.parent_);
  cgroup.freeze_ = freeze;
  if (parent_frozen) return;  // effective state unchanged below
  // Walk the subtree; a descendant frozen by its own setting is unchanged,
  // and so is everything below it.
  std::vector<Cgroup*> stack{&cgroup};
  while (!stack.empty()) {
    Cgroup* c = stack.back();
    stack.pop_back();
    if (c != &cgroup && c->freeze_) continue;
    for (EngineObserver* o : observers_) o->frozen_changed(*c, freeze);
    for (auto& [name, child] : c->children_) stack.push_back(child);
  }
}

bool Engine::frozen_locked(const Cgroup& cgroup) const {
  cgroup_mutex_.AssertHeld();
  for (const Cgroup* c = &cgroup; c; c = c->parent_)
    if (c->freeze_) return true;
  return false;
}

int Engine::nr_dying_descendants_locked(const Cgroup& cgroup) const {
  cgroup_mutex_.AssertHeld();
  MutexLock d(dying_mu_);
  int n = 0;
  for (const Cgroup* dead : dying_cgroups_)
    for (const Cgroup* c = dead->parent_; c; c = c->parent_)
      if (c == &cgroup) {
        ++n;
        break;
      }
  return n;
}

int Engine::nr_dying_csses_locked(const Cgroup& cgroup, ControllerId id) const {
  cgroup_mutex_.AssertHeld();
  MutexLock d(dying_mu_);
  int n = 0;
  for (const Css* css : dying_csses_) {
    if (css->controller_id() != id) continue;
    for (const Cgroup* c = css->cgroup(); c; c = c->parent_)
      if (c == &cgroup) {
        ++n;
        break;
      }
  }
  return n;
}

Cgroup* Engine::find_cgroup_locked(uint64_t id) const {
  cgroup_mutex_.AssertHeld();
  auto it = cgroups_by_id_.find(id);
  return it == cgroups_by_id_.end() ? nullptr : it->second;
}

CgroupPtr Engine::find_child(Cgroup& parent, std::string_view name) {
  MutexLock lock(cgroup_mutex_);
  auto it = parent.children_.find(name);
  return it == parent.children_.end() ? CgroupPtr() : CgroupPtr(it->second);
}

Status Engine::set_max_depth_locked(Cgroup& cgroup, int depth) {
  cgroup_mutex_.AssertHeld();
  if (depth < 0) return Status::Error(EINVAL, "negative depth");
  cgroup.max_depth_ = depth;
  return Status::Ok();
}

Status Engine::set_max_descendants_locked(Cgroup& cgroup, int n) {
  cgroup_mutex_.AssertHeld();
  if (n < 0) return Status::Error(EINVAL, "negative descendant count");
  cgroup.max_descendants_ = n;
  return Status::Ok();
}

// ------------------------------------------------------------ queries

std::vector<Pid> Engine::cgroup_tids(const Cgroup& cgroup) const {
  std::vector<Pid> out;
  SharedLock<RwLock> cs(css_set_lock_);
  for (const CsetLink& link : cgroup.cset_links_)
    link.cset->for_each_task([&](const Task& t) { out.push_back(t.tid()); });
  return out;
}

std::vector<Pid> Engine::cgroup_tids_locked(const Cgroup& cgroup) const {
  css_set_lock_.AssertReaderHeld();
  std::vector<Pid> out;
  for (const CsetLink& link : cgroup.cset_links_)
    link.cset->for_each_task([&](const Task& t) { out.push_back(t.tid()); });
  return out;
}

std::vector<Pid> Engine::cgroup_tgids(const Cgroup& cgroup) const {
  std::vector<Pid> out;
  SharedLock<RwLock> cs(css_set_lock_);
  for (const CsetLink& link : cgroup.cset_links_)
    link.cset->for_each_task([&](const Task& t) { out.push_back(t.process().tgid()); });
  return out;
}

bool Engine::populated(const Cgroup& cgroup) const {
  SharedLock<RwLock> cs(css_set_lock_);
  return cgroup.populated();
}

size_t Engine::nr_css_sets() const {
  SharedLock<RwLock> cs(css_set_lock_);
  return cset_table_.size();
}

size_t Engine::nr_kept_css_sets() const {
  SharedLock<RwLock> cs(css_set_lock_);
  return static_cast<size_t>(nr_kept_csets_);
}

Engine::ObjectCounts Engine::TEST_object_counts() const {
  return {live_csets_.load(), live_csses_.load(), live_cgroups_.load(),
          live_tasks_.load(), live_processes_.load(), live_mms_.load()};
}

}  // namespace cgcore
