#include "controllers/memrlimit.h"

#include <new>
#include <unordered_map>

#include "core/migration.h"

namespace cgcore {

namespace {

bool is_leader(const Task& t) { return t.tid() == t.process().tgid(); }

// memrlimit never existed in Linux, so there is no v2 interface to follow;
// its files appear on both kinds of hierarchy.
constexpr ControlFileSpec kFiles[] = {
    {"limit_in_bytes", kV1V2, FileScope::kEverywhere, read_charge_limit, write_charge_limit},
    {"usage_in_bytes", kV1V2, FileScope::kEverywhere, read_charge_usage, nullptr},
    {"max_usage_in_bytes", kV1V2, FileScope::kEverywhere, read_charge_watermark,
     write_charge_watermark},
    {"failcnt", kV1V2, FileScope::kEverywhere, read_charge_failcnt, write_charge_failcnt},
};

// A brand-new address space (see memory.cc).
bool has_new_mm(Task& child) {
  Process& p = child.process();
  return child.tid() == p.tgid() && p.mm()->users() == 1;
}

}  // namespace

std::span<const ControlFileSpec> MemrlimitController::files() const { return kFiles; }

Result<std::unique_ptr<Css>> MemrlimitController::css_alloc(Css* parent) {
  if (!parent) {
    // Registration runs css_alloc(nullptr) with the cgroup mutex held.
    engine()->cgroup_mutex().AssertHeld();
    Result<int> slot = engine()->reserve_mm_slot_locked();
    if (!slot.ok()) return slot.status();
    slot_ = *slot;
  }
  try {
    auto css = std::make_unique<MemrlimitCss>(parent ? &of(*parent) : nullptr, registry_);
    if (!parent) root_ = css.get();
    return std::unique_ptr<Css>(std::move(css));
  } catch (const std::bad_alloc&) {
    return Status::Error(ENOMEM, "out of memory for a memrlimit cgroup");
  }
}

MemrlimitCss& MemrlimitController::owner_of(Mm& mm) {
  mm.mmap_lock().AssertReaderHeld();
  Css* css = mm.slot(slot_);
  if (css && css->online()) return of(*css);
  Css* target = css ? css->parent() : nullptr;
  while (target && !target->online()) target = target->parent();
  if (!target) target = root_;
  MemrlimitCss& to = of(*target);
  to.get();
  Css* old;
  {
    // Under the shard mutex, so that the checker sees the charge and the
    // slot move together.
    auto& shard = charged_.shard(&mm);
    MutexLock lock(shard.mu);
    if (css) {
      // The ancestor counts the charge already: only the levels below it
      // drop it, and the bytes become the ancestor's own.
      const int64_t tv = mm.total_vm.load();
      MemrlimitCss& from = of(*css);
      from.counter.uncharge(tv, &to.counter);
      from.local.fetch_sub(tv);
      to.local.fetch_add(tv);
    }
    old = mm.exchange_slot(slot_, &to);
  }
  if (old) old->put();  // may free an offline css: not under the shard mutex
  return to;
}

Status MemrlimitController::mmap(Engine& engine, Pid pid, int64_t bytes) {
  if (&engine != this->engine()) return Status::Error(EINVAL, "not this controller's engine");
  Result<int64_t> n = page_round_up(bytes);
  if (!n.ok()) return n.status();
  if (*n == 0) return Status::Ok();
  Result<MmRef> mmr = engine.mm_of(pid);
  if (!mmr.ok()) return mmr.status();
  Mm& mm = **mmr;
  ExclusiveLock<RwSem> l(mm.mmap_lock());
  MemrlimitCss& css = owner_of(mm);
  auto& shard = charged_.shard(&mm);
  MutexLock lock(shard.mu);
  try {
    shard.map.try_emplace(&mm);
  } catch (const std::bad_alloc&) {
    return Status::Error(ENOMEM, "out of memory recording an address space");
  }
  if (PageCounter* r = css.counter.try_charge(*n)) {
    if (mm.total_vm.load() == 0) shard.map.erase(&mm);
    // Paths need the cgroup mutex; the id is immutable.
    uint64_t where = 0;
    for (ChargeCss* c = &css; c; c = c->up())
      if (&c->counter == r && c->cgroup()) where = c->cgroup()->id();
    return Status::Error(ENOMEM,
                         "address-space limit reached in cgroup id " + std::to_string(where));
  }
  css.local.fetch_add(*n);
  mm.total_vm.fetch_add(*n);
  return Status::Ok();
}

Status MemrlimitController::munmap(Engine& engine, Pid pid, int64_t bytes) {
  if (&engine != this->engine()) return Status::Error(EINVAL, "not this controller's engine");
  Result<int64_t> n = page_round_up(bytes);
  if (!n.ok()) return n.status();
  Result<MmRef> mmr = engine.mm_of(pid);
  if (!mmr.ok()) return mmr.status();
  Mm& mm = **mmr;
  ExclusiveLock<RwSem> l(mm.mmap_lock());
  if (*n > mm.total_vm.load())
    return Status::Error(EINVAL, "unmapping " + std::to_string(*n) +
                                     " bytes of an address space of " +
                                     std::to_string(mm.total_vm.load()));
  if (*n == 0) return Status::Ok();
  MemrlimitCss& css = owner_of(mm);
  auto& shard = charged_.shard(&mm);
  MutexLock lock(shard.mu);
  css.counter.uncharge(*n);
  css.local.fetch_sub(*n);
  if (mm.total_vm.fetch_sub(*n) == *n) shard.map.erase(&mm);
  return Status::Ok();
}

// ------------------------------------------------------------ fork / exec /
// exit

Status MemrlimitController::can_fork(Task& child, CssSet& cset) {
  if (!has_new_mm(child)) return Status::Ok();
  Mm& mm = *child.process().mm();
  if (mm.slot(slot_)) return Status::Ok();
  MemrlimitCss& css = of(*cset.css(id()));
  const int64_t tv = mm.total_vm.load();
  if (tv > 0) {
    auto& shard = charged_.shard(&mm);
    MutexLock lock(shard.mu);
    try {
      shard.map.try_emplace(&mm);
    } catch (const std::bad_alloc&) {
      return Status::Error(ENOMEM, "out of memory recording an address space");
    }
    if (css.counter.try_charge(tv)) {
      shard.map.erase(&mm);
      return Status::Error(ENOMEM, "the child's address space of " + std::to_string(tv) +
                                       " bytes exceeds an address-space limit");
    }
    css.local.fetch_add(tv);
  }
  // Only now: a refused fork leaves the slot unset, which tells mm_release
  // that nothing was charged.
  css.get();
  mm.exchange_slot(slot_, &css);
  return Status::Ok();
}

void MemrlimitController::cancel_fork(Task& child, CssSet& cset) {
  if (!has_new_mm(child)) return;
  Mm& mm = *child.process().mm();
  Css* css = mm.slot(slot_);
  if (css != cset.css(id())) return;
  const int64_t tv = mm.total_vm.load();
  if (tv > 0) {
    auto& shard = charged_.shard(&mm);
    MutexLock lock(shard.mu);
    of(*css).counter.uncharge(tv);
    of(*css).local.fetch_sub(tv);
    shard.map.erase(&mm);
  }
  mm.exchange_slot(slot_, nullptr);
  css->put();
}

void MemrlimitController::exec(Task& task) {
  Mm& mm = *task.process().mm();  // fresh: total_vm 0
  Css* css = task.cset()->css(id());
  css->get();
  if (Css* old = mm.exchange_slot(slot_, css)) old->put();
}

void MemrlimitController::mm_release(Mm& mm) {
  Css* css = mm.slot(slot_);
  const int64_t tv = mm.total_vm.load();
  if (!css || tv == 0) return;  // never charged
  auto& shard = charged_.shard(&mm);
  MutexLock lock(shard.mu);
  of(*css).counter.uncharge(tv);
  of(*css).local.fetch_sub(tv);
  shard.map.erase(&mm);
}

// ------------------------------------------------------------ migration

Status MemrlimitController::can_attach(TaskSet& tset) {
  moves_.clear();
  deferred_puts_.clear();
  size_t nr_leaders = 0;
  tset.for_each([&](Task& t, CssSet*, CssSet&) { nr_leaders += is_leader(t); });
  try {
    moves_.reserve(nr_leaders);
    deferred_puts_.reserve(nr_leaders);
  } catch (const std::bad_alloc&) {
    return Status::Error(ENOMEM, "out of memory preparing a memrlimit migration");
  }
  Status st;
  tset.for_each([&](Task& t, CssSet* src, CssSet& dst) {
    if (!st.ok() || !is_leader(t)) return;
    MemrlimitCss& from = of(*src->css(id()));
    MemrlimitCss& to = of(*dst.css(id()));
    if (&from == &to) return;
    Mm& mm = *t.process().mm();
    // Only the owner's move carries the charge; "owner" is a
    // leader in the css the address space points at.
    if (&owner_of(mm) != &from) return;
    for (const Move& m : moves_)
      if (m.mm == &mm) return;
    const int64_t bytes = mm.total_vm.load();
    const PageCounter* stop = PageCounter::common_ancestor(&from.counter, &to.counter);
    if (bytes > 0 && to.counter.try_charge(bytes, stop, /*raise_watermark=*/false)) {
      st = Status::Error(ENOMEM, "moving an address space of " + std::to_string(bytes) +
                                     " bytes would exceed an address-space limit");
      return;
    }
    moves_.push_back(Move{&mm, &from, &to, stop, bytes});
  });
  if (!st.ok()) cancel_moves();
  return st;
}

void MemrlimitController::cancel_moves() {
  for (size_t i = moves_.size(); i-- > 0;)
    if (moves_[i].bytes > 0) moves_[i].to->counter.uncharge(moves_[i].bytes, moves_[i].stop);
  moves_.clear();
}

void MemrlimitController::cancel_attach(TaskSet&) {
  cancel_moves();
  deferred_puts_.clear();
}

void MemrlimitController::attach(TaskSet&) noexcept {
  for (const Move& m : moves_) {
    if (m.bytes > 0) {
      m.from->counter.uncharge(m.bytes, m.stop);
      m.to->counter.raise_watermark(m.stop);
      m.from->local.fetch_sub(m.bytes);
      m.to->local.fetch_add(m.bytes);
    }
    m.to->get();
    if (Css* old = m.mm->exchange_slot(slot_, m.to)) deferred_puts_.push_back(old);
  }
}

void MemrlimitController::post_attach(TaskSet&) {
  for (Css* css : deferred_puts_) css->put();
  deferred_puts_.clear();
  moves_.clear();
}

// ------------------------------------------------------------ invariants

Status MemrlimitController::check_invariants(Engine&) {
  std::unordered_map<const ChargeCss*, int64_t> local_want;
  Status st;
  charged_.with_all_locked([&](auto&& for_each) {
    for_each([&](const Mm* mm, Charged&) {
      if (!st.ok()) return;
      const Css* css = mm->slot(slot_);
      const int64_t tv = mm->total_vm.load();
      if (!css || tv <= 0) {
        st = Status::Error(EIO, "a recorded address space has no owner css or no size");
        return;
      }
      local_want[static_cast<const MemrlimitCss*>(css)] += tv;
    });
    if (st.ok()) st = registry_.check(local_want);
  });
  return st;
}

}  // namespace cgcore
