// The cpuset controller (the kernel's cgroup v1 and v2 cpuset): which CPUs and memory nodes the tasks of each cgroup may use.
//
// Each cpuset has a configured set of CPUs and memory nodes (cpuset.cpus,
// cpuset.mems) and an effective set (what its tasks really get). In v1 a
// cpuset's sets lie within its parent's, exclusive cpusets do not overlap
// their siblings, the effective sets equal the configured ones, and nobody may
// join a cpuset without CPUs or nodes. In v2 an empty or unsatisfiable
// configuration inherits the parent's effective sets.
//
// The machine (which CPUs and nodes exist and are online) is a setting of the
// controller, read from the host by default, and may change at run time
// (set_online: hot-unplug). The controller does not touch real processes: the
// embedder gives it, at construction, an affinity sink, called with a task's
// effective CPUs and nodes whenever they are (re)assigned (attach, fork,
// writes, hotplug), and optionally a memory-migration sink
// (cpuset.memory_migrate). Sinks only record: the embedder applies what they
// recorded once the engine's locks are dropped.
//
// Thread-safety: CpuSet is a value type (not synchronised). The controller
// follows the engine's hook contract; its public methods are thread-safe.
//
// Locking (the controller's own lock, `callback_lock_`, sits between the
// threadgroup locks and the css_set lock in core/locking.h's order):
//   * every change of cpuset state happens under the engine's cgroup mutex
//     (control-file handlers, migration hooks, css lifecycle, set_online);
//   * the effective sets and the online sets are also changed
//     under callback_lock_ held exclusive, so that the fork hook, which runs
//     without the cgroup mutex, can read them under callback_lock_ shared;
//   * every sink call is made with callback_lock_ held (exclusive, or shared
//     in the fork hook) and with the values read under that same hold, so
//     the last call a task gets always carries its current sets. Sinks must
//     therefore not call back into the controller or the engine.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/controller.h"
#include "core/locking.h"
#include "core/result.h"
#include "core/types.h"

namespace cgcore {

class Cgroup;

// A set of CPU or memory-node ids (a growable bitset), with the kernel's list
// format ("0-3,5"). Two sets are equal when they hold the same ids, whatever
// capacity either grew to.
class CpuSet {
 public:
  CpuSet() = default;
  // {first, ..., last}; empty if first > last.
  static CpuSet Range(uint32_t first, uint32_t last);
  static CpuSet Of(std::initializer_list<uint32_t> ids);

  // Parses a list as the kernel's bitmap_parselist does, byte for byte:
  // regions separated by ',' or white space, each "a", "a-b" or
  // "a-b:used/group" ("N" is the last id, nbits - 1); parsing stops at '\n'
  // or NUL after a region. Errors: EINVAL (syntax, a > b, used > group,
  // group 0), ERANGE (an id >= nbits), EOVERFLOW (a number past 2^32 - 1).
  // An empty or all-separator text gives the empty set (the kernel's
  // cpuset writers special-case "" before calling the parser; both agree).
  static Result<CpuSet> parse(std::string_view text, uint32_t nbits);
  // The file form: "0-3,5\n"; the empty set is "\n".
  std::string format() const;
  // The list without the newline ("0-3,5"; "" when empty), for messages.
  std::string to_string() const;

  bool test(uint32_t id) const {
    size_t w = id / 64;
    return w < words_.size() && (words_[w] >> (id % 64) & 1);
  }
  void set(uint32_t id);
  void reset(uint32_t id);
  void clear() { words_.clear(); }
  bool empty() const { return words_.empty(); }
  size_t count() const;
  // One past the largest member (0 when empty).
  uint32_t end() const;
  bool subset_of(const CpuSet& o) const;
  bool intersects(const CpuSet& o) const;
  CpuSet operator&(const CpuSet& o) const;
  CpuSet operator|(const CpuSet& o) const;
  // The members of *this not in o.
  CpuSet minus(const CpuSet& o) const;
  bool operator==(const CpuSet& o) const { return words_ == o.words_; }

  // Calls fn(uint32_t id) for each member in increasing order.
  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (size_t w = 0; w < words_.size(); ++w)
      for (uint64_t bits = words_[w]; bits; bits &= bits - 1)
        fn(static_cast<uint32_t>(w * 64 + __builtin_ctzll(bits)));
  }

