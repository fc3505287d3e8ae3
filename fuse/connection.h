// The FUSE connection apart from any server: what a keeper process (one that
// holds /dev/fuse across restarts of the server, docs/cgcorefs.md "Restarts
// and upgrades") needs.
//
//   * FuseConnection::mount makes the mount and keeps its /dev/fuse
//     descriptor, without serving anything: the kernel queues requests until
//     a server reads them. Servers get a duplicate of the descriptor; the
//     connection lives while any copy is open, so a server's death does not
//     end it.
//   * The INIT request the kernel sends once per connection is recorded by
//     the first server (FuseServer::attach) and replayed into every later
//     server's libfuse session, so that each starts in the negotiated state.
//   * notify_resend asks the kernel to queue again every request a dead
//     server had read and not answered (FUSE_NOTIFY_RESEND, Linux 6.9+).
//
// Thread-safety: a FuseConnection is used by one thread.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <memory>

#include "core/result.h"

struct fuse_session;
struct fuse_lowlevel_ops;

namespace cgcore::fuse {

// How the mount is made (the same for a keeper's mount and a server's own).
struct MountOptions {
  std::optional<bool> allow_other;  // default: when running as root
  bool default_permissions = false;
  bool debug = false;
};

// A libfuse low-level session with these options ("cgcorefs -o ..."),
// serving `ops` with `userdata`; null if libfuse refuses the options (its
// reason is on stderr).
fuse_session* new_session(const MountOptions& options, const fuse_lowlevel_ops& ops, void* userdata);

// Whether `mountpoint` can be mounted on: an existing directory. ENOTCONN for
// a stale mount left by a dead daemon (the message says how to clear it),
// ENOENT / ENOTDIR otherwise.
Status check_mountpoint(const std::string& mountpoint);

class FuseConnection {
 public:
  // Mounts on `mountpoint` (through fusermount3 when not root) and keeps the
  // connection. Errors: check_mountpoint's; EIO if libfuse refuses (its
  // reason is on stderr).
  static Result<std::unique_ptr<FuseConnection>> mount(const std::string& mountpoint,
                                                       const MountOptions& options);
  // Unmounts if still mounted.
  ~FuseConnection();
  FuseConnection(const FuseConnection&) = delete;
  FuseConnection& operator=(const FuseConnection&) = delete;

  // The /dev/fuse descriptor (owned; close-on-exec).
  int fd() const;
  // Unmounts (lazily, as fusermount3 -u -z does); idempotent.
  void unmount();

 private:
  FuseConnection() = default;
  fuse_session* se_ = nullptr;
  bool mounted_ = false;
};

// The INIT request a fresh connection starts with: true if `buf` (a whole
// request as read from /dev/fuse) is one.
bool is_init_request(const void* buf, size_t size);

// Writes FUSE_NOTIFY_RESEND to the connection: the kernel puts every request
// that was read but not answered back at the head of its queue (their unique
// ids get bit 63). Errors: the write's errno (EINVAL on kernels before 6.9,
// which know no such notification).
Status notify_resend(int fd);

}  // namespace cgcore::fuse
