// Engine: cgroup v2's cgroup.subtree_control — enabling and disabling
// controllers for a cgroup's children, as one transaction.
#include <algorithm>
#include <new>

#include "core/engine.h"
#include "core/migration.h"

namespace cgcore {

ControllerSet Engine::available_controllers_locked(const Cgroup& cgroup) const {
  cgroup_mutex_.AssertHeld();
  if (cgroup.is_root()) {
    ControllerSet set = cgroup.hierarchy_->controllers_;
    if (cgroup.hierarchy_->is_default())
      cgroup.hierarchy_->controllers_.for_each([&](ControllerId id) {
        if (!controllers_[id]->on_v2()) set.reset(id);
      });
    return set;
  }
  ControllerSet set = cgroup.parent_->subtree_control_;
  if (is_threaded_locked(cgroup)) domain_controllers().for_each([&](ControllerId id) { set.reset(id); });
  return set;
}

void Engine::kill_css_locked(Css* css, bool reclaim_kept) {
  cgroup_mutex_.AssertHeld();
  css->controller().css_offline(*css);
  css->online_.store(false, std::memory_order_release);
  if (reclaim_kept) {
    // Offline first: a css_set released after this hold is not kept.
    ExclusiveLock<RwLock> cs(css_set_lock_);
    kept_csets_.for_each_safe([&](CssSet& c) {
      css_set_lock_.AssertHeld();
      if (std::find(c.csses_.begin(), c.csses_.end(), css) != c.csses_.end())
        destroy_cset_locked(&c);
    });
  }
  {
    MutexLock d(dying_mu_);
    dying_csses_.insert(css);
  }
  css->put();
}

Status Engine::set_subtree_control(Cgroup& cgroup, const ControllerSet& enable,
                                   const ControllerSet& disable) {
  MutexLock lock(cgroup_mutex_);
  return set_subtree_control_locked(cgroup, enable, disable);
}

Status Engine::set_subtree_control_locked(Cgroup& cgroup, const ControllerSet& enable_in,
                                          const ControllerSet& disable_in) {
  cgroup_mutex_.AssertHeld();
  if (!cgroup.hierarchy_->is_default())
    return Status::Error(EINVAL, "subtree_control exists only in the default hierarchy");
  if (cgroup.dead()) return Status::Error(ENODEV, "the cgroup was removed");
  const ControllerSet available = available_controllers_locked(cgroup);
  ControllerSet enable, disable;
  Status st;
  enable_in.for_each([&](ControllerId id) {
    if (disable_in.test(id))
      st = Status::Error(EINVAL, "a controller cannot be both enabled and disabled");
    else if (!available.test(id))
      st = Status::Error(ENOENT, "controller '" + std::string(controllers_[id]->name()) +
                                     "' is not available here");
    else if (!cgroup.subtree_control_.test(id))
      enable.set(id);
  });
  if (!st.ok()) return st;
  disable_in.for_each([&](ControllerId id) {
    cgroup_mutex_.AssertHeld();
    if (!cgroup.subtree_control_.test(id)) return;
    for (auto& [name, child] : cgroup.children_)
      if (child->subtree_control_.test(id))
        st = Status::Error(EBUSY, "a child still enables '" +
                                      std::string(controllers_[id]->name()) + "'");
    disable.set(id);
  });
  if (!st.ok()) return st;
  if (enable.empty() && disable.empty()) return Status::Ok();
  if (!enable.empty()) {
    if (!is_valid_domain_locked(*cgroup.dom_cgrp_))
      return Status::Error(EOPNOTSUPP, "an invalid domain cannot enable controllers");
    bool domain_enable = false;
    const ControllerSet domain = domain_controllers();
    enable.for_each([&](ControllerId id) { domain_enable |= domain.test(id); });
    // Threaded controllers live with internal competition; domain ones do
    // not, and cannot be enabled inside a threaded subtree.
    if (!cgroup.is_root() && domain_enable) {
      if (is_thread_root_locked(cgroup) || is_threaded_locked(cgroup))
        return Status::Error(EOPNOTSUPP, "domain controllers cannot be enabled in a threaded subtree");
      SharedLock<RwLock> cs(css_set_lock_);
      if (cgroup.has_tasks())
        return Status::Error(EBUSY, "the cgroup has processes of its own (no internal processes)");
    }
  }

  // 1. Create the children's new csses (may fail: nothing is visible yet).
  struct Change {
    Cgroup* child;
    ControllerId id;
    Css* css;  // the new css (enable) or the one taken out (disable)
  };
  std::vector<Change> made, removed;
  size_t nr_enable = 0, nr_disable = 0;
  enable.for_each([&](ControllerId) { ++nr_enable; });
  disable.for_each([&](ControllerId) { ++nr_disable; });
  try {
    made.reserve(cgroup.children_.size() * nr_enable);
    removed.reserve(cgroup.children_.size() * nr_disable);
  } catch (const std::bad_alloc&) {
    return Status::Error(ENOMEM, "out of memory changing subtree_control");
  }
  const ControllerSet domain = domain_controllers();
  std::vector<Css*> batch;
  ControllerSet threaded_enable;  // what a threaded child gets: no domain controllers
  try {
    batch.resize(nr_enable);
    enable.for_each([&](ControllerId id) {
      if (!domain.test(id)) threaded_enable.set(id);
    });
  } catch (const std::bad_alloc&) {
    return Status::Error(ENOMEM, "out of memory changing subtree_control");
  }
  for (auto& [name, child] : cgroup.children_) {
    const ControllerSet& ids = is_threaded_locked(*child) ? threaded_enable : enable;
    st = create_csses_locked(*child, ids, batch);
    if (!st.ok()) break;
    size_t i = 0;
    ids.for_each([&, child = child](ControllerId id) { made.push_back({child, id, batch[i++]}); });
  }
  if (!st.ok()) {
    for (auto it = made.rbegin(); it != made.rend(); ++it) discard_csses_locked({&it->css, 1});
    return st;
  }

  // 2. Install the new state; keep what it replaces for the way back.
  const ControllerSet old_control = cgroup.subtree_control_;
  for (const Change& c : made) c.child->csses_[c.id] = c.css;
  for (auto& [name, child] : cgroup.children_) {
    disable.for_each([&, child = child](ControllerId id) {
      cgroup_mutex_.AssertHeld();
      if (!child->csses_[id]) return;  // a threaded child without a domain css
      removed.push_back({child, id, child->csses_[id]});
      child->csses_[id] = nullptr;
    });
  }
  enable.for_each([&](ControllerId id) {
    cgroup_mutex_.AssertHeld();
    cgroup.subtree_control_.set(id);
  });
  disable.for_each([&](ControllerId id) {
    cgroup_mutex_.AssertHeld();
    cgroup.subtree_control_.reset(id);
  });

  // 3. Re-home every task below `cgroup`: their effective csses changed.
  // One migration, each css_set to its own cgroup with fresh csses. The
  // walk of the links reaches the kept css_sets below too; re-homing keeps
  // no source, so none survives with a stale key.
  {
    MigrationContext ctx(*this);
    ctx.include_exiting_tasks();
    {
      ExclusiveLock<RwLock> cs(css_set_lock_);
      std::vector<Cgroup*> stack;
      for (auto& [name, child] : cgroup.children_) stack.push_back(child);
      while (!stack.empty()) {
        Cgroup* c = stack.back();
        stack.pop_back();
        c->cset_links_.for_each_safe([&](CsetLink& link) {
          css_set_lock_.AssertHeld();
          if (link.cset->kept_node_.linked())
            destroy_cset_locked(link.cset);  // no task to re-home; its key goes stale
          else
            ctx.add_src(*link.cset, c, kDefaultHierarchy);
        });
        for (auto& [name, child] : c->children_) stack.push_back(child);
      }
    }
    // Every task below is a target: freeze forks and exits engine-wide.
    ExclusiveLock<ShardedRwSem> tg(threadgroup_rwsem_);
    st = ctx.prepare_dst();
    if (st.ok()) {
      {
        ExclusiveLock<RwLock> cs(css_set_lock_);
        ctx.add_all_tasks();
      }
      st = ctx.execute();
    }
  }
  if (!st.ok()) {
    // Back to how it was; the old csses were never offlined.
    cgroup.subtree_control_ = old_control;
    for (const Change& c : removed) c.child->csses_[c.id] = c.css;
    for (auto it = made.rbegin(); it != made.rend(); ++it) {
      it->child->csses_[it->id] = nullptr;
      kill_css_locked(it->css);
    }
    return st;
  }
  for (const Change& c : removed) kill_css_locked(c.css);
  return Status::Ok();
}

}  // namespace cgcore
