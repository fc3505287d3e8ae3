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
//     fuse_lowlevel_notify_poll, from a notifier thread that takes them from
//     the fs's FileEvents.
//   * xattrs of cgroup directories and control files: fs::Xattrs (the
//     /proc views have none: EOPNOTSUPP, as procfs).
//   * inotify / fanotify: the kernel emits IN_MODIFY only for a write
//     through the VFS, so for every file the fs records as changed (also
//     unopened ones) a poker writes one byte to it through the mount: a
//     thread queues the paths, a child process of the server (holding
//     nothing of the server's but its pipe) does the writes, so that a
//     write left unanswered at a stop holds up only that child. The FUSE
//     handlers recognise the poker by its pid and answer its open and
//     write without running a command.
//   * Requests arrive through /dev/fuse or, where the kernel offers it,
//     FUSE over io_uring (FuseOptions::transport, fuse/uring_transport.h);
//     the handlers are the same either way.
//
//   * A server may serve a connection another process keeps (attach: the
//     keeper, fuse/keeper.h), and survive its own predecessors: file
//     handles are numbers in a table, so a handle an earlier server issued
//     is recognised and the file opened again.
//
// Thread-safety: construct, mount, run and destroy from one thread. One
// server at a time consumes an fs's FileEvents; one runs per process (its
// SIGUSR1 handler is process-wide).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/locking.h"
#include "fs/cgroupfs.h"
#include "fs/xattrs.h"
#include "fuse/mount_tree.h"
#include "fuse/uring_transport.h"

struct fuse_session;
struct fuse_pollhandle;

namespace cgcore::fuse {

struct DirHandle;

struct FuseOptions {
  // Let other users than the mounter use the mount (needs root, or
  // user_allow_other in /etc/fuse.conf). Default: when running as root.
  std::optional<bool> allow_other;
  // The kernel checks mode bits before asking the file system (the fs layer
  // checks them again, and everything else, either way).
  bool default_permissions = false;
  // libfuse's request log on stderr.
  bool debug = false;
  // Worker threads at most.
  int max_threads = 16;
  // The text of .cgcore/daemon (MountTree), if any.
  std::string daemon_info;
  // The mount point, for a server attached to a keeper's connection (the
  // inotify poker writes through it).
  std::string mountpoint;
  // How requests travel (fuse/uring_transport.h).
  Transport transport = Transport::kDev;
  // Where the transport's changes of state are said, if anywhere.
  std::function<void(const std::string&)> log;
  // Whether a change made by request `unique` is already done (a journal's
  // record, journal::Journal::applied): a request the kernel resends after a
  // restart (FUSE_NOTIFY_RESEND) is then answered without running again.
  std::function<bool(uint64_t unique)> already_done;
};

class FuseServer {
 public:
  // Installs the fs's events sink.
  FuseServer(fs::CgroupFs& fs, FuseOptions options = {});
  // Unmounts if still mounted and removes the events sink.
  ~FuseServer();
  FuseServer(const FuseServer&) = delete;
  FuseServer& operator=(const FuseServer&) = delete;

  // Serves a connection another process mounted and keeps (a keeper,
  // fuse/connection.h): `fd` is this process's copy of its /dev/fuse
  // descriptor (the session owns it). `init` is the connection's INIT
  // request as a previous server recorded it, or empty for a fresh
  // connection: then run() reads the INIT itself and hands its bytes to
  // `on_init` before answering it (so that a crash after the answer cannot
  // lose them). With `init`, run() first replays it into the new session
  // (its answer reaches no request: the kernel drops it with ENOENT) and
  // asks the kernel to resend what a dead server left unanswered. Errors:
  // EINVAL if libfuse refuses the descriptor.
  Status attach(int fd, std::string init, std::function<void(const std::string&)> on_init);
  // Mounts on `mountpoint` (an existing directory). Errors: ENOTCONN for a
  // stale mount left by a killed daemon (the message says how to clear it),
  // ENOENT / ENOTDIR for a bad mount point, EIO if libfuse refuses (its
  // reason is on stderr).
  Status mount(const std::string& mountpoint);
  // Serves requests until the file system is unmounted (fusermount3 -u,
  // umount) or the process gets SIGINT, SIGTERM, SIGHUP or SIGUSR1 (the
  // signal is then ended_by()); then unmounts (nothing for an attached
  // connection: its keeper unmounts). Requests already read are answered
  // before it returns; those not read yet stay queued in the kernel.
  // /dev/fuse is served by a DevLoop (fuse/dev_loop.h: a worker pinned to
  // each CPU), the ring by its own threads (fuse/uring_transport.h).
  // Signal handlers are installed for the duration and the signals are
  // unblocked in the calling thread only: other threads must block them
  // (tools/cgcorefs blocks them before starting any thread), so that the
  // signal reaches the thread that waits. REQUIRES: mount() succeeded.
  Status run();

