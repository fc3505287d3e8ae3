#include "bench/cgbench/host.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace cgbench {

// ------------------------------------------------------------------ the guard

namespace {

int g_pipe_wr = -1;
pid_t g_watchdog = -1;
constexpr int kMaxTracked = 64;
volatile pid_t g_tracked[kMaxTracked];

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// Dies with the parent; returns false if the parent is already gone.
bool die_with_parent(pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  return getppid() == parent;
}

void on_signal(int sig) {
  for (int i = 0; i < kMaxTracked; ++i)
    if (g_tracked[i] > 0) kill(g_tracked[i], SIGKILL);
  if (g_pipe_wr >= 0) {
    close(g_pipe_wr);
    g_pipe_wr = -1;
  }
  if (g_watchdog > 0) waitpid(g_watchdog, nullptr, 0);
  _exit(128 + sig);
}

void unmount(const std::string& dir, pid_t daemon) {
  if (daemon > 0) kill(daemon, SIGTERM);
  umount2(dir.c_str(), MNT_DETACH);
  if (daemon > 0) {
    for (int i = 0; i < 100 && kill(daemon, 0) == 0; ++i) sleep_ms(10);
    kill(daemon, SIGKILL);
  }
  rmdir(dir.c_str());
}

[[noreturn]] void watchdog_main(int rd) {
  setsid();
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  std::string buf;
  char chunk[4096];
  for (;;) {
    ssize_t n = read(rd, chunk, sizeof chunk);
    if (n > 0) {
      buf.append(chunk, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;  // EOF: cgbench is done, one way or another
  }
  std::vector<std::string> dirs;
  std::vector<std::pair<std::string, pid_t>> mounts;
  std::vector<std::pair<std::string, std::string>> params;
  std::istringstream in(buf);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("D ", 0) == 0) dirs.push_back(line.substr(2));
    if (line.rfind("M ", 0) == 0) {
      size_t sp = line.find(' ', 2);
      mounts.emplace_back(line.substr(sp + 1), static_cast<pid_t>(std::atoi(line.c_str() + 2)));
    }
    if (line.rfind("P ", 0) == 0) {
      size_t sp = line.find(' ', 2);
      if (sp != std::string::npos) params.emplace_back(line.substr(sp + 1), line.substr(2, sp - 2));
    }
  }
  for (auto& [dir, daemon] : mounts) {
    struct stat st;
    if (stat(dir.c_str(), &st) == 0 || errno == ENOTCONN) unmount(dir, daemon);
  }
  for (const std::string& d : dirs) remove_cgroup_tree(d);
  for (auto& [path, value] : params) {
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) continue;
    (void)!write(fd, value.data(), value.size());
    close(fd);
  }
  _exit(0);
}

void guard_send(const std::string& line) {
  if (g_pipe_wr < 0) return;
  std::string l = line + "\n";
  (void)!write(g_pipe_wr, l.data(), l.size());
}

}  // namespace

