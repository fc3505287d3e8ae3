// Xattrs: extended attributes of cgroup directories and control files, as
// the kernel's cgroupfs (kernfs) keeps them: in memory, per node, gone with
// the cgroup.
//
//   trusted.*   root only (CAP_SYS_ADMIN): reading it otherwise is ENODATA,
//               setting or removing EPERM, and listings leave it out;
//   security.*  readable by anyone; set / removed by root only (EPERM; no
//               security module here);
//   user.*      set / removed with write permission on the node, read with
//               read permission (EACCES); at most 128 per node and 128 KiB
//               of values (ENOSPC), kernfs' limits;
//   others      EOPNOTSUPP; a bare "user." (no name) EINVAL.
// ENODATA for a missing name; XATTR_CREATE on an existing one EEXIST,
// XATTR_REPLACE on a missing one ENODATA. ENOENT for a node that is gone.
//
// The store is keyed by inode number, which the fs never reuses: a removed
// cgroup's attributes are never seen again and are dropped the next time
// the store grows past twice the size it had after its last sweep.
//
// Thread-safety: every method is thread-safe; each takes the engine's
// cgroup mutex (through the fs), so a permission check and the change it
// permits happen in one hold. Locking: call with no engine lock held.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fs/cgroupfs.h"

namespace cgcore::fs {

class Xattrs {
 public:
  // XATTR_CREATE / XATTR_REPLACE (linux/xattr.h).
  static constexpr int kCreate = 1, kReplace = 2;
  static constexpr size_t kMaxUserXattrs = 128;
  static constexpr size_t kMaxUserBytes = 128 << 10;

  explicit Xattrs(CgroupFs& fs) : fs_(fs) {}
  Xattrs(const Xattrs&) = delete;
  Xattrs& operator=(const Xattrs&) = delete;

  Status set(Ino ino, std::string_view name, std::string_view value, int flags, const Caller& caller);
  Result<std::string> get(Ino ino, std::string_view name, const Caller& caller);
  // The names the caller may see, each followed by a NUL (listxattr's
  // format).
  Result<std::string> list(Ino ino, const Caller& caller);
  Status remove(Ino ino, std::string_view name, const Caller& caller);

 private:
  enum class Space { kTrusted, kSecurity, kUser, kNone };
  static Space space_of(std::string_view name);
  void sweep_locked() CG_REQUIRES(fs_.cgroup_mutex());

  CgroupFs& fs_;
  std::unordered_map<Ino, std::map<std::string, std::string>> attrs_ CG_GUARDED_BY(fs_.cgroup_mutex());
  size_t swept_size_ CG_GUARDED_BY(fs_.cgroup_mutex()) = 0;
};

}  // namespace cgcore::fs
