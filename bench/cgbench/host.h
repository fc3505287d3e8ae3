// The host side of cgbench: the kernel's cgroups, the real processes moved
// between them, and the clean-up guard.
//
// Clean-up. Everything cgbench creates in /sys/fs/cgroup lives under one
// directory per hierarchy named cgbench.<pid>, and every process it makes
// dies with it:
//   * a watchdog process, forked first and in a session of its own, is told
//     of each such directory (and of each FUSE mount) through a pipe; when
//     the pipe closes — cgbench ended, normally, by a signal, or killed —
//     it kills whatever is left in those cgroups, removes them bottom-up,
//     unmounts the mounts and puts back the kernel parameters cgbench
//     changed;
//   * SIGINT, SIGTERM, SIGHUP and SIGQUIT kill cgbench's children, close
//     the pipe and wait for the watchdog before exiting (128 + signal);
//   * every child process has PR_SET_PDEATHSIG(SIGKILL) towards its parent.
// A normal run removes everything itself first (Host::cleanup) and then
// waits for the watchdog, which then finds nothing to do.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace cgbench {

// ---- the guard
void guard_start();
void guard_add_cgroup_dir(const std::string& path);
void guard_add_mount(const std::string& dir, pid_t daemon);
// A kernel parameter file (one line, e.g. /sys/module/fuse/parameters/
// enable_uring) that gets `value` written back after the mounts are gone.
void guard_restore_param(const std::string& path, const std::string& value);
// Children killed by the signal handler (at most 64 at a time).
void guard_track(pid_t pid);
void guard_untrack(pid_t pid);
// Closes the pipe and waits for the watchdog's clean-up.
void guard_finish();
// In a forked child that must not act on the guard's behalf.
void guard_forget_in_child();

// Kills every process in the cgroup directory tree `path` and removes it
// bottom-up; true if it is gone (or never existed). Gives up after
// `timeout_ms`.
bool remove_cgroup_tree(const std::string& path, int timeout_ms = 10000);

// ---- processes (all die with cgbench: PR_SET_PDEATHSIG)
// A one-thread process that sleeps.
pid_t fork_sleeper();
// A process of `nr_threads` threads (the leader included), all blocked;
// returns once they all exist. -1 on failure.
pid_t fork_threads(int nr_threads);
// Kills and reaps a child.
void kill_child(pid_t pid);

// A process that forks sleeping children on request: they inherit its
// cgroups, so that thousands of processes land in a cgroup without one
// cgroup.procs write each. Its children die with it.
class Factory {
 public:
  Factory() = default;
  ~Factory() { stop(); }
  bool start();
  pid_t pid() const { return pid_; }
  // Forks n more sleepers; returns when they exist.
  bool spawn(int n);
  // Ends the factory and (through PR_SET_PDEATHSIG) every sleeper.
  void stop();

 private:
  pid_t pid_ = -1;
  int cmd_ = -1, resp_ = -1;
};

// ---- the kernel's cgroups
struct KernelHier {
  std::string mount;  // e.g. /sys/fs/cgroup/pids
  std::string dir;    // ours: <mount>/cgbench.<pid>; empty if unusable
  bool v2 = false;
  std::string why_not;  // why `dir` is empty
  bool ok() const { return !dir.empty(); }
};

struct KernelCgroups {
  KernelHier v1;  // a v1 hierarchy with the pids controller
  KernelHier v2;  // the unified hierarchy
  bool any() const { return v1.ok() || v2.ok(); }
  // Removes our directories (and whatever is in them).
  void cleanup();
};

// Finds the hierarchies in /proc/self/mounts and makes our directories
// (registered with the guard). `disabled`: do not touch the kernel's
// cgroups at all (--no-kernel).
KernelCgroups kernel_setup(bool disabled);

// Small file helpers (errno preserved on failure).
bool make_dir(const std::string& path);
int open_wo(const std::string& path);
// Writes "<pid>\n" to an open cgroup.procs (one write(2)); false on error.
bool write_pid(int fd, pid_t pid);
bool write_pid_path(const std::string& path, pid_t pid);
// Reads a whole file through one open and read(2) calls of 64 KiB; returns
// the number of lines, or -1.
long read_count_lines(const std::string& path);
std::string read_text(const std::string& path);

}  // namespace cgbench
