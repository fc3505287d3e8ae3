#include "fuse/keeper.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cgcore::fuse {

namespace {

int64_t now_ms() {
  struct timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

struct Child {
  pid_t pid = -1;
  int control = -1;  // the keeper's end of the control socket
  int64_t started_ms = 0;
  bool ready = false;
};

// Starts a server: fork, the descriptors in place, exec. The child dies
// with the keeper (PR_SET_PDEATHSIG), so a killed keeper never leaves a
// server serving a connection nobody would restart. Returns false (and
// logs) if fork or socketpair fail; the caller tries again later.
bool start_server(const KeeperOptions& o, int conn_fd, const std::string& init, Child& c) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    o.log(std::string("keeper: socketpair: ") + std::strerror(errno));
    return false;
  }
  // Queued before the child exists: it reads it first.
  std::string msg = "I" + init;
  if (send(sv[0], msg.data(), msg.size(), MSG_NOSIGNAL) < 0) {
    o.log(std::string("keeper: control socket: ") + std::strerror(errno));
    close(sv[0]);
    close(sv[1]);
    return false;
  }
  std::vector<char*> argv;
  std::vector<std::string> args = o.server_argv;
  for (std::string& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  const pid_t keeper = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    o.log(std::string("keeper: fork: ") + std::strerror(errno));
    close(sv[0]);
    close(sv[1]);
    return false;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != keeper) _exit(127);
    int conn = conn_fd == kKeeperControlFd ? dup(conn_fd) : conn_fd;
    int ctl = sv[1] == kKeeperConnectionFd ? dup(sv[1]) : sv[1];
    if ((conn != kKeeperConnectionFd && dup2(conn, kKeeperConnectionFd) < 0) ||
        (ctl != kKeeperControlFd && dup2(ctl, kKeeperControlFd) < 0))
      _exit(127);
    // dup2 onto the same number keeps close-on-exec: clear it on both.
    for (int fd : {kKeeperConnectionFd, kKeeperControlFd})
      if (fcntl(fd, F_SETFD, 0) != 0) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(sv[1]);
  c.pid = pid;
  c.control = sv[0];
  c.started_ms = now_ms();
  c.ready = false;
  return true;
}

}  // namespace

