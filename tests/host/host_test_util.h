// Test support for the host backend: processes the test starts (and always
// kills and reaps), a fabricated /proc tree, and a fixture holding an engine
// with the builtin controllers, a v2 cgroupfs and a tracker.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "controllers/registry.h"
#include "fs/cgroupfs.h"
#include "host/host_tracker.h"

extern char** environ;

namespace cgcore::host::testing {

// The environment variable that turns the test binary into a helper process
// (see helper_main in host_tracker_test.cc).
inline constexpr const char* kHelperEnv = "CGCORE_HOST_TEST_HELPER";

// A process this test started, in a process group of its own. The guard
// SIGKILLs the group and reaps the process when it goes, whatever the test
// did (failed assertions included), so nothing outlives the test; it never
// signals anything it did not start.
class Child {
 public:
  Child() = default;
  explicit Child(const std::vector<std::string>& argv, const std::string& helper_mode = "") {
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e)
      if (std::string_view(*e).rfind(std::string(kHelperEnv) + "=", 0) != 0) env_strings.emplace_back(*e);
    if (!helper_mode.empty()) env_strings.push_back(std::string(kHelperEnv) + "=" + helper_mode);
    std::vector<char*> env;
    for (std::string& s : env_strings) env.push_back(s.data());
    env.push_back(nullptr);
    // Only async-signal-safe calls between fork and exec.
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      ::execve(args[0], args.data(), env.data());
      ::_exit(127);
    }
    if (pid_ > 0) ::setpgid(pid_, pid_);  // either side may win the race
  }
  static Child sleep() { return Child({"/bin/sleep", "1000"}); }
  // The test binary itself, running helper_main(mode).
  static Child helper(const std::string& mode) { return Child({"/proc/self/exe"}, mode); }

  Child(Child&& o) noexcept : pid_(o.pid_), reaped_(o.reaped_) { o.pid_ = -1; }
  Child& operator=(Child&& o) noexcept {
    std::swap(pid_, o.pid_);
    std::swap(reaped_, o.reaped_);
    return *this;
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      ::kill(-pid_, SIGKILL);
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  pid_t pid() const { return pid_; }
  bool ok() const { return pid_ > 0; }
  // Waits for the process to end and reaps it; its wait status.
  int wait() {
    int st = 0;
    if (pid_ > 0 && !reaped_ && ::waitpid(pid_, &st, 0) == pid_) reaped_ = true;
    return st;
  }
  void signal(int sig) const {
    if (pid_ > 0 && !reaped_) ::kill(pid_, sig);
  }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
};

// Polls `pred` every 10 ms until it holds or `ms` pass.
template <typename F>
bool eventually(F&& pred, int ms = 10000) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A field of /proc/PID/status ("State", "Cpus_allowed_list"), value only.
inline std::string status_field(pid_t pid, const std::string& key) {
  std::istringstream in(read_text("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key + ":", 0) == 0) {
      std::string v = line.substr(key.size() + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  return "";
}
inline char proc_state(pid_t pid) {
  std::string s = status_field(pid, "State");
  return s.empty() ? '?' : s[0];
}

// The thread ids of a process, from /proc.
inline std::vector<Pid> proc_tids(pid_t pid) {
  std::vector<Pid> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec))
    out.push_back(std::stoi(e.path().filename().string()));
  std::sort(out.begin(), out.end());
  return out;
}

// The processes whose parent is `pid` (for a helper's own children).
inline std::vector<Pid> proc_children(pid_t pid) {
  std::vector<Pid> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat = read_text(e.path().string() + "/stat");
    size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream in(stat.substr(close + 2));
    char state;
    Pid ppid = 0;
    in >> state >> ppid;
    if (ppid == pid) out.push_back(std::stoi(name));
  }
  return out;
}

// A fabricated /proc tree (see host/procfs.h for the files it needs).
class FakeProc {
 public:
  FakeProc() {
    char tmpl[] = "/tmp/cgcore-fakeproc-XXXXXX";
    const char* dir = ::mkdtemp(tmpl);
    root_ = dir ? dir : "";
  }
  ~FakeProc() {
    std::error_code ec;
    if (!root_.empty()) std::filesystem::remove_all(root_, ec);
  }
  const std::string& root() const { return root_; }

  struct Thread {
    Pid tid;
    uint64_t start;
    char state = 'S';
  };
  // Process `tgid` (its leader is the first thread, tid == tgid).
  void put(Pid tgid, Pid ppid, const std::vector<Thread>& threads, uint32_t uid = 0) {
    remove(tgid);
    for (const Thread& t : threads) {
      const std::string stat = stat_line(t.tid, t.state, ppid, t.start);
      const std::string status = status_text(tgid, t.tid, ppid, uid, t.state);
      write(std::to_string(tgid) + "/task/" + std::to_string(t.tid) + "/stat", stat);
      write(std::to_string(t.tid) + "/stat", stat);
      write(std::to_string(t.tid) + "/status", status);
    }
  }
  void remove(Pid tgid) {
    std::error_code ec;
    const std::string dir = root_ + "/" + std::to_string(tgid);
    for (const auto& e : std::filesystem::directory_iterator(dir + "/task", ec)) {
      const std::string tid = e.path().filename().string();
      if (tid != std::to_string(tgid)) std::filesystem::remove_all(root_ + "/" + tid, ec);
    }
    std::filesystem::remove_all(dir, ec);
  }

