// cgcorefs: mounts an embedded cgcore engine's cgroupfs with FUSE, so that
// people and programs use it as they use /sys/fs/cgroup (docs/cgcorefs.md).
//
// Usage: cgcorefs [--layout hybrid|v2|SPEC] [--foreground] [--sim [--sim-tasks N]]
//                 [-o OPTIONS] [--debug] MOUNTPOINT      (cgcorefs --help)
//
// By default a HostTracker mirrors the host's real processes into the
// engine and applies its decisions to them (CPU affinity, kill, freeze), and
// a Supervisor answers the processes started under cgexec (forks refused at
// their limits, address-space growth checked, affinity confined).
// --sim mounts with virtual tasks only (cgsh's engine: init as pid 1 and
// N - 1 more processes, a fixed machine of 4 CPUs and one memory node), for
// machines without /proc access and for reproducible demonstrations.
// SIGINT, SIGTERM and `fusermount3 -u MOUNTPOINT` unmount cleanly; SIGHUP
// upgrades in place. The process started is the keeper (fuse/keeper.h): it
// holds the FUSE connection and runs the server (this binary with
// --keeper-child) as its child, restarting it if it dies; the server
// journals its state in --state DIR and restores it when it starts
// (docs/cgcorefs.md, "Restarts and upgrades").
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#ifdef CGCOREFS_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#endif

#include "controllers/registry.h"
#include "core/engine.h"
#include "core/invariants.h"
#include "core/parse.h"
#include "fs/cgroupfs.h"
#include "fuse/fuse_server.h"
#include "fuse/keeper.h"
#include "host/host_tracker.h"
#include "journal/journal.h"
#include "journal/stopped.h"
#include "supervisor/supervisor.h"
#include "tools/common/cli.h"

namespace {

using namespace cgcore;

struct Args {
  std::string layout = "hybrid";
  bool foreground = false;
  bool sim = false;
  long sim_tasks = 1;
  bool debug = false;
  std::string mountpoint;
  // -o: the FUSE mount's options and the hierarchy roots' owner and mode.
  std::optional<bool> allow_other;
  bool default_permissions = false;
  std::optional<uint32_t> root_uid, root_gid, root_mode;
  fuse::Transport transport = fuse::Transport::kAuto;
  // Where the journal lives (docs/cgcorefs.md, "Restarts and upgrades").
  std::string state_dir;
  // Start without the recorded state (it is discarded), continuing the
  // processes a previous run's freezer left stopped.
  bool fresh = false;
  // Keep no state at all (no journal, no freezer record): a restarted
  // server starts empty.
  bool no_state = false;
  // Started by a keeper (hidden --keeper-child): the connection is on
  // descriptor 3, the control socket on 4. With --keeper-detached the
  // keeper runs in the background and the server logs as a detached daemon.
  bool keeper_child = false;
  bool keeper_detached = false;
};

// Where the daemon's log lines go. In the foreground: stderr. Detached: the
// journal when journald runs, else syslog when /dev/log exists, and a file
// otherwise or whenever those fail, so that no line is lost on machines
// without either (containers often have neither).
enum class LogSink { kStderr, kJournal, kSyslog, kFile };
LogSink g_sink = LogSink::kStderr;
std::string g_log_file;

// $XDG_RUNTIME_DIR/cgcorefs.log, else /run/cgcorefs.log for root, else
// /tmp/cgcorefs-UID.log.
std::string fallback_log_file() {
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg && access(xdg, W_OK) == 0)
    return std::string(xdg) + "/cgcorefs.log";
  if (geteuid() == 0 && access("/run", W_OK) == 0) return "/run/cgcorefs.log";
  return "/tmp/cgcorefs-" + std::to_string(geteuid()) + ".log";
}

