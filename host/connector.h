// Connector: the kernel's process-events connector (netlink
// NETLINK_CONNECTOR, group CN_IDX_PROC), subscribed with
// PROC_CN_MCAST_LISTEN. Needs CAP_NET_ADMIN in the initial user and network
// namespaces; elsewhere open() fails and the backend rescans /proc instead.
// (Since Linux 6.6 an unprivileged socket may bind, but the kernel ignores
// its LISTEN, so events flow only while a privileged listener exists:
// open() refuses without the capability, and checks that events arrive.)
//
// What the kernel reports, and what it leaves out (the backend's rules in
// host_tracker.cc rest on these):
//   * fork: child pid/tgid (child pid != tgid: a new thread). The parent
//     fields name the child's real_parent, which for CLONE_THREAD and
//     CLONE_PARENT is the creator's parent, not the creating thread.
//   * exec: sent after de_thread, with the process id only; which thread
//     exec'd is not said. The zapped threads' exit events may arrive before
//     or after it, and the old leader's may name the exec'ing thread's old
//     id (the ids were exchanged).
//   * exit: sent after exit_notify (the task is a zombie or gone).
//   * every event is stamped with CLOCK_MONOTONIC (ktime_get_ns).
// Messages are dropped when the socket buffer is full; the next recv then
// fails with ENOBUFS, reported as kOverflow.
//
// Thread-safety: one reader at a time; not synchronised.
#pragma once

#include <memory>
#include <vector>

#include "core/result.h"
#include "core/types.h"

namespace cgcore::host {

struct ProcEvent {
  enum Kind : uint8_t { kFork, kExec, kExit, kUid, kGid, kOther };
  Kind kind = kOther;
  uint64_t ts = 0;  // ns, CLOCK_MONOTONIC (the kernel's)
  Pid pid = 0;      // the child (fork) or the task the event is about
  Pid tgid = 0;
  Pid parent_pid = 0;  // fork only: the child's real_parent
  Pid parent_tgid = 0;
};

class Connector {
 public:
  // Opens, binds and subscribes, then checks that events arrive (a thread
  // is started and ended; its events must come within a second); `rcvbuf`
  // is the socket buffer to ask for (SO_RCVBUFFORCE, else SO_RCVBUF; 0
  // leaves the default). EPERM without CAP_NET_ADMIN in the initial user
  // namespace; EPROTONOSUPPORT where the connector is absent (another
  // network namespace, or a kernel without CONFIG_PROC_EVENTS); ETIMEDOUT
  // if no event came. The events read by the check are dropped.
  static Result<std::unique_ptr<Connector>> open(int rcvbuf);
  ~Connector();  // unsubscribes and closes
  Connector(const Connector&) = delete;
  Connector& operator=(const Connector&) = delete;

  int fd() const { return fd_; }

  enum class Read { kEvents, kEmpty, kOverflow, kError };
  // Appends what is queued (without blocking, up to a few hundred events)
  // to `out`. kOverflow: events were lost before the ones now queued.
  Read read(std::vector<ProcEvent>& out);

 private:
  explicit Connector(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace cgcore::host
