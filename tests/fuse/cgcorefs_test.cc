// cgcorefs end to end: the daemon mounted on a temporary directory, driven
// with real processes and shell tools as /sys/fs/cgroup would be.
//
// Skipped (with the reason) where FUSE cannot be mounted: not root, no
// /dev/fuse, no fusermount3.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "tests/fuse/mount_harness.h"

namespace cgcore::fuse::testing {
namespace {

using namespace std::chrono_literals;

std::string cat(const std::string& path) {
  std::optional<std::string> s = read_file(path);
  return s ? *s : std::string("error: ") + std::strerror(errno);
}

// The field "Name:\tvalue" of /proc/PID/status.
std::string proc_status(pid_t pid, const std::string& name) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(name + ":", 0) == 0) {
      std::string v = line.substr(name.size() + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  return "";
}

// A pid that is certainly not running: a reaped child's (unless reused,
// which the caller checks).
pid_t dead_pid() {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, nullptr, 0);
  return pid;
}

// ------------------------------------------------------------ host mode

TEST(CgcorefsHost, ShellToolsMoveRealProcesses) {
  SKIP_WITHOUT_FUSE();
  Mount m({"--layout", "hybrid"});
  ASSERT_MOUNTED(m);
  Proc sleeper({"/bin/sleep", "100"});
  const std::string pid = std::to_string(sleeper.pid());
  std::string out;
  ASSERT_EQ(sh("mkdir " + m.path("pids/a")), 0);
  ASSERT_EQ(sh("echo " + pid + " > " + m.path("pids/a/cgroup.procs"), &out), 0) << out;
  EXPECT_EQ(cat(m.path("pids/a/tasks")), pid + "\n");
  EXPECT_EQ(cat(m.path("pids/a/cgroup.procs")), pid + "\n");
  ASSERT_EQ(sh("cat " + m.path("pids/a/tasks"), &out), 0);
  EXPECT_EQ(out, pid + "\n");
  EXPECT_FALSE(contains_pid(cat(m.path("pids/cgroup.procs")), sleeper.pid()));
  EXPECT_TRUE(contains_pid(cat(m.path("pids/cgroup.procs")), getpid()));
  EXPECT_NE(cat(m.path(".cgcore/" + pid + "/cgroup")).find(":pids:/a\n"), std::string::npos);
  // Only the pids hierarchy changed.
  EXPECT_TRUE(contains_pid(cat(m.path("memory/cgroup.procs")), sleeper.pid()));
  ASSERT_EQ(sh("ls " + m.path("pids"), &out), 0);
  EXPECT_NE(out.find("a\n"), std::string::npos);
  // A cgroup with a task cannot go; once the task exits it can.
  EXPECT_NE(sh("rmdir " + m.path("pids/a") + " 2>/dev/null"), 0);
  sleeper.kill_and_reap();
  EXPECT_TRUE(eventually([&] { return cat(m.path("pids/a/tasks")).empty(); }));
  EXPECT_EQ(sh("rmdir " + m.path("pids/a")), 0);
}

TEST(CgcorefsHost, CpusetAttachSetsRealAffinity) {
  SKIP_WITHOUT_FUSE();
  const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  if (ncpu < 2) GTEST_SKIP() << "one CPU: affinity cannot change";
  Mount m({"--layout", "hybrid"});
  ASSERT_MOUNTED(m);
  Proc sleeper({"/bin/sleep", "100"});
  const std::string last = std::to_string(ncpu - 1);
  const std::string all = proc_status(sleeper.pid(), "Cpus_allowed_list");
  ASSERT_EQ(sh("mkdir " + m.path("cpuset/one")), 0);
  ASSERT_EQ(write_file(m.path("cpuset/one/cpuset.cpus"), last), 0);
  ASSERT_EQ(write_file(m.path("cpuset/one/cpuset.mems"), "0"), 0);
  EXPECT_EQ(cat(m.path("cpuset/one/cpuset.cpus")), last + "\n");
  ASSERT_EQ(sh("echo " + std::to_string(sleeper.pid()) + " > " + m.path("cpuset/one/tasks")), 0);
  EXPECT_TRUE(eventually([&] { return proc_status(sleeper.pid(), "Cpus_allowed_list") == last; }))
      << proc_status(sleeper.pid(), "Cpus_allowed_list");
  // Back in the root: every CPU again.
  ASSERT_EQ(write_file(m.path("cpuset/cgroup.procs"), std::to_string(sleeper.pid())), 0);
  EXPECT_TRUE(eventually([&] { return proc_status(sleeper.pid(), "Cpus_allowed_list") == all; }))
      << proc_status(sleeper.pid(), "Cpus_allowed_list");
}

TEST(CgcorefsHost, ForkedChildLandsInItsParentsCgroup) {
  SKIP_WITHOUT_FUSE();
  Mount m({"--layout", "v2"});
  ASSERT_MOUNTED(m);
  ASSERT_EQ(sh("mkdir " + m.path("job")), 0);
  const std::string child_file = m.dir() + ".child";
  // The shell moves itself, then forks a sleep and reports its pid.
  Proc shell({"/bin/sh", "-c",
              "echo $$ > " + m.path("job/cgroup.procs") + " || exit 1; sleep 100 & echo $! > " +
                  child_file + "; wait"});
  std::string child;
  ASSERT_TRUE(eventually([&] {
    std::optional<std::string> s = read_file(child_file);
    if (s && !s->empty() && s->back() == '\n') child = *s;
    return !child.empty();
  }));
  unlink(child_file.c_str());
  const long child_pid = std::stol(child);
  EXPECT_TRUE(eventually([&] {
    std::string procs = cat(m.path("job/cgroup.procs"));
    return contains_pid(procs, shell.pid()) && contains_pid(procs, child_pid);
  })) << cat(m.path("job/cgroup.procs"));
  EXPECT_EQ(cat(m.path(".cgcore/" + std::to_string(child_pid) + "/cgroup")), "0::/job\n");
  EXPECT_EQ(cat(m.path("job/cgroup.events")), "populated 1\nfrozen 0\n");
}

TEST(CgcorefsHost, ExitEmptiesTheCgroupAndWakesPoll) {
  SKIP_WITHOUT_FUSE();
  Mount m({"--layout", "v2"});
  ASSERT_MOUNTED(m);
  Proc sleeper({"/bin/sleep", "100"});
  ASSERT_EQ(sh("mkdir " + m.path("w")), 0);
  ASSERT_EQ(write_file(m.path("w/cgroup.procs"), std::to_string(sleeper.pid())), 0);
  int fd = open(m.path("w/cgroup.events").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  char buf[256];
  ssize_t n = pread(fd, buf, sizeof buf, 0);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)), "populated 1\nfrozen 0\n");
  // Nothing changed since the read: no POLLPRI (but readable, as kernfs).
  pollfd p{fd, POLLPRI, 0};
  EXPECT_EQ(poll(&p, 1, 50), 0);
  p = {fd, POLLIN | POLLPRI, 0};
  EXPECT_EQ(poll(&p, 1, 50), 1);
  EXPECT_EQ(p.revents, POLLIN);
  std::atomic<int> revents{-1};
  std::thread waiter([&] {
    pollfd q{fd, POLLPRI, 0};
    int r = poll(&q, 1, 10000);
    revents = r > 0 ? q.revents : 0;
  });
  std::this_thread::sleep_for(50ms);  // let the waiter block
  sleeper.kill_and_reap();
  waiter.join();
  EXPECT_TRUE(revents.load() & POLLPRI) << revents.load();
  n = pread(fd, buf, sizeof buf, 0);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)), "populated 0\nfrozen 0\n");
  close(fd);
  EXPECT_EQ(cat(m.path("w/cgroup.procs")), "");
  EXPECT_EQ(sh("rmdir " + m.path("w")), 0);
}

