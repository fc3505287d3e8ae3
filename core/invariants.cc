#include "core/invariants.h"

#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/engine.h"

namespace cgcore {

namespace {
std::string cset_name(const CssSet* c) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "css_set %p", static_cast<const void*>(c));
  return buf;
}
}  // namespace

Status Engine::check_invariants() const {
  InvariantChecker checker(*this);
  return checker.check();
}

bool InvariantChecker::fail(std::string what) {
  if (error_.empty()) error_ = std::move(what);
  return false;
}

// Takes every lock; the checks below assert them (Engine::assert_all_held).
Status InvariantChecker::check() {
  const Engine& e = engine_;
  MutexLock m(e.cgroup_mutex_);
  ExclusiveLock<ShardedRwSem> tg(e.threadgroup_rwsem_);
  SharedLock<RwLock> cs(e.css_set_lock_);
  SharedLock<RwLock> tt(e.task_table_lock_);
  if (check_tasks_and_csets() && check_cgroups() && check_css_refs()) {
    for (size_t id = 0; id < e.nr_controllers(); ++id) {
      Controller& c = *e.controllers_[id];
      Status st = c.check_invariants(const_cast<Engine&>(e));
      if (!st.ok()) {
        fail("controller " + std::string(c.name()) + ": " + st.message());
        break;
      }
    }
  }
  if (error_.empty()) return Status::Ok();
  return Status::Error(EIO, "invariant violated: " + error_);
}

