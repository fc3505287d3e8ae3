// FuseServer: serves a CgroupFs (through a MountTree) on a mount point with
// libfuse3's low-level API, so that shell tools use it as they use
// /sys/fs/cgroup.
//
//   * Multi-threaded (fuse_session_loop_mt). Every request runs with the
//     caller's uid, gid, supplementary groups and pid (fuse_req_ctx,
//     fuse_req_getgroups); the fs layer does every permission check itself
//     (no default_permissions). Root mounts with allow_other.
//   * No caching anywhere: files are direct I/O (a read right after a write
//     sees the new state), and entry and attribute timeouts are 0.
//   * One write() is one command: its errno is the write's error. The
//     opener's credentials are kept for writes through that descriptor.
//   * poll(2) on a control file reports POLLPRI|POLLERR once the file
//     changed since it was opened or last read from offset 0 (kernfs'
//     rule); cgroup.events changes are pushed to waiting pollers through
//     fuse_lowlevel_notify_poll, from a notifier thread (the fs's events
//     sink only queues).
//
// Thread-safety: construct, mount, run and destroy from one thread. The
// events sink it installs on the fs may be called from any thread while the
// server exists; whoever drives the engine from other threads (the host
// tracker) must stop before the server is destroyed.
#pragma once

#include <memory>
#include <semaphore>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/locking.h"
#include "fs/cgroupfs.h"
#include "fuse/mount_tree.h"

struct fuse_session;
struct fuse_pollhandle;

namespace cgcore::fuse {

struct DirHandle;

struct FuseOptions {
  // Let other users than the mounter use the mount (needs root, or
  // user_allow_other in /etc/fuse.conf). Default: when running as root.
  std::optional<bool> allow_other;
  // libfuse's request log on stderr.
  bool debug = false;
  // Worker threads at most.
  int max_threads = 16;
};

class FuseServer {
 public:
  // Installs the fs's events sink.
  FuseServer(fs::CgroupFs& fs, FuseOptions options = {});
  // Unmounts if still mounted and removes the events sink.
  ~FuseServer();
  FuseServer(const FuseServer&) = delete;
  FuseServer& operator=(const FuseServer&) = delete;

  // Mounts on `mountpoint` (an existing directory). Errors: ENOTCONN for a
  // stale mount left by a killed daemon (the message says how to clear it),
  // ENOENT / ENOTDIR for a bad mount point, EIO if libfuse refuses (its
  // reason is on stderr).
  Status mount(const std::string& mountpoint);
  // Serves requests until the file system is unmounted (fusermount3 -u,
  // umount) or the process gets SIGINT, SIGTERM or SIGHUP; then unmounts.
  // Signal handlers are installed for the duration and the signals are
  // unblocked in the calling thread only: other threads must block them
  // (tools/cgcorefs blocks them before starting any thread), so that the
  // signal reaches the thread that waits. REQUIRES: mount() succeeded.
  Status run();

  MountTree& tree() { return tree_; }

 private:
  friend struct Ops;

  // ---- poll support (see the file comment)
  struct Watch {
    uint64_t events = 0;  // changes of the inode seen so far
    int open = 0;         // open handles of the inode
    std::unordered_map<uint64_t, fuse_pollhandle*> polls;  // by file handle
  };
  void on_event(Ino ino);
  // A handle of `ino` was opened / read from offset 0: its event count now.
  uint64_t watch_open(Ino ino);
  uint64_t watch_events(Ino ino);
  void watch_release(Ino ino, uint64_t fh);
  // Whether `ino` changed since `seen`; keeps `ph` (owned) to notify later.
  bool watch_poll(Ino ino, uint64_t fh, uint64_t seen, fuse_pollhandle* ph);
  void notifier_main();
  void stop_notifier();

  // Open handles, so that those the kernel never released (releases still
  // queued when the session ended) are freed on the way out.
  void track(Handle* h);
  void track(DirHandle* d);
  void untrack(Handle* h);
  void untrack(DirHandle* d);
  void free_unreleased_handles();

  fs::CgroupFs& fs_;
  MountTree tree_;
  FuseOptions options_;
  std::string mountpoint_;
  fuse_session* se_ = nullptr;
  bool mounted_ = false;

  Mutex watch_mu_;
  std::unordered_map<Ino, Watch> watches_ CG_GUARDED_BY(watch_mu_);
  std::vector<Ino> pending_ CG_GUARDED_BY(watch_mu_);
  bool wake_posted_ CG_GUARDED_BY(watch_mu_) = false;
  bool stopping_ CG_GUARDED_BY(watch_mu_) = false;
  std::binary_semaphore wake_{0};
  std::thread notifier_;

  Mutex handles_mu_;
  std::unordered_set<Handle*> open_files_ CG_GUARDED_BY(handles_mu_);
  std::unordered_set<DirHandle*> open_dirs_ CG_GUARDED_BY(handles_mu_);
};

}  // namespace cgcore::fuse
