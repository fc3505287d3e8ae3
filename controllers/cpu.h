// The cpu controller: CPU weight and bandwidth settings per cgroup, with the
// kernel's files, ranges and errnos (kernel/sched/core.c's cgroup files),
// and the way CPU time reaches cgcore (charge()).
//
// Settings. One state per css serves both file sets, as in the kernel:
//   * the weight, kept in the kernel's v1 unit (cpu.shares, 2..262144,
//     default 1024). v2's cpu.weight (1..10000, default 100) is converted
//     to it rounding to nearest (w * 1024 / 100) and back; cpu.weight.nice
//     (-20..19) sets the weight of that nice level in the scheduler's
//     table and reads the nice level whose weight is closest.
//   * idle (cpu.idle, 0 or 1): an idle group has the scheduler's lowest
//     weight (3, WEIGHT_IDLEPRIO) and refuses weight writes (EINVAL) until
//     idle is cleared, which restores the default weight (1024), as the
//     kernel does.
//   * the bandwidth: period (1000..1000000 us, default 100000), quota
//     (1000 .. 2^44-1 us, or unlimited) and burst (0 .. quota; quota+burst
//     below 2^44). On v1 (cpu.cfs_*) a cgroup's quota/period ratio may not
//     exceed its nearest limited ancestor's, checked over the whole subtree
//     at every write (EINVAL); on v2 (cpu.max, cpu.max.burst) a child's
//     limit is independent of its parent's in the files. Every bandwidth
//     write on the root is EINVAL (v1; v2 has no such files on the root).
//
// What is applied to real tasks: the weight, as a nice value. When a task
// moves to a css whose weight maps to another nice level than its old one,
// or the weight of the css governing it changes, the nice sink (given at
// construction, like cpuset's affinity sink) is told the task and the nice
// level (nice_for_shares). Nothing throttles: cpu.max and the bursts are
// stored and read back, and the throttling statistics (nr_periods,
// nr_throttled, throttled_usec, nr_bursts, burst_usec) stay 0 because no
// task is ever throttled (docs/compatibility.md says why).
//
// CPU time. The embedder reports the CPU time each task ran (charge());
// it is added to the task's cgroup of the default hierarchy and every
// ancestor there (Cgroup::cputime, cgroup v2's cpu.stat, present in every
// v2 cgroup whatever its controllers), and to the task's cpuacct css and
// every ancestor (cpuacct's v1 files), wherever the task is when the time
// is reported. Counters never go down: exited tasks and removed cgroups
// leave their time in the ancestors.
//
// Files: v1 cpu.shares, cpu.cfs_quota_us, cpu.cfs_period_us,
// cpu.cfs_burst_us, cpu.idle, cpu.stat, cpu.stat.local (every cgroup, root
// included); v2 cpu.weight, cpu.weight.nice, cpu.idle, cpu.max,
// cpu.max.burst (not on the root). v2's cpu.stat and cpu.stat.local are core files (the file
// layer serves them in every v2 cgroup) rendered by format_v2_cpu_stat and
// format_v2_cpu_stat_local below.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "controllers/cpuacct.h"
#include "core/controller.h"
#include "core/engine.h"

namespace cgcore {

// CPU time a task ran since its last report.
struct CpuCharge {
  Pid tid = 0;
  uint64_t user_ns = 0;
  uint64_t system_ns = 0;
  // It ran at a nice level above 0: its user time also counts as nice time
  // (v2 cpu.stat nice_usec), as the kernel counts it.
  bool nice = false;
};

// One cgroup's cpu settings. Written under the cgroup mutex (file
// handlers), read by migrations (which hold it too) and by anyone through
// the atomic loads.
class CpuCss final : public Css {
 public:
  static constexpr uint64_t kDefaultShares = 1024;
  static constexpr uint64_t kDefaultPeriodUs = 100000;
  // The quota meaning "no limit" (the kernel's RUNTIME_INF).
  static constexpr uint64_t kUnlimited = UINT64_MAX;

  uint64_t shares() const { return shares_.load(std::memory_order_relaxed); }
  uint64_t period_us() const { return period_us_.load(std::memory_order_relaxed); }
  uint64_t quota_us() const { return quota_us_.load(std::memory_order_relaxed); }
  uint64_t burst_us() const { return burst_us_.load(std::memory_order_relaxed); }
  bool idle() const { return idle_.load(std::memory_order_relaxed); }

