#include "supervisor/compat_calls.h"

#include <fcntl.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/seccomp.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <vector>

#include "core/parse.h"
#include "fs/cgroupfs.h"
#include "supervisor/compat.h"

namespace cgcore::supervisor {

namespace {

// CGROUP2_SUPER_MAGIC / CGROUP_SUPER_MAGIC (linux/magic.h).
constexpr long kCgroup2Magic = 0x63677270;
constexpr long kCgroupMagic = 0x27e0eb;

std::string proc_path(Pid pid, const char* rest) { return "/proc/" + std::to_string(pid) + rest; }

std::string read_link(const std::string& path) {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// A NUL-terminated string at `addr` in the memory of process `pid`, read
// up to a page boundary at a time so that the end of a mapping is no error.
// False if unreadable or longer than PATH_MAX. The caller checks that the
// notification is still live afterwards (then `pid` was the caller all
// along).
bool read_string(Pid pid, uint64_t addr, std::string* out) {
  char buf[4096];
  out->clear();
  while (out->size() < PATH_MAX) {
    const size_t chunk = sizeof buf - (addr % sizeof buf);
    iovec local{buf, chunk};
    iovec remote{reinterpret_cast<void*>(addr), chunk};
    const ssize_t n = ::process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (n <= 0) return false;
    if (const void* z = std::memchr(buf, 0, static_cast<size_t>(n))) {
      out->append(buf, static_cast<size_t>(static_cast<const char*>(z) - buf));
      return true;
    }
    out->append(buf, static_cast<size_t>(n));
    addr += static_cast<uint64_t>(n);
  }
  return false;
}

// The thread group of a thread, from /proc (0 if gone).
Pid tgid_from_proc(Pid tid) {
  std::ifstream status(proc_path(tid, "/status"));
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("Tgid:", 0) == 0) {
      Result<int32_t> v = kstrtoint(strstrip(std::string_view(line).substr(5)), 10);
      return v.ok() ? *v : 0;
    }
  return 0;
}

// The thread group of a thread as its own pid namespace names it (the last
// NStgid entry; 0 if gone).
Pid tgid_in_caller_ns(Pid tid) {
  std::ifstream status(proc_path(tid, "/status"));
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("NStgid:", 0) == 0) {
      std::istringstream ids(line.substr(7));
      Pid last = 0;
      for (Pid v; ids >> v;) last = v;
      return last;
    }
  return 0;
}

// Whether a thread is in the daemon's pid namespace (so that pids in its
// /proc paths are the daemon's).
bool in_my_pid_namespace(Pid tid) {
  struct stat mine{}, theirs{};
  return ::stat("/proc/self/ns/pid", &mine) == 0 && ::stat(proc_path(tid, "/ns/pid").c_str(), &theirs) == 0 &&
         mine.st_ino == theirs.st_ino && mine.st_dev == theirs.st_dev;
}

// Field 22 of a /proc stat file: the task's start time, in clock ticks.
std::optional<uint64_t> start_time_at(const std::string& stat_path) {
  std::ifstream in(stat_path);
  std::string s;
  if (!std::getline(in, s)) return std::nullopt;
  const size_t close = s.rfind(')');  // the name may hold spaces and ')'
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(s.substr(close + 1));
  std::string v;
  for (int field = 3; fields >> v; ++field)
    if (field == 22) {
      Result<uint64_t> t = kstrtoull(v, 10);
      if (!t.ok()) return std::nullopt;
      return *t;
    }
  return std::nullopt;
}

bool exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

// A sealed, read-only memfd holding `text`; -1 on failure.
int memfd_with(const char* name, const std::string& text) {
  const int fd = ::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return -1;
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n <= 0) {
      ::close(fd);
      return -1;
    }
    done += static_cast<size_t>(n);
  }
  (void)::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  // A descriptor opened for reading only, as the /proc file's would be.
  const int ro = ::open(("/proc/self/fd/" + std::to_string(fd)).c_str(), O_RDONLY | O_CLOEXEC);
  ::close(fd);
  return ro;
}


}  // namespace

CompatCalls::CompatCalls(fs::CgroupFs& fs, std::string mountpoint) : fs_(fs), mountpoint_(std::move(mountpoint)) {}

