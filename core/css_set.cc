#include "core/css_set.h"

#include <algorithm>
#include <new>

#include "core/css.h"
#include "core/engine.h"
#include "core/migration.h"

namespace cgcore {

CssSet::CssSet(int nr_links, size_t nr_controllers)
    : links_(new CsetLink[nr_links]), nr_links_(nr_links), csses_(nr_controllers, nullptr) {
  for (int i = 0; i < nr_links; ++i) links_[i].cset = this;
}

// ------------------------------------------------------------ CssSetTable

CssSetTable::CssSetTable() : buckets_(64, nullptr) {}

size_t CssSetTable::hash(const Key& key) {
  // Only non-null cgroups enter the hash, so a css_set made before a
  // hierarchy existed (shorter links array) hashes like one made after.
  uint64_t h = 0x9e3779b97f4a7c15ull;
  auto mix = [&h](uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  };
  for (int i = 0; i < key.nr_cgroups; ++i)
    if (key.cgroups[i]) mix(reinterpret_cast<uintptr_t>(key.cgroups[i]) ^ (uint64_t(i) << 56));
  for (size_t i = 0; i < key.nr_csses; ++i) mix(reinterpret_cast<uintptr_t>(key.csses[i]));
  return static_cast<size_t>(h ^ (h >> 29));
}

bool CssSetTable::matches(const CssSet& cset, const Key& key) {
  int n = std::max(cset.nr_links_, key.nr_cgroups);
  for (int i = 0; i < n; ++i) {
    const Cgroup* a = cset.cgroup(i);
    const Cgroup* b = i < key.nr_cgroups ? key.cgroups[i] : nullptr;
    if (a != b) return false;
  }
  if (cset.csses_.size() != key.nr_csses) return false;
  return std::equal(cset.csses_.begin(), cset.csses_.end(), key.csses);
}

CssSet* CssSetTable::find(const Key& key, size_t hash) const {
  for (CssSet* c = buckets_[hash & (buckets_.size() - 1)]; c; c = c->hash_next_)
    if (c->hash_ == hash && matches(*c, key)) return c;
  return nullptr;
}

void CssSetTable::insert(CssSet* cset) {
  if (size_ + 1 > buckets_.size()) grow();
  CssSet*& b = buckets_[cset->hash_ & (buckets_.size() - 1)];
  cset->hash_next_ = b;
  b = cset;
  ++size_;
}

void CssSetTable::erase(CssSet* cset) {
  CssSet** p = &buckets_[cset->hash_ & (buckets_.size() - 1)];
  while (*p != cset) p = &(*p)->hash_next_;
  *p = cset->hash_next_;
  cset->hash_next_ = nullptr;
  --size_;
}

void CssSetTable::grow() {
  std::vector<CssSet*> bigger;
  try {
    bigger.assign(buckets_.size() * 2, nullptr);
  } catch (const std::bad_alloc&) {
    return;  // keep the old buckets: longer chains, still correct
  }
  for (CssSet* b : buckets_) {
    while (b) {
      CssSet* next = b->hash_next_;
      CssSet*& nb = bigger[b->hash_ & (bigger.size() - 1)];
      b->hash_next_ = nb;
      nb = b;
      b = next;
    }
  }
  buckets_.swap(bigger);
}

// ------------------------------------------------------------ Engine: css_sets

bool Engine::take_injected_cset_failure() {
  int n = fail_cset_alloc_.load(std::memory_order_relaxed);
  while (n > 0) {
    if (fail_cset_alloc_.compare_exchange_weak(n, n - 1)) return n == 1;
  }
  return false;
}

Result<CssSet*> Engine::find_css_set(CssSet& src, Cgroup* dst, HierarchyId h,
                                     MigrationContext& ctx) {
  cgroup_mutex_.AssertHeld();
  const Hierarchy& hier = *hierarchies_[h];
  const int nr_links = static_cast<int>(hierarchies_.size());
  const size_t nr_ss = nr_controllers();

  // The key: src's cgroups with hierarchy h replaced, and the csses of h's
  // controllers taken from dst. Small and per css_set, not per task.
  std::vector<const Cgroup*>& cgroups = scratch_cgroups_;
  std::vector<Css*>& csses = scratch_csses_;
  try {
    cgroups.assign(nr_links, nullptr);
    for (int i = 0; i < nr_links; ++i) cgroups[i] = src.cgroup(i);
    cgroups[h] = dst;
    csses.assign(src.csses_.begin(), src.csses_.end());
  } catch (const std::bad_alloc&) {
    return Status::Error(ENOMEM, "out of memory looking up a css_set");
  }
  if (dst) {
    hier.controllers_.for_each([&](ControllerId id) {
      cgroup_mutex_.AssertHeld();
      csses[id] = dst->is_root() ? root_csses_[id] : effective_css_locked(*dst, id);
    });
  }
  CssSetTable::Key key{cgroups.data(), nr_links, csses.data(), nr_ss};
  const size_t hash = CssSetTable::hash(key);

  // Look up, and on a miss take a freed css_set of the right shape from the
  // cache, in one hold of the lock; only this thread creates css_sets
  // (cgroup mutex), so nobody can insert the same key before our insert.
  CssSet* cset = nullptr;
  {
    ExclusiveLock<SharedMutex> lock(css_set_lock_);
    if (CssSet* found = cset_table_.find(key, hash)) {
      found->refs_.fetch_add(1, std::memory_order_relaxed);  // see put_cset_locked
      ctx.link_dst_locked(src, *found);
      return found;
    }
    if (take_injected_cset_failure())
      return Status::Error(ENOMEM, "injected css_set allocation failure");
    for (CssSet** p = &cset_cache_; *p; p = &(*p)->hash_next_) {
      if ((*p)->nr_links_ == nr_links && (*p)->csses_.capacity() >= nr_ss) {
        cset = *p;
        *p = cset->hash_next_;
        cset->hash_next_ = nullptr;
        --nr_cached_csets_;
        break;
      }
    }
  }
  try {
    if (!cset) cset = new CssSet(nr_links, 0);
    cset->csses_.assign(csses.begin(), csses.end());  // within capacity if cached
  } catch (const std::bad_alloc&) {
    delete cset;
    return Status::Error(ENOMEM, "out of memory allocating a css_set");
  }
  live_csets_.fetch_add(1, std::memory_order_relaxed);
  cset->hash_ = hash;
  cset->refs_.store(1, std::memory_order_relaxed);  // the caller's pin
  for (Css* css : cset->csses_) css->get();
  ExclusiveLock<SharedMutex> lock(css_set_lock_);
  for (int i = 0; i < nr_links; ++i) {
    CsetLink& link = cset->links_[i];
    link.cset = cset;
    link.cgroup = const_cast<Cgroup*>(cgroups[i]);
    if (link.cgroup) {
      link.cgroup->get();
      link.cgroup->cset_links_.push_back(link);
    }
  }
  cset_table_.insert(cset);
  ctx.link_dst_locked(src, *cset);
  return cset;
}

// A css_set's count only reaches zero under the exclusive css_set lock, and
// lookups take their pin under the lock (shared), so a pin never revives a
// css_set that is being freed.
void Engine::put_cset_locked(CssSet* cset) {
  css_set_lock_.AssertHeld();
  if (cset->refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  if (cset->nr_tasks_ != 0 || !cset->mg_tasks_.empty())
    lock_debug::fail("css_set freed with tasks", cset);
  cset_table_.erase(cset);
  for (int i = 0; i < cset->nr_links_; ++i) {
    CsetLink& link = cset->links_[i];
    if (!link.cgroup) continue;
    link.cgroup_node.unlink();
    link.cgroup->put();
  }
  for (Css* css : cset->csses_) css->put();
  live_csets_.fetch_sub(1, std::memory_order_relaxed);
  if (nr_cached_csets_ < kCssSetCacheSize) {
    for (int i = 0; i < cset->nr_links_; ++i) cset->links_[i].cgroup = nullptr;
    cset->csses_.clear();
    cset->hash_ = 0;
    cset->hash_next_ = cset_cache_;
    cset_cache_ = cset;
    ++nr_cached_csets_;
  } else {
    delete cset;
  }
}

void Engine::link_task_locked(Task& task, CssSet& cset) {
  css_set_lock_.AssertHeld();
  cset.tasks_.push_back(task);
  cset.refs_.fetch_add(1, std::memory_order_relaxed);
  task.cset_.store(&cset, std::memory_order_release);
  if (cset.nr_tasks_++ == 0) cset_populated_changed_locked(cset, true);
}

void Engine::unlink_task_locked(Task& task) {
  css_set_lock_.AssertHeld();
  CssSet& cset = *task.cset();
  task.cset_node.unlink();
  if (--cset.nr_tasks_ == 0) cset_populated_changed_locked(cset, false);
  // The task's reference on cset passes to the caller, who drops it.
}

void Engine::cset_populated_changed_locked(CssSet& cset, bool populated) {
  css_set_lock_.AssertHeld();
  for (int i = 0; i < cset.nr_links_; ++i) {
    Cgroup* cg = cset.links_[i].cgroup;
    if (!cg) continue;
    bool was = cg->populated();
    cg->nr_populated_csets_ += populated ? 1 : -1;
    cgroup_populated_step_locked(*cg, was, cg->populated());
  }
}

void Engine::cgroup_populated_step_locked(Cgroup& cgroup, bool was, bool now) {
  css_set_lock_.AssertHeld();
  for (Cgroup* cg = &cgroup; was != now; cg = cg->parent_) {
    for (EngineObserver* o : observers_) o->populated_changed(*cg, now);
    Cgroup* parent = cg->parent_;
    if (!parent) break;
    was = parent->populated();
    // Threadedness changes only while unpopulated, so the counter a child
    // moves in is stable.
    (cg->dom_cgrp_ != cg ? parent->nr_populated_threaded_children_
                         : parent->nr_populated_domain_children_) += now ? 1 : -1;
    now = parent->populated();
  }
}

}  // namespace cgcore
