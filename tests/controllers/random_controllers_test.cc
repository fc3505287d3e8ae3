// Randomized sequences over the five real controllers: forks, exits, execs,
// moves of every kind, charges and address-space growth, limit writes and
// cgroup churn, in two layouts. After every step the engine's checker runs —
// it calls each controller's check_invariants, so every charge must add up
// across the hierarchy — and a failed move must leave every task where it
// was and every usage file as it read before (all or nothing).
//
// Environment: CGCORE_RANDOM_CTL_OPS sets the number of steps per seed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "controllers/memory.h"
#include "controllers/memrlimit.h"
#include "controllers/registry.h"
#include "tests/support/files.h"

namespace cgcore::testing {
namespace {

int steps_per_seed() {
  const char* e = std::getenv("CGCORE_RANDOM_CTL_OPS");
  return e ? std::atoi(e) : 4000;
}

class Runner {
 public:
  Runner(uint64_t seed, bool v2) : rng_(seed), v2_(v2) {}
  // How often the failure paths ran (the test is pointless if they never do).
  int failed_moves = 0, refused_charges = 0;

  void setup() {
    Result<BuiltinControllers> builtins =
        register_builtin_controllers(engine_, {.cpuset_topology = CpusetTopology::uniform(4, 1)});
    ASSERT_TRUE(builtins.ok());
    memory_ = builtins->memory;
    memrlimit_ = builtins->memrlimit;
    if (v2_) {
      hier_ = &engine_.default_hierarchy();
      ControllerSet all;
      // Every controller cgroup v2 has (cpuacct is v1-only).
      for (size_t id = 0; id < engine_.nr_controllers(); ++id)
        if (engine_.controller(static_cast<ControllerId>(id)).on_v2())
          all.set(static_cast<ControllerId>(id));
      ASSERT_TRUE(engine_.set_subtree_control(hier_->root(), all, {}).ok());
    } else {
      auto h = engine_.mount({"cpuset", "memory", "pids", "numtasks", "memrlimit"}, "");
      ASSERT_TRUE(h.ok());
      hier_ = *h;
    }
    cgroups_.push_back(CgroupPtr(&hier_->root()));
    for (int i = 0; i < 4; ++i) add_process();
  }

  // One random step; returns false on a test failure.
  void step(int n) {
    SCOPED_TRACE("step " + std::to_string(n) + ": " + last_);
    switch (rng_() % 12) {
      case 0: mkdir(); break;
      case 1: rmdir(); break;
      case 2: add_process(); break;
      case 3: fork_or_thread(); break;
      case 4: exit_something(); break;
      case 5: exec(); break;
      case 6: case 7: move(); break;
      case 8: charge(); break;
      case 9: mmap(); break;
      case 10: set_limit(); break;
      case 11: transfer(); break;
    }
    Status st = engine_.check_invariants();
    ASSERT_TRUE(st.ok()) << st.message();
  }