// The caller's memory, opened for reading (and writing, `rw`), checked
// to be the notified process's: the notification is still live after the
// open (the kernel's documented order), so a recycled pid cannot be
// mistaken for the caller. -1 if not.
int CompatCalls::open_caller_mem(int fd, const seccomp_notif& req, bool rw) {
  const int mem = ::open(proc_path(static_cast<Pid>(req.pid), "/mem").c_str(), (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (mem < 0) return -1;
  if (seccomp_notify_id_valid(fd, req.id) != 0) {
    ::close(mem);
    return -1;
  }
  return mem;
}

// The path argument at `addr`, absolute and normalised in the caller's
// view (relative ones against its cwd or `dirfd`). Empty if unreadable,
// if the notification ended meanwhile, or if an absolute path lies
// outside `prefix` (the only tree the caller is after). Locking: none.
std::string CompatCalls::caller_path(int fd, const seccomp_notif& req, int64_t dirfd, uint64_t addr,
                        std::string_view prefix) {
  const Pid tid = static_cast<Pid>(req.pid);
  std::string path;
  const bool ok = read_string(tid, addr, &path);
  // What was read is the caller's argument only if the notification is
  // still live after the read.
  if (!ok || path.empty() || seccomp_notify_id_valid(fd, req.id) != 0) return "";
  if (path[0] == '/') {
    if (path.compare(0, prefix.size(), prefix) != 0) return "";
    return absolute_path("/", path);
  }
  const std::string base = static_cast<int>(dirfd) == AT_FDCWD
                               ? read_link(proc_path(tid, "/cwd"))
                               : read_link(proc_path(tid, ("/fd/" + std::to_string(static_cast<int>(dirfd))).c_str()));
  if (base.empty() || base[0] != '/') return "";
  return absolute_path(base, path);
}

// open / openat of a served /proc file for reading: a memfd with the text,
// installed in the caller (the answer is already sent then). Anything
// else goes to the kernel; the caller's errno if the descriptor cannot be
// installed (EMFILE). Locking: no engine lock held (the fs views take
// their own).
CallAnswer CompatCalls::open(int fd, const seccomp_notif& req, int64_t dirfd, uint64_t addr, uint64_t flags) {
  if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_PATH | O_DIRECTORY | O_CREAT | __O_TMPFILE))) return CallAnswer{};
  std::string path = caller_path(fd, req, dirfd, addr, "/");
  if (path.empty()) return CallAnswer{};
  if (path == "/etc/mtab") {
    // The C library's mount table: a symbolic link to /proc/self/mounts
    // (or /proc/mounts) on current systems.
    const std::string target = read_link(proc_path(static_cast<Pid>(req.pid), "/root/etc/mtab"));
    if (target.empty()) return CallAnswer{};
    path = absolute_path("/etc", target);
  }
  const ProcFile pf = classify_proc_path(path);
  if (pf.kind == ProcFile::kNone) return CallAnswer{};
  const Pid caller = static_cast<Pid>(req.pid);
  // The numbers in the path are those of the caller's /proc.
  const bool foreign = pf.who != ProcFile::kThreadSelf && !in_my_pid_namespace(caller);
  // Whose file, in the daemon's pid namespace.
  Pid target = 0;
  switch (pf.who) {
    case ProcFile::kSelf: target = tgid_from_proc(caller); break;
    case ProcFile::kThreadSelf: target = caller; break;
    case ProcFile::kPid:
      target = foreign ? daemon_id_of(caller, std::to_string(pf.pid), pf.pid) : pf.pid;
      break;
  }
  if (target <= 0) return CallAnswer{};  // the kernel's answer (ENOENT, or a file we cannot place)
  if (pf.tid) {
    Pid tid = pf.tid;
    if (foreign) {
      // The caller's own threads are named in its namespace.
      const std::string dir = pf.who == ProcFile::kSelf ? std::to_string(tgid_in_caller_ns(caller))
                                                        : std::to_string(pf.pid);
      tid = daemon_id_of(caller, dir + "/task/" + std::to_string(pf.tid), pf.tid);
      if (tid <= 0) return CallAnswer{};
    }
    // /proc/P/task/T exists only for a thread T of P; else the kernel's
    // ENOENT.
    if (!exists(proc_path(target, ("/task/" + std::to_string(tid)).c_str()))) return CallAnswer{};
    target = tid;
  } else if (pf.kind != ProcFile::kCgroups && !exists(proc_path(target, ""))) {
    return CallAnswer{};
  }
  std::string text;
  const char* name = "cgroup";
  switch (pf.kind) {
    case ProcFile::kCgroups:
      text = fs_.proc_cgroups();
      name = "cgroups";
      break;
    case ProcFile::kCgroup: {
      Result<std::string> r = fs_.proc_pid_cgroup(target);
      if (!r.ok() && fs_.resolve_unknown_pid(target)) r = fs_.proc_pid_cgroup(target);
      if (!r.ok()) return CallAnswer{};
      text = std::move(r.value());
      break;
    }
    case ProcFile::kMounts:
    case ProcFile::kMountinfo: {
      std::ifstream in(proc_path(target, "/mountinfo"));
      if (!in) return CallAnswer{};
      std::stringstream real;
      real << in.rdbuf();
      text = rewrite_mountinfo(real.str(), compat_view_of(fs_));
      if (pf.kind == ProcFile::kMounts) text = mounts_of_mountinfo(text);
      name = pf.kind == ProcFile::kMounts ? "mounts" : "mountinfo";
      break;
    }
    case ProcFile::kNone: return CallAnswer{};
  }
  const int ro = memfd_with(name, text);
  if (ro < 0) return CallAnswer{};
  seccomp_notif_addfd add{};
  add.id = req.id;
  add.flags = SECCOMP_ADDFD_FLAG_SEND;
  add.srcfd = static_cast<__u32>(ro);
  add.newfd_flags = static_cast<__u32>(flags & O_CLOEXEC);
  const int rc = ::ioctl(fd, SECCOMP_IOCTL_NOTIF_ADDFD, &add);
  const int err = rc < 0 ? errno : 0;
  ::close(ro);
  if (rc >= 0 || err == ENOENT) return CallAnswer::responded();  // answered, or the caller is gone
  return CallAnswer::failed(err);  // e.g. EMFILE: the caller's descriptor table is full
}