void log_to_file(const std::string& line) {
  if (g_log_file.empty()) g_log_file = fallback_log_file();
  int fd = open(g_log_file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return;  // nowhere left to say it
  char stamp[64];
  time_t now = time(nullptr);
  struct tm tm{};
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", localtime_r(&now, &tm));
  std::string text = std::string(stamp) + " cgcorefs[" + std::to_string(getpid()) + "]: " + line + "\n";
  if (write(fd, text.data(), text.size()) < 0) {}
  close(fd);
}

void log_line(const std::string& line) {
  switch (g_sink) {
    case LogSink::kStderr:
      std::fprintf(stderr, "cgcorefs: %s\n", line.c_str());
      return;
    case LogSink::kJournal:
#ifdef CGCOREFS_HAVE_SYSTEMD
      if (sd_journal_print(LOG_INFO, "%s", line.c_str()) >= 0) return;
#endif
      break;
    case LogSink::kSyslog:
      // syslog(3) reports no failure: it is chosen only while /dev/log is there.
      if (access("/dev/log", F_OK) == 0) {
        syslog(LOG_INFO, "%s", line.c_str());
        return;
      }
      break;
    case LogSink::kFile:
      break;
  }
  log_to_file(line);
}

// The sink for a detached daemon, and a phrase saying where it is.
std::pair<LogSink, std::string> detached_sink() {
#ifdef CGCOREFS_HAVE_SYSTEMD
  if (access("/run/systemd/journal/socket", W_OK) == 0) return {LogSink::kJournal, "the journal"};
#endif
  if (access("/dev/log", F_OK) == 0) return {LogSink::kSyslog, "syslog"};
  g_log_file = fallback_log_file();
  return {LogSink::kFile, g_log_file};
}

// A user or group given by name or number.
std::optional<uint32_t> parse_id(const std::string& v, bool group) {
  if (v.empty()) return std::nullopt;
  if (v.find_first_not_of("0123456789") == std::string::npos) {
    Result<uint32_t> n = kstrtouint(v, 10);
    if (!n.ok() || *n == UINT32_MAX) return std::nullopt;  // (uid_t)-1 means "unchanged"
    return *n;
  }
  if (group) {
    if (const struct group* g = getgrnam(v.c_str())) return g->gr_gid;
  } else if (const struct passwd* p = getpwnam(v.c_str())) {
    return p->pw_uid;
  }
  return std::nullopt;
}

// One -o list ("allow_other,uid=1000,mode=0755"); "" if every option is
// known and valid, else the message naming the first that is not.
std::string apply_mount_options(const std::string& list, Args& a) {
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    std::string opt = list.substr(pos, comma - pos);
    pos = comma + 1;
    if (opt.empty()) continue;
    size_t eq = opt.find('=');
    std::string key = opt.substr(0, eq), value = eq == std::string::npos ? "" : opt.substr(eq + 1);
    if (key == "allow_other" && eq == std::string::npos) {
      a.allow_other = true;
    } else if (key == "default_permissions" && eq == std::string::npos) {
      a.default_permissions = true;
    } else if (key == "uid" || key == "gid") {
      std::optional<uint32_t> id = parse_id(value, key == "gid");
      if (!id) return "-o " + opt + ": no such " + (key == "uid" ? "user" : "group");
      (key == "uid" ? a.root_uid : a.root_gid) = id;
    } else if (key == "mode") {
      Result<uint32_t> m = kstrtouint(value, 8);
      if (!m.ok() || *m > 07777) return "-o " + opt + ": mode takes octal permission bits (0000-7777)";
      a.root_mode = *m;
    } else {
      return "unknown mount option '" + opt +
             "' (known: allow_other, default_permissions, uid=, gid=, mode=)";
    }
  }
  return "";
}

constexpr const char* kDescription =
    "cgcorefs: mounts the cgroupfs of an embedded cgcore engine at MOUNTPOINT (FUSE), over "
    "the host's real processes or, with --sim, virtual tasks. The /proc views are under "
    "MOUNTPOINT/.cgcore (cgroups, PID/cgroup, self).";
