#define FUSE_USE_VERSION 314
#include "fuse/fuse_server.h"

#include <fuse_lowlevel.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <ctime>

namespace cgcore::fuse {

// A directory handle: the listing taken at opendir (and again on a rewind),
// so that offsets stay meaningful across readdir calls.
struct DirHandle {
  Mutex mu;
  std::vector<Entry> entries CG_GUARDED_BY(mu);  // ".", "..", then the rest
  bool fresh CG_GUARDED_BY(mu) = true;
};

namespace {

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
  std::vector<Entry> out;
  out.reserve(entries.size() + 2);
  out.push_back({".", dir, NodeKind::kDir});
  // The parent's inode is not tracked; readdir's d_ino of ".." is advisory.
  out.push_back({"..", fs::kRootIno, NodeKind::kDir});
  for (Entry& e : entries) out.push_back(std::move(e));
  return out;
}

Handle* handle_of(fuse_file_info* fi) { return reinterpret_cast<Handle*>(fi->fh); }
DirHandle* dir_handle_of(fuse_file_info* fi) { return reinterpret_cast<DirHandle*>(fi->fh); }

}  // namespace

// The request handlers: each turns a request into one MountTree call.
struct Ops {
  static FuseServer& server(fuse_req_t req) {
    return *static_cast<FuseServer*>(fuse_req_userdata(req));
  }
  static MountTree& tree(fuse_req_t req) { return server(req).tree_; }

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
    reply_entry(req, tree(req).mkdir(parent, name, mode & 07777, caller_of(req)));
  }
  static void unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
    reply_status(req, tree(req).unlink(parent, name, caller_of(req)));
  }
  static void rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
    reply_status(req, tree(req).rmdir(parent, name, caller_of(req)));
  }
  static void symlink(fuse_req_t req, const char*, fuse_ino_t parent, const char* name) {
    reply_status(req, tree(req).make_other(parent, name, caller_of(req)));
  }
  static void rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
                     const char* newname, unsigned int flags) {
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
    srv.track(raw);
    fi->fh = reinterpret_cast<uint64_t>(raw);
    if (fuse_reply_open(req, fi) != 0) {
      // The opener is gone (interrupted): nothing will release the handle.
      if (raw->is_fs_file()) srv.watch_release(ino, fi->fh);
      srv.untrack(raw);
      delete raw;
    }
  }

  static void read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
    Handle* h = handle_of(fi);
    if (off < 0) {
      fuse_reply_err(req, EINVAL);
      return;
    }
    // kernfs: generating the text from the start marks the change seen.
    if (off == 0 && h->is_fs_file()) h->events_seen.store(server(req).watch_events(ino));
    Result<std::string> data = tree(req).read(*h, static_cast<uint64_t>(off), size);
    if (!data.ok()) {
      fuse_reply_err(req, errno_of(data.err()));
      return;
    }
    fuse_reply_buf(req, data->data(), data->size());
  }

  static void write(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t,
                    fuse_file_info* fi) {
    Result<size_t> n = tree(req).write(*handle_of(fi), std::string_view(buf, size));
    if (!n.ok()) {
      fuse_reply_err(req, errno_of(n.err()));
      return;
    }
    fuse_reply_write(req, n.value());
  }

  static void flush(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }
  static void fsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) { fuse_reply_err(req, 0); }

  static void release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    Handle* h = handle_of(fi);
    if (h->is_fs_file()) server(req).watch_release(ino, fi->fh);
    server(req).untrack(h);
    delete h;
    fuse_reply_err(req, 0);
  }

  static void poll(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, fuse_pollhandle* ph) {
    Handle* h = handle_of(fi);
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
    server(req).track(d);
    fi->fh = reinterpret_cast<uint64_t>(d);
    if (fuse_reply_open(req, fi) != 0) {
      server(req).untrack(d);
      delete d;
    }
  }

  static void readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                      fuse_file_info* fi) {
    DirHandle* d = dir_handle_of(fi);
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
    server(req).untrack(dir_handle_of(fi));
    delete dir_handle_of(fi);
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
      return o;
    }();
    return ops;
  }
};

// ------------------------------------------------------------ server

FuseServer::FuseServer(fs::CgroupFs& fs, FuseOptions options)
    : fs_(fs), tree_(fs), options_(std::move(options)) {
  fs_.set_events_sink([this](Ino ino) { on_event(ino); });
}

FuseServer::~FuseServer() {
  stop_notifier();
  if (se_) {
    if (mounted_) fuse_session_unmount(se_);
    fuse_session_destroy(se_);
  }
  fs_.set_events_sink(nullptr);
}

