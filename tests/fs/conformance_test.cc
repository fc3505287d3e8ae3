// Behaviours real programs rely on, each as the host's 6.18 kernel answers
// it: a cgroup.freeze write that changes no effective state still notifies
// cgroup.events, cgroup.stat.local's frozen_usec, per-file write limits,
// rename's permission check before cgroupfs' own answers, the cpuset flags'
// 32-bit truncation and the exclusive cpuset that cannot be emptied. (The
// errnos are also rows of kernel_files_test.cc, replayed on the host.)
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "controllers/registry.h"
#include "fs/cgroupfs.h"

namespace cgcore::fs {
namespace {

using namespace std::chrono_literals;

class ConformanceTest : public ::testing::Test {
 protected:
  void mount(const char* layout) {
    BuiltinOptions options;
    CpusetTopology topo = CpusetTopology::uniform(2, 1);
    topo.nr_cpus_config = 256;  // the host's NR_CPUS
    options.cpuset_topology = topo;
    ASSERT_TRUE(register_builtin_controllers(engine, options).ok());
    auto f = CgroupFs::create(engine, layout);
    ASSERT_TRUE(f.ok()) << f.status().message();
    fs = std::move(f.value());
  }
  void TearDown() override {
    if (fs) EXPECT_TRUE(engine.check_invariants().ok()) << engine.check_invariants().message();
  }
  std::string cat(const std::string& path, const Caller& who = Caller{}) {
    auto r = fs->read_path(path, who);
    return r.ok() ? r.value() : std::string("error: ") + errno_name(r.err());
  }
  int echo(const std::string& path, std::string_view text, const Caller& who = Caller{}) {
    return fs->write_path(path, text, who).err();
  }
  int mkdir(const std::string& path, const Caller& who = Caller{}) {
    const size_t slash = path.rfind('/');
    auto dir = fs->resolve(slash == 0 ? "/" : path.substr(0, slash));
    if (!dir.ok()) return dir.err();
    return fs->mkdir(*dir, path.substr(slash + 1), 0755, who).err();
  }
  int rename(const std::string& from, const std::string& to, const Caller& who) {
    const size_t a = from.rfind('/'), b = to.rfind('/');
    auto d1 = fs->resolve(from.substr(0, a)), d2 = fs->resolve(to.substr(0, b));
    if (!d1.ok()) return d1.err();
    if (!d2.ok()) return d2.err();
    return fs->rename(*d1, from.substr(a + 1), *d2, to.substr(b + 1), who).err();
  }
  uint64_t frozen_usec(const std::string& dir) {
    const std::string text = cat(dir + "/cgroup.stat.local");
    EXPECT_EQ(text.rfind("frozen_usec ", 0), 0u) << text;
    return std::stoull(text.substr(12));
  }