Pid CompatCalls::daemon_id_of(Pid caller, const std::string& rel, Pid id) {
  const std::optional<uint64_t> seen = start_time_at(proc_path(caller, ("/root/proc/" + rel + "/stat").c_str()));
  if (!seen) return 0;
  std::vector<Pid> candidates;
  fs::Caller who;
  who.pid = caller;
  if (std::shared_ptr<const fs::PidNamespace> ns = fs_.pid_namespace(who))
    if (Result<Pid> r = ns->from_caller(id); r.ok()) candidates.push_back(*r);
  candidates.push_back(id);
  for (Pid c : candidates)
    if (start_time_at(proc_path(c, "/stat")) == seen) return c;
  return 0;
}

// The device of the mount, found once.
dev_t CompatCalls::mount_dev() {
  if (!dev_known_) {
    struct stat st{};
    if (::stat(mountpoint_.c_str(), &st) != 0) return 0;
    dev_ = st.st_dev;
    dev_known_ = true;
  }
  return dev_;
}

// statfs / fstatfs (`by_fd`) on a hierarchy at /sys/fs/cgroup — `arg` is
// the path's address or the descriptor, `buf` the caller's struct
// statfs: the file system's own statfs with the kernel's magic, written
// into the caller's buffer. Anything else goes to the kernel. EFAULT if
// the buffer cannot be written. Locking: no engine lock held (the view
// takes the cgroup mutex).
CallAnswer CompatCalls::statfs(int fd, const seccomp_notif& req, bool by_fd, uint64_t arg, uint64_t buf) {
  const Pid tid = static_cast<Pid>(req.pid);
  std::string where, path;
  if (by_fd) {
    where = proc_path(tid, ("/fd/" + std::to_string(static_cast<int>(arg))).c_str());
    path = read_link(where);
    if (path.empty() || path[0] != '/') return CallAnswer{};
  } else {
    path = caller_path(fd, req, AT_FDCWD, arg, kCgroupRoot);
    if (path.empty()) return CallAnswer{};
    where = proc_path(tid, "/root") + path;
  }
  const CompatView view = compat_view_of(fs_);
  const CompatHier* h = hier_of_path(path, view);
  if (!h) return CallAnswer{};
  struct stat st{};
  const dev_t dev = mount_dev();
  if (dev == 0 || ::stat(where.c_str(), &st) != 0 || st.st_dev != dev) return CallAnswer{};
  struct statfs sf{};
  if (::statfs(where.c_str(), &sf) != 0) return CallAnswer{};
  // The kernel's cgroup file systems: their magic, page-sized blocks,
  // no block or inode counts, names up to NAME_MAX; the flags and fsid
  // are the mount's.
  sf.f_type = h->v2 ? kCgroup2Magic : kCgroupMagic;
  sf.f_bsize = sf.f_frsize = 4096;
  sf.f_blocks = sf.f_bfree = sf.f_bavail = sf.f_files = sf.f_ffree = 0;
  sf.f_namelen = 255;
  const int mem = open_caller_mem(fd, req, true);
  if (mem < 0) return CallAnswer{};
  const ssize_t n = ::pwrite(mem, &sf, sizeof sf, static_cast<off_t>(buf));
  ::close(mem);
  if (n != static_cast<ssize_t>(sizeof sf)) return CallAnswer::failed(EFAULT);
  return CallAnswer::value(0);
}

}  // namespace cgcore::supervisor
