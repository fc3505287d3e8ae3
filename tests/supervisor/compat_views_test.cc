// The texts compatibility-mode processes are answered with
// (supervisor/compat.h): which /proc paths are served, the mount table as
// the kernel would show the hierarchies at /sys/fs/cgroup, /proc/mounts
// from it, and the hierarchy a path at /sys/fs/cgroup lies in.
#include "supervisor/compat.h"

#include <gtest/gtest.h>

#include "fs/cgroupfs.h"
#include "tests/support/test_controller.h"

namespace cgcore::supervisor {
namespace {

TEST(CompatPaths, AbsolutePathsAreNormalisedLexically) {
  EXPECT_EQ(absolute_path("/", "/proc/self/cgroup"), "/proc/self/cgroup");
  EXPECT_EQ(absolute_path("/proc/self", "cgroup"), "/proc/self/cgroup");
  EXPECT_EQ(absolute_path("/proc/12", "../self//./mounts"), "/proc/self/mounts");
  EXPECT_EQ(absolute_path("/tmp", "/../../proc/cgroups"), "/proc/cgroups");
  EXPECT_EQ(absolute_path("/", ".."), "/");
}

TEST(CompatPaths, OnlyTheFilesShowingCgroupsAreServed) {
  EXPECT_EQ(classify_proc_path("/proc/mounts").kind, ProcFile::kMounts);
  EXPECT_EQ(classify_proc_path("/proc/cgroups").kind, ProcFile::kCgroups);
  ProcFile f = classify_proc_path("/proc/self/mountinfo");
  EXPECT_EQ(f.kind, ProcFile::kMountinfo);
  EXPECT_EQ(f.who, ProcFile::kSelf);
  f = classify_proc_path("/proc/thread-self/cgroup");
  EXPECT_EQ(f.kind, ProcFile::kCgroup);
  EXPECT_EQ(f.who, ProcFile::kThreadSelf);
  f = classify_proc_path("/proc/42/task/43/cgroup");
  EXPECT_EQ(f.kind, ProcFile::kCgroup);
  EXPECT_EQ(f.who, ProcFile::kPid);
  EXPECT_EQ(f.pid, 42);
  EXPECT_EQ(f.tid, 43);
  f = classify_proc_path("/proc/self/task/7/mounts");
  EXPECT_EQ(f.kind, ProcFile::kMounts);
  EXPECT_EQ(f.tid, 7);
  for (const char* other : {"/proc/self/status", "/proc/42", "/proc/042/cgroup", "/proc/+4/cgroup",
                            "/proc/x/cgroup", "/proc/thread-self/task/3/cgroup", "/proc/self/cgroup/x",
                            "/etc/mounts", "/proc/self/task/cgroup", "/proc/0/cgroup"})
    EXPECT_EQ(classify_proc_path(other).kind, ProcFile::kNone) << other;
}

const CompatView kHybrid{{{"cpu", false, ",cpu"}, {"systemd", false, ",name=systemd"}, {"unified", true, ""}}};
const CompatView kV2{{{"", true, ""}}};

TEST(CompatMounts, TheMountsAtSysFsCgroupBecomeTheKernelsHierarchies) {
  const std::string real =
      "22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
      "31 22 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
      "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
      "69 49 0:40 / /tmp/cg rw,nosuid,nodev,relatime - fuse.cgcorefs cgcorefs rw,user_id=0,group_id=0\n"
      "54 22 0:44 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,mode=755\n"
      "55 54 0:40 /cpu /sys/fs/cgroup/cpu rw,nosuid,nodev,noexec,relatime - fuse.cgcorefs cgcorefs rw,user_id=0\n"
      "56 54 0:40 /systemd/a\\040b /sys/fs/cgroup/systemd rw,nosuid - fuse.cgcorefs cgcorefs ro,user_id=0\n"
      "57 54 0:40 /unified /sys/fs/cgroup/unified rw,nosuid - fuse.cgcorefs cgcorefs rw,user_id=0\n";
  EXPECT_EQ(rewrite_mountinfo(real, kHybrid),
            "22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
            // the host's cgroup mounts, covered by the tmpfs, are gone; the
            // mount itself elsewhere stays as it is
            "69 49 0:40 / /tmp/cg rw,nosuid,nodev,relatime - fuse.cgcorefs cgcorefs rw,user_id=0,group_id=0\n"
            "54 22 0:44 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,mode=755\n"
            "55 54 0:40 / /sys/fs/cgroup/cpu rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpu\n"
            "56 54 0:40 /a\\040b /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup ro,name=systemd\n"
            "57 54 0:40 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n");
  EXPECT_EQ(mounts_of_mountinfo(rewrite_mountinfo(real, kHybrid)),
            "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n"
            "cgcorefs /tmp/cg fuse.cgcorefs rw,nosuid,nodev,relatime,user_id=0,group_id=0 0 0\n"
            "tmpfs /sys/fs/cgroup tmpfs ro,nosuid,nodev,noexec,relatime,mode=755 0 0\n"
            "cgroup /sys/fs/cgroup/cpu cgroup rw,nosuid,nodev,noexec,relatime,cpu 0 0\n"
            "cgroup /sys/fs/cgroup/systemd cgroup ro,nosuid,name=systemd 0 0\n"
            "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid 0 0\n");
}

TEST(CompatMounts, AV2MountIsOneCgroup2Entry) {
  const std::string real =
      "71 49 0:42 / /tmp/v2 rw,nosuid,nodev,relatime - fuse.cgcorefs cgcorefs rw,allow_other\n"
      "53 52 0:42 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - fuse.cgcorefs cgcorefs rw,allow_other\n";
  EXPECT_EQ(rewrite_mountinfo(real, kV2),
            "71 49 0:42 / /tmp/v2 rw,nosuid,nodev,relatime - fuse.cgcorefs cgcorefs rw,allow_other\n"
            "53 52 0:42 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw\n");
  // The mount root of a directory of hierarchies, or a view, is no
  // hierarchy: left as it is.
  const std::string root = "5 4 0:42 /.cgcore /sys/fs/cgroup/x rw - fuse.cgcorefs cgcorefs rw\n";
  EXPECT_EQ(rewrite_mountinfo(root, kHybrid), root);
}

TEST(CompatMounts, PathsFindTheirHierarchy) {
  EXPECT_EQ(hier_of_path("/sys/fs/cgroup", kHybrid), nullptr);  // the tmpfs
  ASSERT_NE(hier_of_path("/sys/fs/cgroup/cpu/a/b", kHybrid), nullptr);
  EXPECT_FALSE(hier_of_path("/sys/fs/cgroup/cpu/a/b", kHybrid)->v2);
  ASSERT_NE(hier_of_path("/sys/fs/cgroup/unified", kHybrid), nullptr);
  EXPECT_TRUE(hier_of_path("/sys/fs/cgroup/unified", kHybrid)->v2);
  EXPECT_EQ(hier_of_path("/sys/fs/cgroup/cpuacct", kHybrid), nullptr);
  EXPECT_EQ(hier_of_path("/sys/fs/cgroupx", kV2), nullptr);
  ASSERT_NE(hier_of_path("/sys/fs/cgroup", kV2), nullptr);
}

TEST(CompatMounts, TheViewHasTheKernelsSuperblockOptions) {
  Engine engine;
  ASSERT_TRUE(engine.register_controller(std::make_unique<testing::TestController>("alpha")).ok());
  ASSERT_TRUE(engine.register_controller(std::make_unique<testing::TestController>("beta")).ok());
  auto fs = fs::CgroupFs::create(engine, "alpha,beta;name=sd");
  ASSERT_TRUE(fs.ok()) << fs.status().message();
  ASSERT_TRUE((*fs)->write_path("/alpha,beta/release_agent", "/bin/agent", fs::Caller{}).ok());
  const CompatView v = compat_view_of(**fs);
  ASSERT_EQ(v.hiers.size(), 2u);
  EXPECT_EQ(v.hiers[0].dir, "alpha,beta");
  EXPECT_EQ(v.hiers[0].superopts, ",alpha,beta,release_agent=/bin/agent");
  EXPECT_EQ(v.hiers[1].dir, "sd");
  EXPECT_EQ(v.hiers[1].superopts, ",name=sd");
  EXPECT_FALSE(v.hiers[1].v2);
}

}  // namespace
}  // namespace cgcore::supervisor
