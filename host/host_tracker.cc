// The host backend: the mirror (scan, events, resync, ensure_pid) and the
// effects (affinity, signals, memory usage). docs/host.md explains the
// rules; the comments here say which rule each step implements.
#include "host/host_tracker.h"

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include "controllers/cpuset.h"
#include "controllers/memory.h"
#include "controllers/memrlimit.h"
#include "host/connector.h"
#include "host/procfs.h"

namespace cgcore::host {

namespace {

using Snapshot = std::map<Pid, ProcSnap>;

// How far sync_pid follows unknown parents (a cycle can only come from a
// fabricated or torn /proc view; the bound also keeps the stack small).
constexpr int kMaxDepth = 64;

// Set while the tracker creates a task in the engine, so that the cpuset
// affinity sink, called from the engine's fork hook on this thread, knows the
// real task already inherited its parent's affinity (see on_affinity).
thread_local bool t_creating = false;
struct CreatingScope {
  CreatingScope() { t_creating = true; }
  ~CreatingScope() { t_creating = false; }
  CreatingScope(const CreatingScope&) = delete;
  CreatingScope& operator=(const CreatingScope&) = delete;
};

bool contains(const std::vector<Pid>& v, Pid p) { return std::find(v.begin(), v.end(), p) != v.end(); }

std::vector<Pid> sorted_unique(std::vector<Pid> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

// Whether a rate-limited message should be logged for the nth occurrence
// (n counted from 1): the first ten, then every thousandth.
bool worth_logging(int64_t n) { return n <= 10 || n % 1000 == 0; }

}  // namespace

struct HostTracker::Impl final : public EngineObserver {
  // One live task of the mirror: what identifies it on the host.
  struct TaskRec {
    Pid tgid;
    uint64_t start;  // /proc start time (ticks); 0: unknown (gone when seen)
  };
  struct ProcRec {
    uint64_t start;  // the process's (its leader's) start time
    bool kthread;
  };

  Impl(HostTracker& o, Engine& e, fs::CgroupFs* f, HostOptions options)
      : owner(o),
        engine(e),
        fs(f),
        opts(std::move(options)),
        proc(opts.proc_root),
        effects(opts.apply_effects && proc.is_host()),
        self(::getpid()) {
    if (!opts.log)
      opts.log = [](const std::string& line) { std::fprintf(stderr, "cgcore-host: %s\n", line.c_str()); };
    cpuset = dynamic_cast<CpusetController*>(engine.find_controller("cpuset"));
    memory = dynamic_cast<MemoryController*>(engine.find_controller("memory"));
    memrlimit = dynamic_cast<MemrlimitController*>(engine.find_controller("memrlimit"));
  }

  void log(const std::string& line) { opts.log(line); }

  // ================================================================ records
  // (state_mu: a leaf, also taken by the sinks under engine locks)

  std::optional<TaskRec> task_rec(Pid tid) {
    MutexLock l(state_mu);
    auto it = tasks.find(tid);
    if (it == tasks.end()) return std::nullopt;
    return it->second;
  }
  std::optional<ProcRec> proc_rec(Pid tgid) {
    MutexLock l(state_mu);
    auto it = procs.find(tgid);
    if (it == procs.end()) return std::nullopt;
    return it->second;
  }
  void note_task(Pid tid, Pid tgid, uint64_t start) {
    MutexLock l(state_mu);
    tasks[tid] = TaskRec{tgid, start};
  }
  void forget_task(Pid tid) {
    MutexLock l(state_mu);
    tasks.erase(tid);
  }
  void note_proc(Pid tgid, uint64_t start, bool kthread) {
    MutexLock l(state_mu);
    procs[tgid] = ProcRec{start, kthread};
  }
  void forget_proc(Pid tgid) {
    MutexLock l(state_mu);
    procs.erase(tgid);
    frozen.erase(tgid);
    killed.erase(tgid);
  }

  // ================================================================ engine views

  bool live_in_engine(Pid tid) {
    Result<std::vector<Pid>> t = engine.threads_of(tid);
    return t.ok() && contains(*t, tid);
  }
  std::vector<Pid> live_threads(Pid tgid) {
    Result<std::vector<Pid>> t = engine.threads_of(tgid);
    return t.ok() ? std::move(t.value()) : std::vector<Pid>{};
  }
  // A live thread of a process the mirror knows (its leader if alive).
  std::optional<Pid> live_thread_of(Pid tgid) {
    if (!proc_rec(tgid)) return std::nullopt;
    std::vector<Pid> t = live_threads(tgid);
    if (t.empty()) return std::nullopt;
    return t.front();
  }

  // ================================================================ mirror changes
  // All under sync_mu, which serialises them; engine calls are made with
  // sync_mu held and state_mu not held.

  // The process ended in the engine (its last thread exited): forget it.
  void settle(Pid tgid) CG_REQUIRES(sync_mu) {
    if (live_threads(tgid).empty()) forget_proc(tgid);
  }

  void drop_thread(Pid tid) CG_REQUIRES(sync_mu) {
    std::optional<TaskRec> rec = task_rec(tid);
    (void)engine.exit_thread(tid);
    forget_task(tid);
    if (rec) settle(rec->tgid);
  }

