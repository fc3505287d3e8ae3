#include "controllers/memory.h"

#include <algorithm>
#include <new>
#include <unordered_map>

#include "core/migration.h"
#include "core/parse.h"

namespace cgcore {

namespace {

bool is_leader(const Task& t) { return t.tid() == t.process().tgid(); }

MemCss& mem(Css& css) { return MemoryController::of(css); }
MemoryController& ctl(Css& css) { return static_cast<MemoryController&>(css.controller()); }

// ------------------------------------------------------------ v1 files

Result<std::string> read_move_charge(Engine&, Css& css) {
  return format_line(mem(css).move_flags.load());
}
Status write_move_charge(Engine&, Css& css, std::string_view text) {
  Result<uint64_t> v = parse_u64(text);
  if (!v.ok()) return v.status();
  if (*v & ~uint64_t{MemCss::kMoveAnon | MemCss::kMoveFile})
    return Status::Error(EINVAL, "move_charge_at_immigrate takes bits 1 and 2 only");
  mem(css).move_flags.store(static_cast<uint32_t>(*v));
  return Status::Ok();
}

// memory.oom_control (v1): the host kernel reads "oom_kill_disable N",
// "under_oom N" (this cgroup or an ancestor is in an OOM that may not
// kill) and "oom_kill N" (processes of this very cgroup killed: the local
// count — a kill in a child leaves the parent's at 0 on the host).
Result<std::string> read_oom_control(Engine&, Css& css) {
  MemCss& m = mem(css);
  bool under = false;
  for (const MemCss* c = &m; c && !under; c = c->up()) under = c->oom_locked.load();
  return "oom_kill_disable " + std::to_string(m.oom_kill_disable.load() ? 1 : 0) +
         "\nunder_oom " + std::to_string(under ? 1 : 0) + "\noom_kill " +
         std::to_string(m.events_local[MemCss::kOomKill].load()) + "\n";
}
// A u64 file (no white space stripped: " 1" and "1 " are EINVAL on the
// host, "+1", "0x1", "01" and "1\n" are accepted); 0 or 1 only, and
// EINVAL on the root, as on the host.
Status write_oom_control(Engine&, Css& css, std::string_view text) {
  Result<uint64_t> v = parse_u64(text);
  if (!v.ok()) return v.status();
  if (css.is_root()) return Status::Error(EINVAL, "the root cgroup's OOM killer cannot be disabled");
  if (*v > 1) return Status::Error(EINVAL, "oom_kill_disable takes 0 or 1");
  // Re-enabling lets the next enforcement pass kill (the kernel wakes the
  // waiters, whose charges then OOM again).
  mem(css).oom_kill_disable.store(*v == 1);
  return Status::Ok();
}

Status write_force_empty(Engine& engine, Css& css, std::string_view) {
  if (css.is_root()) return Status::Error(EINVAL, "the root cgroup cannot be emptied");
  return ctl(css).force_empty_locked(engine, mem(css));
}

// The kernel prints its v1 statistics in a fixed order: the per-cgroup
// counters, the LRU lists, the hierarchical limits, then the same counters
// with "total_" over the subtree. cgcore's charges are anonymous memory the
// kernel would show on the inactive anon list of freshly faulted pages; it
// has no page cache, huge pages, shmem, dirty or writeback pages (0), and no
// v1 swap accounting (the kernel's memsw: so no swap or memsw lines, as on a
// kernel without it; swap is accounted on v2 only).
Result<std::string> read_stat(Engine&, Css& css) {
  MemCss& m = mem(css);
  const int64_t local = m.local.load();
  const int64_t total = m.counter.usage();
  int64_t hier_limit = kUnlimited;
  for (const MemCss* c = &m; c; c = c->up()) hier_limit = std::min(hier_limit, c->counter.limit());
  struct Line {
    const char* name;
    int64_t local, total;
  };
  const Line lines[] = {
      {"cache", 0, 0},         {"rss", local, total},           {"rss_huge", 0, 0},
      {"shmem", 0, 0},         {"mapped_file", 0, 0},           {"dirty", 0, 0},
      {"writeback", 0, 0},     {"inactive_anon", local, total}, {"active_anon", 0, 0},
      {"inactive_file", 0, 0}, {"active_file", 0, 0},           {"unevictable", 0, 0},
  };
  std::string out;
  for (const Line& l : lines) out += std::string(l.name) + " " + std::to_string(l.local) + "\n";
  out += "hierarchical_memory_limit " + std::to_string(hier_limit) + "\n";
  for (const Line& l : lines)
    out += "total_" + std::string(l.name) + " " + std::to_string(l.total) + "\n";
  return out;
}

// ------------------------------------------------------------ v2 files

// The kernel's seq_puts_memcg_tunable: "max" or bytes.
std::string tunable_text(int64_t bytes) {
  return bytes >= kUnlimited ? std::string("max\n") : format_line(bytes);
}

Result<std::string> read_max(Engine&, Css& css) { return tunable_text(mem(css).counter.limit()); }
// The kernel sets memory.max even below the usage and then reclaims or
// OOM-kills; cgcore leaves both to the embedder (over_limits reports the
// cgroup), so the excess stays charged until uncharged and new charges fail
// meanwhile.
Status write_max(Engine&, Css& css, std::string_view text) {
  Result<int64_t> bytes = parse_memory_size(text, "max");
  if (!bytes.ok()) return bytes.status();
  mem(css).counter.force_limit(*bytes);
  return Status::Ok();
}
Result<std::string> read_high(Engine&, Css& css) { return tunable_text(mem(css).high.load()); }
// memory.high takes what memory.max takes; the kernel then reclaims down to
// it, cgcore leaves that to the embedder (usage above high is reported by
// over_limits and counted as "high" events at each charge).
Status write_high(Engine&, Css& css, std::string_view text) {
  Result<int64_t> bytes = parse_memory_size(text, "max");
  if (!bytes.ok()) return bytes.status();
  mem(css).high.store(*bytes);
  return Status::Ok();
}
Result<std::string> read_oom_group(Engine&, Css& css) {
  return format_line(mem(css).oom_group.load() ? 1 : 0);
}
// The kernel's memory_oom_group_write: strstrip, kstrtoint base 0 (EINVAL
// when malformed, ERANGE past int), then 0 or 1 only (EINVAL).
Status write_oom_group(Engine&, Css& css, std::string_view text) {
  Result<int32_t> v = kstrtoint(strstrip(text));
  if (!v.ok()) return v.status();
  if (*v != 0 && *v != 1) return Status::Error(EINVAL, "memory.oom.group takes 0 or 1");
  mem(css).oom_group.store(*v == 1);
  return Status::Ok();
}
std::string events_text(const std::array<std::atomic<int64_t>, MemCss::kNrEvents>& ev) {
  static constexpr const char* kNames[MemCss::kNrEvents] = {"low", "high", "max",
                                                            "oom", "oom_kill", "oom_group_kill"};
  std::string out;
  for (int i = 0; i < MemCss::kNrEvents; ++i)
    out += std::string(kNames[i]) + " " + std::to_string(ev[i].load()) + "\n";
  return out;
}
Result<std::string> read_events(Engine&, Css& css) { return events_text(mem(css).events); }

// memory.pressure_level (v1) exists for cgroup.event_control only: the
// kernel's file has no read handler and answers EINVAL.
Result<std::string> read_pressure_level(Engine&, Css&) {
  return Status::Error(EINVAL, "memory.pressure_level is for cgroup.event_control only");
}
Status register_event(Engine&, Css& css, std::string_view control, std::string_view args,
                      std::unique_ptr<EventSink>& sink) {
  return ctl(css).listeners().add(mem(css), control, args, sink);
}
Result<std::string> read_events_local(Engine&, Css& css) {
  return events_text(mem(css).events_local);
}

Result<std::string> read_swap_current(Engine&, Css& css) {
  return format_line(mem(css).swap.usage());
}
Result<std::string> read_swap_max(Engine&, Css& css) { return tunable_text(mem(css).swap.limit()); }
// As memory.max: the kernel stores swap.max even below the usage (nothing
// is swapped in to meet it); later swap charges fail until usage drops.
Status write_swap_max(Engine&, Css& css, std::string_view text) {
  Result<int64_t> bytes = parse_memory_size(text, "max");
  if (!bytes.ok()) return bytes.status();
  mem(css).swap.force_limit(*bytes);
  return Status::Ok();
}
Result<std::string> read_swap_high(Engine&, Css& css) {
  return tunable_text(mem(css).swap_high.load());
}
Status write_swap_high(Engine&, Css& css, std::string_view text) {
  Result<int64_t> bytes = parse_memory_size(text, "max");
  if (!bytes.ok()) return bytes.status();
  mem(css).swap_high.store(*bytes);
  return Status::Ok();
}
Result<std::string> read_swap_peak(Engine&, Css& css) {
  return format_line(mem(css).swap.watermark());
}
Result<std::string> read_swap_events(Engine&, Css& css) {
  const auto& ev = mem(css).swap_events;
  return "high " + std::to_string(ev[MemCss::kSwapHigh].load()) + "\nmax " +
         std::to_string(ev[MemCss::kSwapMax].load()) + "\nfail " +
         std::to_string(ev[MemCss::kSwapFail].load()) + "\n";
}

constexpr ControlFileSpec kFiles[] = {
    // cgroup v1
    {"limit_in_bytes", kV1, FileScope::kEverywhere, read_charge_limit, write_charge_limit},
    {"usage_in_bytes", kV1, FileScope::kEverywhere, read_charge_usage, nullptr},
    {"max_usage_in_bytes", kV1, FileScope::kEverywhere, read_charge_watermark,
     write_charge_watermark},
    {"failcnt", kV1, FileScope::kEverywhere, read_charge_failcnt, write_charge_failcnt},
    {"move_charge_at_immigrate", kV1, FileScope::kEverywhere, read_move_charge, write_move_charge},
    {"force_empty", kV1, FileScope::kEverywhere, nullptr, write_force_empty},
    {"oom_control", kV1, FileScope::kEverywhere, read_oom_control, write_oom_control},
    {"stat", kV1, FileScope::kEverywhere, read_stat, nullptr},
    {"pressure_level", kV1, FileScope::kEverywhere, read_pressure_level, nullptr},
    {"!cgroup.event_control", kV1, FileScope::kEverywhere, nullptr, nullptr, nullptr, register_event},
    // cgroup v2
    {"current", kV2, FileScope::kNonRoot, read_charge_usage, nullptr},
    {"high", kV2, FileScope::kNonRoot, read_high, write_high},
    {"max", kV2, FileScope::kNonRoot, read_max, write_max},
    {"oom.group", kV2, FileScope::kNonRoot, read_oom_group, write_oom_group},
    {"peak", kV2, FileScope::kNonRoot, read_charge_watermark, nullptr},
    {"events", kV2, FileScope::kNonRoot, read_events, nullptr},
    {"events.local", kV2, FileScope::kNonRoot, read_events_local, nullptr},
    {"swap.current", kV2, FileScope::kNonRoot, read_swap_current, nullptr},
    {"swap.high", kV2, FileScope::kNonRoot, read_swap_high, write_swap_high},
    {"swap.max", kV2, FileScope::kNonRoot, read_swap_max, write_swap_max},
    {"swap.peak", kV2, FileScope::kNonRoot, read_swap_peak, nullptr},
    {"swap.events", kV2, FileScope::kNonRoot, read_swap_events, nullptr},
};

}  // namespace

std::span<const ControlFileSpec> MemoryController::files() const { return kFiles; }

Result<std::unique_ptr<Css>> MemoryController::css_alloc(Css* parent) {
  if (!parent) {
    // Registration runs css_alloc(nullptr) with the cgroup mutex held.
    engine()->cgroup_mutex().AssertHeld();
    Result<int> slot = engine()->reserve_mm_slot_locked();
    if (!slot.ok()) return slot.status();
    slot_ = *slot;
  }
  try {
    auto css = std::make_unique<MemCss>(parent ? &of(*parent) : nullptr, registry_);
    // The host kernel gives a new v1 cgroup its parent's oom_kill_disable.
    if (parent) css->oom_kill_disable.store(of(*parent).oom_kill_disable.load());
    if (!parent) root_ = css.get();
    return std::unique_ptr<Css>(std::move(css));
  } catch (const std::bad_alloc&) {
    return Status::Error(ENOMEM, "out of memory for a memory cgroup");
  }
}

// Charges never stay in an offline css (older, 3.x, kernels reparented them at
// rmdir the same way): the ledgers then point at live csses only and need
// no css references of their own. The address spaces that point at the css
// find their way up lazily (memcg_of). The css's children went offline
// before it and were emptied into it, so everything it counts is local.
// Swap goes the same way, under the swap shards: a swap charger checks
// `dying` under its swap shard mutex, so one that got in before we took them
// is moved with the rest and none can come after.
void MemoryController::css_offline(Css& c) {
  MemCss& css = of(c);
  if (!css.up()) return;  // a root goes offline only as its engine dies
  listeners_.css_removed(css);
  MemCss& parent = *css.up();
  auto empty_into_parent = [&](const Account& a) {
    const int64_t local = (css.*a.local).exchange(0);
    (css.*a.counter).uncharge(local, &(parent.*a.counter));
    (parent.*a.local).fetch_add(local);
  };
  ledgers_.with_all_locked([&](auto&& for_each) {
    css.dying.store(true);
    for_each([&](const Mm*, Ledger& ledger) {
      if (LedgerEntry* e = find_entry(ledger, &css)) move_entry(ledger, *e, parent);
    });
    empty_into_parent(kMemory);
  });
  swap_ledgers_.with_all_locked([&](auto&& for_each) {
    for_each([&](const Mm*, Ledger& ledger) {
      if (LedgerEntry* e = find_entry(ledger, &css)) move_entry(ledger, *e, parent);
    });
    empty_into_parent(kSwap);
  });
}

// ------------------------------------------------------------ mm->memcg

MemCss& MemoryController::memcg_of(Mm& mm) {
  mm.mmap_lock().AssertReaderHeld();
  Css* css = mm.slot(slot_);
  if (css && alive(*css)) return of(*css);
  // Never set (an address space older than the controller: every task was
  // in a root then), or offline: the nearest online ancestor, which a
  // delegated subtree cannot escape.
  Css* target = css ? css->parent() : nullptr;
  while (target && !alive(*target)) target = target->parent();
  if (!target) target = root_;
  target->get();
  if (Css* old = mm.exchange_slot(slot_, target)) old->put();
  return of(*target);
}

bool MemoryController::alive(Css& css) { return css.online() && !of(css).dying.load(); }

void MemoryController::move_entry(Ledger& ledger, LedgerEntry& e, MemCss& to) {
  if (LedgerEntry* t = find_entry(ledger, &to)) {
    t->bytes += e.bytes;
    ledger.erase(ledger.begin() + (&e - ledger.data()));
  } else {
    e.css = &to;  // the bytes keep their place in the charge order
  }
}

MemoryController::LedgerEntry* MemoryController::find_entry(Ledger& ledger, const MemCss* css) {
  for (LedgerEntry& e : ledger)
    if (e.css == css) return &e;
  return nullptr;
}

MemoryController::LedgerEntry* MemoryController::entry_for(Ledger& ledger, MemCss& css,
                                                          bool* added) {
  *added = false;
  if (LedgerEntry* e = find_entry(ledger, &css)) return e;
  try {
    ledger.insert(ledger.begin(), LedgerEntry{&css, 0});
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
  *added = true;
  return &ledger.front();
}

void MemoryController::to_front(Ledger& ledger, LedgerEntry& e) {
  const auto pos = ledger.begin() + (&e - ledger.data());
  std::rotate(ledger.begin(), pos, pos + 1);
}

void MemoryController::take_recent(Ledger& ledger, int64_t bytes, const Account& a) {
  int64_t left = bytes;
  for (size_t i = 0; i < ledger.size() && left > 0;) {
    LedgerEntry& e = ledger[i];
    const int64_t take = std::min(left, e.bytes);
    ((*e.css).*a.counter).uncharge(take);
    ((*e.css).*a.local).fetch_sub(take);
    e.bytes -= take;
    left -= take;
    if (e.bytes == 0) {
      ledger.erase(ledger.begin() + static_cast<ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
}

void MemoryController::release_all(Ledger& ledger, const Account& a) {
  for (LedgerEntry& e : ledger) {
    ((*e.css).*a.counter).uncharge(e.bytes);
    ((*e.css).*a.local).fetch_sub(e.bytes);
  }
  ledger.clear();
}

MemCss* MemoryController::owner_of(MemCss& charged, const PageCounter* counter) {
  for (MemCss* c = &charged; c; c = c->up())
    if (&c->counter == counter) return c;
  return &charged;  // unreachable: the refusing counter is on the path
}

void MemoryController::count_event(MemCss& css, MemCss::Event ev) {
  css.events_local[ev].fetch_add(1);
  for (MemCss* c = &css; c && c->up(); c = c->up()) c->events[ev].fetch_add(1);
  // Watchers of memory.events (v2) hear of it, as the kernel notifies them.
  if (Engine* e = engine(); e && css.cgroup() && css.cgroup()->hierarchy().is_default()) {
    e->notify_file_changed(*css.cgroup(), "memory.events.local");
    for (MemCss* c = &css; c && c->up(); c = c->up())
      if (c->cgroup()) e->notify_file_changed(*c->cgroup(), "memory.events");
  }
}

void MemoryController::count_swap_event(MemCss& css, MemCss::SwapEvent ev) {
  for (MemCss* c = &css; c && c->up(); c = c->up()) c->swap_events[ev].fetch_add(1);
  // memory.swap.events is a v2 file: a v1 css keeps its counts unseen.
  if (Engine* e = engine(); e && css.cgroup() && css.cgroup()->hierarchy().is_default())
    for (MemCss* c = &css; c && c->up(); c = c->up())
      if (c->cgroup()) e->notify_file_changed(*c->cgroup(), "memory.swap.events");
}

// ------------------------------------------------------------ charges

const MemoryController::Account MemoryController::kMemory{
    &MemCss::counter, &MemCss::local, &Mm::charged, &MemoryController::ledgers_};
const MemoryController::Account MemoryController::kSwap{
    &MemCss::swap, &MemCss::swap_local, &Mm::swapped, &MemoryController::swap_ledgers_};

Status MemoryController::charge_account_locked(Mm& mm, int64_t bytes, const Account& a, bool force,
                                               MemCss** charged, PageCounter** refused) {
  mm.mmap_lock().AssertHeld();
  *refused = nullptr;
  auto& shard = (this->*a.table).shard(&mm);
  for (;;) {
    MemCss& css = memcg_of(mm);
    MutexLock lock(shard.mu);
    // css_offline marks a css dying and empties it with every shard mutex
    // held: checked under ours, no charge can land in it afterwards.
    if (css.dying.load()) continue;
    *charged = &css;
    Ledger* ledger;
    try {
      ledger = &shard.map[&mm];
    } catch (const std::bad_alloc&) {
      return Status::Error(ENOMEM, "out of memory for an address space's charge record");
    }
    bool added;
    LedgerEntry* e = entry_for(*ledger, css, &added);
    if (!e) {
      if (ledger->empty()) shard.map.erase(&mm);
      return Status::Error(ENOMEM, "out of memory for an address space's charge record");
    }
    if (PageCounter* r = (css.*a.counter).try_charge(bytes)) {
      *refused = r;
      if (!force) {
        if (added) ledger->erase(ledger->begin());
        if (ledger->empty()) shard.map.erase(&mm);
        return Status::Ok();
      }
      (css.*a.counter).force_charge(bytes);
    }
    e->bytes += bytes;
    to_front(*ledger, *e);
    (css.*a.local).fetch_add(bytes);
    (mm.*a.total).fetch_add(bytes);
    return Status::Ok();
  }
}

Status MemoryController::uncharge_account_locked(Mm& mm, int64_t bytes, const Account& a,
                                                 const char* what) {
  mm.mmap_lock().AssertHeld();
  const int64_t held = (mm.*a.total).load();
  if (bytes > held)
    return Status::Error(EINVAL, "uncharging " + std::to_string(bytes) + " " + what +
                                     " bytes, the address space holds " + std::to_string(held));
  if (bytes == 0) return Status::Ok();
  auto& shard = (this->*a.table).shard(&mm);
  MutexLock lock(shard.mu);
  auto it = shard.map.find(&mm);
  take_recent(it->second, bytes, a);  // present: the total is > 0
  if (it->second.empty()) shard.map.erase(it);
  (mm.*a.total).fetch_sub(bytes);
  return Status::Ok();
}

void MemoryController::release_account(Mm& mm, const Account& a) {
  if ((mm.*a.total).load() == 0) return;  // no ledger without charges
  auto& shard = (this->*a.table).shard(&mm);
  MutexLock lock(shard.mu);
  auto it = shard.map.find(&mm);
  if (it != shard.map.end()) {
    release_all(it->second, a);
    shard.map.erase(it);
  }
  (mm.*a.total).store(0);
}

int64_t MemoryController::held_in(const Mm& mm, const MemCss& css, const Account& a) {
  auto& shard = (this->*a.table).shard(&mm);
  MutexLock lock(shard.mu);
  auto it = shard.map.find(&mm);
  if (it == shard.map.end()) return 0;
  for (const LedgerEntry& e : it->second)
    if (e.css == &css) return e.bytes;
  return 0;
}

Status MemoryController::charge_locked(Mm& mm, int64_t bytes, uint64_t* refused, bool force) {
  MemCss* css;
  PageCounter* r;
  Status st = charge_account_locked(mm, bytes, kMemory, force, &css, &r);
  if (!st.ok()) return st;
  if (r) {
    MemCss* owner = owner_of(*css, r);
    count_event(*owner, MemCss::kMax);
    // Paths need the cgroup mutex; the id is immutable. A root css may
    // change cgroups on a rebind, but a root has no limit.
    const Cgroup* cg = owner->cgroup();
    *refused = cg ? cg->id() : 0;
    // With `force` the memory is in use already: the kernel's OOM path lets
    // the charge through too, and the embedder reclaims or kills.
    if (!force)
      return Status::Error(ENOMEM, "memory limit reached in cgroup id " + std::to_string(*refused));
  }
  // The kernel counts "high" at every level a charge leaves above its
  // memory.high (each such level counting up its own ancestors).
  for (MemCss* c = css; c->up(); c = c->up())
    if (c->counter.usage() > c->high.load()) count_event(*c, MemCss::kHigh);
  return Status::Ok();
}

Status MemoryController::charge_swap_locked(Mm& mm, int64_t bytes, bool force, bool* over_max) {
  MemCss* css;
  PageCounter* r;
  Status st = charge_account_locked(mm, bytes, kSwap, force, &css, &r);
  if (!st.ok()) return st;
  if (r) {
    // Whichever level refused, the events are the charged css's: its page
    // is the one that could not be swapped out.
    count_swap_event(*css, MemCss::kSwapMax);
    if (!force) {
      count_swap_event(*css, MemCss::kSwapFail);
      const Cgroup* cg = css->cgroup();
      return Status::Error(
          ENOMEM, "swap limit reached charging cgroup id " + std::to_string(cg ? cg->id() : 0));
    }
    // Swapped already: the kernel never lets this happen, but refusing
    // would only make swap.current lie.
    *over_max = true;
  }
  for (MemCss* c = css; c->up(); c = c->up())
    if (c->swap.usage() > c->swap_high.load()) count_swap_event(*c, MemCss::kSwapHigh);
  return Status::Ok();
}

Result<MmRef> MemoryController::charge_target(Engine& engine, Pid pid, int64_t bytes,
                                              int64_t* pages) {
  if (&engine != this->engine()) return Status::Error(EINVAL, "not this controller's engine");
  Result<int64_t> n = page_round_up(bytes);
  if (!n.ok()) return n.status();
  *pages = *n;
  return engine.mm_of(pid);
}

Status MemoryController::charge(Engine& engine, Pid pid, int64_t bytes) {
  int64_t n;
  Result<MmRef> mm = charge_target(engine, pid, bytes, &n);
  if (!mm.ok()) return mm.status();
  if (n == 0) return Status::Ok();
  for (int attempt = 0;; ++attempt) {
    uint64_t refused = 0;
    Status st;
    {
      ExclusiveLock<RwSem> l((*mm)->mmap_lock());
      st = charge_locked(**mm, n, &refused, /*force=*/false);
    }
    if (st.ok()) listeners_.usage_changed();
    if (st.ok() || !refused || attempt > 0 || !reclaim_) return st;
    // Nothing is held across the hook: it may uncharge other address
    // spaces (taking their mmap_locks) or write limits.
    reclaim_(engine, refused, n);
  }
}

Status MemoryController::force_charge(Engine& engine, Pid pid, int64_t bytes, bool* over_limit) {
  if (over_limit) *over_limit = false;
  int64_t n;
  Result<MmRef> mm = charge_target(engine, pid, bytes, &n);
  if (!mm.ok()) return mm.status();
  if (n == 0) return Status::Ok();
  uint64_t refused = 0;
  ExclusiveLock<RwSem> l((*mm)->mmap_lock());
  Status st = charge_locked(**mm, n, &refused, /*force=*/true);
  if (st.ok() && refused && over_limit) *over_limit = true;
  if (st.ok()) listeners_.usage_changed();
  return st;
}

Status MemoryController::uncharge(Engine& engine, Pid pid, int64_t bytes) {
  int64_t n;
  Result<MmRef> mm = charge_target(engine, pid, bytes, &n);
  if (!mm.ok()) return mm.status();
  ExclusiveLock<RwSem> l((*mm)->mmap_lock());
  Status st = uncharge_account_locked(**mm, n, kMemory, "memory");
  if (st.ok() && n) listeners_.usage_changed();
  return st;
}

Status MemoryController::charge_swap(Engine& engine, Pid pid, int64_t bytes) {
  int64_t n;
  Result<MmRef> mm = charge_target(engine, pid, bytes, &n);
  if (!mm.ok()) return mm.status();
  if (n == 0) return Status::Ok();
  bool over = false;
  ExclusiveLock<RwSem> l((*mm)->mmap_lock());
  return charge_swap_locked(**mm, n, /*force=*/false, &over);
}

Status MemoryController::force_charge_swap(Engine& engine, Pid pid, int64_t bytes,
                                           bool* over_limit) {
  if (over_limit) *over_limit = false;
  int64_t n;
  Result<MmRef> mm = charge_target(engine, pid, bytes, &n);
  if (!mm.ok()) return mm.status();
  if (n == 0) return Status::Ok();
  bool over = false;
  ExclusiveLock<RwSem> l((*mm)->mmap_lock());
  Status st = charge_swap_locked(**mm, n, /*force=*/true, &over);
  if (st.ok() && over_limit) *over_limit = over;
  return st;
}

Status MemoryController::uncharge_swap(Engine& engine, Pid pid, int64_t bytes) {
  int64_t n;
  Result<MmRef> mm = charge_target(engine, pid, bytes, &n);
  if (!mm.ok()) return mm.status();
  // Exclusive: a migration's attach changes swap ledgers under it shared.
  ExclusiveLock<RwSem> l((*mm)->mmap_lock());
  return uncharge_account_locked(**mm, n, kSwap, "swap");
}

int64_t MemoryController::charged_in(const Mm& mm, const MemCss& css) {
  return held_in(mm, css, kMemory);
}

int64_t MemoryController::swap_charged_in(const Mm& mm, const MemCss& css) {
  return held_in(mm, css, kSwap);
}

Status MemoryController::force_empty_locked(Engine& engine, MemCss& css) {
  engine.cgroup_mutex().AssertHeld();
  // Only a migration (cgroup mutex, which we hold) puts tasks into a cgroup
  // without any, so the answer holds until we return.
  if (!engine.cgroup_tids(*css.cgroup()).empty())
    return Status::Error(EBUSY, "the cgroup has tasks");
  MemCss& parent = *css.up();
  ledgers_.with_all_locked([&](auto&& for_each) {
    for_each([&](const Mm*, Ledger& ledger) {
      LedgerEntry* e = find_entry(ledger, &css);
      if (!e) return;
      const int64_t b = e->bytes;
      // Only this level loses the bytes: the parent already counts them.
      css.counter.uncharge(b, &parent.counter);
      css.local.fetch_sub(b);
      parent.local.fetch_add(b);
      move_entry(ledger, *e, parent);
    });
  });
  listeners_.usage_changed();
  return Status::Ok();
}

// ------------------------------------------------------------ fork / exec /
// exit

namespace {
// A brand-new address space: the child leads a new process (tid == tgid)
// and is the only user of its mm (a CLONE_VM child shares its parent's; a
// thread joins a process that has one).
bool has_new_mm(Task& child) {
  Process& p = child.process();
  return child.tid() == p.tgid() && p.mm()->users() == 1;
}
}  // namespace

Status MemoryController::can_fork(Task& child, CssSet& cset) {
  if (!has_new_mm(child)) return Status::Ok();
  Mm& mm = *child.process().mm();
  if (mm.slot(slot_)) return Status::Ok();
  Css* css = cset.css(id());
  css->get();
  if (Css* old = mm.exchange_slot(slot_, css)) old->put();
  return Status::Ok();
}

void MemoryController::cancel_fork(Task& child, CssSet& cset) {
  if (!has_new_mm(child)) return;
  Mm& mm = *child.process().mm();
  if (mm.slot(slot_) != cset.css(id())) return;
  if (Css* old = mm.exchange_slot(slot_, nullptr)) old->put();
}

void MemoryController::exec(Task& task) {
  Mm& mm = *task.process().mm();
  Css* css = task.cset()->css(id());
  css->get();
  if (Css* old = mm.exchange_slot(slot_, css)) old->put();
}

void MemoryController::mm_release(Mm& mm) {
  const bool had_memory = mm.charged.load() != 0;
  release_account(mm, kMemory);
  release_account(mm, kSwap);
  if (had_memory) listeners_.usage_changed();
}

// ------------------------------------------------------------ migration

Status MemoryController::can_attach(TaskSet& tset) {
  Engine& engine = tset.engine();
  engine.cgroup_mutex().AssertHeld();
  moves_.clear();
  switches_.clear();
  deferred_puts_.clear();
  // cgroup v2 has no charge moving (and no move_charge_at_immigrate file);
  // a root css rebound from v1 may still carry bits.
  const bool may_move = !engine.hierarchy_of_locked(id()).is_default();
  size_t nr_leaders = 0;
  tset.for_each([&](Task& t, CssSet*, CssSet&) { nr_leaders += is_leader(t); });
  try {
    moves_.reserve(nr_leaders);
    switches_.reserve(nr_leaders);
    // attach puts the reference each switch replaces.
    deferred_puts_.reserve(nr_leaders);
  } catch (const std::bad_alloc&) {
    return Status::Error(ENOMEM, "out of memory preparing a memory cgroup migration");
  }
  Status st;
  tset.for_each([&](Task& t, CssSet* src, CssSet& dst) {
    if (!st.ok() || !is_leader(t)) return;
    MemCss& from = of(*src->css(id()));
    MemCss& to = of(*dst.css(id()));
    if (&from == &to) return;
    Mm& mm = *t.process().mm();
    MemCss& cur = memcg_of(mm);
    switches_.push_back(Switch{&mm, &to});
    // Charges move only with a leader in the memcg the mm points at: the
    // address space belongs to that group, not to any thread moving alone.
    if (!may_move || !(to.move_flags.load() & MemCss::kMoveAnon) || &cur != &from) return;
    for (const Move& m : moves_)
      if (m.mm == &mm) return;  // a CLONE_VM sharer already moves it
    Move mv{&mm, &from, &to, {}, {}};
    {
      auto& shard = ledgers_.shard(&mm);
      MutexLock lock(shard.mu);
      auto it = shard.map.find(&mm);
      PageCounter* r = nullptr;
      if (it != shard.map.end()) st = plan_part(it->second, from, to, kMemory, &mv.mem, &r);
      if (r) {
        MemCss* owner = owner_of(to, r);
        count_event(*owner, MemCss::kMax);
        std::string where = owner->cgroup() ? owner->cgroup()->path() : "?";
        st = Status::Error(ENOMEM, "moving " + std::to_string(mv.mem.bytes) +
                                       " charged bytes would exceed the memory limit of " + where);
      }
      if (!st.ok()) return;
    }
    {
      // The kernel's v1 moved swap entries with anonymous pages (bit 1).
      // No v1 file sets a swap limit, so a refusal needs a css rebound from
      // v2; it vetoes like memory's, counting no swap event (a move is no
      // swap-out).
      auto& shard = swap_ledgers_.shard(&mm);
      MutexLock lock(shard.mu);
      auto it = shard.map.find(&mm);
      PageCounter* r = nullptr;
      if (it != shard.map.end()) st = plan_part(it->second, from, to, kSwap, &mv.swap, &r);
      if (r)
        st = Status::Error(ENOMEM, "moving " + std::to_string(mv.swap.bytes) +
                                       " swapped bytes would exceed a swap limit");
    }
    if (!st.ok()) {
      // This mover is not in moves_ yet: undo its memory part here.
      undo_part(mv.mem, to, kMemory, ledgers_.shard(&mm).mu);
      return;
    }
    if (mv.mem.ledger || mv.swap.ledger) moves_.push_back(mv);  // reserved: no allocation
  });
  if (!st.ok()) {
    cancel_moves();
    switches_.clear();
  }
  return st;
}

Status MemoryController::plan_part(Ledger& ledger, MemCss& from, MemCss& to, const Account& a,
                                   MovePart* part, PageCounter** refused) {
  *refused = nullptr;
  LedgerEntry* e = find_entry(ledger, &from);
  if (!e) return Status::Ok();
  const int64_t bytes = e->bytes;
  bool added = false;
  if (!find_entry(ledger, &to)) {
    try {
      ledger.push_back(LedgerEntry{&to, 0});
    } catch (const std::bad_alloc&) {
      return Status::Error(ENOMEM, "out of memory preparing a charge move");
    }
    added = true;
  }
  // Common ancestors keep their charge: only the paths below them change.
  const PageCounter* stop = PageCounter::common_ancestor(&(from.*a.counter), &(to.*a.counter));
  if (PageCounter* r = (to.*a.counter).try_charge(bytes, stop, /*raise_watermark=*/false)) {
    if (added) ledger.pop_back();
    *refused = r;
    part->bytes = bytes;  // for the caller's message; ledger stays null
    return Status::Error(ENOMEM, "charge move refused");
  }
  *part = MovePart{&ledger, stop, bytes, added};
  return Status::Ok();
}

void MemoryController::undo_part(MovePart& part, MemCss& to, const Account& a, Mutex& shard_mu) {
  if (!part.ledger) return;
  (to.*a.counter).uncharge(part.bytes, part.stop);
  if (part.added_to_entry) {
    MutexLock lock(shard_mu);
    LedgerEntry* e = find_entry(*part.ledger, &to);
    part.ledger->erase(part.ledger->begin() + (e - part.ledger->data()));
  }
  part = MovePart{};
}

void MemoryController::cancel_moves() {
  for (size_t i = moves_.size(); i-- > 0;) {
    Move& m = moves_[i];
    undo_part(m.swap, *m.to, kSwap, swap_ledgers_.shard(m.mm).mu);
    undo_part(m.mem, *m.to, kMemory, ledgers_.shard(m.mm).mu);
  }
  moves_.clear();
}

void MemoryController::cancel_attach(TaskSet&) {
  cancel_moves();
  switches_.clear();
  deferred_puts_.clear();
}

// The commit. The ledgers of the moving address spaces are changed in place
// without their shard mutex: every other party that touches one holds its
// mmap_lock exclusive (excluded: we hold it shared), the cgroup mutex
// (force_empty, the checker: excluded), or its last reference (mm_release:
// the mm is in use). Erasing from a vector neither allocates nor throws.
void MemoryController::attach(TaskSet&) noexcept {
  for (Move& m : moves_) {
    commit_part(m.mem, *m.from, *m.to, kMemory);
    commit_part(m.swap, *m.from, *m.to, kSwap);
  }
  for (const Switch& s : switches_) {
    s.to->get();
    if (Css* old = s.mm->exchange_slot(slot_, s.to)) deferred_puts_.push_back(old);
  }
}

void MemoryController::commit_part(MovePart& p, MemCss& from, MemCss& to,
                                   const Account& a) noexcept {
  if (!p.ledger) return;
  Ledger& ledger = *p.ledger;
  LedgerEntry* f = find_entry(ledger, &from);
  LedgerEntry* t = find_entry(ledger, &to);
  (from.*a.counter).uncharge(p.bytes, p.stop);
  (to.*a.counter).raise_watermark(p.stop);
  (from.*a.local).fetch_sub(p.bytes);
  (to.*a.local).fetch_add(p.bytes);
  if (p.added_to_entry) {
    // The moved bytes keep their place in the charge order: the source's
    // entry becomes the destination's, the placeholder goes.
    std::swap(f->css, t->css);
    f->bytes = p.bytes;
    t->bytes = 0;
    ledger.erase(ledger.begin() + (t - ledger.data()));
  } else {
    t->bytes += p.bytes;
    ledger.erase(ledger.begin() + (f - ledger.data()));
  }
}

void MemoryController::post_attach(TaskSet&) {
  if (!moves_.empty()) listeners_.usage_changed();
  for (Css* css : deferred_puts_) css->put();
  deferred_puts_.clear();
  moves_.clear();
  switches_.clear();
}

// ------------------------------------------------------------ enforcement

MemCss& MemoryController::css_of_locked(Engine& engine, const Cgroup& cgroup) {
  engine.cgroup_mutex().AssertHeld();
  Css* css = engine.effective_css_locked(cgroup, id());
  return css ? of(*css) : *root_;
}

std::vector<MemoryController::OverLimit> MemoryController::over_limits(Engine& engine) {
  std::vector<std::pair<int, OverLimit>> found;  // (level, cgroup)
  {
    MutexLock l(engine.cgroup_mutex());
    std::vector<Cgroup*> stack{&engine.hierarchy_of_locked(id()).root()};
    while (!stack.empty()) {
      Cgroup* c = stack.back();
      stack.pop_back();
      for (const auto& [name, child] : c->children()) stack.push_back(child);
      // The root has no limits; a v2 cgroup without the controller has
      // none of its own (its tasks count in an ancestor, seen there).
      Css* cs = c->is_root() ? nullptr : c->css(id());
      if (!cs) continue;
      MemCss& m = of(*cs);
      const int64_t usage = m.counter.usage(), max = m.counter.limit(), high = m.high.load();
      // The kernel's under_oom lasts until the waiting charges fit.
      if (usage <= max) m.oom_locked.store(false);
      if (usage <= max && usage <= high) continue;
      found.push_back({c->level(), OverLimit{c->id(), c->path(), usage, max, high, usage > max,
                                             m.oom_kill_disable.load()}});
    }
  }
  std::stable_sort(found.begin(), found.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<OverLimit> out;
  out.reserve(found.size());
  for (auto& [level, o] : found) out.push_back(std::move(o));
  return out;
}

namespace {
// The processes of `top` and every cgroup below it, sorted, each once.
// Locking: cgroup mutex held (the tree), css_set lock not held.
std::vector<Pid> subtree_tgids(Engine& engine, Cgroup& top) {
  std::vector<Pid> out;
  std::vector<Cgroup*> stack{&top};
  while (!stack.empty()) {
    Cgroup* c = stack.back();
    stack.pop_back();
    for (const auto& [name, child] : c->children()) stack.push_back(child);
    std::vector<Pid> t = engine.cgroup_tgids(*c);
    out.insert(out.end(), t.begin(), t.end());
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}
}  // namespace

Result<std::vector<MemoryController::OomCandidate>> MemoryController::oom_candidates(
    Engine& engine, uint64_t cgroup) {
  std::vector<OomCandidate> out;
  {
    MutexLock l(engine.cgroup_mutex());
    Cgroup* cg = engine.find_cgroup_locked(cgroup);
    if (!cg || &cg->hierarchy() != &engine.hierarchy_of_locked(id()))
      return Status::Error(ENOENT, "no such memory cgroup");
    for (Pid g : subtree_tgids(engine, *cg)) {
      // A zombie leader's process is reached through a live thread.
      Result<MmRef> mm = engine.mm_of(g);
      if (!mm.ok()) {
        Result<std::vector<Pid>> t = engine.threads_of(g);
        if (t.ok() && !t->empty()) mm = engine.mm_of(t->front());
      }
      out.push_back(
          {g, mm.ok() ? mm.value()->charged.load() + mm.value()->swapped.load() : 0});
    }
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const OomCandidate& a, const OomCandidate& b) { return a.bytes > b.bytes; });
  return out;
}

Result<MemoryController::OomGroup> MemoryController::oom_group(Engine& engine, Pid victim,
                                                               uint64_t oom_cgroup) {
  MutexLock l(engine.cgroup_mutex());
  Cgroup* oom = engine.find_cgroup_locked(oom_cgroup);
  Hierarchy& h = engine.hierarchy_of_locked(id());
  if (!oom || &oom->hierarchy() != &h) return Status::Error(ENOENT, "no such memory cgroup");
  Result<CgroupPtr> vc = engine.task_cgroup(victim, h);
  if (!vc.ok()) return vc.status();
  OomGroup g;
  // memory.oom.group is a v2 file; the kernel never kills groups on v1.
  if (!h.is_default()) return g;
  Cgroup* group = nullptr;
  Cgroup* c = vc->get();
  for (; c; c = c->parent()) {
    Css* cs = c->is_root() ? nullptr : c->css(id());
    if (cs && of(*cs).oom_group.load()) group = c;
    if (c == oom) break;
  }
  // The victim moved out of the OOM's subtree meanwhile: no group.
  if (!c || !group) return g;
  g.cgroup = group->id();
  g.path = group->path();
  g.tgids = subtree_tgids(engine, *group);
  return g;
}

bool MemoryController::begin_oom(Engine& engine, uint64_t cgroup) {
  MutexLock l(engine.cgroup_mutex());
  Cgroup* cg = engine.find_cgroup_locked(cgroup);
  if (!cg || &cg->hierarchy() != &engine.hierarchy_of_locked(id())) return false;
  MemCss& m = css_of_locked(engine, *cg);
  if (m.oom_kill_disable.load()) {
    // One OOM until usage fits, however often the embedder looks: the
    // kernel's charges wait in that one OOM meanwhile.
    if (!m.oom_locked.exchange(true)) {
      count_event(m, MemCss::kOom);
      listeners_.oom(m);
    }
    return false;
  }
  count_event(m, MemCss::kOom);
  listeners_.oom(m);
  return true;
}

void MemoryController::count_oom_kill(Engine& engine, Pid victim) {
  MutexLock l(engine.cgroup_mutex());
  Result<CgroupPtr> vc = engine.task_cgroup(victim, engine.hierarchy_of_locked(id()));
  if (!vc.ok()) return;
  MemCss& m = css_of_locked(engine, **vc);
  if (m.up()) count_event(m, MemCss::kOomKill);
}

void MemoryController::count_oom_group_kill(Engine& engine, uint64_t cgroup) {
  MutexLock l(engine.cgroup_mutex());
  Cgroup* cg = engine.find_cgroup_locked(cgroup);
  if (!cg || &cg->hierarchy() != &engine.hierarchy_of_locked(id())) return;
  MemCss& m = css_of_locked(engine, *cg);
  if (m.up()) count_event(m, MemCss::kOomGroupKill);
}

// ------------------------------------------------------------ invariants

namespace {
// The registry's view of the swap account (memory's is its default).
constexpr ChargeView kSwapView{
    [](const ChargeCss& c) -> const PageCounter& { return static_cast<const MemCss&>(c).swap; },
    [](const ChargeCss& c) { return static_cast<const MemCss&>(c).swap_local.load(); }, "swap "};
}  // namespace

Status MemoryController::check_invariants(Engine&) {
  // One address space's ledger of either account against its total; adds
  // what it holds to `want`.
  // `kind` names the account in messages ("charge" or "swap"), `total_name`
  // where the total lives.
  auto check_ledger = [](const Ledger& ledger, int64_t total, const std::string& kind,
                         const char* total_name,
                         std::unordered_map<const ChargeCss*, int64_t>& want) -> Status {
    if (ledger.empty()) return Status::Error(EIO, "an empty " + kind + " record was kept");
    int64_t sum = 0;
    for (const LedgerEntry& e : ledger) {
      if (e.bytes <= 0) return Status::Error(EIO, "a " + kind + " record entry holds no bytes");
      if (e.css->dying.load())
        return Status::Error(EIO, kind + " charges left in an offline memory cgroup");
      want[e.css] += e.bytes;
      sum += e.bytes;
    }
    if (sum != total)
      return Status::Error(EIO, "an address space's " + kind + " charges add up to " +
                                    std::to_string(sum) + ", " + total_name + " says " +
                                    std::to_string(total));
    return Status::Ok();
  };
  std::unordered_map<const ChargeCss*, int64_t> local_want;
  Status st;
  ledgers_.with_all_locked([&](auto&& for_each) {
    for_each([&](const Mm* mm, Ledger& ledger) {
      if (!st.ok()) return;
      st = check_ledger(ledger, mm->charged.load(), "charge", "Mm::charged", local_want);
    });
    if (st.ok()) st = registry_.check(local_want);
  });
  if (!st.ok()) return st;
  // Swap, under its own shards (no charger of it is running meanwhile:
  // every one holds a swap shard mutex, or the cgroup mutex in attach).
  std::unordered_map<const ChargeCss*, int64_t> swap_want;
  swap_ledgers_.with_all_locked([&](auto&& for_each) {
    for_each([&](const Mm* mm, Ledger& ledger) {
      if (st.ok()) st = check_ledger(ledger, mm->swapped.load(), "swap", "Mm::swapped", swap_want);
    });
    if (st.ok()) st = registry_.check(swap_want, kSwapView);
  });
  return st;
}

}  // namespace cgcore
