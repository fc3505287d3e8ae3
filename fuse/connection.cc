#define FUSE_USE_VERSION 314
#include "fuse/connection.h"

#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cgcore::fuse {

namespace {
// enum fuse_notify_code's FUSE_NOTIFY_RESEND (protocol 7.40, Linux 6.9);
// Debian's <linux/fuse.h> stops at 7.38.
constexpr int32_t kNotifyResend = 7;
}  // namespace

fuse_session* new_session(const MountOptions& options, const fuse_lowlevel_ops& ops, void* userdata) {
  const bool allow_other = options.allow_other.value_or(geteuid() == 0);
  std::string opts = "fsname=cgcorefs,subtype=cgcorefs";
  if (allow_other) opts += ",allow_other";
  if (options.default_permissions) opts += ",default_permissions";
  std::vector<std::string> argv_s = {"cgcorefs", "-o", opts};
  if (options.debug) argv_s.push_back("-d");
  std::vector<char*> argv;
  for (std::string& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv_s.size()), argv.data());
  fuse_session* se = fuse_session_new(&args, &ops, sizeof ops, userdata);
  fuse_opt_free_args(&args);
  return se;
}

Status check_mountpoint(const std::string& mountpoint) {
  struct stat st{};
  if (::stat(mountpoint.c_str(), &st) != 0) {
    const int e = errno;
    // ECONNABORTED: the same, while the kernel still tears down a dead
    // server's io_uring connection.
    if (e == ENOTCONN || e == ECONNABORTED)
      return Status::Error(e, mountpoint + ": a stale cgcorefs mount (its daemon died); clear it with "
                              "'fusermount3 -u " + mountpoint + "' (or 'umount -l')");
    return Status::Error(e, mountpoint + ": " + std::strerror(e));
  }
  if (!S_ISDIR(st.st_mode)) return Status::Error(ENOTDIR, mountpoint + ": not a directory");
  return Status::Ok();
}

Result<std::unique_ptr<FuseConnection>> FuseConnection::mount(const std::string& mountpoint,
                                                             const MountOptions& options) {
  if (Status st = check_mountpoint(mountpoint); !st.ok()) return st;
  // The keeper serves nothing: an empty operations table only carries the
  // options to the mount.
  static const fuse_lowlevel_ops kNoOps{};
  std::unique_ptr<FuseConnection> c(new FuseConnection);
  c->se_ = new_session(options, kNoOps, nullptr);
  if (!c->se_) return Status::Error(EINVAL, "libfuse refused the session options");
  if (fuse_session_mount(c->se_, mountpoint.c_str()) != 0)
    return Status::Error(EIO, mountpoint + ": the FUSE mount failed (see the message above)");
  c->mounted_ = true;
  return c;
}

FuseConnection::~FuseConnection() {
  unmount();
  if (se_) fuse_session_destroy(se_);
}

int FuseConnection::fd() const { return fuse_session_fd(se_); }

void FuseConnection::unmount() {
  if (!mounted_) return;
  fuse_session_unmount(se_);
  mounted_ = false;
}

bool is_init_request(const void* buf, size_t size) {
  if (size < sizeof(fuse_in_header)) return false;
  fuse_in_header h;
  std::memcpy(&h, buf, sizeof h);
  return h.opcode == FUSE_INIT && h.len == size;
}

Status notify_resend(int fd) {
  fuse_out_header h{};
  h.len = sizeof h;
  h.error = kNotifyResend;
  h.unique = 0;  // a notification, not a reply
  ssize_t n;
  do n = ::write(fd, &h, sizeof h);
  while (n < 0 && errno == EINTR);
  if (n < 0) return Status::Error(errno, std::string("FUSE_NOTIFY_RESEND: ") + std::strerror(errno));
  return Status::Ok();
}

}  // namespace cgcore::fuse
