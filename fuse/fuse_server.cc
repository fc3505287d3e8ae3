#define FUSE_USE_VERSION 314
#include "fuse/fuse_server.h"

#include "fuse/connection.h"
#include "fuse/dev_loop.h"

#include <fuse_lowlevel.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <climits>
#include <cstdio>
#include <vector>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <ctime>

#include "fs/kernfs_order.h"

namespace cgcore::fuse {

// A directory handle: the listing taken at opendir (and again on a rewind),
// so that offsets stay meaningful across readdir calls.
struct DirHandle {
  Mutex mu;
  std::vector<Entry> entries CG_GUARDED_BY(mu);  // ".", "..", then the rest
  bool fresh CG_GUARDED_BY(mu) = true;
};

namespace {

// The request this worker thread read last (its unique id): a worker reads
// a request and processes it on the same thread (libfuse's loop).
thread_local uint64_t t_unique = 0;
// fuse_in_header's FUSE_UNIQUE_RESEND bit (protocol 7.40): set on the
// requests the kernel queued again on FUSE_NOTIFY_RESEND.
constexpr uint64_t kUniqueResend = uint64_t{1} << 63;

// The attached session's reads and writes (fuse_session_custom_io): plain
// read/writev on the descriptor, noting each request's unique id.
ssize_t io_read(int fd, void* buf, size_t len, void*) {
  const ssize_t n = ::read(fd, buf, len);
  if (n >= static_cast<ssize_t>(sizeof(fuse_in_header))) {
    fuse_in_header h;
    std::memcpy(&h, buf, sizeof h);
    t_unique = h.unique;
    fs::current_request = h.unique & ~kUniqueResend;
  }
  return n;
}
ssize_t io_writev(int fd, struct iovec* iov, int count, void*) { return ::writev(fd, iov, count); }

// When the mount was made: the times every node shows (cgroupfs keeps none
// the fs layer exposes).
struct timespec g_mount_time{};

int errno_of(int e) { return e > 0 ? e : EIO; }

Caller caller_of(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  Caller c;
  c.uid = ctx->uid;
  c.gid = ctx->gid;
  c.pid = static_cast<Pid>(ctx->pid);
  // Root passes every check (CAP_DAC_OVERRIDE), so its groups are never
  // asked for; others' come from /proc (fuse_req_getgroups).
  if (c.uid != 0) {
    std::vector<gid_t> groups(32);
    int n = fuse_req_getgroups(req, static_cast<int>(groups.size()), groups.data());
    if (n > static_cast<int>(groups.size())) {
      groups.resize(static_cast<size_t>(n));
      n = fuse_req_getgroups(req, n, groups.data());
    }
    for (int i = 0; i < n && i < static_cast<int>(groups.size()); ++i) c.groups.push_back(groups[i]);
  }
  return c;
}

struct stat stat_of(const Node& n) {
  struct stat st{};
  st.st_ino = n.ino;
  switch (n.kind) {
    case NodeKind::kDir: st.st_mode = S_IFDIR; break;
    case NodeKind::kFile: st.st_mode = S_IFREG; break;
    case NodeKind::kSymlink: st.st_mode = S_IFLNK; break;
  }
  st.st_mode |= n.mode & 07777;
  st.st_nlink = n.nlink;
  st.st_uid = n.uid;
  st.st_gid = n.gid;
  st.st_size = static_cast<off_t>(n.size);
  st.st_blksize = 4096;
  st.st_atim = st.st_mtim = st.st_ctim = g_mount_time;
  return st;
}

mode_t dtype_of(NodeKind k) {
  switch (k) {
    case NodeKind::kDir: return S_IFDIR;
    case NodeKind::kFile: return S_IFREG;
    case NodeKind::kSymlink: return S_IFLNK;
  }
  return 0;
}

void reply_status(fuse_req_t req, const Status& st) { fuse_reply_err(req, st.ok() ? 0 : errno_of(st.err())); }

void reply_entry(fuse_req_t req, const Result<Node>& n) {
  if (!n.ok()) {
    fuse_reply_err(req, errno_of(n.err()));
    return;
  }
  fuse_entry_param e{};
  e.ino = n.value().ino;
  e.generation = 1;  // inode numbers are never reused
  e.attr = stat_of(n.value());
  e.attr_timeout = 0;
  e.entry_timeout = 0;
  fuse_reply_entry(req, &e);
}

void reply_attr(fuse_req_t req, const Result<Node>& n) {
  if (!n.ok()) {
    fuse_reply_err(req, errno_of(n.err()));
    return;
  }
  struct stat st = stat_of(n.value());
  fuse_reply_attr(req, &st, 0);
}

std::vector<Entry> with_dots(Ino dir, std::vector<Entry> entries) {
  // As kernfs lists them: some programs depend on the order.
  fs::sort_kernfs_order(entries);
  std::vector<Entry> out;
  out.reserve(entries.size() + 2);
  out.push_back({".", dir, NodeKind::kDir});
  // The parent's inode is not tracked; readdir's d_ino of ".." is advisory.
  out.push_back({"..", fs::kRootIno, NodeKind::kDir});
  for (Entry& e : entries) out.push_back(std::move(e));
  return out;
}

// The file handle of the poker's opens (no Handle: nothing is run); never
// one FuseServer::track hands out.
constexpr uint64_t kPokerFh = 1;

}  // namespace

// The request handlers: each turns a request into one MountTree call.
struct Ops {
  static FuseServer& server(fuse_req_t req) {
    return *static_cast<FuseServer*>(fuse_req_userdata(req));
  }
  static MountTree& tree(fuse_req_t req) { return server(req).tree_; }
  // A request resent after a restart whose change the journal holds: the
  // dead server carried it out and died before answering.
  static bool done_before(fuse_req_t req) {
    const FuseOptions& o = server(req).options_;
    return (t_unique & kUniqueResend) && o.already_done && o.already_done(t_unique & ~kUniqueResend);
  }

