#include "host/connector.h"

#include <linux/capability.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace cgcore::host {

namespace {

// The proc_event `what` values (uapi/linux/cn_proc.h). Spelled out because
// the enum is nested in struct proc_event in older headers and a top-level
// enum proc_cn_event in newer ones.
constexpr uint32_t kEvFork = 0x00000001;
constexpr uint32_t kEvExec = 0x00000002;
constexpr uint32_t kEvUid = 0x00000004;
constexpr uint32_t kEvGid = 0x00000040;
constexpr uint32_t kEvExit = 0x80000000;

Status send_op(int fd, proc_cn_mcast_op op) {
  alignas(nlmsghdr) char buf[NLMSG_SPACE(sizeof(cn_msg) + sizeof(op))] = {};
  auto* nh = reinterpret_cast<nlmsghdr*>(buf);
  nh->nlmsg_len = sizeof buf;
  nh->nlmsg_type = NLMSG_DONE;
  nh->nlmsg_pid = 0;
  auto* cm = static_cast<cn_msg*>(NLMSG_DATA(nh));
  cm->id.idx = CN_IDX_PROC;
  cm->id.val = CN_VAL_PROC;
  cm->len = sizeof(op);
  std::memcpy(cm->data, &op, sizeof(op));
  if (::send(fd, buf, sizeof buf, 0) < 0)
    return Status::Error(errno, std::string("connector subscription: ") + std::strerror(errno));
  return Status::Ok();
}

// Whether this process may LISTEN: CAP_NET_ADMIN, effective, in the initial
// user namespace (whose uid_map maps every id to itself).
bool may_listen() {
  __user_cap_header_struct hdr{};
  hdr.version = _LINUX_CAPABILITY_VERSION_3;
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capget, &hdr, data) != 0) return false;
  if (!(data[CAP_NET_ADMIN / 32].effective & (1u << (CAP_NET_ADMIN % 32)))) return false;
  std::ifstream in("/proc/self/uid_map");
  uint64_t inside = 1, outside = 1, count = 0;
  if (!(in >> inside >> outside >> count)) return true;  // no user namespaces
  std::string more;
  return inside == 0 && outside == 0 && count == 4294967295ull && !(in >> more);
}

}  // namespace

Result<std::unique_ptr<Connector>> Connector::open(int rcvbuf) {
  if (!may_listen())
    return Status::Error(EPERM, "subscribing needs CAP_NET_ADMIN in the initial user namespace");
  int fd = ::socket(PF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_CONNECTOR);
  if (fd < 0) return Status::Error(errno, std::string("netlink connector socket: ") + std::strerror(errno));
  if (rcvbuf > 0 && ::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
    (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  sa.nl_groups = CN_IDX_PROC;
  sa.nl_pid = 0;  // the kernel picks the port id
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    int err = errno;
    ::close(fd);
    return Status::Error(err, std::string("netlink connector bind: ") + std::strerror(err));
  }
  if (Status st = send_op(fd, PROC_CN_MCAST_LISTEN); !st.ok()) {
    ::close(fd);
    return st;
  }
  std::unique_ptr<Connector> conn(new Connector(fd));
  // The kernel answers a LISTEN it ignores with nothing: see events flow.
  pid_t probe = 0;
  std::thread([&probe] { probe = static_cast<pid_t>(::syscall(SYS_gettid)); }).join();
  std::vector<ProcEvent> events;
  for (int i = 0; i < 20; ++i) {
    pollfd p{conn->fd(), POLLIN, 0};
    (void)::poll(&p, 1, 50);
    events.clear();
    const Read r = conn->read(events);
    if (r == Read::kOverflow) return conn;  // events flow
    for (const ProcEvent& ev : events)
      if (ev.pid == probe && (ev.kind == ProcEvent::kFork || ev.kind == ProcEvent::kExit)) return conn;
  }
  return Status::Error(ETIMEDOUT, "subscribed, but no process event arrived");
}

Connector::~Connector() {
  // The kernel counts listeners; tell it this one is gone.
  (void)send_op(fd_, PROC_CN_MCAST_IGNORE);
  ::close(fd_);
}

Connector::Read Connector::read(std::vector<ProcEvent>& out) {
  const size_t before = out.size();
  alignas(nlmsghdr) char buf[16384];
  for (int batch = 0; batch < 64; ++batch) {
    sockaddr_nl from{};
    socklen_t fromlen = sizeof from;
    ssize_t n = ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fromlen);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == ENOBUFS) return Read::kOverflow;
      return Read::kError;
    }
    if (from.nl_pid != 0) continue;  // only the kernel speaks here
    int len = static_cast<int>(n);
    for (auto* nh = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(nh, static_cast<unsigned>(len));
         nh = NLMSG_NEXT(nh, len)) {
      if (nh->nlmsg_type == NLMSG_NOOP || nh->nlmsg_type == NLMSG_ERROR) continue;
      if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(cn_msg))) continue;
      auto* cm = static_cast<const cn_msg*>(NLMSG_DATA(nh));
      if (cm->id.idx != CN_IDX_PROC || cm->id.val != CN_VAL_PROC) continue;
      if (cm->len < offsetof(proc_event, event_data)) continue;
      proc_event ev;
      std::memset(&ev, 0, sizeof ev);
      std::memcpy(&ev, cm->data, std::min<size_t>(cm->len, sizeof ev));
      ProcEvent pe;
      pe.ts = ev.timestamp_ns;
      switch (static_cast<uint32_t>(ev.what)) {
        case kEvFork:
          pe.kind = ProcEvent::kFork;
          pe.pid = ev.event_data.fork.child_pid;
          pe.tgid = ev.event_data.fork.child_tgid;
          pe.parent_pid = ev.event_data.fork.parent_pid;
          pe.parent_tgid = ev.event_data.fork.parent_tgid;
          break;
        case kEvExec:
          pe.kind = ProcEvent::kExec;
          pe.pid = ev.event_data.exec.process_pid;
          pe.tgid = ev.event_data.exec.process_tgid;
          break;
        case kEvExit:
          pe.kind = ProcEvent::kExit;
          pe.pid = ev.event_data.exit.process_pid;
          pe.tgid = ev.event_data.exit.process_tgid;
          break;
        case kEvUid:
          pe.kind = ProcEvent::kUid;
          pe.pid = ev.event_data.id.process_pid;
          pe.tgid = ev.event_data.id.process_tgid;
          break;
        case kEvGid:
          pe.kind = ProcEvent::kGid;
          pe.pid = ev.event_data.id.process_pid;
          pe.tgid = ev.event_data.id.process_tgid;
          break;
        default:
          continue;  // the subscription ack (NONE), sid, ptrace, comm, coredump
      }
      out.push_back(pe);
    }
    if (out.size() - before >= 512) break;
  }
  return out.size() > before ? Read::kEvents : Read::kEmpty;
}

}  // namespace cgcore::host