  void drop_process(Pid tgid) CG_REQUIRES(sync_mu) {
    std::vector<Pid> threads = live_threads(tgid);
    (void)engine.exit_process(tgid);
    {
      MutexLock l(state_mu);
      for (Pid t : threads) tasks.erase(t);
      tasks.erase(tgid);
    }
    forget_proc(tgid);
  }

  // A process the engine refused to fork (a controller's can_fork: pids or
  // numtasks at their limit, memrlimit over its limit) has been forked by the
  // kernel all the same. It is spawned in the roots and migrated to the
  // parent's cgroups, hierarchy by hierarchy, as the kernel's migration
  // would charge it (pids may exceed pids.max, as after a migration);
  // where a controller vetoes that too, it stays in that hierarchy's root.
  Result<Pid> fork_from(Pid parent, Pid child, const Creds& creds) CG_REQUIRES(sync_mu) {
    Result<Pid> r = [&] {
      CreatingScope c;
      return engine.fork(parent, ForkOptions{.pid = child, .creds = creds});
    }();
    if (r.ok() || r.err() == ESRCH || r.err() == EEXIST || r.err() == EINVAL) return r;
    const int64_t n = ++forks_over_limit;
    Result<Pid> s = [&] {
      CreatingScope c;
      return engine.spawn(SpawnOptions{.pid = child, .creds = creds});
    }();
    if (!s.ok()) return s;
    std::string stuck;
    for (Hierarchy* h : engine.hierarchies()) {
      Result<CgroupPtr> cg = engine.task_cgroup(parent, *h);
      if (!cg.ok() || (*cg)->is_root()) continue;
      if (Status m = engine.migrate_process(child, **cg); !m.ok()) {
        MutexLock l(engine.cgroup_mutex());  // Cgroup::path() reads the tree
        stuck += " " + (*cg)->path() + " (" + errno_name(m.err()) + ")";
      }
    }
    if (worth_logging(n))
      log("fork of " + std::to_string(child) + " from " + std::to_string(parent) + " refused (" +
          r.status().message() + "), but the kernel forked it: added to its parent's cgroups by migration" +
          (stuck.empty() ? "" : "; left in the root instead of" + stuck));
    return s;
  }

  // Adds a process (one thread per live thread of `p`) as a fork of engine
  // thread `parent` if given, else spawned in the root cgroups.
  bool add_process(const ProcSnap& p, std::optional<Pid> parent) CG_REQUIRES(sync_mu) {
    note_proc(p.tgid, p.start, p.flags & kPfKthread);
    note_task(p.tgid, p.tgid, p.start);  // before the engine call: the fork hook's sink looks
    Result<Pid> r = Status::Error(ESRCH, "");
    if (parent) {
      r = fork_from(*parent, p.tgid, p.creds);
    } else {
      CreatingScope c;
      r = engine.spawn(SpawnOptions{.pid = p.tgid, .creds = p.creds});
    }
    if (!r.ok()) {
      forget_task(p.tgid);
      forget_proc(p.tgid);
      log("cannot add process " + std::to_string(p.tgid) + ": " + r.status().message());
      return false;
    }
    for (const auto& [tid, start] : p.threads)
      if (tid != p.tgid) add_thread(p.tgid, tid, start);
    if (p.leader_dead) drop_thread(p.tgid);  // a zombie leader whose threads run on
    if (!proc_rec(p.tgid)) return false;
    if (parent)
      if (std::optional<TaskRec> pr = task_rec(*parent)) after_fork(p.tgid, pr->tgid, p.start);
    return true;
  }

  // Adds a thread to a process the mirror knows. The creating thread is not
  // known (the connector names the creator's parent), so it is cloned from
  // the leader, or another live thread — the same cgroups unless threads of
  // the process were moved apart (v1 tasks files).
  bool add_thread(Pid tgid, Pid tid, uint64_t start) CG_REQUIRES(sync_mu) {
    std::optional<Pid> creator = live_thread_of(tgid);
    if (!creator) return false;
    note_task(tid, tgid, start);
    Result<Pid> r = [&] {
      CreatingScope c;
      return engine.clone_thread(*creator, tid);
    }();
    if (r.ok()) return true;
    forget_task(tid);
    if (r.err() == EEXIST || r.err() == ESRCH || r.err() == EINVAL) {
      log("cannot add thread " + std::to_string(tid) + " of " + std::to_string(tgid) + ": " +
          r.status().message());
      return false;
    }
    // A controller refused it (pids.max). The engine has no way to record a
    // thread over a limit; retry until the limit allows it.
    const int64_t n = ++threads_refused;
    if (worth_logging(n))
      log("thread " + std::to_string(tid) + " of " + std::to_string(tgid) + " refused (" +
          r.status().message() + "); the kernel created it: retrying");
    pending.insert(tid);
    return false;
  }

  // The engine's process `tgid` execs with thread `x`: x takes the process
  // id, the other threads exit, the address space is new.
  void exec_as(Pid tgid, Pid x, uint64_t start) CG_REQUIRES(sync_mu) {
    std::vector<Pid> threads = live_threads(tgid);
    if (Status s = engine.exec(x); !s.ok()) {
      log("exec of " + std::to_string(tgid) + ": " + s.message());
      return;
    }
    MutexLock l(state_mu);
    for (Pid t : threads) tasks.erase(t);
    tasks[tgid] = TaskRec{tgid, start};
  }

