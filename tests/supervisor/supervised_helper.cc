// What the supervisor tests run under cgexec. Each mode prints one line of
// results on stdout and exits 0 unless something unexpected happened.
//
//   bomb SECONDS      every process keeps forking (each child too, at most
//                     kMaxChildren each, kMaxDepth deep) until SECONDS pass;
//                     prints "forked N refused M" for the first process
//   threads N         starts N threads that sleep 200 ms; "started N refused M"
//   mmap BYTES        one anonymous mmap; "ok" or "ENOMEM"
//   malloc BYTES      one malloc (touched); "ok" or "ENOMEM"
//   mmap_loop N BYTES N times mmap + munmap; "ok" or the errno and when
//   affinity CPUS     sched_setaffinity to the CPUs (comma list); prints the
//                     result errno name and the affinity afterwards
//   cgroup MOUNT      prints MOUNT/.cgcore/self/cgroup, read first thing
//   child_cgroup MOUNT  the same, from a child forked at once
//   fork_exit N       forks N children that exit at once, waiting for each
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kMaxChildren = 6;
constexpr int kMaxDepth = 3;

const char* err_name(int e) {
  switch (e) {
    case 0: return "OK";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EINVAL: return "EINVAL";
    case EPERM: return "EPERM";
    default: return "OTHER";
  }
}

int bomb(double seconds) {
  using Clock = std::chrono::steady_clock;
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  int depth = 0, forked = 0, refused = 0;
  std::vector<pid_t> kids;
  while (Clock::now() < end) {
    if (depth < kMaxDepth && static_cast<int>(kids.size()) < kMaxChildren) {
      const pid_t p = ::fork();
      if (p == 0) {
        ++depth;
        kids.clear();
        forked = refused = 0;
        continue;
      }
      if (p > 0) {
        kids.push_back(p);
        ++forked;
      } else {
        ++refused;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  for (pid_t k : kids) ::waitpid(k, nullptr, 0);
  if (depth > 0) ::_exit(0);
  std::printf("forked %d refused %d\n", forked, refused);
  return 0;
}

// Every thread lives until all `n` have been tried, so the started ones are
// all alive at once however slowly the machine makes them.
int threads(int n) {
  std::vector<std::thread> ts;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  int refused = 0;
  for (int i = 0; i < n; ++i) {
    try {
      ts.emplace_back([&] {
        std::unique_lock<std::mutex> l(mu);
        cv.wait(l, [&] { return done; });
      });
    } catch (const std::system_error&) {
      ++refused;
    }
  }
  {
    std::lock_guard<std::mutex> l(mu);
    done = true;
  }
  cv.notify_all();
  for (auto& t : ts) t.join();
  std::printf("started %zu refused %d\n", ts.size(), refused);
  return 0;
}

int do_mmap(size_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  std::printf("%s\n", p == MAP_FAILED ? err_name(errno) : "ok");
  return 0;
}

// `n` times mmap + munmap of `bytes`: unmapping gives the size back.
int mmap_loop(int n, size_t bytes) {
  for (int i = 0; i < n; ++i) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      std::printf("%s at %d\n", err_name(errno), i);
      return 0;
    }
    ::munmap(p, bytes);
  }
  std::printf("ok\n");
  return 0;
}

int do_malloc(size_t bytes) {
  // Through a volatile pointer: the compiler may not elide the allocation.
  char* volatile p = static_cast<char*>(std::malloc(bytes));
  if (p) std::memset(p, 1, 4096);
  std::printf("%s\n", p ? "ok" : "ENOMEM");
  std::free(p);
  return 0;
}

int affinity(const std::string& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::stringstream in(cpus);
  std::string c;
  while (std::getline(in, c, ',')) CPU_SET(std::atoi(c.c_str()), &set);
  const int rc = ::sched_setaffinity(0, sizeof set, &set);
  const int e = rc == 0 ? 0 : errno;
  cpu_set_t now;
  CPU_ZERO(&now);
  ::sched_getaffinity(0, sizeof now, &now);
  std::string got;
  for (int i = 0; i < CPU_SETSIZE; ++i)
    if (CPU_ISSET(i, &now)) got += (got.empty() ? "" : ",") + std::to_string(i);
  std::printf("%s %s\n", err_name(e), got.c_str());
  return 0;
}

int self_cgroup(const std::string& mount) {
  std::ifstream in(mount + "/.cgcore/self/cgroup");
  std::cout << in.rdbuf();
  return 0;
}

// A child forked now reads its own cgroups before doing anything else.
int child_cgroup(const std::string& mount) {
  const pid_t p = ::fork();
  if (p == 0) {
    self_cgroup(mount);
    std::cout.flush();
    ::_exit(0);
  }
  if (p < 0) return 1;
  ::waitpid(p, nullptr, 0);
  return 0;
}

int fork_exit(int n) {
  for (int i = 0; i < n; ++i) {
    const pid_t p = ::fork();
    if (p == 0) ::_exit(0);
    if (p < 0) return 1;
    ::waitpid(p, nullptr, 0);
  }
  std::printf("ok\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  const std::string mode = argv[1], arg = argv[2];
  if (mode == "bomb") return bomb(std::atof(arg.c_str()));
  if (mode == "threads") return threads(std::atoi(arg.c_str()));
  if (mode == "mmap") return do_mmap(std::strtoull(arg.c_str(), nullptr, 0));
  if (mode == "mmap_loop" && argc == 4) return mmap_loop(std::atoi(arg.c_str()), std::strtoull(argv[3], nullptr, 0));
  if (mode == "malloc") return do_malloc(std::strtoull(arg.c_str(), nullptr, 0));
  if (mode == "affinity") return affinity(arg);
  if (mode == "cgroup") return self_cgroup(arg);
  if (mode == "child_cgroup") return child_cgroup(arg);
  if (mode == "fork_exit") return fork_exit(std::atoi(arg.c_str()));
  return 2;
}
