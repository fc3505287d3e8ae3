// MountTree: everything a cgcorefs mount shows, VFS-neutral — the fs layer's
// nodes (hierarchies, cgroup directories, control files) plus the views of
// /proc under a directory of their own beside the hierarchies:
//
//   <mount>/.cgcore/cgroups        the text of /proc/cgroups
//   <mount>/.cgcore/<pid>/cgroup   the text of /proc/<pid>/cgroup
//   <mount>/.cgcore/self           a symlink to the caller's process id
// (pids named and listed in the caller's pid namespace, as its own /proc)
//   <mount>/.cgcore/daemon         the serving daemon, when it says (lines
//                                  "server PID", "socket PATH": the control
//                                  socket cgexec asks for supervision on;
//                                  "transport ...": how requests travel)
//
// It answers every operation a VFS sends with the errno the kernel's cgroupfs
// (or procfs, for the views) gives, so the FUSE adapter only translates
// requests and replies. Operations the kernel's cgroupfs has no handler for
// answer as the VFS does then: creating a regular file EACCES (lookup_open
// without ->create), mknod / symlink / link / unlink of a file EPERM.
//
// Inode numbers are the fs layer's (never reused); views live in a separate
// range (bit 63 set), derived from the pid, so no table is kept.
//
// Thread-safety: every method is thread-safe. A Handle belongs to one opener
// but may be used by several threads at once (a shared descriptor); its own
// mutex serialises them.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/locking.h"
#include "fs/cgroupfs.h"

namespace cgcore::fuse {

using fs::Caller;
using fs::Ino;

// The directory holding the /proc views, at the mount root.
inline constexpr std::string_view kViewDirName = ".cgcore";
// The largest write most of the kernel's cgroupfs files accept in one call
// (kernfs' atomic_write_len, PAGE_SIZE); each file's own limit
// (CgroupFs::max_write) decides, E2BIG beyond it.
inline constexpr size_t kMaxWrite = 4096;

enum class NodeKind : uint8_t { kDir, kFile, kSymlink };

struct Node {
  Ino ino = 0;
  NodeKind kind = NodeKind::kDir;
  uint32_t mode = 0;  // permission bits only
  uint32_t uid = 0, gid = 0;
  uint32_t nlink = 1;
  uint64_t size = 0;
};

struct Entry {
  std::string name;
  Ino ino;
  NodeKind kind;
};

// Which attributes a setattr changes (the others are nullopt / false).
struct SetAttr {
  std::optional<uint32_t> mode;
  std::optional<uint32_t> uid, gid;
  std::optional<uint64_t> size;
  // Times: set to "now" (needs owner or write access) or to given values
  // (needs the owner). cgroupfs keeps no times; they are accepted and dropped.
  bool times_now = false, times_explicit = false;
};

// Access masks, as access(2).
inline constexpr int kMayRead = 4, kMayWrite = 2, kMayExec = 1;

class MountTree;

// An open file: a control file of the fs layer, or a view's text.
class Handle {
 public:
  Ino ino() const { return ino_; }
  // Whether poll on it can report changes (cgroup.events and every other
  // fs file; views never change under a reader).
  bool is_fs_file() const { return fs_file_; }
  // The event count of the inode when the file was opened or last read
  // from offset 0 (kernfs' of->event); kept by the FUSE adapter.
  std::atomic<uint64_t> events_seen{0};

 private:
  friend class MountTree;
  Ino ino_ = 0;
  bool fs_file_ = false;
  Mutex mu_;
  std::unique_ptr<fs::OpenFile> file_ CG_GUARDED_BY(mu_);
  std::string view_ CG_GUARDED_BY(mu_);
  bool view_loaded_ CG_GUARDED_BY(mu_) = false;
};

class MountTree {
 public:
  // `daemon_info`: the text of .cgcore/daemon (none if empty).
  explicit MountTree(fs::CgroupFs& fs, std::string daemon_info = {})
      : fs_(fs), daemon_info_(std::move(daemon_info)) {}
  MountTree(const MountTree&) = delete;
  MountTree& operator=(const MountTree&) = delete;