 private:
  template <typename T>
  T& pick(std::vector<T>& v) { return v[rng_() % v.size()]; }
  Pid pick_pid() {
    std::vector<Pid> tids = engine_.cgroup_tids(hier_->root());
    for (size_t i = 1; i < cgroups_.size(); ++i)
      for (Pid t : engine_.cgroup_tids(*cgroups_[i])) tids.push_back(t);
    // Sorted: the engine's listing order follows css_set creation order,
    // which a rebind takes from a pointer-keyed hash table; the choice must
    // depend on the seed alone.
    std::sort(tids.begin(), tids.end());
    return tids.empty() ? 0 : tids[rng_() % tids.size()];
  }
  // Where every task is, and every usage file's text: what a failed
  // operation must leave untouched.
  std::map<std::string, std::string> snapshot() {
    std::map<std::string, std::string> s;
    static const char* const kFiles[] = {"memory.usage_in_bytes", "memory.current",
                                         "pids.current", "numtasks.current",
                                         "memrlimit.usage_in_bytes"};
    for (size_t i = 0; i < cgroups_.size(); ++i) {
      Cgroup& cg = *cgroups_[i];
      std::vector<Pid> t = engine_.cgroup_tids(cg);
      std::sort(t.begin(), t.end());
      std::string key = std::to_string(cg.id());
      for (Pid p : t) s[key + " tasks"] += std::to_string(p) + " ";
      for (const char* f : kFiles) {
        auto r = read_file(engine_, cg, f);
        if (r.ok()) s[key + " " + f] = r.value();
      }
    }
    return s;
  }
  void mkdir() {
    if (cgroups_.size() > 12) return;
    Cgroup& parent = *pick(cgroups_);
    auto r = engine_.mkdir(parent, "g" + std::to_string(next_name_++));
    last_ = "mkdir";
    if (r.ok()) {
      cgroups_.push_back(r.value());
      // v1 cpusets start empty: give most of them CPUs and nodes.
      if (!v2_ && rng_() % 4) {
        (void)write_file(engine_, *r.value(), "cpuset.cpus", "0-3");
        (void)write_file(engine_, *r.value(), "cpuset.mems", "0");
      }
      if (v2_ && rng_() % 3 == 0) {  // leaves only: no internal processes
        (void)engine_.set_subtree_control(*r.value(), {}, {});
      }
    }
  }
  void rmdir() {
    if (cgroups_.size() < 2) return;
    size_t i = 1 + rng_() % (cgroups_.size() - 1);
    Status st = engine_.rmdir(*cgroups_[i]);
    last_ = "rmdir -> " + std::string(errno_name(st.err()));
    if (st.ok()) cgroups_.erase(cgroups_.begin() + i);
    else EXPECT_EQ(st.err(), EBUSY) << st.message();
  }
  void add_process() {
    auto r = engine_.spawn({});
    last_ = "spawn";
    if (!r.ok()) EXPECT_EQ(r.err(), EAGAIN);
  }
  void fork_or_thread() {
    Pid p = pick_pid();
    if (!p) return;
    auto r = rng_() % 2 ? engine_.fork(p) : engine_.clone_thread(p);
    last_ = "fork/thread of " + std::to_string(p) + " -> " + errno_name(r.err());
    if (!r.ok()) EXPECT_TRUE(r.err() == EAGAIN || r.err() == ENOMEM) << r.status().message();
  }
  void exit_something() {
    Pid p = pick_pid();
    if (!p) return;
    Status st = rng_() % 2 ? engine_.exit_thread(p) : engine_.exit_process(p);
    last_ = "exit " + std::to_string(p);
    EXPECT_TRUE(st.ok()) << st.message();
  }
  void exec() {
    Pid p = pick_pid();
    if (!p) return;
    last_ = "exec " + std::to_string(p);
    EXPECT_TRUE(engine_.exec(p).ok());
  }
  void move() {
    Cgroup& dst = *pick(cgroups_);
    std::vector<Pid> pids;
    for (int i = 0, n = 1 + rng_() % 3; i < n; ++i)
      if (Pid p = pick_pid()) pids.push_back(p);
    if (pids.empty()) return;
    auto before = snapshot();
    Status st = rng_() % 3 == 0 ? engine_.migrate_thread(pids[0], dst)
                                : engine_.migrate_processes(pids, dst);
    last_ = "move -> " + std::string(errno_name(st.err())) + " " + st.message();
    if (!st.ok()) {
      ++failed_moves;
      EXPECT_EQ(snapshot(), before) << "a failed move changed something";
    }
  }
  void transfer() {
    Cgroup& from = *pick(cgroups_);
    Cgroup& to = *pick(cgroups_);
    auto before = snapshot();
    Status st = engine_.transfer(from, to);
    last_ = "transfer -> " + std::string(errno_name(st.err()));
    if (!st.ok()) {
      ++failed_moves;
      EXPECT_EQ(snapshot(), before) << "a failed transfer changed something";
    }
  }
  void charge() {
    Pid p = pick_pid();
    if (!p) return;
    int64_t bytes = 4096 * (1 + rng_() % 64);
    Status st = rng_() % 3 ? memory_->charge(engine_, p, bytes) : memory_->uncharge(engine_, p, bytes);
    last_ = "charge/uncharge -> " + std::string(errno_name(st.err()));
    if (st.err() == ENOMEM) ++refused_charges;
    if (!st.ok()) EXPECT_TRUE(st.err() == ENOMEM || st.err() == EINVAL) << st.message();
  }
  void mmap() {
    Pid p = pick_pid();
    if (!p) return;
    int64_t bytes = 4096 * (1 + rng_() % 256);
    Status st = rng_() % 3 ? memrlimit_->mmap(engine_, p, bytes) : memrlimit_->munmap(engine_, p, bytes);
    last_ = "mmap/munmap -> " + std::string(errno_name(st.err()));
    if (!st.ok()) EXPECT_TRUE(st.err() == ENOMEM || st.err() == EINVAL) << st.message();
  }
  void set_limit() {
    if (cgroups_.size() < 2) return;
    Cgroup& cg = *cgroups_[1 + rng_() % (cgroups_.size() - 1)];
    static const char* const kV1[][2] = {
        {"pids.max", "3"}, {"pids.max", "max"}, {"numtasks.max", "4"}, {"numtasks.max", "max"},
        {"memory.limit_in_bytes", "256k"}, {"memory.limit_in_bytes", "-1"},
        {"memory.move_charge_at_immigrate", "1"}, {"memrlimit.limit_in_bytes", "512k"},
        {"memrlimit.limit_in_bytes", "-1"}, {"cpuset.cpus", "1"}};
    static const char* const kV2[][2] = {
        {"pids.max", "3"}, {"pids.max", "max"}, {"numtasks.max", "4"}, {"numtasks.max", "max"},
        {"memory.max", "262144"}, {"memory.max", "max"}, {"memrlimit.limit_in_bytes", "512k"},
        {"memrlimit.limit_in_bytes", "-1"}, {"cpuset.cpus", "1"}, {"cpuset.cpus", ""}};
    const auto& w = v2_ ? kV2[rng_() % 10] : kV1[rng_() % 10];
    Status st = write_file(engine_, cg, w[0], w[1]);
    last_ = std::string("write ") + w[0] + " " + w[1] + " -> " + errno_name(st.err());
  }