  void refresh_creds(Pid tgid, const Creds& creds) CG_REQUIRES(sync_mu) {
    Result<Creds> cur = engine.creds(tgid);
    if (cur.ok() && !(*cur == creds)) (void)engine.set_creds(tgid, creds);
  }

  // Makes the engine's threads of a known process match `p` (same process:
  // same id and start time).
  void sync_threads(const ProcSnap& p) CG_REQUIRES(sync_mu) {
    const Pid g = p.tgid;
    std::vector<Pid> live = live_threads(g);
    // /proc runs the leader, the engine's has exited, other threads live on:
    // a thread exec'd and took over the process id (de_thread) and the exec
    // event was lost or is still queued. Apply it now.
    if (!p.leader_dead && !contains(live, g) && !live.empty()) {
      exec_as(g, live.front(), p.start);
      live = live_threads(g);
    }
    auto start_of = [&](Pid tid) -> std::optional<uint64_t> {
      for (const auto& [t, s] : p.threads)
        if (t == tid) return s;
      return std::nullopt;
    };
    auto matches = [&](Pid tid, uint64_t start) {
      std::optional<TaskRec> rec = task_rec(tid);
      return rec && rec->tgid == g && rec->start == start;
    };
    std::vector<Pid> stale;
    for (Pid t : live) {
      std::optional<uint64_t> s = start_of(t);
      if (!s || !matches(t, *s)) stale.push_back(t);
    }
    std::vector<std::pair<Pid, uint64_t>> missing;
    for (const auto& [t, s] : p.threads)
      if (!contains(live, t) || contains(stale, t)) missing.emplace_back(t, s);
    // New threads first, so that the process keeps a live thread to clone
    // from while the stale ones go; then ids that stale threads held.
    for (const auto& [t, s] : missing)
      if (!contains(stale, t)) add_thread(g, t, s);
    for (Pid t : stale) drop_thread(t);
    for (const auto& [t, s] : missing)
      if (contains(stale, t) && proc_rec(g)) add_thread(g, t, s);
  }

  // Makes the engine's view of id `id` (a process or a thread) match /proc:
  // drops the engine's task if it is gone or its id was recycled (start
  // times differ), and adds what runs — a thread under its process, a
  // process as a fork of its parent (added first if unknown, up to
  // kMaxDepth ancestors) or, without one, spawned in the roots. True if the
  // engine has `id` afterwards (a live thread, or a process).
  bool sync_pid(Pid id, int depth) CG_REQUIRES(sync_mu) {
    if (id <= 0) return false;
    std::optional<ThreadStat> st = proc.stat(id);
    std::optional<ProcStatus> status = st ? proc.status(id) : std::nullopt;
    if (!status) st.reset();
    const Pid tgid = status ? status->tgid : 0;
    if (std::optional<ProcRec> prec = proc_rec(id); prec && (!st || tgid != id || st->start != prec->start))
      drop_process(id);
    if (std::optional<TaskRec> rec = task_rec(id);
        rec && (!st || st->dead() || st->start != rec->start || tgid != rec->tgid))
      drop_thread(id);
    if (!st) return false;
    if (tgid != id) {  // a thread: its process first
      if (st->dead()) return false;
      if (!proc_rec(tgid)) {
        if (depth >= kMaxDepth) return false;
        sync_pid(tgid, depth + 1);
      }
      if (!live_in_engine(id) && proc_rec(tgid)) add_thread(tgid, id, st->start);
      return live_in_engine(id);
    }
    std::optional<ProcSnap> p = proc.process(id);
    if (!p) {  // every thread has exited: a zombie waiting for its parent
      if (proc_rec(id)) drop_process(id);
      return false;
    }
    if (proc_rec(id)) {
      sync_threads(*p);
      return proc_rec(id).has_value();
    }
    std::optional<Pid> parent;
    if (p->ppid > 0 && depth < kMaxDepth) {
      if (!proc_rec(p->ppid)) sync_pid(p->ppid, depth + 1);
      parent = live_thread_of(p->ppid);
    }
    return add_process(*p, parent);
  }

  // Adds a snapshot's process not yet mirrored, its unknown ancestors first
  // (initial: everything is spawned in the roots).
  void add_from_snapshot(Pid g, const Snapshot& snap, bool initial, int depth) CG_REQUIRES(sync_mu) {
    if (proc_rec(g)) return;
    auto it = snap.find(g);
    if (it == snap.end()) return;
    const ProcSnap& p = it->second;
    std::optional<Pid> parent;
    if (!initial && p.ppid > 0 && depth < kMaxDepth) {
      add_from_snapshot(p.ppid, snap, false, depth + 1);
      parent = live_thread_of(p.ppid);
    }
    add_process(p, parent);
  }

  std::optional<Snapshot> take_snapshot() {
    std::optional<std::vector<Pid>> pids = proc.pids();
    if (!pids) return std::nullopt;
    Snapshot snap;
    for (Pid p : *pids)
      if (std::optional<ProcSnap> s = proc.process(p)) snap.emplace(p, std::move(*s));
    return snap;
  }