Status FuseServer::mount(const std::string& mountpoint) {
  struct stat st{};
  if (::stat(mountpoint.c_str(), &st) != 0) {
    const int e = errno;
    if (e == ENOTCONN)
      return Status::Error(e, mountpoint + ": a stale cgcorefs mount (its daemon died); clear it with "
                              "'fusermount3 -u " + mountpoint + "' (or 'umount -l')");
    return Status::Error(e, mountpoint + ": " + std::strerror(e));
  }
  if (!S_ISDIR(st.st_mode)) return Status::Error(ENOTDIR, mountpoint + ": not a directory");

  const bool allow_other = options_.allow_other.value_or(geteuid() == 0);
  std::string opts = "fsname=cgcorefs,subtype=cgcorefs";
  if (allow_other) opts += ",allow_other";
  std::vector<std::string> argv_s = {"cgcorefs", "-o", opts};
  if (options_.debug) argv_s.push_back("-d");
  std::vector<char*> argv;
  for (std::string& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv_s.size()), argv.data());
  se_ = fuse_session_new(&args, &Ops::table(), sizeof(fuse_lowlevel_ops), this);
  fuse_opt_free_args(&args);
  if (!se_) return Status::Error(EINVAL, "libfuse refused the session options");
  clock_gettime(CLOCK_REALTIME, &g_mount_time);
  if (fuse_session_mount(se_, mountpoint.c_str()) != 0) {
    fuse_session_destroy(se_);
    se_ = nullptr;
    return Status::Error(EIO, mountpoint + ": the FUSE mount failed (see the message above)");
  }
  mounted_ = true;
  mountpoint_ = mountpoint;
  return Status::Ok();
}

Status FuseServer::run() {
  if (!se_ || !mounted_) return Status::Error(EINVAL, "not mounted");
  if (fuse_set_signal_handlers(se_) != 0) return Status::Error(EIO, "cannot install signal handlers");
  {
    // The notifier must never take SIGINT/SIGTERM/SIGHUP: block every
    // signal while it is created (it inherits the mask).
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    notifier_ = std::thread([this] { notifier_main(); });
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGHUP);
  sigset_t old;
  pthread_sigmask(SIG_UNBLOCK, &sigs, &old);

  fuse_loop_config* cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_clone_fd(cfg, 0);
  fuse_loop_cfg_set_max_threads(cfg, static_cast<unsigned>(options_.max_threads));
  const int rc = fuse_session_loop_mt(se_, cfg);
  fuse_loop_cfg_destroy(cfg);

  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  fuse_remove_signal_handlers(se_);
  stop_notifier();
  free_unreleased_handles();
  fuse_session_unmount(se_);
  mounted_ = false;
  // rc > 0: the signal that ended the loop.
  if (rc < 0) return Status::Error(-rc, "the FUSE session failed");
  return Status::Ok();
}

// ------------------------------------------------------------ handles

void FuseServer::track(Handle* h) {
  MutexLock lock(handles_mu_);
  open_files_.insert(h);
}
void FuseServer::track(DirHandle* d) {
  MutexLock lock(handles_mu_);
  open_dirs_.insert(d);
}
void FuseServer::untrack(Handle* h) {
  MutexLock lock(handles_mu_);
  open_files_.erase(h);
}
void FuseServer::untrack(DirHandle* d) {
  MutexLock lock(handles_mu_);
  open_dirs_.erase(d);
}

void FuseServer::free_unreleased_handles() {
  // Runs after the loop: no worker is left to use a handle.
  MutexLock lock(handles_mu_);
  for (Handle* h : open_files_) delete h;
  for (DirHandle* d : open_dirs_) delete d;
  open_files_.clear();
  open_dirs_.clear();
}

// ------------------------------------------------------------ poll

void FuseServer::on_event(Ino ino) {
  // Any thread, engine locks possibly held: only record and wake.
  bool post = false;
  {
    MutexLock lock(watch_mu_);
    auto it = watches_.find(ino);
    if (it == watches_.end()) return;  // nobody has the file open
    ++it->second.events;
    if (it->second.polls.empty()) return;
    pending_.push_back(ino);
    if (!wake_posted_) wake_posted_ = post = true;
  }
  if (post) wake_.release();
}

uint64_t FuseServer::watch_open(Ino ino) {
  MutexLock lock(watch_mu_);
  Watch& w = watches_[ino];
  ++w.open;
  return w.events;
}

uint64_t FuseServer::watch_events(Ino ino) {
  MutexLock lock(watch_mu_);
  auto it = watches_.find(ino);
  return it == watches_.end() ? 0 : it->second.events;
}

void FuseServer::watch_release(Ino ino, uint64_t fh) {
  fuse_pollhandle* ph = nullptr;
  {
    MutexLock lock(watch_mu_);
    auto it = watches_.find(ino);
    if (it == watches_.end()) return;
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
    MutexLock lock(watch_mu_);
    Watch& w = watches_[ino];  // exists: the handle is open
    changed = w.events != seen;
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
  for (;;) {
    wake_.acquire();
    std::vector<fuse_pollhandle*> ready;
    {
      MutexLock lock(watch_mu_);
      if (stopping_) return;
      wake_posted_ = false;
      for (Ino ino : pending_) {
        auto it = watches_.find(ino);
        if (it == watches_.end()) continue;
        // A poll handle wakes its waiter once; the kernel polls again and
        // hands a new one.
        for (auto& [fh, ph] : it->second.polls) ready.push_back(ph);
        it->second.polls.clear();
      }
      pending_.clear();
    }
    for (fuse_pollhandle* ph : ready) {
      fuse_lowlevel_notify_poll(ph);
      fuse_pollhandle_destroy(ph);
    }
  }
}

void FuseServer::stop_notifier() {
  if (!notifier_.joinable()) return;
  {
    MutexLock lock(watch_mu_);
    stopping_ = true;
    if (!wake_posted_) {
      wake_posted_ = true;
      wake_.release();
    }
  }
  notifier_.join();
  MutexLock lock(watch_mu_);
  for (auto& [ino, w] : watches_)
    for (auto& [fh, ph] : w.polls) fuse_pollhandle_destroy(ph);
  watches_.clear();
}

}  // namespace cgcore::fuse
