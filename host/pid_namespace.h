// Pid namespaces of the host: how a caller in a child pid namespace names
// the host's tasks, so that the pids it writes to and reads from cgroup
// files are its own namespace's, as the kernel resolves them.
//
// /proc tells each task's namespace (ROOT/TID/ns/pid, an nsfs inode) and
// its id in every namespace from ROOT's down to its own (the NSpid line of
// ROOT/TID/status). A task is visible to a caller whose namespace N sits at
// level L below ROOT's when the task's own namespace is N or a descendant
// of N: its NSpid has more than L entries and its namespace's ancestor at
// level L is N (found with the NS_GET_PARENT ioctl); its name in N is then
// NSpid[L]. A caller in ROOT's namespace (the common case) costs one stat of
// its ns/pid link when a pid file is opened, and nothing after.
//
// Thread-safety: immutable after construction; every method is
// thread-safe (the namespaces handed out keep a small cache under a leaf
// mutex).
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>

#include "fs/backend.h"
#include "host/procfs.h"

namespace cgcore::host {

// A namespace as the kernel's nsfs names it.
struct NsId {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const NsId&) const = default;
};

class PidNamespaces {
 public:
  // The daemon's own namespace is that of ROOT/self (the namespace ROOT's
  // pids are in); a tree without one (a fabricated /proc) has no
  // namespaces, and every caller is taken to share the daemon's.
  explicit PidNamespaces(const ProcFs& proc);

  // The pid namespace of the task `caller` (a host id), for
  // fs::Backend::pid_namespace: null if it is the daemon's own (or `caller`
  // is 0: not visible to the daemon, or namespaces are unknown); a
  // namespace that sees nothing if the caller's cannot be read (it exited).
  std::shared_ptr<const fs::PidNamespace> of(Pid caller) const;

 private:
  const ProcFs& proc_;
  std::optional<NsId> own_;  // immutable after construction
};

// The nsfs identity of ROOT/TID/ns/pid (nullopt if it cannot be read).
std::optional<NsId> pid_ns_of(const ProcFs& proc, Pid tid);

}  // namespace cgcore::host
