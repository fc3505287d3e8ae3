// The supervised side: what a process does to put itself and every
// descendant under a cgcorefs daemon's supervision (tools/cgexec does it
// just before exec).
//
// supervise() installs a seccomp filter that turns the system calls the
// supervisor answers (fork and clone, address-space growth, CPU affinity)
// into notifications, hands the filter's notification descriptor to the
// daemon over its control socket, and waits until the daemon has it. The
// filter is inherited by every child and cannot be removed; it needs no
// privilege, since it sets no_new_privs (a setuid program then runs without
// its privileges).
//
// Thread-safety: call from a single-threaded process (the filter applies to
// the calling thread and what it creates from then on).
#pragma once

#include <string>

#include "core/result.h"

namespace cgcore::supervisor {

// The system calls the filter reports (libseccomp resolves the names for
// the native architecture). munmap is not among them: shrinking never
// breaks a limit, and the supervisor brings a process's recorded size to
// the truth before it refuses growth (Supervisor's header).
inline constexpr const char* kSupervisedCalls[] = {
    "clone", "clone3", "fork", "vfork", "mmap", "mremap", "brk", "sched_setaffinity",
};

// Compatibility mode (cgexec --compat) adds a second flavour of the filter:
// read-only open / openat (so that the /proc files showing cgroups can be
// answered with cgcore's view) and statfs / fstatfs (the cgroup magic).
// Opens for writing never reach the supervisor: the filter compares the
// access mode itself.
inline constexpr const char* kCompatCalls[] = {"statfs", "fstatfs"};

// Connects to `socket_path` first (so that nothing after the filter needs
// memory from the kernel), installs the filter, sends the notification
// descriptor and waits for the daemon's answer; `compat` adds the
// compatibility-mode calls. Errors: the connection's
// errno naming the socket (ECONNREFUSED / ENOENT: no daemon), EPERM / EINVAL
// if the kernel refuses the filter (no seccomp user notification). The
// daemon's refusal comes after the filter is installed, when the process
// cannot go on (its next supervised call would wait for ever): then it
// writes a message to stderr and exits with status 126, without returning.
Status supervise(const std::string& socket_path, bool compat = false);

// Sends descriptor `fd` over the Unix stream socket `sock` (SCM_RIGHTS, with
// one byte of data), retrying on EINTR. Returns 0 or the errno (EPIPE: the
// peer is gone). Allocates nothing: usable where a supervised call would
// wait for an answer.
int send_fd(int sock, int fd);

// Receives a descriptor sent by send_fd, close-on-exec. Returns it, or -1
// with errno set: the recvmsg's (EAGAIN under MSG_DONTWAIT: nothing yet),
// EPIPE at end of file, EBADMSG for a message that carries no descriptor.
int receive_fd(int sock, int flags);

}  // namespace cgcore::supervisor