  // The resynchronisation: the mirror becomes the snapshot. Processes gone
  // or recycled (start time differs) exit; threads are matched the same
  // way; new processes are added as forks of their parents (initial: spawned
  // in the roots). Events stamped before the scan began describe changes the
  // scan saw, and are skipped from now on (epoch_ns).
  bool resync_locked(bool initial) CG_REQUIRES(sync_mu) {
    const uint64_t epoch = event_clock_ns();
    std::optional<Snapshot> snap = take_snapshot();
    if (!snap) {
      log("cannot read " + proc.root());
      return false;
    }
    epoch_ns = epoch;
    std::vector<std::pair<Pid, ProcRec>> known;
    {
      MutexLock l(state_mu);
      known.assign(procs.begin(), procs.end());
    }
    for (const auto& [g, rec] : known) {
      auto it = snap->find(g);
      if (it == snap->end() || it->second.start != rec.start) drop_process(g);
      else sync_threads(it->second);
    }
    for (const auto& [g, p] : *snap) add_from_snapshot(g, *snap, initial, 0);
    for (const auto& [g, p] : *snap)
      if (proc_rec(g)) refresh_creds(g, p.creds);
    return true;
  }

  // ================================================================ events

  // Whether /proc's task started after the event was sent: the event's task
  // is gone and its id was recycled.
  static bool younger_than(const ThreadStat& st, uint64_t ts) {
    return start_to_event_clock_ns(st.start) > ts + tick_ns();
  }

  void apply(const ProcEvent& ev) CG_REQUIRES(sync_mu) {
    if (ev.ts < epoch_ns) {  // the last scan saw its effect
      ++stale_events;
      return;
    }
    switch (ev.kind) {
      case ProcEvent::kFork:
        if (ev.pid == ev.tgid) on_fork(ev);
        else on_clone(ev);
        break;
      case ProcEvent::kExec:
        on_exec(ev.tgid);
        break;
      case ProcEvent::kExit:
        on_exit(ev.pid);
        break;
      case ProcEvent::kUid:
      case ProcEvent::kGid:
        if (proc_rec(ev.tgid))
          if (std::optional<ProcStatus> s = proc.status(ev.tgid); s && s->tgid == ev.tgid)
            refresh_creds(ev.tgid, s->creds);
        break;
      case ProcEvent::kOther:
        break;
    }
  }

  // A new process: a fork of the parent thread the event names.
  void on_fork(const ProcEvent& ev) CG_REQUIRES(sync_mu) {
    const Pid c = ev.pid;
    std::optional<ThreadStat> st = proc.stat(c);
    std::optional<ProcStatus> status = st ? proc.status(c) : std::nullopt;
    if (st && younger_than(*st, ev.ts)) {
      // The child has gone and its id serves a newer task, whose own event
      // follows; make the mirror match /proc for this id now.
      pending.insert(c);
      return;
    }
    if (std::optional<ProcRec> prec = proc_rec(c)) {
      if (st && prec->start == st->start) return;  // added already (scan, ensure_pid)
      drop_process(c);                             // a stale record of a recycled id
    }
    if (task_rec(c)) drop_thread(c);
    // The forking thread: the event's parent if the mirror has it in that
    // process, else the parent process's leader (or any live thread).
    std::optional<Pid> parent;
    if (std::optional<TaskRec> r = task_rec(ev.parent_pid); r && r->tgid == ev.parent_tgid &&
                                                            live_in_engine(ev.parent_pid))
      parent = ev.parent_pid;
    if (!parent) {
      if (!proc_rec(ev.parent_tgid)) sync_pid(ev.parent_tgid, 1);
      parent = live_thread_of(ev.parent_tgid);
    }
    ProcSnap p;
    p.tgid = c;
    p.ppid = ev.parent_tgid;
    p.start = st ? st->start : 0;
    p.flags = st ? st->flags : 0;
    if (status) {
      p.creds = status->creds;
    } else if (parent) {
      if (Result<Creds> pc = engine.creds(*parent); pc.ok()) p.creds = *pc;
    }
    p.threads.emplace_back(c, p.start);
    if (!add_process(p, parent)) return;
    // Gone already (its exit event follows) or never seen: check again at
    // the next tick, after events queued behind this one (its children's
    // forks) found it.
    if (!st || st->dead()) pending.insert(c);
  }

  // A new thread of process ev.tgid.
  void on_clone(const ProcEvent& ev) CG_REQUIRES(sync_mu) {
    const Pid t = ev.pid, g = ev.tgid;
    std::optional<ThreadStat> st = proc.thread_stat(g, t);
    if (st && younger_than(*st, ev.ts)) {
      pending.insert(t);
      return;
    }
    if (std::optional<TaskRec> rec = task_rec(t)) {
      if (st && rec->tgid == g && rec->start == st->start) return;
      drop_thread(t);
    }
    if (!proc_rec(g)) {
      sync_pid(g, 1);  // adds the process with the threads it has now
      if (live_in_engine(t) || !proc_rec(g)) return;
    }
    add_thread(g, t, st ? st->start : 0);
    if (!st || st->dead()) pending.insert(t);
  }

  // Exec: sent after de_thread, naming the process only. The exec'ing thread
  // is taken to be the leader if the mirror still runs it, else the first
  // live thread (user space cannot tell which thread exec'd; it matters only
  // when threads of one process sit in different v1 cgroups). The threads
  // are then matched to /proc, so exit events of the zapped threads that
  // arrive later find nothing, and threads the new program started are kept.
  void on_exec(Pid g) CG_REQUIRES(sync_mu) {
    std::optional<ProcRec> prec = proc_rec(g);
    std::optional<ProcSnap> p = proc.process(g);
    if (!prec || !p || p->start != prec->start) {  // unknown, gone, or recycled
      sync_pid(g, 0);
      return;
    }
    std::vector<Pid> live = live_threads(g);
    if (live.empty()) {
      sync_pid(g, 0);
      return;
    }
    exec_as(g, contains(live, g) ? g : live.front(), p->start);
    sync_threads(*p);
    refresh_creds(g, p->creds);
  }