 private:
  // Drops trailing zero words: the representation is canonical.
  void trim();
  std::vector<uint64_t> words_;
};

// The machine the controller places tasks on.
struct CpusetTopology {
  // CPU ids 0 .. nr_cpu_ids - 1 exist (the kernel's nr_cpu_ids, the possible
  // CPUs); a list naming a higher id fails with ERANGE.
  uint32_t nr_cpu_ids = 1;
  // Node ids below this parse (the kernel's MAX_NUMNODES, 1 << NODES_SHIFT,
  // 1024 on common builds); a higher one fails with ERANGE.
  uint32_t max_numnodes = 1024;
  // The kernel's NR_CPUS, which bounds one write to cpuset.cpus at
  // 100 + 6 * NR_CPUS bytes (as MAX_NUMNODES bounds cpuset.mems); 0: as
  // nr_cpu_ids.
  uint32_t nr_cpus_config = 0;
  // Nodes that may exist (node_possible_map): the v2 limit for cpuset.mems.
  CpuSet possible_mems = CpuSet::Of({0});
  // The online CPUs (cpu_active_mask) and the nodes with memory (N_MEMORY):
  // the v1 root cpuset's sets, and every effective set's bound.
  CpuSet online_cpus = CpuSet::Of({0});
  CpuSet online_mems = CpuSet::Of({0});
  // cpuset.sched_relax_domain_level accepts -1 .. this (the kernel's
  // sched_domain_level_max + 1, which depends on the scheduler's topology;
  // the kernel documents levels up to 5).
  int max_relax_domain_level = 5;

  // The host's: /sys/devices/system/cpu/{possible,online} (else sysconf),
  // cpu/kernel_max (NR_CPUS - 1),
  // /sys/devices/system/node/{possible,has_memory} (has_memory is the
  // kernel's N_MEMORY; node/online if absent; node 0 if neither).
  static CpusetTopology host();
  // `cpus` CPUs and `nodes` nodes, all online.
  static CpusetTopology uniform(uint32_t cpus, uint32_t nodes);
};

// One cpuset: the controller's state for one cgroup. Fields are the
// controller's (friend); see the file comment for what protects them.
class CpusetCss final : public Css {
 public:
  enum Flag : uint32_t {
    kCpuExclusive = 1u << 0,
    kMemExclusive = 1u << 1,
    kMemHardwall = 1u << 2,
    kMemoryMigrate = 1u << 3,
    kSchedLoadBalance = 1u << 4,
    kSpreadPage = 1u << 5,
    kSpreadSlab = 1u << 6,
  };

 private:
  friend class CpusetController;

  bool has(uint32_t flag) const { return flags_ & flag; }

  // Guarded by the cgroup mutex.
  CpuSet cpus_;  // cpuset.cpus (cpus_allowed); the root's: see bind()
  CpuSet mems_;  // cpuset.mems (mems_allowed)
  uint32_t flags_ = 0;
  int relax_domain_level_ = -1;
  // The nodes the tasks were last given: where memory_migrate moves an
  // address space from (the kernel's old_mems_allowed).
  CpuSet old_mems_;
  // A hot-unplug left this cpuset without CPUs or nodes and moving its tasks
  // out failed: it may hold tasks while empty (check_invariants allows it).
  bool stranded_ = false;

  // Written under the cgroup mutex and callback_lock_ exclusive; read under
  // either (the fork hook holds callback_lock_ shared).
  CpuSet effective_cpus_;
  CpuSet effective_mems_;
};

class CpusetController final : public Controller {
 public:
  // Why a task is given its effective sets: it was just created (and has
  // its creator's placement, which the kernel's cpuset keeps on fork), it
  // moved to another cpuset, or its cpuset's effective sets changed.
  enum class AffinityCause : uint8_t { kFork, kMove, kChange };
  // Called with a task's effective CPUs and nodes (see the file comment for
  // when, and the locks held: it must only record, never call into the
  // controller or the engine, nor make a system call on the task).
  using AffinitySink =
      std::function<void(Pid tid, const CpuSet& cpus, const CpuSet& mems, AffinityCause cause)>;
  // Called when memory_migrate asks a process's address space to move from
  // one node set to another (same locking rules).
  using MmMigrationSink = std::function<void(Pid tgid, const CpuSet& from, const CpuSet& to)>;
  // Where the controller's decisions go; fixed at construction.
  struct Sinks {
    AffinitySink affinity;
    MmMigrationSink mm_migration;
  };

