// Test harness for cgcorefs mounts: spawns the daemon on a fresh temporary
// directory and tears everything down in destructors (RAII), also when an
// assertion fails midway — a test never leaves a mount, a daemon or a
// process behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

// In a test body: skips the test, saying why, where FUSE mounts cannot be
// made (fuse_unavailable).
#define SKIP_WITHOUT_FUSE()                                                            \
  do {                                                                                 \
    if (std::string why = ::cgcore::fuse::testing::fuse_unavailable(); !why.empty())   \
      GTEST_SKIP() << "FUSE mount tests skipped: " << why;                             \
  } while (0)

// Asserts that a Mount came up, with the daemon's log if not.
#define ASSERT_MOUNTED(m) ASSERT_TRUE((m).ok()) << (m).error()

namespace cgcore::fuse::testing {

// Why FUSE mounts cannot be tested here ("" if they can): not root, no
// /dev/fuse, no fusermount3.
std::string fuse_unavailable();

// A mounted cgcorefs daemon (`cgcorefs --foreground ARGS DIR`).
class Mount {
 public:
  // Spawns the daemon and waits (up to 10 s) for the mount to appear.
  // ok() tells whether it did; error() why not (with the daemon's log).
  // `binary`: another cgcorefs than the one built (a copy, for upgrades).
  explicit Mount(std::vector<std::string> args, std::string binary = "");
  // Stops the daemon (SIGTERM, then SIGKILL; a daemon that does not exit 0
  // on SIGTERM fails the current test), removes any mount left
  // (fusermount3 -u, else umount -l) and the directory.
  ~Mount();
  Mount(const Mount&) = delete;
  Mount& operator=(const Mount&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& dir() const { return dir_; }
  std::string path(const std::string& rel) const { return dir_ + "/" + rel; }
  pid_t daemon() const { return pid_; }
  // The daemon's stderr so far.
  std::string log() const;
  // The daemon's .cgcore/daemon lines "keeper PID" / "server PID" (0 if
  // absent or unreadable).
  pid_t keeper_pid() const;
  pid_t server_pid() const;
  // The keeper was killed by the test: reaps it, and cleanup() expects no
  // clean exit from it.
  void reap_killed();
  // Whether the directory is a cgcorefs mount now (mountinfo).
  bool mounted() const;
  // Sends `sig` to the daemon and waits up to `timeout` for it to exit;
  // returns its wait status, or nullopt if it is still running.
  std::optional<int> signal_and_wait(int sig, std::chrono::milliseconds timeout);
  // Waits for the daemon to exit on its own (after an external unmount).
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  // What the destructor does, callable early; idempotent.
  void cleanup();

 private:
  std::string dir_, log_path_, state_dir_, runtime_dir_;
  pid_t pid_ = -1;
  std::string error_;
};

// A child process in a process group of its own, killed (the whole group)
// and reaped by the destructor.
class Proc {
 public:
  explicit Proc(std::vector<std::string> argv);
  ~Proc();
  Proc(const Proc&) = delete;
  Proc& operator=(const Proc&) = delete;
  pid_t pid() const { return pid_; }
  // SIGKILLs the group and reaps the leader.
  void kill_and_reap();

 private:
  pid_t pid_ = -1;
};

// `/bin/sh -c CMD`: its exit code, stdout+stderr into *out.
int sh(const std::string& cmd, std::string* out = nullptr);
// Whole-file read; nullopt on error (errno set).
std::optional<std::string> read_file(const std::string& path);
// One open + one write() + close: 0 or the errno of whichever failed.
int write_file(const std::string& path, const std::string& data);
// Polls `cond` every 10 ms until it holds or `timeout` passes.
bool eventually(const std::function<bool()>& cond,
                std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));
// Lines of a pid list as numbers.
std::vector<long> pids_of(const std::string& text);
bool contains_pid(const std::string& text, long pid);

}  // namespace cgcore::fuse::testing
