// cgcorefs across restarts of its server (docs/cgcorefs.md, "Restarts and
// upgrades"): the keeper keeps the mount while the server is killed under
// load, a full stop (keeper and server killed, the mount cleared) and a new
// mount with the same --state bring everything back, a torn last journal
// record is discarded, frozen cgroups stay frozen, SIGHUP upgrades in place.
// Real processes and real mounts; skipped, saying why, without root,
// /dev/fuse or fusermount3.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "tests/fuse/mount_harness.h"

namespace cgcore::fuse::testing {
namespace {

using namespace std::chrono_literals;

std::string cat(const std::string& path) {
  std::optional<std::string> s = read_file(path);
  return s ? *s : "<" + std::string(std::strerror(errno)) + ">";
}

// The process's state letter in /proc/PID/stat ('T' stopped).
char state_of(pid_t pid) {
  std::optional<std::string> s = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!s) return '?';
  size_t p = s->rfind(')');
  return p == std::string::npos || p + 2 >= s->size() ? '?' : (*s)[p + 2];
}

// A state directory removed at the end.
struct StateDir {
  std::string path;
  StateDir() {
    char tmpl[] = "/tmp/cgcorefs-state.XXXXXX";
    if (mkdtemp(tmpl)) path = tmpl;
  }
  ~StateDir() {
    if (!path.empty()) sh("rm -rf '" + path + "'");
  }
};

// Waits until the mount is served by a server other than `old`.
pid_t new_server(const Mount& m, pid_t old) {
  pid_t now = 0;
  eventually([&] {
    now = m.server_pid();
    return now > 0 && now != old;
  }, 10s);
  return now;
}

// Clients under load while the server is killed: reads, value writes,
// mkdir/rmdir; counts each errno seen.
class Load {
 public:
  explicit Load(const Mount& m) {
    for (int t = 0; t < 4; ++t)
      threads_.emplace_back([this, &m, t] {
        const std::string mine = m.path("pids/load" + std::to_string(t));
        for (int i = 0; !stop_.load(); ++i) {
          if (!read_file(m.path("pids/a/cgroup.procs"))) note(errno);
          if (int e = write_file(m.path("pids/a/pids.max"), "50"); e) note(e);
          if (::mkdir(mine.c_str(), 0755) != 0) note(errno);
          if (::rmdir(mine.c_str()) != 0) note(errno);
          ops_.fetch_add(1);
        }
      });
  }
  ~Load() { stop(); }
  void stop() {
    stop_.store(true);
    for (std::thread& t : threads_)
      if (t.joinable()) t.join();
  }
  int64_t ops() const { return ops_.load(); }
  std::map<int, int> errors() {
    std::lock_guard<std::mutex> l(mu_);
    return errors_;
  }