  // The topology is normalised: online CPUs empty -> {0}; nr_cpu_ids raised to
  // cover the online CPUs and capped at 65536; nodes likewise; possible
  // nodes include the online ones; max_relax_domain_level at least -1.
  explicit CpusetController(CpusetTopology topology = CpusetTopology::host(), Sinks sinks = {});

  std::string_view name() const override { return "cpuset"; }
  // cpuset places single threads (the kernel marks it threaded in v2).
  bool threaded() const override { return true; }
  // ENOMEM if allocation fails. Locking: cgroup mutex held.
  Result<std::unique_ptr<Css>> css_alloc(Css* parent) override;
  // Inherits the spread flags; v2: starts with the parent's effective sets;
  // v1 with cgroup.clone_children: copies the parent's cpus and mems unless a
  // sibling is exclusive. Never fails. Locking: cgroup mutex held.
  Status css_online(Css& css) override;
  // v1: ENOSPC when a destination has no CPUs or no nodes; v2: when its
  // effective CPUs are empty. Records each mover's source for post_attach.
  // Locking: cgroup mutex + movers' threadgroup locks held.
  Status can_attach(TaskSet& tset) override;
  // Forgets the movers can_attach recorded. Locking: as can_attach.
  void cancel_attach(TaskSet& tset) override;
  // Gives each mover its destination's effective sets through the affinity
  // sink (v2: only if they differ from its source's) and, for each process
  // leader moved into a memory_migrate cpuset, asks to migrate its memory.
  // Locking: cgroup mutex + movers' threadgroup locks held; takes
  // callback_lock_ exclusive.
  void post_attach(TaskSet& tset) override;
  // Gives the new task its cpuset's effective sets through the sink.
  // Locking: the parent's threadgroup locks held shared; takes
  // callback_lock_ shared.
  void fork(Task& child) override;
  // The root's configured sets follow the hierarchy kind: v1 the online
  // sets, v2 every possible id. Locking: cgroup mutex held.
  void bind(Css& root_css) override;
  // v1: each cpuset's sets within its parent's, effective == configured,
  // exclusive flags within an exclusive parent and disjoint from siblings, a
  // cpuset with tasks has CPUs and nodes (unless stranded by a failed
  // hot-unplug move); v2: effective = configured ∩ parent's effective, or
  // the parent's if that is empty; the root's sets match the online ones;
  // ids within the topology. EIO naming the cgroup otherwise.
  // Locking: every engine lock held (see Controller::check_invariants).
  Status check_invariants(Engine& engine) override;
  std::span<const ControlFileSpec> files() const override { return kFiles; }

  // How many memory migrations were requested so far (each one also went to
  // the migration sink, if any). Thread-safe.
  uint64_t nr_mm_migrations() const { return nr_mm_migrations_.load(std::memory_order_relaxed); }

  // The effective CPUs / nodes of thread `tid` (its cpuset's). ESRCH if there
  // is no such live thread; EINVAL if `engine` is not this controller's.
  // Locking: takes the cgroup mutex.
  Result<CpuSet> effective_cpus_of(Engine& engine, Pid tid);
  Result<CpuSet> effective_mems_of(Engine& engine, Pid tid);

  // CPUs or nodes came online or went offline: the online sets become
  // `cpus` and `mems`. The root follows; v1 cpusets lose what went offline,
  // and a v1 cpuset left without CPUs or nodes has its tasks moved, each
  // cgroup's in one all-or-nothing transfer, to its nearest ancestor with
  // both; effective sets are recomputed everywhere and every task whose
  // sets changed gets a sink call. Errors: EINVAL for an empty set or a node
  // that is not possible, ERANGE for a CPU >= nr_cpu_ids (nothing changed
  // then); EINVAL if `engine` is not this controller's; otherwise the first
  // transfer's error (the online sets are applied regardless, the tasks of
  // that cgroup stay where they are, as the kernel leaves them).
  // Locking: takes the cgroup mutex; must not be called from a sink.
  Status set_online(Engine& engine, CpuSet cpus, CpuSet mems);
  // A copy of the current topology. Locking: takes callback_lock_ shared.
  CpusetTopology topology() const;

