// Engine: cgroup v2's threaded mode — threaded cgroups, thread roots
// ("domain threaded") and invalid domains, with the kernel's rules.
#include "core/engine.h"

namespace cgcore {

Cgroup& Engine::threaded_domain_locked(const Cgroup& cgroup) const {
  cgroup_mutex_.AssertHeld();
  return *cgroup.dom_cgrp_;
}

bool Engine::is_threaded_locked(const Cgroup& cgroup) const {
  cgroup_mutex_.AssertHeld();
  return cgroup.dom_cgrp_ != &cgroup;
}

bool Engine::is_thread_root_locked(const Cgroup& cgroup) const {
  cgroup_mutex_.AssertHeld();
  return !is_threaded_locked(cgroup) && cgroup.nr_threaded_children_ > 0;
}

bool Engine::is_valid_domain_locked(const Cgroup& cgroup) const {
  cgroup_mutex_.AssertHeld();
  if (is_threaded_locked(cgroup)) return false;
  for (const Cgroup* p = cgroup.parent_; p; p = p->parent_) {
    if (!p->is_root() && is_thread_root_locked(*p)) return false;
    if (is_threaded_locked(*p)) return false;
  }
  return true;
}

bool Engine::can_be_thread_root_locked(const Cgroup& cgroup) const {
  cgroup_mutex_.AssertHeld();
  if (cgroup.is_root()) return true;  // mixable
  if (is_threaded_locked(cgroup)) return false;
  {
    SharedLock<RwLock> cs(css_set_lock_);
    if (cgroup.nr_populated_domain_children_ > 0) return false;
  }
  bool domain = false;
  const ControllerSet dom = domain_controllers();
  cgroup.subtree_control_.for_each([&](ControllerId id) { domain |= dom.test(id); });
  return !domain;
}

const char* Engine::cgroup_type_locked(const Cgroup& cgroup) const {
  cgroup_mutex_.AssertHeld();
  if (is_threaded_locked(cgroup)) return "threaded";
  if (!is_valid_domain_locked(cgroup)) return "domain invalid";
  if (is_thread_root_locked(cgroup)) return "domain threaded";
  return "domain";
}

Status Engine::enable_threaded_locked(Cgroup& cgroup) {
  cgroup_mutex_.AssertHeld();
  if (!cgroup.hierarchy_->is_default())
    return Status::Error(EINVAL, "threaded mode exists only in the default hierarchy");
  if (cgroup.dead()) return Status::Error(ENODEV, "the cgroup was removed");
  if (cgroup.is_root()) return Status::Error(EINVAL, "the root cannot be threaded");
  if (is_threaded_locked(cgroup)) return Status::Ok();
  {
    SharedLock<RwLock> cs(css_set_lock_);
    if (cgroup.populated()) return Status::Error(EOPNOTSUPP, "the cgroup has tasks");
  }
  const ControllerSet domain = domain_controllers();
  bool domain_enabled = false;
  cgroup.subtree_control_.for_each([&](ControllerId id) { domain_enabled |= domain.test(id); });
  if (domain_enabled)
    return Status::Error(EOPNOTSUPP, "the cgroup enables domain controllers");
  Cgroup& dom = *cgroup.parent_->dom_cgrp_;
  if (!is_valid_domain_locked(dom) || !can_be_thread_root_locked(dom))
    return Status::Error(EOPNOTSUPP, "the parent's domain cannot host threaded cgroups");

  // Nothing below has tasks, so no css_set moves: the cgroup (and its
  // threaded descendants) join the parent's domain, and its domain
  // controllers' csses go (a threaded cgroup has threaded controllers only).
  std::vector<Cgroup*> stack{&cgroup};
  while (!stack.empty()) {
    Cgroup* c = stack.back();
    stack.pop_back();
    if (c == &cgroup || is_threaded_locked(*c)) c->dom_cgrp_ = &dom;
    for (auto& [name, child] : c->children_) stack.push_back(child);
  }
  domain.for_each([&](ControllerId id) {
    cgroup_mutex_.AssertHeld();
    if (Css* css = cgroup.csses_[id]) {
      cgroup.csses_[id] = nullptr;
      kill_css_locked(css, /*reclaim_kept=*/false);
    }
  });
  // Kept css_sets below now have stale keys: they go.
  {
    ExclusiveLock<RwLock> cs(css_set_lock_);
    reclaim_kept_csets_locked();
  }
  ++cgroup.parent_->nr_threaded_children_;
  return Status::Ok();
}

}  // namespace cgcore
