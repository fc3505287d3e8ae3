// cgexec: runs a command in cgroups of a cgcorefs mount, under the daemon's
// supervision (docs/cgcorefs.md, "Supervised processes").
//
//   cgexec [-m MOUNT] -g CONTROLLERS:PATH [-g ...] [--sticky] [--compat] [--] COMMAND [ARGS...]
//
// libcgroup's syntax: `-g pids,memory:/web`, `-g '*:/web'` for every
// hierarchy. MOUNT defaults to $CGCORE_MOUNT, then /tmp/cgcore. cgexec joins
// the cgroups itself (its own pid written to each cgroup.procs, with the
// kernel's permission rules), puts itself under the daemon's supervision,
// then execs COMMAND: the command's first instruction already runs inside,
// and its forks are counted from the first. The exit status is COMMAND's
// (exec replaces cgexec). Errors are reported before anything runs:
// status 1 (no daemon, no such cgroup, permission denied, a controller not
// mounted), 2 (usage), 126 / 127 (COMMAND cannot be run / not found).
//
// --compat gives COMMAND the kernel's interfaces (docs/cgcorefs.md,
// "Compatibility view"): it runs in a private mount namespace (inside a new
// user namespace, its uid and gid mapped to themselves, when the caller is
// not root) where /sys/fs/cgroup is the mount — the unified hierarchy itself
// for a v2 layout, else a read-only tmpfs with a bind mount of each
// top-level directory — and the supervisor answers the /proc files and
// statfs calls that show cgroups.
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "supervisor/client.h"
#include "supervisor/compat.h"
#include "tools/common/cli.h"

using cgcore::supervisor::kCgroupRoot;

namespace {

int fail(const std::string& msg) {
  std::fprintf(stderr, "cgexec: %s\n", msg.c_str());
  return 1;
}

bool is_dir(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, sep))
    if (!part.empty()) out.push_back(part);
  return out;
}

// One hierarchy of the mount: its directory and the controllers bound to it.
struct Hier {
  std::string dir;
  std::set<std::string> controllers;
  bool v2 = false;
};

std::set<std::string> words_of(const std::string& path) {
  std::ifstream in(path);
  std::set<std::string> out;
  std::string w;
  while (in >> w) out.insert(w);
  return out;
}

// The hierarchies a mount shows: the mount itself for a v2 layout; else each
// top-level directory (a v1 hierarchy named by its controllers, or the
// unified one).
std::vector<Hier> hierarchies(const std::string& mount) {
  std::vector<Hier> out;
  if (exists(mount + "/cgroup.controllers")) {
    out.push_back({mount, words_of(mount + "/cgroup.controllers"), true});
    return out;
  }
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(mount, ec)) {
    const std::string name = e.path().filename();
    if (name.empty() || name[0] == '.' || !e.is_directory()) continue;
    Hier h{e.path().string(), {}, false};
    if (exists(h.dir + "/cgroup.controllers")) {
      h.v2 = true;
      h.controllers = words_of(h.dir + "/cgroup.controllers");
    } else {
      for (const std::string& c : split(name, ',')) h.controllers.insert(c);
    }
    out.push_back(std::move(h));
  }
  return out;
}

// The control socket the daemon serving `mount` listens on.
std::string daemon_socket(const std::string& mount) {
  std::ifstream in(mount + "/.cgcore/daemon");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("socket ", 0) == 0) return line.substr(7);
  return "";
}

bool write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text << std::flush;
  return static_cast<bool>(out);
}

