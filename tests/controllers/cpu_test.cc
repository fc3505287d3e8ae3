// The cpu and cpuacct controllers: the kernel's ranges, conversions and
// errnos for the weight and bandwidth files (v1 rows replayed on the host
// by tests/fs/kernel_files_test.cc; v2 rows follow the kernel's handlers,
// since this host binds cpu to v1), v1's hierarchical bandwidth rule and
// v2's absence of it, CPU time charged up the tree (never lost when a task
// exits or a cgroup goes), cpuacct's reset, and the nice levels told to
// the sink on weight changes and moves.
#include "controllers/cpu.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "controllers/cpuacct.h"
#include "tests/support/files.h"

namespace cgcore::testing {
namespace {

class CpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto a = std::make_unique<CpuacctController>();
    acct = a.get();
    auto c = std::make_unique<CpuController>(
        [this](Pid tid, int nice) { told.push_back({tid, nice}); }, acct);
    cpu = c.get();
    ASSERT_TRUE(engine.register_controller(std::move(c)).ok());
    ASSERT_TRUE(engine.register_controller(std::move(a)).ok());
  }
  void TearDown() override {
    Status st = engine.check_invariants();
    EXPECT_TRUE(st.ok()) << st.message();
  }
  Cgroup& mount_v1(std::vector<std::string> ctls = {"cpu", "cpuacct"}) {
    auto h = engine.mount(ctls, "");
    EXPECT_TRUE(h.ok()) << h.status().message();
    return (*h)->root();
  }
  Cgroup& v2root() { return engine.default_hierarchy().root(); }
  CgroupPtr mk(Cgroup& parent, const char* name) {
    auto r = engine.mkdir(parent, name);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r.value() : CgroupPtr();
  }
  std::string rd(Cgroup& cg, const char* file) {
    auto r = read_file(engine, cg, file);
    return r.ok() ? r.value() : "<" + std::string(errno_name(r.err())) + ">";
  }
  int wr(Cgroup& cg, const char* file, std::string_view text) {
    return write_file(engine, cg, file, text).err();
  }
  void enable_cpu(Cgroup& cg) {
    ControllerSet on;
    on.set(cpu->id());
    Status st = engine.set_subtree_control(cg, on, ControllerSet());
    ASSERT_TRUE(st.ok()) << st.message();
  }
  void charge(Pid tid, uint64_t user_us, uint64_t sys_us, bool nice = false) {
    CpuCharge c{tid, user_us * 1000, sys_us * 1000, nice};
    auto n = cpu->charge(engine, std::span<const CpuCharge>(&c, 1));
    ASSERT_TRUE(n.ok());
  }

  Engine engine;
  CpuController* cpu = nullptr;
  CpuacctController* acct = nullptr;
  std::vector<std::pair<Pid, int>> told;
};

TEST_F(CpuTest, NiceForSharesFollowsTheSchedulerTable) {
  EXPECT_EQ(CpuController::nice_for_shares(1024), 0);
  EXPECT_EQ(CpuController::nice_for_shares(88761), -20);
  EXPECT_EQ(CpuController::nice_for_shares(262144), -20);
  EXPECT_EQ(CpuController::nice_for_shares(15), 19);
  EXPECT_EQ(CpuController::nice_for_shares(2), 19);
  EXPECT_EQ(CpuController::nice_for_shares(2048), -3);  // 1991 is closest
  EXPECT_EQ(CpuController::nice_for_shares(512), 3);    // 526 is closest
  // Between 1024 and 820 (midpoint 922): the closer one wins, a tie the
  // higher weight.
  EXPECT_EQ(CpuController::nice_for_shares(922), 0);
  EXPECT_EQ(CpuController::nice_for_shares(921), 1);
}

