// The cpuacct controller: CPU time accounting per cgroup on cgroup v1, as
// the kernel's kernel/sched/cpuacct.c presents it. It limits nothing.
//
// cpuacct is a v1-only controller (on_v2() is false): cgroup v2 reports CPU
// time in every cgroup's cpu.stat instead (Cgroup::cputime). Bound to a v1
// hierarchy of its own ("cpuacct", like this host's) or with cpu ("cpu,cpuacct",
// like most distributions'), each cgroup's files show the CPU time of the
// tasks of its subtree, exited ones included: a charge is added to the css
// of the task's cgroup and to every ancestor at once (the kernel's
// cpuacct_charge walks up the same way), so nothing is lost when a task
// exits or a child cgroup is removed.
//
// Where the time comes from: the embedder reports it through
// CpuController::charge (host mode: the real CPU time of the host's tasks;
// cgsh: its `cputime` command). Charges are split into user and system
// time by the reporter.
//
// Files (every cgroup, root included; v1 only):
//   cpuacct.usage       total ns; writing 0 resets this cgroup's counters
//                       (not its ancestors' or descendants'), anything else
//                       EINVAL, as the kernel
//   cpuacct.usage_user  user ns
//   cpuacct.usage_sys   system ns
//   cpuacct.stat        "user N\nsystem N\n" in USER_HZ (100) ticks
// The kernel's per-CPU files (usage_percpu, usage_percpu_user,
// usage_percpu_sys, usage_all) are not provided: the CPU time a reporter
// learns of (/proc/PID/task/TID/stat and schedstat) carries no per-CPU
// split (docs/compatibility.md).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <type_traits>

#include "core/controller.h"
#include "core/engine.h"

namespace cgcore {

// One cgroup's cpuacct state. The totals only grow; a reset through
// cpuacct.usage records the totals at that moment, and the files show the
// time since. Atomics: charges arrive from the reporter's thread while
// files are read under the cgroup mutex.
class CpuacctCss final : public Css {
 public:
  // What the files show (since the last reset).
  uint64_t user_ns() const { return since(total_user(), reset_user_); }
  uint64_t system_ns() const { return since(total_system(), reset_system_); }
  uint64_t usage_ns() const { return user_ns() + system_ns(); }
  // Everything ever charged here (resets ignored).
  uint64_t total_user() const { return user_ns_.load(std::memory_order_relaxed); }
  uint64_t total_system() const { return system_ns_.load(std::memory_order_relaxed); }

 private:
  friend class CpuacctController;
  static uint64_t since(uint64_t total, const std::atomic<uint64_t>& mark) {
    const uint64_t m = mark.load(std::memory_order_relaxed);
    return total > m ? total - m : 0;
  }
  std::atomic<uint64_t> user_ns_{0};
  std::atomic<uint64_t> system_ns_{0};
  std::atomic<uint64_t> reset_user_{0};
  std::atomic<uint64_t> reset_system_{0};
};

class CpuacctController final : public Controller {
 public:
  CpuacctController() = default;

  std::string_view name() const override { return "cpuacct"; }
  // v1 only, as in the kernel (it has no cgroup v2 files).
  bool on_v2() const override { return false; }
  // Accounts threads: a thread charges the cgroup it is in itself.
  bool threaded() const override { return true; }

  // A css with zero counters. ENOMEM only. Locking: cgroup mutex held.
  Result<std::unique_ptr<Css>> css_alloc(Css* parent) override;

  // Adds CPU time to `css` and every ancestor (root included). Never fails.
  // Locking: none needed (atomics); the caller keeps `css` alive (it holds
  // the cgroup mutex, or a reference).
  static void charge(Css& css, uint64_t user_ns, uint64_t system_ns);

  // Each css's totals are at least the sum of its live children's (more
  // when its own tasks ran, or children were removed), and what the files
  // show never exceeds the totals. Ok or EIO.
  // Locking: every engine lock held (see Controller::check_invariants).
  Status check_invariants(Engine& engine) override;

  std::span<const ControlFileSpec> files() const override { return kFiles; }

 private:
  // The file handlers; reads give the kernel's exact text. write_usage
  // takes a u64 as the kernel's write_u64 files do (kstrtoull base 0, no
  // white space but one trailing newline): 0 resets, else EINVAL.
  // Locking: cgroup mutex held.
  static Result<std::string> read_usage(Engine&, Css& css);
  static Status write_usage(Engine&, Css& css, std::string_view text);
  static Result<std::string> read_usage_user(Engine&, Css& css);
  static Result<std::string> read_usage_sys(Engine&, Css& css);
  static Result<std::string> read_stat(Engine&, Css& css);

  static constexpr ControlFileSpec kFiles[] = {
      {"usage", kV1, FileScope::kEverywhere, &read_usage, &write_usage},
      {"usage_user", kV1, FileScope::kEverywhere, &read_usage_user, nullptr},
      {"usage_sys", kV1, FileScope::kEverywhere, &read_usage_sys, nullptr},
      {"stat", kV1, FileScope::kEverywhere, &read_stat, nullptr},
  };
};

static_assert(!std::is_abstract_v<CpuacctController>);

}  // namespace cgcore