  // Exit: applied only if /proc agrees the task is dead (a zombie, gone, or
  // its id now someone else's). Sent after exit_notify, so a real exit always
  // passes; one that does not is the old leader's exit reported under the
  // process id after a non-leader's exec (the exec'ing thread took the id
  // and the leader's start time): checked again later, not applied.
  void on_exit(Pid tid) CG_REQUIRES(sync_mu) {
    std::optional<TaskRec> rec = task_rec(tid);
    if (!rec) return;
    std::optional<ThreadStat> st = proc.stat(tid);
    if (!st || st->dead() || st->start != rec->start) drop_thread(tid);
    else pending.insert(tid);
  }

  // A process added as a fork lands in its parent's cgroups: if cgroup.kill
  // hit the parent, the child is killed too (the kernel's cgroup.kill leaves
  // no process forked meanwhile); if the cgroup is frozen, it is stopped.
  void after_fork(Pid child, Pid parent_tgid, uint64_t start) CG_REQUIRES(sync_mu) {
    if (!effects) return;
    bool parent_killed;
    {
      MutexLock l(state_mu);
      parent_killed = killed.count(parent_tgid) > 0;
      if (parent_killed) killed.insert(child);
    }
    if (parent_killed) {
      (void)signal_process(child, start, SIGKILL);
      return;
    }
    if (!freeze_active.load()) return;
    Result<CgroupPtr> cg = engine.task_cgroup(child, engine.default_hierarchy());
    if (!cg.ok()) return;
    MutexLock l(engine.cgroup_mutex());
    if (engine.frozen_locked(**cg)) stop_process(child);
  }

  // ================================================================ effects

  // Sends `sig` to process `tgid` if it is still the process the mirror
  // knows (same start time). Through a pidfd: the pidfd is taken first, then
  // /proc is checked, so a pid recycled in between fails the check instead
  // of receiving the signal.
  bool signal_process(Pid tgid, uint64_t start, int sig) {
    if (!effects || tgid == self) return false;
    int pfd = static_cast<int>(::syscall(SYS_pidfd_open, tgid, 0));
    if (pfd < 0 && errno != ENOSYS) return false;  // gone
    std::optional<ThreadStat> st = proc.stat(tgid);
    bool ok = st && st->start == start && !st->dead() && !st->kthread();
    if (ok) {
      ok = pfd >= 0 ? ::syscall(SYS_pidfd_send_signal, pfd, sig, nullptr, 0) == 0 : ::kill(tgid, sig) == 0;
      if (ok) ++signals;
    }
    if (pfd >= 0) ::close(pfd);
    return ok;
  }

  // cpuset's affinity sink. Runs under the controller's callback lock (and
  // often the cgroup mutex): reads /proc and makes one system call, never
  // calls the engine. There is no pidfd for sched_setaffinity on a thread,
  // so the start-time check and the call are two steps (a thread id would
  // have to be recycled between them).
  void on_affinity(Pid tid, const CpuSet& cpus) {
    if (!effects || cpus.empty()) return;
    std::optional<TaskRec> rec = task_rec(tid);
    if (!rec) return;
    std::optional<ThreadStat> st = proc.stat(tid);
    if (!st || st->dead() || st->kthread() || st->start != rec->start) return;
    const size_t ncpu = std::max<size_t>(cpus.end(), 1);
    cpu_set_t* set = CPU_ALLOC(ncpu);
    const size_t size = CPU_ALLOC_SIZE(ncpu);
    CPU_ZERO_S(size, set);
    cpus.for_each([&](uint32_t c) { CPU_SET_S(c, size, set); });
    bool apply = true;
    if (t_creating) {
      // A fork: the kernel gave the child its parent's mask, which the
      // kernel's cpuset keeps on fork. Replace it only if it strays outside
      // the cpuset (the parent was moved and not re-pinned yet).
      constexpr size_t kMax = 8192;
      cpu_set_t* cur = CPU_ALLOC(kMax);
      const size_t cur_size = CPU_ALLOC_SIZE(kMax);
      CPU_ZERO_S(cur_size, cur);
      if (::sched_getaffinity(tid, cur_size, cur) == 0) {
        apply = false;
        for (size_t c = 0; c < kMax && !apply; ++c)
          if (CPU_ISSET_S(c, cur_size, cur) && !cpus.test(static_cast<uint32_t>(c))) apply = true;
      }
      CPU_FREE(cur);
    }
    if (apply) {
      ++affinity_set;
      // ESRCH: the thread exited meanwhile (its exit event follows).
      if (::sched_setaffinity(tid, size, set) != 0 && errno != ESRCH) {
        const int err = errno;
        const int64_t n = ++affinity_errors;
        if (worth_logging(n))
          log("sched_setaffinity(" + std::to_string(tid) + ", " + cpus.to_string() + "): " + std::strerror(err));
      }
    }
    CPU_FREE(set);
  }

