// The /dev/fuse loop (fuse/dev_loop.h) as the mount's users see it: its
// leader moves to the CPU its requester runs on, and a request still gets
// an answer while the leader is held up.
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/fuse/mount_harness.h"

namespace cgcore::fuse::testing {
namespace {

using namespace std::chrono_literals;

// The ids of the threads of `pid` whose allowed CPUs are exactly {cpu}.
std::vector<pid_t> threads_pinned_to(pid_t pid, int cpu) {
  std::vector<pid_t> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream status(dir + "/" + e->d_name + "/status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind("Cpus_allowed_list:", 0) == 0 &&
          line.substr(line.find_first_not_of(" \t", 18)) == std::to_string(cpu))
        out.push_back(static_cast<pid_t>(std::stol(e->d_name)));
  }
  closedir(d);
  return out;
}

// Two CPUs this test may run on, or fewer.
std::vector<int> usable_cpus() {
  cpu_set_t set;
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE && cpus.size() < 2; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

// Runs `fn` on a thread pinned to `cpu`.
template <typename Fn>
auto on_cpu(int cpu, Fn fn) {
  return std::async(std::launch::async, [cpu, fn] {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    EXPECT_EQ(sched_setaffinity(0, sizeof set, &set), 0);
    return fn();
  }).get();
}

// n fsync(2)s of a file of the mount (one FUSE request each).
bool fsyncs(const std::string& path, int n) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = true;
  for (int i = 0; i < n && ok; ++i) ok = fsync(fd) == 0;
  close(fd);
  return ok;
}

TEST(CgcorefsDevLoop, TheLeaderMovesToTheRequestersCpu) {
  SKIP_WITHOUT_FUSE();
  const std::vector<int> cpus = usable_cpus();
  if (cpus.size() < 2) GTEST_SKIP() << "fewer than two CPUs to move between";
  Mount m({"--sim", "--transport=dev"});
  ASSERT_MOUNTED(m);
  const pid_t server = m.server_pid();
  ASSERT_GT(server, 0);
  for (int round = 0; round < 2; ++round)
    for (int cpu : cpus) {
      // After a pause the first request moves the leader.
      std::this_thread::sleep_for(5ms);
      ASSERT_TRUE(on_cpu(cpu, [&] { return fsyncs(m.path("pids/cgroup.procs"), 20); }));
      EXPECT_EQ(threads_pinned_to(server, cpu).size(), 1u) << "no server thread pinned to CPU " << cpu;
      for (int other : cpus)
        if (other != cpu) EXPECT_TRUE(threads_pinned_to(server, other).empty());
    }
}

TEST(CgcorefsDevLoop, RequestsAreAnsweredWhileTheLeaderIsStopped) {
  SKIP_WITHOUT_FUSE();
  const std::vector<int> cpus = usable_cpus();
  Mount m({"--sim", "--transport=dev"});
  ASSERT_MOUNTED(m);
  const pid_t server = m.server_pid();
  ASSERT_GT(server, 0);
  ASSERT_TRUE(on_cpu(cpus.at(0), [&] { return fsyncs(m.path("pids/cgroup.procs"), 5); }));
  const std::vector<pid_t> leader = threads_pinned_to(server, cpus.at(0));
  ASSERT_EQ(leader.size(), 1u);
  // Stops the leader thread alone (the rest of the server runs on).
  ASSERT_EQ(ptrace(PTRACE_SEIZE, leader[0], nullptr, nullptr), 0) << strerror(errno);
  ASSERT_EQ(ptrace(PTRACE_INTERRUPT, leader[0], nullptr, nullptr), 0) << strerror(errno);
  int status = 0;
  ASSERT_EQ(waitpid(leader[0], &status, __WALL), leader[0]);
  ASSERT_TRUE(WIFSTOPPED(status));
  // Helpers answer, within the second-long look of a quiet server.
  auto answered = std::async(std::launch::async, [&] {
    std::ifstream in(m.path("pids/cgroup.procs"));
    std::string first;
    return static_cast<bool>(std::getline(in, first)) && first == "1";
  });
  const bool in_time = answered.wait_for(10s) == std::future_status::ready;
  EXPECT_TRUE(in_time) << "no answer while the leader was stopped";
  EXPECT_TRUE(fsyncs(m.path("pids/cgroup.procs"), 50));
  ASSERT_EQ(ptrace(PTRACE_DETACH, leader[0], nullptr, nullptr), 0) << strerror(errno);
  if (in_time) EXPECT_TRUE(answered.get());
  // The leader serves again.
  EXPECT_TRUE(on_cpu(cpus.at(0), [&] { return fsyncs(m.path("pids/cgroup.procs"), 20); }));
}

}  // namespace
}  // namespace cgcore::fuse::testing