 private:
  void note(int e) {
    std::lock_guard<std::mutex> l(mu_);
    ++errors_[e];
  }
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> ops_{0};
  std::mutex mu_;
  std::map<int, int> errors_;
};

std::string describe(const std::map<int, int>& errors) {
  std::string s;
  for (auto [e, n] : errors) s += std::string(strerrorname_np(e) ? strerrorname_np(e) : "?") + "x" + std::to_string(n) + " ";
  return s;
}

TEST(CgcorefsRestart, KillingTheServerUnderLoadKeepsTheMountAndTheState) {
  SKIP_WITHOUT_FUSE();
  Mount m({});
  ASSERT_MOUNTED(m);
  ASSERT_EQ(::mkdir(m.path("pids/a").c_str(), 0755), 0);
  ASSERT_EQ(write_file(m.path("pids/a/pids.max"), "50"), 0);
  ASSERT_EQ(::mkdir(m.path("unified/b").c_str(), 0755), 0);
  // A process forking and exiting all along, in pids/a and unified/b.
  Proc forker({"/bin/sh", "-c", "while :; do /bin/sleep 0.05 & wait; done"});
  ASSERT_EQ(write_file(m.path("pids/a/cgroup.procs"), std::to_string(forker.pid())), 0);
  ASSERT_EQ(write_file(m.path("unified/b/cgroup.procs"), std::to_string(forker.pid())), 0);
  Proc sleeper({"/bin/sleep", "100"});
  ASSERT_EQ(write_file(m.path("pids/a/cgroup.procs"), std::to_string(sleeper.pid())), 0);

  // Removed cgroups before a live one: the restored one must keep its id
  // (inode numbers) all the same.
  ASSERT_EQ(::mkdir(m.path("pids/x").c_str(), 0755), 0);
  ASSERT_EQ(::rmdir(m.path("pids/x").c_str()), 0);
  ASSERT_EQ(::mkdir(m.path("pids/c").c_str(), 0755), 0);
  ASSERT_EQ(write_file(m.path("pids/c/pids.max"), "3"), 0);
  // A descriptor and an inode held across the restart.
  const int held = ::open(m.path("pids/c/pids.max").c_str(), O_RDONLY);
  ASSERT_GE(held, 0);
  struct stat before_st{};
  ASSERT_EQ(::stat(m.path("pids/c").c_str(), &before_st), 0);

  const pid_t keeper = m.keeper_pid(), old = m.server_pid();
  ASSERT_GT(old, 0);
  EXPECT_EQ(keeper, m.daemon());
  // The supervisor's socket, named by the server.
  auto socket_of_server = [&]() -> std::string {
    std::istringstream lines(cat(m.path(".cgcore/daemon")));
    for (std::string l; std::getline(lines, l);)
      if (l.rfind("socket ", 0) == 0) return l.substr(7);
    return "";
  };
  const std::string old_socket = socket_of_server();
  ASSERT_FALSE(old_socket.empty()) << cat(m.path(".cgcore/daemon"));
  Load load(m);
  std::this_thread::sleep_for(200ms);
  ASSERT_EQ(kill(old, SIGKILL), 0);
  const pid_t next = new_server(m, old);
  ASSERT_GT(next, 0) << m.log();
  // The killed server's socket was removed by the keeper; the new one's is there.
  EXPECT_NE(::access(old_socket.c_str(), F_OK), 0) << old_socket;
  EXPECT_EQ(::access(socket_of_server().c_str(), F_OK), 0) << socket_of_server();
  const int64_t before = load.ops();
  ASSERT_TRUE(eventually([&] { return load.ops() > before + 20; }, 10s)) << "no progress after the restart";
  load.stop();
  std::map<int, int> errors = load.errors();
  // No client ever saw the mount gone, and no request failed: those in
  // flight are resent, and one the dead server had carried out (its change
  // journaled) is answered without running again.
  EXPECT_EQ(errors.count(ENOTCONN), 0u) << describe(errors);
  EXPECT_TRUE(errors.empty()) << describe(errors);
  EXPECT_TRUE(m.mounted());
  EXPECT_EQ(m.keeper_pid(), keeper);
  // The restored engine passed the invariant checker before serving.
  EXPECT_NE(m.log().find("invariants hold"), std::string::npos) << m.log();
  EXPECT_EQ(m.log().find("invariant violated"), std::string::npos) << m.log();

  // The tree, the limit and the memberships are as before.
  EXPECT_EQ(cat(m.path("pids/a/pids.max")), "50\n");
  char buf[64];
  const ssize_t n = ::pread(held, buf, sizeof buf, 0);
  EXPECT_EQ(n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::strerror(errno), "3\n");
  ::close(held);
  struct stat after_st{};
  ASSERT_EQ(::stat(m.path("pids/c").c_str(), &after_st), 0);
  EXPECT_EQ(after_st.st_ino, before_st.st_ino);
  std::vector<long> members = pids_of(cat(m.path("pids/a/cgroup.procs")));
  EXPECT_NE(std::find(members.begin(), members.end(), forker.pid()), members.end());
  EXPECT_NE(std::find(members.begin(), members.end(), sleeper.pid()), members.end());
  EXPECT_NE(cat(m.path("unified/b/cgroup.procs")).find(std::to_string(forker.pid())), std::string::npos);
  // A child forked meanwhile is where its parent is, as in the kernel.
  EXPECT_TRUE(eventually([&] {
    for (long p : pids_of(cat(m.path("pids/a/cgroup.procs"))))
      if (p != forker.pid() && p != sleeper.pid()) return true;
    return false;
  }, 5s)) << "no child of the forker listed in pids/a";
}

TEST(CgcorefsRestart, AFullStopAndANewMountWithTheSameStateBringEverythingBack) {
  SKIP_WITHOUT_FUSE();
  StateDir state;
  ASSERT_FALSE(state.path.empty());
  Proc member({"/bin/sleep", "100"});
  Proc frozen({"/bin/sleep", "100"});
  {
    Mount m({"--state", state.path});
    ASSERT_MOUNTED(m);
    ASSERT_EQ(::mkdir(m.path("pids/a").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(m.path("pids/a/deep").c_str(), 0700), 0);
    ASSERT_EQ(write_file(m.path("pids/a/pids.max"), "7"), 0);
    ASSERT_EQ(::mkdir(m.path("cpuset/old").c_str(), 0755), 0);
    ASSERT_EQ(::rename(m.path("cpuset/old").c_str(), m.path("cpuset/new").c_str()), 0);
    ASSERT_EQ(::mkdir(m.path("unified/gone").c_str(), 0755), 0);
    ASSERT_EQ(::rmdir(m.path("unified/gone").c_str()), 0);
    ASSERT_EQ(::mkdir(m.path("unified/ice").c_str(), 0755), 0);
    ASSERT_EQ(write_file(m.path("pids/a/deep/cgroup.procs"), std::to_string(member.pid())), 0);
    ASSERT_EQ(write_file(m.path("unified/ice/cgroup.procs"), std::to_string(frozen.pid())), 0);
    ASSERT_EQ(write_file(m.path("unified/ice/cgroup.freeze"), "1"), 0);
    ASSERT_TRUE(eventually([&] { return state_of(frozen.pid()) == 'T'; })) << state_of(frozen.pid());
    // kill -9 of keeper and server, then the stale mount cleared.
    const pid_t server = m.server_pid();
    ASSERT_GT(server, 0);
    kill(server, SIGKILL);
    kill(m.daemon(), SIGKILL);
    m.reap_killed();
    ASSERT_TRUE(eventually([&] { return kill(server, 0) != 0; }));
    ASSERT_EQ(sh("fusermount3 -u '" + m.dir() + "'"), 0);
    // Nothing thawed it: no server ran.
    EXPECT_EQ(state_of(frozen.pid()), 'T');
  }
  Mount m({"--state", state.path});
  ASSERT_MOUNTED(m);
  EXPECT_EQ(cat(m.path("pids/a/pids.max")), "7\n");
  EXPECT_NE(m.log().find("invariants hold"), std::string::npos) << m.log();
  struct stat st{};
  ASSERT_EQ(::stat(m.path("pids/a/deep").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(::stat(m.path("cpuset/new").c_str(), &st), 0);
  EXPECT_NE(::stat(m.path("cpuset/old").c_str(), &st), 0);
  EXPECT_NE(::stat(m.path("unified/gone").c_str(), &st), 0);
  EXPECT_EQ(cat(m.path("pids/a/deep/cgroup.procs")), std::to_string(member.pid()) + "\n");
  EXPECT_EQ(cat(m.path("unified/ice/cgroup.procs")), std::to_string(frozen.pid()) + "\n");
  EXPECT_EQ(cat(m.path("unified/ice/cgroup.freeze")), "1\n");
  EXPECT_EQ(state_of(frozen.pid()), 'T');
  // The new server thaws what it adopted.
  ASSERT_EQ(write_file(m.path("unified/ice/cgroup.freeze"), "0"), 0);
  EXPECT_TRUE(eventually([&] { return state_of(frozen.pid()) != 'T'; })) << state_of(frozen.pid());
}

TEST(CgcorefsRestart, ATornLastJournalRecordIsDiscardedAndNothingElse) {
  SKIP_WITHOUT_FUSE();
  StateDir state;
  ASSERT_FALSE(state.path.empty());
  {
    Mount m({"--state", state.path});
    ASSERT_MOUNTED(m);
    ASSERT_EQ(::mkdir(m.path("pids/a").c_str(), 0755), 0);
    ASSERT_EQ(write_file(m.path("pids/a/pids.max"), "5"), 0);
    ASSERT_EQ(write_file(m.path("pids/a/pids.max"), "9"), 0);
    std::optional<int> st = m.signal_and_wait(SIGTERM, 5s);
    ASSERT_TRUE(st && WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << m.log();
  }
  // A kill in the middle of the last append: its last 3 bytes never made it.
  const std::string journal = state.path + "/journal";
  struct stat st{};
  ASSERT_EQ(::stat(journal.c_str(), &st), 0);
  ASSERT_EQ(::truncate(journal.c_str(), st.st_size - 3), 0);
  Mount m({"--state", state.path});
  ASSERT_MOUNTED(m);
  EXPECT_EQ(cat(m.path("pids/a/pids.max")), "5\n");
  EXPECT_NE(m.log().find("a torn last record discarded"), std::string::npos) << m.log();
}

TEST(CgcorefsRestart, AFreshStartContinuesWhatAPreviousRunFroze) {
  SKIP_WITHOUT_FUSE();
  StateDir state;
  ASSERT_FALSE(state.path.empty());
  Proc frozen({"/bin/sleep", "100"});
  {
    Mount m({"--state", state.path});
    ASSERT_MOUNTED(m);
    ASSERT_EQ(::mkdir(m.path("unified/ice").c_str(), 0755), 0);
    ASSERT_EQ(write_file(m.path("unified/ice/cgroup.procs"), std::to_string(frozen.pid())), 0);
    ASSERT_EQ(write_file(m.path("unified/ice/cgroup.freeze"), "1"), 0);
    ASSERT_TRUE(eventually([&] { return state_of(frozen.pid()) == 'T'; }));
    const pid_t server = m.server_pid();
    kill(server, SIGKILL);
    kill(m.daemon(), SIGKILL);
    m.reap_killed();
    ASSERT_TRUE(eventually([&] { return kill(server, 0) != 0; }));
    ASSERT_EQ(sh("fusermount3 -u '" + m.dir() + "'"), 0);
  }
  EXPECT_EQ(state_of(frozen.pid()), 'T');
  Mount m({"--state", state.path, "--fresh"});
  ASSERT_MOUNTED(m);
  EXPECT_NE(::access(m.path("unified/cgroup.procs").c_str(), F_OK), -1);
  struct stat st{};
  EXPECT_NE(::stat(m.path("unified/ice").c_str(), &st), 0);
  EXPECT_TRUE(eventually([&] { return state_of(frozen.pid()) != 'T'; })) << "still stopped";
}

TEST(CgcorefsRestart, SighupUpgradesInPlaceWithoutAFailedRequest) {
  SKIP_WITHOUT_FUSE();
  Mount m({});
  ASSERT_MOUNTED(m);
  ASSERT_EQ(::mkdir(m.path("pids/a").c_str(), 0755), 0);
  Proc frozen({"/bin/sleep", "100"});
  ASSERT_EQ(::mkdir(m.path("unified/ice").c_str(), 0755), 0);
  ASSERT_EQ(write_file(m.path("unified/ice/cgroup.procs"), std::to_string(frozen.pid())), 0);
  ASSERT_EQ(write_file(m.path("unified/ice/cgroup.freeze"), "1"), 0);
  ASSERT_TRUE(eventually([&] { return state_of(frozen.pid()) == 'T'; }));
  const pid_t old = m.server_pid();
  {
    Load load(m);
    std::this_thread::sleep_for(200ms);
    ASSERT_EQ(kill(m.daemon(), SIGHUP), 0);
    ASSERT_GT(new_server(m, old), 0) << m.log();
    const int64_t before = load.ops();
    ASSERT_TRUE(eventually([&] { return load.ops() > before + 20; }, 10s));
    load.stop();
    // A hand-over answers what it read: no request fails or repeats.
    EXPECT_TRUE(load.errors().empty()) << describe(load.errors());
  }
  EXPECT_EQ(cat(m.path("pids/a/pids.max")), "50\n");
  EXPECT_EQ(state_of(frozen.pid()), 'T');
  EXPECT_NE(m.log().find("hands over"), std::string::npos) << m.log();
  ASSERT_EQ(write_file(m.path("unified/ice/cgroup.freeze"), "0"), 0);
  EXPECT_TRUE(eventually([&] { return state_of(frozen.pid()) != 'T'; }));
}

TEST(CgcorefsRestart, SighupStartsTheBinaryNowOnDisk) {
  SKIP_WITHOUT_FUSE();
  StateDir bin_dir;
  ASSERT_FALSE(bin_dir.path.empty());
  const std::string bin = bin_dir.path + "/cgcorefs";
  ASSERT_EQ(sh("cp '" CGCOREFS_BINARY "' '" + bin + "'"), 0);
  Mount m({}, bin);
  ASSERT_MOUNTED(m);
  ASSERT_EQ(::mkdir(m.path("pids/a").c_str(), 0755), 0);
  const pid_t old = m.server_pid();
  ASSERT_GT(old, 0);
  // A package upgrade: a new file takes the binary's name.
  ASSERT_EQ(sh("cp '" CGCOREFS_BINARY "' '" + bin + ".new' && mv '" + bin + ".new' '" + bin + "'"), 0);
  struct stat now{}, old_exe{};
  ASSERT_EQ(::stat(bin.c_str(), &now), 0);
  ASSERT_EQ(::stat(("/proc/" + std::to_string(old) + "/exe").c_str(), &old_exe), 0);
  ASSERT_NE(old_exe.st_ino, now.st_ino);
  ASSERT_EQ(kill(m.daemon(), SIGHUP), 0);
  const pid_t next = new_server(m, old);
  ASSERT_GT(next, 0) << m.log();
  struct stat new_exe{};
  ASSERT_EQ(::stat(("/proc/" + std::to_string(next) + "/exe").c_str(), &new_exe), 0);
  EXPECT_EQ(new_exe.st_ino, now.st_ino) << "the new server does not run the file now on disk";
  struct stat st{};
  EXPECT_EQ(::stat(m.path("pids/a").c_str(), &st), 0);
}

}  // namespace
}  // namespace cgcore::fuse::testing
