#include "supervisor/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>

// Linux 6.6: the notified process and the supervisor hand the CPU to each
// other directly (a round trip of some 3 us instead of 12). Older headers
// lack the names; older kernels refuse the flag, which is then not used.
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <list>
#include <set>
#include <sstream>

#include "controllers/cpuset.h"
#include "controllers/memrlimit.h"
#include "controllers/numtasks.h"
#include "controllers/pids.h"
#include "core/parse.h"
#include "supervisor/client.h"
#include "supervisor/compat_calls.h"

namespace cgcore::supervisor {

namespace {

// What a notification's answer does.
struct Answer {
  bool proceed = true;  // let the kernel run the call (SECCOMP_USER_NOTIF_FLAG_CONTINUE)
  int error = 0;        // else fail it with this errno (0: succeed with val)
  int64_t val = 0;
  bool responded = false;  // answered already (SECCOMP_ADDFD_FLAG_SEND)
};
Answer fail(int err) { return Answer{false, err, 0}; }
Answer done(int64_t val) { return Answer{false, 0, val}; }

// The process's current break: the end of its heap ([heap] in its maps),
// or, before it has one, where the heap starts (start_brk, field 47 of
// /proc/PID/stat). 0 if unknown.
uint64_t current_break(Pid pid) {
  const std::string dir = "/proc/" + std::to_string(pid);
  std::ifstream maps(dir + "/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.size() < 6 || line.compare(line.size() - 6, 6, "[heap]") != 0) continue;
    const size_t dash = line.find('-'), sp = line.find(' ');
    if (dash == std::string::npos || sp == std::string::npos || sp < dash) return 0;
    Result<uint64_t> end = kstrtoull(std::string_view(line).substr(dash + 1, sp - dash - 1), 16);
    return end.ok() ? *end : 0;
  }
  std::ifstream stat(dir + "/stat");
  if (!std::getline(stat, line)) return 0;
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(line.substr(close + 2));
  std::string f;
  for (int field = 3; fields >> f; ++field)
    if (field == 47) {
      Result<uint64_t> v = kstrtoull(f, 10);
      return v.ok() ? *v : 0;
    }
  return 0;
}

// VmSize of a process in bytes, or -1.
int64_t vm_size(Pid pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmSize:", 0) != 0) continue;
    std::string_view v = strstrip(std::string_view(line).substr(7));
    if (v.size() > 3 && v.substr(v.size() - 3) == " kB") v.remove_suffix(3);
    Result<uint64_t> kb = kstrtoull(strstrip(v), 10);
    return kb.ok() ? static_cast<int64_t>(*kb) * 1024 : -1;
  }
  return -1;
}

// A thread answering one notification descriptor.
struct Answerer {
  std::thread thread;
  std::atomic<bool> finished{false};  // set by the thread as it ends
};

}  // namespace

struct Supervisor::Impl {
  Impl(Engine& e, host::HostTracker& t, LogFn l)
      : engine(e),
        tracker(t),
        cpuset(t.controllers().cpuset),
        memrlimit(t.controllers().memrlimit),
        log(std::move(l)) {}

  // ---------------------------------------------------------------- answers

  Answer on_fork(const seccomp_notif& req, bool thread, bool share_mm) {
    const Pid caller = static_cast<Pid>(req.pid);
    // Tasks that exited a moment ago (a child just reaped) count until their
    // events are applied; the kernel has uncharged them already. With the
    // connector the waiting events are applied first. Without it, the
    // caller's cgroups are matched against /proc — a read per task, so only
    // when the charge would pass a limit — before the charge, so that a
    // refusal is decided, and counted, once.
    if (!tracker.catch_up_events() && at_fork_limit(caller)) tracker.recheck_cgroup_mates(caller);
    Result<Pid> r = tracker.reserve_fork(caller, thread, share_mm);
    if (r.ok()) return Answer{};
    if (r.err() == ESRCH) return Answer{};  // not (or no longer) ours to count
    ++stats.forks_refused;
    return fail(r.err());
  }

