// The kernel's views that compatibility-mode processes (cgexec --compat)
// are answered with: which /proc files the supervisor serves, and their
// text. Pure functions over text and the fs layer, so the supervisor's
// system-call handling stays apart from what it answers.
//
// In compatibility mode /sys/fs/cgroup is the mount (tools/cgexec builds the
// namespace): for a v2 layout a bind mount of the mount root; for any other
// layout a read-only tmpfs holding one bind mount per top-level directory
// (each v1 hierarchy, and "unified"), as a systemd hybrid host shows them.
//
// Thread-safety: the functions are reentrant; compat_view_of takes the
// engine's cgroup mutex itself.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "core/types.h"

namespace cgcore::fs {
class CgroupFs;
}

namespace cgcore::supervisor {

// Where compatibility-mode processes find the cgroup hierarchies.
inline constexpr std::string_view kCgroupRoot = "/sys/fs/cgroup";

// One hierarchy of the mount, as the kernel would mount it.
struct CompatHier {
  std::string dir;  // its top-level directory; "" if it is the mount root (v2 layout)
  bool v2 = false;
  // The superblock options after "rw" that the kernel lists for such a
  // mount: "" for cgroup2, ",cpu,cpuacct,release_agent=...,name=x" for v1.
  std::string superopts;
};

struct CompatView {
  std::vector<CompatHier> hiers;
};

// The hierarchies `fs` shows, with their mount options. Locking: no engine
// lock held (takes the cgroup mutex).
CompatView compat_view_of(fs::CgroupFs& fs);

// `path` made absolute against `base` (an absolute directory, used when
// `path` is relative) and normalised lexically: "." and empty components
// dropped, ".." removes the previous component (never above "/"). Symbolic
// links are not followed.
std::string absolute_path(std::string_view base, std::string_view path);

// A /proc file the supervisor answers for compatibility-mode processes.
struct ProcFile {
  enum Kind { kNone, kMounts, kMountinfo, kCgroups, kCgroup } kind = kNone;
  // Whose file: the caller's process or thread, or a pid / tid named in the
  // path (in the caller's pid namespace).
  enum Who { kSelf, kThreadSelf, kPid } who = kSelf;
  Pid pid = 0;  // kPid: the /proc/PID directory
  Pid tid = 0;  // /proc/.../task/TID; 0 if the path names none
};

// Which served file an absolute, normalised path names (kind kNone for
// every other path): /proc/mounts, /proc/cgroups, and mounts, mountinfo,
// cgroup under /proc/self, /proc/thread-self, /proc/PID and their
// task/TID directories.
ProcFile classify_proc_path(std::string_view path);

// The mount table `real` (a /proc/PID/mountinfo) as the kernel would show
// it with the hierarchies mounted at /sys/fs/cgroup: every fuse.cgcorefs
// entry at or below /sys/fs/cgroup whose root lies in a hierarchy of `view`
// becomes a cgroup2 / cgroup entry (root relative to the hierarchy, source
// and type "cgroup2" / "cgroup", the kernel's superblock options); entries
// at or below /sys/fs/cgroup that a later mount covers (the host's own
// cgroup mounts under the overmount) are left out; the rest is unchanged.
std::string rewrite_mountinfo(std::string_view real, const CompatView& view);

// The /proc/PID/mounts text of a mountinfo text (same entries, same order:
// "SOURCE MOUNTPOINT TYPE OPTIONS 0 0", the options being the superblock's
// rw/ro, the mount's flags, then the superblock's other options).
std::string mounts_of_mountinfo(std::string_view mountinfo);

// The hierarchy an absolute, normalised path at /sys/fs/cgroup lies in
// (null for other paths, and for /sys/fs/cgroup itself when it is the
// tmpfs of a directory of hierarchies).
const CompatHier* hier_of_path(std::string_view path, const CompatView& view);

}  // namespace cgcore::supervisor