TEST_F(CpuTest, V1SharesClampAndRefuseTheRoot) {
  Cgroup& root = mount_v1();
  CgroupPtr a = mk(root, "a");
  EXPECT_EQ(rd(*a, "cpu.shares"), "1024\n");
  EXPECT_EQ(wr(*a, "cpu.shares", "0"), 0);
  EXPECT_EQ(rd(*a, "cpu.shares"), "2\n");
  EXPECT_EQ(wr(*a, "cpu.shares", "18446744073709551615"), 0);
  EXPECT_EQ(rd(*a, "cpu.shares"), "262144\n");
  EXPECT_EQ(wr(*a, "cpu.shares", "99999999999999999999"), ERANGE);
  EXPECT_EQ(wr(*a, "cpu.shares", " 5"), EINVAL);
  EXPECT_EQ(wr(*a, "cpu.shares", "-5"), EINVAL);
  EXPECT_EQ(rd(*a, "cpu.shares"), "262144\n");
  EXPECT_EQ(wr(root, "cpu.shares", "1024"), EINVAL);
  EXPECT_EQ(rd(root, "cpu.shares"), "1024\n");
}

TEST_F(CpuTest, V1BandwidthRangesAndTheRoot) {
  Cgroup& root = mount_v1();
  CgroupPtr a = mk(root, "a");
  EXPECT_EQ(rd(*a, "cpu.cfs_quota_us"), "-1\n");
  EXPECT_EQ(rd(*a, "cpu.cfs_period_us"), "100000\n");
  EXPECT_EQ(rd(*a, "cpu.cfs_burst_us"), "0\n");
  EXPECT_EQ(wr(*a, "cpu.cfs_quota_us", "999"), EINVAL);
  EXPECT_EQ(wr(*a, "cpu.cfs_quota_us", "1000"), 0);
  EXPECT_EQ(wr(*a, "cpu.cfs_quota_us", "-7"), 0);
  EXPECT_EQ(rd(*a, "cpu.cfs_quota_us"), "-1\n");
  EXPECT_EQ(wr(*a, "cpu.cfs_quota_us", "17592186044415"), 0);
  EXPECT_EQ(wr(*a, "cpu.cfs_quota_us", "17592186044416"), EINVAL);
  EXPECT_EQ(wr(*a, "cpu.cfs_period_us", "999"), EINVAL);
  EXPECT_EQ(wr(*a, "cpu.cfs_period_us", "1000001"), EINVAL);
  EXPECT_EQ(wr(*a, "cpu.cfs_period_us", "1000000"), 0);
  // The burst is bounded by the quota, and quota + burst by 2^44 - 1.
  EXPECT_EQ(wr(*a, "cpu.cfs_quota_us", "50000"), 0);
  EXPECT_EQ(wr(*a, "cpu.cfs_burst_us", "50001"), EINVAL);
  EXPECT_EQ(wr(*a, "cpu.cfs_burst_us", "40000"), 0);
  EXPECT_EQ(wr(*a, "cpu.cfs_quota_us", "30000"), EINVAL);
  EXPECT_EQ(wr(*a, "cpu.cfs_quota_us", "17592186044415"), EINVAL);
  EXPECT_EQ(rd(*a, "cpu.cfs_quota_us"), "50000\n");
  // Unlimited: any burst that survives conversion to nanoseconds.
  EXPECT_EQ(wr(*a, "cpu.cfs_quota_us", "-1"), 0);
  EXPECT_EQ(wr(*a, "cpu.cfs_burst_us", "17592186044416"), 0);
  EXPECT_EQ(wr(*a, "cpu.cfs_burst_us", "18446744073709552"), EINVAL);
  // Every bandwidth write on the root is refused, even of what it holds.
  EXPECT_EQ(wr(root, "cpu.cfs_quota_us", "-1"), EINVAL);
  EXPECT_EQ(wr(root, "cpu.cfs_period_us", "100000"), EINVAL);
  EXPECT_EQ(wr(root, "cpu.cfs_burst_us", "0"), EINVAL);
  EXPECT_EQ(rd(root, "cpu.stat"), "nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0\n");
  EXPECT_EQ(rd(*a, "cpu.stat.local"), "throttled_time 0\n");
}