// Builds the compatibility namespace (see the file comment). Errors name
// the step and its errno; nothing outside the new namespace changes.
int enter_compat_namespace(const std::string& mount, const std::vector<Hier>& hiers) {
  const uid_t uid = ::geteuid();
  const gid_t gid = ::getegid();
  const bool userns = uid != 0;
  if (::unshare(CLONE_NEWNS | (userns ? CLONE_NEWUSER : 0)) != 0) {
    const int e = errno;
    return fail(std::string("--compat: cannot make a private mount namespace") +
                (userns ? " in a new user namespace" : "") + ": " + std::strerror(e));
  }
  if (userns) {
    // The caller keeps its ids; the namespace's capabilities serve the
    // mounts below and are gone at exec.
    if (!write_text("/proc/self/setgroups", "deny") ||
        !write_text("/proc/self/uid_map", std::to_string(uid) + " " + std::to_string(uid) + " 1") ||
        !write_text("/proc/self/gid_map", std::to_string(gid) + " " + std::to_string(gid) + " 1"))
      return fail("--compat: cannot map the user namespace's ids: " + std::string(std::strerror(errno)));
  }
  const std::string target(kCgroupRoot);
  auto failed = [&](const std::string& what) {
    const int e = errno;
    return fail("--compat: " + what + ": " + std::strerror(e));
  };
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return failed("making / private");
  if (!is_dir(target)) return fail("--compat: " + target + " is not a directory");
  // The host's cgroup mounts go where they can (root: no locked mounts);
  // otherwise the mounts below cover them, and the supervisor's mount
  // table leaves them out.
  if (!userns) (void)::umount2(target.c_str(), MNT_DETACH);
  const unsigned long flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  // A hierarchy mounted as systemd mounts it: nosuid, nodev, noexec.
  auto bind = [&](const std::string& from, const std::string& to) {
    if (::mount(from.c_str(), to.c_str(), nullptr, MS_BIND, nullptr) != 0) return false;
    return ::mount(nullptr, to.c_str(), nullptr, MS_REMOUNT | MS_BIND | flags, nullptr) == 0;
  };
  if (hiers.size() == 1 && hiers[0].dir == mount) {
    if (!bind(mount, target)) return failed("bind-mounting " + mount + " on " + target);
    return 0;
  }
  if (::mount("tmpfs", target.c_str(), "tmpfs", flags, "mode=755") != 0)
    return failed("mounting a tmpfs on " + target);
  for (const Hier& h : hiers) {
    const std::string name = std::filesystem::path(h.dir).filename();
    const std::string dir = target + "/" + name;
    if (::mkdir(dir.c_str(), 0755) != 0) return failed("mkdir " + dir);
    if (!bind(h.dir, dir)) return failed("bind-mounting " + h.dir + " on " + dir);
  }
  // Read-only, as systemd leaves it.
  if (::mount(nullptr, target.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | flags, nullptr) != 0)
    return failed("making " + target + " read-only");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Runs COMMAND in cgroups of a cgcorefs mount, under the daemon's supervision."};
  std::string mount;
  std::vector<std::string> groups;
  bool sticky = false;
  bool compat = false;
  app.add_option("-m,--mount", mount, "the cgcorefs mount (default: $CGCORE_MOUNT, then /tmp/cgcore)");
  app.add_option("-g", groups, "CONTROLLERS:PATH, e.g. pids,memory:/web or '*:/web' (repeatable)")
      ->required();
  app.add_flag("--sticky", sticky,
               "accepted for libcgroup compatibility (cgcore runs no rules daemon that would move it)");
  app.add_flag("--compat", compat,
               "the kernel's interfaces for COMMAND: /sys/fs/cgroup is the mount, /proc/*/cgroup, "
               "/proc/cgroups and the mount table show cgcore's hierarchies, statfs their magic");
  app.prefix_command();
  app.name("cgexec");
  cgcore::tools::standard_options(
      app, "cgexec",
      "The exit status is COMMAND's (cgexec execs it); before that, 126 if COMMAND cannot be run "
      "and 127 if it is not found.");
  if (int rc = cgcore::tools::parse(app, argc, argv); rc >= 0) return rc;
  std::vector<std::string> command = app.remaining();
  if (!command.empty() && command.front() == "--") command.erase(command.begin());
  if (command.empty()) {
    std::fprintf(stderr, "cgexec: no COMMAND given\n%s", app.help().c_str());
    return 2;
  }
  if (mount.empty()) {
    const char* env = std::getenv("CGCORE_MOUNT");
    mount = env && *env ? env : "/tmp/cgcore";
  }
  while (mount.size() > 1 && mount.back() == '/') mount.pop_back();

  const std::string socket = daemon_socket(mount);
  if (socket.empty())
    return fail("no cgcorefs daemon with supervision at " + mount + " (" + mount +
                "/.cgcore/daemon names none)");
  const std::vector<Hier> hiers = hierarchies(mount);

  // Every target first, so that a bad one changes nothing.
  std::vector<std::string> targets;
  for (const std::string& g : groups) {
    const size_t colon = g.find(':');
    if (colon == std::string::npos || colon == 0)
      return std::fprintf(stderr, "cgexec: -g %s: expected CONTROLLERS:PATH\n", g.c_str()), 2;
    const std::string path = g.substr(colon + 1).empty() ? "/" : g.substr(colon + 1);
    std::set<const Hier*> chosen;
    if (g.substr(0, colon) == "*") {
      for (const Hier& h : hiers) chosen.insert(&h);
    } else {
      for (const std::string& c : split(g.substr(0, colon), ',')) {
        const Hier* found = nullptr;
        for (const Hier& h : hiers)
          if (h.controllers.count(c) || (h.v2 && hiers.size() == 1)) found = &h;
        if (!found) return fail("controller " + c + " is not mounted at " + mount);
        chosen.insert(found);
      }
    }
    for (const Hier* h : chosen) {
      const std::string dir = h->dir + (path[0] == '/' ? "" : "/") + path;
      if (!is_dir(dir)) return fail("no such cgroup " + g.substr(0, colon) + ":" + path + " (" + dir + ")");
      targets.push_back(dir);
    }
  }
  // Join: the daemon moves this process (and checks the right to).
  const std::string me = std::to_string(::getpid());
  for (const std::string& dir : targets) {
    std::ofstream procs(dir + "/cgroup.procs");
    procs << me << std::flush;
    if (!procs) {
      const int e = errno;
      return fail("cannot join " + dir + ": " + std::strerror(e ? e : EIO));
    }
  }
  if (compat)
    if (int rc = enter_compat_namespace(mount, hiers); rc != 0) return rc;
  if (cgcore::Status st = cgcore::supervisor::supervise(socket, compat); !st.ok()) return fail(st.message());

  std::vector<char*> args;
  for (std::string& a : command) args.push_back(a.data());
  args.push_back(nullptr);
  ::execvp(args[0], args.data());
  const int e = errno;
  std::fprintf(stderr, "cgexec: %s: %s\n", args[0], std::strerror(e));
  return e == ENOENT ? 127 : 126;
}