void guard_start() {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return;
  pid_t pid = fork();
  if (pid == 0) {
    close(p[1]);
    watchdog_main(p[0]);
  }
  close(p[0]);
  if (pid < 0) {
    close(p[1]);
    return;
  }
  g_watchdog = pid;
  g_pipe_wr = p[1];
  struct sigaction sa = {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaction(sig, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

void guard_add_cgroup_dir(const std::string& path) { guard_send("D " + path); }

void guard_add_mount(const std::string& dir, pid_t daemon) {
  guard_send("M " + std::to_string(daemon) + " " + dir);
}

void guard_restore_param(const std::string& path, const std::string& value) {
  guard_send("P " + value + " " + path);
}

void guard_track(pid_t pid) {
  for (int i = 0; i < kMaxTracked; ++i)
    if (g_tracked[i] <= 0) {
      g_tracked[i] = pid;
      return;
    }
}

void guard_untrack(pid_t pid) {
  for (int i = 0; i < kMaxTracked; ++i)
    if (g_tracked[i] == pid) g_tracked[i] = 0;
}

void guard_finish() {
  if (g_pipe_wr >= 0) {
    close(g_pipe_wr);
    g_pipe_wr = -1;
  }
  if (g_watchdog > 0) {
    waitpid(g_watchdog, nullptr, 0);
    g_watchdog = -1;
  }
}

void guard_forget_in_child() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) signal(sig, SIG_DFL);
  if (g_pipe_wr >= 0) close(g_pipe_wr);
  g_pipe_wr = -1;
  g_watchdog = -1;
  for (int i = 0; i < kMaxTracked; ++i) g_tracked[i] = 0;
}

bool remove_cgroup_tree(const std::string& path, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (DIR* d = opendir(path.c_str())) {
      std::vector<std::string> subdirs;
      while (dirent* e = readdir(d)) {
        if (e->d_type != DT_DIR || !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        subdirs.push_back(path + "/" + e->d_name);
      }
      closedir(d);
      for (const std::string& s : subdirs) remove_cgroup_tree(s, timeout_ms);
    } else if (errno == ENOENT) {
      return true;
    }
    // v2: cgroup.kill; everywhere: SIGKILL what cgroup.procs lists.
    if (int fd = open((path + "/cgroup.kill").c_str(), O_WRONLY | O_CLOEXEC); fd >= 0) {
      (void)!write(fd, "1", 1);
      close(fd);
    }
    std::ifstream procs(path + "/cgroup.procs");
    for (long pid; procs >> pid;)
      if (pid > 1 && pid != getpid()) kill(static_cast<pid_t>(pid), SIGKILL);
    if (rmdir(path.c_str()) == 0 || errno == ENOENT) return true;
    if (errno != EBUSY && errno != ENOTEMPTY) return false;
    if (std::chrono::steady_clock::now() > deadline) return false;
    sleep_ms(5);
  }
}

// ------------------------------------------------------------------ processes

pid_t fork_sleeper() {
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    if (!die_with_parent(parent)) _exit(0);
    for (;;) pause();
  }
  if (pid > 0) guard_track(pid);
  return pid;
}

namespace {
void* block_forever(void*) {
  for (;;) pause();
  return nullptr;
}
}  // namespace

pid_t fork_threads(int nr_threads) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return -1;
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    if (!die_with_parent(parent)) _exit(0);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    for (int i = 1; i < nr_threads; ++i) {
      pthread_t t;
      if (pthread_create(&t, &attr, block_forever, nullptr) != 0) _exit(1);
    }
    char c = 'r';
    (void)!write(p[1], &c, 1);
    for (;;) pause();
  }
  close(p[1]);
  if (pid < 0) {
    close(p[0]);
    return -1;
  }
  guard_track(pid);
  char c;
  ssize_t n;
  do n = read(p[0], &c, 1);
  while (n < 0 && errno == EINTR);
  close(p[0]);
  if (n != 1) {
    kill_child(pid);
    return -1;
  }
  return pid;
}

void kill_child(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGKILL);
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  guard_untrack(pid);
}

bool Factory::start() {
  int c[2], r[2];
  if (pipe2(c, O_CLOEXEC) != 0) return false;
  if (pipe2(r, O_CLOEXEC) != 0) {
    close(c[0]);
    close(c[1]);
    return false;
  }
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    close(c[1]);
    close(r[0]);
    if (!die_with_parent(parent)) _exit(0);
    signal(SIGCHLD, SIG_IGN);  // sleepers are reaped automatically
    const pid_t me = getpid();
    std::vector<pid_t> kids;
    for (;;) {
      int n = 0;
      if (read(c[0], &n, sizeof n) != sizeof n || n <= 0) {
        // Done: kill the sleepers and wait for them all (with SIGCHLD
        // ignored, wait() returns once none is left), so that none stays a
        // zombie for init to reap.
        for (pid_t k : kids) kill(k, SIGKILL);
        while (wait(nullptr) > 0 || errno == EINTR) {
        }
        _exit(0);
      }
      int made = 0;
      for (int i = 0; i < n; ++i) {
        pid_t s = fork();
        if (s == 0) {
          if (!die_with_parent(me)) _exit(0);
          for (;;) pause();
        }
        if (s > 0) {
          ++made;
          kids.push_back(s);
        }
      }
      (void)!write(r[1], &made, sizeof made);
    }
  }
  close(c[0]);
  close(r[1]);
  if (pid < 0) {
    close(c[1]);
    close(r[0]);
    return false;
  }
  pid_ = pid;
  cmd_ = c[1];
  resp_ = r[0];
  guard_track(pid);
  return true;
}