 private:
  static std::string stat_line(Pid tid, char state, Pid ppid, uint64_t start) {
    // Fields 1..22 (and a few more): pid (comm) state ppid pgrp session tty
    // tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
    // priority nice num_threads itrealvalue starttime vsize rss
    std::ostringstream o;
    o << tid << " (fake (" << tid << ")) " << state << " " << ppid
      << " 0 0 0 0 4194560 0 0 0 0 0 0 0 0 20 0 1 0 " << start << " 0 0\n";
    return o.str();
  }
  static std::string status_text(Pid tgid, Pid tid, Pid ppid, uint32_t uid, char state) {
    std::ostringstream o;
    o << "Name:\tfake\nState:\t" << state << " (x)\nTgid:\t" << tgid << "\nPid:\t" << tid
      << "\nPPid:\t" << ppid << "\nUid:\t" << uid << "\t" << uid << "\t" << uid << "\t" << uid
      << "\nGid:\t" << uid << "\t" << uid << "\t" << uid << "\t" << uid << "\n";
    return o.str();
  }
  void write(const std::string& rel, const std::string& text) {
    const std::filesystem::path p = std::filesystem::path(root_) / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  std::string root_;
};

// An engine with the builtin controllers and a tracker over it (which
// registers them), served as a v2 cgroupfs: make_tracker builds all of it.
class HostFixture : public ::testing::Test {
 protected:
  void TearDown() override {
    if (tracker) tracker->stop();
    Status st = engine.check_invariants();
    EXPECT_TRUE(st.ok()) << st.message();
  }
  // Once per test: the engine's controllers are registered here.
  void make_tracker(HostOptions opts) {
    ASSERT_FALSE(tracker) << "one tracker per engine";
    opts.log = [this](const std::string& line) {
      std::lock_guard<std::mutex> l(log_mu);
      logs.push_back(line);
    };
    auto t = HostTracker::create(engine, {}, std::move(opts));
    ASSERT_TRUE(t.ok()) << t.status().message();
    tracker = std::move(t.value());
    auto f = fs::CgroupFs::create(engine, "v2", *tracker);
    ASSERT_TRUE(f.ok()) << f.status().message();
    fs = std::move(f.value());
  }
  std::string all_logs() {
    std::lock_guard<std::mutex> l(log_mu);
    std::string out;
    for (const std::string& s : logs) out += s + "\n";
    return out;
  }

  // ---- the file interface, as root
  std::string cat(const std::string& path) {
    auto r = fs->read_path(path, fs::Caller{});
    return r.ok() ? r.value() : std::string("error: ") + errno_name(r.err());
  }
  int echo(const std::string& path, const std::string& text) {
    return fs->write_path(path, text, fs::Caller{}).err();
  }
  int mkdir(const std::string& path) {
    auto dir = fs->resolve(parent_of(path));
    if (!dir.ok()) return dir.err();
    return fs->mkdir(*dir, path.substr(path.rfind('/') + 1), 0755, fs::Caller{}).err();
  }
  int rmdir(const std::string& path) {
    auto dir = fs->resolve(parent_of(path));
    if (!dir.ok()) return dir.err();
    return fs->rmdir(*dir, path.substr(path.rfind('/') + 1), fs::Caller{}).err();
  }
  static std::string parent_of(const std::string& path) {
    const size_t slash = path.rfind('/');
    return slash == 0 ? "/" : path.substr(0, slash);
  }

  // ---- engine views
  // The v2 cgroup path of a task ("" if the engine does not have it).
  std::string cgroup_of(Pid pid) {
    auto cg = engine.task_cgroup(pid, engine.default_hierarchy());
    if (!cg.ok()) return "";
    MutexLock l(engine.cgroup_mutex());  // Cgroup::path() reads the tree
    return (*cg)->path();
  }
  bool has_task(Pid tid) {
    auto t = engine.threads_of(tid);
    return t.ok() && std::find(t->begin(), t->end(), tid) != t->end();
  }
  bool has_process(Pid tgid) { return engine.tgid_of(tgid).ok() && engine.tgid_of(tgid).value() == tgid; }
  std::vector<Pid> engine_tids(Pid tgid) {
    auto t = engine.threads_of(tgid);
    std::vector<Pid> out = t.ok() ? t.value() : std::vector<Pid>{};
    std::sort(out.begin(), out.end());
    return out;
  }

  // Destroyed in reverse: the fs, then the tracker (stopped in TearDown),
  // then the engine.
  Engine engine;
  std::unique_ptr<HostTracker> tracker;
  std::unique_ptr<fs::CgroupFs> fs;
  std::mutex log_mu;
  std::vector<std::string> logs;
};

}  // namespace cgcore::host::testing