TEST_F(CpuTest, V1ChildBandwidthIsBoundedByTheNearestLimitedAncestor) {
  Cgroup& root = mount_v1();
  CgroupPtr p = mk(root, "p");
  CgroupPtr c = mk(*p, "c");
  CgroupPtr g = mk(*c, "g");
  ASSERT_EQ(wr(*p, "cpu.cfs_quota_us", "50000"), 0);
  EXPECT_EQ(wr(*c, "cpu.cfs_quota_us", "60000"), EINVAL);
  EXPECT_EQ(wr(*c, "cpu.cfs_quota_us", "50000"), 0);
  // Lowering the parent below a child, or lengthening its period, is refused.
  EXPECT_EQ(wr(*p, "cpu.cfs_quota_us", "40000"), EINVAL);
  EXPECT_EQ(wr(*p, "cpu.cfs_period_us", "200000"), EINVAL);
  EXPECT_EQ(wr(*c, "cpu.cfs_period_us", "200000"), 0);  // c's ratio drops
  EXPECT_EQ(wr(*p, "cpu.cfs_quota_us", "-1"), 0);
  EXPECT_EQ(wr(*c, "cpu.cfs_quota_us", "1000000"), 0);
  // g is bounded by c (limited), not by p (unlimited) ...
  EXPECT_EQ(wr(*g, "cpu.cfs_quota_us", "600000"), EINVAL);
  // ... and when c is unlimited, by nothing; then limiting p checks g.
  EXPECT_EQ(wr(*c, "cpu.cfs_quota_us", "-1"), 0);
  EXPECT_EQ(wr(*g, "cpu.cfs_quota_us", "2000000"), 0);
  EXPECT_EQ(wr(*p, "cpu.cfs_quota_us", "1000"), EINVAL);
  EXPECT_EQ(rd(*p, "cpu.cfs_quota_us"), "-1\n");
}

TEST_F(CpuTest, V2WeightAndNiceConvertAsTheKernel) {
  enable_cpu(v2root());
  CgroupPtr a = mk(v2root(), "a");
  EXPECT_EQ(rd(*a, "cpu.weight"), "100\n");
  EXPECT_EQ(rd(*a, "cpu.weight.nice"), "0\n");
  EXPECT_EQ(wr(*a, "cpu.weight", "0"), ERANGE);
  EXPECT_EQ(wr(*a, "cpu.weight", "10001"), ERANGE);
  EXPECT_EQ(wr(*a, "cpu.weight", "-1"), EINVAL);
  EXPECT_EQ(wr(*a, "cpu.weight", " 5"), EINVAL);
  for (int w : {1, 2, 7, 50, 99, 101, 333, 9999, 10000}) {
    ASSERT_EQ(wr(*a, "cpu.weight", std::to_string(w)), 0);
    EXPECT_EQ(rd(*a, "cpu.weight"), std::to_string(w) + "\n") << "round trip of " << w;
  }
  EXPECT_EQ(wr(*a, "cpu.weight.nice", "20"), ERANGE);
  EXPECT_EQ(wr(*a, "cpu.weight.nice", "-21"), ERANGE);
  EXPECT_EQ(wr(*a, "cpu.weight.nice", "19"), 0);
  EXPECT_EQ(rd(*a, "cpu.weight"), "1\n");  // weight 15 -> round(1.46)
  EXPECT_EQ(rd(*a, "cpu.weight.nice"), "19\n");
  EXPECT_EQ(wr(*a, "cpu.weight.nice", "-20"), 0);
  EXPECT_EQ(rd(*a, "cpu.weight"), "8668\n");
  EXPECT_EQ(wr(*a, "cpu.weight.nice", "-3"), 0);
  EXPECT_EQ(rd(*a, "cpu.weight.nice"), "-3\n");
  EXPECT_EQ(wr(*a, "cpu.weight", "200"), 0);
  EXPECT_EQ(rd(*a, "cpu.weight.nice"), "-3\n");  // 2048 is closest to 1991
  // No weight, bandwidth or v1 files on the v2 root.
  EXPECT_EQ(rd(v2root(), "cpu.weight"), "<ENOENT>");
  EXPECT_EQ(rd(v2root(), "cpu.max"), "<ENOENT>");
  EXPECT_EQ(rd(*a, "cpu.shares"), "<ENOENT>");
}

