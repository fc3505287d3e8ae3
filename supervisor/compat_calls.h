// CompatCalls: the supervisor's answers to the calls only compatibility-mode
// processes (cgexec --compat) report — read-only open / openat of the /proc
// files that show cgroups, statfs / fstatfs on the hierarchies at
// /sys/fs/cgroup (docs/cgcorefs.md, "Compatibility view"). The texts come
// from supervisor/compat.h over the fs layer.
//
// The caller's memory is read with process_vm_readv and the notification
// checked live afterwards (then what was read was the caller's argument);
// it is written through a /proc/PID/mem descriptor opened before such a
// check (so a recycled pid never receives it).
//
// Thread-safety: one thread (the supervisor's) calls it. Locking: call with
// no engine lock held; the fs views take their own.
#pragma once

#include <linux/seccomp.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "core/types.h"

namespace cgcore::fs {
class CgroupFs;
}

namespace cgcore::supervisor {

// What the supervisor does with a notification.
struct CallAnswer {
  enum Kind { kContinue, kError, kValue, kResponded } kind = kContinue;
  int error = 0;    // kError: the caller's errno
  int64_t val = 0;  // kValue: the call's result
  static CallAnswer failed(int err) { return {kError, err, 0}; }
  static CallAnswer value(int64_t v) { return {kValue, 0, v}; }
  // Answered already (SECCOMP_ADDFD_FLAG_SEND).
  static CallAnswer responded() { return {kResponded, 0, 0}; }
};

class CompatCalls {
 public:
  // `fs` is borrowed (it outlives this), mounted at `mountpoint` in the
  // daemon's namespace.
  CompatCalls(fs::CgroupFs& fs, std::string mountpoint);
  CompatCalls(const CompatCalls&) = delete;
  CompatCalls& operator=(const CompatCalls&) = delete;

  // open / openat (`dirfd`, the path at `addr`, `flags`) of a served /proc
  // file for reading: a sealed memfd with the text, installed in the caller
  // (kResponded). The caller's errno if it cannot be installed (EMFILE);
  // kContinue for every other path.
  CallAnswer open(int notify_fd, const seccomp_notif& req, int64_t dirfd, uint64_t addr, uint64_t flags);
  // statfs (`by_fd` false: `arg` is the path's address) / fstatfs (`arg` is
  // the descriptor) on a hierarchy at /sys/fs/cgroup: the mount's statfs
  // with the kernel's magic, written to the caller's `buf` (kValue 0;
  // EFAULT if it cannot be written); kContinue for other files.
  CallAnswer statfs(int notify_fd, const seccomp_notif& req, bool by_fd, uint64_t arg, uint64_t buf);

 private:
  int open_caller_mem(int fd, const seccomp_notif& req, bool rw);
  std::string caller_path(int fd, const seccomp_notif& req, int64_t dirfd, uint64_t addr,
                          std::string_view prefix);
  dev_t mount_dev();
  // The daemon's id of the task that `rel` ("N", or "N/task/T" naming `id`)
  // of the /proc the caller sees through its root is; 0 if it cannot be
  // told. The caller's procfs is mostly its own pid namespace's (a
  // container, `unshare --pid --mount-proc`), sometimes the daemon's (no
  // remount): the candidate each gives is taken if its start time is the
  // entry's. Locking: none (reads /proc).
  Pid daemon_id_of(Pid caller, const std::string& rel, Pid id);

  fs::CgroupFs& fs_;
  const std::string mountpoint_;
  dev_t dev_ = 0;  // the mount's device, once found
  bool dev_known_ = false;
};

}  // namespace cgcore::supervisor
