#include "core/css_set.h"

#include <algorithm>
#include <new>

#include "core/css.h"
#include "core/engine.h"

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

Result<CssSet*> Engine::find_css_set_locked(const CssSetTable::Key& key, size_t hash) {
  cgroup_mutex_.AssertHeld();
  css_set_lock_.AssertHeld();
  if (CssSet* found = cset_table_.find(key, hash)) {
    pin_cset_locked(*found);
    return found;
  }
  // A freed css_set of the right shape needs no allocation (an injected
  // failure counts it as one all the same).
  for (CssSet** p = &cset_cache_; *p; p = &(*p)->hash_next_) {
    CssSet* cached = *p;
    if (cached->nr_links_ == key.nr_cgroups && cached->csses_.capacity() >= key.nr_csses) {
      if (take_injected_cset_failure())
        return Status::Error(ENOMEM, "injected css_set allocation failure");
      *p = cached->hash_next_;
      cached->hash_next_ = nullptr;
      --nr_cached_csets_;
      install_cset_locked(*cached, key, hash);
      cached->mg_made_ = true;
      return cached;
    }
  }
  return static_cast<CssSet*>(nullptr);
}

Result<CssSet*> Engine::find_css_set(const CssSetTable::Key& key) {
  cgroup_mutex_.AssertHeld();
  const size_t hash = CssSetTable::hash(key);
  // Only the cgroup mutex's holder inserts, so nobody can insert the same
  // key between a miss here and our insert.
  {
    ExclusiveLock<RwLock> lock(css_set_lock_);
    Result<CssSet*> r = find_css_set_locked(key, hash);
    if (!r.ok() || r.value()) return r;
  }
  if (take_injected_cset_failure())
    return Status::Error(ENOMEM, "injected css_set allocation failure");
  CssSet* cset = nullptr;
  for (int attempt = 0;; ++attempt) {
    try {
      cset = new_cset(key.nr_cgroups);
      cset->csses_.reserve(key.nr_csses);
      break;
    } catch (const std::bad_alloc&) {
      if (cset) delete_cset(cset);
      cset = nullptr;
      // Memory pressure: kept css_sets are a cache; give them back once.
      ExclusiveLock<RwLock> lock(css_set_lock_);
      if (attempt > 0 || nr_kept_csets_ == 0)
        return Status::Error(ENOMEM, "out of memory allocating a css_set");
      reclaim_kept_csets_locked();
    }
  }
  ExclusiveLock<RwLock> lock(css_set_lock_);
  install_cset_locked(*cset, key, hash);
  cset->mg_made_ = true;
  return cset;
}

void Engine::pin_cset_locked(CssSet& cset) {
  css_set_lock_.AssertHeld();
  if (cset.kept_node_.linked()) {
    cset.kept_node_.unlink();
    --nr_kept_csets_;
  }
  cset.get();
}

void Engine::install_cset_locked(CssSet& cset, const CssSetTable::Key& key, size_t hash) {
  css_set_lock_.AssertHeld();
  live_csets_.fetch_add(1, std::memory_order_relaxed);
  cset.hash_ = hash;
  cset.get();  // the caller's
  cset.csses_.assign(key.csses, key.csses + key.nr_csses);  // within capacity
  for (Css* css : cset.csses_) css->get();
  for (int i = 0; i < key.nr_cgroups; ++i) {
    CsetLink& link = cset.links_[i];
    link.cset = &cset;
    link.cgroup = const_cast<Cgroup*>(key.cgroups[i]);
    if (link.cgroup) {
      link.cgroup->get();
      link.cgroup->cset_links_.push_back(link);
    }
  }
  cset_table_.insert(&cset);
}

// A css_set's count only reaches zero here, under the exclusive css_set lock,
// and lookups take their reference under the lock (reviving a kept one), so a
// lookup never revives a css_set that is being freed.
void Engine::put_cset_locked(CssSet* cset, bool keep) {
  css_set_lock_.AssertHeld();
  if (!cset->put_and_test()) return;
  if (cset->nr_tasks_ != 0 || !cset->mg_tasks_.empty())
    lock_debug::fail("css_set freed with tasks", cset);
  if (keep && keepable_locked(*cset)) {
    kept_csets_.push_back(*cset);
    if (++nr_kept_csets_ > kMaxKeptCssSets) destroy_cset_locked(kept_csets_.front());
    return;
  }
  destroy_cset_locked(cset);
}

bool Engine::keepable_locked(const CssSet& cset) const {
  css_set_lock_.AssertHeld();
  for (int i = 0; i < cset.nr_links_; ++i)
    if (const Cgroup* cg = cset.links_[i].cgroup; cg && cg->dead()) return false;
  for (const Css* css : cset.csses_)
    if (!css->online()) return false;
  return true;
}

void Engine::destroy_cset_locked(CssSet* cset) {
  css_set_lock_.AssertHeld();
  if (cset->kept_node_.linked()) {
    cset->kept_node_.unlink();
    --nr_kept_csets_;
  }
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
    delete_cset(cset);
  }
}

CssSet* Engine::new_cset(int nr_links) {
  void* mem = cset_slab_.allocate();
  if (!mem) throw std::bad_alloc();
  try {
    return new (mem) CssSet(nr_links, 0);
  } catch (const std::bad_alloc&) {
    cset_slab_.deallocate(mem);
    throw;
  }
}

void Engine::delete_cset(CssSet* cset) {
  cset->~CssSet();
  cset_slab_.deallocate(cset);
}

void Engine::reclaim_kept_csets_locked() {
  css_set_lock_.AssertHeld();
  while (CssSet* c = kept_csets_.front()) destroy_cset_locked(c);
}

void Engine::reclaim_kept_csets_locked(const Cgroup& cgroup) {
  css_set_lock_.AssertHeld();
  cgroup.cset_links_.for_each_safe([this](CsetLink& link) {
    css_set_lock_.AssertHeld();
    if (link.cset->kept_node_.linked()) destroy_cset_locked(link.cset);
  });
}

void Engine::link_task_locked(Task& task, CssSet& cset) {
  css_set_lock_.AssertHeld();
  cset.tasks_.push_back(task);
  cset.get();
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
    const bool was = populated_now(*cg);
    cg->nr_populated_csets_ += populated ? 1 : -1;
    const bool now = populated_now(*cg);
    if (was != now) cgroup_populated_step_locked(*cg, was, now);
  }
}

void Engine::cgroup_populated_step_locked(Cgroup& cgroup, bool was, bool now) {
  css_set_lock_.AssertHeld();
  for (Cgroup* cg = &cgroup; was != now; cg = cg->parent_) {
    for (EngineObserver* o : observers_) o->populated_changed(*cg, now);
    Cgroup* parent = cg->parent_;
    if (!parent) break;
    was = populated_now(*parent);
    // Threadedness changes only while unpopulated, so the counter a child
    // moves in is stable.
    (cg->dom_cgrp_ != cg ? parent->nr_populated_threaded_children_
                         : parent->nr_populated_domain_children_) += now ? 1 : -1;
    now = populated_now(*parent);
  }
}

}  // namespace cgcore