TEST_F(CpuTest, V2MaxParsesAsTheKernelsSscanf) {
  enable_cpu(v2root());
  CgroupPtr a = mk(v2root(), "a");
  EXPECT_EQ(rd(*a, "cpu.max"), "max 100000\n");
  EXPECT_EQ(wr(*a, "cpu.max", "50000 200000"), 0);
  EXPECT_EQ(rd(*a, "cpu.max"), "50000 200000\n");
  EXPECT_EQ(wr(*a, "cpu.max", "max"), 0);  // the period stays
  EXPECT_EQ(rd(*a, "cpu.max"), "max 200000\n");
  EXPECT_EQ(wr(*a, "cpu.max", "  20000\n"), 0);
  EXPECT_EQ(rd(*a, "cpu.max"), "20000 200000\n");
  EXPECT_EQ(wr(*a, "cpu.max", "30000abc 100000"), 0);  // %llu stops at junk
  EXPECT_EQ(rd(*a, "cpu.max"), "30000 100000\n");
  EXPECT_EQ(wr(*a, "cpu.max", "max 0x10"), EINVAL);  // period 0
  EXPECT_EQ(wr(*a, "cpu.max", "max -5"), 0);          // no period read
  EXPECT_EQ(rd(*a, "cpu.max"), "max 100000\n");
  EXPECT_EQ(wr(*a, "cpu.max", "MAX"), EINVAL);
  EXPECT_EQ(wr(*a, "cpu.max", "+5000"), EINVAL);
  EXPECT_EQ(wr(*a, "cpu.max", "maxx"), EINVAL);
  EXPECT_EQ(wr(*a, "cpu.max", "\n"), EINVAL);
  EXPECT_EQ(wr(*a, "cpu.max", "999"), EINVAL);
  EXPECT_EQ(wr(*a, "cpu.max", "1000 999"), EINVAL);
  EXPECT_EQ(wr(*a, "cpu.max", "1000 1000001"), EINVAL);
  EXPECT_EQ(wr(*a, "cpu.max", "17592186044416"), EINVAL);
  // 2^64 - 1 is the kernel's "no limit".
  EXPECT_EQ(wr(*a, "cpu.max", "18446744073709551615 100000"), 0);
  EXPECT_EQ(rd(*a, "cpu.max"), "max 100000\n");
  EXPECT_EQ(rd(*a, "cpu.max.burst"), "0\n");
  EXPECT_EQ(wr(*a, "cpu.max", "10000"), 0);
  EXPECT_EQ(wr(*a, "cpu.max.burst", "10001"), EINVAL);
  EXPECT_EQ(wr(*a, "cpu.max.burst", "10000"), 0);
  EXPECT_EQ(wr(*a, "cpu.max", "9999"), EINVAL);
  EXPECT_EQ(rd(*a, "cpu.max"), "10000 100000\n");
}

TEST_F(CpuTest, IdleGivesTheLowestWeightAndRefusesWeights) {
  enable_cpu(v2root());
  CgroupPtr a = mk(v2root(), "a");
  Pid t = *engine.spawn({});
  ASSERT_TRUE(engine.migrate_process(t, *a).ok());
  ASSERT_EQ(wr(*a, "cpu.weight", "200"), 0);
  told.clear();
  EXPECT_EQ(rd(*a, "cpu.idle"), "0\n");
  EXPECT_EQ(wr(*a, "cpu.idle", "2"), EINVAL);
  ASSERT_EQ(wr(*a, "cpu.idle", "1"), 0);
  EXPECT_EQ(rd(*a, "cpu.weight"), "1\n");
  EXPECT_EQ(rd(*a, "cpu.weight.nice"), "19\n");
  EXPECT_EQ(told, (std::vector<std::pair<Pid, int>>{{t, 19}}));
  EXPECT_EQ(wr(*a, "cpu.weight", "100"), EINVAL);
  EXPECT_EQ(wr(*a, "cpu.weight.nice", "0"), EINVAL);
  ASSERT_EQ(wr(*a, "cpu.idle", "0"), 0);
  EXPECT_EQ(rd(*a, "cpu.weight"), "100\n");  // the default, not 200
  EXPECT_EQ(rd(v2root(), "cpu.idle"), "<ENOENT>");
}