bool InvariantChecker::check_tasks_and_csets() {
  const Engine& e = engine_;
  e.assert_all_held();
  const size_t nr_ss = e.nr_controllers();
  const int nr_h = static_cast<int>(e.hierarchies_.size());

  // Every css_set: its tasks, count, references, key, links, csses.
  std::unordered_map<const Task*, const CssSet*> task_cset;
  size_t nr_csets = 0;
  int nr_kept = 0;
  bool ok = true;
  e.cset_table_.for_each([&](const CssSet& c) {
    e.assert_all_held();
    if (!ok) return;
    ++nr_csets;
    const std::string name = cset_name(&c);
    if (!c.mg_tasks_.empty()) ok = fail(name + " has migrating tasks outside a migration");
    if (c.mg_src_preload_node_.linked() || c.mg_dst_preload_node_.linked() ||
        c.mg_node_.linked() || c.mg_dst_cset_ || c.mg_src_cgrp_ || c.mg_made_)
      ok = fail(name + " has migration state outside a migration");
    int64_t n = 0;
    for (const Task& t : c.tasks_) {
      ++n;
      if (t.cset() != &c) ok = fail(name + " lists task " + std::to_string(t.tid()) + " that points elsewhere");
      if (t.dead() || t.embryo()) ok = fail(name + " lists dead task " + std::to_string(t.tid()));
      if (!task_cset.emplace(&t, &c).second)
        ok = fail("task " + std::to_string(t.tid()) + " is on two css_set lists");
    }
    if (n != c.nr_tasks_) ok = fail(name + " counts " + std::to_string(c.nr_tasks_) + " tasks, lists " + std::to_string(n));
    const int64_t want_refs = n + (&c == e.root_cset_ ? 1 : 0);
    if (c.refs_.load() != want_refs)
      ok = fail(name + " has " + std::to_string(c.refs_.load()) + " references, expected " +
                std::to_string(want_refs));
    // Kept: exactly the css_sets without references, each still holding its
    // cgroup and css references (counted below like any css_set's).
    if ((want_refs == 0) != c.kept_node_.linked())
      ok = fail(name + (want_refs == 0 ? " has no references but is not kept"
                                       : " is referenced but on the kept list"));
    if (c.kept_node_.linked()) {
      ++nr_kept;
      for (const Css* css : c.csses_)
        if (!css->online()) ok = fail(name + " is kept with an offline css");
    }
    if (c.nr_links_ > nr_h) ok = fail(name + " has links beyond the hierarchy slots");
    std::vector<const Cgroup*> cgroups(nr_h, nullptr);
    for (int h = 0; h < nr_h; ++h) {
      const Cgroup* cg = c.cgroup(h);
      cgroups[h] = cg;
      const Hierarchy* hier = e.hierarchies_[h].get();
      if (!hier && cg) ok = fail(name + " links a cgroup of a destroyed hierarchy");
      if (hier && !cg) ok = fail(name + " has no cgroup in hierarchy " + std::to_string(h));
      if (cg && (&cg->hierarchy() != hier || cg->dead()))
        ok = fail(name + " links a dead or misplaced cgroup");
      if (cg && c.links_[h].cset != &c) ok = fail(name + " has a link pointing elsewhere");
      if (cg && !c.links_[h].cgroup_node.linked()) ok = fail(name + " link is not on its cgroup's list");
    }
    if (c.csses_.size() != nr_ss) ok = fail(name + " has a css array of the wrong size");
    for (size_t ss = 0; ok && ss < nr_ss; ++ss) {
      const Cgroup* cg = cgroups[e.bound_to_[ss]];
      const Css* want = cg->is_root() ? e.root_csses_[ss] : e.effective_css_locked(*cg, ss);
      if (c.csses_[ss] != want)
        ok = fail(name + " holds the wrong css for controller " +
                  std::string(e.controllers_[ss]->name()));
    }
    CssSetTable::Key key{cgroups.data(), nr_h, c.csses_.data(), c.csses_.size()};
    const size_t hash = CssSetTable::hash(key);
    if (hash != c.hash_) ok = fail(name + " is hashed under a stale key");
    if (e.cset_table_.find(key, hash) != &c) ok = fail(name + " is not the unique css_set of its key");
  });
  if (!ok) return false;
  if (nr_csets != e.cset_table_.size()) return fail("css_set table size is wrong");
  int listed_kept = 0;
  for (const CssSet& c : e.kept_csets_) {
    (void)c;
    ++listed_kept;
  }
  if (listed_kept != nr_kept || nr_kept != e.nr_kept_csets_)
    return fail("the kept css_set list does not hold exactly the unreferenced css_sets");
  if (nr_kept > Engine::kMaxKeptCssSets) return fail("more css_sets kept than the bound");
  if (e.live_csets_.load() != static_cast<int64_t>(nr_csets))
    return fail(std::to_string(e.live_csets_.load() - nr_csets) + " css_sets leaked");
  if (!e.root_cset_) return fail("no root css_set");
  for (int h = 0; h < nr_h; ++h)
    if (e.hierarchies_[h] && e.root_cset_->cgroup(h) != &e.hierarchies_[h]->root())
      return fail("the root css_set is not in every root cgroup");

  // Every task in the id table.
  std::unordered_set<const Process*> procs;
  size_t nr_live = 0, nr_objects = 0;
  e.task_table_.for_each([&](Pid pid, Task* t) {
    e.assert_all_held();
    if (!ok) return;
    ++nr_objects;
    const Process& p = t->process();
    procs.insert(&p);
    if (t->embryo()) ok = fail("task " + std::to_string(pid) + " is half-forked");
    if (t->tid() != pid) ok = fail("task table slot " + std::to_string(pid) + " holds task " + std::to_string(t->tid()));
    if (t->dead()) {
      if (pid != p.tgid_ || p.nr_threads_ == 0)
        ok = fail("dead task " + std::to_string(pid) + " lingers in the id table");
      if (t->cset() || t->cset_node.linked() || t->thread_node.linked())
        ok = fail("dead task " + std::to_string(pid) + " is still linked");
      return;
    }
    ++nr_live;
    auto it = task_cset.find(t);
    if (it == task_cset.end()) ok = fail("task " + std::to_string(pid) + " is on no css_set list");
  });
  if (!ok) return false;
  if (nr_live != task_cset.size()) return fail("a css_set lists a task missing from the id table");
  if (nr_live != e.nr_live_tasks_.load()) return fail("the live task count is wrong");
  std::unordered_set<const Mm*> mms;
  for (const Process* p : procs) {
    int32_t n = 0;
    for (const Task& t : p->threads_) {
      ++n;
      if (&t.process() != p || t.dead()) return fail("process " + std::to_string(p->tgid_) + " lists a foreign or dead thread");
      if (e.task_table_.get(t.tid()) != &t) return fail("thread " + std::to_string(t.tid()) + " missing from the id table");
    }
    if (n != p->nr_threads_) return fail("process " + std::to_string(p->tgid_) + " miscounts its threads");
    if (n == 0) return fail("process " + std::to_string(p->tgid_) + " has no threads but lives on");
    mms.insert(p->mm());
  }
  if (e.live_tasks_.load() != static_cast<int64_t>(nr_objects))
    return fail(std::to_string(e.live_tasks_.load() - nr_objects) + " task objects leaked");
  if (e.live_processes_.load() != static_cast<int64_t>(procs.size()))
    return fail("process objects leaked");
  // An MmRef may keep an address space alive that no process uses.
  const int64_t live_mms = e.live_mms_.load();
  if (live_mms < static_cast<int64_t>(mms.size()) ||
      live_mms > static_cast<int64_t>(mms.size()) + e.nr_mm_refs_.load())
    return fail("address spaces leaked");
  return true;
}

