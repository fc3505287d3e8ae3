// What a kernel's VFS does for a shell on cgroupfs, which fs::CgroupFs
// leaves to its front end: path walks with permission checks, whole-file
// reads, one-write writes; and the path-to-cgroup mapping of move/transfer.
#include <algorithm>
#include <cerrno>

#include "tools/cgsh/shell.h"

namespace cgcore::cgsh {

namespace {

// Reads a whole file by inode.
Result<std::string> read_ino(fs::CgroupFs& fs, fs::Ino ino, const fs::Caller& caller) {
  Result<std::unique_ptr<fs::OpenFile>> f = fs.open(ino, true, false, caller);
  if (!f.ok()) return f.status();
  std::string out;
  for (;;) {
    Result<std::string> chunk = fs.read(**f, out.size(), 1 << 20);
    if (!chunk.ok()) return chunk.status();
    if (chunk->empty()) break;
    out += chunk.value();
  }
  return out;
}

}  // namespace

// The VFS's path walk: each directory on the way needs search (x)
// permission (root passes, as with CAP_DAC_OVERRIDE). fs::resolve has no
// caller, so the front end checks it, as a kernel VFS would for FUSE.
Result<fs::Ino> Shell::walk(std::string_view path) {
  if (path.empty() || path[0] != '/') return Status::Error(EINVAL, "paths are absolute");
  fs::Ino ino = fs::kRootIno;
  for (size_t pos = 1; pos <= path.size();) {
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    std::string_view comp = path.substr(pos, end - pos);
    pos = end + 1;
    if (comp.empty() || comp == ".") continue;
    Result<fs::Attr> dir = fs_->getattr(ino);
    if (!dir.ok()) return dir.status();
    if (dir->type != fs::NodeType::kDir) return Status::Error(ENOTDIR, "not a directory");
    if (!permits(*dir, 1)) return Status::Error(EACCES, "permission denied");
    Result<fs::Attr> next = fs_->lookup(ino, comp);
    if (!next.ok()) return next.status();
    ino = next->ino;
  }
  return ino;
}

bool Shell::permits(const fs::Attr& attr, uint32_t mask) const {
  if (caller_.is_root()) return true;
  uint32_t bits;
  if (caller_.uid == attr.uid) bits = (attr.mode >> 6) & 7;
  else if (caller_.gid == attr.gid) bits = (attr.mode >> 3) & 7;
  else bits = attr.mode & 7;
  return (bits & mask) == mask;
}

Result<std::string> Shell::read_file(std::string_view path) {
  Result<fs::Ino> ino = walk(path);
  if (!ino.ok()) return ino.status();
  return read_ino(*fs_, ino.value(), caller_);
}

Status Shell::write_file(std::string_view path, std::string_view data) {
  Result<fs::Ino> ino = walk(path);
  if (!ino.ok()) return ino.status();
  Result<std::unique_ptr<fs::OpenFile>> f = fs_->open(ino.value(), false, true, caller_);
  if (!f.ok()) return f.status();
  return fs_->write(**f, data).status();
}

Result<std::pair<fs::Ino, std::string>> Shell::parent_and_name(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  if (path.empty() || path[0] != '/') return Status::Error(EINVAL, "paths are absolute");
  size_t slash = path.rfind('/');
  std::string_view dir = slash == 0 ? std::string_view("/") : path.substr(0, slash);
  std::string name(path.substr(slash + 1));
  Result<fs::Ino> d = walk(dir);
  if (!d.ok()) return d.status();
  return std::make_pair(d.value(), std::move(name));
}

Result<CgroupPtr> Shell::cgroup_at(std::string_view path) {
  Result<fs::Ino> ino = walk(path);
  if (!ino.ok()) return ino.status();
  Result<fs::Attr> attr = fs_->getattr(ino.value());
  if (!attr.ok()) return attr.status();
  if (attr->type != fs::NodeType::kDir) return Status::Error(ENOTDIR, "not a cgroup directory");
  std::vector<std::string_view> comps;
  for (size_t pos = 0; pos < path.size();) {
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    std::string_view c = path.substr(pos, end - pos);
    if (!c.empty() && c != ".") comps.push_back(c);
    pos = end + 1;
  }
  const fs::Layout& layout = fs_->layout();
  Cgroup* at = nullptr;
  size_t first = 0;
  if (layout.root_hierarchy) {
    at = &layout.root_hierarchy->root();
  } else {
    if (comps.empty()) return Status::Error(EINVAL, "the mount root is not a cgroup");
    for (const fs::LayoutDir& d : layout.dirs)
      if (d.name == comps[0]) at = &d.hierarchy->root();
    if (!at) return Status::Error(ENOENT, "no such hierarchy");
    first = 1;
  }
  CgroupPtr cg(at);
  for (size_t i = first; i < comps.size(); ++i) {
    cg = engine_->find_child(*cg, comps[i]);
    if (!cg) return Status::Error(ENOENT, "no such cgroup");
  }
  return cg;
}

Status Shell::tree_node(fs::Ino ino, const std::string& label, int depth, std::string& out) {
  Result<std::vector<fs::DirEntry>> entries = fs_->readdir(ino, caller_);
  if (!entries.ok()) return entries.status();
  std::sort(entries->begin(), entries->end(),
            [](const fs::DirEntry& a, const fs::DirEntry& b) { return a.name < b.name; });
  std::vector<long> tids;
  for (const fs::DirEntry& e : *entries) {
    if (e.type != fs::NodeType::kFile) continue;
    if (e.name != "tasks" && e.name != "cgroup.threads") continue;
    Result<std::string> text = read_ino(*fs_, e.ino, caller_);
    if (!text.ok()) return text.status();
    size_t pos = 0;
    while (pos < text->size()) {
      size_t end = text->find('\n', pos);
      if (end == std::string::npos) end = text->size();
      if (end > pos) tids.push_back(std::stol(text->substr(pos, end - pos)));
      pos = end + 1;
    }
  }
  std::sort(tids.begin(), tids.end());
  out += std::string(2 * depth, ' ') + label;
  for (size_t i = 0; i < tids.size(); ++i) out += (i ? " " : ": ") + std::to_string(tids[i]);
  out += '\n';
  for (const fs::DirEntry& e : *entries)
    if (e.type == fs::NodeType::kDir)
      if (Status st = tree_node(e.ino, e.name, depth + 1, out); !st.ok()) return st;
  return Status::Ok();
}

Status Shell::tree(std::string_view path, std::string& out) {
  Result<fs::Ino> ino = walk(path);
  if (!ino.ok()) return ino.status();
  Result<fs::Attr> attr = fs_->getattr(ino.value());
  if (!attr.ok()) return attr.status();
  if (attr->type != fs::NodeType::kDir) return Status::Error(ENOTDIR, "not a directory");
  return tree_node(ino.value(), std::string(path), 0, out);
}

}  // namespace cgcore::cgsh