TEST_F(CpuTest, V1IdleOnTheRootIsRefused) {
  Cgroup& root = mount_v1();
  EXPECT_EQ(rd(root, "cpu.idle"), "0\n");
  EXPECT_EQ(wr(root, "cpu.idle", "0"), EINVAL);
  EXPECT_EQ(wr(root, "cpu.idle", "1"), EINVAL);
}

TEST_F(CpuTest, V2ChildLimitIsNotBoundedByItsParent) {
  enable_cpu(v2root());
  CgroupPtr p = mk(v2root(), "p");
  enable_cpu(*p);
  CgroupPtr c = mk(*p, "c");
  ASSERT_EQ(wr(*p, "cpu.max", "10000 100000"), 0);
  EXPECT_EQ(wr(*c, "cpu.max", "900000 100000"), 0);
  EXPECT_EQ(wr(*p, "cpu.max", "1000 1000000"), 0);
  EXPECT_EQ(rd(*c, "cpu.max"), "900000 100000\n");
}

TEST_F(CpuTest, CpuacctIsNotOnV2) {
  {
    MutexLock l(engine.cgroup_mutex());
    ControllerSet avail = engine.available_controllers_locked(v2root());
    EXPECT_TRUE(avail.test(cpu->id()));
    EXPECT_FALSE(avail.test(acct->id()));
  }
  ControllerSet on;
  on.set(acct->id());
  EXPECT_EQ(engine.set_subtree_control(v2root(), on, ControllerSet()).err(), ENOENT);
}

TEST_F(CpuTest, UsageAddsUpTheTreeAndStaysAfterExitAndRmdir) {
  enable_cpu(v2root());
  CgroupPtr a = mk(v2root(), "a");
  CgroupPtr b = mk(*a, "b");  // cpu not enabled in a's children
  Pid t1 = *engine.spawn({});
  Pid t2 = *engine.spawn({});
  ASSERT_TRUE(engine.migrate_process(t1, *b).ok());
  ASSERT_TRUE(engine.migrate_process(t2, *a).ok());
  charge(t1, 3000, 1000);
  charge(t2, 500, 0, /*nice=*/true);
  auto stat = [&](Cgroup& cg) {
    MutexLock l(engine.cgroup_mutex());
    return format_v2_cpu_stat(engine, cg, cpu);
  };
  EXPECT_EQ(stat(*b), "usage_usec 4000\nuser_usec 3000\nsystem_usec 1000\nnice_usec 0\n");
  EXPECT_EQ(stat(*a),
            "usage_usec 4500\nuser_usec 3500\nsystem_usec 1000\nnice_usec 500\n"
            "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n");
  EXPECT_EQ(stat(v2root()).substr(0, 16), "usage_usec 4500\n");
  // A task that moves takes its time from now on to the new cgroup.
  ASSERT_TRUE(engine.migrate_process(t1, *a).ok());
  charge(t1, 0, 2000);
  EXPECT_EQ(stat(*b).substr(0, 16), "usage_usec 4000\n");
  EXPECT_EQ(stat(*a).substr(0, 16), "usage_usec 6500\n");
  // Exit and rmdir lose nothing above; a charge for a gone task is skipped.
  ASSERT_TRUE(engine.exit_process(t1).ok());
  ASSERT_TRUE(engine.rmdir(*b).ok());
  CpuCharge late{t1, 1000000, 0, false};
  EXPECT_EQ(*cpu->charge(engine, std::span<const CpuCharge>(&late, 1)), 0u);
  EXPECT_EQ(stat(*a).substr(0, 16), "usage_usec 6500\n");
  EXPECT_EQ(stat(v2root()).substr(0, 16), "usage_usec 6500\n");
  {
    MutexLock l(engine.cgroup_mutex());
    EXPECT_EQ(format_v2_cpu_stat_local(engine, *a, cpu), "throttled_usec 0\n");
  }
}

