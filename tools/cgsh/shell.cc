#include "tools/cgsh/shell.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "controllers/memory.h"
#include "controllers/memrlimit.h"
#include "controllers/registry.h"

namespace cgcore::cgsh {

namespace {

Status usage(std::string_view text) {
  return Status::Error(EINVAL, "usage: " + std::string(text));
}

bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

bool valid_name(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), is_name_char);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// A decimal integer, optionally negative, nothing else.
std::optional<int64_t> parse_int(std::string_view s) {
  bool neg = !s.empty() && s[0] == '-';
  if (neg) s.remove_prefix(1);
  if (s.empty() || s.size() > 18) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return neg ? -v : v;
}

// BYTES: a decimal number with an optional K, M, G or T suffix (powers of
// 1024, either case), optionally negative (the controllers refuse it).
std::optional<int64_t> parse_bytes(std::string_view s) {
  int64_t mult = 1;
  if (!s.empty()) {
    switch (s.back()) {
      case 'k': case 'K': mult = int64_t{1} << 10; break;
      case 'm': case 'M': mult = int64_t{1} << 20; break;
      case 'g': case 'G': mult = int64_t{1} << 30; break;
      case 't': case 'T': mult = int64_t{1} << 40; break;
      default: break;
    }
    if (mult != 1) s.remove_suffix(1);
  }
  std::optional<int64_t> v = parse_int(s);
  if (!v || *v > INT64_MAX / mult || *v < INT64_MIN / mult) return std::nullopt;
  return *v * mult;
}

// An errno name as errno_name() prints it, falling back to glibc's name for
// errnos the engine's table lacks (EOVERFLOW...).
std::string errno_string(int err) {
  std::string name = errno_name(err);
  if (name.size() > 1 && std::isdigit(static_cast<unsigned char>(name[1]))) {
    if (const char* n = strerrorname_np(err)) name = n;
  }
  return name;
}

// The errno a name means (aliases accepted), or 0.
int errno_of(std::string_view name) {
  if (name == "EWOULDBLOCK") return EAGAIN;
  if (name == "ENOTSUP") return EOPNOTSUPP;
  for (int e = 1; e < 134; ++e)
    if (errno_string(e) == name) return e;
  return 0;
}

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

std::string error_line(const Status& st) {
  std::string msg = st.message().empty() ? std::strerror(st.err()) : st.message();
  return "error: " + errno_string(st.err()) + ": " + one_line(msg) + "\n";
}

// C-style quoting for assertion messages (one line).
std::string quote(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string join(std::span<const Word> words, std::string_view sep = " ") {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i) out += sep;
    out += words[i].text;
  }
  return out;
}

bool is_op(const Word& w, std::string_view op) { return !w.quoted && w.text == op; }

// What a command prints, ending in a newline unless empty.
std::string printed(std::string out) {
  if (!out.empty() && out.back() != '\n') out += '\n';
  return out;
}

constexpr std::string_view kHelp =
    "mkdir PATH | rmdir PATH | mv PATH NEWPATH | ls [PATH] | cat PATH\n"
    "echo [-n] TEXT [> PATH]        write TEXT and a newline to PATH (or print it)\n"
    "chown UID[:GID] PATH | chmod OCTAL PATH\n"
    "spawn NAME [--uid U] [--gid G] [--suid S] [--parent $P]\n"
    "fork NAME $P | thread NAME $P | exit $T | kill $P | exec $P\n"
    "charge $P BYTES | uncharge $P BYTES | mmap $P BYTES | munmap $P BYTES\n"
    "move DEST $P... | transfer SRC DEST | inject alloc N\n"
    "as UID[:GID] [--pid $P] COMMAND...\n"
    "cgroup $T | cgroups | tree [PATH] | check | help\n"
    "assert COMMAND... == TEXT | assert COMMAND... fails ERRNO | assert COMMAND... ok\n";

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

// ------------------------------------------------------------ Shell