  static void init(void* userdata, fuse_conn_info* conn) {
    // open(O_TRUNC) arrives as a flag of open (ignored: cgroupfs files have
    // no size), not as a separate truncating setattr.
    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
    // Nothing may be cached or written back later: every write is a command.
    conn->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO |
                    FUSE_CAP_EXPORT_SUPPORT);
  }

  static void lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    reply_entry(req, tree(req).lookup(parent, name, caller_of(req)));
  }
  static void forget(fuse_req_t req, fuse_ino_t, uint64_t) { fuse_reply_none(req); }
  static void forget_multi(fuse_req_t req, size_t, fuse_forget_data*) { fuse_reply_none(req); }

  static void getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    reply_attr(req, tree(req).getattr(ino));
  }

  static void setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                      fuse_file_info*) {
    SetAttr set;
    if (to_set & FUSE_SET_ATTR_MODE) set.mode = attr->st_mode & 07777;
    if (to_set & FUSE_SET_ATTR_UID) set.uid = attr->st_uid;
    if (to_set & FUSE_SET_ATTR_GID) set.gid = attr->st_gid;
    if (to_set & FUSE_SET_ATTR_SIZE) set.size = static_cast<uint64_t>(attr->st_size);
    const bool atime = to_set & FUSE_SET_ATTR_ATIME, mtime = to_set & FUSE_SET_ATTR_MTIME;
    const bool atime_now = to_set & FUSE_SET_ATTR_ATIME_NOW;
    const bool mtime_now = to_set & FUSE_SET_ATTR_MTIME_NOW;
    if ((atime && !atime_now) || (mtime && !mtime_now)) set.times_explicit = true;
    else if (atime || mtime) set.times_now = true;
    if (done_before(req)) return reply_attr(req, tree(req).getattr(ino));
    reply_attr(req, tree(req).setattr(ino, set, caller_of(req)));
  }

  static void readlink(fuse_req_t req, fuse_ino_t ino) {
    Result<std::string> target = tree(req).readlink(ino, caller_of(req));
    if (!target.ok()) {
      fuse_reply_err(req, errno_of(target.err()));
      return;
    }
    fuse_reply_readlink(req, target->c_str());
  }

  static void mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t, dev_t) {
    reply_status(req, tree(req).make_other(parent, name, caller_of(req)));
  }
  static void mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
    if (done_before(req)) return reply_entry(req, tree(req).lookup(parent, name, caller_of(req)));
    reply_entry(req, tree(req).mkdir(parent, name, mode & 07777, caller_of(req)));
  }
  static void unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
    reply_status(req, tree(req).unlink(parent, name, caller_of(req)));
  }
  static void rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
    if (done_before(req)) return (void)fuse_reply_err(req, 0);
    reply_status(req, tree(req).rmdir(parent, name, caller_of(req)));
  }
  static void symlink(fuse_req_t req, const char*, fuse_ino_t parent, const char* name) {
    reply_status(req, tree(req).make_other(parent, name, caller_of(req)));
  }
  static void rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
                     const char* newname, unsigned int flags) {
    if (done_before(req)) return (void)fuse_reply_err(req, 0);
    reply_status(req, tree(req).rename(parent, name, newparent, newname, flags, caller_of(req)));
  }
  static void link(fuse_req_t req, fuse_ino_t, fuse_ino_t newparent, const char* newname) {
    reply_status(req, tree(req).make_other(newparent, newname, caller_of(req)));
  }
  static void create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t,
                     fuse_file_info*) {
    reply_status(req, tree(req).create(parent, name, caller_of(req)));
  }
  static void access(fuse_req_t req, fuse_ino_t ino, int mask) {
    reply_status(req, tree(req).access(ino, mask & 7, caller_of(req)));
  }

  static void open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    const int acc = fi->flags & O_ACCMODE;
    const bool read = acc == O_RDONLY || acc == O_RDWR;
    const bool write = acc == O_WRONLY || acc == O_RDWR;
    if (acc == O_WRONLY && server(req).is_poker(static_cast<pid_t>(fuse_req_ctx(req)->pid))) {
      fi->direct_io = 1;
      fi->fh = kPokerFh;
      fuse_reply_open(req, fi);
      return;
    }
    Result<std::unique_ptr<Handle>> h = tree(req).open(ino, read, write, caller_of(req));
    if (!h.ok()) {
      fuse_reply_err(req, errno_of(h.err()));
      return;
    }
    // No page cache: every read asks the engine, every write is a command.
    fi->direct_io = 1;
    fi->keep_cache = 0;
    FuseServer& srv = server(req);
    Handle* raw = h->release();
    if (raw->is_fs_file()) raw->events_seen.store(srv.watch_open(ino));
    fi->fh = srv.track(raw);
    if (fuse_reply_open(req, fi) != 0) {
      // The opener is gone (interrupted): nothing will release the handle.
      if (raw->is_fs_file()) srv.watch_release(ino, fi->fh);
      delete srv.untrack_file(fi->fh);
    }
  }

  // The handle a request names. One this server never issued was opened
  // before a restart (docs/cgcorefs.md, "Restarts and upgrades"): it is
  // opened again, in the file's open mode, with the credentials of this
  // request's caller. Null (and the errno replied) if that fails.
  static Handle* file(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    FuseServer& srv = server(req);
    if (Handle* h = srv.find_file(fi->fh)) return h;
    const int acc = fi->flags & O_ACCMODE;
    Result<std::unique_ptr<Handle>> h = tree(req).open(ino, acc == O_RDONLY || acc == O_RDWR,
                                                       acc == O_WRONLY || acc == O_RDWR, caller_of(req));
    if (!h.ok()) {
      fuse_reply_err(req, errno_of(h.err()));
      return nullptr;
    }
    Handle* raw = h->release();
    if (raw->is_fs_file()) raw->events_seen.store(srv.watch_open(ino));
    Handle* kept = srv.adopt_file(fi->fh, raw);
    if (kept != raw) {  // another thread adopted it first
      if (raw->is_fs_file()) srv.watch_release(ino, fi->fh);
      delete raw;
    }
    return kept;
  }
  static DirHandle* dir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    FuseServer& srv = server(req);
    if (DirHandle* d = srv.find_dir(fi->fh)) return d;
    auto* d = new DirHandle;
    DirHandle* kept = srv.adopt_dir(fi->fh, d);
    if (kept != d) delete d;
    return kept;  // fresh: its first readdir lists the directory
  }

  static void read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
    if (fi->fh == kPokerFh) {
      fuse_reply_err(req, EBADF);
      return;
    }
    Handle* h = file(req, ino, fi);
    if (!h) return;
    if (off < 0) {
      fuse_reply_err(req, EINVAL);
      return;
    }
    // kernfs: generating the text from the start marks the change seen.
    if (off == 0 && h->is_fs_file()) h->events_seen.store(server(req).watch_events(ino));
    Result<std::string> data =
        tree(req).read(*h, static_cast<uint64_t>(off), size, static_cast<Pid>(fuse_req_ctx(req)->pid));
    if (!data.ok()) {
      fuse_reply_err(req, errno_of(data.err()));
      return;
    }
    fuse_reply_buf(req, data->data(), data->size());
  }

  static void write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t,
                    fuse_file_info* fi) {
    if (fi->fh == kPokerFh) {  // the write that makes the kernel notify
      fuse_reply_write(req, size);
      return;
    }
    if (done_before(req)) return (void)fuse_reply_write(req, size);
    Handle* h = file(req, ino, fi);
    if (!h) return;
    Result<size_t> n = tree(req).write(*h, std::string_view(buf, size), static_cast<Pid>(fuse_req_ctx(req)->pid));
    if (!n.ok()) {
      fuse_reply_err(req, errno_of(n.err()));
      return;
    }
    fuse_reply_write(req, n.value());
  }

  static void flush(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }
  static void fsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) { fuse_reply_err(req, 0); }

  static void release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    if (fi->fh == kPokerFh) {
      fuse_reply_err(req, 0);
      return;
    }
    // A handle issued before a restart and never used since: nothing to free.
    if (Handle* h = server(req).untrack_file(fi->fh)) {
      if (h->is_fs_file()) server(req).watch_release(ino, fi->fh);
      delete h;
    }
    fuse_reply_err(req, 0);
  }

  static void poll(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, fuse_pollhandle* ph) {
    if (fi->fh == kPokerFh) {
      if (ph) fuse_pollhandle_destroy(ph);
      fuse_reply_poll(req, POLLOUT | POLLWRNORM);
      return;
    }
    Handle* h = file(req, ino, fi);
    if (!h) {
      if (ph) fuse_pollhandle_destroy(ph);
      return;
    }
    // kernfs_generic_poll: always readable and writable; POLLERR|POLLPRI
    // once the file changed since this opener last read it.
    unsigned revents = POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM;
    if (h->is_fs_file()) {
      if (server(req).watch_poll(ino, fi->fh, h->events_seen.load(), ph)) revents |= POLLERR | POLLPRI;
    } else if (ph) {
      fuse_pollhandle_destroy(ph);
    }
    fuse_reply_poll(req, revents);
  }

  static void opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    Result<std::vector<Entry>> entries = tree(req).readdir(ino, caller_of(req));
    if (!entries.ok()) {
      fuse_reply_err(req, errno_of(entries.err()));
      return;
    }
    auto* d = new DirHandle;
    {
      MutexLock lock(d->mu);
      d->entries = with_dots(ino, std::move(entries.value()));
    }
    fi->fh = server(req).track(d);
    if (fuse_reply_open(req, fi) != 0) delete server(req).untrack_dir(fi->fh);
  }

  static void readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                      fuse_file_info* fi) {
    DirHandle* d = dir(req, ino, fi);
    std::string buf(size, '\0');
    size_t used = 0;
    int error = 0;
    {
      // The reply goes out only after the handle's lock is dropped: once
      // the kernel has it, a releasedir may free the handle at once.
      MutexLock lock(d->mu);
      if (off == 0 && !d->fresh) {  // rewinddir: list again
        Result<std::vector<Entry>> entries = tree(req).readdir(ino, caller_of(req));
        if (entries.ok()) d->entries = with_dots(ino, std::move(entries.value()));
        else error = errno_of(entries.err());
      }
      d->fresh = false;
      for (size_t i = off < 0 ? 0 : static_cast<size_t>(off);
           error == 0 && i < d->entries.size(); ++i) {
        const Entry& e = d->entries[i];
        struct stat st{};
        st.st_ino = e.ino;
        st.st_mode = dtype_of(e.kind);
        size_t need = fuse_add_direntry(req, buf.data() + used, size - used, e.name.c_str(), &st,
                                        static_cast<off_t>(i + 1));
        if (need > size - used) break;
        used += need;
      }
    }
    if (error != 0) {
      fuse_reply_err(req, error);
      return;
    }
    fuse_reply_buf(req, buf.data(), used);
  }

  static void releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
    delete server(req).untrack_dir(fi->fh);
    fuse_reply_err(req, 0);
  }
  static void fsyncdir(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) { fuse_reply_err(req, 0); }

  static void statfs(fuse_req_t req, fuse_ino_t) {
    struct statvfs st{};
    st.f_bsize = 4096;
    st.f_frsize = 4096;
    st.f_namemax = 255;
    fuse_reply_statfs(req, &st);
  }

  // ---- xattrs (fs::Xattrs)
  static void reply_xattr_text(fuse_req_t req, Result<std::string> text, size_t size) {
    if (!text.ok()) fuse_reply_err(req, errno_of(text.err()));
    else if (size == 0) fuse_reply_xattr(req, text->size());
    else if (text->size() > size) fuse_reply_err(req, ERANGE);
    else fuse_reply_buf(req, text->data(), text->size());
  }
  static void setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                       int flags) {
    if (MountTree::is_view(ino)) return (void)fuse_reply_err(req, EOPNOTSUPP);
    reply_status(req, server(req).xattrs_.set(ino, name, std::string_view(value, size), flags, caller_of(req)));
  }
  static void getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
    if (MountTree::is_view(ino)) return (void)fuse_reply_err(req, EOPNOTSUPP);
    reply_xattr_text(req, server(req).xattrs_.get(ino, name, caller_of(req)), size);
  }
  static void listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
    if (MountTree::is_view(ino)) return reply_xattr_text(req, std::string(), size);
    reply_xattr_text(req, server(req).xattrs_.list(ino, caller_of(req)), size);
  }
  static void removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
    if (MountTree::is_view(ino)) return (void)fuse_reply_err(req, EOPNOTSUPP);
    reply_status(req, server(req).xattrs_.remove(ino, name, caller_of(req)));
  }

  static const fuse_lowlevel_ops& table() {
    static const fuse_lowlevel_ops ops = [] {
      fuse_lowlevel_ops o{};
      o.init = init;
      o.lookup = lookup;
      o.forget = forget;
      o.forget_multi = forget_multi;
      o.getattr = getattr;
      o.setattr = setattr;
      o.readlink = readlink;
      o.mknod = mknod;
      o.mkdir = mkdir;
      o.unlink = unlink;
      o.rmdir = rmdir;
      o.symlink = symlink;
      o.rename = rename;
      o.link = link;
      o.open = open;
      o.read = read;
      o.write = write;
      o.flush = flush;
      o.release = release;
      o.fsync = fsync;
      o.opendir = opendir;
      o.readdir = readdir;
      o.releasedir = releasedir;
      o.fsyncdir = fsyncdir;
      o.statfs = statfs;
      o.access = access;
      o.create = create;
      o.poll = poll;
      o.setxattr = setxattr;
      o.getxattr = getxattr;
      o.listxattr = listxattr;
      o.removexattr = removexattr;
      return o;
    }();
    return ops;
  }
};

