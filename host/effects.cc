#include "host/effects.h"

#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace cgcore::host {

namespace {

std::vector<Pid> sorted_unique(std::vector<Pid> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

}  // namespace

// ---------------------------------------------------------------- queue

void EffectQueue::push_affinity(Pid tid, const CpuSet& cpus, bool on_fork) {
  MutexLock l(mu_);
  affinity_.push_back({tid, cpus, on_fork});
}

void EffectQueue::push_freeze(Cgroup& cgroup) {
  MutexLock l(mu_);
  freeze_.push_back(CgroupPtr(&cgroup));
}

void EffectQueue::take(std::vector<Affinity>& affinity, std::vector<CgroupPtr>& freeze) {
  MutexLock l(mu_);
  affinity.clear();
  freeze.clear();
  affinity.swap(affinity_);
  freeze.swap(freeze_);
}

CpusetController::AffinitySink EffectQueue::sink(std::shared_ptr<EffectQueue> queue) {
  return [queue = std::move(queue)](Pid tid, const CpuSet& cpus, const CpuSet&,
                                    CpusetController::AffinityCause cause) {
    queue->push_affinity(tid, cpus, cause == CpusetController::AffinityCause::kFork);
  };
}

void EffectQueue::push_nice(Pid tid, int nice) {
  MutexLock l(mu_);
  nice_.push_back({tid, nice});
}

void EffectQueue::take_nice(std::vector<Nice>& out) {
  MutexLock l(mu_);
  out.clear();
  out.swap(nice_);
}

std::function<void(Pid, int)> EffectQueue::nice_sink(std::shared_ptr<EffectQueue> queue) {
  return [queue = std::move(queue)](Pid tid, int nice) { queue->push_nice(tid, nice); };
}

// ---------------------------------------------------------------- effects

Effects::Effects(Engine& engine, const ProcFs& proc, ProcessRecords& records,
                 std::shared_ptr<EffectQueue> queue, bool enabled, Pid self, LogFn log)
    : engine_(engine),
      proc_(proc),
      records_(records),
      queue_(std::move(queue)),
      enabled_(enabled),
      self_(self),
      log_(std::move(log)) {
  engine_.add_observer(this);
}

Effects::~Effects() { engine_.remove_observer(this); }

void Effects::frozen_changed(Cgroup& cgroup, bool now_frozen) {
  if (!enabled_ || !active_.load()) return;
  if (!cgroup.hierarchy().is_default()) return;
  if (now_frozen) freeze_active_.store(true);
  queue_->push_freeze(cgroup);
}

std::pair<std::vector<Pid>, bool> Effects::freeze_state(Cgroup& cgroup) {
  bool frozen;
  {
    MutexLock l(engine_.cgroup_mutex());
    frozen = !cgroup.dead() && engine_.frozen_locked(cgroup);
  }
  return {sorted_unique(engine_.cgroup_tgids(cgroup)), frozen};
}

void Effects::apply() {
  MutexLock serial(apply_mu_);
  std::vector<EffectQueue::Affinity> affinity;
  std::vector<CgroupPtr> freeze;
  std::vector<EffectQueue::Nice> nice;
  queue_->take(affinity, freeze);
  queue_->take_nice(nice);
  if (!enabled_) return;
  for (const EffectQueue::Affinity& a : affinity) set_affinity(a);
  for (const EffectQueue::Nice& n : nice) set_nice(n);
  // The state now, not the one queued: a later change is queued behind and
  // gives the same answer, so processes end as the last decision says.
  for (CgroupPtr& cg : freeze) {
    auto [tgids, frozen] = freeze_state(*cg);
    for (Pid g : tgids) {
      if (frozen) stop_process(g);
      else continue_process(g);
    }
  }
}

bool Effects::signal_process(Pid tgid, uint64_t start, int sig) {
  if (!enabled_ || tgid == self_) return false;
  int pfd = static_cast<int>(::syscall(SYS_pidfd_open, tgid, 0));
  if (pfd < 0 && errno != ENOSYS) return false;  // gone
  std::optional<ThreadStat> st = proc_.stat(tgid);
  bool ok = st && st->start == start && !st->dead() && !st->kthread();
  if (ok) {
    ok = pfd >= 0 ? ::syscall(SYS_pidfd_send_signal, pfd, sig, nullptr, 0) == 0 : ::kill(tgid, sig) == 0;
    if (ok) ++signals_;
  }
  if (pfd >= 0) ::close(pfd);
  return ok;
}

void Effects::set_affinity(const EffectQueue::Affinity& a) {
  if (a.cpus.empty()) return;
  std::optional<TaskRecord> rec = records_.task(a.tid);
  if (!rec) return;
  std::optional<ThreadStat> st = proc_.stat(a.tid);
  if (!st || st->dead() || st->kthread() || st->start != rec->start) return;
  const size_t ncpu = std::max<size_t>(a.cpus.end(), 1);
  cpu_set_t* set = CPU_ALLOC(ncpu);
  const size_t size = CPU_ALLOC_SIZE(ncpu);
  CPU_ZERO_S(size, set);
  a.cpus.for_each([&](uint32_t c) { CPU_SET_S(c, size, set); });
  bool apply = true;
  if (a.on_fork) {
    // Replace the inherited mask only if it strays outside the cpuset (the
    // parent was moved and not re-pinned yet).
    constexpr size_t kMax = 8192;
    cpu_set_t* cur = CPU_ALLOC(kMax);
    const size_t cur_size = CPU_ALLOC_SIZE(kMax);
    CPU_ZERO_S(cur_size, cur);
    if (::sched_getaffinity(a.tid, cur_size, cur) == 0) {
      apply = false;
      for (size_t c = 0; c < kMax && !apply; ++c)
        if (CPU_ISSET_S(c, cur_size, cur) && !a.cpus.test(static_cast<uint32_t>(c))) apply = true;
    }
    CPU_FREE(cur);
  }
  if (apply) {
    ++affinity_set_;
    // ESRCH: the thread exited meanwhile (its exit event follows).
    if (::sched_setaffinity(a.tid, size, set) != 0 && errno != ESRCH) {
      const int err = errno;
      const int64_t n = ++affinity_errors_;
      if (worth_logging(n))
        log_("sched_setaffinity(" + std::to_string(a.tid) + ", " + a.cpus.to_string() +
             "): " + std::strerror(err));
    }
  }
  CPU_FREE(set);
}

void Effects::set_nice(const EffectQueue::Nice& n) {
  std::optional<TaskRecord> rec = records_.task(n.tid);
  if (!rec) return;
  std::optional<ThreadStat> st = proc_.stat(n.tid);
  if (!st || st->dead() || st->kthread() || st->start != rec->start) return;
  ++nice_set_;
  // PRIO_PROCESS with a thread id sets that thread's nice (Linux). ESRCH:
  // it exited meanwhile.
  if (::setpriority(PRIO_PROCESS, static_cast<id_t>(n.tid), n.nice) != 0 && errno != ESRCH) {
    const int err = errno;
    const int64_t c = ++nice_errors_;
    if (worth_logging(c))
      log_("setpriority(" + std::to_string(n.tid) + ", " + std::to_string(n.nice) +
           "): " + std::strerror(err));
  }
}

void Effects::kill(std::span<const Pid> tgids) {
  for (Pid tgid : tgids) {
    if (!enabled_) {
      log_("cgroup.kill: effects are off; " + std::to_string(tgid) + " not signalled");
      continue;
    }
    if (tgid == self_) {
      log_("cgroup.kill: not killing cgcore's own process " + std::to_string(tgid));
      continue;
    }
    std::optional<ProcessRecord> rec = records_.mark_killed(tgid);
    if (rec && !rec->kthread) (void)signal_process(tgid, rec->start, SIGKILL);
  }
}

bool Effects::oom_killable(Pid tgid) {
  if (!enabled_ || tgid == self_) return false;
  std::optional<ProcessRecord> rec = records_.process(tgid);
  if (!rec || rec->kthread) return false;
  std::optional<ThreadStat> st = proc_.stat(tgid);
  if (!st || st->start != rec->start || st->dead() || st->kthread()) return false;
  std::ifstream in(proc_.root() + "/" + std::to_string(tgid) + "/oom_score_adj");
  int adj = 0;
  if (in >> adj && adj == -1000) return false;
  return true;
}

bool Effects::oom_kill(Pid tgid) {
  if (!enabled_ || tgid == self_) return false;
  std::optional<ProcessRecord> rec = records_.process(tgid);
  if (!rec || rec->kthread) return false;
  MutexLock serial(apply_mu_);
  return signal_process(tgid, rec->start, SIGKILL);
}

namespace {
// The private anonymous mappings of /proc/PID/maps: no backing inode, and
// no name or a name the kernel gives anonymous memory ([heap], [stack],
// [anon:...]); not the vdso, vvar or vsyscall pages.
std::vector<iovec> anon_ranges(const std::string& maps_path) {
  std::vector<iovec> out;
  std::ifstream in(maps_path);
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    std::string range, perms, offset, dev, name;
    unsigned long inode = 1;
    ls >> range >> perms >> offset >> dev >> inode;
    std::getline(ls, name);
    name.erase(0, name.find_first_not_of(' '));
    if (inode != 0 || perms.size() < 4 || perms[3] != 'p') continue;
    if (!name.empty() && name != "[heap]" && name != "[stack]" && name.rfind("[anon:", 0) != 0)
      continue;
    const size_t dash = range.find('-');
    if (dash == std::string::npos) continue;
    const uintptr_t lo = std::stoull(range.substr(0, dash), nullptr, 16);
    const uintptr_t hi = std::stoull(range.substr(dash + 1), nullptr, 16);
    if (hi > lo) out.push_back({reinterpret_cast<void*>(lo), hi - lo});
  }
  return out;
}
}  // namespace