constexpr const char* kFooter =
    "Mount options (-o, comma-separated, repeatable):\n"
    "  allow_other           other users may use the mount (default when run as root;\n"
    "                        others need user_allow_other in /etc/fuse.conf)\n"
    "  default_permissions   the kernel also checks mode bits before the file system does\n"
    "  uid=USER, gid=GROUP   owner of the hierarchy roots (name or number; default:\n"
    "                        root, or the user running an unprivileged daemon)\n"
    "  mode=OCTAL            mode of the hierarchy roots\n"
    "Unmount with Ctrl-C (in the foreground), kill PID, or fusermount3 -u MOUNTPOINT.\n"
    "kill -HUP PID upgrades in place: a server from the binary now on disk takes over.\n"
    "PID is the keeper's (MOUNTPOINT/.cgcore/daemon); a server that dies is restarted\n"
    "on the same mount and restores the state journaled in --state.\n"
    "Logs: stderr in the foreground; detached, the journal, syslog, or a file\n"
    "($XDG_RUNTIME_DIR/cgcorefs.log, /run/cgcorefs.log) where neither is available.";

// Parses argv; returns -1 to go on, else the exit code.
int parse(int argc, char** argv, Args& a) {
  CLI::App app{kDescription, "cgcorefs"};
  tools::standard_options(app, "cgcorefs", kFooter);
  app.add_option("--layout", a.layout,
                 "hybrid (default: one v1 hierarchy per controller plus unified/), v2 (one "
                 "hierarchy with every controller), or a v1 spec such as "
                 "'cpuset,memory;pids;name=systemd'")
      ->type_name("LAYOUT");
  app.add_flag("-f,--foreground", a.foreground,
               "stay in the foreground (logs on stderr); Ctrl-C unmounts. Without it the command "
               "returns once the mount is up (0) or has failed (1)");
  app.add_flag("--sim", a.sim, "virtual tasks only (no host processes): init as pid 1");
  auto* sim_tasks = app.add_option("--sim-tasks", a.sim_tasks,
                                   "with --sim: N virtual processes, pids 1..N (default 1)")
                        ->type_name("N")
                        ->check(CLI::Range(1L, 1L << 22));
  std::vector<std::string> options;
  app.add_option("-o", options, "mount options, see below")->type_name("OPTIONS")->allow_extra_args(false)->take_all();
  std::string transport = "auto";
  app.add_option("--transport", transport,
                 "how requests reach the daemon: auto (default) and dev: /dev/fuse, on a "
                 "connection a keeper holds across server restarts; uring: FUSE over io_uring "
                 "(needs /sys/module/fuse/parameters/enable_uring Y, else fails), served without "
                 "a keeper, since a ring does not outlive its server")
      ->type_name("auto|uring|dev")
      ->check(CLI::IsMember({"auto", "uring", "dev"}));
  app.add_flag("-d,--debug", a.debug, "libfuse's request log (implies --foreground)");
  app.add_option("--state", a.state_dir,
                 "where the state is journaled (default: $XDG_RUNTIME_DIR/cgcorefs/state-MOUNT, "
                 "else /run/cgcorefs/state-MOUNT as root, else /tmp/cgcorefs-UID/state-MOUNT)")
      ->type_name("DIR");
  app.add_flag("--fresh", a.fresh,
               "discard the recorded state and start with empty hierarchies (processes a "
               "previous run froze are continued)");
  app.add_flag("--no-state", a.no_state,
               "journal nothing: a restarted server starts with empty hierarchies");
  app.add_flag("--keeper-child", a.keeper_child)->group("");
  app.add_flag("--keeper-detached", a.keeper_detached)->group("");
  app.add_option("MOUNTPOINT", a.mountpoint, "an existing directory")->required();
  if (int rc = tools::parse(app, argc, argv); rc >= 0) return rc;
  if (sim_tasks->count() > 0 && !a.sim) {
    std::fprintf(stderr, "cgcorefs: --sim-tasks needs --sim\n");
    return tools::kExitUsage;
  }
  for (const std::string& list : options)
    if (std::string msg = apply_mount_options(list, a); !msg.empty()) {
      std::fprintf(stderr, "cgcorefs: %s\n", msg.c_str());
      return tools::kExitUsage;
    }
  a.transport = *fuse::parse_transport(transport);
  if (a.debug) a.foreground = true;
  char buf[PATH_MAX];
  if (realpath(a.mountpoint.c_str(), buf)) a.mountpoint = buf;  // survives chdir("/")
  if (a.state_dir.empty()) {
    // One state per mount point, BASE/state-<the path, '/' as '-'>.
    const char* xdg = std::getenv("XDG_RUNTIME_DIR");
    if (xdg && *xdg) a.state_dir = std::string(xdg) + "/cgcorefs";
    else if (::geteuid() == 0) a.state_dir = "/run/cgcorefs";
    else a.state_dir = "/tmp/cgcorefs-" + std::to_string(::geteuid());
    const size_t first = a.mountpoint.find_first_not_of('/');
    std::string name = first == std::string::npos ? "" : a.mountpoint.substr(first);
    std::replace(name.begin(), name.end(), '/', '-');
    a.state_dir += "/state-" + name;
  } else if (realpath(a.state_dir.c_str(), buf)) {
    a.state_dir = buf;
  } else if (!a.state_dir.starts_with('/')) {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd)) a.state_dir = std::string(cwd) + "/" + a.state_dir;
  }
  // The server writes its state before it serves: never inside its mount.
  if (a.state_dir == a.mountpoint || a.state_dir.starts_with(a.mountpoint + "/")) {
    std::fprintf(stderr, "cgcorefs: --state %s is inside the mount point\n", a.state_dir.c_str());
    return tools::kExitUsage;
  }
  return -1;
}

