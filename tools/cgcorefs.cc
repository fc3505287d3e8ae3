// cgcorefs: mounts an embedded cgcore engine's cgroupfs with FUSE, so that
// people and programs use it as they use /sys/fs/cgroup (docs/cgcorefs.md).
//
// Usage: cgcorefs [--layout hybrid|v2|SPEC] [--foreground] [--sim [--sim-tasks N]]
//                 [--debug] MOUNTPOINT
//
// By default a HostTracker mirrors the host's real processes into the
// engine and applies its decisions to them (CPU affinity, kill, freeze).
// --sim mounts with virtual tasks only (cgsh's engine: init as pid 1 and
// N - 1 more processes, a fixed machine of 4 CPUs and one memory node), for
// machines without /proc access and for reproducible demonstrations.
// SIGINT, SIGTERM, SIGHUP and `fusermount3 -u MOUNTPOINT` unmount cleanly.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "controllers/registry.h"
#include "core/engine.h"
#include "fs/cgroupfs.h"
#include "fuse/fuse_server.h"
#include "host/host_tracker.h"

namespace {

using namespace cgcore;

constexpr const char* kUsage =
    "usage: cgcorefs [--layout hybrid|v2|SPEC] [--foreground] [--sim [--sim-tasks N]]\n"
    "                [--debug] MOUNTPOINT\n"
    "\n"
    "Mounts the cgroupfs of an embedded cgcore engine at MOUNTPOINT (FUSE).\n"
    "  --layout L      hybrid (default: one v1 hierarchy per controller plus\n"
    "                  unified/), v2 (one hierarchy with every controller), or\n"
    "                  a v1 spec such as 'cpuset,memory;pids;name=systemd'\n"
    "  -f, --foreground  stay in the foreground (logs on stderr); Ctrl-C unmounts\n"
    "  --sim           virtual tasks only (no host processes): init as pid 1\n"
    "  --sim-tasks N   with --sim: N virtual processes, pids 1..N (default 1)\n"
    "  -d, --debug     libfuse's request log (implies --foreground)\n"
    "The /proc views are under MOUNTPOINT/.cgcore (cgroups, PID/cgroup, self).\n"
    "Unmount with Ctrl-C, kill PID, or fusermount3 -u MOUNTPOINT.\n";

struct Args {
  std::string layout = "hybrid";
  bool foreground = false;
  bool sim = false;
  long sim_tasks = 1;
  bool debug = false;
  std::string mountpoint;
};

bool g_syslog = false;  // logging goes to syslog once daemonized

void log_line(const std::string& line) {
  if (g_syslog) syslog(LOG_INFO, "%s", line.c_str());
  else std::fprintf(stderr, "cgcorefs: %s\n", line.c_str());
}

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "cgcorefs: %s\n%s", msg.c_str(), kUsage);
  return 2;
}

// Parses argv; returns -1 to go on, else the exit code.
int parse(int argc, char** argv, Args& a) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&](std::string_view name, std::string& out) {
      if (arg.size() > name.size() && arg.substr(0, name.size()) == name && arg[name.size()] == '=') {
        out = std::string(arg.substr(name.size() + 1));
        return true;
      }
      if (arg != name) return false;
      if (i + 1 >= argc) {
        out.clear();
        return true;
      }
      out = argv[++i];
      return true;
    };
    std::string v;
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "-f" || arg == "--foreground") {
      a.foreground = true;
    } else if (arg == "-d" || arg == "--debug") {
      a.debug = a.foreground = true;
    } else if (arg == "--sim") {
      a.sim = true;
    } else if (value("--layout", v)) {
      if (v.empty()) return usage_error("--layout needs a value");
      a.layout = v;
    } else if (value("--sim-tasks", v)) {
      char* end = nullptr;
      errno = 0;
      a.sim_tasks = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end || errno || a.sim_tasks < 1 || a.sim_tasks > (1L << 22))
        return usage_error("--sim-tasks takes a number from 1 to 4194304");
    } else if (!arg.empty() && arg[0] == '-') {
      return usage_error("unknown option " + std::string(arg));
    } else if (a.mountpoint.empty()) {
      a.mountpoint = std::string(arg);
    } else {
      return usage_error("one mount point only");
    }
  }
  if (a.mountpoint.empty()) return usage_error("no mount point");
  if (a.sim_tasks != 1 && !a.sim) return usage_error("--sim-tasks needs --sim");
  char buf[PATH_MAX];
  if (realpath(a.mountpoint.c_str(), buf)) a.mountpoint = buf;  // survives chdir("/")
  return -1;
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