  // Whether one more task would pass a pids or numtasks limit of the
  // caller's cgroups, at any level.
  bool at_fork_limit(Pid caller) {
    const BuiltinControllers& c = tracker.controllers();
    MutexLock l(engine.cgroup_mutex());
    auto over = [&](Controller* ctl, auto* as_type) {
      engine.cgroup_mutex().AssertHeld();  // taken just above
      if (!ctl) return false;
      Result<CgroupPtr> cg = engine.task_cgroup(caller, engine.hierarchy_of_locked(ctl->id()));
      if (!cg.ok()) return false;
      for (Css* css = engine.effective_css_locked(**cg, ctl->id()); css && css->parent(); css = css->parent()) {
        auto* typed = static_cast<decltype(as_type)>(css);
        if (typed->current() + 1 > typed->limit()) return true;
      }
      return false;
    };
    return over(c.pids, static_cast<PidsCss*>(nullptr)) || over(c.numtasks, static_cast<NumtasksCss*>(nullptr));
  }

  // Brings the engine's size of a process's address space to its VmSize
  // (always: `always`; else only when the engine has none yet, a process
  // just exec'd).
  void size_address_space(Pid tid, bool always) {
    Result<MmRef> mm = engine.mm_of(tid);
    if (!mm.ok()) return;
    const int64_t recorded = mm.value()->total_vm.load();
    if (!always && recorded != 0) return;
    const int64_t vm = vm_size(tid);
    if (vm < 0 || vm == recorded) return;
    if (vm > recorded) (void)memrlimit->mmap(engine, tid, vm - recorded);
    else (void)memrlimit->munmap(engine, tid, recorded - vm);
  }

  // Before a refusal, the other processes charged to the caller's memrlimit
  // cgroup are brought to the truth too: exited ones dropped (their exit
  // events applied, or without the connector their /proc entries checked)
  // and every live one's size set to its VmSize. Bounded, as the fork
  // check is: at most 4096 processes are read. Locking: none held (takes
  // the cgroup mutex for the lookup, the tracker's own locks for the rest).
  void resize_cgroup_mates(Pid tid) {
    if (!tracker.catch_up_events()) tracker.recheck_cgroup_mates(tid);
    CgroupPtr cg;
    {
      MutexLock l(engine.cgroup_mutex());
      Result<CgroupPtr> r = engine.task_cgroup(tid, engine.hierarchy_of_locked(memrlimit->id()));
      if (!r.ok()) return;
      cg = std::move(r.value());
    }
    std::vector<Pid> mates = engine.cgroup_tgids(*cg);
    if (mates.size() > 4096) mates.resize(4096);
    for (Pid p : mates)
      if (!is_provisional_id(p)) size_address_space(p, true);
  }

  // Growth of the caller's address space by `grow` bytes (shrinking is
  // recorded and never refused). Unmapping is not reported, so the recorded
  // size only errs upwards between usage syncs: before refusing, it is
  // brought to the process's real VmSize and the growth tried again, so a
  // refusal is always against the truth.
  Answer on_grow(Pid tid, int64_t grow) {
    if (!memrlimit || grow == 0) return Answer{};
    size_address_space(tid, false);
    if (grow < 0) {
      (void)memrlimit->munmap(engine, tid, -grow);
      return Answer{};
    }
    Status st = memrlimit->mmap(engine, tid, grow);
    if (st.err() == ENOMEM) {
      size_address_space(tid, true);
      st = memrlimit->mmap(engine, tid, grow);
    }
    if (st.err() == ENOMEM) {
      resize_cgroup_mates(tid);
      st = memrlimit->mmap(engine, tid, grow);
    }
    if (st.err() == ENOMEM) {
      ++stats.maps_refused;
      return fail(ENOMEM);
    }
    return Answer{};  // charged, or a task the engine does not know
  }

