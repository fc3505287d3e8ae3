#include "fs/xattrs.h"

namespace cgcore::fs {

namespace {
constexpr int kRead = 4, kWrite = 2;
}

Xattrs::Space Xattrs::space_of(std::string_view name) {
  auto prefixed = [&](std::string_view p) { return name.substr(0, p.size()) == p; };
  if (prefixed("trusted.")) return Space::kTrusted;
  if (prefixed("security.")) return Space::kSecurity;
  if (prefixed("user.")) return Space::kUser;
  return Space::kNone;
}

void Xattrs::sweep_locked() {
  // Nodes that no longer exist (their cgroup was removed).
  for (auto it = attrs_.begin(); it != attrs_.end();) {
    if (it->second.empty() || !fs_.may_access_locked(it->first, Caller{1, 1, {}, 0}, 0)) it = attrs_.erase(it);
    else ++it;
  }
  swept_size_ = attrs_.size();
}

Status Xattrs::set(Ino ino, std::string_view name, std::string_view value, int flags, const Caller& caller) {
  const Space space = space_of(name);
  if (space == Space::kNone) return Status::Error(EOPNOTSUPP, "no such xattr namespace");
  if (name.size() == name.find('.') + 1) return Status::Error(EINVAL, "an empty xattr name");
  if (!fs_.getattr(ino).ok()) return Status::Error(ENOENT, "no such node");
  MutexLock lock(fs_.cgroup_mutex());
  if ((space == Space::kTrusted || space == Space::kSecurity) && !caller.is_root())
    return Status::Error(EPERM, "needs CAP_SYS_ADMIN");
  if (space == Space::kUser && !fs_.may_access_locked(ino, caller, kWrite))
    return Status::Error(EACCES, "permission denied");
  auto& node = attrs_[ino];
  auto it = node.find(std::string(name));
  if (it != node.end() && (flags & kCreate)) return Status::Error(EEXIST, "the xattr exists");
  if (it == node.end() && (flags & kReplace)) return Status::Error(ENODATA, "no such xattr");
  if (space == Space::kUser) {
    size_t count = 0, bytes = 0;
    for (const auto& [n, v] : node)
      if (space_of(n) == Space::kUser && n != name) {
        ++count;
        bytes += v.size();
      }
    if (count + 1 > kMaxUserXattrs || bytes + value.size() > kMaxUserBytes)
      return Status::Error(ENOSPC, "kernfs' user xattr limits");
  }
  node[std::string(name)] = std::string(value);
  if (attrs_.size() > 2 * swept_size_ + 64) sweep_locked();
  return Status::Ok();
}

Result<std::string> Xattrs::get(Ino ino, std::string_view name, const Caller& caller) {
  const Space space = space_of(name);
  if (space == Space::kNone) return Status::Error(EOPNOTSUPP, "no such xattr namespace");
  if (!fs_.getattr(ino).ok()) return Status::Error(ENOENT, "no such node");
  MutexLock lock(fs_.cgroup_mutex());
  if (space == Space::kTrusted && !caller.is_root()) return Status::Error(ENODATA, "no such xattr");
  if (space == Space::kUser && !fs_.may_access_locked(ino, caller, kRead))
    return Status::Error(EACCES, "permission denied");
  auto node = attrs_.find(ino);
  if (node == attrs_.end()) return Status::Error(ENODATA, "no such xattr");
  auto it = node->second.find(std::string(name));
  if (it == node->second.end()) return Status::Error(ENODATA, "no such xattr");
  return it->second;
}

Result<std::string> Xattrs::list(Ino ino, const Caller& caller) {
  if (!fs_.getattr(ino).ok()) return Status::Error(ENOENT, "no such node");
  MutexLock lock(fs_.cgroup_mutex());
  std::string out;
  auto node = attrs_.find(ino);
  if (node == attrs_.end()) return out;
  for (const auto& [n, v] : node->second)
    if (space_of(n) != Space::kTrusted || caller.is_root()) out += n + '\0';
  return out;
}

Status Xattrs::remove(Ino ino, std::string_view name, const Caller& caller) {
  const Space space = space_of(name);
  if (space == Space::kNone) return Status::Error(EOPNOTSUPP, "no such xattr namespace");
  if (!fs_.getattr(ino).ok()) return Status::Error(ENOENT, "no such node");
  MutexLock lock(fs_.cgroup_mutex());
  if ((space == Space::kTrusted || space == Space::kSecurity) && !caller.is_root())
    return Status::Error(EPERM, "needs CAP_SYS_ADMIN");
  if (space == Space::kUser && !fs_.may_access_locked(ino, caller, kWrite))
    return Status::Error(EACCES, "permission denied");
  auto node = attrs_.find(ino);
  if (node == attrs_.end() || node->second.erase(std::string(name)) == 0)
    return Status::Error(ENODATA, "no such xattr");
  if (node->second.empty()) attrs_.erase(node);
  return Status::Ok();
}

}  // namespace cgcore::fs