int64_t Effects::reclaim(Pid tgid, int64_t want) {
  if (!enabled_) return -ENOTSUP;
  if (tgid == self_) return -ESRCH;
  std::optional<ProcessRecord> rec = records_.process(tgid);
  if (!rec || rec->kthread) return -ESRCH;
  const int pfd = static_cast<int>(::syscall(SYS_pidfd_open, tgid, 0));
  if (pfd < 0) return errno == ENOSYS ? -ENOSYS : -ESRCH;
  int64_t advised = 0;
  int err = 0;
  std::optional<ThreadStat> st = proc_.stat(tgid);
  if (!st || st->start != rec->start || st->dead() || st->kthread()) {
    err = ESRCH;
  } else {
    std::vector<iovec> ranges = anon_ranges(proc_.root() + "/" + std::to_string(tgid) + "/maps");
    // Largest first: the heap and big allocations hold most of the memory.
    std::sort(ranges.begin(), ranges.end(),
              [](const iovec& a, const iovec& b) { return a.iov_len > b.iov_len; });
    size_t n = 0;
    int64_t planned = 0;
    while (n < ranges.size() && planned < want) planned += static_cast<int64_t>(ranges[n++].iov_len);
    // The kernel takes at most IOV_MAX (1024) ranges a call.
    for (size_t i = 0; i < n && !err; i += 1024) {
      const size_t k = std::min<size_t>(1024, n - i);
      const long r = ::syscall(SYS_process_madvise, pfd, &ranges[i], k, MADV_PAGEOUT, 0u);
      if (r >= 0) advised += r;
      else err = errno;
    }
  }
  ::close(pfd);
  if (advised > 0) return advised;
  return err ? -err : 0;
}