// ------------------------------------------------------------ poker

// The queue of files to write to, shared with the poker thread so that a
// stop never waits for a write the FUSE loop no longer serves.
struct FuseServer::Poker {
  std::mutex mu;  // a leaf: held only around the queue
  std::condition_variable cv;
  std::deque<std::string> queue;  // guarded by mu
  std::set<std::string> queued;   // guarded by mu
  bool stop = false, exited = false;  // guarded by mu
  std::string mountpoint;
  // The process that does the writes (start_poker_process), and the pipe
  // the thread feeds it paths through.
  std::atomic<pid_t> tid{0};
  int pipe_fd = -1;
};

namespace {

// The writes through the mount are made by a child process, not by a
// thread of the server: a request the server's loop read as it was ending
// is dropped unanswered by libfuse, and a writer waiting for that answer
// cannot be killed; on a connection a keeper holds (no unmount aborts it)
// a thread of the server stuck so would keep the server from exiting. A
// stuck child is only the child: the next server's FUSE_NOTIFY_RESEND, or
// the unmount, ends its wait, and it exits when its pipe closes.
//
// The child only reads the pipe and opens, writes and closes: nothing that
// allocates after the fork of a multi-threaded process. Returns its pid
// (the handlers recognise its requests by it) and the pipe's write end,
// or {-1, -1}.
std::pair<pid_t, int> start_poker_process() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return {-1, -1};
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return {-1, -1};
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(0);
    // Nothing of the server's but the pipe: above all not the FUSE
    // connection, which would otherwise stay open, and a write of ours
    // unanswered, for as long as this process waits.
    if (fds[0] > 3) ::close_range(3, static_cast<unsigned>(fds[0] - 1), 0);
    ::close_range(static_cast<unsigned>(fds[0] + 1), ~0U, 0);
    static char buf[8192];
    size_t have = 0;
    for (;;) {
      const ssize_t n = ::read(fds[0], buf + have, sizeof buf - have);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) ::_exit(0);
      have += static_cast<size_t>(n);
      size_t start = 0;
      for (size_t i = 0; i < have; ++i) {
        if (buf[i] != '\0') continue;
        const int fd = ::open(buf + start, O_WRONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd >= 0) {
          (void)!::write(fd, "\n", 1);
          ::close(fd);
        }
        start = i + 1;
      }
      std::memmove(buf, buf + start, have - start);
      have -= start;
      if (have == sizeof buf) have = 0;  // no path is that long
    }
  }
  ::close(fds[0]);
  return {pid, fds[1]};
}

}  // namespace