  // fs kill sink (cgroup.kill), called without engine locks.
  void on_kill(Pid tgid) {
    if (!effects) {
      log("cgroup.kill: effects are off; " + std::to_string(tgid) + " not signalled");
      return;
    }
    if (tgid == self) {
      log("cgroup.kill: not killing cgcore's own process " + std::to_string(tgid));
      return;
    }
    std::optional<ProcRec> rec;
    {
      MutexLock l(state_mu);
      auto it = procs.find(tgid);
      if (it == procs.end()) return;
      rec = it->second;
      killed.insert(tgid);
    }
    if (!rec->kthread) (void)signal_process(tgid, rec->start, SIGKILL);
  }

  // Freezer: stops a process of a frozen cgroup, unless it is stopped
  // already by someone else (job control), whose stop is theirs to end.
  // One the freezer stopped that runs again (someone sent SIGCONT) is
  // stopped again. Called with the cgroup mutex held (observer, reconcile).
  void stop_process(Pid g) {
    if (g == self) {
      if (!warned_self_freeze.exchange(true)) log("cgroup.freeze: not stopping cgcore's own process");
      return;
    }
    std::optional<ProcRec> rec;
    bool ours;
    {
      MutexLock l(state_mu);
      auto it = procs.find(g);
      if (it == procs.end()) return;
      rec = it->second;
      ours = frozen.count(g) > 0;
    }
    if (rec->kthread) return;
    std::optional<ThreadStat> st = proc.stat(g);
    if (!st || st->dead() || st->start != rec->start || st->stopped()) return;
    if (!signal_process(g, rec->start, SIGSTOP)) return;
    if (!ours) {
      MutexLock l(state_mu);
      if (procs.count(g)) frozen.insert(g);
    }
  }
  void continue_process(Pid g) {
    std::optional<ProcRec> rec;
    {
      MutexLock l(state_mu);
      if (!frozen.erase(g)) return;
      auto it = procs.find(g);
      if (it == procs.end()) return;
      rec = it->second;
    }
    (void)signal_process(g, rec->start, SIGCONT);
  }

  // EngineObserver. Called with the cgroup mutex held, for each cgroup whose
  // effective freeze state changed; the css_set lock comes after the cgroup
  // mutex, so listing the cgroup's processes here keeps the lock order.
  void frozen_changed(Cgroup& cgroup, bool now_frozen) override {
    if (!effects || !installed.load()) return;
    if (&cgroup.hierarchy() != &engine.default_hierarchy()) return;
    if (now_frozen) freeze_active.store(true);
    for (Pid g : sorted_unique(engine.cgroup_tgids(cgroup))) {
      if (now_frozen) stop_process(g);
      else continue_process(g);
    }
  }

  // The periodic freezer pass: every process of an effectively frozen
  // cgroup is stopped (those forked or migrated in since), every process the
  // freezer stopped that is no longer in one continues (migrated out).
  void reconcile_freezer() {
    if (!effects || !freeze_active.load()) return;
    MutexLock l(engine.cgroup_mutex());
    std::vector<Pid> want;
    bool any_frozen = false;
    std::vector<std::pair<Cgroup*, bool>> stack{{&engine.default_hierarchy().root(), false}};
    while (!stack.empty()) {
      auto [c, parent_frozen] = stack.back();
      stack.pop_back();
      const bool fz = parent_frozen || c->self_freeze();
      if (fz) {
        any_frozen = true;
        std::vector<Pid> t = engine.cgroup_tgids(*c);
        want.insert(want.end(), t.begin(), t.end());
      }
      for (const auto& [name, child] : c->children()) stack.emplace_back(child, fz);
    }
    want = sorted_unique(std::move(want));
    for (Pid g : want) stop_process(g);
    std::vector<Pid> ours;
    {
      MutexLock s(state_mu);
      ours.assign(frozen.begin(), frozen.end());
    }
    for (Pid g : ours)
      if (!std::binary_search(want.begin(), want.end(), g)) continue_process(g);
    // Off until the observer sees the next freeze. A frozen cgroup, even an
    // empty one, keeps the pass on: processes may be moved in.
    if (!any_frozen) freeze_active.store(false);
  }

  // Memory usage: each process's address space is charged (memory) its
  // RssAnon and sized (memrlimit) to its VmSize, by the difference since
  // the last pass. A limit that refuses a charge is counted (failcnt,
  // memory.events max) and nothing else happens: the memory is in use
  // regardless, and usage stays below the truth until it fits.
  void sync_memory() CG_REQUIRES(sync_mu) {
    if (!memory && !memrlimit) return;
    std::vector<Pid> list;
    {
      MutexLock l(state_mu);
      for (const auto& [g, rec] : procs)
        if (!rec.kthread) list.push_back(g);
    }
    for (Pid g : list) {
      std::optional<ProcStatus> st = proc.status(g);
      if (!st || st->tgid != g) continue;
      std::optional<Pid> t = live_thread_of(g);
      if (!t) continue;
      int64_t charged, vm;
      {
        Result<MmRef> mm = engine.mm_of(*t);
        if (!mm.ok()) continue;
        charged = mm.value()->charged.load();
        vm = mm.value()->total_vm.load();
      }
      if (memory && st->rss_anon >= 0) {
        const int64_t d = st->rss_anon - charged;
        Status s = d > 0 ? memory->charge(engine, *t, d) : d < 0 ? memory->uncharge(engine, *t, -d) : Status::Ok();
        if (!s.ok() && s.err() == ENOMEM) ++memory_refused;
      }
      if (memrlimit && st->vm_size >= 0) {
        const int64_t d = st->vm_size - vm;
        Status s = d > 0 ? memrlimit->mmap(engine, *t, d) : d < 0 ? memrlimit->munmap(engine, *t, -d) : Status::Ok();
        if (!s.ok() && s.err() == ENOMEM) ++memory_refused;
      }
    }
  }

