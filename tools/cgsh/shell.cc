// The line reader: words, asserts, what a line prints, and the Interpreter.
// The commands themselves are in commands.cc.
#include "tools/cgsh/shell.h"

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "tools/cgsh/text.h"

namespace cgcore::cgsh {

namespace {

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
  Result<BuiltinControllers> builtins = register_builtin_controllers(*sh->engine_, builtin);
  if (!builtins.ok()) return builtins.status();
  sh->controllers_ = *builtins;
  Result<std::unique_ptr<fs::CgroupFs>> f = fs::CgroupFs::create(*sh->engine_, options.layout);
  if (!f.ok())
    return Status::Error(f.err(), "layout '" + options.layout + "': " + f.status().message());
  sh->fs_ = std::move(f.value());
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
  const bool is_assert = t.substr(0, 6) == "assert" &&
                         (t.size() == 6 || std::isspace(static_cast<unsigned char>(t[6])));
  if (is_assert) {
    Outcome o = run_assert_line(t, lineno);
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
  deliver_releases(o);
  std::string out = printed(std::move(o.out));
  if (!o.status.ok()) {
    failed_ = true;
    out += error_line(o.status);
  }
  return out;
}

void Shell::deliver_releases(Outcome& o) {
  fs_->run_pending_releases();
  const std::vector<std::pair<std::string, std::string>> all = fs_->virtual_backend()->released();
  for (size_t i = releases_printed_; i < all.size(); ++i)
    o.out += printed("release_agent " + all[i].first + " " + all[i].second);
  releases_printed_ = all.size();
}

Shell::Outcome Shell::run_assert_line(std::string_view line, int lineno) {
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
    return {Status::Error(EINVAL, "bad assert"), where + usage("assert").message() + "\n"};
  }
  if (cmd.empty())
    return {Status::Error(EINVAL, "bad assert"), where + "assert needs a command\n"};
  if (is_op(cmd[0], "assert"))
    return {Status::Error(EINVAL, "bad assert"), where + "asserts do not nest\n"};

  Outcome o = execute(cmd);
  deliver_releases(o);

  const std::string what = where + join(cmd) + ": ";
  auto got_error = [&] {
    std::string msg =
        o.status.message().empty() ? std::strerror(o.status.err()) : o.status.message();
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
        return {Status::Error(EINVAL, "assertion"),
                what + "expected " + expected_text + ", got success\n"};
      if (o.status.err() != expected_err)
        return {Status::Error(EINVAL, "assertion"),
                what + "expected " + expected_text + ", got " + got_error() + "\n"};
      return {};
    case kOk:
      if (!o.status.ok())
        return {Status::Error(EINVAL, "assertion"),
                what + "expected success, got " + got_error() + "\n"};
      return {};
  }
  return {};
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