bool Factory::spawn(int n) {
  if (pid_ < 0) return false;
  if (write(cmd_, &n, sizeof n) != sizeof n) return false;
  int made = 0;
  if (read(resp_, &made, sizeof made) != sizeof made) return false;
  return made == n;
}

void Factory::stop() {
  if (pid_ < 0) return;
  close(cmd_);  // the factory exits on EOF; its sleepers follow
  close(resp_);
  while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  guard_untrack(pid_);
  pid_ = -1;
}

// ------------------------------------------------------------------ kernel cgroups

bool make_dir(const std::string& path) { return mkdir(path.c_str(), 0755) == 0; }

int open_wo(const std::string& path) { return open(path.c_str(), O_WRONLY | O_CLOEXEC); }

bool write_pid(int fd, pid_t pid) {
  char buf[24];
  int n = snprintf(buf, sizeof buf, "%d\n", pid);
  return write(fd, buf, static_cast<size_t>(n)) == n;
}

bool write_pid_path(const std::string& path, pid_t pid) {
  int fd = open_wo(path);
  if (fd < 0) return false;
  bool ok = write_pid(fd, pid);
  int saved = errno;
  close(fd);
  errno = saved;
  return ok;
}

long read_count_lines(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  static char buf[64 * 1024];
  long lines = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      close(fd);
      return -1;
    }
    if (n == 0) break;
    for (ssize_t i = 0; i < n; ++i) lines += buf[i] == '\n';
  }
  close(fd);
  return lines;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void KernelCgroups::cleanup() {
  for (KernelHier* h : {&v1, &v2})
    if (h->ok()) {
      if (!remove_cgroup_tree(h->dir))
        fprintf(stderr, "cgbench: could not remove %s: %s\n", h->dir.c_str(), strerror(errno));
      h->dir.clear();
    }
}

KernelCgroups kernel_setup(bool disabled) {
  KernelCgroups k;
  k.v2.v2 = true;
  if (disabled) {
    k.v1.why_not = k.v2.why_not = "--no-kernel";
    return k;
  }
  std::ifstream mounts("/proc/self/mounts");
  std::string dev, dir, type, opts, line;
  while (std::getline(mounts, line)) {
    std::istringstream ls(line);
    ls >> dev >> dir >> type >> opts;
    if (type == "cgroup2" && k.v2.mount.empty()) k.v2.mount = dir;
    if (type == "cgroup" && k.v1.mount.empty()) {
      std::istringstream os(opts);
      for (std::string o; std::getline(os, o, ',');)
        if (o == "pids") k.v1.mount = dir;
    }
  }
  const std::string name = "cgbench." + std::to_string(getpid());
  for (KernelHier* h : {&k.v1, &k.v2}) {
    if (h->mount.empty()) {
      h->why_not = h->v2 ? "no cgroup2 mount" : "no v1 hierarchy with the pids controller";
      continue;
    }
    const std::string d = h->mount + "/" + name;
    guard_add_cgroup_dir(d);  // before mkdir: an interruption right after is covered
    if (!make_dir(d)) {
      h->why_not = d + ": " + strerror(errno);
      continue;
    }
    // Must also be able to move a process in and out.
    pid_t s = fork_sleeper();
    bool ok = s > 0 && write_pid_path(d + "/cgroup.procs", s);
    std::string err = ok ? "" : strerror(errno);
    if (ok) ok = write_pid_path(h->mount + "/cgroup.procs", s);
    if (!ok && err.empty()) err = strerror(errno);
    kill_child(s);
    if (!ok) {
      h->why_not = "cannot move a process into " + d + ": " + err;
      remove_cgroup_tree(d);
      continue;
    }
    h->dir = d;
  }
  return k;
}

}  // namespace cgbench
