// A cgcorefs mount (build/tools/cgcorefs, the FUSE front end) for the
// "through the mount" rows: started in a temporary directory, in host mode
// (real processes, so the same child moves through the mount and through
// the kernel) or, if that fails, with --sim (virtual tasks).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace cgbench {

class CgcorefsMount {
 public:
  ~CgcorefsMount() { stop(); }
  // Options given to cgcorefs before the mount point (e.g. --transport=dev),
  // for the next start().
  void set_extra_args(std::vector<std::string> args) { extra_ = std::move(args); }
  // Mounts; on failure `why` says why ("n/a (cgcorefs not built)").
  // `extra`: more cgcorefs options ("--no-state"). The daemon keeps its
  // state in a temporary directory removed by stop().
  bool start(const std::string& binary, std::string* why, std::vector<std::string> extra = {});
  // The .cgcore/daemon line "server PID" (0 if unreadable).
  pid_t server_pid() const;
  void stop();
  bool ok() const { return daemon_ > 0; }
  bool sim() const { return sim_; }
  // The v1 pids hierarchy of the mount (hybrid layout): <mnt>/pids.
  std::string pids_dir() const { return dir_ + "/pids"; }
  std::string unified_dir() const { return dir_ + "/unified"; }
  std::string mode() const { return sim_ ? "--sim" : "host mode"; }
  const std::string& dir() const { return dir_; }

 private:
  bool try_start(const std::string& binary, bool sim, std::string* why);
  std::vector<std::string> extra_;
  std::string dir_, state_;
  pid_t daemon_ = -1;
  bool sim_ = false;
};

// Virtual process ids a --sim mount has (1 .. kSimTasks).
inline constexpr int kSimTasks = 12000;

}  // namespace cgbench