TEST_F(CpuTest, CpuacctFilesAndReset) {
  Cgroup& root = mount_v1({"cpuacct"});
  CgroupPtr a = mk(root, "a");
  CgroupPtr b = mk(*a, "b");
  Pid t = *engine.spawn({});
  ASSERT_TRUE(engine.migrate_process(t, *b).ok());
  charge(t, 25000, 15000);  // 25 ms user, 15 ms system
  EXPECT_EQ(rd(*b, "cpuacct.usage"), "40000000\n");
  EXPECT_EQ(rd(*b, "cpuacct.usage_user"), "25000000\n");
  EXPECT_EQ(rd(*b, "cpuacct.usage_sys"), "15000000\n");
  EXPECT_EQ(rd(*a, "cpuacct.stat"), "user 2\nsystem 1\n");  // USER_HZ ticks
  EXPECT_EQ(rd(root, "cpuacct.usage"), "40000000\n");
  EXPECT_EQ(wr(*a, "cpuacct.usage", "1"), EINVAL);
  EXPECT_EQ(wr(*a, "cpuacct.usage", " 0"), EINVAL);
  EXPECT_EQ(wr(*a, "cpuacct.usage", "0x0"), 0);
  EXPECT_EQ(rd(*a, "cpuacct.usage"), "0\n");
  EXPECT_EQ(rd(*b, "cpuacct.usage"), "40000000\n");  // only a was reset
  charge(t, 1000, 0);
  EXPECT_EQ(rd(*a, "cpuacct.usage"), "1000000\n");
  EXPECT_EQ(rd(*b, "cpuacct.usage"), "41000000\n");
  EXPECT_EQ(wr(*a, "cpuacct.stat", "0"), EINVAL);
  EXPECT_EQ(rd(*a, "cpuacct.usage_percpu"), "<ENOENT>");
}

TEST_F(CpuTest, WeightChangesAndMovesTellTheNiceSink) {
  Cgroup& root = mount_v1();
  CgroupPtr a = mk(root, "a");
  CgroupPtr b = mk(root, "b");
  Pid p = *engine.spawn({});
  Pid q = *engine.clone_thread(p);
  ASSERT_TRUE(engine.migrate_process(p, *a).ok());
  EXPECT_TRUE(told.empty()) << "1024 to 1024 changes no nice level";
  ASSERT_EQ(wr(*a, "cpu.shares", "2048"), 0);
  std::map<Pid, int> got(told.begin(), told.end());
  EXPECT_EQ(got, (std::map<Pid, int>{{p, -3}, {q, -3}}));
  told.clear();
  ASSERT_EQ(wr(*a, "cpu.shares", "2000"), 0);  // still -3: nobody told
  EXPECT_TRUE(told.empty());
  ASSERT_TRUE(engine.migrate_thread(q, *b).ok());
  EXPECT_EQ(told, (std::vector<std::pair<Pid, int>>{{q, 0}}));
  EXPECT_EQ(*cpu->nice_of(engine, p), -3);
  EXPECT_EQ(*cpu->nice_of(engine, q), 0);
}

TEST_F(CpuTest, V2WeightReachesTasksOfDescendantsWithoutCpu) {
  enable_cpu(v2root());
  CgroupPtr a = mk(v2root(), "a");
  CgroupPtr b = mk(*a, "b");
  Pid t = *engine.spawn({});
  ASSERT_TRUE(engine.migrate_process(t, *b).ok());
  told.clear();
  ASSERT_EQ(wr(*a, "cpu.weight.nice", "10"), 0);
  EXPECT_EQ(told, (std::vector<std::pair<Pid, int>>{{t, 10}}));
}

}  // namespace
}  // namespace cgcore::testing