// Undoes mountinfo's octal escapes (\040 for a space, \011, \012, \134).
std::string unescape_mountinfo(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool octal = true;
      for (size_t k = 1; k <= 3; ++k) {
        if (i + k >= s.size() || s[i + k] < '0' || s[i + k] > '7') {
          octal = false;
          break;
        }
        v = v * 8 + (s[i + k] - '0');
      }
      if (octal) {
        out += static_cast<char>(v);
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

// Whether a cgcorefs mount (fuse.cgcorefs in /proc/self/mountinfo) sits at
// `mountpoint` now, live or stale.
bool cgcorefs_mounted_at(const std::string& mountpoint) {
  FILE* f = std::fopen("/proc/self/mountinfo", "re");
  if (!f) return false;
  bool found = false;
  char* line = nullptr;
  size_t cap = 0;
  while (!found && getline(&line, &cap, f) > 0) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
    std::string l(line);
    std::vector<std::string> fields;
    size_t p = 0;
    while (p < l.size()) {
      size_t q = l.find_first_of(" \n", p);
      if (q == std::string::npos) q = l.size();
      if (q > p) fields.push_back(l.substr(p, q - p));
      p = q + 1;
    }
    auto dash = std::find(fields.begin(), fields.end(), "-");
    if (fields.size() < 5 || dash == fields.end() || dash + 1 == fields.end()) continue;
    found = *(dash + 1) == "fuse.cgcorefs" && unescape_mountinfo(fields[4]) == mountpoint;
  }
  std::free(line);
  std::fclose(f);
  return found;
}

// Background mode: the parent waits until the child has mounted (or
// failed) and exits with its verdict, so `cgcorefs M && ls M` works.
int g_ready_fd = -1;

void daemonize_or_die() {
  int fds[2];
  if (pipe(fds) != 0) {
    std::perror("cgcorefs: pipe");
    std::exit(1);
  }
  pid_t pid = fork();
  if (pid < 0) {
    std::perror("cgcorefs: fork");
    std::exit(1);
  }
  if (pid > 0) {
    close(fds[1]);
    char verdict = 1;
    ssize_t n;
    do n = read(fds[0], &verdict, 1);
    while (n < 0 && errno == EINTR);
    std::_Exit(n == 1 ? verdict : 1);
  }
  close(fds[0]);
  setsid();
  g_ready_fd = fds[1];
}

// Leaves the terminal: stdio to /dev/null, logs to the detached sink.
// `announce`: say where the logs go while stderr still reaches the person
// who started the daemon.
void detach_logs(bool announce) {
  auto [sink, where] = detached_sink();
  if (announce) std::fprintf(stderr, "cgcorefs: running in the background; logs go to %s\n", where.c_str());
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    if (null > 2) close(null);
  }
  if (chdir("/") != 0) {}
  if (sink == LogSink::kSyslog) openlog("cgcorefs", LOG_PID, LOG_DAEMON);
  g_sink = sink;
}

