#include "tests/fuse/mount_harness.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#ifndef CGCOREFS_BINARY
#error "CGCOREFS_BINARY: the path of the cgcorefs binary under test"
#endif

namespace cgcore::fuse::testing {

namespace {

using Clock = std::chrono::steady_clock;

// Resets what a test process may have changed, so that a child starts
// with default signal dispositions and nothing blocked.
void reset_signals_in_child() {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD}) signal(sig, SIG_DFL);
}

pid_t spawn(const std::vector<std::string>& argv, const std::string& log_path, bool own_group,
            const std::string& runtime_dir = "") {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid != 0) return pid;
  reset_signals_in_child();
  if (own_group) setpgid(0, 0);
  int null = open("/dev/null", O_RDWR);
  dup2(null, 0);
  if (!log_path.empty()) {
    int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    dup2(log, 1);
    dup2(log, 2);
  }
  if (!runtime_dir.empty()) setenv("XDG_RUNTIME_DIR", runtime_dir.c_str(), 1);
  execv(args[0], args.data());
  _exit(127);
}

bool is_mount_point(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string f[5];
    for (std::string& s : f) fields >> s;
    if (f[4] == dir) return true;
  }
  return false;
}

std::optional<int> wait_for(pid_t pid, std::chrono::milliseconds timeout) {
  const auto end = Clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return std::nullopt;
    if (Clock::now() >= end) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

bool have_program(const char* name) {
  std::string cmd = std::string("command -v ") + name + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

}  // namespace

std::string fuse_unavailable() {
  if (geteuid() != 0) return "not running as root (the FUSE tests mount with allow_other)";
  int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) return std::string("/dev/fuse: ") + std::strerror(errno);
  close(fd);
  if (!have_program("fusermount3")) return "fusermount3 is not installed (Debian package fuse3)";
  return "";
}

// ------------------------------------------------------------ Mount

Mount::Mount(std::vector<std::string> args, std::string binary) {
  char tmpl[] = "/tmp/cgcorefs-test.XXXXXX";
  if (!mkdtemp(tmpl)) {
    error_ = std::string("mkdtemp: ") + std::strerror(errno);
    return;
  }
  dir_ = tmpl;
  log_path_ = dir_ + ".log";
  std::vector<std::string> argv = {binary.empty() ? std::string(CGCOREFS_BINARY) : binary, "--foreground"};
  // A state of its own, removed with the mount, unless the test names one.
  if (std::find(args.begin(), args.end(), "--state") == args.end()) {
    state_dir_ = dir_ + ".state";
    argv.insert(argv.end(), {"--state", state_dir_});
  }
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(dir_);
  // The control socket goes here, so that a daemon a test kills leaves
  // nothing behind in /run.
  runtime_dir_ = dir_ + ".run";
  // Searchable by all: ordinary users reach the socket in tests too.
  if (::mkdir(runtime_dir_.c_str(), 0755) != 0 || ::chmod(runtime_dir_.c_str(), 0755) != 0) {
    error_ = "mkdir " + runtime_dir_ + ": " + std::strerror(errno);
    runtime_dir_.clear();
    return;
  }
  pid_ = spawn(argv, log_path_, /*own_group=*/false, runtime_dir_);
  if (pid_ < 0) {
    error_ = std::string("fork: ") + std::strerror(errno);
    return;
  }
  const auto end = Clock::now() + std::chrono::seconds(10);
  while (!mounted()) {
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      error_ = "cgcorefs exited before mounting: " + log();
      return;
    }
    if (Clock::now() >= end) {
      error_ = "no mount after 10 s: " + log();
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Mount::~Mount() { cleanup(); }

void Mount::cleanup() {
  if (pid_ > 0) {
    // A daemon still running must stop cleanly on SIGTERM: a crash or a
    // sanitizer report on the way out fails the test that used it.
    std::optional<int> st = signal_and_wait(SIGTERM, std::chrono::seconds(5));
    if (!st) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      ADD_FAILURE() << "cgcorefs did not stop on SIGTERM within 5 s: " << log();
    } else if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0) {
      ADD_FAILURE() << "cgcorefs stopped with wait status " << *st << ": " << log();
    }
    pid_ = -1;
  }
  if (!dir_.empty()) {
    if (mounted()) sh("fusermount3 -u -z '" + dir_ + "' 2>/dev/null || umount -l '" + dir_ + "'");
    rmdir(dir_.c_str());
    unlink(log_path_.c_str());
    if (!state_dir_.empty()) sh("rm -rf '" + state_dir_ + "'");
    if (!runtime_dir_.empty()) sh("rm -rf '" + runtime_dir_ + "'");
    dir_.clear();
  }
}

std::string Mount::log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Mount::mounted() const { return !dir_.empty() && is_mount_point(dir_); }

std::optional<int> Mount::signal_and_wait(int sig, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return std::nullopt;
  kill(pid_, sig);
  std::optional<int> st = wait_for(pid_, timeout);
  if (st) pid_ = -1;
  return st;
}

namespace {
pid_t daemon_line(const std::string& dir, const std::string& key) {
  std::optional<std::string> text = read_file(dir + "/.cgcore/daemon");
  if (!text) return 0;
  std::istringstream in(*text);
  std::string k;
  long v;
  while (in >> k >> v)
    if (k == key) return static_cast<pid_t>(v);
  return 0;
}
}  // namespace

pid_t Mount::keeper_pid() const { return daemon_line(dir_, "keeper"); }
pid_t Mount::server_pid() const { return daemon_line(dir_, "server"); }

void Mount::reap_killed() {
  if (pid_ <= 0) return;
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

std::optional<int> Mount::wait_exit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return std::nullopt;
  std::optional<int> st = wait_for(pid_, timeout);
  if (st) pid_ = -1;
  return st;
}

// ------------------------------------------------------------ Proc

Proc::Proc(std::vector<std::string> argv) { pid_ = spawn(argv, "", /*own_group=*/true); }

Proc::~Proc() { kill_and_reap(); }

void Proc::kill_and_reap() {
  if (pid_ <= 0) return;
  kill(-pid_, SIGKILL);
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

// ------------------------------------------------------------ helpers

int sh(const std::string& cmd, std::string* out) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    reset_signals_in_child();
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) text.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  if (out) *out = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::optional<std::string> read_file(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      int e = errno;
      close(fd);
      errno = e;
      return std::nullopt;
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return text;
}

int write_file(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n = write(fd, data.data(), data.size());
  int e = n < 0 ? errno : 0;
  close(fd);
  return e;
}

bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  const auto end = Clock::now() + timeout;
  for (;;) {
    if (cond()) return true;
    if (Clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::vector<long> pids_of(const std::string& text) {
  std::vector<long> out;
  std::istringstream in(text);
  long v;
  while (in >> v) out.push_back(v);
  return out;
}

bool contains_pid(const std::string& text, long pid) {
  for (long p : pids_of(text))
    if (p == pid) return true;
  return false;
}

}  // namespace cgcore::fuse::testing