 private:
  // One mover of the transaction in progress (see moves_).
  struct Move {
    Task* task;
    CpusetCss* src;
    CpusetCss* dst;
  };
  // A proposed new state of one cpuset, checked by validate_change_locked.
  struct Trial {
    CpuSet cpus;
    CpuSet mems;
    uint32_t flags;
  };

  // The flag a file handler template works on.
  template <uint32_t F>
  static Result<std::string> read_flag(Engine& engine, Css& css);
  template <uint32_t F>
  static Status write_flag(Engine& engine, Css& css, std::string_view text);
  static Result<std::string> read_cpus(Engine& engine, Css& css);
  static Status write_cpus(Engine& engine, Css& css, std::string_view text);
  static Result<std::string> read_mems(Engine& engine, Css& css);
  static Status write_mems(Engine& engine, Css& css, std::string_view text);
  static Result<std::string> read_effective_cpus(Engine& engine, Css& css);
  static Result<std::string> read_effective_mems(Engine& engine, Css& css);
  static Result<std::string> read_relax(Engine& engine, Css& css);
  static Status write_relax(Engine& engine, Css& css, std::string_view text);
  static Result<std::string> read_memory_pressure(Engine& engine, Css& css);
  static Result<std::string> read_pressure_enabled(Engine& engine, Css& css);
  static Status write_pressure_enabled(Engine& engine, Css& css, std::string_view text);
  // The kernel's write limits of cpuset.cpus (100 + 6 NR_CPUS bytes) and
  // cpuset.mems (100 + 6 MAX_NUMNODES).
  static size_t cpus_max_write(const Controller& c);
  static size_t mems_max_write(const Controller& c);

  static constexpr ControlFileSpec kFiles[] = {
      // cgroup v1, in the kernel's order.
      {"cpus", kV1, FileScope::kEverywhere, &read_cpus, &write_cpus, &cpus_max_write},
      {"mems", kV1, FileScope::kEverywhere, &read_mems, &write_mems, &mems_max_write},
      {"effective_cpus", kV1, FileScope::kEverywhere, &read_effective_cpus, nullptr},
      {"effective_mems", kV1, FileScope::kEverywhere, &read_effective_mems, nullptr},
      {"cpu_exclusive", kV1, FileScope::kEverywhere, &read_flag<CpusetCss::kCpuExclusive>,
       &write_flag<CpusetCss::kCpuExclusive>},
      {"mem_exclusive", kV1, FileScope::kEverywhere, &read_flag<CpusetCss::kMemExclusive>,
       &write_flag<CpusetCss::kMemExclusive>},
      {"mem_hardwall", kV1, FileScope::kEverywhere, &read_flag<CpusetCss::kMemHardwall>,
       &write_flag<CpusetCss::kMemHardwall>},
      {"sched_load_balance", kV1, FileScope::kEverywhere,
       &read_flag<CpusetCss::kSchedLoadBalance>, &write_flag<CpusetCss::kSchedLoadBalance>},
      {"sched_relax_domain_level", kV1, FileScope::kEverywhere, &read_relax, &write_relax},
      {"memory_migrate", kV1, FileScope::kEverywhere, &read_flag<CpusetCss::kMemoryMigrate>,
       &write_flag<CpusetCss::kMemoryMigrate>},
      {"memory_pressure", kV1, FileScope::kEverywhere, &read_memory_pressure, nullptr},
      {"memory_spread_page", kV1, FileScope::kEverywhere, &read_flag<CpusetCss::kSpreadPage>,
       &write_flag<CpusetCss::kSpreadPage>},
      {"memory_spread_slab", kV1, FileScope::kEverywhere, &read_flag<CpusetCss::kSpreadSlab>,
       &write_flag<CpusetCss::kSpreadSlab>},
      {"memory_pressure_enabled", kV1, FileScope::kRootOnly, &read_pressure_enabled,
       &write_pressure_enabled},
      // cgroup v2 (Documentation/admin-guide/cgroup-v2.rst).
      {"cpus", kV2, FileScope::kNonRoot, &read_cpus, &write_cpus, &cpus_max_write},
      {"mems", kV2, FileScope::kNonRoot, &read_mems, &write_mems, &mems_max_write},
      {"cpus.effective", kV2, FileScope::kEverywhere, &read_effective_cpus, nullptr},
      {"mems.effective", kV2, FileScope::kEverywhere, &read_effective_mems, nullptr},
  };