void report_ready(char verdict) {
  if (g_ready_fd < 0) return;
  // Detach from the terminal only once the mount is up; errors before
  // this point went to stderr.
  if (verdict == 0) detach_logs(true);
  ssize_t n;
  do n = write(g_ready_fd, &verdict, 1);
  while (n < 0 && errno == EINTR);
  close(g_ready_fd);
  g_ready_fd = -1;
}

int fail(const std::string& msg) {
  log_line(msg);
  report_ready(1);
  return 1;
}

// Gives the hierarchy roots (the mount root, and in a layout of several
// hierarchies each top directory) the owner and mode of -o uid=, gid=,
// mode=, as the fs layer's root would chown/chmod them, so that a user can
// own and use their own mount. A daemon run by an ordinary user owns its
// roots unless -o says otherwise: nobody else can use its mount without
// allow_other, and a mount its own user cannot make cgroups in is useless.
Status set_root_metadata(fs::CgroupFs& cgfs, Args a) {
  if (::geteuid() != 0) {
    if (!a.root_uid) a.root_uid = ::geteuid();
    if (!a.root_gid) a.root_gid = ::getegid();
  }
  if (!a.root_uid && !a.root_gid && !a.root_mode) return Status::Ok();
  std::vector<fs::Ino> roots = {fs::kRootIno};
  const fs::Caller admin;  // root: the mounter's authority over its fs
  Result<std::vector<fs::DirEntry>> entries = cgfs.readdir(fs::kRootIno, admin);
  if (!entries.ok()) return entries.status();
  for (const fs::DirEntry& e : *entries)
    if (e.type == fs::NodeType::kDir && e.name != "." && e.name != "..") roots.push_back(e.ino);
  for (fs::Ino ino : roots) {
    Result<fs::Attr> attr = cgfs.getattr(ino);
    if (!attr.ok()) return attr.status();
    if (a.root_uid || a.root_gid)
      if (Status st = cgfs.chown(ino, a.root_uid.value_or(attr->uid), a.root_gid.value_or(attr->gid), admin);
          !st.ok())
        return st;
    if (a.root_mode)
      if (Status st = cgfs.chmod(ino, *a.root_mode, admin); !st.ok()) return st;
  }
  return Status::Ok();
}

// Where the supervisor of server `pid` listens: under $XDG_RUNTIME_DIR,
// else /run as root, else /tmp; named by the server's pid, since
// .cgcore/daemon names it anyway. The keeper, with the same environment,
// finds it by the same rule.
std::string control_socket_path(pid_t pid = ::getpid()) {
  const char* dir = std::getenv("XDG_RUNTIME_DIR");
  std::string base = dir && *dir ? dir : (::geteuid() == 0 ? "/run" : "/tmp");
  return base + "/cgcorefs." + std::to_string(pid) + ".sock";
}