bool FuseServer::is_poker(pid_t pid) const { return poker_ && pid != 0 && pid == poker_->tid.load(); }

void FuseServer::poke(std::vector<std::string> paths) {
  if (!poker_ || paths.empty()) return;
  {
    std::lock_guard<std::mutex> lock(poker_->mu);
    for (std::string& p : paths)
      if (poker_->queued.insert(p).second) poker_->queue.push_back(std::move(p));
  }
  poker_->cv.notify_one();
}

namespace {

// The poker thread: one open, a one-byte write and a close per file. The
// kernel emits IN_OPEN, IN_MODIFY and IN_CLOSE_WRITE (the first and last
// are not the kernel's, docs/compatibility.md).
void poker_main(std::shared_ptr<FuseServer::Poker> p) {
  std::unique_lock<std::mutex> lock(p->mu);
  for (;;) {
    p->cv.wait(lock, [&] { return p->stop || !p->queue.empty(); });
    if (p->stop) break;
    std::string path = std::move(p->queue.front());
    p->queue.pop_front();
    p->queued.erase(path);
    lock.unlock();
    // To the poker process; a write blocked on a full pipe (the process is
    // stuck) ends with the server.
    const std::string record = p->mountpoint + path + '\0';
    if (record.size() < 4096) (void)!::write(p->pipe_fd, record.data(), record.size());
    lock.lock();
  }
  p->exited = true;
  p->cv.notify_all();
}

}  // namespace

