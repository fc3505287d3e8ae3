// Processes started under cgexec are really limited: forks refused at
// pids.max / numtasks.max before the kernel forks, address-space growth
// refused past memrlimit, affinity confined to the cpuset. End to end: a
// cgcorefs daemon over the host's processes, cgexec, real programs.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/fuse/mount_harness.h"

#ifndef CGEXEC_BINARY
#error "CGEXEC_BINARY: the path of cgexec"
#endif
#ifndef HELPER_BINARY
#error "HELPER_BINARY: the path of supervised_helper"
#endif

namespace cgcore::supervisor {
namespace {

using fuse::testing::Mount;
using fuse::testing::read_file;
using fuse::testing::sh;
using fuse::testing::write_file;
using namespace std::chrono_literals;

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string cat(const std::string& path) { return read_file(path).value_or("<unreadable>"); }

// Runs `cgexec -m MOUNT -g GROUP -- helper ARGS...`; its stdout in *out.
int cgexec(const Mount& m, const std::string& group, const std::string& args, std::string* out) {
  return sh(std::string(CGEXEC_BINARY) + " -m " + m.dir() + " -g " + group + " -- " + HELPER_BINARY +
                " " + args + " 2>&1",
            out);
}

// Every live descendant task (threads included) of `root`, from /proc.
int live_tasks_under(pid_t root) {
  std::map<pid_t, pid_t> parent;
  DIR* d = opendir("/proc");
  if (!d) return -1;
  while (dirent* e = readdir(d)) {
    const pid_t p = std::atoi(e->d_name);
    if (p <= 0) continue;
    std::ifstream st("/proc/" + std::to_string(p) + "/stat");
    std::string line;
    if (!std::getline(st, line)) continue;
    const size_t close = line.rfind(')');
    if (close == std::string::npos || close + 4 >= line.size()) continue;
    const char state = line[close + 2];
    if (state == 'Z' || state == 'X') continue;
    parent[p] = std::atoi(line.c_str() + close + 4);
  }
  closedir(d);
  int n = 0;
  for (const auto& [p, pp] : parent) {
    bool under = false;
    for (pid_t a = p; a > 1 && !under; a = parent.count(a) ? parent[a] : 0) under = a == root;
    if (!under) continue;
    DIR* t = opendir(("/proc/" + std::to_string(p) + "/task").c_str());
    if (!t) continue;
    while (dirent* e = readdir(t))
      if (e->d_name[0] != '.') ++n;
    closedir(t);
  }
  return n;
}

// A fork bomb under a limit of 20, for pids (v2) and numtasks (v1).
struct BombCase {
  const char* layout;
  const char* dir;         // the cgroup, relative to the mount
  const char* limit_file;  // its limit file
  const char* group;       // cgexec -g
  const char* events;      // its events file, or null
};

class Bomb : public ::testing::TestWithParam<BombCase> {};

TEST_P(Bomb, StaysAtItsLimit) {
  SKIP_WITHOUT_FUSE();
  const BombCase c = GetParam();
  Mount m({"--layout", c.layout});
  ASSERT_MOUNTED(m);
  if (std::string(c.layout) == "v2") ASSERT_EQ(write_file(m.path("cgroup.subtree_control"), "+pids +numtasks"), 0);
  ASSERT_EQ(sh(std::string("mkdir ") + m.path(c.dir)), 0);
  ASSERT_EQ(write_file(m.path(std::string(c.dir) + "/" + c.limit_file), "20"), 0);
  // Sample the real process tree while the bomb runs: the process cgexec
  // becomes is the root of everything the bomb makes.
  std::atomic<bool> done{false};
  std::atomic<int> peak{0};
  std::atomic<pid_t> root{0};
  std::thread sampler([&] {
    while (!done.load()) {
      if (pid_t r = root.load()) peak.store(std::max(peak.load(), live_tasks_under(r)));
      std::this_thread::sleep_for(1ms);
    }
  });
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    execl(CGEXEC_BINARY, CGEXEC_BINARY, "-m", m.dir().c_str(), "-g", c.group, "--", HELPER_BINARY,
          "bomb", "2", static_cast<char*>(nullptr));
    _exit(127);
  }
  root.store(child);
  int status = 0;
  waitpid(child, &status, 0);
  done.store(true);
  sampler.join();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_LE(peak.load(), 20) << "live tasks of the bomb, sampled";
  EXPECT_GE(peak.load(), 15) << "the bomb never came near its limit: the test proved nothing";
  if (c.events) {
    const std::string events = cat(m.path(std::string(c.dir) + "/" + c.events));
    ASSERT_EQ(events.rfind("max ", 0), 0u) << events;
    EXPECT_GT(std::stol(events.substr(4)), 0) << events;
  }
  std::string current = std::string(c.dir) + "/" + c.limit_file;
  current.replace(current.size() - 4, 4, ".current");
  EXPECT_TRUE(fuse::testing::eventually([&] { return trim(cat(m.path(current))) == "0"; }, 5s))
      << current << ": " << cat(m.path(current));
}

std::string controller_name(const ::testing::TestParamInfo<BombCase>& info) {
  const std::string f = info.param.limit_file;
  return f.substr(0, f.find('.'));
}

INSTANTIATE_TEST_SUITE_P(
    Supervised, Bomb,
    ::testing::Values(BombCase{"v2", "bomb", "pids.max", "pids:/bomb", "pids.events"},
                      BombCase{"hybrid", "numtasks/bomb", "numtasks.max", "numtasks:/bomb", nullptr}),
    controller_name);

TEST(Supervised, NumtasksMaxRefusesForksAndThreads) {
  SKIP_WITHOUT_FUSE();
  Mount m({"--layout", "hybrid"});
  ASSERT_MOUNTED(m);
  ASSERT_EQ(sh("mkdir " + m.path("numtasks/n")), 0);
  ASSERT_EQ(write_file(m.path("numtasks/n/numtasks.max"), "4"), 0);
  std::string out;
  ASSERT_EQ(cgexec(m, "numtasks:/n", "threads 6", &out), 0) << out;
  EXPECT_EQ(out, "started 3 refused 3\n");  // the main thread is the fourth
  ASSERT_EQ(cgexec(m, "numtasks:/n", "fork_exit 50", &out), 0) << out;
  EXPECT_EQ(out, "ok\n");  // children that exit give their charge back
}

TEST(Supervised, AChildIsInItsParentsCgroupFromItsFirstInstruction) {
  SKIP_WITHOUT_FUSE();
  Mount m({"--layout", "v2"});
  ASSERT_MOUNTED(m);
  ASSERT_EQ(sh("mkdir " + m.path("job")), 0);
  std::string out;
  ASSERT_EQ(cgexec(m, "'*:/job'", "cgroup " + m.dir(), &out), 0) << out;
  EXPECT_EQ(out, "0::/job\n");
  ASSERT_EQ(cgexec(m, "'*:/job'", "child_cgroup " + m.dir(), &out), 0) << out;
  EXPECT_EQ(out, "0::/job\n");
}

TEST(Supervised, MemrlimitRefusesAMappingPastItsLimit) {
  SKIP_WITHOUT_FUSE();
  Mount m({"--layout", "hybrid"});
  ASSERT_MOUNTED(m);
  ASSERT_EQ(sh("mkdir " + m.path("memrlimit/m")), 0);
  ASSERT_EQ(write_file(m.path("memrlimit/m/memrlimit.limit_in_bytes"), "256M"), 0);
  std::string out;
  ASSERT_EQ(cgexec(m, "memrlimit:/m", "mmap 536870912", &out), 0) << out;
  EXPECT_EQ(out, "ENOMEM\n");
  ASSERT_EQ(cgexec(m, "memrlimit:/m", "malloc 536870912", &out), 0) << out;
  EXPECT_EQ(out, "ENOMEM\n");
  EXPECT_NE(trim(cat(m.path("memrlimit/m/memrlimit.failcnt"))), "0");
  ASSERT_EQ(cgexec(m, "memrlimit:/m", "mmap 67108864", &out), 0) << out;
  EXPECT_EQ(out, "ok\n");
  // Unmapped memory counts no more: 100 rounds of 64 MiB fit in 256 MiB.
  ASSERT_EQ(cgexec(m, "memrlimit:/m", "mmap_loop 100 67108864", &out), 0) << out;
  EXPECT_EQ(out, "ok\n");
  // Without the limit the same calls succeed.
  ASSERT_EQ(cgexec(m, "memrlimit:/", "mmap 536870912", &out), 0) << out;
  EXPECT_EQ(out, "ok\n");
  ASSERT_EQ(cgexec(m, "memrlimit:/", "malloc 536870912", &out), 0) << out;
  EXPECT_EQ(out, "ok\n");
}

TEST(Supervised, AffinityIsConfinedToTheCpuset) {
  SKIP_WITHOUT_FUSE();
  if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "needs two CPUs";
  Mount m({"--layout", "hybrid"});
  ASSERT_MOUNTED(m);
  ASSERT_EQ(sh("mkdir " + m.path("cpuset/c")), 0);
  ASSERT_EQ(write_file(m.path("cpuset/c/cpuset.mems"), "0"), 0);
  ASSERT_EQ(write_file(m.path("cpuset/c/cpuset.cpus"), "1"), 0);
  std::string out;
  ASSERT_EQ(cgexec(m, "cpuset:/c", "affinity 0,1", &out), 0) << out;
  EXPECT_EQ(out, "OK 1\n");  // the request intersected with the cpuset
  ASSERT_EQ(cgexec(m, "cpuset:/c", "affinity 0", &out), 0) << out;
  EXPECT_EQ(out, "EINVAL 1\n");  // nothing left: EINVAL, unchanged
}

TEST(Supervised, UnsupervisedProcessesAreNotLimitedBeforeTheKernelForks) {
  SKIP_WITHOUT_FUSE();
  Mount m({"--layout", "v2"});
  ASSERT_MOUNTED(m);
  ASSERT_EQ(write_file(m.path("cgroup.subtree_control"), "+pids"), 0);
  ASSERT_EQ(sh("mkdir " + m.path("p")), 0);
  ASSERT_EQ(write_file(m.path("p/pids.max"), "2"), 0);
  // Moved in by a write, not started under cgexec: forks are counted after
  // the kernel made them (the host mirror), never refused.
  std::string out;
  ASSERT_EQ(sh("sh -c 'echo $$ > " + m.path("p/cgroup.procs") + "; " + HELPER_BINARY + " threads 4'", &out),
            0);
  EXPECT_EQ(out, "started 4 refused 0\n");
}

TEST(Supervised, CgexecNamesTheProblemAndRunsNothing) {
  SKIP_WITHOUT_FUSE();
  Mount m({"--layout", "hybrid"});
  ASSERT_MOUNTED(m);
  std::string out;
  const std::string ce = std::string(CGEXEC_BINARY) + " -m " + m.dir();
  EXPECT_EQ(sh(ce + " -g pids:/nosuch -- /bin/echo ran 2>&1", &out), 1);
  EXPECT_NE(out.find("no such cgroup"), std::string::npos) << out;
  EXPECT_EQ(out.find("ran"), std::string::npos) << out;
  EXPECT_EQ(sh(ce + " -g bogus:/ -- /bin/echo ran 2>&1", &out), 1);
  EXPECT_NE(out.find("controller bogus is not mounted"), std::string::npos) << out;
  EXPECT_EQ(sh(std::string(CGEXEC_BINARY) + " -m /nonexistent -g pids:/ -- /bin/echo ran 2>&1", &out), 1);
  EXPECT_NE(out.find("no cgcorefs daemon"), std::string::npos) << out;
  EXPECT_EQ(sh(ce + " -g pids:/ 2>&1", &out), 2);  // no command
  EXPECT_EQ(sh(ce + " -g pids:/ -- /nonexistent/cmd 2>&1", &out), 127);
  // Permission: an ordinary user may not join a root-owned cgroup.
  ASSERT_EQ(sh("mkdir " + m.path("pids/r")), 0);
  EXPECT_EQ(sh("setpriv --reuid=65534 --regid=65534 --clear-groups " + ce +
                   " -g pids:/r -- /bin/echo ran 2>&1",
               &out),
            1);
  EXPECT_NE(out.find("Permission denied"), std::string::npos) << out;
  EXPECT_EQ(out.find("ran"), std::string::npos) << out;
  // The exit status is the command's.
  EXPECT_EQ(sh(ce + " -g pids:/ -- /bin/sh -c 'exit 7'"), 7);
  EXPECT_EQ(trim(cat(m.path("pids/r/cgroup.procs"))), "");
}

// No privilege is needed to be supervised: an ordinary user, in a cgroup it
// made in a hierarchy delegated to it (-o uid=), is limited the same way,
// and each refusal is counted once.
TEST(Supervised, AnOrdinaryUserIsSupervisedInItsOwnCgroup) {
  SKIP_WITHOUT_FUSE();
  Mount m({"--layout", "hybrid", "-o", "uid=65534,gid=65534"});
  ASSERT_MOUNTED(m);
  const std::string as_nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups ";
  ASSERT_EQ(sh(as_nobody + "mkdir " + m.path("pids/mine")), 0);
  ASSERT_EQ(sh(as_nobody + "sh -c 'echo 6 > " + m.path("pids/mine/pids.max") + "'"), 0);
  std::string out;
  ASSERT_EQ(sh("cd /tmp && " + as_nobody + CGEXEC_BINARY + " -m " + m.dir() + " -g pids:/mine -- " +
                   HELPER_BINARY + " threads 10 2>&1",
               &out),
            0)
      << out;
  EXPECT_EQ(out, "started 5 refused 5\n");  // the main thread is the sixth
  EXPECT_EQ(cat(m.path("pids/mine/pids.events")), "max 5\n");
}

TEST(Supervised, TheDaemonStaysUpWhenAThousandSupervisedProcessesStartAndDie) {
  SKIP_WITHOUT_FUSE();
  Mount m({"--layout", "v2"});
  ASSERT_MOUNTED(m);
  ASSERT_EQ(sh("mkdir " + m.path("many")), 0);
  // 1,000 cgexec'd processes at once, each forking, most killed midway.
  std::string out;
  ASSERT_EQ(sh("for i in $(seq 1000); do " + std::string(CGEXEC_BINARY) + " -m " + m.dir() +
                   " -g '*:/many' -- " + HELPER_BINARY + " fork_exit 20 >/dev/null 2>&1 & done; "
                   "sleep 0.5; kill -9 $(jobs -p) 2>/dev/null; wait",
               &out),
            0)
      << out;
  EXPECT_TRUE(m.mounted());
  EXPECT_EQ(kill(m.daemon(), 0), 0) << m.log();
  EXPECT_TRUE(fuse::testing::eventually([&] { return trim(cat(m.path("many/cgroup.procs"))).empty(); }, 20s))
      << cat(m.path("many/cgroup.procs"));
  // Still serving supervised processes.
  ASSERT_EQ(cgexec(m, "'*:/many'", "fork_exit 10", &out), 0) << out;
  EXPECT_EQ(out, "ok\n");
}

}  // namespace
}  // namespace cgcore::supervisor
