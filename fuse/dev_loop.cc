#define FUSE_USE_VERSION 314
#include "fuse/dev_loop.h"

#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <system_error>

namespace cgcore::fuse {

namespace {

// run()'s look for a held-up leader, while requests come; and how many
// looks without a new request end that.
constexpr int kTickMs = 2;
constexpr int kQuietTicks = 500;
// A pause after which the leader checks where its requester runs.
constexpr int64_t kPauseNs = 1'000'000;

int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// The CPU task `tid` last ran on (field 39 of /proc/TID/stat), or -1.
int last_cpu_of(uint32_t tid) {
  char path[32];
  std::snprintf(path, sizeof path, "/proc/%u/stat", tid);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[1024];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  // The name (field 2) may hold spaces and parentheses: count from its end.
  const char* p = std::strrchr(buf, ')');
  if (!p) return -1;
  int field = 2;
  for (; *p; ++p)
    if (*p == ' ' && ++field == 39) return std::atoi(p + 1);
  return -1;
}

// Starts a thread that takes no signal (the thread in run() does).
std::thread start_blocking_signals(auto fn) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  std::thread t;
  try {
    t = std::thread(std::move(fn));
  } catch (const std::system_error&) {
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return t;
}

}  // namespace

int make_blocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return errno;
  if ((flags & O_NONBLOCK) && ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) return errno;
  return 0;
}

DevLoop::DevLoop(fuse_session* se, int fd, int max_threads)
    : se_(se), fd_(fd), max_threads_(max_threads < 1 ? 1 : max_threads) {
  sem_init(&finished_, 0, 0);
}

DevLoop::~DevLoop() {
  sem_destroy(&finished_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

void DevLoop::end(int err) {
  if (err != 0) {
    int none = 0;
    error_.compare_exchange_strong(none, -err);
  }
  fuse_session_exit(se_);
  sem_post(&finished_);
}

void DevLoop::follow(const void* mem) {
  fuse_in_header h;
  std::memcpy(&h, mem, sizeof h);
  if (h.pid == 0) return;  // a requester the connection's namespace cannot name
  const int cpu = last_cpu_of(h.pid);
  if (cpu < 0 || cpu >= CPU_SETSIZE || cpu == leader_cpu_) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  // A CPU this server may not use (a cpuset) leaves the leader where it is.
  if (sched_setaffinity(0, sizeof set, &set) == 0) leader_cpu_ = cpu;
}

int DevLoop::serve_one(void** mem, bool leader) {
  fuse_buf buf{};
  buf.mem = *mem;
  const int got = fuse_session_receive_buf(se_, &buf);
  *mem = buf.mem;  // allocated by the first read, kept for the next
  if (got == -EAGAIN || got == -EINTR) return 0;
  if (got <= 0) {
    // 0: the connection ended (unmount, abort), or the session exited.
    end(got < 0 ? -got : 0);
    return -1;
  }
  if (leader) {
    const uint64_t n = served_.fetch_add(1, std::memory_order_relaxed) + 1;
    const int64_t now = now_ns();
    if (n % kFollowEvery == 1 || now - last_request_ns_ > kPauseNs) follow(buf.mem);
    last_request_ns_ = now;
  } else {
    helped_.fetch_add(1, std::memory_order_relaxed);
  }
  fuse_session_process_buf(se_, &buf);
  return 1;
}

void DevLoop::leader_main() {
  void* mem = nullptr;
  for (;;) {
    pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    const int n = ::poll(fds, 2, -1);
    if (stopping_.load() || fuse_session_exited(se_)) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      end(errno);
      break;
    }
    if (serve_one(&mem, true) < 0) break;
  }
  std::free(mem);
}

void DevLoop::helper_main() {
  void* mem = nullptr;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    ++idle_helpers_;
    wake_helpers_.wait(lock, [&] { return calls_ > 0 || stopping_.load(); });
    --idle_helpers_;
    if (stopping_.load()) break;
    --calls_;
    lock.unlock();
    int r;
    while ((r = serve_one(&mem, false)) > 0 && !stopping_.load()) {
    }
    lock.lock();
    if (r < 0) break;
  }
  lock.unlock();
  std::free(mem);
}

void DevLoop::look_for_stalls() {
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN)) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_.load()) return;
  if (idle_helpers_ == 0 && 1 + static_cast<int>(helpers_.size()) < max_threads_) {
    std::thread t = start_blocking_signals([this] { helper_main(); });
    if (t.joinable()) helpers_.push_back(std::move(t));
  }
  ++calls_;
  wake_helpers_.notify_one();
}

int DevLoop::run() {
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (stop_fd_ < 0) return -errno;
  const int flags = ::fcntl(fd_, F_GETFL);
  if (flags < 0 || ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK) != 0) return -errno;
  leader_ = start_blocking_signals([this] { leader_main(); });
  if (!leader_.joinable()) {
    (void)make_blocking(fd_);
    return -EAGAIN;
  }

  // A signal's handler exits the session and interrupts this wait; a
  // server thread that sees the connection end posts. While requests come
  // the wait is a tick, for look_for_stalls; the timeout of a quiet wait
  // also covers a signal that lands between the check and the wait.
  auto requests = [this] { return served_.load() + helped_.load(); };
  uint64_t seen = requests();
  int quiet = kQuietTicks;
  while (!fuse_session_exited(se_)) {
    timespec until{};
    clock_gettime(CLOCK_REALTIME, &until);
    if (quiet < kQuietTicks) {
      until.tv_nsec += kTickMs * 1'000'000L;
      if (until.tv_nsec >= 1'000'000'000L) {
        until.tv_nsec -= 1'000'000'000L;
        ++until.tv_sec;
      }
    } else {
      until.tv_sec += 1;
    }
    (void)sem_timedwait(&finished_, &until);
    const uint64_t now = requests();
    quiet = now != seen ? 0 : std::min(quiet + 1, kQuietTicks);
    seen = now;
    // Also when quiet: a leader held up since before the quiet began.
    look_for_stalls();
  }

  stopping_.store(true);
  const uint64_t one = 1;
  (void)!::write(stop_fd_, &one, sizeof one);
  leader_.join();
  std::vector<std::thread> helpers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    wake_helpers_.notify_all();
    helpers.swap(helpers_);  // none starts once stopping_ is seen under mu_
  }
  for (std::thread& t : helpers) t.join();
  (void)make_blocking(fd_);
  return error_.load();
}

}  // namespace cgcore::fuse
