// A cgcorefs mount (build/tools/cgcorefs, the FUSE front end) for the
// "through the mount" rows: started in a temporary directory, in host mode
// (real processes, so the same child moves through the mount and through
// the kernel) or, if that fails, with --sim (virtual tasks).
#pragma once

#include <sys/types.h>

#include <string>

namespace cgbench {

class CgcorefsMount {
 public:
  ~CgcorefsMount() { stop(); }
  // Mounts; on failure `why` says why ("n/a (cgcorefs not built)").
  bool start(const std::string& binary, std::string* why);
  void stop();
  bool ok() const { return daemon_ > 0; }
  bool sim() const { return sim_; }
  // The v1 pids hierarchy of the mount (hybrid layout): <mnt>/pids.
  std::string pids_dir() const { return dir_ + "/pids"; }
  std::string unified_dir() const { return dir_ + "/unified"; }
  std::string mode() const { return sim_ ? "--sim" : "host mode"; }

 private:
  bool try_start(const std::string& binary, bool sim, std::string* why);
  std::string dir_;
  pid_t daemon_ = -1;
  bool sim_ = false;
};

// Virtual process ids a --sim mount has (1 .. kSimTasks).
inline constexpr int kSimTasks = 12000;

}  // namespace cgbench
