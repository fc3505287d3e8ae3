// cgcorefs' command line: -o mount options (the roots' owner and mode, FUSE
// flags, unknown options refused), refusing to mount over a live cgcorefs
// mount, and where a detached daemon's log goes. The mounting tests skip,
// saying why, without FUSE.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "tests/fuse/mount_harness.h"

namespace {

using cgcore::fuse::testing::eventually;
using cgcore::fuse::testing::fuse_unavailable;
using cgcore::fuse::testing::Mount;
using cgcore::fuse::testing::read_file;
using cgcore::fuse::testing::sh;

const std::string kBin = CGCOREFS_BINARY;

TEST(CgcorefsOptions, BadOptionsAreUsageErrorsNamingThem) {
  std::string out;
  EXPECT_EQ(sh(kBin + " -o allow_other,bogus /tmp 2>&1", &out), 2);
  EXPECT_NE(out.find("unknown mount option 'bogus'"), std::string::npos) << out;
  EXPECT_EQ(sh(kBin + " -o mode=999 /tmp 2>&1", &out), 2);
  EXPECT_NE(out.find("mode=999"), std::string::npos) << out;
  EXPECT_EQ(sh(kBin + " -o uid=no-such-user-here /tmp 2>&1", &out), 2);
  EXPECT_NE(out.find("no such user"), std::string::npos) << out;
  EXPECT_EQ(sh(kBin + " --sim-tasks 3 /tmp 2>&1", &out), 2);
  EXPECT_NE(out.find("--sim-tasks needs --sim"), std::string::npos) << out;
  EXPECT_EQ(sh(kBin + " --version", &out), 0);
  EXPECT_EQ(out.rfind("cgcorefs (cgcore) ", 0), 0u) << out;
}

TEST(CgcorefsOptions, RootsTakeTheOwnerAndModeOfMinusO) {
  SKIP_WITHOUT_FUSE();
  Mount m({"--sim", "-o", "uid=65534,gid=65534", "-o", "mode=0750,default_permissions"});
  ASSERT_TRUE(m.ok()) << m.error();
  for (const std::string& dir : {m.dir(), m.path("pids"), m.path("unified")}) {
    struct stat st{};
    ASSERT_EQ(stat(dir.c_str(), &st), 0) << dir;
    EXPECT_EQ(st.st_uid, 65534u) << dir;
    EXPECT_EQ(st.st_gid, 65534u) << dir;
    EXPECT_EQ(st.st_mode & 07777, 0750u) << dir;
  }
  // A cgroup made below keeps the usual rules (its creator owns it).
  ASSERT_EQ(mkdir(m.path("pids/web").c_str(), 0755), 0);
  struct stat st{};
  ASSERT_EQ(stat(m.path("pids/web").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, geteuid());
  std::string mi;
  sh("grep ' " + m.dir() + " ' /proc/self/mountinfo", &mi);
  EXPECT_NE(mi.find("default_permissions"), std::string::npos) << mi;
}

TEST(CgcorefsOptions, RefusesToMountOverALiveMount) {
  SKIP_WITHOUT_FUSE();
  Mount m({"--sim", "--layout", "v2"});
  ASSERT_TRUE(m.ok()) << m.error();
  std::string out;
  EXPECT_EQ(sh(kBin + " --foreground --sim " + m.dir() + " 2>&1", &out), 1);
  EXPECT_NE(out.find("cgcorefs is already mounted there"), std::string::npos) << out;
  EXPECT_EQ(read_file(m.path("cgroup.procs")).value_or(""), "1\n");  // the first one still serves
}

TEST(CgcorefsOptions, ADetachedDaemonSaysWhereItLogs) {
  SKIP_WITHOUT_FUSE();
  char tmpl[] = "/tmp/cgcorefs-log-test.XXXXXX";
  ASSERT_TRUE(mkdtemp(tmpl));
  const std::string dir = tmpl, mnt = dir + "/mnt", runtime = dir + "/run";
  ASSERT_EQ(mkdir(mnt.c_str(), 0755), 0);
  ASSERT_EQ(mkdir(runtime.c_str(), 0700), 0);
  std::string out;
  ASSERT_EQ(sh("XDG_RUNTIME_DIR=" + runtime + " " + kBin + " --sim " + mnt + " 2>&1", &out), 0) << out;
  EXPECT_NE(out.find("logs go to "), std::string::npos) << out;
  ASSERT_EQ(sh("fusermount3 -u " + mnt), 0);
  // Without journald and /dev/log (containers, these test machines) the
  // lines land in $XDG_RUNTIME_DIR/cgcorefs.log.
  if (out.find("logs go to " + runtime + "/cgcorefs.log") != std::string::npos) {
    EXPECT_TRUE(eventually([&] {
      return read_file(runtime + "/cgcorefs.log").value_or("").find("unmounted " + mnt) != std::string::npos;
    }));
  }
  EXPECT_TRUE(eventually([&] { return sh("grep -q ' " + mnt + " ' /proc/self/mountinfo") != 0; }));
  sh("rm -rf " + dir);
}

}  // namespace