  Answer on_setaffinity(int fd, const seccomp_notif& req) {
    const Pid caller = static_cast<Pid>(req.pid);
    const Pid target = req.data.args[0] ? static_cast<Pid>(req.data.args[0]) : caller;
    const size_t len = std::min<uint64_t>(req.data.args[1], 1024);
    if (!cpuset || len == 0) return Answer{};
    std::vector<unsigned char> mask(len);
    iovec local{mask.data(), len};
    iovec remote{reinterpret_cast<void*>(req.data.args[2]), len};
    // Unreadable (a non-dumpable program): the kernel decides unconfined.
    if (::process_vm_readv(caller, &local, 1, &remote, 1, 0) != static_cast<ssize_t>(len)) return Answer{};
    // The memory read was the caller's only if the notification is still live.
    if (seccomp_notify_id_valid(fd, req.id) != 0) return Answer{};
    if (!engine.tgid_of(target).ok() && !tracker.ensure_pid(target)) return fail(ESRCH);
    Result<Creds> who = engine.creds(caller), whom = engine.creds(target);
    if (!who.ok() || !whom.ok()) return fail(ESRCH);
    // The kernel's rule (check_same_owner, or CAP_SYS_NICE): the supervisor
    // acts with its own rights, so it checks the caller's first.
    if (who->euid != 0 && who->euid != whom->euid && who->euid != whom->uid) return fail(EPERM);
    Result<CpuSet> allowed = cpuset->effective_cpus_of(engine, target);
    if (!allowed.ok()) return Answer{};
    CpuSet want;
    for (size_t byte = 0; byte < len; ++byte)
      for (int bit = 0; bit < 8; ++bit)
        if (mask[byte] & (1u << bit)) want.set(static_cast<uint32_t>(byte * 8 + bit));
    want = want & *allowed;
    if (want.empty()) return fail(EINVAL);
    const size_t ncpu = std::max<size_t>(want.end(), 1);
    cpu_set_t* set = CPU_ALLOC(ncpu);
    const size_t size = CPU_ALLOC_SIZE(ncpu);
    CPU_ZERO_S(size, set);
    want.for_each([&](uint32_t c) { CPU_SET_S(c, size, set); });
    const int rc = ::sched_setaffinity(target, size, set);
    const int err = rc == 0 ? 0 : errno;
    CPU_FREE(set);
    ++stats.affinity_confined;
    return err ? fail(err) : done(0);
  }


  // A compatibility-mode answer as the loop sends it, counted.
  Answer compat_answer(const CallAnswer& c, bool statfs) {
    switch (c.kind) {
      case CallAnswer::kContinue: return Answer{};
      case CallAnswer::kError: return fail(c.error);
      case CallAnswer::kValue:
        if (statfs) ++stats.statfs_answered;
        return done(c.val);
      case CallAnswer::kResponded:
        ++stats.views_served;
        return Answer{false, 0, 0, true};
    }
    return Answer{};
  }

  Answer answer(int fd, const seccomp_notif& req) {
    const auto nr = static_cast<long>(req.data.nr);
    const __u64* a = req.data.args;
    const Pid tid = static_cast<Pid>(req.pid);
    switch (nr) {
      case SYS_clone:
        return on_fork(req, a[0] & CLONE_THREAD, a[0] & CLONE_VM);
      case SYS_fork:
        return on_fork(req, false, false);
      case SYS_vfork:
        return on_fork(req, false, true);
      case SYS_clone3:
        // Its flags live in the caller's memory; the C library falls back
        // to clone on ENOSYS.
        return fail(ENOSYS);
      case SYS_mmap:
        return on_grow(tid, static_cast<int64_t>(a[1]));
      case SYS_mremap:
        return on_grow(tid, static_cast<int64_t>(a[2]) - static_cast<int64_t>(a[1]));
      case SYS_brk: {
        if (a[0] == 0) return Answer{};
        const uint64_t end = current_break(tid);
        if (end == 0) return Answer{};  // unknown: the usage sync corrects
        Answer ans = on_grow(tid, static_cast<int64_t>(a[0]) - static_cast<int64_t>(end));
        // brk reports a refusal as the kernel does: by returning the break
        // unchanged, not an errno.
        if (!ans.proceed) ans = done(static_cast<int64_t>(end));
        return ans;
      }
      case SYS_sched_setaffinity:
        return on_setaffinity(fd, req);
      case SYS_open:
        return compat_answer(compat ? compat->open(fd, req, AT_FDCWD, a[0], a[1]) : CallAnswer{}, false);
      case SYS_openat:
        return compat_answer(
            compat ? compat->open(fd, req, static_cast<int64_t>(a[0]), a[1], a[2]) : CallAnswer{}, false);
      case SYS_statfs:
        return compat_answer(compat ? compat->statfs(fd, req, false, a[0], a[1]) : CallAnswer{}, true);
      case SYS_fstatfs:
        return compat_answer(compat ? compat->statfs(fd, req, true, a[0], a[1]) : CallAnswer{}, true);
      default:
        return Answer{};
    }
  }

