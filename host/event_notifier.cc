#include "host/event_notifier.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace cgcore::host {

namespace {

// The signal that ends a blocked eventfd write (see the header).
int guard_signal() { return SIGRTMIN + 4; }
void ignore_guard(int) {}

constexpr long kGuardNs = 50'000'000;

// A descriptor of `pidfd`'s thread, copied into this process (close-on-exec).
Result<int> copy_fd(int pidfd, int fd) {
  if (fd < 0) return Status::Error(EBADF, "descriptor " + std::to_string(fd) + " is not open");
  const int got = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, fd, 0));
  if (got >= 0) return got;
  const int err = errno;
  return Status::Error(err, "descriptor " + std::to_string(fd) + " of the writer: " + std::strerror(err));
}

// What /proc/TASK/fd/FD (or /proc/self/fd/FD) links to: ENOENT (-> EBADF)
// when the descriptor is not open. Reading the link opens nothing.
Result<std::string> fd_target(const std::string& link_path) {
  char link[128];
  const ssize_t n = ::readlink(link_path.c_str(), link, sizeof link);
  if (n < 0) return Status::Error(errno == ENOENT ? EBADF : errno, "the descriptor is not open");
  return std::string(link, static_cast<size_t>(n));
}

bool names_eventfd(const Result<std::string>& target) {
  return target.ok() && target.value() == "anon_inode:[eventfd]";
}

}  // namespace

// One taken eventfd; closed when the last sink and queued signal let go.
struct EventNotifier::Fd {
  explicit Fd(int f) : fd(f) {}
  ~Fd() { ::close(fd); }
  const int fd;
};

class EventNotifier::Sink final : public EventSink {
 public:
  Sink(std::shared_ptr<Queue> queue, std::shared_ptr<Fd> fd) : queue_(std::move(queue)), fd_(std::move(fd)) {}
  void signal() noexcept override { queue_->post(fd_); }

 private:
  const std::shared_ptr<Queue> queue_;
  const std::shared_ptr<Fd> fd_;
};

EventNotifier::~EventNotifier() {
  {
    std::lock_guard<std::mutex> l(queue_->mu);
    queue_->stopping = true;
    queue_->fds.clear();
  }
  queue_->cv.notify_all();
  if (thread_.joinable()) thread_.join();
}

// No descriptor that may be a FUSE file is ever opened or closed here: a
// close of one of our own files would wait for this daemon's FLUSH reply,
// and enough such writes at once would hold every request thread. So the
// eventfd is checked by its /proc link before it is copied (and again after,
// since the writer's other threads may change the table meanwhile; a copy
// that is no eventfd is closed by the notifier thread), and the control file
// is looked at through /proc/TID/fd (a magic link: no open, and cached
// attributes: no request).
Result<fs::Backend::EventFds> EventNotifier::take(Pid tid, int efd, int cfd) {
  const std::string task = "/proc/" + std::to_string(tid) + "/fd/";
  if (efd < 0) return Status::Error(EBADF, "descriptor " + std::to_string(efd) + " is not open");
  Result<std::string> target = fd_target(task + std::to_string(efd));
  if (!target.ok()) return target.status();
  if (!names_eventfd(target))
    return Status::Error(EINVAL, "descriptor " + std::to_string(efd) + " is not an eventfd");
  if (cfd < 0) return Status::Error(EBADF, "descriptor " + std::to_string(cfd) + " is not open");
  struct statx stx{};
  const std::string control = task + std::to_string(cfd);
  if (::statx(AT_FDCWD, control.c_str(), AT_STATX_DONT_SYNC, STATX_TYPE | STATX_INO, &stx) != 0) {
    const int err = errno;
    if (err == ENOENT) return Status::Error(EBADF, "descriptor " + std::to_string(cfd) + " is not open");
    return Status::Error(EINVAL, "the control file cannot be identified: " + std::string(std::strerror(err)));
  }
  {
    std::lock_guard<std::mutex> l(start_mu_);
    if (Status st = start_locked(); !st.ok()) return st;
  }
  // PIDFD_THREAD (O_EXCL): the writer is a thread; its descriptor table is
  // the one the numbers name.
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, tid, O_EXCL));
  if (pidfd < 0) pidfd = static_cast<int>(::syscall(SYS_pidfd_open, tid, 0));
  if (pidfd < 0) return Status::Error(EBADF, "the writer's descriptors cannot be reached");
  Result<int> e = copy_fd(pidfd, efd);
  ::close(pidfd);
  if (!e.ok()) return e.status();
  auto event = std::make_shared<Fd>(*e);
  if (!names_eventfd(fd_target("/proc/self/fd/" + std::to_string(event->fd)))) {
    queue_->post(std::move(event), /*close_only=*/true);
    return Status::Error(EINVAL, "descriptor " + std::to_string(efd) + " is not an eventfd");
  }
  fs::Backend::EventFds out;
  out.sink = std::make_unique<Sink>(queue_, std::move(event));
  out.control_dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
  out.control_ino = stx.stx_ino;
  out.control_regular = S_ISREG(stx.stx_mode);
  return out;
}

void EventNotifier::Queue::post(std::shared_ptr<Fd> fd, bool close_only) {
  {
    std::lock_guard<std::mutex> l(mu);
    if (stopping) return;
    fds.push_back({std::move(fd), close_only});
  }
  cv.notify_one();
}

Status EventNotifier::start_locked() {
  if (thread_.joinable()) return Status::Ok();
  struct sigaction sa{};
  sa.sa_handler = ignore_guard;  // no SA_RESTART: a blocked write returns EINTR
  sigemptyset(&sa.sa_mask);
  if (::sigaction(guard_signal(), &sa, nullptr) != 0)
    return Status::Error(ENOMEM, "the event notifier's signal cannot be set up");
  try {
    thread_ = std::thread(run, queue_);
  } catch (const std::system_error&) {
    return Status::Error(ENOMEM, "the event notifier cannot start");
  }
  return Status::Ok();
}

void EventNotifier::run(std::shared_ptr<Queue> q) {
  // The guard timer is this thread's alone.
  sigevent sev{};
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = guard_signal();
  sev._sigev_un._tid = static_cast<pid_t>(::syscall(SYS_gettid));
  timer_t timer{};
  const bool guarded = ::timer_create(CLOCK_MONOTONIC, &sev, &timer) == 0;
  sigset_t guard;
  sigemptyset(&guard);
  sigaddset(&guard, guard_signal());
  pthread_sigmask(SIG_UNBLOCK, &guard, nullptr);
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> l(q->mu);
      q->cv.wait(l, [&] { return q->stopping || !q->fds.empty(); });
      if (q->stopping) break;
      job = std::move(q->fds.front());
      q->fds.pop_front();
    }
    const std::shared_ptr<Fd> fd = std::move(job.fd);
    if (job.close_only) continue;  // the last reference closes it, here
    pollfd p{fd->fd, POLLOUT, 0};
    if (::poll(&p, 1, 0) != 1 || !(p.revents & POLLOUT)) continue;  // saturated: dropped
    if (!guarded) continue;  // never write unguarded
    itimerspec arm{};
    arm.it_value.tv_nsec = kGuardNs;
    ::timer_settime(timer, 0, &arm, nullptr);
    const uint64_t one = 1;
    (void)!::write(fd->fd, &one, sizeof one);
    const itimerspec disarm{};
    ::timer_settime(timer, 0, &disarm, nullptr);
  }
  if (guarded) ::timer_delete(timer);
}

}  // namespace cgcore::host