// ------------------------------------------------------------ server

FuseServer::FuseServer(fs::CgroupFs& fs, FuseOptions options)
    : fs_(fs), tree_(fs, options.daemon_info), options_(std::move(options)) {
  // inotify watchers need no open handle: every change is wanted.
  fs_.events().set_record_unwatched(true);
  tree_.set_daemon_lines([this] { return "transport " + transport() + "\n"; });
}

namespace {
// Undoes mountinfo's octal escapes (\040 for a space, ...).
std::string unescape_octal(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The device number of the last fuse.* mount at `mountpoint` in this
// process's mount table, 0 if there is none. Read from /proc/self/mountinfo,
// not by stat: a stat of our own mount would wait for this very server.
uint64_t mount_device_of(const std::string& mountpoint) {
  char real[PATH_MAX];
  const std::string want = ::realpath(mountpoint.c_str(), real) ? std::string(real) : mountpoint;
  FILE* f = std::fopen("/proc/self/mountinfo", "re");
  if (!f) return 0;
  uint64_t dev = 0;
  char* line = nullptr;
  size_t cap = 0;
  while (::getline(&line, &cap, f) > 0) {
    std::vector<std::string> fields;
    for (char* save = nullptr, *t = strtok_r(line, " \n", &save); t; t = strtok_r(nullptr, " \n", &save))
      fields.emplace_back(t);
    auto dash = std::find(fields.begin(), fields.end(), "-");
    if (fields.size() < 5 || dash == fields.end() || dash + 1 == fields.end()) continue;
    if (!(dash + 1)->starts_with("fuse") || unescape_octal(fields[4]) != want) continue;
    unsigned major = 0, minor = 0;
    if (std::sscanf(fields[2].c_str(), "%u:%u", &major, &minor) == 2) dev = makedev(major, minor);
  }
  std::free(line);
  std::fclose(f);
  return dev;
}
}  // namespace

FuseServer::~FuseServer() {
  // The ring threads dispatch into the session: they end before it does.
  if (uring_) uring_->stop();
  stop_notifier();
  if (se_) {
    if (mounted_) fuse_session_unmount(se_);
    fuse_session_destroy(se_);
  }
}

Status FuseServer::mount(const std::string& mountpoint) {
  if (Status st = check_mountpoint(mountpoint); !st.ok()) return st;
  se_ = new_session({.allow_other = options_.allow_other,
                     .default_permissions = options_.default_permissions,
                     .debug = options_.debug},
                    Ops::table(), this);
  if (!se_) return Status::Error(EINVAL, "libfuse refused the session options");
  clock_gettime(CLOCK_REALTIME, &g_mount_time);
  if (fuse_session_mount(se_, mountpoint.c_str()) != 0) {
    fuse_session_destroy(se_);
    se_ = nullptr;
    return Status::Error(EIO, mountpoint + ": the FUSE mount failed (see the message above)");
  }
  mounted_ = true;
  mountpoint_ = mountpoint;
  fs_.set_mount_device(mount_device_of(mountpoint_));
  if (Status st = setup_transport(); !st.ok()) {
    fuse_session_unmount(se_);
    mounted_ = false;
    fuse_session_destroy(se_);
    se_ = nullptr;
    return st;
  }
  return Status::Ok();
}

Status FuseServer::setup_transport() {
  if (options_.transport == Transport::kDev) {
    dev_why_ = "--transport=dev";
    return Status::Ok();
  }
  if (std::string why = uring_unavailable(); !why.empty()) {
    if (options_.transport == Transport::kUring)
      return Status::Error(EOPNOTSUPP, "--transport=uring: " + why);
    dev_why_ = why;
    return Status::Ok();
  }
  UringOptions uo;
  uo.required = options_.transport == Transport::kUring;
  uo.log = options_.log;
  uo.abort_session = [this] {
    fuse_session_exit(se_);
    // Wakes the loop, which waits in the thread that called run().
    pthread_kill(run_thread_, SIGTERM);
  };
  uring_ = std::make_unique<UringTransport>(se_, fuse_session_fd(se_), std::move(uo));
  static const fuse_custom_io io = {
      .writev = [](int fd, struct iovec* iov, int count, void* ud) -> ssize_t {
        return static_cast<FuseServer*>(ud)->uring_->writev(fd, iov, count);
      },
      .read = [](int fd, void* buf, size_t len, void* ud) -> ssize_t {
        return static_cast<FuseServer*>(ud)->uring_->read(fd, buf, len);
      },
      .splice_receive = nullptr,
      .splice_send = nullptr,
  };
  if (int rc = fuse_session_custom_io(se_, &io, fuse_session_fd(se_)); rc != 0) {
    uring_.reset();
    return Status::Error(EIO, std::string("libfuse refused the io_uring transport's hooks: ") +
                                  std::strerror(rc < 0 ? -rc : EIO));
  }
  return Status::Ok();
}

std::string FuseServer::transport() const {
  if (uring_) {
    if (uring_->ring_active() || uring_->ring_requests() > 0 || uring_->dev_requests() > 0)
      return uring_->describe();
    return options_.transport == Transport::kUring ? "io_uring (required), set up at INIT"
                                                   : "io_uring if set up at INIT, else /dev/fuse (auto)";
  }
  return "/dev/fuse (" + dev_why_ + ")";
}

Status FuseServer::attach(int fd, std::string init, std::function<void(const std::string&)> on_init) {
  // The ring's entries belong to the server that registers them and die
  // with it, while a keeper's connection outlives servers: a restarted
  // server would find the kernel routing requests to entries nobody serves.
  dev_why_ = options_.transport == Transport::kDev
                 ? "--transport=dev"
                 : "a keeper's connection: a ring would not outlive its server (--transport=uring serves without one)";
  if (options_.transport == Transport::kUring)
    return Status::Error(EOPNOTSUPP, "--transport=uring: " + dev_why_);
  // A predecessor that died serving left the shared descriptor
  // non-blocking (fuse/dev_loop.h); the INIT exchange reads it blocking.
  if (int err = make_blocking(fd); err != 0)
    return Status::Error(err, std::string("the connection descriptor: ") + std::strerror(err));
  se_ = new_session({.allow_other = options_.allow_other,
                     .default_permissions = options_.default_permissions,
                     .debug = options_.debug},
                    Ops::table(), this);
  if (!se_) return Status::Error(EINVAL, "libfuse refused the session options");
  clock_gettime(CLOCK_REALTIME, &g_mount_time);
  // A descriptor opened and mounted by another process; reads through
  // io_read, which notes each request's id for done_before.
  static const fuse_custom_io kIo = {.writev = io_writev, .read = io_read, .splice_receive = nullptr,
                                     .splice_send = nullptr};
  if (fuse_session_custom_io(se_, &kIo, fd) != 0) {
    fuse_session_destroy(se_);
    se_ = nullptr;
    return Status::Error(EINVAL, "libfuse refused the connection descriptor");
  }
  mounted_ = true;
  attached_ = true;
  mountpoint_ = options_.mountpoint;
  fs_.set_mount_device(mount_device_of(mountpoint_));
  init_ = std::move(init);
  on_init_ = std::move(on_init);
  return Status::Ok();
}

namespace {
// SIGINT, SIGTERM, SIGHUP and SIGUSR1 end the loop, which then says which
// one did (libfuse's own handlers keep the signal where the loop it runs
// alone can read it).
constexpr int kExitSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1};
std::atomic<fuse_session*> g_exit_session{nullptr};
std::atomic<int> g_exit_signal{0};
void on_exit_signal(int sig) {
  g_exit_signal.store(sig);
  if (fuse_session* se = g_exit_session.load()) fuse_session_exit(se);
}

// Brings an attached session to the connection's state: reads and records
// the INIT of a fresh connection, or replays the recorded one. False if the
// session ended first (a signal, the connection gone).
bool initialise_attached(fuse_session* se, const std::string& init,
                         const std::function<void(const std::string&)>& on_init) {
  fuse_buf buf{};
  if (!init.empty()) {
    std::string copy = init;  // libfuse may write into the buffer
    buf.mem = copy.data();
    buf.size = copy.size();
    fuse_session_process_buf(se, &buf);
    // Requests a dead server read and never answered are queued again.
    (void)notify_resend(fuse_session_fd(se));
    return true;
  }
  for (;;) {
    if (fuse_session_exited(se)) return false;  // a signal that was pending
    // 0: the connection ended (libfuse's ENODEV); a signal exits the
    // session as in the loop (its handler records which).
    const int n = fuse_session_receive_buf(se, &buf);
    if (n > 0) break;
    if (n == -EINTR && !fuse_session_exited(se)) continue;
    std::free(buf.mem);
    return false;
  }
  if (is_init_request(buf.mem, buf.size) && on_init)
    on_init(std::string(static_cast<const char*>(buf.mem), buf.size));
  fuse_session_process_buf(se, &buf);
  std::free(buf.mem);
  return true;
}
}  // namespace

