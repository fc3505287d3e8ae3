#include "fs/cgroupfs.h"

#include <algorithm>

#include "core/parse.h"

namespace cgcore::fs {

namespace {
constexpr int kIndexBits = 10;
constexpr Ino kIndexMask = (Ino{1} << kIndexBits) - 1;
constexpr int kMayRead = 4, kMayWrite = 2, kMayExec = 1;
}  // namespace

Result<std::unique_ptr<CgroupFs>> CgroupFs::create(Engine& engine, std::string_view spec,
                                                   Backend& backend) {
  Result<Layout> layout = Layout::mount(engine, spec);
  if (!layout.ok()) return layout.status();
  return std::unique_ptr<CgroupFs>(new CgroupFs(engine, std::move(layout.value()), backend, nullptr));
}

Result<std::unique_ptr<CgroupFs>> CgroupFs::create(Engine& engine, std::string_view spec) {
  Result<Layout> layout = Layout::mount(engine, spec);
  if (!layout.ok()) return layout.status();
  auto owned = std::make_unique<VirtualBackend>(engine);
  Backend& backend = *owned;
  return std::unique_ptr<CgroupFs>(
      new CgroupFs(engine, std::move(layout.value()), backend, std::move(owned)));
}

CgroupFs::CgroupFs(Engine& engine, Layout layout, Backend& backend,
                   std::unique_ptr<VirtualBackend> owned_backend)
    : engine_(engine),
      layout_(std::move(layout)),
      owned_backend_(std::move(owned_backend)),
      backend_(backend) {
  build_file_table();
  engine_.add_observer(this);
}

CgroupFs::~CgroupFs() { engine_.remove_observer(this); }

void CgroupFs::build_file_table() {
  files_ = core_file_defs();
  for (size_t id = 0; id < engine_.nr_controllers(); ++id) {
    Controller& c = engine_.controller(static_cast<ControllerId>(id));
    for (const ControlFileSpec& spec : c.files()) {
      FileDef def;
      def.name = spec.name.starts_with('!') ? std::string(spec.name.substr(1))
                                            : std::string(c.name()) + "." + std::string(spec.name);
      def.mode = (spec.read ? 0444 : 0) | (spec.write || spec.register_event ? 0200 : 0);
      def.registers_event = spec.register_event != nullptr;
      def.versions = spec.versions;
      def.scope = spec.scope;
      def.controller = static_cast<ControllerId>(id);
      def.spec = &spec;
      if (spec.max_write) def.max_write = spec.max_write(c);
      files_.push_back(std::move(def));
    }
  }
  if (files_.size() >= kIndexMask) std::abort();  // inode numbering has room for 1023
}

std::string CgroupFs::path_locked(const Cgroup& cgroup) const {
  const LayoutDir* d = layout_.dir_of(cgroup.hierarchy());
  std::string p = d && !d->name.empty() ? "/" + d->name : "";
  if (!cgroup.is_root()) p += cgroup.path();
  return p.empty() ? "/" : p;
}

std::string CgroupFs::node_path_locked(const Node& node) const {
  if (node.kind == Node::kMountRoot) return "/";
  std::string p = path_locked(*node.cgroup);
  if (node.kind == Node::kFile) p += (p == "/" ? "" : "/") + node.file->name;
  return p;
}

Hierarchy* CgroupFs::mounted_hierarchy(HierarchyId id) const {
  for (const LayoutDir& d : layout_.dirs)
    if (d.hierarchy->id() == id) return d.hierarchy;
  return nullptr;
}

Ino CgroupFs::dir_ino(const Cgroup& cgroup) const {
  if (layout_.root_hierarchy && &cgroup == &layout_.root_hierarchy->root()) return kRootIno;
  return cgroup.id() << kIndexBits;
}

Ino CgroupFs::file_ino(const Cgroup& cgroup, std::string_view file) const {
  // Names repeat across versions (cgroup.procs): pick the hierarchy's.
  const uint8_t version = cgroup.hierarchy().is_default() ? kV2 : kV1;
  for (size_t i = 0; i < files_.size(); ++i)
    if (files_[i].name == file && (files_[i].versions & version))
      return (cgroup.id() << kIndexBits) | (i + 1);
  return 0;
}

bool CgroupFs::file_present_locked(const FileDef& def, const Cgroup& cgroup) {
  const Hierarchy& h = cgroup.hierarchy();
  if (!(def.versions & (h.is_default() ? kV2 : kV1))) return false;
  if (def.scope == FileScope::kRootOnly && !cgroup.is_root()) return false;
  if (def.scope == FileScope::kNonRoot && cgroup.is_root()) return false;
  if (def.controller < 0) return true;
  if (&engine_.hierarchy_of_locked(def.controller) != &h) return false;
  return cgroup.is_root() || cgroup.css(def.controller) != nullptr;
}

Css* CgroupFs::file_css_locked(const FileDef& def, Cgroup& cgroup) {
  return cgroup.is_root() ? &engine_.root_css(def.controller) : cgroup.css(def.controller);
}

Result<CgroupFs::Node> CgroupFs::node_locked(Ino ino) {
  if (ino == kRootIno) {
    if (layout_.root_hierarchy) return Node{Node::kCgroupDir, &layout_.root_hierarchy->root()};
    return Node{Node::kMountRoot};
  }
  Cgroup* cg = engine_.find_cgroup_locked(ino >> kIndexBits);
  if (!cg || !layout_.dir_of(cg->hierarchy())) return Status::Error(ENOENT, "no such node");
  const size_t idx = ino & kIndexMask;
  if (idx == 0) {
    if (dir_ino(*cg) != ino) return Status::Error(ENOENT, "no such node");
    return Node{Node::kCgroupDir, cg};
  }
  if (idx > files_.size() || !file_present_locked(files_[idx - 1], *cg))
    return Status::Error(ENOENT, "no such file");
  return Node{Node::kFile, cg, &files_[idx - 1]};
}

CgroupFs::Meta CgroupFs::meta_locked(Ino ino, const Node& node) {
  if (auto it = meta_.find(ino); it != meta_.end()) return it->second;
  switch (node.kind) {
    case Node::kMountRoot:
      return {0755, 0, 0};
    case Node::kCgroupDir:
      return {0755, 0, 0};
    case Node::kFile: {
      // Files start owned by the cgroup's creator (recorded at mkdir).
      Meta m{node.file->mode, 0, 0};
      if (auto it = meta_.find(node.cgroup->id() << kIndexBits | kIndexMask); it != meta_.end()) {
        m.uid = it->second.uid;
        m.gid = it->second.gid;
      }
      return m;
    }
  }
  return {0, 0, 0};
}

Attr CgroupFs::attr_locked(Ino ino, const Node& node) {
  Meta m = meta_locked(ino, node);
  Attr a;
  a.ino = ino;
  a.mode = m.mode;
  a.uid = m.uid;
  a.gid = m.gid;
  if (node.kind == Node::kFile) {
    a.type = NodeType::kFile;
    a.nlink = 1;
  } else {
    a.type = NodeType::kDir;
    a.nlink = 2 + static_cast<uint32_t>(node.kind == Node::kMountRoot
                                            ? layout_.dirs.size()
                                            : node.cgroup->children().size());
  }
  return a;
}

bool CgroupFs::may_access_locked(Ino ino, const Caller& caller, int mask) {
  if (caller.is_root()) return true;  // CAP_DAC_OVERRIDE
  Result<Node> n = node_locked(ino);
  if (!n.ok()) return false;
  Meta m = meta_locked(ino, n.value());
  uint32_t bits;
  if (caller.uid == m.uid) {
    bits = (m.mode >> 6) & 7;
  } else if (caller.gid == m.gid ||
             std::find(caller.groups.begin(), caller.groups.end(), m.gid) != caller.groups.end()) {
    bits = (m.mode >> 3) & 7;
  } else {
    bits = m.mode & 7;
  }
  return (bits & mask) == static_cast<uint32_t>(mask);
}

Result<Cgroup*> CgroupFs::cgroup_dir_locked(Ino dir) {
  Result<Node> n = node_locked(dir);
  if (!n.ok()) return n.status();
  if (n->kind == Node::kFile) return Status::Error(ENOTDIR, "not a directory");
  if (n->kind == Node::kMountRoot) return static_cast<Cgroup*>(nullptr);
  return n->cgroup;
}

// ------------------------------------------------------------ node API

Result<Attr> CgroupFs::lookup(Ino dir, std::string_view name) {
  MutexLock lock(engine_.cgroup_mutex());
  Result<Node> n = node_locked(dir);
  if (!n.ok()) return n.status();
  if (n->kind == Node::kFile) return Status::Error(ENOTDIR, "not a directory");
  if (n->kind == Node::kMountRoot) {
    for (const LayoutDir& d : layout_.dirs) {
      if (d.name != name) continue;
      Ino ino = dir_ino(d.hierarchy->root());
      return attr_locked(ino, Node{Node::kCgroupDir, &d.hierarchy->root()});
    }
    return Status::Error(ENOENT, "no such hierarchy");
  }
  Cgroup& cg = *n->cgroup;
  if (auto it = cg.children().find(name); it != cg.children().end())
    return attr_locked(dir_ino(*it->second), Node{Node::kCgroupDir, it->second});
  for (size_t i = 0; i < files_.size(); ++i) {
    if (files_[i].name != name || !file_present_locked(files_[i], cg)) continue;
    Ino ino = (cg.id() << kIndexBits) | (i + 1);
    return attr_locked(ino, Node{Node::kFile, &cg, &files_[i]});
  }
  return Status::Error(ENOENT, "no such file or directory");
}

Result<Attr> CgroupFs::getattr(Ino ino) {
  MutexLock lock(engine_.cgroup_mutex());
  Result<Node> n = node_locked(ino);
  if (!n.ok()) return n.status();
  return attr_locked(ino, n.value());
}

Result<std::vector<DirEntry>> CgroupFs::readdir(Ino dir, const Caller& caller) {
  MutexLock lock(engine_.cgroup_mutex());
  Result<Node> n = node_locked(dir);
  if (!n.ok()) return n.status();
  if (n->kind == Node::kFile) return Status::Error(ENOTDIR, "not a directory");
  if (!may_access_locked(dir, caller, kMayRead)) return Status::Error(EACCES, "permission denied");
  std::vector<DirEntry> out;
  if (n->kind == Node::kMountRoot) {
    for (const LayoutDir& d : layout_.dirs)
      out.push_back({d.name, dir_ino(d.hierarchy->root()), NodeType::kDir});
    return out;
  }
  Cgroup& cg = *n->cgroup;
  for (size_t i = 0; i < files_.size(); ++i)
    if (file_present_locked(files_[i], cg))
      out.push_back({files_[i].name, (cg.id() << kIndexBits) | (i + 1), NodeType::kFile});
  for (const auto& [name, child] : cg.children())
    out.push_back({name, dir_ino(*child), NodeType::kDir});
  std::sort(out.begin(), out.end(), [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
  return out;
}

Result<Attr> CgroupFs::mkdir(Ino dir, std::string_view name, uint32_t mode, const Caller& caller) {
  MutexLock lock(engine_.cgroup_mutex());
  Result<Cgroup*> parent = cgroup_dir_locked(dir);
  if (!parent.ok()) return parent.status();
  if (!parent.value()) {
    for (const LayoutDir& d : layout_.dirs)
      if (d.name == name) return Status::Error(EEXIST, "a hierarchy of that name is mounted");
    return Status::Error(EPERM, "cgroups are made inside a hierarchy");
  }
  if (!may_access_locked(dir, caller, kMayWrite | kMayExec))
    return Status::Error(EACCES, "permission denied");
  Cgroup& p = *parent.value();
  for (const FileDef& def : files_)
    if (def.name == name && file_present_locked(def, p))
      return Status::Error(EEXIST, "a file of that name exists");
  Result<CgroupPtr> cg = engine_.mkdir_locked(p, name);
  if (!cg.ok()) return cg.status();
  const Ino ino = dir_ino(**cg);
  // A cgroup made below a frozen one is frozen from its first moment.
  if ((*cg)->hierarchy().is_default() && engine_.frozen_locked(**cg))
    frozen_time_[(*cg)->id()].since = std::chrono::steady_clock::now();
  Meta m{mode & 07777, caller.uid, caller.gid};
  meta_[ino] = m;
  if (!caller.is_root() || caller.gid != 0)  // files owned by the creator too
    meta_[(*cg)->id() << kIndexBits | kIndexMask] = m;
  const std::string path = path_locked(**cg);
  log_change_locked({.kind = Change::Kind::kMkdir, .path = path, .mode = m.mode, .uid = m.uid, .gid = m.gid,
                     .id = (*cg)->id()});
  return attr_locked(ino, Node{Node::kCgroupDir, cg->get()});
}

Status CgroupFs::rmdir(Ino dir, std::string_view name, const Caller& caller) {
  std::vector<Pid> tasks;
  Status st = rmdir_once(dir, name, caller, &tasks);
  if (st.err() == EBUSY && !tasks.empty()) {
    // The host learns of exits after the fact: a task the caller has
    // already reaped may still be counted here.
    backend_.settle_exits(tasks);
    st = rmdir_once(dir, name, caller, nullptr);
  }
  if (!st.ok()) return st;
  settle();
  return Status::Ok();
}

Status CgroupFs::rmdir_once(Ino dir, std::string_view name, const Caller& caller, std::vector<Pid>* tasks) {
  {
    MutexLock lock(engine_.cgroup_mutex());
    Result<Cgroup*> parent = cgroup_dir_locked(dir);
    if (!parent.ok()) return parent.status();
    if (!parent.value()) {
      for (const LayoutDir& d : layout_.dirs)
        if (d.name == name) return Status::Error(EBUSY, "a hierarchy is mounted there");
      return Status::Error(ENOENT, "no such directory");
    }
    Cgroup& p = *parent.value();
    auto it = p.children().find(name);
    if (it == p.children().end()) {
      for (const FileDef& def : files_)
        if (def.name == name && file_present_locked(def, p))
          return Status::Error(ENOTDIR, "not a directory");
      return Status::Error(ENOENT, "no such directory");
    }
    if (!may_access_locked(dir, caller, kMayWrite | kMayExec))
      return Status::Error(EACCES, "permission denied");
    Cgroup& cg = *it->second;
    const uint64_t id = cg.id();
    const std::string path = path_locked(cg);
    if (Status st = engine_.rmdir_locked(cg); !st.ok()) {
      if (tasks && st.err() == EBUSY && cg.children().empty()) *tasks = engine_.cgroup_tids(cg);
      return st;
    }
    log_change_locked({.kind = Change::Kind::kRmdir, .path = path});
    for (Ino i = 0; i <= kIndexMask; ++i) meta_.erase(id << kIndexBits | i);
    frozen_time_.erase(id);
    // A v1 parent may now be empty: the release agent's turn (kernel:
    // cgroup1_check_for_release on rmdir).
    if (!p.hierarchy().is_default() && p.notify_on_release()) {
      MutexLock pl(pending_mu_);
      pending_releases_.push_back(CgroupPtr(&p));
    }
  }
  return Status::Ok();
}

Status CgroupFs::unlink(Ino dir, std::string_view name, const Caller& caller) {
  Result<Attr> a = lookup(dir, name);
  if (!a.ok()) return a.status();
  if (a->type == NodeType::kDir) return Status::Error(EISDIR, "is a directory");
  return Status::Error(EPERM, "control files cannot be removed");
}

Status CgroupFs::rename(Ino dir, std::string_view name, Ino new_dir, std::string_view new_name,
                        const Caller& caller) {
  MutexLock lock(engine_.cgroup_mutex());
  Result<Cgroup*> parent = cgroup_dir_locked(dir);
  if (!parent.ok()) return parent.status();
  if (!parent.value()) return Status::Error(EPERM, "hierarchies cannot be renamed");
  Cgroup& p = *parent.value();
  // The VFS's order: the source must exist, then the writer needs write and
  // search access to both directories, and only then does cgroupfs answer
  // (v2: EPERM, a file: ENOTDIR, another parent: EIO).
  auto it = p.children().find(name);
  bool is_file = false;
  if (it == p.children().end()) {
    for (const FileDef& def : files_)
      if (def.name == name && file_present_locked(def, p)) is_file = true;
    if (!is_file) return Status::Error(ENOENT, "no such directory");
  }
  if (!may_access_locked(dir, caller, kMayWrite | kMayExec) ||
      (new_dir != dir && !may_access_locked(new_dir, caller, kMayWrite | kMayExec)))
    return Status::Error(EACCES, "permission denied");
  if (p.hierarchy().is_default()) return Status::Error(EPERM, "cgroup2 does not support rename");
  if (is_file) return Status::Error(ENOTDIR, "only cgroups can be renamed");
  if (new_dir != dir) return Status::Error(EIO, "cgroups are renamed within their parent only");
  // Renaming a directory onto a file: the VFS's ENOTDIR.
  for (const FileDef& def : files_)
    if (def.name == new_name && file_present_locked(def, p))
      return Status::Error(ENOTDIR, "a control file has that name");
  if (new_name != name && p.children().count(std::string(new_name)))
    return Status::Error(EEXIST, "a cgroup of that name exists");
  const std::string path = path_locked(*it->second);
  Status st = engine_.rename_locked(*it->second, new_name);
  if (st.ok()) log_change_locked({.kind = Change::Kind::kRename, .path = path, .text = new_name});
  return st;
}

Status CgroupFs::chmod(Ino ino, uint32_t mode, const Caller& caller) {
  MutexLock lock(engine_.cgroup_mutex());
  Result<Node> n = node_locked(ino);
  if (!n.ok()) return n.status();
  Meta m = meta_locked(ino, n.value());
  if (!caller.is_root() && caller.uid != m.uid)
    return Status::Error(EPERM, "only the owner may change the mode");
  m.mode = mode & 07777;
  meta_[ino] = m;
  const std::string path = node_path_locked(n.value());
  log_change_locked({.kind = Change::Kind::kChmod, .path = path, .mode = m.mode});
  return Status::Ok();
}

Status CgroupFs::chown(Ino ino, uint32_t uid, uint32_t gid, const Caller& caller) {
  MutexLock lock(engine_.cgroup_mutex());
  Result<Node> n = node_locked(ino);
  if (!n.ok()) return n.status();
  Meta m = meta_locked(ino, n.value());
  if (!caller.is_root()) {
    // The VFS rule: an owner may only change the group, to one of its own.
    bool own_group = gid == caller.gid ||
                     std::find(caller.groups.begin(), caller.groups.end(), gid) != caller.groups.end();
    if (caller.uid != m.uid || uid != m.uid || !own_group)
      return Status::Error(EPERM, "operation not permitted");
  }
  m.uid = uid;
  m.gid = gid;
  meta_[ino] = m;
  const std::string path = node_path_locked(n.value());
  log_change_locked({.kind = Change::Kind::kChown, .path = path, .uid = uid, .gid = gid});
  return Status::Ok();
}

Result<std::unique_ptr<OpenFile>> CgroupFs::open(Ino ino, bool read, bool write,
                                                 const Caller& caller) {
  // The opener's pid namespace, for the files that name pids: found before
  // the lock (the host reads /proc); the definition follows from the inode
  // number alone (the table is immutable).
  std::shared_ptr<const PidNamespace> pidns;
  if (const FileDef* def = def_of(ino); def && def->names_pid) pidns = backend_.pid_namespace(caller);
  MutexLock lock(engine_.cgroup_mutex());
  Result<Node> n = node_locked(ino);
  if (!n.ok()) return n.status();
  if (n->kind != Node::kFile) return Status::Error(EISDIR, "is a directory");
  // Only the mode bits decide (root passes them); a direction without a
  // handler fails at read or write time with EINVAL, as on cgroupfs.
  int mask = (read ? kMayRead : 0) | (write ? kMayWrite : 0);
  if (!may_access_locked(ino, caller, mask)) return Status::Error(EACCES, "permission denied");
  auto f = std::make_unique<OpenFile>();
  f->ino_ = ino;
  f->can_read_ = read;
  f->can_write_ = write;
  f->caller_ = caller;
  f->pidns_ = std::move(pidns);
  return f;
}

std::shared_ptr<const PidNamespace> CgroupFs::request_pidns(const OpenFile& file,
                                                            std::optional<Pid> requester) {
  if (!requester || *requester == file.caller_.pid) return file.pidns_;
  Caller who = file.caller_;
  who.pid = *requester;
  return backend_.pid_namespace(who);
}

Result<std::string> CgroupFs::read(OpenFile& file, uint64_t offset, size_t size,
                                   std::optional<Pid> requester) {
  if (!file.can_read_) return Status::Error(EBADF, "not open for reading");
  if (offset == 0 || !file.loaded_) {
    // A pid file's ids are listed under the lock and turned into the
    // reader's namespace after it.
    const FileDef* pid_def = nullptr;
    Result<std::vector<Pid>> ids = std::vector<Pid>{};
    {
      MutexLock lock(engine_.cgroup_mutex());
      Result<Node> n = node_locked(file.ino_);
      if (!n.ok()) return Status::Error(ENODEV, "the cgroup was removed");
      const FileDef& def = *n->file;
      FileContext ctx{*this, engine_, *n->cgroup, file.caller_, {}};
      if (def.read_pids) {
        pid_def = &def;
        ids = def.read_pids(ctx);
      } else {
        if (def.spec ? !def.spec->read : !def.read)
          return Status::Error(EINVAL, "the file is not readable");
        Result<std::string> text =
            def.spec ? def.spec->read(engine_, *file_css_locked(def, *n->cgroup)) : def.read(ctx);
        if (!text.ok()) return text.status();
        file.snapshot_ = std::move(text.value());
      }
    }
    if (pid_def) {
      if (!ids.ok()) return ids.status();
      file.snapshot_ = pid_lines(*pid_def, std::move(ids.value()), request_pidns(file, requester).get());
    }
    file.loaded_ = true;
  }
  if (offset >= file.snapshot_.size()) return std::string();
  return file.snapshot_.substr(offset, size);
}

const FileDef* CgroupFs::def_of(Ino ino) const {
  const size_t idx = ino & kIndexMask;
  return ino != kRootIno && idx >= 1 && idx <= files_.size() ? &files_[idx - 1] : nullptr;
}

size_t CgroupFs::max_write(Ino ino) const {
  const FileDef* def = def_of(ino);
  return def ? def->max_write : 0;
}

std::string CgroupFs::pid_lines(const FileDef& def, std::vector<Pid> ids, const PidNamespace* ns) {
  if (ns) ns->to_caller(ids);
  if (def.sorted_pids) {
    std::erase(ids, Pid{0});
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  }
  std::string out;
  for (Pid id : ids) {
    out += std::to_string(id);
    out += '\n';
  }
  return out;
}

Result<size_t> CgroupFs::write(OpenFile& file, std::string_view data, std::optional<Pid> requester) {
  if (!file.can_write_) return Status::Error(EBADF, "not open for writing");
  // The file's definition follows from its inode number alone (the table is
  // immutable).
  const FileDef* named = def_of(file.ino_);
  if (named && data.size() > named->max_write)
    return Status::Error(E2BIG, "the file takes at most " + std::to_string(named->max_write) +
                                    " bytes in one write");
  if (data.empty()) return size_t{0};  // kernfs never hands a zero-length write on
  const size_t written = data.size();
  // Handlers read a C string: a NUL ends the text (the whole write is taken).
  data = until_nul(data);
  // A pid is resolved in the writer's namespace, and one the engine has not
  // seen yet looked up, before the handler's lock hold, in which the
  // backend's own locks may not be taken.
  Result<Pid> pid = Status::Error(EINVAL, "no process id written");
  Caller writer = file.caller_;  // whom "0" names
  if (requester) writer.pid = *requester;
  if (named && named->names_pid) {
    pid = resolve_written_pid(data, writer, request_pidns(file, requester).get());
    if (pid.ok() && !engine_.tgid_of(*pid).ok()) (void)backend_.resolve_pid(*pid);
    if (pid.ok() && named->moves_process)
      if (Result<Pid> tgid = engine_.tgid_of(*pid); tgid.ok()) backend_.add_new_threads(*tgid);
  }
  // The journal names the task as the backend does, not as the writer's
  // namespace does, with the identity the backend knew it by.
  const Pid resolved = pid.ok() ? *pid : 0;
  std::optional<TaskIdentity> identity;
  if (resolved != 0 && change_log_.load()) identity = backend_.identity(resolved);
  if (named && named->registers_event) {
    Status st = register_event(file, data, writer);
    settle();
    if (!st.ok()) return st;
    return written;
  }
  Status st;
  std::vector<Pid> kill;
  {
    MutexLock lock(engine_.cgroup_mutex());
    Result<Node> n = node_locked(file.ino_);
    if (!n.ok()) return Status::Error(ENODEV, "the cgroup was removed");
    const FileDef* def = n->file;
    if (def->spec ? !def->spec->write : !def->write)
      return Status::Error(EINVAL, "the file is not writable");
    if (def->spec) {
      st = def->spec->write(engine_, *file_css_locked(*def, *n->cgroup), data);
    } else {
      FileContext ctx{*this, engine_, *n->cgroup, file.caller_, {}, std::move(pid)};
      st = def->write(ctx, data);
      kill = std::move(ctx.kill_after_unlock);
    }
    if (st.ok() && change_log_.load()) {
      const std::string path = node_path_locked(n.value());
      log_change_locked({.kind = Change::Kind::kWrite, .path = path, .text = data, .file = def->name,
                         .pid = def->names_pid ? resolved : 0,
                         .identity = def->names_pid ? identity : std::nullopt});
    }
  }
  if (!kill.empty()) backend_.kill_processes(kill);
  settle();
  if (!st.ok()) return st;
  return written;
}

// The kernel's order of checks: the line, the eventfd, the control file's
// descriptor, read permission on it, that it is a regular file of this fs,
// then (all EINVAL, so their order shows nowhere) that it is a file with
// events of the same css and that the handler takes the arguments. The
// listener is not journaled: its descriptors die with the daemon.
Status CgroupFs::register_event(OpenFile& file, std::string_view data, const Caller& writer) {
  Result<EventControlLine> line = parse_event_control(data);
  if (!line.ok()) return line.status();
  Result<Backend::EventFds> fds = backend_.take_event_fds(writer, line->efd, line->cfd);
  if (!fds.ok()) return fds.status();
  const uint64_t dev = mount_dev_.load();
  MutexLock lock(engine_.cgroup_mutex());
  Result<Node> n = node_locked(file.ino_);
  if (!n.ok()) return Status::Error(ENODEV, "the cgroup was removed");
  const bool ours = dev != 0 && fds->control_dev == dev && fds->control_regular;
  Result<Node> control =
      ours ? node_locked(fds->control_ino) : Status::Error(EINVAL, "not a file of this mount");
  if (ours && control.ok() && control->kind == Node::kFile &&
      !may_access_locked(fds->control_ino, file.caller_, kMayRead))
    return Status::Error(EACCES, "no read permission on the control file");
  if (!control.ok() || control->kind != Node::kFile)
    return Status::Error(EINVAL, "the control file is not a cgroup file of this mount");
  const FileDef* def = n->file;
  const FileDef* cdef = control->file;
  if (!cdef->spec || cdef->controller != def->controller)
    return Status::Error(EINVAL, cdef->name + " has no events");
  if (control->cgroup != n->cgroup)
    return Status::Error(EINVAL, "the control file belongs to another cgroup");
  Css* css = file_css_locked(*def, *n->cgroup);
  return def->spec->register_event(engine_, *css, cdef->name, line->args, fds->sink);
}

// ------------------------------------------------------------ paths

Result<Ino> CgroupFs::resolve(std::string_view path) {
  if (path.empty() || path[0] != '/') return Status::Error(EINVAL, "paths are absolute");
  Ino ino = kRootIno;
  size_t pos = 1;
  while (pos < path.size()) {
    size_t end = path.find('/', pos);
    std::string_view comp = path.substr(pos, end == std::string_view::npos ? end : end - pos);
    pos = end == std::string_view::npos ? path.size() : end + 1;
    if (comp.empty() || comp == ".") continue;
    Result<Attr> a = lookup(ino, comp);
    if (!a.ok()) return a.status();
    ino = a->ino;
  }
  return ino;
}

Result<std::string> CgroupFs::read_path(std::string_view path, const Caller& caller) {
  Result<Ino> ino = resolve(path);
  if (!ino.ok()) return ino.status();
  Result<std::unique_ptr<OpenFile>> f = open(ino.value(), true, false, caller);
  if (!f.ok()) return f.status();
  std::string out;
  for (;;) {
    Result<std::string> chunk = read(**f, out.size(), 1 << 20);
    if (!chunk.ok()) return chunk.status();
    if (chunk->empty()) break;
    out += chunk.value();
  }
  return out;
}

Status CgroupFs::write_path(std::string_view path, std::string_view data, const Caller& caller) {
  Result<Ino> ino = resolve(path);
  if (!ino.ok()) return ino.status();
  Result<std::unique_ptr<OpenFile>> f = open(ino.value(), false, true, caller);
  if (!f.ok()) return f.status();
  Result<size_t> n = write(**f, data);
  return n.status();
}

Result<std::string> CgroupFs::path_of(Ino ino) {
  MutexLock lock(engine_.cgroup_mutex());
  Result<Node> n = node_locked(ino);
  if (!n.ok()) return n.status();
  if (n->kind == Node::kMountRoot) return std::string("/");
  std::string path;
  if (const LayoutDir* d = layout_.dir_of(n->cgroup->hierarchy()); d && !d->name.empty()) path = "/" + d->name;
  if (!n->cgroup->is_root()) path += n->cgroup->path();
  if (n->kind == Node::kFile) path += "/" + n->file->name;
  return path.empty() ? std::string("/") : path;
}

// ------------------------------------------------------------ /proc views

std::string CgroupFs::proc_cgroups() {
  MutexLock lock(engine_.cgroup_mutex());
  std::string out = "#subsys_name\thierarchy\tnum_cgroups\tenabled\n";
  for (size_t id = 0; id < engine_.nr_controllers(); ++id) {
    Controller& c = engine_.controller(static_cast<ControllerId>(id));
    Hierarchy& h = engine_.hierarchy_of_locked(c.id());
    out += std::string(c.name()) + "\t" + std::to_string(h.id()) + "\t" +
           std::to_string(h.nr_cgroups()) + "\t1\n";
  }
  return out;
}

Result<std::string> CgroupFs::proc_pid_cgroup(Pid pid) {
  Pid probe = pid;
  if (!engine_.task_cgroup(pid, engine_.default_hierarchy()).ok()) {
    // A zombie leader: its process's live threads tell its cgroups.
    Result<std::vector<Pid>> threads = engine_.threads_of(pid);
    if (!threads.ok() || threads->empty()) return Status::Error(ESRCH, "no such task");
    probe = threads->front();
  }
  std::vector<const LayoutDir*> dirs;
  for (const LayoutDir& d : layout_.dirs) dirs.push_back(&d);
  std::sort(dirs.begin(), dirs.end(), [](const LayoutDir* a, const LayoutDir* b) {
    return a->hierarchy->id() > b->hierarchy->id();
  });
  std::vector<std::pair<const LayoutDir*, CgroupPtr>> where;
  for (const LayoutDir* d : dirs) {
    Result<CgroupPtr> cg = engine_.task_cgroup(probe, *d->hierarchy);
    if (!cg.ok()) return Status::Error(ESRCH, "no such task");
    where.emplace_back(d, cg.value());
  }
  MutexLock lock(engine_.cgroup_mutex());
  std::string out;
  for (auto& [d, cg] : where) {
    Hierarchy& h = *d->hierarchy;
    std::string names;
    if (!h.is_default()) {
      h.controllers().for_each([&](ControllerId id) {
        names += (names.empty() ? "" : ",") + std::string(engine_.controller(id).name());
      });
      if (!h.name().empty()) names += (names.empty() ? "name=" : ",name=") + h.name();
    }
    out += std::to_string(h.id()) + ":" + names + ":" + cg->path() + "\n";
  }
  return out;
}

// ------------------------------------------------------------ notifications

void CgroupFs::populated_changed(Cgroup& cgroup, bool populated) {
  if (cgroup.hierarchy().is_default()) {
    if (!cgroup.is_root()) events_.notify(file_ino(cgroup, "cgroup.events"));
    return;
  }
  if (!populated && cgroup.notify_on_release()) {
    MutexLock lock(pending_mu_);
    pending_releases_.push_back(CgroupPtr(&cgroup));
  }
}

uint64_t CgroupFs::frozen_usec_locked(const Cgroup& cgroup) {
  auto it = frozen_time_.find(cgroup.id());
  if (it == frozen_time_.end()) return 0;
  std::chrono::nanoseconds t = it->second.total;
  if (it->second.since) t += std::chrono::steady_clock::now() - *it->second.since;
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(t).count());
}

void CgroupFs::frozen_changed(Cgroup& cgroup, bool frozen) {
  engine_.cgroup_mutex().AssertHeld();  // the engine tells of freezing under it
  if (cgroup.hierarchy().is_default()) {
    FrozenTime& ft = frozen_time_[cgroup.id()];
    const auto now = std::chrono::steady_clock::now();
    if (frozen && !ft.since) {
      ft.since = now;
    } else if (!frozen && ft.since) {
      ft.total += now - *ft.since;
      ft.since.reset();
    }
  }
  // cgroup.events shows "frozen": pollers hear of it as of "populated".
  if (cgroup.hierarchy().is_default() && !cgroup.is_root())
    events_.notify(file_ino(cgroup, "cgroup.events"));
}

void CgroupFs::file_changed(Cgroup& cgroup, std::string_view file) {
  // Only records (any engine lock may be held); a file this hierarchy's
  // kind has not is no inode.
  if (Ino ino = file_ino(cgroup, file); ino != 0) events_.notify(ino);
}

void CgroupFs::run_pending_releases() {
  std::vector<CgroupPtr> pending;
  {
    MutexLock lock(pending_mu_);
    pending.swap(pending_releases_);
  }
  for (CgroupPtr& cg : pending) {
    std::string agent, path;
    {
      MutexLock lock(engine_.cgroup_mutex());
      if (cg->dead() || !cg->notify_on_release() || !cg->children().empty()) continue;
      if (engine_.populated(*cg)) continue;
      agent = release_agent_locked(cg->hierarchy().id());
      path = cg->path();
    }
    if (agent.empty()) continue;  // the kernel runs nothing without an agent
    backend_.release(agent, path);
  }
}

void CgroupFs::settle() {
  run_pending_releases();
  backend_.apply_effects();
}

std::string& CgroupFs::release_agent_locked(HierarchyId id) { return release_agents_[id]; }

}  // namespace cgcore::fs