  // ================================================================ lifecycle

  void install() {
    if (fs) {
      fs->set_pid_resolver([this](Pid pid) { return ensure_pid(pid); });
      fs->set_kill_sink([this](Pid pid) { on_kill(pid); });
    }
    if (cpuset)
      cpuset->set_affinity_sink(
          [this](Pid tid, const CpuSet& cpus, const CpuSet&) { on_affinity(tid, cpus); });
    engine.add_observer(this);
    installed.store(true);
  }
  void uninstall() {
    installed.store(false);
    engine.remove_observer(this);
    if (cpuset) cpuset->set_affinity_sink({});
    if (fs) {
      fs->set_pid_resolver({});
      fs->set_kill_sink({});
    }
  }

  Status start() {
    if (thread.joinable()) return Status::Ok();
    if (!proc.pids()) return Status::Error(EIO, "cannot read " + proc.root());
    // Subscribe first, then scan: whatever changes during the scan is still
    // queued as an event, and applying it again is harmless.
    std::string why;
    if (!opts.use_connector) {
      why = "the connector is disabled";
    } else if (!proc.is_host()) {
      why = proc.root() + " is not the host's /proc";
    } else if (!in_initial_pid_namespace()) {
      why = "this process is in a child pid namespace (the connector reports the initial namespace's ids)";
    } else {
      Result<std::unique_ptr<Connector>> c = Connector::open(opts.rcvbuf_bytes);
      if (c.ok()) {
        conn = std::move(c.value());
      } else {
        why = "the process-events connector is unavailable: " + c.status().message();
        if ((c.err() == EPERM || c.err() == EACCES) && c.status().message().find("CAP_NET_ADMIN") == std::string::npos)
          why += " (it needs CAP_NET_ADMIN)";
      }
    }
    owner.using_connector_.store(conn != nullptr);
    {
      MutexLock l(sync_mu);
      if (!resync_locked(/*initial=*/true)) {
        conn.reset();
        owner.using_connector_.store(false);
        return Status::Error(EIO, "cannot read " + proc.root());
      }
    }
    size_t nprocs, ntasks;
    {
      MutexLock l(state_mu);
      nprocs = procs.size();
      ntasks = tasks.size();
    }
    if (conn)
      log("following " + std::to_string(nprocs) + " processes (" + std::to_string(ntasks) +
          " threads) through the process-events connector");
    else
      log(why + ": following " + std::to_string(nprocs) + " processes (" + std::to_string(ntasks) +
          " threads) by rescanning " + proc.root() + " every " + std::to_string(tick_ms()) +
          " ms; a pid written to cgroup.procs is looked up at once");
    if (!effects) log("effects are off: no signal or affinity reaches a process");
    install();
    stopping.store(false);
    wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    thread = std::thread([this] { loop(); });
    return Status::Ok();
  }

  void stop() {
    if (!thread.joinable()) return;
    stopping.store(true);
    wake();
    thread.join();
    uninstall();
    conn.reset();
    if (wake_fd >= 0) ::close(wake_fd);
    wake_fd = -1;
    owner.using_connector_.store(false);
    // Nothing would ever continue the processes the freezer stopped.
    std::vector<Pid> ours;
    {
      MutexLock l(state_mu);
      ours.assign(frozen.begin(), frozen.end());
    }
    for (Pid g : ours) continue_process(g);
  }

  void wake() {
    if (wake_fd < 0) return;
    uint64_t one = 1;
    (void)!::write(wake_fd, &one, sizeof one);
  }

  int tick_ms() const { return std::max(10, opts.rescan_ms); }

  // The background thread: events as they come; every tick the pending
  // checks, the fallback rescan and the freezer pass; memory on its own
  // period.
  void loop() {
    using Clock = std::chrono::steady_clock;
    const auto tick = std::chrono::milliseconds(tick_ms());
    const auto mem_period = std::chrono::milliseconds(std::max(0, opts.memory_sync_ms));
    auto next_tick = Clock::now() + tick;
    auto next_mem = Clock::now() + mem_period;
    std::vector<ProcEvent> events;
    while (!stopping.load()) {
      auto now = Clock::now();
      auto until = next_tick;
      if (mem_period.count() > 0) until = std::min(until, next_mem);
      const int timeout = static_cast<int>(
          std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count() + 1));
      const bool reading = conn && !paused.load();
      pollfd fds[2] = {{wake_fd, POLLIN, 0}, {reading ? conn->fd() : -1, POLLIN, 0}};
      (void)::poll(fds, 2, timeout);
      if (stopping.load()) break;
      if (fds[0].revents & POLLIN) {
        uint64_t v;
        (void)!::read(wake_fd, &v, sizeof v);
      }
      if (reading && (fds[1].revents & (POLLIN | POLLERR))) drain();
      now = Clock::now();
      if (now >= next_tick) {
        next_tick = now + tick;
        {
          MutexLock l(sync_mu);
          if (!conn) {
            resync_locked(false);
            owner.resyncs_.fetch_add(1);
            // On a large host a scan takes a while (some 25 us a process):
            // spend at most a fifth of the time scanning.
            const auto took = Clock::now() - now;
            next_tick = std::max(next_tick, now + 5 * took);
          }
          std::set<Pid> recheck;
          recheck.swap(pending);
          for (Pid id : recheck) sync_pid(id, 0);
        }
        reconcile_freezer();
      }
      if (mem_period.count() > 0 && now >= next_mem) {
        next_mem = now + mem_period;
        MutexLock l(sync_mu);
        sync_memory();
      }
    }
  }