Status FuseServer::run() {
  if (!se_ || !mounted_) return Status::Error(EINVAL, "not mounted");
  {
    // The notifier must never take SIGINT/SIGTERM/SIGHUP: block every
    // signal while it is created (it inherits the mask).
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    notifier_ = std::thread([this] { notifier_main(); });
    if (auto [pid, fd] = start_poker_process(); pid > 0) {
      poker_ = std::make_shared<Poker>();
      poker_->mountpoint = mountpoint_;
      poker_->tid.store(pid);
      poker_->pipe_fd = fd;
      std::thread(poker_main, poker_).detach();
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  sigset_t sigs;
  sigemptyset(&sigs);
  g_exit_signal.store(0);
  g_exit_session.store(se_);
  struct sigaction on_exit{}, old_actions[std::size(kExitSignals)], ignore{}, old_pipe{};
  on_exit.sa_handler = on_exit_signal;
  sigemptyset(&on_exit.sa_mask);
  for (size_t i = 0; i < std::size(kExitSignals); ++i) {
    sigaddset(&sigs, kExitSignals[i]);
    sigaction(kExitSignals[i], &on_exit, &old_actions[i]);
  }
  // A requester gone mid-reply must not end the server.
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ignore, &old_pipe);
  sigset_t old;
  pthread_sigmask(SIG_UNBLOCK, &sigs, &old);

  int rc = 0;
  std::string transport_failure;
  if (!attached_ || initialise_attached(se_, init_, on_init_)) {
    run_thread_ = pthread_self();
    if (uring_) {
      // The ring's threads serve most requests; libfuse's loop reads what
      // still comes on /dev/fuse (INIT, FORGET, INTERRUPT).
      fuse_loop_config* cfg = fuse_loop_cfg_create();
      fuse_loop_cfg_set_clone_fd(cfg, 0);
      fuse_loop_cfg_set_max_threads(cfg, static_cast<unsigned>(options_.max_threads));
      rc = fuse_session_loop_mt(se_, cfg);
      fuse_loop_cfg_destroy(cfg);
    } else {
      DevLoop loop(se_, fuse_session_fd(se_), options_.max_threads);
      rc = loop.run();
    }
    fuse_session_reset(se_);
  } else {
    // Ended before serving: by the connection's end (the device then
    // polls as an error) or by a signal.
    struct pollfd p{fuse_session_fd(se_), POLLIN, 0};
    if (::poll(&p, 1, 0) >= 0 && !(p.revents & POLLERR)) rc = SIGTERM;
  }
  if (uring_) {
    uring_->stop();
    transport_failure = uring_->failure();
    if (options_.log)
      options_.log("transport " + uring_->describe() + ": " + std::to_string(uring_->ring_requests()) +
                   " requests served through the ring, " + std::to_string(uring_->dev_requests()) +
                   " read from /dev/fuse");
  }

  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  g_exit_session.store(nullptr);
  ended_by_ = g_exit_signal.load() != 0 ? g_exit_signal.load() : (rc > 0 ? rc : 0);
  for (size_t i = 0; i < std::size(kExitSignals); ++i) sigaction(kExitSignals[i], &old_actions[i], nullptr);
  sigaction(SIGPIPE, &old_pipe, nullptr);
  stop_notifier();
  free_unreleased_handles();
  if (!attached_) fuse_session_unmount(se_);
  mounted_ = false;
  if (!transport_failure.empty()) return Status::Error(EOPNOTSUPP, "--transport=uring: " + transport_failure);
  // rc > 0: the signal that ended the loop.
  if (rc < 0) return Status::Error(-rc, "the FUSE session failed");
  return Status::Ok();
}

// ------------------------------------------------------------ handles

uint64_t FuseServer::next_fh() {
  // Handles outlive the server that issued them (a restart keeps the
  // connection): each server numbers its own from a random start, so that
  // it never mistakes a predecessor's handle for one of its own.
  if (next_fh_ == 0) {
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != sizeof r) r = static_cast<uint64_t>(getpid()) << 40 | static_cast<uint64_t>(time(nullptr));
    next_fh_ = r | 1;
  }
  return next_fh_++;
}

