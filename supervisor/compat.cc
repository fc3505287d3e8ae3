#include "supervisor/compat.h"

#include <sstream>

#include "core/parse.h"
#include "fs/cgroupfs.h"

namespace cgcore::supervisor {

namespace {

std::vector<std::string_view> split_view(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t end = s.find(sep, start);
    if (end == std::string_view::npos) {
      out.push_back(s.substr(start));
      break;
    }
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3') {
      out.push_back(static_cast<char>(((s[i + 1] - '0') << 6) | ((s[i + 2] - '0') << 3) | (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Whether `path` is `dir` or lies below it.
bool at_or_below(std::string_view path, std::string_view dir) {
  if (dir == "/") return true;
  return path == dir || (path.size() > dir.size() && path.substr(0, dir.size()) == dir && path[dir.size()] == '/');
}

// One mountinfo line, split into its fields.
struct MountLine {
  std::vector<std::string> before;  // id, parent, major:minor, root, mount point, mount options, optional...
  std::string fstype, source, superopts;
  bool ok = false;
  std::string mount_point() const { return unescape(before[4]); }
};

MountLine parse_line(std::string_view line) {
  MountLine m;
  std::vector<std::string_view> f;
  for (std::string_view w : split_view(line, ' '))
    if (!w.empty()) f.push_back(w);
  size_t dash = 0;
  while (dash < f.size() && f[dash] != "-") ++dash;
  if (dash < 6 || dash + 3 > f.size()) return m;
  for (size_t i = 0; i < dash; ++i) m.before.emplace_back(f[i]);
  m.fstype = f[dash + 1];
  m.source = f[dash + 2];
  m.superopts = dash + 3 < f.size() ? std::string(f[dash + 3]) : "";
  m.ok = true;
  return m;
}

std::string join_line(const MountLine& m) {
  std::string out;
  for (const std::string& w : m.before) out += w + " ";
  out += "- " + m.fstype + " " + m.source + " " + m.superopts;
  return out;
}

}  // namespace

CompatView compat_view_of(fs::CgroupFs& fs) {
  CompatView view;
  Engine& engine = fs.engine();
  MutexLock lock(fs.cgroup_mutex());
  for (const fs::LayoutDir& d : fs.layout().dirs) {
    CompatHier h;
    h.dir = d.name;
    h.v2 = d.hierarchy->is_default();
    if (!h.v2) {
      // The kernel's order: controllers, then release_agent, then name.
      d.hierarchy->controllers().for_each(
          [&](ControllerId id) { h.superopts += "," + std::string(engine.controller(id).name()); });
      if (const std::string& agent = fs.release_agent_locked(d.hierarchy->id()); !agent.empty())
        h.superopts += ",release_agent=" + agent;
      if (!d.hierarchy->name().empty()) h.superopts += ",name=" + d.hierarchy->name();
    }
    view.hiers.push_back(std::move(h));
  }
  return view;
}

std::string absolute_path(std::string_view base, std::string_view path) {
  std::vector<std::string_view> parts;
  auto add = [&](std::string_view p) {
    for (std::string_view c : split_view(p, '/')) {
      if (c.empty() || c == ".") continue;
      if (c == "..") {
        if (!parts.empty()) parts.pop_back();
        continue;
      }
      parts.push_back(c);
    }
  };
  if (path.empty() || path[0] != '/') add(base);
  add(path);
  std::string out;
  for (std::string_view c : parts) out += "/" + std::string(c);
  return out.empty() ? "/" : out;
}

ProcFile classify_proc_path(std::string_view path) {
  ProcFile pf;
  if (path == "/proc/mounts") {
    pf.kind = ProcFile::kMounts;
    return pf;
  }
  if (path == "/proc/cgroups") {
    pf.kind = ProcFile::kCgroups;
    return pf;
  }
  if (path.substr(0, 6) != "/proc/") return pf;
  std::vector<std::string_view> c = split_view(path.substr(6), '/');
  // DIR FILE, or DIR task TID FILE.
  if (c.size() != 2 && !(c.size() == 4 && c[1] == "task")) return pf;
  ProcFile out;
  if (c[0] == "self") {
    out.who = ProcFile::kSelf;
  } else if (c[0] == "thread-self") {
    if (c.size() == 4) return pf;  // thread-self has no task directory
    out.who = ProcFile::kThreadSelf;
  } else {
    Result<int32_t> pid = kstrtoint(c[0], 10);
    if (!pid.ok() || *pid <= 0 || c[0][0] == '+' || c[0][0] == '0') return pf;
    out.who = ProcFile::kPid;
    out.pid = *pid;
  }
  if (c.size() == 4) {
    Result<int32_t> tid = kstrtoint(c[2], 10);
    if (!tid.ok() || *tid <= 0 || c[2][0] == '+' || c[2][0] == '0') return pf;
    out.tid = *tid;
  }
  const std::string_view file = c.back();
  if (file == "mounts") out.kind = ProcFile::kMounts;
  else if (file == "mountinfo") out.kind = ProcFile::kMountinfo;
  else if (file == "cgroup") out.kind = ProcFile::kCgroup;
  else return pf;
  return out;
}

namespace {

// The hierarchy a fuse.cgcorefs entry's root lies in, and the root relative
// to it; null if none (the mount root of a directory of hierarchies, the
// /proc views).
const CompatHier* hier_of_root(const std::string& root, const CompatView& view, std::string* rel) {
  if (view.hiers.size() == 1 && view.hiers[0].dir.empty()) {
    *rel = root;
    return &view.hiers[0];
  }
  const std::string_view r = std::string_view(root).substr(root.empty() ? 0 : 1);
  const size_t slash = r.find('/');
  const std::string_view first = r.substr(0, slash);
  for (const CompatHier& h : view.hiers) {
    if (h.dir.empty() || h.dir != first) continue;
    *rel = slash == std::string_view::npos ? "/" : std::string(r.substr(slash));
    return &h;
  }
  return nullptr;
}

std::string escape(std::string_view s) {
  std::string out;
  for (char ch : s) {
    if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\\') {
      const auto u = static_cast<unsigned char>(ch);
      out += '\\';
      out += static_cast<char>('0' + ((u >> 6) & 7));
      out += static_cast<char>('0' + ((u >> 3) & 7));
      out += static_cast<char>('0' + (u & 7));
    } else {
      out += ch;
    }
  }
  return out;
}

}  // namespace

std::string rewrite_mountinfo(std::string_view real, const CompatView& view) {
  std::vector<std::string_view> lines = split_view(real, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  std::vector<MountLine> parsed;
  parsed.reserve(lines.size());
  for (std::string_view l : lines) parsed.push_back(parse_line(l));
  std::string out;
  for (size_t i = 0; i < parsed.size(); ++i) {
    MountLine& m = parsed[i];
    if (!m.ok) {
      out += std::string(lines[i]) + "\n";
      continue;
    }
    const std::string mp = m.mount_point();
    if (at_or_below(mp, kCgroupRoot)) {
      bool covered = false;
      for (size_t j = i + 1; j < parsed.size() && !covered; ++j)
        covered = parsed[j].ok && at_or_below(mp, parsed[j].mount_point());
      if (covered) continue;
      std::string rel;
      const CompatHier* h =
          m.fstype == "fuse.cgcorefs" ? hier_of_root(unescape(m.before[3]), view, &rel) : nullptr;
      if (h) {
        m.before[3] = escape(rel);
        m.fstype = m.source = h->v2 ? "cgroup2" : "cgroup";
        const std::string rw = m.superopts.rfind("ro", 0) == 0 ? "ro" : "rw";
        m.superopts = rw + h->superopts;
      }
    }
    out += join_line(m) + "\n";
  }
  return out;
}

std::string mounts_of_mountinfo(std::string_view mountinfo) {
  std::string out;
  for (std::string_view l : split_view(mountinfo, '\n')) {
    if (l.empty()) continue;
    MountLine m = parse_line(l);
    if (!m.ok) continue;
    // The kernel's order: ro if the mount or the superblock is, the
    // superblock's generic flags, the mount's flags, then the file
    // system's own options.
    std::vector<std::string_view> mopts = split_view(m.before[5], ',');
    std::vector<std::string_view> sopts = split_view(m.superopts, ',');
    const bool ro = (!mopts.empty() && mopts[0] == "ro") || (!sopts.empty() && sopts[0] == "ro");
    std::string opts = ro ? "ro" : "rw";
    auto generic = [](std::string_view o) { return o == "sync" || o == "dirsync" || o == "mand" || o == "lazytime"; };
    for (size_t k = 1; k < sopts.size(); ++k)
      if (generic(sopts[k])) opts += "," + std::string(sopts[k]);
    for (size_t k = 1; k < mopts.size(); ++k) opts += "," + std::string(mopts[k]);
    for (size_t k = 1; k < sopts.size(); ++k)
      if (!generic(sopts[k])) opts += "," + std::string(sopts[k]);
    out += m.source + " " + m.before[4] + " " + m.fstype + " " + opts + " 0 0\n";
  }
  return out;
}

const CompatHier* hier_of_path(std::string_view path, const CompatView& view) {
  if (!at_or_below(path, kCgroupRoot)) return nullptr;
  if (view.hiers.size() == 1 && view.hiers[0].dir.empty()) return &view.hiers[0];
  std::string_view rest = path.substr(kCgroupRoot.size());
  if (rest.empty()) return nullptr;  // the tmpfs
  rest.remove_prefix(1);
  const std::string_view first = rest.substr(0, rest.find('/'));
  for (const CompatHier& h : view.hiers)
    if (!h.dir.empty() && h.dir == first) return &h;
  return nullptr;
}

}  // namespace cgcore::supervisor