 private:
  friend class CpuController;
  std::atomic<uint64_t> shares_{kDefaultShares};
  std::atomic<uint64_t> period_us_{kDefaultPeriodUs};
  std::atomic<uint64_t> quota_us_{kUnlimited};
  std::atomic<uint64_t> burst_us_{0};
  std::atomic<bool> idle_{false};
};

class CpuController final : public Controller {
 public:
  // Told, for a task, the nice level its cgroup's weight corresponds to.
  // Called with engine locks held (the cgroup mutex; never the css_set
  // lock): it must only record, never call into the engine or block.
  using NiceSink = std::function<void(Pid tid, int nice)>;

  // `nice`: where weight changes go (empty: nowhere, virtual tasks).
  // `cpuacct`: the cpuacct controller that charge() feeds too, or null.
  explicit CpuController(NiceSink nice = {}, CpuacctController* cpuacct = nullptr)
      : nice_sink_(std::move(nice)), cpuacct_(cpuacct) {}

  std::string_view name() const override { return "cpu"; }
  // Threaded, as the kernel's: threads of one process may sit in
  // different cpu cgroups of a v2 threaded subtree.
  bool threaded() const override { return true; }

  // A css with the defaults (shares 1024, period 100000 us, no quota, no
  // burst). ENOMEM only. Locking: cgroup mutex held.
  Result<std::unique_ptr<Css>> css_alloc(Css* parent) override;

  // Records the movers whose nice level changes with the move; ENOMEM only
  // (never refuses). Locking: cgroup mutex and the movers' threadgroup
  // locks held.
  Status can_attach(TaskSet& tset) override;
  // Drops the record. Locking: as can_attach.
  void cancel_attach(TaskSet& tset) override;
  // Tells the nice sink about each recorded mover. Locking: as can_attach
  // (css_set lock not held).
  void post_attach(TaskSet& tset) override;

  // Weights and bandwidth settings are in range, and on v1 no cgroup's
  // quota/period ratio exceeds its nearest limited ancestor's. Ok or EIO.
  // Locking: every engine lock held (see Controller::check_invariants).
  Status check_invariants(Engine& engine) override;

  std::span<const ControlFileSpec> files() const override { return kFiles; }

  // Adds each charge to its task's cgroup in the default hierarchy and
  // every ancestor there, and (if a cpuacct controller was given) to its
  // cpuacct css and every ancestor. A charge of a task the engine does not
  // have (it exited before its time was reported) is skipped. Returns how
  // many charges were made; EINVAL if `engine` is not this controller's.
  // Locking: takes the cgroup mutex (one hold for the whole batch); the
  // caller holds no engine lock.
  Result<size_t> charge(Engine& engine, std::span<const CpuCharge> charges);

  // The nice level whose weight in the scheduler's table is closest to
  // `shares` (ties to the higher weight), as cpu.weight.nice reads it: 0
  // for 1024, -20 for 88761 and above, 19 for 15 and below. Locking: none.
  static int nice_for_shares(uint64_t shares);
  // The nice level the css governing task `tid` in the cpu hierarchy asks
  // for (ESRCH if there is no such task). Locking: takes the cgroup mutex.
  Result<int> nice_of(Engine& engine, Pid tid);

  static CpuCss& of(Css& css) { return static_cast<CpuCss&>(css); }

 private:
  // A mover whose nice level changes.
  struct Renice {
    Pid tid;
    int nice;
  };

  // Applies period / quota / burst to `css` after the kernel's checks
  // (tg_set_cfs_bandwidth): EINVAL on the root, for a period outside
  // 1000..1000000 us, a quota below 1000 us or above 2^44-1, a burst
  // above the quota or quota+burst above 2^44-1, or values that do not
  // survive conversion to nanoseconds; on v1, EINVAL if any cgroup of the
  // subtree would get a larger quota/period ratio than its nearest
  // limited ancestor. Nothing changes on failure.
  // Locking: cgroup mutex held.
  static Status set_bandwidth_locked(Engine& engine, CpuCss& css, uint64_t period_us,
                                     uint64_t quota_us, uint64_t burst_us);
  // Sets the weight (already clamped to 2..262144) and tells the nice sink
  // about every task the css governs whose nice level changes: the
  // cgroup's own tasks and, on v2, those of descendants where cpu is not
  // enabled. EINVAL on the root (the kernel's root group has no weight) and
  // while the group is idle, unless `from_idle` (cpu.idle's own change).
  // Locking: cgroup mutex held.
  Status set_shares_locked(Engine& engine, CpuCss& css, uint64_t shares, bool from_idle = false);