uint64_t FuseServer::unused_fh() {
  uint64_t fh;
  do fh = next_fh();
  while (fh == 0 || fh == kPokerFh || open_files_.count(fh) || open_dirs_.count(fh));
  return fh;
}
uint64_t FuseServer::track(Handle* h) {
  MutexLock lock(handles_mu_);
  const uint64_t fh = unused_fh();
  open_files_[fh] = h;
  return fh;
}
uint64_t FuseServer::track(DirHandle* d) {
  MutexLock lock(handles_mu_);
  const uint64_t fh = unused_fh();
  open_dirs_[fh] = d;
  return fh;
}
Handle* FuseServer::find_file(uint64_t fh) {
  MutexLock lock(handles_mu_);
  auto it = open_files_.find(fh);
  return it == open_files_.end() ? nullptr : it->second;
}
DirHandle* FuseServer::find_dir(uint64_t fh) {
  MutexLock lock(handles_mu_);
  auto it = open_dirs_.find(fh);
  return it == open_dirs_.end() ? nullptr : it->second;
}
Handle* FuseServer::adopt_file(uint64_t fh, Handle* h) {
  MutexLock lock(handles_mu_);
  return open_files_.try_emplace(fh, h).first->second;
}
DirHandle* FuseServer::adopt_dir(uint64_t fh, DirHandle* d) {
  MutexLock lock(handles_mu_);
  return open_dirs_.try_emplace(fh, d).first->second;
}
Handle* FuseServer::untrack_file(uint64_t fh) {
  MutexLock lock(handles_mu_);
  auto it = open_files_.find(fh);
  if (it == open_files_.end()) return nullptr;
  Handle* h = it->second;
  open_files_.erase(it);
  return h;
}
DirHandle* FuseServer::untrack_dir(uint64_t fh) {
  MutexLock lock(handles_mu_);
  auto it = open_dirs_.find(fh);
  if (it == open_dirs_.end()) return nullptr;
  DirHandle* d = it->second;
  open_dirs_.erase(it);
  return d;
}