Result<std::unique_ptr<Shell>> Shell::create(const Options& options) {
  if (options.cpus == 0 || options.cpus > 4096)
    return Status::Error(EINVAL, "cpus must be 1..4096");
  if (options.nodes == 0 || options.nodes > 1024)
    return Status::Error(EINVAL, "nodes must be 1..1024");
  std::unique_ptr<Shell> sh(new Shell);
  sh->engine_ = std::make_unique<Engine>();
  BuiltinOptions builtin;
  builtin.cpuset_topology = CpusetTopology::uniform(options.cpus, options.nodes);
  if (Status st = register_builtin_controllers(*sh->engine_, builtin); !st.ok()) return st;
  Result<std::unique_ptr<fs::CgroupFs>> f = fs::CgroupFs::create(*sh->engine_, options.layout);
  if (!f.ok())
    return Status::Error(f.err(), "layout '" + options.layout + "': " + f.status().message());
  sh->fs_ = std::move(f.value());
  Shell* self = sh.get();
  sh->fs_->set_release_sink([self](const std::string& agent, const std::string& path) {
    self->releases_.push_back("release_agent " + agent + " " + path);
  });
  SpawnOptions init;
  init.pid = 1;
  if (Result<Pid> p = sh->engine_->spawn(init); !p.ok()) return p.status();
  sh->caller_ = fs::Caller{.uid = 0, .gid = 0, .groups = {}, .pid = 1};
  return sh;
}

Shell::~Shell() = default;

std::optional<Pid> Shell::var(const std::string& name) const {
  auto it = vars_.find(name);
  if (it == vars_.end()) return std::nullopt;
  return it->second;
}

// ------------------------------------------------------------ words

Result<std::vector<Word>> Shell::tokenize(std::string_view line, bool stop_at_eq,
                                          size_t* rest) const {
  std::vector<Word> words;
  const size_t n = line.size();
  size_t i = 0;
  std::string unknown;  // the first unknown $NAME of the current word
  // Appends the value of the $NAME at line[i] (line[i] == '$'), advancing i.
  auto expand = [&](std::string& out) -> Status {
    size_t j = i + 1;
    std::string name;
    if (j < n && line[j] == '{') {
      size_t close = line.find('}', j);
      if (close == std::string_view::npos) return Status::Error(EINVAL, "unterminated ${");
      name = std::string(line.substr(j + 1, close - j - 1));
      i = close + 1;
    } else {
      while (j < n && is_name_char(line[j])) ++j;
      name = std::string(line.substr(i + 1, j - i - 1));
      i = j;
    }
    if (name.empty()) {
      out += '$';
      return Status::Ok();
    }
    std::optional<Pid> v = var(name);
    if (!v) {
      // Kept as written; the command fails when it runs (so that
      // `assert ... fails EINVAL` can test it).
      if (unknown.empty()) unknown = name;
      out += "$" + name;
      return Status::Ok();
    }
    out += std::to_string(*v);
    return Status::Ok();
  };
  for (;;) {
    while (i < n && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    if (i >= n || line[i] == '#') break;  // end, or a comment
    Word w;
    while (i < n && !std::isspace(static_cast<unsigned char>(line[i]))) {
      const char c = line[i];
      if (c == '\'') {
        size_t close = line.find('\'', i + 1);
        if (close == std::string_view::npos) return Status::Error(EINVAL, "unterminated quote");
        w.text += line.substr(i + 1, close - i - 1);
        w.quoted = true;
        i = close + 1;
      } else if (c == '"') {
        ++i;
        w.quoted = true;
        for (;;) {
          if (i >= n) return Status::Error(EINVAL, "unterminated quote");
          if (line[i] == '"') {
            ++i;
            break;
          }
          if (line[i] == '\\' && i + 1 < n &&
              (line[i + 1] == '"' || line[i + 1] == '\\' || line[i + 1] == '$')) {
            w.text += line[i + 1];
            i += 2;
          } else if (line[i] == '$') {
            if (Status st = expand(w.text); !st.ok()) return st;
          } else {
            w.text += line[i++];
          }
        }
      } else if (c == '\\') {
        if (i + 1 < n) w.text += line[i + 1];
        w.quoted = true;
        i += 2;
      } else if (c == '$') {
        if (Status st = expand(w.text); !st.ok()) return st;
      } else {
        w.text += c;
        ++i;
      }
    }
    w.unknown = std::move(unknown);
    unknown.clear();
    if (stop_at_eq && is_op(w, "==")) {
      *rest = i;
      return words;
    }
    words.push_back(std::move(w));
  }
  if (rest) *rest = std::string_view::npos;
  return words;
}

Result<std::string> Shell::expand_text(std::string_view text) const {
  text = trim(text);
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"')
    text = text.substr(1, text.size() - 2);
  std::string out;
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (c == '\\' && i + 1 < text.size()) {
      const char e = text[i + 1];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case '\\': out += '\\'; break;
        case '$': out += '$'; break;
        case '"': out += '"'; break;
        default: out += c; out += e; break;
      }
      i += 2;
    } else if (c == '$') {
      size_t j = i + 1;
      std::string name;
      if (j < text.size() && text[j] == '{') {
        size_t close = text.find('}', j);
        if (close == std::string_view::npos) return Status::Error(EINVAL, "unterminated ${");
        name = std::string(text.substr(j + 1, close - j - 1));
        j = close + 1;
      } else {
        while (j < text.size() && is_name_char(text[j])) ++j;
        name = std::string(text.substr(i + 1, j - i - 1));
      }
      if (name.empty()) {
        out += '$';
      } else {
        std::optional<Pid> v = var(name);
        if (!v) return Status::Error(EINVAL, "unknown variable $" + name);
        out += std::to_string(*v);
      }
      i = j;
    } else {
      out += c;
      ++i;
    }
  }
  return out;
}