  Engine engine_;
  std::mt19937_64 rng_;
  bool v2_;
  Hierarchy* hier_ = nullptr;
  MemoryController* memory_ = nullptr;
  MemrlimitController* memrlimit_ = nullptr;
  std::vector<CgroupPtr> cgroups_;
  int next_name_ = 0;
  std::string last_;
};

class RandomControllers : public ::testing::TestWithParam<std::tuple<uint64_t, bool>> {};

TEST_P(RandomControllers, ChargesAddUpAndFailuresChangeNothing) {
  auto [seed, v2] = GetParam();
  SCOPED_TRACE("seed " + std::to_string(seed) + (v2 ? " v2" : " v1"));
  Runner runner(seed, v2);
  runner.setup();
  if (HasFatalFailure()) return;
  for (int i = 0, n = steps_per_seed(); i < n && !HasFailure(); ++i) runner.step(i);
  EXPECT_GT(runner.failed_moves, 0) << "no move was refused: the all-or-nothing path never ran";
  EXPECT_GT(runner.refused_charges, 0) << "no charge hit a limit";
}

INSTANTIATE_TEST_SUITE_P(Seeds, RandomControllers,
                         ::testing::Combine(::testing::Values(1u, 2u, 3u), ::testing::Bool()));

}  // namespace
}  // namespace cgcore::testing
