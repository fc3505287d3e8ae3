#include "controllers/cpu.h"

#include <algorithm>
#include <cstdlib>
#include <new>

#include "core/migration.h"
#include "core/parse.h"

namespace cgcore {

namespace {

// The scheduler's weight of each nice level, -20 first (sched_prio_to_weight).
constexpr uint64_t kNiceWeight[40] = {
    88761, 71755, 56483, 46273, 36291, 29154, 23254, 18705, 14949, 11916,
    9548,  7620,  6100,  4904,  3906,  3121,  2501,  1991,  1586,  1277,
    1024,  820,   655,   526,   423,   335,   272,   215,   172,   137,
    110,   87,    70,    56,    45,    36,    29,    23,    18,    15,
};

// The kernel's bounds, in its units.
constexpr uint64_t kMinShares = 2, kMaxShares = uint64_t{1} << 18;
constexpr uint64_t kIdleShares = 3;  // WEIGHT_IDLEPRIO
constexpr uint64_t kMinWeight = 1, kMaxWeight = 10000, kDefaultWeight = 100;
constexpr uint64_t kMinPeriodUs = 1000;       // also the smallest quota
constexpr uint64_t kMaxPeriodUs = 1000000;
constexpr uint64_t kMaxRuntimeUs = (uint64_t{1} << 44) - 1;  // quota (+ burst)
constexpr uint64_t kMaxUsec = UINT64_MAX / 1000;  // survives conversion to ns
constexpr int kBwShift = 20;

CpuCss& cpu(Css& css) { return CpuController::of(css); }

// Rounds a / b to the nearest integer (DIV_ROUND_CLOSEST for unsigned).
uint64_t div_round_closest(uint64_t a, uint64_t b) { return (a + b / 2) / b; }

uint64_t shares_for_weight(uint64_t weight) {
  return div_round_closest(weight * CpuCss::kDefaultShares, kDefaultWeight);
}
uint64_t weight_for_shares(uint64_t shares) {
  return std::clamp(div_round_closest(shares * kDefaultWeight, CpuCss::kDefaultShares), kMinWeight,
                    kMaxWeight);
}

// A quota/period ratio in fixed point (the kernel's to_ratio); kUnlimited
// stays unlimited. Quotas are below 2^44, so the shift cannot overflow.
uint64_t bandwidth_ratio(uint64_t period_us, uint64_t quota_us) {
  if (quota_us == CpuCss::kUnlimited) return CpuCss::kUnlimited;
  return (quota_us << kBwShift) / period_us;
}

// The css of cpu controller `id` that governs `cg` (its own; on v2 the
// nearest ancestor's where cpu is enabled). Locking: cgroup mutex held.
CpuCss& governing_css(Engine& engine, const Cgroup& cg, ControllerId id) {
  engine.cgroup_mutex().AssertHeld();
  Css* css = engine.effective_css_locked(cg, id);
  return cpu(css ? *css : engine.root_css(id));
}

}  // namespace

int CpuController::nice_for_shares(uint64_t shares) {
  uint64_t last = UINT64_MAX;
  int prio = 0;
  for (; prio < 40; ++prio) {
    const uint64_t w = kNiceWeight[prio];
    const uint64_t delta = w > shares ? w - shares : shares - w;
    if (delta >= last) break;
    last = delta;
  }
  return prio - 1 - 20;
}

Result<std::unique_ptr<Css>> CpuController::css_alloc(Css*) {
  try {
    return std::unique_ptr<Css>(new CpuCss);
  } catch (const std::bad_alloc&) {
    return Status::Error(ENOMEM, "cpu: out of memory for a css");
  }
}

// ------------------------------------------------------------ migration

Status CpuController::can_attach(TaskSet& tset) {
  engine()->cgroup_mutex().AssertHeld();
  renice_.clear();
  if (!nice_sink_) return Status::Ok();
  Status st;
  tset.for_each([&](Task& t, CssSet* src, CssSet& dst) {
    engine()->cgroup_mutex().AssertHeld();
    if (!st.ok()) return;
    const int from = nice_for_shares(cpu(*src->css(id())).shares());
    const int to = nice_for_shares(cpu(*dst.css(id())).shares());
    // A task whose level stays keeps the nice it has (perhaps its own).
    if (from == to) return;
    try {
      renice_.push_back({t.tid(), to});
    } catch (const std::bad_alloc&) {
      st = Status::Error(ENOMEM, "cpu: out of memory recording a migration");
    }
  });
  if (!st.ok()) renice_.clear();
  return st;
}

void CpuController::cancel_attach(TaskSet&) {
  engine()->cgroup_mutex().AssertHeld();
  renice_.clear();
}

void CpuController::post_attach(TaskSet&) {
  engine()->cgroup_mutex().AssertHeld();
  for (const Renice& r : renice_) nice_sink_(r.tid, r.nice);
  renice_.clear();
}

Result<int> CpuController::nice_of(Engine& engine, Pid tid) {
  MutexLock l(engine.cgroup_mutex());
  Result<CgroupPtr> cg = engine.task_cgroup(tid, engine.hierarchy_of_locked(id()));
  if (!cg.ok()) return cg.status();
  return nice_for_shares(governing_css(engine, **cg, id()).shares());
}

// ------------------------------------------------------------ CPU time

Result<size_t> CpuController::charge(Engine& engine, std::span<const CpuCharge> charges) {
  if (&engine != this->engine()) return Status::Error(EINVAL, "not this controller's engine");
  MutexLock l(engine.cgroup_mutex());
  const Hierarchy& dfl = engine.default_hierarchy();
  const Hierarchy* acct = cpuacct_ ? &engine.hierarchy_of_locked(cpuacct_->id()) : nullptr;
  size_t done = 0;
  for (const CpuCharge& c : charges) {
    if (c.user_ns == 0 && c.system_ns == 0) continue;
    Result<CgroupPtr> cg = engine.task_cgroup(c.tid, dfl);
    if (!cg.ok()) continue;
    for (Cgroup* p = cg->get(); p; p = p->parent()) {
      Cgroup::CpuTime& t = p->cputime();
      t.user_ns.fetch_add(c.user_ns, std::memory_order_relaxed);
      t.system_ns.fetch_add(c.system_ns, std::memory_order_relaxed);
      if (c.nice) t.nice_ns.fetch_add(c.user_ns, std::memory_order_relaxed);
    }
    if (acct) {
      Result<CgroupPtr> ag = engine.task_cgroup(c.tid, *acct);
      if (ag.ok()) {
        Css* css = engine.effective_css_locked(**ag, cpuacct_->id());
        CpuacctController::charge(css ? *css : engine.root_css(cpuacct_->id()), c.user_ns,
                                  c.system_ns);
      }
    }
    ++done;
  }
  return done;
}

// ------------------------------------------------------------ settings

Status CpuController::set_shares_locked(Engine& engine, CpuCss& css, uint64_t shares,
                                        bool from_idle) {
  engine.cgroup_mutex().AssertHeld();
  if (css.is_root()) return Status::Error(EINVAL, "the root cpu cgroup's weight is fixed");
  if (css.idle() && !from_idle)
    return Status::Error(EINVAL, "an idle cpu cgroup's weight cannot be changed");
  const int before = nice_for_shares(css.shares());
  css.shares_.store(shares, std::memory_order_relaxed);
  const int after = nice_for_shares(shares);
  if (before == after || !nice_sink_) return Status::Ok();
  // The tasks this css governs: its cgroup's and, on v2, those of the
  // descendants that do not enable cpu themselves.
  std::vector<const Cgroup*> stack{css.cgroup()};
  while (!stack.empty()) {
    const Cgroup* cg = stack.back();
    stack.pop_back();
    for (Pid tid : engine.cgroup_tids(*cg)) nice_sink_(tid, after);
    for (const auto& [name, child] : cg->children())
      if (!child->css(id())) stack.push_back(child);
  }
  return Status::Ok();
}

Status CpuController::set_bandwidth_locked(Engine& engine, CpuCss& css, uint64_t period_us,
                                           uint64_t quota_us, uint64_t burst_us) {
  engine.cgroup_mutex().AssertHeld();
  auto bad = [](const std::string& why) { return Status::Error(EINVAL, "cpu: " + why); };
  if (css.is_root()) return bad("the root cgroup's bandwidth cannot be limited");
  const bool limited = quota_us != CpuCss::kUnlimited;
  if (period_us > kMaxUsec || (limited && quota_us > kMaxUsec) || burst_us > kMaxUsec)
    return bad("a value too large to be held in nanoseconds");
  if (quota_us < kMinPeriodUs || period_us < kMinPeriodUs)
    return bad("quota and period are at least 1000 us");
  if (period_us > kMaxPeriodUs) return bad("the period is at most 1000000 us");
  if (limited && quota_us > kMaxRuntimeUs) return bad("the quota is below 2^44 us");
  if (limited && (burst_us > quota_us || burst_us + quota_us > kMaxRuntimeUs))
    return bad("the burst is at most the quota (and quota + burst below 2^44 us)");
  Cgroup* cg = css.cgroup();
  if (!cg->hierarchy().is_default()) {
    // v1: no cgroup may be given more bandwidth than its nearest limited
    // ancestor, counting the new values of this css (the kernel's
    // __cfs_schedulable over the whole tree, which only this subtree and
    // its ancestors can fail).
    const ControllerId ss = css.controller_id();
    uint64_t above = CpuCss::kUnlimited;
    for (const Cgroup* a = cg->parent(); a && !a->is_root(); a = a->parent()) {
      const CpuCss& ac = cpu(*a->css(ss));
      const uint64_t r = bandwidth_ratio(ac.period_us(), ac.quota_us());
      if (r != CpuCss::kUnlimited) above = std::min(above, r);
    }
    struct Level {
      const Cgroup* cg;
      uint64_t parent_ratio;
    };
    std::vector<Level> stack{{cg, above}};
    while (!stack.empty()) {
      const Level l = stack.back();
      stack.pop_back();
      const CpuCss& c = cpu(*l.cg->css(ss));
      uint64_t r = &c == &css ? bandwidth_ratio(period_us, quota_us)
                              : bandwidth_ratio(c.period_us(), c.quota_us());
      if (r == CpuCss::kUnlimited) {
        r = l.parent_ratio;
      } else if (l.parent_ratio != CpuCss::kUnlimited && r > l.parent_ratio) {
        return bad(l.cg->path() + " would get more CPU bandwidth than an ancestor allows");
      }
      for (const auto& [name, child] : l.cg->children()) stack.push_back({child, r});
    }
  }
  css.period_us_.store(period_us, std::memory_order_relaxed);
  css.quota_us_.store(quota_us, std::memory_order_relaxed);
  css.burst_us_.store(burst_us, std::memory_order_relaxed);
  return Status::Ok();
}

// ------------------------------------------------------------ v1 files

Result<std::string> CpuController::read_shares(Engine&, Css& css) {
  return std::to_string(cpu(css).shares()) + "\n";
}

Status CpuController::write_shares(Engine& engine, Css& css, std::string_view text) {
  Result<uint64_t> v = kstrtoull(text, 0);
  if (!v.ok()) return v.status();
  // Out-of-range shares are clamped, not refused (the kernel's
  // sched_group_set_shares).
  const uint64_t shares = std::clamp(*v, kMinShares, kMaxShares);
  return static_cast<CpuController&>(css.controller()).set_shares_locked(engine, cpu(css), shares);
}

Result<std::string> CpuController::read_quota_v1(Engine&, Css& css) {
  const uint64_t q = cpu(css).quota_us();
  return (q == CpuCss::kUnlimited ? std::string("-1") : std::to_string(q)) + "\n";
}

Status CpuController::write_quota_v1(Engine& engine, Css& css, std::string_view text) {
  Result<int64_t> v = kstrtoll(text, 0);
  if (!v.ok()) return v.status();
  // Any negative quota means "no limit".
  const uint64_t quota = *v < 0 ? CpuCss::kUnlimited : static_cast<uint64_t>(*v);
  CpuCss& c = cpu(css);
  return set_bandwidth_locked(engine, c, c.period_us(), quota, c.burst_us());
}

Result<std::string> CpuController::read_period_v1(Engine&, Css& css) {
  return std::to_string(cpu(css).period_us()) + "\n";
}

Status CpuController::write_period_v1(Engine& engine, Css& css, std::string_view text) {
  Result<uint64_t> v = kstrtoull(text, 0);
  if (!v.ok()) return v.status();
  CpuCss& c = cpu(css);
  return set_bandwidth_locked(engine, c, *v, c.quota_us(), c.burst_us());
}

Result<std::string> CpuController::read_burst(Engine&, Css& css) {
  return std::to_string(cpu(css).burst_us()) + "\n";
}

Status CpuController::write_burst(Engine& engine, Css& css, std::string_view text) {
  Result<uint64_t> v = kstrtoull(text, 0);
  if (!v.ok()) return v.status();
  CpuCss& c = cpu(css);
  return set_bandwidth_locked(engine, c, c.period_us(), c.quota_us(), *v);
}

// Nothing is ever throttled (see cpu.h), so the throttling counters are 0.
Result<std::string> CpuController::read_stat_v1(Engine&, Css&) {
  return std::string("nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0\n");
}

Result<std::string> CpuController::read_stat_local_v1(Engine&, Css&) {
  return std::string("throttled_time 0\n");
}

// ------------------------------------------------------------ v2 files

Result<std::string> CpuController::read_weight(Engine&, Css& css) {
  return std::to_string(weight_for_shares(cpu(css).shares())) + "\n";
}

Status CpuController::write_weight(Engine& engine, Css& css, std::string_view text) {
  Result<uint64_t> v = kstrtoull(text, 0);
  if (!v.ok()) return v.status();
  if (*v < kMinWeight || *v > kMaxWeight)
    return Status::Error(ERANGE, "cpu.weight takes 1..10000");
  return static_cast<CpuController&>(css.controller())
      .set_shares_locked(engine, cpu(css), std::clamp(shares_for_weight(*v), kMinShares, kMaxShares));
}

Result<std::string> CpuController::read_weight_nice(Engine&, Css& css) {
  return std::to_string(nice_for_shares(cpu(css).shares())) + "\n";
}

Status CpuController::write_weight_nice(Engine& engine, Css& css, std::string_view text) {
  Result<int64_t> v = kstrtoll(text, 0);
  if (!v.ok()) return v.status();
  if (*v < -20 || *v > 19) return Status::Error(ERANGE, "cpu.weight.nice takes -20..19");
  return static_cast<CpuController&>(css.controller())
      .set_shares_locked(engine, cpu(css), kNiceWeight[*v + 20]);
}

Result<std::string> CpuController::read_idle(Engine&, Css& css) {
  return std::string(cpu(css).idle() ? "1\n" : "0\n");
}

// A write_s64 file: 0 or 1, else EINVAL; EINVAL on the root. Turning idle
// on gives the group the lowest weight; turning it off the default one.
Status CpuController::write_idle(Engine& engine, Css& css, std::string_view text) {
  Result<int64_t> v = kstrtoll(text, 0);
  if (!v.ok()) return v.status();
  if (*v != 0 && *v != 1) return Status::Error(EINVAL, "cpu.idle takes 0 or 1");
  CpuCss& c = cpu(css);
  if (c.is_root()) return Status::Error(EINVAL, "the root cpu cgroup cannot be idle");
  const bool idle = *v == 1;
  if (c.idle() == idle) return Status::Ok();
  auto& ctl = static_cast<CpuController&>(css.controller());
  Status st = ctl.set_shares_locked(engine, c, idle ? kIdleShares : CpuCss::kDefaultShares,
                                    /*from_idle=*/true);
  if (st.ok()) c.idle_.store(idle, std::memory_order_relaxed);
  return st;
}

Result<std::string> CpuController::read_max(Engine&, Css& css) {
  const CpuCss& c = cpu(css);
  const std::string quota =
      c.quota_us() == CpuCss::kUnlimited ? std::string("max") : std::to_string(c.quota_us());
  return quota + " " + std::to_string(c.period_us()) + "\n";
}

namespace {

// The kernel's sscanf number conversion with "%llu": white space skipped,
// then decimal digits (no sign), wrapping modulo 2^64; nothing taken if no
// digit follows. Returns whether a number was read; advances `s`.
bool scan_u64(std::string_view& s, uint64_t* out) {
  while (!s.empty() && kisspace(s.front())) s.remove_prefix(1);
  if (s.empty() || s.front() < '0' || s.front() > '9') return false;
  const Prefix p = simple_strtoull(s, 10);
  *out = p.value;
  s.remove_prefix(p.used);
  return true;
}

}  // namespace

// "QUOTA [PERIOD]" as the kernel reads it: sscanf(buf, "%20s %llu") — a
// token of at most 20 non-space characters (white space before it
// skipped), then optionally a period; the token is "max" or starts with
// decimal digits (sscanf "%llu": anything after them is ignored). EINVAL
// when there is no token or it is neither; then the bandwidth checks.
Status CpuController::write_max(Engine& engine, Css& css, std::string_view text) {
  CpuCss& c = cpu(css);
  std::string_view s = text;
  while (!s.empty() && kisspace(s.front())) s.remove_prefix(1);
  if (text.empty()) return Status::Error(EINVAL, "cpu.max: expected \"QUOTA [PERIOD]\"");
  size_t n = 0;
  while (n < s.size() && n < 20 && !kisspace(s[n])) ++n;
  std::string_view token = s.substr(0, n);
  s.remove_prefix(n);
  uint64_t period = c.period_us();
  (void)scan_u64(s, &period);  // optional: the period stays as it is
  uint64_t quota = 0;
  std::string_view t = token;
  if (!scan_u64(t, &quota)) {
    if (token != "max") return Status::Error(EINVAL, "cpu.max: the quota is a number or \"max\"");
    quota = CpuCss::kUnlimited;
  }
  return set_bandwidth_locked(engine, c, period, quota, c.burst_us());
}

// ------------------------------------------------------------ v2 core files

namespace {
const Css* own_cpu_css(Engine& engine, const Cgroup& cgroup, const CpuController* ctl) {
  engine.cgroup_mutex().AssertHeld();
  if (!ctl || !engine.hierarchy_of_locked(ctl->id()).is_default()) return nullptr;
  return cgroup.is_root() ? &engine.root_css(ctl->id()) : cgroup.css(ctl->id());
}
}  // namespace

std::string format_v2_cpu_stat(Engine& engine, const Cgroup& cgroup, const CpuController* ctl) {
  const Cgroup::CpuTime& t = cgroup.cputime();
  const uint64_t user = t.user_ns.load(std::memory_order_relaxed);
  const uint64_t system = t.system_ns.load(std::memory_order_relaxed);
  const uint64_t nice = t.nice_ns.load(std::memory_order_relaxed);
  std::string out = "usage_usec " + std::to_string((user + system) / 1000) + "\nuser_usec " +
                    std::to_string(user / 1000) + "\nsystem_usec " + std::to_string(system / 1000) +
                    "\nnice_usec " + std::to_string(nice / 1000) + "\n";
  // Nothing is ever throttled (see cpu.h).
  if (own_cpu_css(engine, cgroup, ctl))
    out += "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n";
  return out;
}

std::string format_v2_cpu_stat_local(Engine& engine, const Cgroup& cgroup,
                                     const CpuController* ctl) {
  return own_cpu_css(engine, cgroup, ctl) ? std::string("throttled_usec 0\n") : std::string();
}

// ------------------------------------------------------------ checks

Status CpuController::check_invariants(Engine& engine) {
  engine.cgroup_mutex().AssertHeld();
  const Hierarchy& h = engine.hierarchy_of_locked(id());
  struct Level {
    const Cgroup* cg;
    uint64_t parent_ratio;
  };
  std::vector<Level> stack{{&h.root(), CpuCss::kUnlimited}};
  while (!stack.empty()) {
    const Level l = stack.back();
    stack.pop_back();
    const Css* own = l.cg->is_root() ? &engine.root_css(id()) : l.cg->css(id());
    uint64_t ratio = l.parent_ratio;
    if (own) {
      const CpuCss& c = static_cast<const CpuCss&>(*own);
      auto fail = [&](const std::string& what) {
        return Status::Error(EIO, "cpu: " + l.cg->path() + ": " + what);
      };
      if (c.shares() < kMinShares || c.shares() > kMaxShares) return fail("shares out of range");
      if (c.idle() && c.shares() != kIdleShares) return fail("an idle group with a weight");
      if (c.period_us() < kMinPeriodUs || c.period_us() > kMaxPeriodUs)
        return fail("period out of range");
      if (c.quota_us() != CpuCss::kUnlimited &&
          (c.quota_us() < kMinPeriodUs || c.quota_us() > kMaxRuntimeUs ||
           c.burst_us() > c.quota_us()))
        return fail("quota or burst out of range");
      if (l.cg->is_root() && (c.quota_us() != CpuCss::kUnlimited || c.shares() != CpuCss::kDefaultShares))
        return fail("the root's settings changed");
      const uint64_t r = bandwidth_ratio(c.period_us(), c.quota_us());
      if (!h.is_default() && r != CpuCss::kUnlimited) {
        if (l.parent_ratio != CpuCss::kUnlimited && r > l.parent_ratio)
          return fail("more bandwidth than an ancestor allows");
        ratio = r;
      }
    }
    for (const auto& [name, child] : l.cg->children()) stack.push_back({child, ratio});
  }
  return Status::Ok();
}

}  // namespace cgcore