void Effects::stop_process(Pid g) {
  if (g == self_) {
    if (!warned_self_freeze_.exchange(true)) log_("cgroup.freeze: not stopping cgcore's own process");
    return;
  }
  std::optional<ProcessRecord> rec = records_.process(g);
  if (!rec || rec->kthread) return;
  const bool ours = records_.frozen_by_us(g);
  std::optional<ThreadStat> st = proc_.stat(g);
  if (!st || st->dead() || st->start != rec->start || st->stopped()) return;
  // Recorded before the signal: a crash in between leaves a record of a
  // process that may run, never a stopped process without one.
  if (!ours && freezer_record_) freezer_record_(g, rec->start, true);
  if (!signal_process(g, rec->start, SIGSTOP)) return;
  if (!ours) (void)records_.mark_frozen(g);
}

void Effects::continue_process(Pid g) {
  if (std::optional<ProcessRecord> rec = records_.unmark_frozen(g)) {
    (void)signal_process(g, rec->start, SIGCONT);
    if (freezer_record_) freezer_record_(g, rec->start, false);
  }
}

size_t Effects::adopt_stopped(const std::vector<std::pair<Pid, uint64_t>>& stopped) {
  if (!enabled_) return 0;
  size_t n = 0;
  {
    MutexLock serial(apply_mu_);
    for (const auto& [g, start] : stopped) {
      std::optional<ProcessRecord> rec = records_.process(g);
      if (!rec || rec->kthread || rec->start != start || records_.frozen_by_us(g)) continue;
      std::optional<ThreadStat> st = proc_.stat(g);
      if (!st || st->dead() || st->start != start || !st->stopped()) continue;
      if (records_.mark_frozen(g)) ++n;
    }
  }
  // The pass decides: stopped still if a frozen cgroup holds it, else continued.
  freeze_active_.store(true);
  reconcile_freezer();
  return n;
}