  MountTree& tree() { return tree_; }
  // The transport as far as known: after mount(), what will be tried;
  // once serving, what carries the requests ("io_uring (...)",
  // "/dev/fuse (why not the ring)").
  std::string transport() const;

  // The inotify poker's state (fuse_server.cc).
  struct Poker;
  // The signal that ended run(), or 0 if the connection ended (unmounted).
  int ended_by() const { return ended_by_; }

 private:
  friend struct Ops;

  // After the mount: the ring transport's hooks beneath libfuse, unless
  // --transport=dev or (auto) the host cannot. Errors: EOPNOTSUPP
  // (--transport=uring where the host cannot, with why), EIO.
  Status setup_transport();

  // ---- poll support (see the file comment)
  struct Watch {
    int open = 0;         // open handles of the inode
    std::unordered_map<uint64_t, fuse_pollhandle*> polls;  // by file handle
  };
  // A handle of `ino` was opened / read from offset 0: its event count now.
  uint64_t watch_open(Ino ino);
  uint64_t watch_events(Ino ino);
  void watch_release(Ino ino, uint64_t fh);
  // Whether `ino` changed since `seen`; keeps `ph` (owned) to notify later.
  bool watch_poll(Ino ino, uint64_t fh, uint64_t seen, fuse_pollhandle* ph);
  void notifier_main();
  void stop_notifier();
  // Whether a request comes from the poker process (the pid FUSE reports).
  bool is_poker(pid_t pid) const;
  // Queues the files whose watchers must hear of a change (paths in the
  // mount).
  void poke(std::vector<std::string> paths);

  // Open handles by file handle number (fuse_file_info::fh), so that those
  // the kernel never released (releases still queued when the session
  // ended) are freed on the way out, and so that a handle issued by an
  // earlier server of the same connection is recognised as unknown (and
  // opened again: Ops::file) rather than taken for a pointer.
  uint64_t track(Handle* h);
  uint64_t track(DirHandle* d);
  Handle* find_file(uint64_t fh);
  DirHandle* find_dir(uint64_t fh);
  // Keeps `h` under `fh` unless a handle is there already; returns the one kept.
  Handle* adopt_file(uint64_t fh, Handle* h);
  DirHandle* adopt_dir(uint64_t fh, DirHandle* d);
  // Removes and returns the handle (null if none).
  Handle* untrack_file(uint64_t fh);
  DirHandle* untrack_dir(uint64_t fh);
  uint64_t next_fh() CG_REQUIRES(handles_mu_);
  // A handle number no open file or directory has (nor 0, nor the poker's).
  uint64_t unused_fh() CG_REQUIRES(handles_mu_);
  void free_unreleased_handles();

  fs::CgroupFs& fs_;
  MountTree tree_;
  fs::Xattrs xattrs_{fs_};
  FuseOptions options_;
  std::string mountpoint_;
  fuse_session* se_ = nullptr;
  bool mounted_ = false;
  // The ring transport beneath libfuse, when one is tried; and why not.
  std::unique_ptr<UringTransport> uring_;
  std::string dev_why_;
  pthread_t run_thread_{};
  bool attached_ = false;  // serving a keeper's connection
  std::string init_;       // attached: the INIT to replay (empty: read it)
  std::function<void(const std::string&)> on_init_;
  int ended_by_ = 0;

  Mutex watch_mu_;
  std::unordered_map<Ino, Watch> watches_ CG_GUARDED_BY(watch_mu_);
  bool stopping_ CG_GUARDED_BY(watch_mu_) = false;
  std::thread notifier_;
  std::shared_ptr<Poker> poker_;  // shared with its thread, which may outlive a stop

  Mutex handles_mu_;
  std::unordered_map<uint64_t, Handle*> open_files_ CG_GUARDED_BY(handles_mu_);
  std::unordered_map<uint64_t, DirHandle*> open_dirs_ CG_GUARDED_BY(handles_mu_);
  uint64_t next_fh_ CG_GUARDED_BY(handles_mu_) = 0;
};

}  // namespace cgcore::fuse