// ------------------------------------------------------------ lines

std::string Shell::run_line(std::string_view line, int lineno) {
  std::string_view t = trim(line);
  if (t.empty() || t[0] == '#') return "";
  if (t.substr(0, 6) == "assert" && (t.size() == 6 || std::isspace(static_cast<unsigned char>(t[6])))) {
    Outcome o = run_assert(t, lineno);
    if (!o.status.ok()) failed_ = true;
    return o.out;
  }
  Outcome o;
  Result<std::vector<Word>> words = tokenize(t, false, nullptr);
  if (!words.ok()) {
    o.status = words.status();
  } else {
    o = execute(*words);
  }
  fs_->run_pending_releases();
  for (const std::string& r : releases_) o.out += printed(r);
  releases_.clear();
  std::string out = printed(std::move(o.out));
  if (!o.status.ok()) {
    failed_ = true;
    out += error_line(o.status);
  }
  return out;
}

Shell::Outcome Shell::run_assert(std::string_view line, int lineno) {
  size_t rest = std::string_view::npos;
  const std::string where = "assertion failed: line " + std::to_string(lineno) + ": ";
  Result<std::vector<Word>> words = tokenize(line, true, &rest);
  if (!words.ok()) return {words.status(), where + one_line(words.status().message()) + "\n"};
  std::span<const Word> all(*words);
  all = all.subspan(1);  // "assert"
  enum { kEquals, kFails, kOk } form;
  std::span<const Word> cmd;
  std::string expected_text;
  int expected_err = 0;
  if (rest != std::string_view::npos) {
    form = kEquals;
    cmd = all;
    Result<std::string> e = expand_text(line.substr(rest));
    if (!e.ok()) return {e.status(), where + one_line(e.status().message()) + "\n"};
    expected_text = std::move(e.value());
  } else if (!all.empty() && is_op(all.back(), "ok")) {
    form = kOk;
    cmd = all.first(all.size() - 1);
  } else if (all.size() >= 2 && is_op(all[all.size() - 2], "fails")) {
    form = kFails;
    cmd = all.first(all.size() - 2);
    expected_text = all.back().text;
    expected_err = errno_of(expected_text);
    if (!expected_err)
      return {Status::Error(EINVAL, "unknown errno"),
              where + "unknown errno name '" + expected_text + "'\n"};
  } else {
    return {Status::Error(EINVAL, "bad assert"),
            where + "usage: assert COMMAND... (== TEXT | fails ERRNO | ok)\n"};
  }
  if (cmd.empty())
    return {Status::Error(EINVAL, "bad assert"), where + "assert needs a command\n"};
  if (is_op(cmd[0], "assert"))
    return {Status::Error(EINVAL, "bad assert"), where + "asserts do not nest\n"};

  Outcome o = execute(cmd);
  fs_->run_pending_releases();
  for (const std::string& r : releases_) o.out += printed(r);
  releases_.clear();

  const std::string what = where + join(cmd) + ": ";
  auto got_error = [&] {
    std::string msg = o.status.message().empty() ? std::strerror(o.status.err()) : o.status.message();
    return errno_string(o.status.err()) + " (" + one_line(msg) + ")";
  };
  switch (form) {
    case kEquals: {
      std::string out = o.out;
      if (!out.empty() && out.back() == '\n') out.pop_back();
      if (!o.status.ok())
        return {Status::Error(EINVAL, "assertion"),
                what + "expected " + quote(expected_text) + ", got error " + got_error() + "\n"};
      if (out != expected_text)
        return {Status::Error(EINVAL, "assertion"),
                what + "expected " + quote(expected_text) + ", got " + quote(out) + "\n"};
      return {};
    }
    case kFails:
      if (o.status.ok())
        return {Status::Error(EINVAL, "assertion"), what + "expected " + expected_text + ", got success\n"};
      if (o.status.err() != expected_err)
        return {Status::Error(EINVAL, "assertion"),
                what + "expected " + expected_text + ", got " + got_error() + "\n"};
      return {};
    case kOk:
      if (!o.status.ok())
        return {Status::Error(EINVAL, "assertion"), what + "expected success, got " + got_error() + "\n"};
      return {};
  }
  return {};
}