bool InvariantChecker::check_cgroups() {
  const Engine& e = engine_;
  e.assert_all_held();
  const size_t nr_ss = e.nr_controllers();
  int64_t nonroot = 0;
  for (const auto& hp : e.hierarchies_) {
    if (!hp) continue;
    const Hierarchy& h = *hp;
    int count = 0;
    // Post-order walk, so children are checked before their parent's sums.
    struct Frame { const Cgroup* cg; bool expanded; };
    std::vector<Frame> stack{{&h.root(), false}};
    while (!stack.empty()) {
      Frame f = stack.back();
      stack.pop_back();
      const Cgroup& cg = *f.cg;
      if (!f.expanded) {
        stack.push_back({&cg, true});
        for (const auto& [name, child] : cg.children_) {
          if (child->parent_ != &cg || child->name_ != name || &child->hierarchy() != &h ||
              child->level_ != cg.level_ + 1 || child->dead())
            return fail("cgroup " + child->path() + " is misplaced in its tree");
          stack.push_back({child, false});
        }
        continue;
      }
      ++count;
      const std::string path = cg.path();
      int64_t populated_csets = 0;
      for (const CsetLink& link : cg.cset_links_) {
        if (link.cgroup != &cg) return fail("cgroup " + path + " lists a link of another cgroup");
        if (link.cset->nr_tasks_ > 0) ++populated_csets;
      }
      if (populated_csets != cg.nr_populated_csets_)
        return fail("cgroup " + path + " miscounts its populated css_sets");
      int64_t populated_domain = 0, populated_threaded = 0;
      int descendants = 0;
      for (const auto& [name, child] : cg.children_) {
        if (child->nr_populated_csets_ + child->nr_populated_domain_children_ +
                child->nr_populated_threaded_children_ > 0)
          ++(child->dom_cgrp_ != child ? populated_threaded : populated_domain);
        descendants += 1 + child->nr_descendants_;
      }
      if (populated_domain != cg.nr_populated_domain_children_ ||
          populated_threaded != cg.nr_populated_threaded_children_)
        return fail("cgroup " + path + " miscounts its populated children");
      if (descendants != cg.nr_descendants_)
        return fail("cgroup " + path + " miscounts its descendants");
      int threaded_children = 0;
      for (const auto& [name, child] : cg.children_) threaded_children += child->dom_cgrp_ != child;
      if (threaded_children != cg.nr_threaded_children_)
        return fail("cgroup " + path + " miscounts its threaded children");
      if (cg.dom_cgrp_ != &cg && (cg.is_root() || cg.dom_cgrp_ != cg.parent_->dom_cgrp_))
        return fail("threaded cgroup " + path + " is not in its parent's domain");
      if (cg.csses_.size() != nr_ss) return fail("cgroup " + path + " has a css array of the wrong size");
      for (size_t ss = 0; ss < nr_ss; ++ss) {
        const Css* css = cg.csses_[ss];
        bool bound = e.bound_to_[ss] == h.id();
        bool want;
        if (cg.is_root()) {
          want = bound;
          if (bound && css != e.root_csses_[ss]) return fail("root " + path + " lacks its root css");
        } else {
          want = bound && (h.is_default() ? cg.parent_->subtree_control_.test(ss) &&
                                                (cg.dom_cgrp_ == &cg || e.controllers_[ss]->threaded())
                                          : true);
        }
        if ((css != nullptr) != want)
          return fail("cgroup " + path + " has the wrong set of csses");
        if (!css) continue;
        if (css->cgroup() != &cg || !css->online() || css->id_ != static_cast<ControllerId>(ss))
          return fail("css of cgroup " + path + " is inconsistent");
        if (!cg.is_root() && css->parent_ != e.effective_css_locked(*cg.parent_, ss) &&
            !(cg.parent_->is_root() && css->parent_ == e.root_csses_[ss]))
          return fail("css of cgroup " + path + " has the wrong parent");
      }
    }
    if (count != h.nr_cgroups_) return fail("hierarchy " + std::to_string(h.id()) + " miscounts its cgroups");
    nonroot += count - 1;
  }
  if (nonroot != e.nr_nonroot_cgroups_) return fail("the engine miscounts its cgroups");
  size_t nr_roots = 0;
  for (const auto& hp : e.hierarchies_) nr_roots += hp ? 1 : 0;
  if (e.cgroups_by_id_.size() != nr_roots + static_cast<size_t>(nonroot))
    return fail("the id map does not hold exactly the live cgroups");
  for (const auto& [id, cg] : e.cgroups_by_id_)
    if (cg->id() != id || cg->dead()) return fail("the id map holds a stale cgroup");
  if (e.live_cgroups_.load() < nonroot) return fail("a reachable cgroup is not counted as alive");
  return true;
}

