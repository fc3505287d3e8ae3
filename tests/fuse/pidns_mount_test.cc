// Pid namespaces against a cgcorefs mount with real processes: a process
// that is pid 1 of a new pid namespace (unshare(CLONE_NEWPID), then fork,
// as `unshare --pid --fork` does) writes and reads the mount's pid files,
// and everything it names is its own namespace's, as on the kernel's
// cgroupfs (checked there in tests/fs/kernel_files_test.cc's host replay
// and docs/compatibility.md).
//
// Skipped (with the reason) where FUSE cannot be mounted or a pid namespace
// cannot be made.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/fuse/mount_harness.h"

namespace cgcore::fuse::testing {
namespace {

// The ids of /proc/PID/status's NSpid line (empty if gone).
std::vector<long> nspid(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::vector<long> out;
  for (std::string line; std::getline(in, line);)
    if (line.rfind("NSpid:", 0) == 0) {
      std::istringstream f(line.substr(6));
      for (long v; f >> v;) out.push_back(v);
    }
  return out;
}

// One write(2) of `text`: "ok" or the errno's name.
std::string try_write(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return std::string("open: ") + std::strerror(errno);
  const ssize_t n = ::write(fd, text.data(), text.size());
  const int err = errno;
  ::close(fd);
  if (n < 0) return err == ESRCH ? "ESRCH" : std::strerror(err);
  return "ok";
}

std::string slurp(const std::string& path) {
  std::optional<std::string> s = read_file(path);
  return s ? *s : std::string("error: ") + std::strerror(errno);
}

std::vector<long> sorted(std::vector<long> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// Runs `inside` as pid 1 of a new pid namespace while the calling test
// waits; `inside` returns lines of results, which the test gets back, and
// the namespace lives on (its init blocked) until `outside` has run. The
// namespace's processes die with its init at the end. Returns nullopt if no
// pid namespace could be made (errno in *err).
std::optional<std::string> with_child_pid_namespace(const std::function<std::string()>& inside,
                                                    const std::function<void()>& outside,
                                                    int* err) {
  int results[2], go[2];
  if (pipe2(results, O_CLOEXEC) != 0 || pipe2(go, O_CLOEXEC) != 0) {
    *err = errno;
    return std::nullopt;
  }
  const pid_t c = fork();
  if (c == 0) {
    ::close(results[0]);
    ::close(go[1]);
    if (unshare(CLONE_NEWPID) != 0) {
      const std::string msg = "unshare " + std::to_string(errno);
      (void)!::write(results[1], msg.data(), msg.size());
      _exit(1);
    }
    const pid_t g = fork();
    if (g == 0) {
      // Processes `inside` forks inherit the pipe: the end is marked.
      std::string out = inside() + "END\n";
      (void)!::write(results[1], out.data(), out.size());
      ::close(results[1]);
      char b;
      (void)!::read(go[0], &b, 1);  // until the test closes it
      _exit(0);
    }
    ::close(results[1]);
    ::close(go[0]);
    int status = 0;
    waitpid(g, &status, 0);
    _exit(0);
  }
  ::close(results[1]);
  ::close(go[0]);
  std::string out;
  char buf[4096];
  for (ssize_t n; out.find("END\n") == std::string::npos &&
                 (n = ::read(results[0], buf, sizeof buf)) > 0;)
    out.append(buf, static_cast<size_t>(n));
  ::close(results[0]);
  if (out.rfind("unshare ", 0) == 0) {
    *err = std::atoi(out.c_str() + 8);
    ::close(go[1]);
    waitpid(c, nullptr, 0);
    return std::nullopt;
  }
  outside();
  ::close(go[1]);
  waitpid(c, nullptr, 0);
  return out;
}

TEST(CgcorefsPidNamespace, PidsAreTheWritersAndReadersNamespaces) {
  SKIP_WITHOUT_FUSE();
  Mount m({"--layout", "hybrid"});
  ASSERT_TRUE(m.ok()) << m.error();
  Proc sleeper({"/bin/sleep", "100"});
  const std::string sp = std::to_string(sleeper.pid());
  for (const char* d : {"unified/a", "unified/b", "pids/a"}) ASSERT_EQ(sh("mkdir " + m.path(d)), 0) << d;
  ASSERT_EQ(write_file(m.path("unified/a/cgroup.procs"), sp), 0);
  ASSERT_EQ(write_file(m.path("pids/a/cgroup.procs"), sp), 0);

  auto inside = [&]() -> std::string {
    std::string out;
    char link[64] = {};
    const ssize_t n = ::readlink(m.path(".cgcore/self").c_str(), link, sizeof link - 1);
    out += "self " + std::string(n > 0 ? std::string(link, static_cast<size_t>(n)) : "?") + "\n";
    // "1" is this namespace's init: this process, never the host's init.
    out += "write1 " + try_write(m.path("unified/a/cgroup.procs"), "1") + "\n";
    // The host's sleeper has no name here.
    out += "writehost " + try_write(m.path("unified/b/cgroup.procs"), sp) + "\n";
    std::string procs = slurp(m.path("unified/a/cgroup.procs"));
    std::replace(procs.begin(), procs.end(), '\n', ' ');
    out += "v2procs " + procs + "\n";
    out += "write0 " + try_write(m.path("pids/a/cgroup.procs"), "0") + "\n";
    std::string tasks = slurp(m.path("pids/a/tasks"));
    std::replace(tasks.begin(), tasks.end(), '\n', ' ');
    out += "v1tasks " + tasks + "\n";
    // A child: pid 2 here.
    const pid_t child = fork();
    if (child == 0) {
      pause();
      _exit(0);
    }
    out += "child " + std::to_string(child) + "\n";
    out += "write2 " + try_write(m.path("unified/b/cgroup.procs"), std::to_string(child)) + "\n";
    return out;
  };
  std::string host_a, host_b, host_root;
  std::map<long, std::vector<long>> chains;  // NSpid of what a and b hold, while they live
  auto outside = [&] {
    host_a = slurp(m.path("unified/a/cgroup.procs"));
    host_b = slurp(m.path("unified/b/cgroup.procs"));
    host_root = slurp(m.path("unified/cgroup.procs"));
    for (const std::string* t : {&host_a, &host_b})
      for (long p : pids_of(*t)) chains[p] = nspid(p);
  };
  int err = 0;
  std::optional<std::string> out = with_child_pid_namespace(inside, outside, &err);
  if (!out) GTEST_SKIP() << "cannot make a pid namespace: " << std::strerror(err);

  std::istringstream lines(*out);
  std::map<std::string, std::string> got;
  for (std::string line; std::getline(lines, line);) {
    const size_t sp_at = line.find(' ');
    got[line.substr(0, sp_at)] = sp_at == std::string::npos ? "" : line.substr(sp_at + 1);
  }
  EXPECT_EQ(got["self"], "1") << *out;
  EXPECT_EQ(got["write1"], "ok") << *out;
  EXPECT_EQ(got["writehost"], "ESRCH") << *out;
  // The sleeper is invisible here: v2 shows it as 0, as the kernel does.
  EXPECT_EQ(sorted(pids_of(got["v2procs"])), (std::vector<long>{0, 1})) << *out;
  EXPECT_EQ(got["write0"], "ok") << *out;
  // v1 leaves it out.
  EXPECT_EQ(pids_of(got["v1tasks"]), (std::vector<long>{1})) << *out;
  EXPECT_EQ(got["child"], "2") << *out;
  EXPECT_EQ(got["write2"], "ok") << *out;

  // From the host: a holds the sleeper and the namespace's init (a host pid
  // whose innermost id is 1), not the host's init; b holds the child.
  std::vector<long> a = pids_of(host_a);
  EXPECT_TRUE(contains_pid(host_a, sleeper.pid())) << host_a;
  EXPECT_FALSE(contains_pid(host_a, 1)) << host_a;
  ASSERT_EQ(a.size(), 2u) << host_a;
  const long init = a[0] == sleeper.pid() ? a[1] : a[0];
  ASSERT_GE(chains[init].size(), 2u);
  EXPECT_EQ(chains[init].back(), 1);
  std::vector<long> b = pids_of(host_b);
  ASSERT_EQ(b.size(), 1u) << host_b;
  ASSERT_GE(chains[b[0]].size(), 2u);
  EXPECT_EQ(chains[b[0]].back(), 2);
  EXPECT_TRUE(contains_pid(host_root, 1)) << "the host's init stays in the root";
}

// A descriptor the host opened, used inside the namespace (inherited across
// the fork): its writes and reads name pids in the namespace of the process
// making them, not of the opener.
TEST(CgcorefsPidNamespace, AnInheritedDescriptorUsesTheRequestersNamespace) {
  SKIP_WITHOUT_FUSE();
  Mount m({"--layout", "v2"});
  ASSERT_TRUE(m.ok()) << m.error();
  Proc sleeper({"/bin/sleep", "100"});
  ASSERT_EQ(sh("mkdir " + m.path("a")), 0);
  ASSERT_EQ(write_file(m.path("a/cgroup.procs"), std::to_string(sleeper.pid())), 0);
  const int fd = ::open(m.path("a/cgroup.procs").c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  auto inside = [&]() -> std::string {
    std::string out;
    out += std::string("write1 ") + (::pwrite(fd, "1", 1, 0) == 1 ? "ok" : std::strerror(errno)) + "\n";
    char buf[256] = {};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    std::string procs(buf, n > 0 ? static_cast<size_t>(n) : 0);
    std::replace(procs.begin(), procs.end(), '\n', ' ');
    out += "procs " + procs + "\n";
    return out;
  };
  std::string host_a;
  auto outside = [&] { host_a = slurp(m.path("a/cgroup.procs")); };
  int err = 0;
  std::optional<std::string> out = with_child_pid_namespace(inside, outside, &err);
  ::close(fd);
  if (!out) GTEST_SKIP() << "cannot make a pid namespace: " << std::strerror(err);
  EXPECT_NE(out->find("write1 ok\n"), std::string::npos) << *out;
  // The namespace's init (1) and the sleeper it cannot see (0).
  const size_t at = out->find("procs ");
  ASSERT_NE(at, std::string::npos) << *out;
  EXPECT_EQ(sorted(pids_of(out->substr(at + 6, out->find('\n', at) - at - 6))), (std::vector<long>{0, 1}))
      << *out;
  EXPECT_FALSE(contains_pid(host_a, 1)) << "the host's init was moved: " << host_a;
  EXPECT_EQ(pids_of(host_a).size(), 2u) << host_a;
}

}  // namespace
}  // namespace cgcore::fuse::testing