  void drain() {
    std::vector<ProcEvent> events;
    for (int round = 0; round < 64 && !stopping.load() && !paused.load(); ++round) {
      events.clear();
      const Connector::Read r = conn->read(events);
      if (r == Connector::Read::kOverflow) {
        const int64_t n = ++overflows;
        if (worth_logging(n)) log("process events were lost (socket buffer full): resynchronising from /proc");
        MutexLock l(sync_mu);
        resync_locked(false);
        owner.resyncs_.fetch_add(1);
        continue;
      }
      if (r == Connector::Read::kError) {
        log(std::string("reading the process-events connector failed: ") + std::strerror(errno) +
            "; falling back to rescanning /proc");
        conn.reset();
        owner.using_connector_.store(false);
        return;
      }
      if (events.empty()) return;
      {
        MutexLock l(sync_mu);
        for (const ProcEvent& ev : events) apply(ev);
      }
      owner.events_seen_.fetch_add(static_cast<int64_t>(events.size()));
    }
  }

  bool ensure_pid(Pid pid) {
    MutexLock l(sync_mu);
    return sync_pid(pid, 0) && engine.tgid_of(pid).ok();
  }

  void resync() {
    MutexLock l(sync_mu);
    resync_locked(false);
    owner.resyncs_.fetch_add(1);
  }

  // ---- Constant after construction
  HostTracker& owner;
  Engine& engine;
  fs::CgroupFs* const fs;
  HostOptions opts;
  const ProcFs proc;
  const bool effects;  // real /proc and opts.apply_effects
  const Pid self;      // this process: never stopped or killed
  CpusetController* cpuset = nullptr;
  MemoryController* memory = nullptr;
  MemrlimitController* memrlimit = nullptr;

  // ---- Owned by start()/stop() and the background thread (which alone
  // uses conn while it runs)
  std::thread thread;
  std::unique_ptr<Connector> conn;
  int wake_fd = -1;
  std::atomic<bool> stopping{false};
  std::atomic<bool> paused{false};
  std::atomic<bool> installed{false};
  // Whether the freezer pass has anything to do (a freeze was seen and not
  // every frozen cgroup was thawed since).
  std::atomic<bool> freeze_active{false};
  std::atomic<bool> warned_self_freeze{false};

  // ---- Guarded by sync_mu: serialises every change of the mirror (events,
  // rescans, ensure_pid, memory passes). Taken before any engine lock.
  Mutex sync_mu;
  uint64_t epoch_ns CG_GUARDED_BY(sync_mu) = 0;  // events older than this: seen by the last scan
  std::set<Pid> pending CG_GUARDED_BY(sync_mu);  // ids to match against /proc at the next tick

  // ---- Guarded by state_mu: a leaf (the sinks and the observer take it
  // under engine locks; nothing is called with it held).
  Mutex state_mu CG_ACQUIRED_AFTER(sync_mu);
  std::unordered_map<Pid, TaskRec> tasks CG_GUARDED_BY(state_mu);  // live threads of the mirror
  std::unordered_map<Pid, ProcRec> procs CG_GUARDED_BY(state_mu);  // its processes
  std::set<Pid> frozen CG_GUARDED_BY(state_mu);  // stopped by the freezer
  std::set<Pid> killed CG_GUARDED_BY(state_mu);  // sent SIGKILL by cgroup.kill

  // ---- Counters
  std::atomic<int64_t> overflows{0}, stale_events{0}, affinity_set{0}, affinity_errors{0}, signals{0},
      forks_over_limit{0}, threads_refused{0}, memory_refused{0};
};

HostTracker::HostTracker(Engine& engine, fs::CgroupFs* fs, HostOptions options)
    : impl_(std::make_unique<Impl>(*this, engine, fs, std::move(options))) {}

HostTracker::~HostTracker() { stop(); }

Status HostTracker::start() { return impl_->start(); }
void HostTracker::stop() { impl_->stop(); }
bool HostTracker::ensure_pid(Pid pid) { return impl_->ensure_pid(pid); }
void HostTracker::resync() { impl_->resync(); }

HostTracker::Stats HostTracker::stats() const {
  Stats s;
  s.overflows = impl_->overflows.load();
  s.stale_events = impl_->stale_events.load();
  s.affinity_set = impl_->affinity_set.load();
  s.affinity_errors = impl_->affinity_errors.load();
  s.signals = impl_->signals.load();
  s.forks_over_limit = impl_->forks_over_limit.load();
  s.threads_refused = impl_->threads_refused.load();
  s.memory_refused = impl_->memory_refused.load();
  return s;
}

void HostTracker::TEST_pause_events(bool paused) {
  impl_->paused.store(paused);
  impl_->wake();
}

}  // namespace cgcore::host
