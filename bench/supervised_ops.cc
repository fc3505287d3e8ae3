// cgbench-ops: the operations cgbench times inside a process, plain or
// under cgexec (supervised), so that only the operation is timed, not the
// start-up. Prints the mean nanoseconds per operation.
//
//   cgbench-ops fork_exit N       fork, the child exits at once, wait
//   cgbench-ops mmap N            mmap + munmap of 1 MiB (anonymous, untouched)
//   cgbench-ops mmap_notified N   the same in a child whose mmap calls go to
//                                 a bare seccomp listener (this process) that
//                                 only lets them continue: the floor of any
//                                 user-space supervisor's round trip
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/seccomp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "supervisor/client.h"

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

namespace {

int mmap_loop(long n) {
  for (long i = 0; i < n; ++i) {
    void* m = mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return 1;
    munmap(m, 1 << 20);
  }
  return 0;
}

// The child loads the filter and sends its listener over `sock`; this
// process answers every notification with "continue", waiting on the
// listener alone, as cgcore's answerers do. The child prints its timing.
int mmap_notified(long n) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 1;
  const pid_t child = fork();
  if (child < 0) return 1;
  if (child == 0) {
    close(sv[0]);
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx || seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(mmap), 0) != 0 || seccomp_load(ctx) != 0)
      _exit(1);
    const int fd = seccomp_notify_fd(ctx);
    char byte = 0;
    if (cgcore::supervisor::send_fd(sv[1], fd) != 0 || read(sv[1], &byte, 1) != 1) _exit(1);
    close(fd);
    const auto t0 = std::chrono::steady_clock::now();
    if (mmap_loop(n) != 0) _exit(1);
    const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%.1f\n", ns / static_cast<double>(n));
    std::fflush(stdout);
    _exit(0);
  }
  close(sv[1]);
  const int fd = cgcore::supervisor::receive_fd(sv[0], 0);
  int status = 1;
  if (fd >= 0) {
    (void)ioctl(fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);
    seccomp_notif* req = nullptr;
    seccomp_notif_resp* resp = nullptr;
    if (seccomp_notify_alloc(&req, &resp) == 0 && write(sv[0], "g", 1) == 1) {
      for (;;) {
        std::memset(req, 0, sizeof *req);
        // Fails once the filter has no process left: the child is gone.
        if (seccomp_notify_receive(fd, req) != 0) break;
        std::memset(resp, 0, sizeof *resp);
        resp->id = req->id;
        resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        (void)seccomp_notify_respond(fd, resp);
      }
      seccomp_notify_free(req, resp);
    }
    close(fd);
  }
  close(sv[0]);
  if (waitpid(child, &status, 0) != child) return 1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  const std::string op = argv[1];
  const long n = std::atol(argv[2]);
  if (n <= 0) return 2;
  if (op == "mmap_notified") return mmap_notified(n);
  const auto t0 = std::chrono::steady_clock::now();
  if (op == "mmap") {
    if (mmap_loop(n) != 0) return 1;
  } else if (op == "fork_exit") {
    for (long i = 0; i < n; ++i) {
      const pid_t p = fork();
      if (p == 0) _exit(0);
      if (p < 0) return 1;
      waitpid(p, nullptr, 0);
    }
  } else {
    return 2;
  }
  const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%.1f\n", ns / static_cast<double>(n));
  return 0;
}