  static CpusetController& of(Css& css) { return static_cast<CpusetController&>(css.controller()); }
  static CpusetCss& cs(Css& css) { return static_cast<CpusetCss&>(css); }
  // Whether `css` lives in the default (v2) hierarchy.
  static bool on_v2(const Css& css);
  // The child cpusets of `css` (v2: children where the controller is on).
  // Locking: cgroup mutex held.
  std::vector<CpusetCss*> children_of(const CpusetCss& css) const;

  // Checks `trial` against the kernel's structural rules (validate_change):
  // v1 EBUSY (a child would not be within it), EACCES (not within the
  // parent, exclusive flags included); ENOSPC (a cpuset with tasks would
  // lose all CPUs or nodes); EINVAL (overlap with an exclusive sibling).
  // Locking: cgroup mutex held.
  Status validate_change_locked(Engine& engine, const CpusetCss& cur, const Trial& trial) const;
  // Makes `trial` the state of `cur` and recomputes effective sets below it.
  // Locking: cgroup mutex held; takes callback_lock_.
  void apply_locked(Engine& engine, CpusetCss& cur, const Trial& trial);
  // Recomputes the effective sets of `start` and its descendants (pre-order,
  // skipping subtrees whose sets did not change) and tells their tasks.
  // Locking: cgroup mutex and callback_lock_ (exclusive) held.
  void propagate_locked(Engine& engine, CpusetCss& start) CG_REQUIRES(callback_lock_);
  // Sets `cp`'s effective sets; if they changed and are non-empty, calls the
  // affinity sink for each of its tasks and, when the nodes changed, asks for
  // memory migration (memory_migrate) and updates old_mems_. Returns whether
  // anything changed. Locking: as propagate_locked.
  bool set_effective_locked(Engine& engine, CpusetCss& cp, CpuSet cpus, CpuSet mems)
      CG_REQUIRES(callback_lock_);
  // The cgroups whose tasks use `cp` (its own and, in v2, descendants where
  // the controller is off). Locking: cgroup mutex held.
  std::vector<Cgroup*> cgroups_of(CpusetCss& cp) const;
  // Requests one memory migration (sink + counter).
  // Locking: callback_lock_ exclusive held.
  void migrate_mm_locked(Pid tgid, const CpuSet& from, const CpuSet& to)
      CG_REQUIRES(callback_lock_);
  // The effective set (cpus or mems) of a thread. Locking: takes the cgroup mutex.
  Result<CpuSet> effective_of(Engine& engine, Pid tid, bool mems);

  // Orders sink calls and effective-set readers outside the cgroup mutex
  // (see the file comment).
  mutable SharedMutex callback_lock_;
  CpusetTopology topo_ CG_GUARDED_BY(callback_lock_);
  // Immutable after construction.
  const AffinitySink affinity_sink_;
  const MmMigrationSink mm_sink_;
  std::atomic<uint64_t> nr_mm_migrations_{0};
  // cpuset.memory_pressure_enabled (a global switch in the kernel).
  std::atomic<bool> memory_pressure_enabled_{false};
  // Immutable after construction (topology limits the parsers use).
  uint32_t nr_cpu_ids_ = 1;
  uint32_t nr_cpus_config_ = 1;  // NR_CPUS, at least nr_cpu_ids_
  uint32_t max_numnodes_ = 1024;
  int max_relax_domain_level_ = 5;
  CpuSet possible_mems_;
  // The movers of the migration in progress, recorded by can_attach and
  // consumed by post_attach / cancel_attach. Guarded by the cgroup mutex
  // (one migration at a time).
  std::vector<Move> moves_;
};

static_assert(!std::is_abstract_v<CpusetController>);

}  // namespace cgcore
