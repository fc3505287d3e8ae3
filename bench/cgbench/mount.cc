#include "bench/cgbench/mount.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "bench/cgbench/host.h"

namespace cgbench {

namespace {
// Removes a daemon's state directory (its journal and freezer record).
void remove_state(const std::string& state) {
  if (state.empty()) return;
  for (const char* f : {"/journal", "/journal.tmp", "/stopped", "/stopped.tmp"}) unlink((state + f).c_str());
  rmdir(state.c_str());
}
}  // namespace

pid_t CgcorefsMount::server_pid() const {
  FILE* f = fopen((dir_ + "/.cgcore/daemon").c_str(), "re");
  if (!f) return 0;
  char key[32];
  long v;
  pid_t pid = 0;
  while (fscanf(f, "%31s %ld", key, &v) == 2)
    if (std::string(key) == "server") pid = static_cast<pid_t>(v);
  fclose(f);
  return pid;
}

bool CgcorefsMount::start(const std::string& binary, std::string* why, std::vector<std::string> extra) {
  extra_ = std::move(extra);
  if (access(binary.c_str(), X_OK) != 0) {
    *why = "n/a (cgcorefs not built)";
    return false;
  }
  std::string host_why;
  if (try_start(binary, false, &host_why)) return true;
  std::string sim_why;
  if (try_start(binary, true, &sim_why)) return true;
  *why = "n/a (cgcorefs did not mount: " + host_why + "; --sim: " + sim_why + ")";
  return false;
}

bool CgcorefsMount::try_start(const std::string& binary, bool sim, std::string* why) {
  char tmpl[] = "/tmp/cgbench-mnt.XXXXXX";
  if (!mkdtemp(tmpl)) {
    *why = "mkdtemp failed";
    return false;
  }
  std::string dir = tmpl;
  state_ = dir + ".state";
  std::vector<std::string> args = {binary, "--foreground", "--layout", "hybrid", "--state", state_};
  if (sim) args.insert(args.end(), {"--sim", "--sim-tasks", std::to_string(kSimTasks)});
  args.insert(args.end(), extra_.begin(), extra_.end());
  args.push_back(dir);
  struct stat before;
  stat(dir.c_str(), &before);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);
    // Its log (one line per start) would clutter cgbench's table.
    if (FILE* f = freopen("/dev/null", "w", stderr); !f) _exit(1);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  if (pid < 0) {
    rmdir(dir.c_str());
    *why = "fork failed";
    return false;
  }
  guard_track(pid);
  guard_add_mount(dir, pid);
  // Mounted when the directory's device changes and the layout shows.
  for (int i = 0; i < 1000; ++i) {  // up to 10 s (host mode scans /proc first)
    struct stat now;
    if (stat(dir.c_str(), &now) == 0 && now.st_dev != before.st_dev &&
        access((dir + "/pids/cgroup.procs").c_str(), F_OK) == 0) {
      dir_ = dir;
      daemon_ = pid;
      sim_ = sim;
      return true;
    }
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      guard_untrack(pid);
      rmdir(dir.c_str());
      remove_state(state_);
      *why = "cgcorefs exited with status " + std::to_string(WEXITSTATUS(status));
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  guard_untrack(pid);
  umount2(dir.c_str(), MNT_DETACH);
  rmdir(dir.c_str());
  remove_state(state_);
  *why = "no mount after 10 s";
  return false;
}

void CgcorefsMount::stop() {
  if (daemon_ <= 0) return;
  kill(daemon_, SIGTERM);  // cgcorefs unmounts cleanly on SIGTERM
  bool gone = false;
  for (int i = 0; i < 300 && !gone; ++i) {
    if (waitpid(daemon_, nullptr, WNOHANG) == daemon_) gone = true;
    else std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!gone) {
    kill(daemon_, SIGKILL);
    waitpid(daemon_, nullptr, 0);
  }
  umount2(dir_.c_str(), MNT_DETACH);  // if it did not
  rmdir(dir_.c_str());
  remove_state(state_);
  guard_untrack(daemon_);
  daemon_ = -1;
}

}  // namespace cgbench
