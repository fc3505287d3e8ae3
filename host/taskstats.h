// Taskstats: the kernel's per-task exit statistics (netlink generic family
// "TASKSTATS", Documentation/accounting/taskstats.rst). Registered for
// every possible CPU, the socket receives, for each thread that exits on
// the host, its id and its final CPU time: the scheduler's runtime and the
// user / system split. The kernel sends it while the thread exits, before
// the process-events connector's exit event for it, which lets the CPU
// time pass charge a thread's last moments before the mirror removes it.
//
// Needs root in the initial user and pid namespaces (the kernel refuses a
// listener elsewhere); open() fails then, and the last /proc sample stands
// as the final figure.
//
// Thread-safety: one reader at a time; fd() may be polled from anywhere.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/result.h"
#include "core/types.h"

namespace cgcore::host {

class Taskstats {
 public:
  // One exited thread's totals.
  struct Exit {
    Pid tid = 0;
    uint64_t runtime_ns = 0;  // the scheduler's sum_exec_runtime
    uint64_t utime_us = 0;    // tick-sampled user time
    uint64_t stime_us = 0;    // tick-sampled system time
    int nice = 0;
  };

  // Opens the socket, resolves the family and registers for every possible
  // CPU (/sys/devices/system/cpu/possible). Errors: the socket's or the
  // kernel's errno (EPERM / EINVAL outside the initial namespaces, ENOENT
  // without the family).
  static Result<std::unique_ptr<Taskstats>> open();
  ~Taskstats();
  Taskstats(const Taskstats&) = delete;
  Taskstats& operator=(const Taskstats&) = delete;

  int fd() const { return fd_; }
  // Appends every exit waiting on the socket (non-blocking). A full socket
  // buffer loses exits (counted in lost(); those threads keep their last
  // /proc sample). False if the socket failed otherwise (errno says how).
  bool read(std::vector<Exit>& out);
  // Times the kernel reported exits lost (ENOBUFS).
  int64_t lost() const { return lost_; }

 private:
  explicit Taskstats(int fd) : fd_(fd) {}
  int fd_;
  int64_t lost_ = 0;
};

}  // namespace cgcore::host