// ------------------------------------------------------------ helpers

Result<Pid> Shell::pid_arg(const Word& w) const {
  std::optional<int64_t> v = parse_int(w.text);
  if (!v || *v < INT32_MIN || *v > INT32_MAX)
    return Status::Error(EINVAL, "expected a task id, got '" + w.text + "'");
  return static_cast<Pid>(*v);
}

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
    if (e.type != fs::NodeType::kFile || (e.name != "tasks" && e.name != "cgroup.threads")) continue;
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

// ------------------------------------------------------------ commands

Shell::Outcome Shell::execute(std::span<const Word> w) {
  Outcome o;
  if (w.empty()) return o;
  for (const Word& word : w)
    if (!word.unknown.empty())
      return {Status::Error(EINVAL, "unknown variable $" + word.unknown), ""};
  const std::string& cmd = w[0].text;
  const size_t argc = w.size() - 1;
  auto fail = [&](Status st) {
    o.status = std::move(st);
    return o;
  };
  auto need = [&](size_t n, std::string_view text) -> bool {
    if (argc == n) return true;
    o.status = usage(text);
    return false;
  };
  MemoryController* memory = dynamic_cast<MemoryController*>(engine_->find_controller("memory"));
  MemrlimitController* memrlimit =
      dynamic_cast<MemrlimitController*>(engine_->find_controller("memrlimit"));

  // ---- the file system
  if (cmd == "mkdir") {
    if (!need(1, "mkdir PATH")) return o;
    if (trim(w[1].text) == "/") return fail(Status::Error(EEXIST, "the mount root exists"));
    auto pn = parent_and_name(w[1].text);
    if (!pn.ok()) return fail(pn.status());
    return fail(fs_->mkdir(pn->first, pn->second, 0755, caller_).status());
  }
  if (cmd == "rmdir") {
    if (!need(1, "rmdir PATH")) return o;
    if (trim(w[1].text) == "/") return fail(Status::Error(EBUSY, "the mount root"));
    auto pn = parent_and_name(w[1].text);
    if (!pn.ok()) return fail(pn.status());
    return fail(fs_->rmdir(pn->first, pn->second, caller_));
  }
  if (cmd == "mv") {
    if (!need(2, "mv PATH NEWPATH")) return o;
    auto from = parent_and_name(w[1].text);
    if (!from.ok()) return fail(from.status());
    auto to = parent_and_name(w[2].text);
    if (!to.ok()) return fail(to.status());
    return fail(fs_->rename(from->first, from->second, to->first, to->second, caller_));
  }
  if (cmd == "ls") {
    if (argc > 1) return fail(usage("ls [PATH]"));
    std::string path = argc ? w[1].text : "/";
    Result<fs::Ino> ino = walk(path);
    if (!ino.ok()) return fail(ino.status());
    Result<fs::Attr> attr = fs_->getattr(ino.value());
    if (!attr.ok()) return fail(attr.status());
    if (attr->type == fs::NodeType::kFile) {
      o.out = path + "\n";
      return o;
    }
    Result<std::vector<fs::DirEntry>> entries = fs_->readdir(ino.value(), caller_);
    if (!entries.ok()) return fail(entries.status());
    std::vector<std::string> names;
    for (const fs::DirEntry& e : *entries) names.push_back(e.name);
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) o.out += n + "\n";
    return o;
  }
  if (cmd == "cat") {
    if (!need(1, "cat PATH")) return o;
    Result<std::string> text = read_file(w[1].text);
    if (!text.ok()) return fail(text.status());
    o.out = std::move(text.value());
    return o;
  }
  if (cmd == "echo") {
    std::span<const Word> args = w.subspan(1);
    bool newline = true;
    if (!args.empty() && is_op(args[0], "-n")) {
      newline = false;
      args = args.subspan(1);
    }
    size_t redir = args.size();
    for (size_t i = 0; i < args.size(); ++i)
      if (is_op(args[i], ">") || is_op(args[i], ">>")) redir = i;
    std::string text = join(args.first(redir)) + (newline ? "\n" : "");
    if (redir == args.size()) {
      o.out = text;
      return o;
    }
    if (redir + 2 != args.size()) return fail(usage("echo [-n] TEXT > PATH"));
    return fail(write_file(args[redir + 1].text, text));
  }
  if (cmd == "chown") {
    if (!need(2, "chown UID[:GID] PATH")) return o;
    const std::string& spec = w[1].text;
    size_t colon = spec.find(':');
    std::optional<int64_t> uid = parse_int(spec.substr(0, colon));
    std::optional<int64_t> gid;
    if (colon != std::string::npos) gid = parse_int(spec.substr(colon + 1));
    if (!uid || *uid < 0 || *uid > UINT32_MAX || (colon != std::string::npos && (!gid || *gid < 0 || *gid > UINT32_MAX)))
      return fail(Status::Error(EINVAL, "bad owner '" + spec + "'"));
    Result<fs::Ino> ino = walk(w[2].text);
    if (!ino.ok()) return fail(ino.status());
    if (!gid) {
      Result<fs::Attr> attr = fs_->getattr(ino.value());
      if (!attr.ok()) return fail(attr.status());
      gid = attr->gid;
    }
    return fail(fs_->chown(ino.value(), static_cast<uint32_t>(*uid), static_cast<uint32_t>(*gid), caller_));
  }
  if (cmd == "chmod") {
    if (!need(2, "chmod OCTAL PATH")) return o;
    const std::string& m = w[1].text;
    uint32_t mode = 0;
    bool okm = !m.empty() && m.size() <= 5;
    for (char c : m) {
      if (c < '0' || c > '7') okm = false;
      else mode = mode * 8 + static_cast<uint32_t>(c - '0');
    }
    if (!okm || mode > 07777) return fail(Status::Error(EINVAL, "bad mode '" + m + "' (octal only)"));
    Result<fs::Ino> ino = walk(w[2].text);
    if (!ino.ok()) return fail(ino.status());
    return fail(fs_->chmod(ino.value(), mode, caller_));
  }

  // ---- processes
  if (cmd == "spawn") {
    if (argc < 1 || !valid_name(w[1].text) || is_op(w[1], "--uid"))
      return fail(usage("spawn NAME [--uid U] [--gid G] [--suid S] [--parent $P]"));
    Pid parent = 1;
    std::optional<uint32_t> uid, gid, suid;
    for (size_t i = 2; i < w.size(); i += 2) {
      if (i + 1 >= w.size()) return fail(usage("spawn NAME [--uid U] [--gid G] [--suid S] [--parent $P]"));
      const std::string& opt = w[i].text;
      std::optional<int64_t> v = parse_int(w[i + 1].text);
      if (!v || *v < 0 || *v > INT32_MAX)
        return fail(Status::Error(EINVAL, "bad value '" + w[i + 1].text + "' for " + opt));
      if (opt == "--uid") uid = static_cast<uint32_t>(*v);
      else if (opt == "--gid") gid = static_cast<uint32_t>(*v);
      else if (opt == "--suid") suid = static_cast<uint32_t>(*v);
      else if (opt == "--parent") parent = static_cast<Pid>(*v);
      else return fail(usage("spawn NAME [--uid U] [--gid G] [--suid S] [--parent $P]"));
    }
    ForkOptions fo;
    fo.share_mm = true;  // vfork + exec, as posix_spawn: nothing is copied
    if (uid || gid || suid) {
      Result<Creds> pc = engine_->creds(parent);
      if (!pc.ok()) return fail(pc.status());
      Creds c = pc.value();
      if (uid) c.uid = c.euid = c.suid = *uid;
      if (uid && !gid) c.gid = c.egid = *uid;
      if (gid) c.gid = c.egid = *gid;
      if (suid) c.suid = *suid;
      fo.creds = c;
    }
    Result<Pid> child = engine_->fork(parent, fo);
    if (!child.ok()) return fail(child.status());
    if (Status st = engine_->exec(child.value()); !st.ok()) {
      (void)engine_->exit_process(child.value());
      return fail(st);
    }
    vars_[w[1].text] = child.value();
    return o;
  }
  if (cmd == "fork" || cmd == "thread") {
    if (argc != 2 || !valid_name(w[1].text)) return fail(usage(cmd + " NAME $P"));
    Result<Pid> from = pid_arg(w[2]);
    if (!from.ok()) return fail(from.status());
    Result<Pid> child = cmd == "fork" ? engine_->fork(from.value()) : engine_->clone_thread(from.value());
    if (!child.ok()) return fail(child.status());
    vars_[w[1].text] = child.value();
    return o;
  }
  if (cmd == "exit" || cmd == "kill" || cmd == "exec") {
    if (!need(1, cmd + " $T")) return o;
    Result<Pid> id = pid_arg(w[1]);
    if (!id.ok()) return fail(id.status());
    if (cmd == "exit") return fail(engine_->exit_thread(id.value()));
    if (cmd == "exec") return fail(engine_->exec(id.value()));
    Result<Pid> tgid = engine_->tgid_of(id.value());  // kill(2) of any thread: its process
    if (!tgid.ok()) return fail(tgid.status());
    return fail(engine_->exit_process(tgid.value()));
  }
  if (cmd == "charge" || cmd == "uncharge" || cmd == "mmap" || cmd == "munmap") {
    if (!need(2, cmd + " $P BYTES")) return o;
    Result<Pid> id = pid_arg(w[1]);
    if (!id.ok()) return fail(id.status());
    std::optional<int64_t> bytes = parse_bytes(w[2].text);
    if (!bytes) return fail(Status::Error(EINVAL, "bad size '" + w[2].text + "'"));
    if ((cmd == "charge" || cmd == "uncharge") && !memory)
      return fail(Status::Error(ENODEV, "no memory controller"));
    if ((cmd == "mmap" || cmd == "munmap") && !memrlimit)
      return fail(Status::Error(ENODEV, "no memrlimit controller"));
    if (cmd == "charge") return fail(memory->charge(*engine_, id.value(), *bytes));
    if (cmd == "uncharge") return fail(memory->uncharge(*engine_, id.value(), *bytes));
    if (cmd == "mmap") return fail(memrlimit->mmap(*engine_, id.value(), *bytes));
    return fail(memrlimit->munmap(*engine_, id.value(), *bytes));
  }

  // ---- transactions and the engine
  if (cmd == "move") {
    if (argc < 2) return fail(usage("move DEST $P..."));
    Result<CgroupPtr> dst = cgroup_at(w[1].text);
    if (!dst.ok()) return fail(dst.status());
    std::vector<Pid> pids;
    for (size_t i = 2; i < w.size(); ++i) {
      Result<Pid> id = pid_arg(w[i]);
      if (!id.ok()) return fail(id.status());
      pids.push_back(id.value());
    }
    return fail(engine_->migrate_processes(pids, **dst));
  }
  if (cmd == "transfer") {
    if (!need(2, "transfer SRC DEST")) return o;
    Result<CgroupPtr> src = cgroup_at(w[1].text);
    if (!src.ok()) return fail(src.status());
    Result<CgroupPtr> dst = cgroup_at(w[2].text);
    if (!dst.ok()) return fail(dst.status());
    return fail(engine_->transfer(**src, **dst));
  }
  if (cmd == "inject") {
    if (argc != 2 || w[1].text != "alloc") return fail(usage("inject alloc N"));
    std::optional<int64_t> nth = parse_int(w[2].text);
    if (!nth || *nth < 0 || *nth > INT32_MAX) return fail(Status::Error(EINVAL, "bad count '" + w[2].text + "'"));
    engine_->TEST_fail_cset_alloc(static_cast<int>(*nth));
    return o;
  }
  if (cmd == "as") {
    if (argc < 2) return fail(usage("as UID[:GID] [--pid $P] COMMAND..."));
    const std::string& spec = w[1].text;
    size_t colon = spec.find(':');
    std::optional<int64_t> uid = parse_int(spec.substr(0, colon));
    std::optional<int64_t> gid = uid;
    if (colon != std::string::npos) gid = parse_int(spec.substr(colon + 1));
    if (!uid || !gid || *uid < 0 || *gid < 0 || *uid > UINT32_MAX || *gid > UINT32_MAX)
      return fail(Status::Error(EINVAL, "bad credentials '" + spec + "'"));
    fs::Caller who{.uid = static_cast<uint32_t>(*uid), .gid = static_cast<uint32_t>(*gid), .groups = {},
                   .pid = 1};
    size_t at = 2;
    if (is_op(w[2], "--pid")) {
      if (w.size() < 5) return fail(usage("as UID[:GID] [--pid $P] COMMAND..."));
      Result<Pid> p = pid_arg(w[3]);
      if (!p.ok()) return fail(p.status());
      who.pid = p.value();
      at = 4;
    }
    fs::Caller saved = caller_;
    caller_ = who;
    o = execute(w.subspan(at));
    caller_ = saved;
    return o;
  }
  if (cmd == "cgroup") {
    if (!need(1, "cgroup $T")) return o;
    Result<Pid> id = pid_arg(w[1]);
    if (!id.ok()) return fail(id.status());
    Result<std::string> text = fs_->proc_pid_cgroup(id.value());
    if (!text.ok()) return fail(text.status());
    o.out = std::move(text.value());
    return o;
  }
  if (cmd == "cgroups") {
    if (!need(0, "cgroups")) return o;
    o.out = fs_->proc_cgroups();
    return o;
  }
  if (cmd == "tree") {
    if (argc > 1) return fail(usage("tree [PATH]"));
    std::string path = argc ? w[1].text : "/";
    return fail(tree(path, o.out));
  }
  if (cmd == "check") {
    if (!need(0, "check")) return o;
    return fail(engine_->check_invariants());
  }
  if (cmd == "help") {
    o.out = std::string(kHelp);
    return o;
  }
  if (cmd == "assert") return fail(Status::Error(EINVAL, "asserts do not nest"));
  return fail(Status::Error(EINVAL, "unknown command '" + cmd + "' (try help)"));
}