  Engine engine;
  std::unique_ptr<CgroupFs> fs;
};

TEST_F(ConformanceTest, AFreezeWriteThatChangesNoEffectiveStateStillNotifies) {
  mount("v2");
  ASSERT_EQ(mkdir("/a"), 0);
  ASSERT_EQ(mkdir("/a/b"), 0);
  const Ino b_events = *fs->resolve("/a/b/cgroup.events");
  fs->events().watch(b_events);
  // Writing the value it has: nothing.
  ASSERT_EQ(echo("/a/b/cgroup.freeze", "0"), 0);
  EXPECT_EQ(fs->events().count(b_events), 0u);
  ASSERT_EQ(echo("/a/cgroup.freeze", "1"), 0);  // b freezes through a
  EXPECT_EQ(fs->events().count(b_events), 1u);
  EXPECT_EQ(cat("/a/b/cgroup.events"), "populated 0\nfrozen 1\n");
  // b's own setting changes, its effective state does not: one event each.
  ASSERT_EQ(echo("/a/b/cgroup.freeze", "1"), 0);
  EXPECT_EQ(fs->events().count(b_events), 2u);
  ASSERT_EQ(echo("/a/b/cgroup.freeze", "1"), 0);
  EXPECT_EQ(fs->events().count(b_events), 2u);
  ASSERT_EQ(echo("/a/b/cgroup.freeze", "0"), 0);
  EXPECT_EQ(fs->events().count(b_events), 3u);
  EXPECT_EQ(cat("/a/b/cgroup.events"), "populated 0\nfrozen 1\n");
}

TEST_F(ConformanceTest, FrozenUsecCountsTheTimeFrozenByItselfOrAnAncestor) {
  mount("v2");
  // As on the kernel, the root (which cannot be frozen) has no such file.
  EXPECT_FALSE(fs->resolve("/cgroup.stat.local").ok());
  ASSERT_EQ(mkdir("/a"), 0);
  ASSERT_EQ(mkdir("/a/b"), 0);
  EXPECT_EQ(frozen_usec("/a"), 0u);
  ASSERT_EQ(echo("/a/cgroup.freeze", "1"), 0);
  std::this_thread::sleep_for(30ms);
  ASSERT_EQ(mkdir("/a/c"), 0);  // frozen from its first moment
  std::this_thread::sleep_for(20ms);
  ASSERT_EQ(echo("/a/cgroup.freeze", "0"), 0);
  const uint64_t a = frozen_usec("/a"), b = frozen_usec("/a/b"), c = frozen_usec("/a/c");
  EXPECT_GE(a, 50000u);
  EXPECT_GE(b, 50000u);
  EXPECT_GE(c, 20000u);
  EXPECT_LT(c, a);
  // Thawed: the count stands still.
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(frozen_usec("/a"), a);
  EXPECT_EQ(frozen_usec("/a/c"), c);
  // Read-only, as the kernel's (0444).
  EXPECT_EQ(echo("/a/cgroup.stat.local", "1"), EINVAL);
}

TEST_F(ConformanceTest, EachFileHasTheKernelsWriteLimit) {
  mount("hybrid");
  ASSERT_EQ(mkdir("/cpuset/x"), 0);
  ASSERT_EQ(mkdir("/pids/x"), 0);
  auto padded = [](const char* head, size_t n) { return std::string(head) + std::string(n - 1, ' '); };
  // cpuset.cpus: 100 + 6 * NR_CPUS bytes (NR_CPUS 256 here).
  EXPECT_EQ(echo("/cpuset/x/cpuset.cpus", padded("1", 1636)), 0);
  EXPECT_EQ(cat("/cpuset/x/cpuset.cpus"), "1\n");
  EXPECT_EQ(echo("/cpuset/x/cpuset.cpus", padded("0", 1637)), E2BIG);
  EXPECT_EQ(cat("/cpuset/x/cpuset.cpus"), "1\n");
  // cpuset.mems: 100 + 6 * MAX_NUMNODES (1024), more than a page.
  EXPECT_EQ(echo("/cpuset/x/cpuset.mems", padded("0", 6244)), 0);
  EXPECT_EQ(echo("/cpuset/x/cpuset.mems", padded("0", 6245)), E2BIG);
  // Every other file: a page.
  EXPECT_EQ(echo("/pids/x/pids.max", padded("5", 4096)), 0);
  EXPECT_EQ(echo("/pids/x/pids.max", padded("6", 4097)), E2BIG);
  EXPECT_EQ(cat("/pids/x/pids.max"), "5\n");
  // release_agent: PATH_MAX - 1.
  EXPECT_EQ(echo("/pids/release_agent", "/" + std::string(4094, 'a')), 0);
  EXPECT_EQ(echo("/pids/release_agent", "/" + std::string(4095, 'a')), E2BIG);
  EXPECT_EQ(fs->max_write(*fs->resolve("/cpuset/x/cpuset.cpus")), 1636u);
  EXPECT_EQ(fs->max_write(*fs->resolve("/pids/x")), 0u);  // a directory
}

TEST_F(ConformanceTest, CpusetFlagsTakeTheLow32Bits) {
  mount("hybrid");
  ASSERT_EQ(mkdir("/cpuset/x"), 0);
  ASSERT_EQ(mkdir("/pids/x"), 0);
  for (const char* flag : {"cpuset.mem_hardwall", "cpuset.memory_migrate", "cpuset.memory_spread_page"}) {
    const std::string f = std::string("/cpuset/x/") + flag;
    ASSERT_EQ(echo(f, "1"), 0);
    EXPECT_EQ(echo(f, "4294967296"), 0);
    EXPECT_EQ(cat(f), "0\n") << flag;
    EXPECT_EQ(echo(f, "4294967297"), 0);
    EXPECT_EQ(cat(f), "1\n") << flag;
    EXPECT_EQ(echo(f, "8589934592"), 0);
    EXPECT_EQ(cat(f), "0\n") << flag;
  }
  // The core v1 flags keep the whole u64: any non-zero sets.
  EXPECT_EQ(echo("/pids/x/notify_on_release", "4294967296"), 0);
  EXPECT_EQ(cat("/pids/x/notify_on_release"), "1\n");
  EXPECT_EQ(echo("/pids/x/cgroup.clone_children", "4294967296"), 0);
  EXPECT_EQ(cat("/pids/x/cgroup.clone_children"), "1\n");
}

TEST_F(ConformanceTest, AnExclusiveLoadBalancedCpusetCannotBeEmptied) {
  mount("hybrid");
  ASSERT_EQ(mkdir("/cpuset/x"), 0);
  ASSERT_EQ(echo("/cpuset/x/cpuset.cpus", "0-1"), 0);
  ASSERT_EQ(echo("/cpuset/x/cpuset.mems", "0"), 0);
  ASSERT_EQ(echo("/cpuset/x/cpuset.cpu_exclusive", "1"), 0);
  EXPECT_EQ(echo("/cpuset/x/cpuset.cpus", "\n"), EBUSY);
  EXPECT_EQ(cat("/cpuset/x/cpuset.cpus"), "0-1\n");
  EXPECT_EQ(echo("/cpuset/x/cpuset.cpus", "1"), 0);  // shrinking is fine
  // Without load balancing the check does not apply.
  ASSERT_EQ(echo("/cpuset/x/cpuset.sched_load_balance", "0"), 0);
  EXPECT_EQ(echo("/cpuset/x/cpuset.cpus", "\n"), 0);
  EXPECT_EQ(cat("/cpuset/x/cpuset.cpus"), "\n");
  // Nor to a cpuset that is not exclusive.
  ASSERT_EQ(mkdir("/cpuset/y"), 0);
  ASSERT_EQ(echo("/cpuset/y/cpuset.cpus", "0"), 0);
  EXPECT_EQ(echo("/cpuset/y/cpuset.cpus", "\n"), 0);
  // Tasks come first: ENOSPC.
  ASSERT_EQ(echo("/cpuset/x/cpuset.sched_load_balance", "1"), 0);
  ASSERT_EQ(echo("/cpuset/x/cpuset.cpus", "1"), 0);
  const Pid p = *engine.spawn({});
  ASSERT_EQ(echo("/cpuset/x/tasks", std::to_string(p)), 0);
  EXPECT_EQ(echo("/cpuset/x/cpuset.cpus", "\n"), ENOSPC);
}

TEST_F(ConformanceTest, RenameChecksPermissionBeforeCgroupfsAnswers) {
  mount("hybrid");
  Caller user;
  user.uid = 1000;
  user.gid = 1000;
  ASSERT_EQ(mkdir("/unified/a"), 0);
  ASSERT_EQ(mkdir("/unified/a/x"), 0);
  ASSERT_EQ(mkdir("/pids/a"), 0);
  ASSERT_EQ(mkdir("/pids/a/x"), 0);
  // v2: a non-owner of the parent gets the VFS's EACCES, its owner and root
  // cgroupfs' EPERM.
  EXPECT_EQ(rename("/unified/a/x", "/unified/a/y", user), EACCES);
  EXPECT_EQ(rename("/unified/a/cgroup.procs", "/unified/a/y", user), EACCES);
  EXPECT_EQ(rename("/unified/a/nosuch", "/unified/a/y", user), ENOENT);
  EXPECT_EQ(rename("/unified/a/x", "/unified/a/y", Caller{}), EPERM);
  ASSERT_TRUE(fs->chown(*fs->resolve("/unified/a"), 1000, 1000, Caller{}).ok());
  EXPECT_EQ(rename("/unified/a/x", "/unified/a/y", user), EPERM);
  // v1: across parents EACCES before EIO; a file EACCES before ENOTDIR.
  EXPECT_EQ(rename("/pids/a/x", "/pids/y", user), EACCES);
  EXPECT_EQ(rename("/pids/a/tasks", "/pids/a/y", user), EACCES);
  EXPECT_EQ(rename("/pids/a/x", "/pids/y", Caller{}), EIO);
  EXPECT_EQ(rename("/pids/a/tasks", "/pids/a/y", Caller{}), ENOTDIR);
  ASSERT_TRUE(fs->chown(*fs->resolve("/pids/a"), 1000, 1000, Caller{}).ok());
  EXPECT_EQ(rename("/pids/a/x", "/pids/y", user), EACCES);  // no access to /pids
  EXPECT_EQ(rename("/pids/a/x", "/pids/a/y", user), 0);
  EXPECT_EQ(cat("/pids/a/y/pids.max"), "max\n");
}

}  // namespace
}  // namespace cgcore::fs