void FuseServer::free_unreleased_handles() {
  // Runs after the loop: no worker is left to use a handle.
  MutexLock lock(handles_mu_);
  for (auto& [fh, h] : open_files_) delete h;
  for (auto& [fh, d] : open_dirs_) delete d;
  open_files_.clear();
  open_dirs_.clear();
}

// ------------------------------------------------------------ poll

uint64_t FuseServer::watch_open(Ino ino) {
  MutexLock lock(watch_mu_);
  ++watches_[ino].open;
  return fs_.events().watch(ino);
}

uint64_t FuseServer::watch_events(Ino ino) { return fs_.events().count(ino); }

void FuseServer::watch_release(Ino ino, uint64_t fh) {
  fuse_pollhandle* ph = nullptr;
  {
    MutexLock lock(watch_mu_);
    auto it = watches_.find(ino);
    if (it == watches_.end()) return;
    fs_.events().unwatch(ino);
    if (auto p = it->second.polls.find(fh); p != it->second.polls.end()) {
      ph = p->second;
      it->second.polls.erase(p);
    }
    if (--it->second.open == 0) {
      for (auto& [h, other] : it->second.polls) fuse_pollhandle_destroy(other);
      watches_.erase(it);
    }
  }
  if (ph) fuse_pollhandle_destroy(ph);
}

bool FuseServer::watch_poll(Ino ino, uint64_t fh, uint64_t seen, fuse_pollhandle* ph) {
  fuse_pollhandle* old = nullptr;
  bool changed;
  {
    // The count is read under watch_mu_, which the notifier takes before it
    // fires: a change after this read finds `ph` stored and wakes it.
    MutexLock lock(watch_mu_);
    Watch& w = watches_[ino];  // exists: the handle is open
    changed = fs_.events().count(ino) != seen;
    if (ph) {
      fuse_pollhandle*& slot = w.polls[fh];
      old = slot;
      slot = ph;
    }
  }
  if (old) fuse_pollhandle_destroy(old);
  return changed;
}

void FuseServer::notifier_main() {
  std::vector<Ino> changed;
  for (;;) {
    // The timeout only bounds how long a lost wake() could delay stopping.
    fs_.events().wait_take(changed, std::chrono::milliseconds(500));
    std::vector<fuse_pollhandle*> ready;
    {
      MutexLock lock(watch_mu_);
      if (stopping_) return;
      // A poll handle wakes its waiter once; the kernel polls again and
      // hands a new one.
      for (Ino ino : changed) {
        auto it = watches_.find(ino);
        if (it == watches_.end()) continue;
        for (auto& [fh, ph] : it->second.polls) ready.push_back(ph);
        it->second.polls.clear();
      }
    }
    for (fuse_pollhandle* ph : ready) {
      fuse_lowlevel_notify_poll(ph);
      fuse_pollhandle_destroy(ph);
    }
    std::vector<std::string> paths;
    for (Ino ino : changed)
      if (Result<std::string> p = fs_.path_of(ino); p.ok()) paths.push_back(std::move(p.value()));
    poke(std::move(paths));
  }
}

void FuseServer::stop_notifier() {
  if (poker_) {
    // Waits a moment for the poker; one stuck in a write the loop no longer
    // serves is left (it holds only its own queue) and ends at the unmount.
    std::unique_lock<std::mutex> lock(poker_->mu);
    poker_->stop = true;
    poker_->cv.notify_all();
    poker_->cv.wait_for(lock, std::chrono::seconds(1), [&] { return poker_->exited; });
    // The process ends when its pipe closes (reaped if it has; one stuck
    // in a write ends with the connection, and is not waited for).
    if (poker_->exited && poker_->pipe_fd >= 0) {
      ::close(poker_->pipe_fd);
      poker_->pipe_fd = -1;
      for (int i = 0; i < 20 && ::waitpid(poker_->tid.load(), nullptr, WNOHANG) == 0; ++i) ::usleep(5000);
    }
  }
  if (!notifier_.joinable()) return;
  {
    MutexLock lock(watch_mu_);
    stopping_ = true;
  }
  fs_.events().wake();
  notifier_.join();
  MutexLock lock(watch_mu_);
  for (auto& [ino, w] : watches_)
    for (auto& [fh, ph] : w.polls) fuse_pollhandle_destroy(ph);
  watches_.clear();
}

}  // namespace cgcore::fuse