// ------------------------------------------------------------ Interpreter

std::string Interpreter::feed(std::string_view line) {
  ++lineno_;
  if (fatal_) return "";
  if (!shell_) {
    std::string_view t = trim(line);
    if (t.empty()) return "";
    if (t[0] == '#') {
      // A directive of the leading comment block: "# key: value".
      std::string_view body = trim(t.substr(1));
      size_t colon = body.find(':');
      if (colon == std::string_view::npos) return "";
      std::string_view key = trim(body.substr(0, colon));
      std::string_view value = trim(body.substr(colon + 1));
      if (key == "layout") {
        if (!fixed_.layout) options_.layout = std::string(value);
      } else if (key == "cpus" || key == "nodes") {
        std::optional<int64_t> v = parse_int(value);
        if (!v || *v <= 0 || *v > 4096) {
          fatal_ = true;
          return error_line(Status::Error(EINVAL, "line " + std::to_string(lineno_) + ": bad " +
                                                      std::string(key) + " directive"));
        }
        if (key == "cpus" && !fixed_.cpus) options_.cpus = static_cast<uint32_t>(*v);
        if (key == "nodes" && !fixed_.nodes) options_.nodes = static_cast<uint32_t>(*v);
      }
      return "";
    }
    Result<std::unique_ptr<Shell>> sh = Shell::create(options_);
    if (!sh.ok()) {
      fatal_ = true;
      return error_line(sh.status());
    }
    shell_ = std::move(sh.value());
  }
  return shell_->run_line(line, lineno_);
}

int Interpreter::exit_status() const {
  if (fatal_) return 2;
  return shell_ && shell_->failed() ? 1 : 0;
}

std::string run_script(std::string_view text, const Options& options, int* status,
                       Interpreter::Fixed fixed) {
  Interpreter in(options, fixed);
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    out += in.feed(text.substr(pos, end - pos));
    pos = end + 1;
  }
  if (status) *status = in.exit_status();
  return out;
}

}  // namespace cgcore::cgsh
