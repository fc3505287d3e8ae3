// cgctl: look at and change a cgroup mount — a cgcorefs mount or the
// kernel's /sys/fs/cgroup, through the same files, so that the two can be
// compared with one tool (docs/cgctl.md).
//
//   cgctl [-m MOUNT] [--json] tree [--no-procs] [PATH]      like systemd-cgls
//   cgctl [-m MOUNT] [--json] top [-b] [-n N] [-d SECONDS]  like systemd-cgtop
//   cgctl [-m MOUNT] [--json] get [-r FILE]... [-v] [-n] PATH...   like cgget
//   cgctl [-m MOUNT] set -r FILE=VALUE [-r ...] PATH...     like cgset
//
// MOUNT: -m, else $CGCORE_MOUNT, else /sys/fs/cgroup. PATH: a cgroup
// relative to the mount ("pids/web", "/pids/web"; "/" is the mount), or an
// absolute path inside it.
#include <poll.h>
#include <signal.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tools/cgctl/cgdir.h"
#include "tools/common/cli.h"

namespace cgcore::cgctl {
namespace {

using Json = nlohmann::ordered_json;
using tools::kExitFailure;
using tools::kExitOk;

struct Global {
  std::string mount;
  std::string proc = "/proc";
  bool json = false;
};

void error(const std::string& msg) { std::fprintf(stderr, "cgctl: %s\n", msg.c_str()); }

// "pids/web", "/pids/web", "MOUNT/pids/web" -> {"/pids/web", "MOUNT/pids/web"}.
struct Where {
  std::string rel;  // "/" or "/a/b", relative to the mount
  std::string dir;  // absolute
};

Where where(const Global& g, std::string path) {
  if (path.rfind(g.mount + "/", 0) == 0 || path == g.mount) path = path.substr(g.mount.size());
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  while (!path.empty() && path[0] == '/') path.erase(0, 1);
  Where w;
  w.rel = "/" + path;
  w.dir = path.empty() ? g.mount : g.mount + "/" + path;
  return w;
}

// ------------------------------------------------------------------ tree

// systemd-cgls's drawing: processes first, then child cgroups, with
// box-drawing branches.
// The cgroups below `dir`; for a mount root that is not a cgroup (a hybrid
// layout), its hierarchies.
std::vector<std::string> children_of(const std::string& dir) {
  if (access((dir + "/cgroup.procs").c_str(), F_OK) == 0) return child_cgroups(dir);
  std::vector<std::string> names;
  std::string why;
  for (const Hierarchy& h : find_hierarchies(dir, &why)) names.push_back(h.name);
  return names;
}

void tree_lines(const Global& g, const std::string& dir, const std::string& prefix, bool procs,
                std::string& out) {
  std::vector<std::string> items;
  if (procs)
    for (long pid : read_pids(dir + "/cgroup.procs")) {
      std::string cmd = command_line(g.proc, pid);
      items.push_back(std::to_string(pid) + (cmd.empty() ? "" : " " + cmd));
    }
  const size_t nprocs = items.size();
  for (const std::string& k : children_of(dir)) items.push_back(k);
  for (size_t i = 0; i < items.size(); ++i) {
    const bool last = i + 1 == items.size();
    out += prefix + (last ? "└─" : "├─") + items[i] + "\n";
    if (i >= nprocs) tree_lines(g, dir + "/" + items[i], prefix + (last ? "  " : "│ "), procs, out);
  }
}

Json tree_json(const Global& g, const std::string& dir, const std::string& rel, bool procs) {
  Json node;
  node["path"] = rel;
  if (procs) {
    Json list = Json::array();
    for (long pid : read_pids(dir + "/cgroup.procs"))
      list.push_back({{"pid", pid}, {"cmdline", command_line(g.proc, pid)}});
    node["processes"] = std::move(list);
  }
  Json kids = Json::array();
  for (const std::string& k : children_of(dir))
    kids.push_back(tree_json(g, dir + "/" + k, rel == "/" ? "/" + k : rel + "/" + k, procs));
  node["children"] = std::move(kids);
  return node;
}

int run_tree(const Global& g, const std::string& path, bool no_procs) {
  Where w = where(g, path.empty() ? "/" : path);
  std::string why;
  if (w.rel == "/") {
    if (find_hierarchies(g.mount, &why).empty()) {
      error(why);
      return kExitFailure;
    }
  } else if (access((w.dir + "/cgroup.procs").c_str(), F_OK) != 0) {
    error(w.dir + ": not a cgroup (no cgroup.procs)");
    return kExitFailure;
  }
  if (g.json) {
    Json doc = {{"mount", g.mount}};
    doc["tree"] = tree_json(g, w.dir, w.rel, !no_procs);
    std::printf("%s\n", doc.dump(2).c_str());
    return kExitOk;
  }
  std::string out = (w.rel == "/" ? g.mount : w.rel) + ":\n";
  tree_lines(g, w.dir, "", !no_procs, out);
  std::fputs(out.c_str(), stdout);
  return kExitOk;
}

// ------------------------------------------------------------------- top

// What one cgroup shows at one moment; counters absent where its
// hierarchy does not keep them (no cpuacct, no memory controller...).
struct Sample {
  std::string rel;
  long tasks = 0;  // processes in the cgroup and its descendants
  std::optional<uint64_t> cpu_ns, memory, io_read, io_write;
};

std::optional<uint64_t> number_file(const std::string& path) {
  std::optional<std::string> t = read_file(path);
  if (!t) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(t->c_str(), &end, 10);
  if (end == t->c_str() || errno) return std::nullopt;
  return v;
}

// v2 cpu.stat's usage_usec, else v1 cpuacct.usage.
std::optional<uint64_t> cpu_ns(const std::string& dir) {
  if (std::optional<std::string> stat = read_file(dir + "/cpu.stat")) {
    size_t p = stat->find("usage_usec ");
    if (p != std::string::npos) return std::strtoull(stat->c_str() + p + 11, nullptr, 10) * 1000;
  }
  return number_file(dir + "/cpuacct.usage");
}

std::optional<uint64_t> memory_bytes(const std::string& dir) {
  if (std::optional<uint64_t> v = number_file(dir + "/memory.current")) return v;
  return number_file(dir + "/memory.usage_in_bytes");
}

// v2 io.stat (rbytes=, wbytes= per device), else v1
// blkio.throttle.io_service_bytes ("MAJ:MIN Read N" lines).
void io_bytes(const std::string& dir, Sample& s) {
  if (std::optional<std::string> t = read_file(dir + "/io.stat")) {
    uint64_t r = 0, w = 0;
    for (size_t p = 0; (p = t->find("rbytes=", p)) != std::string::npos; p += 7)
      r += std::strtoull(t->c_str() + p + 7, nullptr, 10);
    for (size_t p = 0; (p = t->find("wbytes=", p)) != std::string::npos; p += 7)
      w += std::strtoull(t->c_str() + p + 7, nullptr, 10);
    s.io_read = r;
    s.io_write = w;
    return;
  }
  if (std::optional<std::string> t = read_file(dir + "/blkio.throttle.io_service_bytes")) {
    uint64_t r = 0, w = 0;
    char dev[64], op[32];
    unsigned long long n;
    for (size_t p = 0; p < t->size();) {
      size_t e = t->find('\n', p);
      if (e == std::string::npos) e = t->size();
      std::string line = t->substr(p, e - p);
      p = e + 1;
      if (std::sscanf(line.c_str(), "%63s %31s %llu", dev, op, &n) != 3) continue;
      if (!std::strcmp(op, "Read")) r += n;
      if (!std::strcmp(op, "Write")) w += n;
    }
    s.io_read = r;
    s.io_write = w;
  }
}

// Samples `dir` and its descendants (down to `depth` levels below the
// mount, -1: all); returns the pids of the subtree for the parent's count.
std::set<long> sample(const std::string& dir, const std::string& rel, int level, int depth,
                      std::vector<Sample>& out) {
  std::set<long> pids;
  for (long p : read_pids(dir + "/cgroup.procs")) pids.insert(p);
  Sample s;
  s.rel = rel;
  s.cpu_ns = cpu_ns(dir);
  s.memory = memory_bytes(dir);
  io_bytes(dir, s);
  const size_t at = out.size();
  if (depth < 0 || level <= depth) out.push_back(s);
  for (const std::string& k : child_cgroups(dir)) {
    std::set<long> sub = sample(dir + "/" + k, rel == "/" ? "/" + k : rel + "/" + k, level + 1, depth, out);
    pids.insert(sub.begin(), sub.end());
  }
  if (depth < 0 || level <= depth) out[at].tasks = static_cast<long>(pids.size());
  return pids;
}

std::vector<Sample> sample_mount(const Global& g, int depth) {
  std::vector<Sample> out;
  std::string why;
  for (const Hierarchy& h : find_hierarchies(g.mount, &why))
    sample(h.dir, "/" + h.name, h.name.empty() ? 0 : 1, depth, out);
  return out;
}

std::string human_bytes(double v) {
  const char* units[] = {"B", "K", "M", "G", "T", "P"};
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%.0fB", v);
  else std::snprintf(buf, sizeof buf, "%.1f%s", v, units[u]);
  return buf;
}

double now_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

volatile sig_atomic_t g_stop = 0;

struct TopOptions {
  bool batch = false;
  long iterations = 0;  // 0: until interrupted
  double delay = 1.0;
  std::string order = "path";
  int depth = -1;
};

struct Row {
  std::string path;
  long tasks;
  std::optional<double> cpu_percent, io_read_rate, io_write_rate;
  std::optional<uint64_t> memory;
};

int run_top(const Global& g, TopOptions o) {
  std::string why;
  if (find_hierarchies(g.mount, &why).empty()) {
    error(why);
    return kExitFailure;
  }
  // Without a terminal there is no screen to redraw: batch, as systemd-cgtop.
  if (!isatty(STDOUT_FILENO)) o.batch = true;
  signal(SIGINT, [](int) { g_stop = 1; });
  signal(SIGTERM, [](int) { g_stop = 1; });
  // Interactive: single keys, as systemd-cgtop takes them (q quits; p, t,
  // c, m, i sort by path, tasks, CPU, memory, I/O), so the terminal reads
  // without waiting for Enter or echoing; restored on the way out.
  const bool keys = !o.batch && !g.json && isatty(STDIN_FILENO);
  termios saved{};
  if (keys && tcgetattr(STDIN_FILENO, &saved) == 0) {
    termios raw = saved;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    tcsetattr(STDIN_FILENO, TCSANOW, &raw);
  }
  struct RestoreTerminal {
    bool on;
    termios t;
    ~RestoreTerminal() {
      if (on) tcsetattr(STDIN_FILENO, TCSANOW, &t);
    }
  } restore{keys, saved};
  // Reads the keys typed so far; true when the table should be redrawn now.
  auto read_keys = [&]() {
    bool redraw = false;
    char c;
    while (keys && read(STDIN_FILENO, &c, 1) == 1) {
      switch (c) {
        case 'q': g_stop = 1; break;
        case 'p': o.order = "path"; redraw = true; break;
        case 't': o.order = "tasks"; redraw = true; break;
        case 'c': o.order = "cpu"; redraw = true; break;
        case 'm': o.order = "memory"; redraw = true; break;
        case 'i': o.order = "io"; redraw = true; break;
        default: break;
      }
    }
    return redraw;
  };
  std::map<std::string, Sample> previous;
  double previous_time = 0;
  for (long iteration = 0; !g_stop && (o.iterations == 0 || iteration < o.iterations); ++iteration) {
    if (iteration > 0) {
      // Wait in slices so that Ctrl-C and keys act at once.
      for (double end = now_seconds() + o.delay; !g_stop && now_seconds() < end;) {
        const int ms = static_cast<int>(std::min(0.05, std::max(0.0, end - now_seconds())) * 1000);
        if (keys) {
          pollfd pfd{STDIN_FILENO, POLLIN, 0};
          poll(&pfd, 1, ms);
          if (read_keys()) break;
        } else {
          usleep(static_cast<useconds_t>(ms) * 1000);
        }
      }
      if (g_stop) break;
    }
    const double t = now_seconds();
    std::vector<Sample> samples = sample_mount(g, o.depth);
    const double dt = t - previous_time;
    std::vector<Row> rows;
    for (const Sample& s : samples) {
      Row r{s.rel, s.tasks, {}, {}, {}, s.memory};
      auto prev = previous.find(s.rel);
      if (prev != previous.end() && dt > 0) {
        const Sample& p = prev->second;
        if (s.cpu_ns && p.cpu_ns && *s.cpu_ns >= *p.cpu_ns)
          r.cpu_percent = static_cast<double>(*s.cpu_ns - *p.cpu_ns) / 1e9 / dt * 100;
        if (s.io_read && p.io_read && *s.io_read >= *p.io_read)
          r.io_read_rate = static_cast<double>(*s.io_read - *p.io_read) / dt;
        if (s.io_write && p.io_write && *s.io_write >= *p.io_write)
          r.io_write_rate = static_cast<double>(*s.io_write - *p.io_write) / dt;
      }
      rows.push_back(std::move(r));
    }
    previous.clear();
    for (Sample& s : samples) previous[s.rel] = std::move(s);
    previous_time = t;
    // Largest first for the counters; unknown values last.
    auto key = [&](const Row& r) -> double {
      if (o.order == "tasks") return static_cast<double>(r.tasks);
      if (o.order == "cpu") return r.cpu_percent.value_or(-1);
      if (o.order == "memory") return r.memory ? static_cast<double>(*r.memory) : -1;
      if (o.order == "io") return r.io_read_rate || r.io_write_rate
                                      ? r.io_read_rate.value_or(0) + r.io_write_rate.value_or(0)
                                      : -1;
      return 0;
    };
    std::stable_sort(rows.begin(), rows.end(), [&](const Row& a, const Row& b) {
      if (o.order == "path") return a.path < b.path;
      return key(a) > key(b);
    });
    if (g.json) {
      Json doc = {{"mount", g.mount}, {"iteration", iteration + 1}, {"interval", iteration ? dt : 0.0}};
      Json list = Json::array();
      auto opt = [](const auto& v) { return v ? Json(*v) : Json(nullptr); };
      for (const Row& r : rows)
        list.push_back({{"path", r.path},
                        {"tasks", r.tasks},
                        {"cpu_percent", opt(r.cpu_percent)},
                        {"memory_bytes", opt(r.memory)},
                        {"io_read_bytes_per_second", opt(r.io_read_rate)},
                        {"io_write_bytes_per_second", opt(r.io_write_rate)}});
      doc["cgroups"] = std::move(list);
      std::printf("%s\n", doc.dump().c_str());  // one line per iteration
      std::fflush(stdout);
      continue;
    }
    std::string out;
    if (!o.batch) out += "\033[H\033[2J";  // home, clear
    else if (iteration > 0) out += "\n";
    size_t width = 13;
    for (const Row& r : rows) width = std::max(width, r.path.size());
    char line[1024];
    std::snprintf(line, sizeof line, "%-*s %7s %7s %9s %9s %9s\n", static_cast<int>(width),
                  "Control Group", "Tasks", "%CPU", "Memory", "Input/s", "Output/s");
    out += line;
    auto cell = [](const std::optional<double>& v, bool bytes) -> std::string {
      if (!v) return "-";
      if (bytes) return human_bytes(*v);
      char b[32];
      std::snprintf(b, sizeof b, "%.1f", *v);
      return b;
    };
    for (const Row& r : rows) {
      std::optional<double> mem;
      if (r.memory) mem = static_cast<double>(*r.memory);
      std::snprintf(line, sizeof line, "%-*s %7ld %7s %9s %9s %9s\n", static_cast<int>(width),
                    r.path.c_str(), r.tasks, cell(r.cpu_percent, false).c_str(),
                    cell(mem, true).c_str(), cell(r.io_read_rate, true).c_str(),
                    cell(r.io_write_rate, true).c_str());
      out += line;
    }
    std::fputs(out.c_str(), stdout);
    std::fflush(stdout);
  }
  return kExitOk;
}

// ------------------------------------------------------------- get / set

struct GetOptions {
  std::vector<std::string> files;
  std::vector<std::string> paths;
  bool values_only = false;
  bool no_name = false;
};

int run_get(const Global& g, const GetOptions& o) {
  int rc = kExitOk;
  Json doc = Json::object();
  std::string out;
  for (const std::string& p : o.paths) {
    Where w = where(g, p);
    if (access((w.dir + "/cgroup.procs").c_str(), F_OK) != 0) {
      error(w.dir + ": not a cgroup (no cgroup.procs)");
      rc = kExitFailure;
      continue;
    }
    // No -r: every file that reads (write-only ones such as cgroup.kill
    // are left out silently).
    const bool all = o.files.empty();
    std::vector<std::string> files = all ? files_of(w.dir) : o.files;
    Json values = Json::object();
    if (!o.no_name && !o.values_only) out += w.rel + ":\n";
    for (const std::string& f : files) {
      int err = 0;
      std::optional<std::string> v = read_file(w.dir + "/" + f, &err);
      if (!v) {
        if (!all) {
          error(w.dir + "/" + f + ": " + std::strerror(err));
          rc = kExitFailure;
        }
        continue;
      }
      std::string text = chomp(*v);
      values[f] = text;
      // cgget's format: continuation lines of a multi-line value indented
      // by a tab.
      std::string shown;
      for (char c : text) shown += c == '\n' ? std::string("\n\t") : std::string(1, c);
      out += o.values_only ? shown + "\n" : f + ": " + shown + "\n";
    }
    if (!o.values_only) out += "\n";
    doc[w.rel] = std::move(values);
  }
  if (g.json) std::printf("%s\n", doc.dump(2).c_str());
  else std::fputs(out.c_str(), stdout);
  return rc;
}

int run_set(const Global& g, const std::vector<std::string>& assignments,
            const std::vector<std::string>& paths) {
  int rc = kExitOk;
  for (const std::string& p : paths) {
    Where w = where(g, p);
    if (access((w.dir + "/cgroup.procs").c_str(), F_OK) != 0) {
      error(w.dir + ": not a cgroup (no cgroup.procs)");
      rc = kExitFailure;
      continue;
    }
    for (const std::string& a : assignments) {
      size_t eq = a.find('=');
      std::string file = a.substr(0, eq), value = a.substr(eq + 1);
      if (int e = write_file(w.dir + "/" + file, value); e != 0) {
        error(w.dir + "/" + file + ": cannot write '" + value + "': " + std::strerror(e));
        rc = kExitFailure;
      }
    }
  }
  return rc;
}

constexpr const char* kFooter =
    "MOUNT is -m, else $CGCORE_MOUNT, else /sys/fs/cgroup (the kernel's cgroups), so the same\n"
    "commands show a cgcorefs mount and the kernel side by side. PATH is a cgroup relative to\n"
    "the mount (pids/web, /pids/web; / is the mount) or an absolute path inside it.\n"
    "Run 'cgctl SUBCOMMAND --help' for a subcommand's options.";

int run(int argc, char** argv) {
  Global g;
  CLI::App app{"cgctl: show and change a cgroup mount (a cgcorefs mount or the kernel's "
               "/sys/fs/cgroup): its tree with processes, live usage, and its files",
               "cgctl"};
  tools::standard_options(app, "cgctl", kFooter);
  // Every subcommand's options in one text: what the man page is made of.
  app.set_help_all_flag("--help-all", "print the help of every subcommand and exit");
  app.require_subcommand(1);
  app.fallthrough();  // global options also after the subcommand
  std::string mount_opt;
  app.add_option("-m,--mount", mount_opt, "the cgroup mount (default: $CGCORE_MOUNT, else /sys/fs/cgroup)")
      ->type_name("MOUNT");
  app.add_flag("--json", g.json, "JSON output for scripts (top: one JSON object per line and refresh)");
  app.add_option("--proc", g.proc, "the /proc to read command lines from (default /proc)")
      ->type_name("DIR");

  std::string tree_path;
  bool no_procs = false;
  CLI::App* tree = app.add_subcommand(
      "tree", "the hierarchy below PATH (default: the whole mount) with each cgroup's processes "
              "and their command lines, like systemd-cgls");
  tree->add_option("PATH", tree_path, "a cgroup");
  tree->add_flag("--no-procs", no_procs, "cgroups only");

  TopOptions top_o;
  CLI::App* top = app.add_subcommand(
      "top", "per cgroup: tasks (processes in it and below), %CPU, memory, I/O rates where the "
             "hierarchy keeps them ('-' where not, and for rates on the first refresh), "
             "refreshed every -d seconds, like systemd-cgtop. On a terminal: q quits, p t c m i sort "
             "by path, tasks, CPU, memory, I/O");
  top->add_flag("-b,--batch", top_o.batch, "no screen redraw: one table after another (implied "
                                           "when stdout is not a terminal)");
  top->add_option("-n,--iterations", top_o.iterations, "stop after N refreshes (default: Ctrl-C)")
      ->type_name("N")
      ->check(CLI::Range(0L, 1L << 30));
  top->add_option("-d,--delay", top_o.delay, "seconds between refreshes (default 1)")
      ->type_name("SECONDS")
      ->check(CLI::Range(0.01, 86400.0));
  top->add_option("-s,--order", top_o.order, "sort by path (default), tasks, cpu, memory or io")
      ->check(CLI::IsMember({"path", "tasks", "cpu", "memory", "io"}));
  top->add_option("--depth", top_o.depth, "cgroups at most N levels below the mount (default: all)")
      ->type_name("N")
      ->check(CLI::Range(0, 1 << 20));

  GetOptions get_o;
  CLI::App* get = app.add_subcommand(
      "get", "print files of cgroups, like cgget: 'PATH:' then 'FILE: VALUE' lines (continuation "
             "lines of a value indented by a tab); without -r every readable file");
  get->add_option("-r,--variable", get_o.files, "a file to print (repeatable)")
      ->type_name("FILE")
      ->allow_extra_args(false);
  get->add_flag("-v,--values-only", get_o.values_only, "print only the values");
  get->add_flag("-n,--no-name", get_o.no_name, "leave out the 'PATH:' lines");
  get->add_option("PATH", get_o.paths, "cgroups")->required();

  std::vector<std::string> assignments, set_paths;
  CLI::App* set = app.add_subcommand(
      "set", "write values to files of cgroups, like cgset: each VALUE in one write(), as given "
             "(no newline added)");
  set->add_option("-r,--variable", assignments, "FILE=VALUE (repeatable; in order)")
      ->type_name("FILE=VALUE")
      ->allow_extra_args(false)
      ->required()
      ->check([](const std::string& s) {
        return s.find('=') == std::string::npos || s.find('=') == 0 ? "expected FILE=VALUE, got '" + s + "'"
                                                                    : std::string();
      });
  set->add_option("PATH", set_paths, "cgroups")->required();

  if (int rc = tools::parse(app, argc, argv); rc >= 0) return rc;
  if (!mount_opt.empty()) g.mount = mount_opt;
  else if (const char* env = std::getenv("CGCORE_MOUNT"); env && *env) g.mount = env;
  else g.mount = "/sys/fs/cgroup";
  while (g.mount.size() > 1 && g.mount.back() == '/') g.mount.pop_back();

  if (tree->parsed()) return run_tree(g, tree_path, no_procs);
  if (top->parsed()) return run_top(g, top_o);
  if (get->parsed()) return run_get(g, get_o);
  return run_set(g, assignments, set_paths);
}

}  // namespace
}  // namespace cgcore::cgctl

int main(int argc, char** argv) { return cgcore::cgctl::run(argc, argv); }