TEST(CgcorefsHost, BadInputGetsTheKernelsErrnoAndChangesNothing) {
  SKIP_WITHOUT_FUSE();
  Mount m({"--layout", "hybrid"});
  ASSERT_MOUNTED(m);
  Proc sleeper({"/bin/sleep", "100"});
  const std::string pid = std::to_string(sleeper.pid());
  ASSERT_EQ(sh("mkdir " + m.path("pids/a") + " " + m.path("pids/b")), 0);
  ASSERT_EQ(write_file(m.path("pids/a/cgroup.procs"), pid), 0);

  EXPECT_EQ(write_file(m.path("pids/b/cgroup.procs"), "abc"), EINVAL);
  EXPECT_EQ(write_file(m.path("pids/b/cgroup.procs"), "1 2"), EINVAL);
  EXPECT_EQ(write_file(m.path("pids/b/cgroup.procs"), "-5"), EINVAL);
  // A reaped process: once the tracker has seen it go (its exit event may
  // trail the reaping a little), its pid is ESRCH.
  pid_t dead = dead_pid();
  struct stat gone{};
  EXPECT_TRUE(eventually([&] {
    return stat(m.path(".cgcore/" + std::to_string(dead)).c_str(), &gone) != 0;
  }));
  if (kill(dead, 0) != 0)  // not reused meanwhile
    EXPECT_EQ(write_file(m.path("pids/b/cgroup.procs"), std::to_string(dead)), ESRCH);
  EXPECT_EQ(write_file(m.path("pids/b/cgroup.procs"), std::string(5000, '1')), E2BIG);
  EXPECT_EQ(write_file(m.path("pids/b/pids.max"), "lots"), EINVAL);
  EXPECT_EQ(rmdir(m.path("pids/a").c_str()) == 0 ? 0 : errno, EBUSY);
  EXPECT_EQ(unlink(m.path("pids/a/tasks").c_str()) == 0 ? 0 : errno, EPERM);
  EXPECT_EQ(rmdir(m.path("pids/a/tasks").c_str()) == 0 ? 0 : errno, ENOTDIR);
  EXPECT_EQ(mkdir(m.path("pids/a").c_str(), 0755) == 0 ? 0 : errno, EEXIST);
  EXPECT_EQ(mkdir(m.path("pids/a/tasks").c_str(), 0755) == 0 ? 0 : errno, EEXIST);
  EXPECT_EQ(mkdir(m.path("newhierarchy").c_str(), 0755) == 0 ? 0 : errno, EPERM);
  EXPECT_EQ(mkdir(m.path(".cgcore").c_str(), 0755) == 0 ? 0 : errno, EEXIST);
  EXPECT_EQ(open(m.path("pids/a/newfile").c_str(), O_WRONLY | O_CREAT, 0644), -1);
  EXPECT_EQ(errno, EACCES);  // touch newfile
  EXPECT_EQ(mknod(m.path("pids/a/fifo").c_str(), S_IFIFO | 0644, 0) == 0 ? 0 : errno, EPERM);
  EXPECT_EQ(symlink("x", m.path("pids/a/link").c_str()) == 0 ? 0 : errno, EPERM);
  EXPECT_EQ(rename(m.path("pids/a").c_str(), m.path("pids/b/a").c_str()) == 0 ? 0 : errno, EIO);
  EXPECT_EQ(rename(m.path("pids/a").c_str(), m.path("pids/b").c_str()) == 0 ? 0 : errno, EEXIST);
  EXPECT_EQ(rename(m.path("pids/a/tasks").c_str(), m.path("pids/a/t").c_str()) == 0 ? 0 : errno,
            ENOTDIR);
  EXPECT_EQ(open(m.path(".cgcore/999999999/cgroup").c_str(), O_RDONLY), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(open(m.path(".cgcore/cgroups").c_str(), O_WRONLY), -1);
  EXPECT_EQ(errno, EACCES);
  // The shell sees the same (bash names the errno; dash says "I/O error"
  // for any failed write).
  std::string out;
  EXPECT_NE(sh("bash -c 'echo abc > " + m.path("pids/b/cgroup.procs") + "'", &out), 0);
  EXPECT_NE(out.find("Invalid argument"), std::string::npos) << out;
  EXPECT_NE(sh("rm -f " + m.path("pids/a/tasks"), &out), 0);
  EXPECT_NE(out.find("Operation not permitted"), std::string::npos) << out;
  EXPECT_NE(sh("touch " + m.path("pids/a/newfile"), &out), 0);
  EXPECT_NE(out.find("Permission denied"), std::string::npos) << out;
  // Renaming within the parent works (v1).
  EXPECT_EQ(rename(m.path("pids/b").c_str(), m.path("pids/c").c_str()), 0);
  // Nothing changed; the daemon is alive and serving.
  EXPECT_EQ(cat(m.path("pids/a/tasks")), pid + "\n");
  EXPECT_EQ(cat(m.path("pids/c/tasks")), "");
  EXPECT_EQ(kill(m.daemon(), 0), 0);
  EXPECT_TRUE(m.mounted());
}

TEST(CgcorefsHost, CallerCredentialsAndOpenersCredentials) {
  SKIP_WITHOUT_FUSE();
  Mount m({"--layout", "hybrid"});
  ASSERT_MOUNTED(m);
  Proc sleeper({"/bin/sleep", "100"});
  ASSERT_EQ(sh("mkdir " + m.path("pids/a")), 0);
  const std::string procs = m.path("pids/a/cgroup.procs");
  // Runs `fn` in a child as uid/gid 65534 (nobody); returns its exit code.
  auto as_nobody = [](const std::function<int()>& fn) {
    pid_t pid = fork();
    if (pid == 0) {
      if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(100);
      _exit(fn());
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
  };
  // Not root: no mkdir in a root-owned cgroup, no opening its cgroup.procs.
  EXPECT_EQ(as_nobody([&] { return mkdir(m.path("pids/x").c_str(), 0755) == 0 ? 0 : errno; }),
            EACCES);
  EXPECT_EQ(as_nobody([&] { return open(procs.c_str(), O_WRONLY) >= 0 ? 0 : errno; }), EACCES);
  // Readable by all (allow_other).
  EXPECT_EQ(as_nobody([&] { return read_file(m.path("pids/a/tasks")) ? 0 : errno; }), 0);
  // A descriptor opened by root keeps root's credentials for its writes.
  int fd = open(procs.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  const std::string pid = std::to_string(sleeper.pid());
  EXPECT_EQ(as_nobody([&] {
              return write(fd, pid.data(), pid.size()) == static_cast<ssize_t>(pid.size()) ? 0 : errno;
            }),
            0);
  close(fd);
  EXPECT_EQ(cat(m.path("pids/a/cgroup.procs")), pid + "\n");
  // Delegation: once nobody owns the directory it may make cgroups in it.
  ASSERT_EQ(sh("chown 65534:65534 " + m.path("pids/a")), 0);
  struct stat st{};
  ASSERT_EQ(stat(m.path("pids/a").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(as_nobody([&] { return mkdir(m.path("pids/a/sub").c_str(), 0755) == 0 ? 0 : errno; }),
            0);
  ASSERT_EQ(stat(m.path("pids/a/sub").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(as_nobody([&] { return chown(m.path("pids/a").c_str(), 0, 0) == 0 ? 0 : errno; }),
            EPERM);
}

// Host mode (with the tracker's thread) and --sim alike.
class CgcorefsStop : public ::testing::TestWithParam<bool> {
 protected:
  std::vector<std::string> mode() const {
    return GetParam() ? std::vector<std::string>{"--sim"} : std::vector<std::string>{};
  }
};

TEST_P(CgcorefsStop, SignalsUnmountCleanly) {
  SKIP_WITHOUT_FUSE();
  // (SIGHUP upgrades: tests/fuse/restart_test.cc.)
  for (int sig : {SIGTERM, SIGINT}) {
    Mount m(mode());
    ASSERT_MOUNTED(m);
    std::optional<int> st = m.signal_and_wait(sig, 5s);
    ASSERT_TRUE(st) << "cgcorefs did not exit on signal " << sig;
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << *st << m.log();
    EXPECT_FALSE(m.mounted());
  }
}

TEST_P(CgcorefsStop, AnExternalUnmountEndsTheDaemon) {
  SKIP_WITHOUT_FUSE();
  for (const char* how : {"fusermount3 -u", "umount"}) {
    Mount m(mode());
    ASSERT_MOUNTED(m);
    ASSERT_EQ(sh(std::string(how) + " " + m.dir()), 0);
    std::optional<int> st = m.wait_exit(5s);
    // (Not while another mount namespace holds a copy of the mount: the
    // lock mount_namespace_copies in CMakeLists.txt.)
    ASSERT_TRUE(st) << "cgcorefs did not exit after " << how << ": " << m.log();
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << *st << m.log();
    EXPECT_FALSE(m.mounted());
  }
}

INSTANTIATE_TEST_SUITE_P(HostAndSim, CgcorefsStop, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? "Sim" : "Host";
                         });

TEST(CgcorefsHost, KilledDaemonLeavesNoStaleMount) {
  SKIP_WITHOUT_FUSE();
  Mount m({"--layout", "v2"});
  ASSERT_MOUNTED(m);
  const std::string dir = m.dir();
  ASSERT_TRUE(m.signal_and_wait(SIGKILL, 5s));
  struct stat st{};
  // The stale mount. Over io_uring (--transport=auto where enable_uring is
  // Y) the kernel tears the connection down only once the dead daemon's
  // rings are cancelled, asynchronously: a request in between ends with
  // ECONNABORTED, later ones with ENOTCONN.
  int err = 0;
  EXPECT_TRUE(eventually([&] {
    err = stat(dir.c_str(), &st) == 0 ? 0 : errno;
    return err == ENOTCONN;
  }, 2s)) << std::strerror(err);
  // A new daemon on it says how to clear it.
  std::string out;
  EXPECT_NE(sh(std::string(CGCOREFS_BINARY) + " --foreground --sim " + dir, &out), 0);
  EXPECT_NE(out.find("fusermount3 -u"), std::string::npos) << out;
  m.cleanup();
  EXPECT_NE(sh("grep -q ' " + dir + " ' /proc/self/mountinfo"), 0);
  EXPECT_NE(stat(dir.c_str(), &st), 0);  // removed too
}

// ------------------------------------------------------------ --sim

TEST(CgcorefsSim, VirtualTasksOnly) {
  SKIP_WITHOUT_FUSE();
  Mount m({"--sim", "--sim-tasks", "3", "--layout", "v2"});
  ASSERT_MOUNTED(m);
  EXPECT_EQ(cat(m.path("cgroup.procs")), "1\n2\n3\n");
  ASSERT_EQ(mkdir(m.path("a").c_str(), 0755), 0);
  ASSERT_EQ(sh("echo 2 > " + m.path("a/cgroup.procs")), 0);
  EXPECT_EQ(cat(m.path("a/cgroup.procs")), "2\n");
  EXPECT_EQ(cat(m.path(".cgcore/2/cgroup")), "0::/a\n");
  EXPECT_EQ(cat(m.path("a/cgroup.events")), "populated 1\nfrozen 0\n");
  // Real processes do not exist there.
  EXPECT_EQ(write_file(m.path("a/cgroup.procs"), std::to_string(getpid())), ESRCH);
  EXPECT_EQ(open(m.path((".cgcore/" + std::to_string(getpid()) + "/cgroup")).c_str(), O_RDONLY), -1);
  EXPECT_EQ(errno, ENOENT);
  std::string ls;
  ASSERT_EQ(sh("ls " + m.path(".cgcore"), &ls), 0);
  EXPECT_EQ(ls, "1\n2\n3\ncgroups\ndaemon\nself\n");
  // cgroup.kill ends virtual tasks; a poller hears of it.
  int fd = open(m.path("a/cgroup.events").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  char buf[128];
  ASSERT_GT(read(fd, buf, sizeof buf), 0);
  ASSERT_EQ(write_file(m.path("a/cgroup.kill"), "1"), 0);
  pollfd p{fd, POLLPRI, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1);
  EXPECT_TRUE(p.revents & POLLPRI);
  ssize_t n = pread(fd, buf, sizeof buf, 0);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)), "populated 0\nfrozen 0\n");
  close(fd);
  EXPECT_EQ(cat(m.path("cgroup.procs")), "1\n3\n");
  EXPECT_EQ(rmdir(m.path("a").c_str()), 0);
}

TEST(CgcorefsSim, NoStaleStateAnywhere) {
  SKIP_WITHOUT_FUSE();
  Mount m({"--sim", "--sim-tasks", "2"});
  ASSERT_MOUNTED(m);
  ASSERT_EQ(mkdir(m.path("pids/a").c_str(), 0755), 0);
  EXPECT_EQ(cat(m.path("pids/a/pids.max")), "max\n");
  // A read right after a write sees it, through the same descriptor too.
  int fd = open(m.path("pids/a/pids.max").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "5", 1), 1);
  char buf[64];
  ssize_t n = pread(fd, buf, sizeof buf, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n > 0 ? n : 0)), "5\n");
  close(fd);
  EXPECT_EQ(cat(m.path("pids/a/pids.max")), "5\n");
  // Two writes through one descriptor are two commands.
  fd = open(m.path("pids/a/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(write(fd, "1", 1), 1);
  EXPECT_EQ(write(fd, "2\n", 2), 2);
  close(fd);
  EXPECT_EQ(cat(m.path("pids/a/cgroup.procs")), "1\n2\n");
  EXPECT_EQ(cat(m.path("pids/a/pids.current")), "2\n");
  // Names appear and vanish at once.
  std::string ls;
  ASSERT_EQ(sh("echo 1 > " + m.path("pids/cgroup.procs") + " && echo 2 > " +
               m.path("pids/cgroup.procs") + " && rmdir " + m.path("pids/a") + " && mkdir " +
               m.path("pids/b") + " && ls " + m.path("pids"), &ls),
            0) << ls;
  EXPECT_EQ(ls.find("a\n"), std::string::npos);
  EXPECT_NE(ls.find("b\n"), std::string::npos);
  struct stat st{};
  EXPECT_EQ(stat(m.path("pids/a").c_str(), &st) == 0 ? 0 : errno, ENOENT);
  // Modes and owners, as chmod / chown left them.
  ASSERT_EQ(chmod(m.path("pids/b/cgroup.procs").c_str(), 0664), 0);
  ASSERT_EQ(stat(m.path("pids/b/cgroup.procs").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0664u);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  // `>` truncates before writing: accepted, as on cgroupfs.
  EXPECT_EQ(sh("echo 1 > " + m.path("pids/b/cgroup.procs")), 0);
  EXPECT_EQ(cat(m.path("pids/b/cgroup.procs")), "1\n");
}

TEST(CgcorefsSim, ConcurrentShellsKeepTheDaemonHealthy) {
  SKIP_WITHOUT_FUSE();
  Mount m({"--sim", "--sim-tasks", "16"});
  ASSERT_MOUNTED(m);
  // 8 shells at once, each making, filling, listing, emptying and removing
  // its own cgroups; directory listings race with their releases. The
  // daemon must answer everything and still exit 0 (checked by Mount).
  std::string script;
  for (int i = 1; i <= 8; ++i) {
    const std::string d = m.path("pids/s" + std::to_string(i));
    script += "( for n in 1 2 3 4 5 6 7 8 9 10; do mkdir " + d + " && echo " + std::to_string(i) +
              " > " + d + "/cgroup.procs && cat " + d + "/tasks " + m.path("pids/cgroup.procs") +
              " > /dev/null && ls " + m.path("pids") + " " + m.path(".cgcore") + " > /dev/null && echo " +
              std::to_string(i) + " > " + m.path("pids/cgroup.procs") + " && rmdir " + d +
              " || exit 1; done ) & ";
  }
  script += "fail=0; for j in $(jobs -p); do wait $j || fail=1; done; exit $fail";
  std::string out;
  EXPECT_EQ(sh(script, &out), 0) << out;
  EXPECT_EQ(pids_of(cat(m.path("pids/cgroup.procs"))).size(), 16u);  // all back in the root
  EXPECT_TRUE(m.mounted());
}

TEST(CgcorefsSim, LargeReadsWithOffsets) {
  SKIP_WITHOUT_FUSE();
  constexpr int kTasks = 100000;
  Mount m({"--sim", "--sim-tasks", std::to_string(kTasks), "--layout", "v2"});
  ASSERT_MOUNTED(m);
  std::string expected;
  for (int i = 1; i <= kTasks; ++i) expected += std::to_string(i) + "\n";
  // Whole-file reads in 64 KiB pieces.
  EXPECT_EQ(cat(m.path("cgroup.procs")), expected);
  // Small pieces at explicit offsets, and a read from the middle.
  int fd = open(m.path("cgroup.procs").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::string text;
  char buf[4000];
  for (;;) {
    ssize_t n = pread(fd, buf, sizeof buf, static_cast<off_t>(text.size()));
    ASSERT_GE(n, 0);
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(text, expected);
  ssize_t n = pread(fd, buf, 12, 300000);
  ASSERT_EQ(n, 12);
  EXPECT_EQ(std::string(buf, 12), expected.substr(300000, 12));
  close(fd);
  std::string out;
  ASSERT_EQ(sh("wc -l < " + m.path("cgroup.threads"), &out), 0);
  EXPECT_EQ(out, std::to_string(kTasks) + "\n");
  // .cgcore lists every process.
  ASSERT_EQ(sh("ls " + m.path(".cgcore") + " | wc -l", &out), 0);
  EXPECT_EQ(out, std::to_string(kTasks + 3) + "\n");  // and cgroups, daemon, self
}

TEST(CgcorefsSim, BackgroundStartReturnsOnceMounted) {
  SKIP_WITHOUT_FUSE();
  char tmpl[] = "/tmp/cgcorefs-test.XXXXXX";
  ASSERT_TRUE(mkdtemp(tmpl));
  const std::string dir = tmpl;
  struct Guard {  // the daemon is not our child: unmounting ends it
    std::string dir;
    ~Guard() {
      sh("fusermount3 -u " + dir + " 2>/dev/null || umount -l " + dir + " 2>/dev/null");
      rmdir(dir.c_str());
      sh("rm -rf " + dir + ".run");
    }
  } guard{dir};
  // Its log goes there, not to /run.
  ASSERT_EQ(::mkdir((dir + ".run").c_str(), 0700), 0);
  std::string out;
  ASSERT_EQ(sh("XDG_RUNTIME_DIR=" + dir + ".run " + CGCOREFS_BINARY + " --sim --layout v2 " + dir, &out), 0) << out;
  // Mounted by the time the command returned.
  EXPECT_EQ(cat(dir + "/cgroup.procs"), "1\n");
  ASSERT_EQ(sh("fusermount3 -u " + dir), 0);
  EXPECT_NE(sh("grep -q ' " + dir + " ' /proc/self/mountinfo"), 0);
  EXPECT_TRUE(eventually([&] { return sh("pgrep -f 'cgcorefs --sim --layout v2 " + dir + "$' >/dev/null") != 0; }));
}

TEST(CgcorefsSim, UsageErrors) {
  std::string out;
  EXPECT_EQ(sh(std::string(CGCOREFS_BINARY) + " 2>&1", &out), 2);
  EXPECT_NE(out.find("--help"), std::string::npos) << out;
  EXPECT_EQ(sh(std::string(CGCOREFS_BINARY) + " --bogus /tmp 2>&1", &out), 2);
  SKIP_WITHOUT_FUSE();
  char tmpl[] = "/tmp/cgcorefs-test.XXXXXX";
  ASSERT_TRUE(mkdtemp(tmpl));
  EXPECT_EQ(sh(std::string(CGCOREFS_BINARY) + " --foreground --sim --layout nonsense, " + tmpl,
               &out),
            1);
  EXPECT_NE(out.find("layout"), std::string::npos) << out;
  rmdir(tmpl);
}

}  // namespace
}  // namespace cgcore::fuse::testing