// The server: started by a keeper (run_keeper, --keeper-child) with the
// keeper's connection on descriptor 3 and its control socket on 4, or, for
// the io_uring transport, on a mount of its own (the ring's entries die with
// the process that registered them, so a ring cannot outlive a server: no
// keeper, no restart). Serves until the connection ends (exit 0) or a
// signal ends it (exit kServerExitSignalled; SIGUSR1: a hand-over, frozen
// processes stay stopped for the next server).
int serve(const Args& a) {
  const bool kept = a.keeper_child;
  if (!kept && !a.foreground) daemonize_or_die();
  Result<std::string> init = kept ? fuse::keeper_receive_init(fuse::kKeeperControlFd) : Result<std::string>(std::string());
  if (!init.ok()) return fail(init.status().message());
  // A restarted server's keeper has left the terminal already.
  if (a.keeper_detached && !init->empty()) detach_logs(false);
  Engine engine;
  // The state journal and the freezer's record (host mode: --sim keeps no
  // state). They outlive the tracker and the fs, which report to them.
  std::unique_ptr<journal::StoppedRecord> stopped;
  std::unique_ptr<journal::Journal> jnl;
  BuiltinOptions builtin;
  // --sim is cgsh's machine: fixed, so that what it shows does not depend
  // on the host.
  if (a.sim) builtin.cpuset_topology = CpusetTopology::uniform(4, 1);
  // The environment the fs serves: the host's processes, or virtual tasks.
  std::unique_ptr<host::HostTracker> tracker;
  std::unique_ptr<fs::VirtualBackend> virtual_backend;
  fs::Backend* backend;
  if (a.sim) {
    if (Result<BuiltinControllers> r = register_builtin_controllers(engine, builtin); !r.ok())
      return fail("controllers: " + r.status().message());
    virtual_backend = std::make_unique<fs::VirtualBackend>(
        engine, [](const std::string& agent, const std::string& path) {
          log_line("release agent " + agent + " " + path + " (not run: cgcorefs runs no programs)");
        });
    backend = virtual_backend.get();
  } else {
    host::HostOptions ho;
    ho.log = log_line;
    if (!a.no_state) {
      stopped = std::make_unique<journal::StoppedRecord>(a.state_dir);
      ho.freezer_record = [rec = stopped.get()](Pid pid, uint64_t start, bool stop) { rec->note(pid, start, stop); };
    }
    Result<std::unique_ptr<host::HostTracker>> t = host::HostTracker::create(engine, builtin, std::move(ho));
    if (!t.ok()) return fail("controllers: " + t.status().message());
    tracker = std::move(t.value());
    backend = tracker.get();
  }
  Result<std::unique_ptr<fs::CgroupFs>> created = fs::CgroupFs::create(engine, a.layout, *backend);
  if (!created.ok())
    return fail("layout '" + a.layout + "': " + errno_name(created.err()) + ": " +
                created.status().message());
  std::unique_ptr<fs::CgroupFs> cgfs = std::move(created.value());
  if (Status st = set_root_metadata(*cgfs, a); !st.ok())
    return fail(std::string("-o uid=/gid=/mode=: ") + errno_name(st.err()) + ": " + st.message());

  std::string what;
  if (a.sim) {
    for (long i = 1; i <= a.sim_tasks; ++i) {
      SpawnOptions so;
      so.pid = static_cast<Pid>(i);
      if (Result<Pid> p = engine.spawn(so); !p.ok())
        return fail("spawning virtual task " + std::to_string(i) + ": " + p.status().message());
    }
    what = std::to_string(a.sim_tasks) + " virtual process" + (a.sim_tasks == 1 ? "" : "es");
  }
  std::unique_ptr<supervisor::Supervisor> super;
  fuse::FuseOptions fo{
      .allow_other = a.allow_other, .default_permissions = a.default_permissions, .debug = a.debug};
  fo.transport = a.transport;
  fo.log = log_line;
  fo.mountpoint = a.mountpoint;
  fo.daemon_info = (kept ? "keeper " + std::to_string(::getppid()) + "\n" : std::string()) + "server " +
                   std::to_string(::getpid()) + "\n";
  if (tracker) {
    // Before mounting, so that the mount shows every process from the start.
    if (Status st = tracker->start(); !st.ok()) return fail("host processes: " + st.message());
    what = std::to_string(engine.nr_tasks()) + " host tasks, followed through " +
           (tracker->using_connector() ? "the process-events connector" : "/proc rescans");
    // Before anything is served: the previous state, frozen cgroups
    // included, then the processes the previous freezer stopped.
    if (a.no_state) {
      // Nothing journaled.
    } else if (Result<std::unique_ptr<journal::Journal>> j = journal::Journal::open(a.state_dir, log_line); j.ok()) {
      jnl = std::move(j.value());
      const bool restart = !init->empty();
      if (jnl->has_state() && a.fresh && !restart) {
        log_line("--fresh: the recorded state in " + a.state_dir + " is discarded");
        jnl->discard();
      } else if (jnl->has_state() && jnl->recorded_layout() != a.layout) {
        log_line("the state in " + a.state_dir + " is of layout '" + jnl->recorded_layout() +
                 "': starting with empty hierarchies");
        jnl->discard();
      } else if (jnl->has_state()) {
        journal::RestoreStats rs = jnl->restore(*cgfs);
        // The restored engine is checked before anything is served. The
        // tracker's thread runs meanwhile, and a lookup it has in flight
        // pins a task the leak count then sees (core/invariants.h): a
        // violation counts once it persists over three checks.
        Status inv = InvariantChecker(engine).check();
        for (int i = 0; i < 2 && !inv.ok(); ++i) {
          ::usleep(20000);
          inv = InvariantChecker(engine).check();
        }
        if (!inv.ok())
          log_line("invariant violated after the restore: " + inv.message());
        else
          what += "; invariants hold";
        what += "; restored " + std::to_string(rs.records) + " changes from " + a.state_dir + " (" +
                std::to_string(rs.failed) + " refused), " + std::to_string(rs.placed) +
                " processes placed, " + std::to_string(rs.gone) + " gone" +
                (rs.torn ? ", a torn last record discarded" : "");
      }
      if (Status st = jnl->start(*cgfs, a.layout); !st.ok()) {
        log_line("no journal: " + st.message());
        jnl.reset();
      } else if (restart) {
        // Requests the kernel resends that the dead server had carried out.
        fo.already_done = [j = jnl.get()](uint64_t unique) { return j->applied(unique); };
      }
    } else {
      log_line("no journal: " + j.status().message());
    }
    std::vector<std::pair<Pid, uint64_t>> left = stopped ? stopped->load() : std::vector<std::pair<Pid, uint64_t>>{};
    if (stopped)
      if (Status st = stopped->rewrite(left); !st.ok()) log_line("freezer record: " + st.message());
    if (!left.empty()) {
      const size_t n = tracker->adopt_stopped(left);
      what += "; " + std::to_string(n) + " processes a previous run stopped adopted";
    }
    super = std::make_unique<supervisor::Supervisor>(engine, *tracker, log_line);
    super->set_compat_views(*cgfs, a.mountpoint);  // cgexec --compat
    if (Status st = super->start(control_socket_path()); st.ok()) {
      fo.daemon_info += "socket " + super->socket_path() + "\n";
    } else {
      log_line("no supervision of processes (cgexec): " + st.message());
      super.reset();
    }
  }
  auto server = std::make_unique<fuse::FuseServer>(*cgfs, std::move(fo));
  const bool fresh = init->empty();
  Status attached = kept ? server->attach(fuse::kKeeperConnectionFd, std::move(init.value()),
                                          [](const std::string& bytes) {
                                            (void)fuse::keeper_send_init(fuse::kKeeperControlFd, bytes);
                                          })
                         : server->mount(a.mountpoint);
  if (!attached.ok()) {
    super.reset();
    if (tracker) tracker->stop();
    return fail(attached.message());
  }
  log_line(std::string(fresh ? "mounted" : "serving again") + " layout " + a.layout + " at " +
           a.mountpoint + " (" + what + "; transport " + server->transport() + ")");
  if (kept) {
    if (a.keeper_detached && fresh) detach_logs(false);
    (void)fuse::keeper_send_ready(fuse::kKeeperControlFd);
  } else {
    report_ready(0);
#ifdef CGCOREFS_HAVE_SYSTEMD
    // Type=notify units (contrib/systemd/cgcorefs.service): the mount is
    // up. A no-op outside systemd ($NOTIFY_SOCKET unset).
    sd_notifyf(0, "READY=1\nSTATUS=mounted layout %s at %s", a.layout.c_str(), a.mountpoint.c_str());
#endif
  }
  Status st = server->run();
  const int ended_by = server->ended_by();
  const bool handover = ended_by == SIGUSR1;
  // The supervisor and the tracker's thread drive the engine, whose
  // observers include the fs: they stop first.
  super.reset();
  if (jnl) jnl->stop();
  if (tracker) tracker->stop(/*continue_frozen=*/!handover);
  server.reset();
  cgfs.reset();
  if (!st.ok()) {
    log_line("stopped: " + st.message());
    return 1;
  }
  // A server of its own mount has unmounted on the signal, as the keeper
  // does when it is told to stop.
  if (ended_by == 0 || !kept) {
    log_line("unmounted " + a.mountpoint);
    return 0;
  }
  log_line(std::string(handover ? "handed over" : "stopped") + " on " + strsignal(ended_by));
  return fuse::kServerExitSignalled;
}