int run_keeper(const KeeperOptions& o) {
  Result<std::unique_ptr<FuseConnection>> mounted = FuseConnection::mount(o.mountpoint, o.mount);
  if (!mounted.ok()) {
    o.log(mounted.status().message());
    o.ready(false);
    return 1;
  }
  std::unique_ptr<FuseConnection> conn = std::move(mounted.value());

  sigset_t sigs;
  sigemptyset(&sigs);
  for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&sigs, s);
  sigprocmask(SIG_BLOCK, &sigs, nullptr);
  const int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
  if (sfd < 0) {
    o.log(std::string("keeper: signalfd: ") + std::strerror(errno));
    o.ready(false);
    return 1;
  }

  std::string init;          // the connection's INIT, once a server read it
  bool ever_ready = false;   // the mount has been served
  bool stopping = false;     // SIGTERM / SIGINT: end once the server has
  bool upgrading = false;    // SIGHUP: start the next server at once
  int failures = 0;          // quick deaths in a row (the restart backoff)
  int64_t restart_at = 0;    // when to start the next server
  Child c;
  if (!start_server(o, conn->fd(), init, c)) restart_at = now_ms() + 100;

  for (;;) {
    int timeout = -1;
    if (c.pid < 0 && !stopping) timeout = static_cast<int>(std::max<int64_t>(0, restart_at - now_ms()));
    struct pollfd fds[2] = {{sfd, POLLIN, 0}, {c.control, POLLIN, 0}};
    const int n = poll(fds, c.control >= 0 ? 2 : 1, timeout);
    if (n < 0 && errno != EINTR) {
      o.log(std::string("keeper: poll: ") + std::strerror(errno));
      continue;
    }
    if (c.pid < 0 && !stopping && now_ms() >= restart_at) {
      if (!start_server(o, conn->fd(), init, c)) restart_at = now_ms() + 1000;
      continue;
    }
    if (c.control >= 0 && (fds[1].revents & POLLIN)) {
      char buf[4096];
      const ssize_t len = recv(c.control, buf, sizeof buf, MSG_DONTWAIT);
      if (len > 0 && buf[0] == 'I' && init.empty()) init.assign(buf + 1, static_cast<size_t>(len - 1));
      if (len > 0 && buf[0] == 'R' && !c.ready) {
        c.ready = true;
        if (!ever_ready) {
          ever_ready = true;
          o.ready(true);
        } else {
          o.log("keeper: server " + std::to_string(c.pid) + " serves the mount");
        }
      }
      if (len == 0) {  // the server closed its end: it is exiting
        close(c.control);
        c.control = -1;
      }
    } else if (c.control >= 0 && (fds[1].revents & (POLLHUP | POLLERR))) {
      close(c.control);
      c.control = -1;
    }
    if (!(fds[0].revents & POLLIN)) continue;
    struct signalfd_siginfo si{};
    if (read(sfd, &si, sizeof si) != sizeof si) continue;
    const int sig = static_cast<int>(si.ssi_signo);
    if (sig == SIGTERM || sig == SIGINT) {
      stopping = true;
      if (c.pid > 0) kill(c.pid, SIGTERM);
      else break;
      continue;
    }
    if (sig == SIGHUP) {
      if (c.pid > 0 && !stopping) {
        o.log("keeper: upgrade: server " + std::to_string(c.pid) + " hands over to " + o.server_argv[0]);
        upgrading = true;
        kill(c.pid, SIGUSR1);
      }
      continue;
    }
    // SIGCHLD: reap every child that ended.
    if (c.pid > 0 && o.server_ended) {
      siginfo_t info{};
      if (waitid(P_PID, static_cast<id_t>(c.pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == c.pid)
        o.server_ended(c.pid);
    }
    bool gone = false;
    int status = 0;
    for (;;) {
      int st = 0;
      const pid_t p = waitpid(-1, &st, WNOHANG);
      if (p <= 0) break;
      if (p == c.pid) {
        gone = true;
        status = st;
      }
    }
    if (!gone) continue;
    // Whatever the server sent before it ended is still in the socket.
    if (c.control >= 0) {
      char buf[4096];
      ssize_t len;
      while ((len = recv(c.control, buf, sizeof buf, MSG_DONTWAIT)) > 0)
        if (buf[0] == 'I' && init.empty()) init.assign(buf + 1, static_cast<size_t>(len - 1));
      close(c.control);
      c.control = -1;
    }
    const pid_t old = c.pid;
    const bool was_ready = c.ready;
    c.pid = -1;
    const bool exited = WIFEXITED(status);
    const int code = exited ? WEXITSTATUS(status) : -1;
    if (stopping) break;
    if (exited && code == 0) {
      o.log("keeper: the file system was unmounted");
      break;
    }
    if (!ever_ready) {
      o.log("keeper: the server ended before it served (" +
            (exited ? "exit status " + std::to_string(code)
                    : std::string("signal ") + strsignal(WTERMSIG(status))) + ")");
      conn->unmount();
      o.ready(false);
      return 1;
    }
    if (upgrading) {
      upgrading = false;
      failures = 0;
      restart_at = now_ms();
    } else {
      o.log("keeper: server " + std::to_string(old) + " ended (" +
            (exited ? "exit status " + std::to_string(code)
                    : std::string("signal ") + strsignal(WTERMSIG(status))) + "); restarting it");
      // A server that keeps dying at once is restarted ever more slowly
      // (up to 2 s), so that a broken binary does not spin.
      const bool quick = !was_ready || now_ms() - c.started_ms < 1000;
      failures = quick ? failures + 1 : 0;
      restart_at = now_ms() + (failures == 0 ? 0 : std::min<int64_t>(2000, 50LL << std::min(failures, 6)));
    }
    if (now_ms() >= restart_at && !start_server(o, conn->fd(), init, c)) restart_at = now_ms() + 1000;
  }
  conn->unmount();
  close(sfd);
  return 0;
}

Result<std::string> keeper_receive_init(int control_fd) {
  char buf[4096];
  ssize_t n;
  do n = recv(control_fd, buf, sizeof buf, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) return Status::Error(errno, std::string("keeper socket: ") + std::strerror(errno));
  if (n < 1 || buf[0] != 'I') return Status::Error(EPROTO, "keeper socket: no INIT message");
  return std::string(buf + 1, static_cast<size_t>(n - 1));
}

namespace {
Status send_message(int fd, const std::string& m) {
  ssize_t n;
  do n = send(fd, m.data(), m.size(), MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) return Status::Error(errno, std::string("keeper socket: ") + std::strerror(errno));
  return Status::Ok();
}
}  // namespace

Status keeper_send_init(int control_fd, const std::string& init) { return send_message(control_fd, "I" + init); }
Status keeper_send_ready(int control_fd) { return send_message(control_fd, "R"); }

}  // namespace cgcore::fuse
