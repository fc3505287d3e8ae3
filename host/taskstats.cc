#include "host/taskstats.h"

#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/taskstats.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

namespace cgcore::host {

namespace {

constexpr size_t kAlign = 4;
size_t align(size_t n) { return (n + kAlign - 1) & ~(kAlign - 1); }

// Appends one netlink attribute to `buf`.
void put_attr(std::string& buf, uint16_t type, const void* data, size_t len) {
  nlattr a{};
  a.nla_len = static_cast<uint16_t>(NLA_HDRLEN + len);
  a.nla_type = type;
  buf.append(reinterpret_cast<const char*>(&a), sizeof a);
  buf.append(static_cast<const char*>(data), len);
  buf.append(align(buf.size()) - buf.size(), '\0');
}

// Sends a generic-netlink request; 0 or -errno.
int send_request(int fd, uint16_t family, uint8_t cmd, const std::string& attrs) {
  std::string msg(NLMSG_HDRLEN + GENL_HDRLEN, '\0');
  msg += attrs;
  auto* nh = reinterpret_cast<nlmsghdr*>(msg.data());
  nh->nlmsg_len = static_cast<uint32_t>(msg.size());
  nh->nlmsg_type = family;
  nh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  nh->nlmsg_seq = 1;
  auto* gh = reinterpret_cast<genlmsghdr*>(msg.data() + NLMSG_HDRLEN);
  gh->cmd = cmd;
  gh->version = 1;
  sockaddr_nl to{};
  to.nl_family = AF_NETLINK;
  if (::sendto(fd, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0)
    return -errno;
  return 0;
}

// Waits for the answer to a request: its attributes (a reply) or the
// kernel's errno (an ack carries 0). Blocking; the socket is still blocking.
int receive_answer(int fd, std::string* reply) {
  char buf[8192];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0) return errno == EINTR ? -EINTR : -errno;
    size_t len = static_cast<size_t>(n);
    for (auto* nh = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(nh, len); nh = NLMSG_NEXT(nh, len)) {
      if (nh->nlmsg_type == NLMSG_ERROR) {
        const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(nh));
        return e->error;  // 0: an ack
      }
      if (reply) {
        const char* p = static_cast<const char*>(NLMSG_DATA(nh)) + GENL_HDRLEN;
        reply->assign(p, nh->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN);
        return 0;
      }
    }
  }
}

// Walks the attributes in [p, p + len), calling fn(type, data, size).
template <typename Fn>
void for_each_attr(const char* p, size_t len, Fn&& fn) {
  while (len >= NLA_HDRLEN) {
    nlattr a;
    std::memcpy(&a, p, sizeof a);
    if (a.nla_len < NLA_HDRLEN || a.nla_len > len) return;
    fn(static_cast<uint16_t>(a.nla_type & NLA_TYPE_MASK), p + NLA_HDRLEN, a.nla_len - NLA_HDRLEN);
    const size_t step = std::min(len, align(a.nla_len));
    p += step;
    len -= step;
  }
}

}  // namespace

Result<std::unique_ptr<Taskstats>> Taskstats::open() {
  const int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
  if (fd < 0) return Status::Error(errno, std::string("taskstats socket: ") + std::strerror(errno));
  auto fail = [fd](int err, const std::string& what) {
    ::close(fd);
    return Status::Error(err, "taskstats: " + what + ": " + std::strerror(err));
  };
  sockaddr_nl self{};
  self.nl_family = AF_NETLINK;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&self), sizeof self) < 0) return fail(errno, "bind");
  // A large buffer: every exit on the host comes through.
  const int rcvbuf = 4 << 20;
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
    (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  // The family's id.
  std::string attrs;
  const char name[] = TASKSTATS_GENL_NAME;
  put_attr(attrs, CTRL_ATTR_FAMILY_NAME, name, sizeof name);
  if (int e = send_request(fd, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, attrs); e < 0) return fail(-e, "family");
  std::string reply;
  if (int e = receive_answer(fd, &reply); e < 0) return fail(-e, "family");
  uint16_t family = 0;
  for_each_attr(reply.data(), reply.size(), [&](uint16_t type, const char* data, size_t size) {
    if (type == CTRL_ATTR_FAMILY_ID && size >= sizeof family) std::memcpy(&family, data, sizeof family);
  });
  if (!family) return fail(ENOENT, "no family id");
  // Every possible CPU, as the kernel lists them.
  std::string cpus;
  {
    std::ifstream in("/sys/devices/system/cpu/possible");
    std::getline(in, cpus);
  }
  if (cpus.empty()) return fail(ENOENT, "no /sys/devices/system/cpu/possible");
  attrs.clear();
  put_attr(attrs, TASKSTATS_CMD_ATTR_REGISTER_CPUMASK, cpus.c_str(), cpus.size() + 1);
  if (int e = send_request(fd, family, TASKSTATS_CMD_GET, attrs); e < 0) return fail(-e, "register");
  if (int e = receive_answer(fd, nullptr); e < 0) return fail(-e, "register");
  return std::unique_ptr<Taskstats>(new Taskstats(fd));
}

Taskstats::~Taskstats() { ::close(fd_); }

bool Taskstats::read(std::vector<Exit>& out) {
  alignas(nlmsghdr) char buf[32768];
  for (;;) {
    const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      if (errno == EINTR) continue;
      // A full buffer dropped exits: those keep their last /proc sample.
      if (errno == ENOBUFS) {
        ++lost_;
        continue;
      }
      return false;
    }
    size_t len = static_cast<size_t>(n);
    for (auto* nh = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(nh, len); nh = NLMSG_NEXT(nh, len)) {
      if (nh->nlmsg_type == NLMSG_ERROR || nh->nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN) continue;
      const char* p = static_cast<const char*>(NLMSG_DATA(nh)) + GENL_HDRLEN;
      // One TASKSTATS_TYPE_AGGR_PID per exiting thread (plus an AGGR_TGID
      // when a whole group is done, which adds nothing per thread).
      for_each_attr(p, nh->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN,
                    [&](uint16_t type, const char* data, size_t size) {
                      if (type != TASKSTATS_TYPE_AGGR_PID) return;
                      Exit e;
                      bool have_stats = false;
                      for_each_attr(data, size, [&](uint16_t t, const char* d, size_t sz) {
                        if (t == TASKSTATS_TYPE_PID && sz >= sizeof(uint32_t)) {
                          uint32_t pid;
                          std::memcpy(&pid, d, sizeof pid);
                          e.tid = static_cast<Pid>(pid);
                        } else if (t == TASKSTATS_TYPE_STATS) {
                          // The kernel's struct may be older or newer than
                          // ours: the fields used are in every version.
                          taskstats ts{};
                          std::memcpy(&ts, d, std::min(sz, sizeof ts));
                          e.runtime_ns = ts.cpu_run_virtual_total;
                          e.utime_us = ts.ac_utime;
                          e.stime_us = ts.ac_stime;
                          e.nice = static_cast<int8_t>(ts.ac_nice);  // task_nice, stored in a u8
                          have_stats = true;
                        }
                      });
                      if (e.tid > 0 && have_stats) out.push_back(e);
                    });
    }
  }
}

}  // namespace cgcore::host