  // One notification of `fd`, received into and answered from the calling
  // answerer's buffers; false if the descriptor is finished.
  bool serve(int fd, seccomp_notif* req, seccomp_notif_resp* resp) {
    std::memset(req, 0, sizeof *req);
    if (int rc = seccomp_notify_receive(fd, req); rc < 0) {
      // ENOENT: the caller died between poll and receive.
      return rc == -ENOENT || rc == -EINTR;
    }
    Answer ans;
    {
      // One answer at a time. Answers of different descriptors run at once
      // leave exited processes listed in the mirror (seen with 1,000
      // supervised trees killed at once: a child added from /proc whose
      // exit is never applied), a race not yet found; the waiting stays
      // per descriptor, which is what keeps the synchronous wake-up.
      MutexLock l(answer_mu);
      ans = answer(fd, *req);
    }
    ++stats.notifications;
    if (ans.responded) return true;
    std::memset(resp, 0, sizeof *resp);
    resp->id = req->id;
    if (ans.proceed) {
      resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    } else {
      resp->error = ans.error ? -ans.error : 0;
      resp->val = ans.val;
    }
    if (seccomp_notify_respond(fd, resp) < 0) ++stats.stale;  // the caller went away
    return true;
  }

  // The answerer of one notification descriptor: waits on it alone with
  // poll(2), which keeps the kernel's synchronous wake-up (the notified
  // process hands its CPU to this thread and back; through epoll the
  // hand-off is lost and a round trip costs about twice as much). Ends
  // when every process of the filter is gone or the supervisor stops;
  // closes the descriptor.
  void answer_loop(int fd, Answerer* self) {
    seccomp_notif* req = nullptr;
    seccomp_notif_resp* resp = nullptr;
    if (seccomp_notify_alloc(&req, &resp) == 0) {
      for (;;) {
        pollfd p[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
        if (::poll(p, 2, -1) < 0) {
          if (errno == EINTR) continue;
          break;
        }
        if (p[1].revents) break;
        // Readable: a notification. Hang-up alone: the filter's processes
        // are all gone.
        if (!(p[0].revents & POLLIN) || !serve(fd, req, resp)) break;
      }
      seccomp_notify_free(req, resp);
    }
    // Closing the descriptor makes any later supervised call of its
    // processes fail with ENOSYS: nothing is left waiting for an answer.
    ::close(fd);
    self->finished.store(true);
    uint64_t one = 1;
    (void)!::write(wake_fd, &one, sizeof one);  // to be joined
  }

  // ---------------------------------------------------------------- sockets

  void watch(int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    (void)::epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
  }
  void forget(int fd) {
    (void)::epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
  }

  // A connection sent its request: take the descriptor, answer, close.
  void on_connection(int conn) {
    const int nfd = receive_fd(conn, MSG_DONTWAIT);
    if (nfd < 0 && (errno == EAGAIN || errno == EINTR)) return;  // not yet
    unsigned char answer = nfd >= 0 ? 0 : EINVAL;
    if (nfd >= 0) take(nfd);
    (void)!::send(conn, &answer, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    conns.erase(conn);
    forget(conn);
  }

  void loop() {
    epoll_event evs[64];
    while (!stopping.load()) {
      const int n = ::epoll_wait(epfd, evs, 64, 1000);
      for (int i = 0; i < n; ++i) {
        const int fd = evs[i].data.fd;
        if (fd == wake_fd) {
          uint64_t v;
          (void)!::read(wake_fd, &v, sizeof v);
          adopt_pending();
          join_finished();
        } else if (fd == listen_fd) {
          const int conn = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (conn >= 0) {
            conns.insert(conn);
            watch(conn);
          }
        } else if (conns.count(fd)) {
          on_connection(fd);
        }
      }
    }
  }

  void adopt_pending() {
    std::vector<int> fds;
    {
      MutexLock l(adopt_mu);
      fds.swap(to_adopt);
    }
    for (int fd : fds) take(fd);
  }

  // Starts answering a notification descriptor, in a thread of its own
  // (answer_loop). If no thread can be made, the descriptor is closed: its
  // processes' supervised calls fail with ENOSYS rather than wait.
  void take(int fd) {
    (void)::ioctl(fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);
    auto a = std::make_unique<Answerer>();
    Answerer* self = a.get();
    try {
      a->thread = std::thread([this, fd, self] { answer_loop(fd, self); });
    } catch (const std::system_error& e) {
      log("supervisor: cannot start an answering thread (" + std::string(e.what()) +
          "): the process is left unsupervised, its supervised calls fail with ENOSYS");
      ::close(fd);
      return;
    }
    answerers.push_back(std::move(a));
    ++stats.processes_adopted;
  }

  // Joins the answerers whose descriptors are finished.
  void join_finished() {
    for (auto it = answerers.begin(); it != answerers.end();) {
      if ((*it)->finished.load()) {
        (*it)->thread.join();
        it = answerers.erase(it);
      } else {
        ++it;
      }
    }
  }

  Engine& engine;
  host::HostTracker& tracker;
  CpusetController* const cpuset;
  MemrlimitController* const memrlimit;
  const LogFn log;
  // Compatibility mode (set_compat_views, before the thread starts; then
  // used by the thread alone).
  std::unique_ptr<CompatCalls> compat;

  // stop_fd becomes readable, for good, when the supervisor stops: every
  // answerer polls it.
  int epfd = -1, listen_fd = -1, wake_fd = -1, stop_fd = -1;
  std::thread thread;
  std::atomic<bool> stopping{false};
  // Owned by the socket thread (and by stop() once that thread is joined).
  std::set<int> conns;
  std::list<std::unique_ptr<Answerer>> answerers;
  struct Counters {
    std::atomic<int64_t> processes_adopted{0}, notifications{0}, forks_refused{0}, maps_refused{0},
        affinity_confined{0}, stale{0}, views_served{0}, statfs_answered{0};
  } stats;
  Mutex answer_mu;
  Mutex adopt_mu;
  std::vector<int> to_adopt CG_GUARDED_BY(adopt_mu);
};

Supervisor::Supervisor(Engine& engine, host::HostTracker& tracker, LogFn log)
    : impl_(std::make_unique<Impl>(engine, tracker, std::move(log))) {}

Supervisor::~Supervisor() { stop(); }

Status Supervisor::start(const std::string& socket_path) {
  Impl& s = *impl_;
  if (s.thread.joinable()) return Status::Ok();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path)
    return Status::Error(ENAMETOOLONG, "control socket path too long: " + socket_path);
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  s.listen_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s.listen_fd < 0) return Status::Error(errno, "socket: " + std::string(std::strerror(errno)));
  (void)::unlink(socket_path.c_str());  // a stale socket of a previous run
  if (::bind(s.listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(s.listen_fd, 128) != 0) {
    const int e = errno;
    ::close(s.listen_fd);
    s.listen_fd = -1;
    return Status::Error(e, socket_path + ": " + std::strerror(e));
  }
  // Anyone who can reach the mount may put their own processes under
  // supervision: supervision only restricts what they can do.
  (void)::chmod(socket_path.c_str(), 0666);
  s.epfd = ::epoll_create1(EPOLL_CLOEXEC);
  s.wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  s.stop_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  s.watch(s.listen_fd);
  s.watch(s.wake_fd);
  socket_path_ = socket_path;
  s.stopping.store(false);
  s.thread = std::thread([&s] { s.loop(); });
  return Status::Ok();
}

void Supervisor::stop() {
  Impl& s = *impl_;
  if (!s.thread.joinable()) return;
  s.stopping.store(true);
  uint64_t one = 1;
  (void)!::write(s.wake_fd, &one, sizeof one);
  s.thread.join();
  // Each answerer closes its descriptor as it ends, which makes every
  // pending and future supervised call of those processes fail with ENOSYS:
  // they are not left waiting for an answer that never comes.
  (void)!::write(s.stop_fd, &one, sizeof one);
  for (auto& a : s.answerers) a->thread.join();
  s.answerers.clear();
  for (int fd : s.conns) ::close(fd);
  s.conns.clear();
  ::close(s.listen_fd);
  ::close(s.wake_fd);
  ::close(s.stop_fd);
  ::close(s.epfd);
  s.listen_fd = s.wake_fd = s.stop_fd = s.epfd = -1;
  (void)::unlink(socket_path_.c_str());
}

void Supervisor::set_compat_views(fs::CgroupFs& fs, std::string mountpoint) {
  impl_->compat = std::make_unique<CompatCalls>(fs, std::move(mountpoint));
}

void Supervisor::adopt(int notify_fd) {
  Impl& s = *impl_;
  {
    MutexLock l(s.adopt_mu);
    s.to_adopt.push_back(notify_fd);
  }
  uint64_t one = 1;
  (void)!::write(s.wake_fd, &one, sizeof one);
}

SupervisorStats Supervisor::stats() const {
  const auto& c = impl_->stats;
  return {c.processes_adopted.load(), c.notifications.load(), c.forks_refused.load(),
          c.maps_refused.load(), c.affinity_confined.load(), c.stale.load(),
          c.views_served.load(), c.statfs_answered.load()};
}

}  // namespace cgcore::supervisor
