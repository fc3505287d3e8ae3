// What cgctl reads and writes: a directory tree with the cgroupfs layout —
// a cgcorefs mount, the kernel's /sys/fs/cgroup (v2, or the tmpfs of v1
// hierarchies a systemd host mounts), or a fabricated copy in a test — and
// the /proc it takes command lines from. Plain POSIX file access, one
// write() per value as cgroupfs expects; nothing here knows cgcore.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace cgcore::cgctl {

// One hierarchy found in a mount.
struct Hierarchy {
  std::string name;  // its directory under the mount ("pids", "cpu,cpuacct"), "" for the mount itself
  std::string dir;   // absolute directory of its root cgroup
  bool v2 = false;   // it has cgroup.controllers
};

// The hierarchies of `mount`: the mount itself when it is a cgroup (it
// holds cgroup.procs: a v2 mount), else every subdirectory that is one
// (hybrid layouts). Symbolic links (the kernel's cpu -> cpu,cpuacct) and
// dot directories (cgcorefs' .cgcore) are skipped. Empty if none, with
// *error saying why (missing directory, not a cgroup mount).
std::vector<Hierarchy> find_hierarchies(const std::string& mount, std::string* error);

// The whole content of a file; nullopt with *err set to the errno on
// failure.
std::optional<std::string> read_file(const std::string& path, int* err = nullptr);

// Opens `path` for writing and writes `data` in one write() call, as
// cgroupfs takes one command per write. Returns 0 or the errno of the open
// or the write (a short write is EIO).
int write_file(const std::string& path, const std::string& data);

// The child cgroups of cgroup directory `dir`, sorted by name (dot entries
// and symbolic links left out). Empty when it cannot be listed.
std::vector<std::string> child_cgroups(const std::string& dir);

// The regular files of cgroup directory `dir`, sorted.
std::vector<std::string> files_of(const std::string& dir);

// The numbers of a list file such as cgroup.procs, in file order; empty
// when it cannot be read.
std::vector<long> read_pids(const std::string& path);

// Process `pid`'s command line from `proc_root`/PID/cmdline, arguments
// joined by spaces; "[comm]" for a process without one (a kernel thread);
// "" if the process is not there.
std::string command_line(const std::string& proc_root, long pid);

// Text with its trailing newline removed.
std::string chomp(std::string text);

}  // namespace cgcore::cgctl