void report_ready(char verdict) {
  if (g_ready_fd < 0) return;
  if (verdict == 0) {
    // Detach from the terminal only once the mount is up; errors before
    // this point went to stderr.
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, 0);
      dup2(null, 1);
      dup2(null, 2);
      if (null > 2) close(null);
    }
    if (chdir("/") != 0) {}
    openlog("cgcorefs", LOG_PID, LOG_DAEMON);
    g_syslog = true;
  }
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

int serve(const Args& a) {
  Engine engine;
  BuiltinOptions builtin;
  // --sim is cgsh's machine: fixed, so that what it shows does not depend
  // on the host.
  if (a.sim) builtin.cpuset_topology = CpusetTopology::uniform(4, 1);
  if (Status st = register_builtin_controllers(engine, builtin); !st.ok())
    return fail("controllers: " + st.message());
  Result<std::unique_ptr<fs::CgroupFs>> created = fs::CgroupFs::create(engine, a.layout);
  if (!created.ok())
    return fail("layout '" + a.layout + "': " + errno_name(created.err()) + ": " +
                created.status().message());
  std::unique_ptr<fs::CgroupFs> cgfs = std::move(created.value());
  cgfs->set_release_sink([](const std::string& agent, const std::string& path) {
    log_line("release agent " + agent + " " + path + " (not run: cgcorefs runs no programs)");
  });

  // Destroyed in reverse: the tracker stops (no more engine activity from
  // its thread) before the server removes its events sink.
  std::unique_ptr<fuse::FuseServer> server;
  std::unique_ptr<host::HostTracker> tracker;
  std::string what;
  if (a.sim) {
    for (long i = 1; i <= a.sim_tasks; ++i) {
      SpawnOptions so;
      so.pid = static_cast<Pid>(i);
      if (Result<Pid> p = engine.spawn(so); !p.ok())
        return fail("spawning virtual task " + std::to_string(i) + ": " + p.status().message());
    }
    what = std::to_string(a.sim_tasks) + " virtual process" + (a.sim_tasks == 1 ? "" : "es");
  } else {
    host::HostOptions ho;
    ho.log = log_line;
    tracker = std::make_unique<host::HostTracker>(engine, cgfs.get(), std::move(ho));
  }
  server = std::make_unique<fuse::FuseServer>(*cgfs, fuse::FuseOptions{.debug = a.debug});
  if (tracker) {
    // Before mounting, so that the mount shows every process from the start.
    if (Status st = tracker->start(); !st.ok()) return fail("host processes: " + st.message());
    what = std::to_string(engine.nr_tasks()) + " host tasks, followed through " +
           (tracker->using_connector() ? "the process-events connector" : "/proc rescans");
  }
  if (Status st = server->mount(a.mountpoint); !st.ok()) return fail(st.message());
  log_line("mounted layout " + a.layout + " at " + a.mountpoint + " (" + what + ")");
  report_ready(0);
  Status st = server->run();
  tracker.reset();
  server.reset();
  log_line(st.ok() ? "unmounted " + a.mountpoint : "stopped: " + st.message());
  return st.ok() ? 0 : 1;
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
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  if (!args.foreground) daemonize_or_die();
  return serve(args);
}