// The keeper (fuse/keeper.h): checks the mount point, goes to the
// background unless told otherwise, mounts and runs servers until the file
// system is unmounted or it is told to stop.
int keep(const Args& a) {
  // A second daemon on the same directory would hide the first one's mount.
  if (cgcorefs_mounted_at(a.mountpoint)) {
    struct stat st{};
    if (::stat(a.mountpoint.c_str(), &st) == 0) {
      log_line(a.mountpoint + ": cgcorefs is already mounted there; unmount it first "
               "(fusermount3 -u " + a.mountpoint + ") or choose another directory");
      return 1;
    }
  }
  // The binary's path, looked up again at each start: an upgrade execs the
  // file now there.
  char exe[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) {
    log_line(std::string("/proc/self/exe: ") + std::strerror(errno));
    return 1;
  }
  std::string self(exe, static_cast<size_t>(n));
  if (self.ends_with(" (deleted)")) self.resize(self.size() - 10);
  std::vector<std::string> argv = {self, "--keeper-child"};
  if (!a.foreground) argv.push_back("--keeper-detached");
  argv.insert(argv.end(), {"--layout", a.layout});
  if (a.sim) argv.insert(argv.end(), {"--sim", "--sim-tasks", std::to_string(a.sim_tasks)});
  if (a.debug) argv.push_back("-d");
  if (a.allow_other.value_or(false)) argv.insert(argv.end(), {"-o", "allow_other"});
  if (a.default_permissions) argv.insert(argv.end(), {"-o", "default_permissions"});
  if (a.root_uid) argv.insert(argv.end(), {"-o", "uid=" + std::to_string(*a.root_uid)});
  if (a.root_gid) argv.insert(argv.end(), {"-o", "gid=" + std::to_string(*a.root_gid)});
  if (a.root_mode) {
    char m[16];
    std::snprintf(m, sizeof m, "mode=%o", *a.root_mode);
    argv.insert(argv.end(), {"-o", m});
  }
  if (a.transport == fuse::Transport::kDev) argv.push_back("--transport=dev");
  if (a.fresh) argv.push_back("--fresh");
  if (a.no_state) argv.push_back("--no-state");
  argv.insert(argv.end(), {"--state", a.state_dir, "--foreground", a.mountpoint});

  if (!a.foreground) daemonize_or_die();
  fuse::KeeperOptions ko;
  ko.mountpoint = a.mountpoint;
  ko.mount = {.allow_other = a.allow_other, .default_permissions = a.default_permissions, .debug = a.debug};
  ko.server_argv = std::move(argv);
  ko.log = log_line;
  // A killed server cannot remove its socket.
  ko.server_ended = [](pid_t server) { (void)::unlink(control_socket_path(server).c_str()); };
  ko.ready = [&a](bool ok) {
    report_ready(ok ? 0 : 1);
#ifdef CGCOREFS_HAVE_SYSTEMD
    // Type=notify units (contrib/systemd/cgcorefs.service): the mount is
    // up. A no-op outside systemd ($NOTIFY_SOCKET unset).
    if (ok) sd_notifyf(0, "READY=1\nSTATUS=mounted layout %s at %s", a.layout.c_str(), a.mountpoint.c_str());
#endif
  };
  const int rc = fuse::run_keeper(ko);
#ifdef CGCOREFS_HAVE_SYSTEMD
  sd_notify(0, "STOPPING=1");
#endif
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (int rc = parse(argc, argv, args); rc >= 0) return rc;
  // Only the serving thread takes these (FuseServer::run unblocks them
  // there); every thread started from here on inherits the block.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGHUP);
  sigaddset(&sigs, SIGUSR1);  // a keeper's hand-over request (FuseServer::run)
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  if (args.keeper_child || args.transport == fuse::Transport::kUring) return serve(args);
  return keep(args);
}