void Effects::after_fork(Pid child, Pid parent_tgid, uint64_t start) {
  if (!enabled_) return;
  if (records_.inherit_killed(parent_tgid, child)) {
    (void)signal_process(child, start, SIGKILL);
    return;
  }
  if (!freeze_active_.load()) return;
  Result<CgroupPtr> cg = engine_.task_cgroup(child, engine_.default_hierarchy());
  if (!cg.ok()) return;
  bool frozen;
  {
    MutexLock l(engine_.cgroup_mutex());
    frozen = engine_.frozen_locked(**cg);
  }
  if (frozen) {
    MutexLock serial(apply_mu_);
    stop_process(child);
  }
}

void Effects::reconcile_freezer() {
  if (!enabled_ || !freeze_active_.load()) return;
  std::vector<CgroupPtr> frozen_cgroups;
  bool any_frozen = false;
  {
    MutexLock l(engine_.cgroup_mutex());
    std::vector<std::pair<Cgroup*, bool>> stack{{&engine_.default_hierarchy().root(), false}};
    while (!stack.empty()) {
      auto [c, parent_frozen] = stack.back();
      stack.pop_back();
      const bool fz = parent_frozen || c->self_freeze();
      if (fz) {
        any_frozen = true;
        frozen_cgroups.emplace_back(c);
      }
      for (const auto& [name, child] : c->children()) stack.emplace_back(child, fz);
    }
  }
  // Listed and signalled with no engine lock held; a cgroup thawed
  // meanwhile has its continue queued behind this pass.
  std::vector<Pid> want;
  for (CgroupPtr& cg : frozen_cgroups) {
    std::vector<Pid> t = engine_.cgroup_tgids(*cg);
    want.insert(want.end(), t.begin(), t.end());
  }
  want = sorted_unique(std::move(want));
  MutexLock serial(apply_mu_);
  for (Pid g : want) stop_process(g);
  for (Pid g : records_.frozen())
    if (!std::binary_search(want.begin(), want.end(), g)) continue_process(g);
  // Off until the observer sees the next freeze. A frozen cgroup, even an
  // empty one, keeps the pass on: processes may be moved in.
  if (!any_frozen) freeze_active_.store(false);
}

void Effects::continue_all() {
  MutexLock serial(apply_mu_);
  for (Pid g : records_.frozen()) continue_process(g);
}

}  // namespace cgcore::host