  // The file handlers. Reads give the kernel's exact text; writes parse as
  // the kernel's (write_u64 / write_s64 files: kstrtoull / kstrtoll base
  // 0, no white space but one trailing newline; cpu.max as described in
  // cpu.cc) and change nothing on failure. Locking: cgroup mutex held.
  static Result<std::string> read_shares(Engine&, Css& css);
  static Status write_shares(Engine&, Css& css, std::string_view text);
  static Result<std::string> read_quota_v1(Engine&, Css& css);
  static Status write_quota_v1(Engine&, Css& css, std::string_view text);
  static Result<std::string> read_period_v1(Engine&, Css& css);
  static Status write_period_v1(Engine&, Css& css, std::string_view text);
  static Result<std::string> read_burst(Engine&, Css& css);
  static Status write_burst(Engine&, Css& css, std::string_view text);
  static Result<std::string> read_stat_v1(Engine&, Css& css);
  static Result<std::string> read_stat_local_v1(Engine&, Css& css);
  static Result<std::string> read_weight(Engine&, Css& css);
  static Status write_weight(Engine&, Css& css, std::string_view text);
  static Result<std::string> read_weight_nice(Engine&, Css& css);
  static Status write_weight_nice(Engine&, Css& css, std::string_view text);
  static Result<std::string> read_idle(Engine&, Css& css);
  static Status write_idle(Engine&, Css& css, std::string_view text);
  static Result<std::string> read_max(Engine&, Css& css);
  static Status write_max(Engine&, Css& css, std::string_view text);

  static constexpr ControlFileSpec kFiles[] = {
      // cgroup v1
      {"shares", kV1, FileScope::kEverywhere, &read_shares, &write_shares},
      {"cfs_quota_us", kV1, FileScope::kEverywhere, &read_quota_v1, &write_quota_v1},
      {"cfs_period_us", kV1, FileScope::kEverywhere, &read_period_v1, &write_period_v1},
      {"cfs_burst_us", kV1, FileScope::kEverywhere, &read_burst, &write_burst},
      {"idle", kV1, FileScope::kEverywhere, &read_idle, &write_idle},
      {"stat", kV1, FileScope::kEverywhere, &read_stat_v1, nullptr},
      {"stat.local", kV1, FileScope::kEverywhere, &read_stat_local_v1, nullptr},
      // cgroup v2 (cpu.stat and cpu.stat.local are core files there)
      {"weight", kV2, FileScope::kNonRoot, &read_weight, &write_weight},
      {"weight.nice", kV2, FileScope::kNonRoot, &read_weight_nice, &write_weight_nice},
      {"idle", kV2, FileScope::kNonRoot, &read_idle, &write_idle},
      {"max", kV2, FileScope::kNonRoot, &read_max, &write_max},
      {"max.burst", kV2, FileScope::kNonRoot, &read_burst, &write_burst},
  };

  const NiceSink nice_sink_;         // Immutable.
  CpuacctController* const cpuacct_;  // Immutable; may be null.
  // The migration in progress: filled by can_attach, used by post_attach.
  // Guarded by the engine's cgroup mutex (one migration at a time).
  std::vector<Renice> renice_ CG_GUARDED_BY(engine()->cgroup_mutex());
};

static_assert(!std::is_abstract_v<CpuController>);

// cgroup v2's cpu.stat of `cgroup` (a default-hierarchy cgroup): the
// usage lines from Cgroup::cputime (usage_usec, user_usec, system_usec,
// nice_usec), then, where the cpu controller is bound to the default
// hierarchy and has a css in this very cgroup (the root always), its
// bandwidth statistics. `cpu` may be null (not registered).
// Locking: cgroup mutex held.
std::string format_v2_cpu_stat(Engine& engine, const Cgroup& cgroup, const CpuController* cpu);
// cgroup v2's cpu.stat.local: "throttled_usec N\n" where the cpu controller
// has a css in the cgroup, else empty. Locking: cgroup mutex held.
std::string format_v2_cpu_stat_local(Engine& engine, const Cgroup& cgroup,
                                     const CpuController* cpu);

}  // namespace cgcore
