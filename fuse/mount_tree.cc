#include "fuse/mount_tree.h"

#include <algorithm>

#include "core/parse.h"

namespace cgcore::fuse {

namespace {

// View inodes: bit 63, then the pid (0 for the fixed nodes), then the kind.
constexpr Ino kViewBit = Ino{1} << 63;
constexpr int kKindBits = 3;
enum ViewKind : Ino {
  kViewDir = 1,      // .cgcore
  kViewCgroups = 2,  // .cgcore/cgroups
  kViewSelf = 3,     // .cgcore/self
  kViewPidDir = 4,   // .cgcore/<pid>
  kViewPidCgroup = 5,  // .cgcore/<pid>/cgroup
  kViewDaemon = 6,     // .cgcore/daemon
};

constexpr Ino view_ino(ViewKind kind, Pid pid = 0) {
  return kViewBit | (static_cast<Ino>(pid) << kKindBits) | kind;
}
ViewKind view_kind(Ino ino) { return static_cast<ViewKind>(ino & ((Ino{1} << kKindBits) - 1)); }
Pid view_pid(Ino ino) { return static_cast<Pid>((ino & ~kViewBit) >> kKindBits); }

constexpr Ino kViewDirIno = view_ino(kViewDir);

// A process id as /proc spells it: decimal digits, the first not 0 (so no
// sign, no newline, no leading zero, which the kernel's number rules allow).
std::optional<Pid> parse_pid(std::string_view name) {
  if (name.empty() || name[0] < '1' || name[0] > '9' || name.back() < '0' || name.back() > '9')
    return std::nullopt;
  Result<uint64_t> v = kstrtoull(name, 10);
  if (!v.ok() || v.value() >= static_cast<uint64_t>(kFirstProvisionalId)) return std::nullopt;
  return static_cast<Pid>(v.value());
}

Status err(int e, const char* what) { return Status::Error(e, what); }

// What the VFS answers to a change in a directory whose file system has no
// handler for it: EACCES without write permission (only root has it on the
// views' 0555 directories), else EPERM.
Status view_change_error(const Caller& caller) {
  return caller.is_root() ? err(EPERM, "the /proc views cannot be changed")
                          : err(EACCES, "permission denied");
}

}  // namespace

bool MountTree::is_view(Ino ino) { return (ino & kViewBit) != 0; }

Node to_node(const fs::Attr& a) {
  Node n;
  n.ino = a.ino;
  n.kind = a.type == fs::NodeType::kDir ? NodeKind::kDir : NodeKind::kFile;
  n.mode = a.mode;
  n.uid = a.uid;
  n.gid = a.gid;
  n.nlink = a.nlink;
  n.size = a.size;
  return n;
}

bool MountTree::may(Ino ino, const Caller& caller, int mask) {
  if (caller.is_root()) return true;
  MutexLock lock(fs_.cgroup_mutex());
  return fs_.may_access_locked(ino, caller, mask);
}

bool MountTree::known_pid(Pid pid) {
  Engine& e = fs_.engine();
  if (e.tgid_of(pid).ok()) return true;
  return fs_.resolve_unknown_pid(pid) && e.tgid_of(pid).ok();
}

std::vector<Pid> MountTree::all_tgids() {
  Engine& e = fs_.engine();
  std::vector<Pid> out;
  MutexLock lock(e.cgroup_mutex());
  std::vector<const Cgroup*> stack{&e.default_hierarchy().root()};
  while (!stack.empty()) {
    const Cgroup* c = stack.back();
    stack.pop_back();
    std::vector<Pid> ids = e.cgroup_tgids(*c);
    out.insert(out.end(), ids.begin(), ids.end());
    for (const auto& [name, child] : c->children()) stack.push_back(child);
  }
  std::erase_if(out, is_provisional_id);  // forks in flight are not listed
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// ------------------------------------------------------------ views

Result<Node> MountTree::view_node(Ino ino) {
  Node n;
  n.ino = ino;
  const Pid pid = view_pid(ino);
  switch (view_kind(ino)) {
    case kViewDir:
      if (pid != 0) break;
      n.kind = NodeKind::kDir;
      n.mode = 0555;
      n.nlink = 2;
      return n;
    case kViewCgroups:
      if (pid != 0) break;
      n.kind = NodeKind::kFile;
      n.mode = 0444;
      return n;
    case kViewSelf:
      if (pid != 0) break;
      n.kind = NodeKind::kSymlink;
      n.mode = 0777;
      return n;
    case kViewDaemon:
      if (pid != 0 || daemon_info_.empty()) break;
      n.kind = NodeKind::kFile;
      n.mode = 0444;
      return n;
    case kViewPidDir:
    case kViewPidCgroup: {
      if (pid == 0) break;
      Result<Creds> creds = fs_.engine().creds(pid);
      if (!creds.ok() && !(fs_.resolve_unknown_pid(pid) && (creds = fs_.engine().creds(pid)).ok()))
        return err(ENOENT, "no such process");
      n.uid = creds->euid;
      n.gid = creds->egid;
      if (view_kind(ino) == kViewPidDir) {
        n.kind = NodeKind::kDir;
        n.mode = 0555;
        n.nlink = 2;
      } else {
        n.kind = NodeKind::kFile;
        n.mode = 0444;
      }
      return n;
    }
  }
  return err(ENOENT, "no such node");
}

Result<std::vector<Entry>> MountTree::view_readdir(Ino dir, const Caller& caller) {
  Result<Node> n = view_node(dir);
  if (!n.ok()) return n.status();
  if (n->kind != NodeKind::kDir) return err(ENOTDIR, "not a directory");
  std::vector<Entry> out;
  if (view_kind(dir) == kViewPidDir) {
    out.push_back({"cgroup", view_ino(kViewPidCgroup, view_pid(dir)), NodeKind::kFile});
    return out;
  }
  out.push_back({"cgroups", view_ino(kViewCgroups), NodeKind::kFile});
  if (!daemon_info_.empty()) out.push_back({"daemon", view_ino(kViewDaemon), NodeKind::kFile});
  out.push_back({"self", view_ino(kViewSelf), NodeKind::kSymlink});
  // Named as the caller's pid namespace names them (those it cannot see
  // are not listed, as in its own /proc); the inodes stay the engine's.
  std::vector<Pid> ids = all_tgids(), names = ids;
  if (std::shared_ptr<const fs::PidNamespace> ns = fs_.pid_namespace(caller)) ns->to_caller(names);
  for (size_t i = 0; i < ids.size(); ++i)
    if (names[i] > 0)
      out.push_back({std::to_string(names[i]), view_ino(kViewPidDir, ids[i]), NodeKind::kDir});
  return out;
}

// ------------------------------------------------------------ nodes

Result<Node> MountTree::lookup(Ino dir, std::string_view name, const Caller& caller) {
  if (is_view(dir)) {
    Result<Node> d = view_node(dir);
    if (!d.ok()) return d.status();
    if (d->kind != NodeKind::kDir) return err(ENOTDIR, "not a directory");
    if (view_kind(dir) == kViewPidDir) {
      if (name == "cgroup") return view_node(view_ino(kViewPidCgroup, view_pid(dir)));
      return err(ENOENT, "no such file");
    }
    if (name == "cgroups") return view_node(view_ino(kViewCgroups));
    if (name == "daemon") return view_node(view_ino(kViewDaemon));
    if (name == "self") return view_node(view_ino(kViewSelf));
    std::optional<Pid> pid = parse_pid(name);
    if (!pid) return err(ENOENT, "no such process");
    // The name is a pid in the caller's namespace.
    if (std::shared_ptr<const fs::PidNamespace> ns = fs_.pid_namespace(caller)) {
      Result<Pid> own = ns->from_caller(*pid);
      if (!own.ok()) return err(ENOENT, "no such process");
      pid = *own;
    }
    if (!known_pid(*pid)) return err(ENOENT, "no such process");
    return view_node(view_ino(kViewPidDir, *pid));
  }
  if (dir == fs::kRootIno && name == kViewDirName) return view_node(kViewDirIno);
  if (!may(dir, caller, kMayExec)) {
    // Search permission is checked only on a directory that exists.
    Result<fs::Attr> d = fs_.getattr(dir);
    if (!d.ok()) return d.status();
    if (d->type != fs::NodeType::kDir) return err(ENOTDIR, "not a directory");
    return err(EACCES, "permission denied");
  }
  Result<fs::Attr> a = fs_.lookup(dir, name);
  if (!a.ok()) return a.status();
  return to_node(a.value());
}

Result<Node> MountTree::getattr(Ino ino) {
  if (is_view(ino)) return view_node(ino);
  Result<fs::Attr> a = fs_.getattr(ino);
  if (!a.ok()) return a.status();
  Node n = to_node(a.value());
  if (ino == fs::kRootIno) ++n.nlink;  // .cgcore
  return n;
}

Result<std::vector<Entry>> MountTree::readdir(Ino dir, const Caller& caller) {
  if (is_view(dir)) return view_readdir(dir, caller);
  Result<std::vector<fs::DirEntry>> entries = fs_.readdir(dir, caller);
  if (!entries.ok()) return entries.status();
  std::vector<Entry> out;
  out.reserve(entries->size() + 1);
  if (dir == fs::kRootIno) out.push_back({std::string(kViewDirName), kViewDirIno, NodeKind::kDir});
  for (const fs::DirEntry& e : entries.value())
    out.push_back({e.name, e.ino, e.type == fs::NodeType::kDir ? NodeKind::kDir : NodeKind::kFile});
  return out;
}

Result<Node> MountTree::mkdir(Ino dir, std::string_view name, uint32_t mode, const Caller& caller) {
  if (is_view(dir)) {
    Result<Node> d = view_node(dir);
    if (!d.ok()) return d.status();
    if (d->kind != NodeKind::kDir) return err(ENOTDIR, "not a directory");
    return view_change_error(caller);
  }
  if (dir == fs::kRootIno && name == kViewDirName) return err(EEXIST, "the /proc views live there");
  Result<fs::Attr> a = fs_.mkdir(dir, name, mode, caller);
  if (!a.ok()) return a.status();
  return to_node(a.value());
}

Status MountTree::rmdir(Ino dir, std::string_view name, const Caller& caller) {
  if (is_view(dir)) {
    Result<Node> n = lookup(dir, name, caller);
    if (!n.ok()) return n.status();
    if (n->kind != NodeKind::kDir) return err(ENOTDIR, "not a directory");
    return view_change_error(caller);
  }
  if (dir == fs::kRootIno && name == kViewDirName) {
    if (!caller.is_root()) return err(EACCES, "permission denied");
    return err(EBUSY, "the /proc views are not removed");
  }
  return fs_.rmdir(dir, name, caller);
}

Status MountTree::unlink(Ino dir, std::string_view name, const Caller& caller) {
  if (is_view(dir)) {
    Result<Node> n = lookup(dir, name, caller);
    if (!n.ok()) return n.status();
    if (n->kind == NodeKind::kDir) return err(EISDIR, "is a directory");
    return view_change_error(caller);
  }
  if (dir == fs::kRootIno && name == kViewDirName) return err(EISDIR, "is a directory");
  return fs_.unlink(dir, name, caller);
}

Status MountTree::rename(Ino dir, std::string_view name, Ino new_dir, std::string_view new_name,
                         unsigned flags, const Caller& caller) {
  const bool from_view = is_view(dir), to_view = is_view(new_dir);
  const bool moves_views = (dir == fs::kRootIno && name == kViewDirName) ||
                           (new_dir == fs::kRootIno && new_name == kViewDirName);
  if (from_view || to_view || moves_views) {
    Result<Node> src = lookup(dir, name, caller);
    if (!src.ok()) return src.status();
    if (from_view != to_view) return err(EXDEV, "the /proc views are another file system");
    if (moves_views) return caller.is_root() ? err(EBUSY, "the /proc views are not moved")
                                             : err(EACCES, "permission denied");
    return view_change_error(caller);
  }
  if (flags != 0) return err(EINVAL, "cgroupfs takes no rename flags");
  return fs_.rename(dir, name, new_dir, new_name, caller);
}

Status MountTree::create(Ino dir, std::string_view name, const Caller& caller) {
  Result<Node> d = getattr(dir);
  if (!d.ok()) return d.status();
  if (d->kind != NodeKind::kDir) return err(ENOTDIR, "not a directory");
  // The kernel's lookup_open: no ->create in kernfs (nor procfs).
  return err(EACCES, "cgroupfs has no regular files to create");
}

Status MountTree::make_other(Ino dir, std::string_view name, const Caller& caller) {
  Result<Node> d = getattr(dir);
  if (!d.ok()) return d.status();
  if (d->kind != NodeKind::kDir) return err(ENOTDIR, "not a directory");
  if (is_view(dir) || !may(dir, caller, kMayWrite | kMayExec)) return view_change_error(caller);
  return err(EPERM, "cgroupfs holds only cgroups and their control files");
}

Result<Node> MountTree::setattr(Ino ino, const SetAttr& set, const Caller& caller) {
  Result<Node> n = getattr(ino);
  if (!n.ok()) return n.status();
  const bool changes = set.mode || set.uid || set.gid || set.size || set.times_now ||
                       set.times_explicit;
  if (!changes) return n;
  if (is_view(ino)) return err(EPERM, "the /proc views cannot be changed");
  // The VFS checks every part before changing any (setattr_prepare).
  if (set.size) {
    if (n->kind == NodeKind::kDir) return err(EISDIR, "is a directory");
    if (!may(ino, caller, kMayWrite)) return err(EACCES, "permission denied");
  }
  const bool owner = caller.is_root() || caller.uid == n->uid;
  if (set.times_explicit && !owner) return err(EPERM, "only the owner may set times");
  if (set.times_now && !owner && !may(ino, caller, kMayWrite))
    return err(EACCES, "permission denied");
  if (set.uid || set.gid) {
    Status st = fs_.chown(ino, set.uid.value_or(n->uid), set.gid.value_or(n->gid), caller);
    if (!st.ok()) return st;
  }
  if (set.mode) {
    Status st = fs_.chmod(ino, *set.mode, caller);
    if (!st.ok()) return st;
  }
  // A size (truncation by `>`) and times are accepted and change nothing,
  // as kernfs does.
  return getattr(ino);
}

Status MountTree::access(Ino ino, int mask, const Caller& caller) {
  Result<Node> n = getattr(ino);
  if (!n.ok()) return n.status();
  if (mask == 0) return Status::Ok();
  if (caller.is_root()) {
    // CAP_DAC_OVERRIDE grants everything but executing a file with no x bit.
    if ((mask & kMayExec) && n->kind == NodeKind::kFile && !(n->mode & 0111))
      return err(EACCES, "permission denied");
    return Status::Ok();
  }
  if (is_view(ino)) {
    uint32_t bits = caller.uid == n->uid ? (n->mode >> 6) & 7 : n->mode & 7;
    if (n->kind == NodeKind::kSymlink) bits = 7;
    return (bits & static_cast<uint32_t>(mask)) == static_cast<uint32_t>(mask)
               ? Status::Ok()
               : err(EACCES, "permission denied");
  }
  return may(ino, caller, mask) ? Status::Ok() : err(EACCES, "permission denied");
}

Result<std::string> MountTree::readlink(Ino ino, const Caller& caller) {
  Result<Node> n = getattr(ino);
  if (!n.ok()) return n.status();
  if (n->kind != NodeKind::kSymlink) return err(EINVAL, "not a symlink");
  if (caller.pid <= 0 || !known_pid(caller.pid)) return err(ENOENT, "the caller has no process here");
  Result<Pid> tgid = fs_.engine().tgid_of(caller.pid);
  if (!tgid.ok()) return err(ENOENT, "the caller has no process here");
  // As its own /proc/self: the caller's process id in its pid namespace.
  std::vector<Pid> id{tgid.value()};
  if (std::shared_ptr<const fs::PidNamespace> ns = fs_.pid_namespace(caller)) ns->to_caller(id);
  if (id[0] <= 0) return err(ENOENT, "the caller has no process here");
  return std::to_string(id[0]);
}

// ------------------------------------------------------------ files

Result<std::unique_ptr<Handle>> MountTree::open(Ino ino, bool read, bool write,
                                                const Caller& caller) {
  auto h = std::make_unique<Handle>();
  h->ino_ = ino;
  if (is_view(ino)) {
    Result<Node> n = view_node(ino);
    if (!n.ok()) return n.status();
    if (n->kind == NodeKind::kDir) return err(EISDIR, "is a directory");
    if (write) return err(EACCES, "the /proc views are read-only");
    return h;
  }
  Result<std::unique_ptr<fs::OpenFile>> f = fs_.open(ino, read, write, caller);
  if (!f.ok()) return f.status();
  h->fs_file_ = true;
  MutexLock lock(h->mu_);
  h->file_ = std::move(f.value());
  return h;
}

Result<std::string> MountTree::read(Handle& h, uint64_t offset, size_t size, std::optional<Pid> requester) {
  MutexLock lock(h.mu_);
  if (h.fs_file_) return fs_.read(*h.file_, offset, size, requester);
  if (offset == 0 || !h.view_loaded_) {
    if (view_kind(h.ino_) == kViewCgroups) {
      h.view_ = fs_.proc_cgroups();
    } else if (view_kind(h.ino_) == kViewDaemon) {
      h.view_ = daemon_info_ + (daemon_lines_ ? daemon_lines_() : std::string());
    } else {
      Result<std::string> text = fs_.proc_pid_cgroup(view_pid(h.ino_));
      if (!text.ok()) return text.status();
      h.view_ = std::move(text.value());
    }
    h.view_loaded_ = true;
  }
  if (offset >= h.view_.size()) return std::string();
  return h.view_.substr(offset, size);
}

Result<size_t> MountTree::write(Handle& h, std::string_view data, std::optional<Pid> requester) {
  if (!h.fs_file_) return err(EBADF, "not open for writing");
  MutexLock lock(h.mu_);
  Result<size_t> n = fs_.write(*h.file_, data, requester);
  return n;
}

}  // namespace cgcore::fuse
