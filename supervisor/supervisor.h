// Supervisor: answers the system calls that supervised processes (those
// started under tools/cgexec, and every descendant) make, so that the
// engine's limits hold for them before the kernel acts:
//
//   * clone, fork, vfork: the engine charges the child before the kernel
//     forks (HostTracker::reserve_fork: can_fork runs against the caller's
//     css_set, pids.events counts a refusal); a refusal is the caller's errno
//     (EAGAIN at pids.max / numtasks.max) and the kernel never forks.
//     clone3 answers ENOSYS, so that the C library falls back to clone,
//     whose flags are in registers (clone3's are in the caller's memory).
//   * mmap, mremap, brk growth: memrlimit's charge (total_vm) is taken
//     before the kernel maps; over any ancestor's limit the call fails with
//     ENOMEM and memrlimit.failcnt counts. munmap is not reported (it costs
//     a round trip and never breaks a limit): before refusing, the recorded
//     size is brought to the process's real VmSize and the charge retried,
//     so a refusal is always against the truth.
//   * sched_setaffinity: the requested CPUs are intersected with the
//     target's effective cpuset; an empty intersection is EINVAL, otherwise
//     the supervisor sets the intersection itself, if the caller may set the
//     target's affinity at all.
//   * compatibility mode only (cgexec --compat; the client's second filter
//     flavour): read-only open / openat of the /proc files that show
//     cgroups (supervisor/compat.h) are answered with a sealed memfd holding
//     cgcore's text, installed in the caller by SECCOMP_IOCTL_NOTIF_ADDFD;
//     statfs / fstatfs on the hierarchies at /sys/fs/cgroup report the
//     kernel's cgroup magic. Every other path is left to the kernel.
//
// Notifications arrive on the descriptors of the processes' seccomp
// filters, handed over on a Unix socket. One thread accepts connections;
// each descriptor is answered by a thread of its own, polling it alone (the
// kernel's synchronous wake-up survives poll(2), not epoll). An answerer
// never waits for a supervised process (a process that exits, execs or is
// killed mid-notification makes the answer fail, which is ignored), so no
// process can stall it or another process tree's answerer.
//
// Thread-safety: start/stop from one thread; the rest is internal.
// Locking: notifications are answered with no engine lock held (the
// tracker and the controllers take their own), one at a time (answer_mu).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>

#include "controllers/registry.h"
#include "core/engine.h"
#include "host/host_tracker.h"

namespace cgcore::fs {
class CgroupFs;
}

namespace cgcore::supervisor {

struct SupervisorStats {
  int64_t processes_adopted = 0;   // notification descriptors taken
  int64_t notifications = 0;       // answered
  int64_t forks_refused = 0;       // a controller refused the fork
  int64_t maps_refused = 0;        // memrlimit refused the growth
  int64_t affinity_confined = 0;   // sched_setaffinity answered by the supervisor
  int64_t stale = 0;               // the caller went away before the answer
  int64_t views_served = 0;        // /proc files answered (compatibility mode)
  int64_t statfs_answered = 0;     // statfs / fstatfs answered (compatibility mode)
};

class Supervisor {
 public:
  using LogFn = std::function<void(const std::string&)>;
  Supervisor(Engine& engine, host::HostTracker& tracker, LogFn log);
  ~Supervisor();  // stops
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Listens on a Unix socket at `socket_path` (replacing a stale one) for
  // processes that ask to be supervised, and starts answering. Errors: the
  // socket's errno, naming the path.
  Status start(const std::string& socket_path);
  void stop();
  const std::string& socket_path() const { return socket_path_; }

  // Serves compatibility-mode processes from `fs` (borrowed; it outlives
  // the supervisor), mounted at `mountpoint` in the daemon's namespace.
  // Without it their /proc opens and statfs calls are left to the kernel.
  // Call before start().
  void set_compat_views(fs::CgroupFs& fs, std::string mountpoint);

  // Takes a notification descriptor (owned from now on) of a process that
  // asked for supervision. Thread-safe.
  void adopt(int notify_fd);

  SupervisorStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string socket_path_;
};

}  // namespace cgcore::supervisor
