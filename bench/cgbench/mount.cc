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

bool CgcorefsMount::start(const std::string& binary, std::string* why) {
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
  struct stat before;
  stat(dir.c_str(), &before);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);
    // Its log (one line per start) would clutter cgbench's table.
    if (FILE* f = freopen("/dev/null", "w", stderr); !f) _exit(1);
    std::string tasks = std::to_string(kSimTasks);
    if (sim)
      execl(binary.c_str(), binary.c_str(), "--foreground", "--layout", "hybrid", "--sim",
            "--sim-tasks", tasks.c_str(), dir.c_str(), static_cast<char*>(nullptr));
    else
      execl(binary.c_str(), binary.c_str(), "--foreground", "--layout", "hybrid", dir.c_str(),
            static_cast<char*>(nullptr));
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
  guard_untrack(daemon_);
  daemon_ = -1;
}

}  // namespace cgbench