  fs::CgroupFs& fs() const { return fs_; }
  static bool is_view(Ino ino);
  // Lines that follow daemon_info in .cgcore/daemon, produced at each read
  // from offset 0 (thread-safe). Call before the tree is served.
  void set_daemon_lines(std::function<std::string()> lines) { daemon_lines_ = std::move(lines); }

  // ENOENT / ENOTDIR; EACCES without search permission on `dir`. A pid
  // under .cgcore the engine lacks is offered to the fs's pid resolver (the
  // host backend) before ENOENT.
  Result<Node> lookup(Ino dir, std::string_view name, const Caller& caller);
  // ENOENT once the node is gone.
  Result<Node> getattr(Ino ino);
  // The entries of a directory, without "." and ".."; EACCES without read
  // permission.
  Result<std::vector<Entry>> readdir(Ino dir, const Caller& caller);
  // The fs's errnos; EEXIST for .cgcore at the root; EPERM inside .cgcore.
  Result<Node> mkdir(Ino dir, std::string_view name, uint32_t mode, const Caller& caller);
  Status rmdir(Ino dir, std::string_view name, const Caller& caller);
  Status unlink(Ino dir, std::string_view name, const Caller& caller);
  // `flags` are rename2's (RENAME_NOREPLACE...): EINVAL, as kernfs. EXDEV
  // between the views and the hierarchies (separate file systems in the
  // kernel).
  Status rename(Ino dir, std::string_view name, Ino new_dir, std::string_view new_name,
                unsigned flags, const Caller& caller);
  // Creating a regular file: EACCES (or ENOENT / ENOTDIR for a bad dir).
  Status create(Ino dir, std::string_view name, const Caller& caller);
  // mknod, symlink, link: EPERM (or ENOENT / ENOTDIR for a bad dir).
  Status make_other(Ino dir, std::string_view name, const Caller& caller);
  // chmod / chown by the fs's rules; a size is accepted for a file the
  // caller may write (EACCES otherwise; EISDIR for a directory); times as
  // SetAttr says. Views: EPERM. Returns the new attributes.
  Result<Node> setattr(Ino ino, const SetAttr& set, const Caller& caller);
  // access(2): 0 or EACCES (ENOENT if gone).
  Status access(Ino ino, int mask, const Caller& caller);
  // The target of a symlink (.cgcore/self: the caller's process id; ENOENT
  // for a caller the engine does not know).
  Result<std::string> readlink(Ino ino, const Caller& caller);

  // Opens a file: the fs's rules for control files (the opener's
  // credentials are kept for its writes); views are read-only (EACCES for
  // writing); EISDIR for a directory.
  Result<std::unique_ptr<Handle>> open(Ino ino, bool read, bool write, const Caller& caller);
  // Reads at an offset; a read at offset 0 takes a fresh snapshot.
  // `requester`: the task reading (FUSE reports it), whose pid namespace a
  // pid file is listed in (fs::CgroupFs::read); none: the opener.
  Result<std::string> read(Handle& h, uint64_t offset, size_t size,
                           std::optional<Pid> requester = std::nullopt);
  // One write, one command: the fs's errno (E2BIG past the file's limit).
  // `requester` as for read (fs::CgroupFs::write).
  Result<size_t> write(Handle& h, std::string_view data, std::optional<Pid> requester = std::nullopt);

 private:
  Result<Node> view_node(Ino ino);
  Result<std::vector<Entry>> view_readdir(Ino dir, const Caller& caller);
  // Every process id the engine knows (thread-group leaders), sorted.
  std::vector<Pid> all_tgids();
  // The pid's task exists in the engine (asking the resolver once if not).
  bool known_pid(Pid pid);
  bool may(Ino ino, const Caller& caller, int mask);

  fs::CgroupFs& fs_;
  const std::string daemon_info_;  // immutable after construction
  std::function<std::string()> daemon_lines_;  // set before serving
};

// Converts an fs attribute to a node.
Node to_node(const fs::Attr& a);

}  // namespace cgcore::fuse
