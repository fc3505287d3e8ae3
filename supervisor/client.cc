#include "supervisor/client.h"

#include <fcntl.h>
#include <seccomp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cgcore::supervisor {

namespace {

Status errno_status(int err, const std::string& what) {
  return Status::Error(err, what + ": " + std::strerror(err));
}

}  // namespace

Status supervise(const std::string& socket_path, bool compat) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path)
    return Status::Error(ENAMETOOLONG, "control socket path too long: " + socket_path);
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  const int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return errno_status(errno, "socket");
  if (::connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int e = errno;
    ::close(sock);
    return errno_status(e, "cannot reach the daemon at " + socket_path);
  }

  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) {
    ::close(sock);
    return Status::Error(ENOMEM, "seccomp_init failed");
  }
  for (const char* name : kSupervisedCalls) {
    const int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture
    if (int rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, nr, 0); rc < 0) {
      seccomp_release(ctx);
      ::close(sock);
      return errno_status(-rc, std::string("seccomp rule for ") + name);
    }
  }
  if (compat) {
    int rc = 0;
    for (const char* name : kCompatCalls) {
      const int nr = seccomp_syscall_resolve_name(name);
      if (nr != __NR_SCMP_ERROR && rc >= 0) rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, nr, 0);
    }
    // Read-only opens only: the access mode is in the flags argument.
    auto read_only = [](unsigned arg) {
      scmp_arg_cmp cmp{};
      cmp.arg = arg;
      cmp.op = SCMP_CMP_MASKED_EQ;
      cmp.datum_a = O_ACCMODE;
      cmp.datum_b = O_RDONLY;
      return cmp;
    };
    const scmp_arg_cmp open_flags = read_only(1), openat_flags = read_only(2);
    const int open_nr = seccomp_syscall_resolve_name("open");
    if (open_nr != __NR_SCMP_ERROR && rc >= 0)
      rc = seccomp_rule_add_array(ctx, SCMP_ACT_NOTIFY, open_nr, 1, &open_flags);
    if (rc >= 0)
      rc = seccomp_rule_add_array(ctx, SCMP_ACT_NOTIFY, seccomp_syscall_resolve_name("openat"), 1,
                                  &openat_flags);
    if (rc < 0) {
      seccomp_release(ctx);
      ::close(sock);
      return errno_status(-rc, "seccomp rules of compatibility mode");
    }
  }
  // From here on, a supervised call waits until the daemon answers: nothing
  // below may allocate before the daemon holds the descriptor.
  if (int rc = seccomp_load(ctx); rc < 0) {
    seccomp_release(ctx);
    ::close(sock);
    return errno_status(-rc, "the kernel refused the seccomp filter (user notification needs Linux 5.0)");
  }
  const int nfd = seccomp_notify_fd(ctx);
  int err = send_fd(sock, nfd);
  unsigned char answer = 0;
  ssize_t n;
  if (!err) {
    do n = ::read(sock, &answer, 1);
    while (n < 0 && errno == EINTR);
    err = n == 1 ? answer : (n < 0 ? errno : EPIPE);
  }
  ::close(nfd);
  ::close(sock);
  if (err) {
    // Nobody answers this process's supervised calls: it cannot go on, and
    // must not allocate (an mmap or brk would wait for ever).
    static const char kMsg[] = "cgexec: the daemon did not take the process under supervision\n";
    (void)!::write(2, kMsg, sizeof kMsg - 1);
    ::_exit(126);
  }
  seccomp_release(ctx);
  return Status::Ok();
}

int send_fd(int sock, int fd) {
  char byte = 1;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cm), &fd, sizeof fd);
  ssize_t n;
  do n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n == 1 ? 0 : (n < 0 ? errno : EPIPE);
}

int receive_fd(int sock, int flags) {
  char byte;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const ssize_t n = ::recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
  if (n < 0) return -1;
  int fd = -1;
  for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); n == 1 && cm; cm = CMSG_NXTHDR(&msg, cm))
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && cm->cmsg_len == CMSG_LEN(sizeof(int)))
      std::memcpy(&fd, CMSG_DATA(cm), sizeof fd);
  if (fd < 0) errno = n == 0 ? EPIPE : EBADMSG;
  return fd;
}

}  // namespace cgcore::supervisor