bool InvariantChecker::check_css_refs() {
  const Engine& e = engine_;
  e.assert_all_held();
  // Every css anything reaches: registry, cgroups, css_sets, address
  // spaces, and the parents of those.
  std::unordered_set<const Css*> all;
  std::vector<const Css*> todo;
  for (const Css* c : e.root_csses_) todo.push_back(c);
  for (const auto& hp : e.hierarchies_) {
    if (!hp) continue;
    std::vector<const Cgroup*> stack{&hp->root()};
    while (!stack.empty()) {
      const Cgroup* cg = stack.back();
      stack.pop_back();
      for (const Css* c : cg->csses_)
        if (c) todo.push_back(c);
      for (const auto& [n, child] : cg->children_) stack.push_back(child);
    }
  }
  e.cset_table_.for_each([&](const CssSet& c) {
    e.assert_all_held();
    for (const Css* css : c.csses_) todo.push_back(css);
  });
  std::unordered_set<const Mm*> mms;
  e.task_table_.for_each([&](Pid, Task* t) { mms.insert(t->process().mm()); });
  for (const Mm* mm : mms)
    for (int i = 0; i < Mm::kSlots; ++i)
      if (const Css* css = mm->slot(i)) todo.push_back(css);
  while (!todo.empty()) {
    const Css* c = todo.back();
    todo.pop_back();
    if (all.insert(c).second && c->parent_) todo.push_back(c->parent_);
  }
  std::unordered_map<const Css*, int64_t> refs;
  // Expected references: the base one (the cgroup's while online, the
  // registry's for a root css), one from each child css, each css_set and
  // each address-space slot.
  for (const Css* c : all) {
    if (c->online() || c->is_root()) refs[c] += 1;
    if (c->parent_) refs[c->parent_] += 1;
  }
  e.cset_table_.for_each([&](const CssSet& c) {
    e.assert_all_held();
    for (const Css* css : c.csses_) refs[css] += 1;
  });
  for (const Mm* mm : mms)
    for (int i = 0; i < Mm::kSlots; ++i)
      if (const Css* css = mm->slot(i)) refs[css] += 1;
  for (const Css* c : all) {
    int64_t expected = refs[c];
    if (c->refs_.load() != expected)
      return fail("css of controller " + std::string(e.controllers_[c->id_]->name()) + " has " +
                  std::to_string(c->refs_.load()) + " references, expected " +
                  std::to_string(expected));
  }
  if (e.live_csses_.load() != static_cast<int64_t>(all.size()))
    return fail(std::to_string(e.live_csses_.load() - static_cast<int64_t>(all.size())) +
                " csses leaked");
  return true;
}

}  // namespace cgcore
