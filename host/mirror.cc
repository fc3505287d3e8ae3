// The mirror's rules are in docs/host.md; each function's comment says
// which rule it implements.
#include "host/mirror.h"

#include <algorithm>
#include <cerrno>


namespace cgcore::host {

namespace {

// How far sync_pid follows unknown parents (a cycle can only come from a
// fabricated or torn /proc view; the bound also keeps the stack small).
constexpr int kMaxDepth = 64;

bool contains(const std::vector<Pid>& v, Pid p) { return std::find(v.begin(), v.end(), p) != v.end(); }

// Whether /proc's task started after the event was sent: the event's task
// is gone and its id was recycled.
bool younger_than(const ThreadStat& st, uint64_t ts) {
  return start_to_event_clock_ns(st.start) > ts + tick_ns();
}

}  // namespace

Mirror::Mirror(Engine& engine, const ProcFs& proc, ProcessRecords& records, Effects& effects, LogFn log)
    : engine_(engine), proc_(proc), records_(records), effects_(effects), log_(std::move(log)) {}

bool Mirror::resync(bool initial) {
  MutexLock l(sync_mu_);
  const bool ok = resync_locked(initial);
  effects_.apply();
  return ok;
}

bool Mirror::ensure_pid(Pid pid) {
  MutexLock l(sync_mu_);
  const bool ok = sync_pid(pid, 0) && engine_.tgid_of(pid).ok();
  effects_.apply();
  return ok;
}

void Mirror::add_new_threads(Pid tgid) {
  std::vector<Pid> listed = proc_.tids(tgid);
  std::vector<Pid> live = live_threads(tgid);
  std::erase_if(listed, [&](Pid t) { return contains(live, t); });
  if (listed.empty()) return;
  MutexLock l(sync_mu_);
  std::optional<ProcessRecord> prec = records_.process(tgid);
  std::optional<ThreadStat> pst = proc_.stat(tgid);
  if (!prec || !pst || pst->start != prec->start) return;  // unknown, or the id was recycled
  for (Pid t : listed) {
    if (live_in_engine(t)) continue;  // added meanwhile (an event)
    std::optional<ThreadStat> st = proc_.thread_stat(tgid, t);
    if (!st || st->dead()) continue;
    if (records_.task(t)) drop_thread(t);  // a stale record of a recycled id
    add_thread(tgid, t, st->start);
  }
  effects_.apply();
}

void Mirror::recheck_tasks(std::span<const Pid> tids) {
  std::vector<Pid> ids(tids.begin(), tids.end());
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  if (ids.size() > kMaxRecheck) ids.resize(kMaxRecheck);  // bounded /proc reads per request
  MutexLock l(sync_mu_);
  for (Pid t : ids)
    if (!is_provisional_id(t) && records_.task(t)) sync_pid(t, 0);
  effects_.apply();
}

void Mirror::apply(std::span<const ProcEvent> events) {
  MutexLock l(sync_mu_);
  for (const ProcEvent& ev : events) apply_one(ev);
  effects_.apply();
}

void Mirror::recheck_pending() {
  MutexLock l(sync_mu_);
  std::set<Pid> recheck;
  recheck.swap(pending_);
  for (Pid id : recheck) sync_pid(id, 0);
  effects_.apply();
}

void Mirror::serialized(const std::function<void()>& fn) {
  MutexLock l(sync_mu_);
  fn();
}


// ================================================================ engine views

bool Mirror::live_in_engine(Pid tid) {
  Result<std::vector<Pid>> t = engine_.threads_of(tid);
  return t.ok() && contains(*t, tid);
}
// The engine's threads of a process that /proc can know: a provisional
// thread (a reserved clone whose thread has not appeared yet) is never in a
// snapshot, and treating it as stale would give its charge back while the
// clone is still being made.
std::vector<Pid> Mirror::live_threads(Pid tgid) {
  Result<std::vector<Pid>> t = engine_.threads_of(tgid);
  if (!t.ok()) return {};
  std::erase_if(t.value(), [](Pid id) { return is_provisional_id(id); });
  return std::move(t.value());
}
// A live thread of a process the mirror knows (its leader if alive).
std::optional<Pid> Mirror::live_thread_of(Pid tgid) {
  if (!records_.process(tgid)) return std::nullopt;
  std::vector<Pid> t = live_threads(tgid);
  if (t.empty()) return std::nullopt;
  return t.front();
}

// ================================================================ changes
// All under sync_mu_, which serialises them; engine calls are made with it
// held (the records' lock is a leaf, never held across them).

// The process ended in the engine (its last thread exited): forget it.
void Mirror::settle(Pid tgid) {
  if (live_threads(tgid).empty()) records_.forget_process(tgid);
}

void Mirror::drop_thread(Pid tid) {
  std::optional<TaskRecord> rec = records_.task(tid);
  (void)engine_.exit_thread(tid);
  records_.forget_task(tid);
  if (rec) settle(rec->tgid);
}

void Mirror::drop_process(Pid tgid) {
  std::vector<Pid> threads = live_threads(tgid);
  (void)engine_.exit_process(tgid);
  records_.forget_tasks(threads);
  records_.forget_task(tgid);
  records_.forget_process(tgid);
}

// A process the engine refused to fork (a controller's can_fork: pids or
// numtasks at their limit, memrlimit over its limit) has been forked by the
// kernel all the same. It is spawned in the roots and migrated to the
// parent's cgroups, hierarchy by hierarchy, as the kernel's migration
// would charge it (pids may exceed pids.max, as after a migration);
// where a controller vetoes that too, it stays in that hierarchy's root.
Result<Pid> Mirror::fork_from(Pid parent, Pid child, const Creds& creds) {
  if (Result<Pid> pt = engine_.tgid_of(parent); pt.ok() && take_reservation(*pt, false, child, &creds))
    return child;
  Result<Pid> r = engine_.fork(parent, ForkOptions{.pid = child, .creds = creds});
  if (r.ok() || r.err() == ESRCH || r.err() == EEXIST || r.err() == EINVAL) return r;
  const int64_t n = ++forks_over_limit_;
  Result<Pid> s = engine_.spawn(SpawnOptions{.pid = child, .creds = creds});
  if (!s.ok()) return s;
  std::string stuck;
  for (Hierarchy* h : engine_.hierarchies()) {
    Result<CgroupPtr> cg = engine_.task_cgroup(parent, *h);
    if (!cg.ok() || (*cg)->is_root()) continue;
    if (Status m = engine_.migrate_process(child, **cg); !m.ok()) {
      MutexLock l(engine_.cgroup_mutex());  // Cgroup::path() reads the tree
      stuck += " " + (*cg)->path() + " (" + errno_name(m.err()) + ")";
    }
  }
  if (worth_logging(n))
    log_("fork of " + std::to_string(child) + " from " + std::to_string(parent) + " refused (" +
        r.status().message() + "), but the kernel forked it: added to its parent's cgroups by migration" +
        (stuck.empty() ? "" : "; left in the root instead of" + stuck));
  return s;
}

// Adds a process (one thread per live thread of `p`) as a fork of engine
// thread `parent` if given, else spawned in the root cgroups.
bool Mirror::add_process(const ProcSnap& p, std::optional<Pid> parent) {
  records_.note_process(p.tgid, p.start, p.flags & kPfKthread, proc_.pidfs_ino(p.tgid));
  records_.note_task(p.tgid, p.tgid, p.start);  // before the engine call: its affinity effect looks
  Result<Pid> r = Status::Error(ESRCH, "");
  if (parent) {
    r = fork_from(*parent, p.tgid, p.creds);
  } else {
    r = engine_.spawn(SpawnOptions{.pid = p.tgid, .creds = p.creds});
  }
  if (!r.ok()) {
    records_.forget_task(p.tgid);
    records_.forget_process(p.tgid);
    log_("cannot add process " + std::to_string(p.tgid) + ": " + r.status().message());
    return false;
  }
  for (const auto& [tid, start] : p.threads)
    if (tid != p.tgid) add_thread(p.tgid, tid, start);
  if (p.leader_dead) drop_thread(p.tgid);  // a zombie leader whose threads run on
  if (!records_.process(p.tgid)) return false;
  if (parent)
    if (std::optional<TaskRecord> pr = records_.task(*parent)) effects_.after_fork(p.tgid, pr->tgid, p.start);
  return true;
}

// Adds a thread to a process the mirror knows. The creating thread is not
// known (the connector names the creator's parent), so it is cloned from
// the leader, or another live thread — the same cgroups unless threads of
// the process were moved apart (v1 tasks files).
bool Mirror::add_thread(Pid tgid, Pid tid, uint64_t start) {
  std::optional<Pid> creator = live_thread_of(tgid);
  if (!creator) return false;
  records_.note_task(tid, tgid, start);
  if (take_reservation(tgid, true, tid, nullptr)) return true;
  Result<Pid> r = engine_.clone_thread(*creator, tid);
  if (r.ok()) return true;
  records_.forget_task(tid);
  if (r.err() == EEXIST || r.err() == ESRCH || r.err() == EINVAL) {
    log_("cannot add thread " + std::to_string(tid) + " of " + std::to_string(tgid) + ": " +
        r.status().message());
    return false;
  }
  // A controller refused it (pids.max). The engine has no way to record a
  // thread over a limit; retry until the limit allows it.
  const int64_t n = ++threads_refused_;
  if (worth_logging(n))
    log_("thread " + std::to_string(tid) + " of " + std::to_string(tgid) + " refused (" +
        r.status().message() + "); the kernel created it: retrying");
  pending_.insert(tid);
  return false;
}

// The engine's process `tgid` execs with thread `x`: x takes the process
// id, the other threads exit, the address space is new.
void Mirror::exec_as(Pid tgid, Pid x, uint64_t start) {
  std::vector<Pid> threads = live_threads(tgid);
  if (Status s = engine_.exec(x); !s.ok()) {
    log_("exec of " + std::to_string(tgid) + ": " + s.message());
    return;
  }
  records_.replace_threads(threads, tgid, start);
}

void Mirror::refresh_creds(Pid tgid, const Creds& creds) {
  Result<Creds> cur = engine_.creds(tgid);
  if (cur.ok() && !(*cur == creds)) (void)engine_.set_creds(tgid, creds);
}

// Makes the engine's threads of a known process match `p` (same process:
// same id and start time).
void Mirror::sync_threads(const ProcSnap& p) {
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
    std::optional<TaskRecord> rec = records_.task(tid);
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
    if (contains(stale, t) && records_.process(g)) add_thread(g, t, s);
}

// Makes the engine's view of id `id` (a process or a thread) match /proc:
// drops the engine's task if it is gone or its id was recycled (start
// times differ), and adds what runs — a thread under its process, a
// process as a fork of its parent (added first if unknown, up to
// kMaxDepth ancestors) or, without one, spawned in the roots. True if the
// engine has `id` afterwards (a live thread, or a process).
bool Mirror::sync_pid(Pid id, int depth) {
  if (id <= 0) return false;
  std::optional<ThreadStat> st = proc_.stat(id);
  std::optional<ProcStatus> status = st ? proc_.status(id) : std::nullopt;
  if (!status) st.reset();
  const Pid tgid = status ? status->tgid : 0;
  if (std::optional<ProcessRecord> prec = records_.process(id);
      prec && (!st || tgid != id || st->start != prec->start || !same_pidfs(id)))
    drop_process(id);
  if (std::optional<TaskRecord> rec = records_.task(id);
      rec && (!st || st->dead() || st->start != rec->start || tgid != rec->tgid))
    drop_thread(id);
  if (!st) return false;
  if (tgid != id) {  // a thread: its process first
    if (st->dead()) return false;
    if (!records_.process(tgid)) {
      if (depth >= kMaxDepth) return false;
      sync_pid(tgid, depth + 1);
    }
    if (!live_in_engine(id) && records_.process(tgid)) add_thread(tgid, id, st->start);
    return live_in_engine(id);
  }
  std::optional<ProcSnap> p = proc_.process(id);
  if (!p) {  // every thread has exited: a zombie waiting for its parent
    if (records_.process(id)) drop_process(id);
    return false;
  }
  if (records_.process(id)) {
    sync_threads(*p);
    return records_.process(id).has_value();
  }
  std::optional<Pid> parent;
  if (p->ppid > 0 && depth < kMaxDepth) {
    if (!records_.process(p->ppid)) sync_pid(p->ppid, depth + 1);
    parent = live_thread_of(p->ppid);
  }
  return add_process(*p, parent);
}

// Adds a snapshot's process not yet mirrored, its unknown ancestors first
// (initial: everything is spawned in the roots).
void Mirror::add_from_snapshot(Pid g, const Snapshot& snap, bool initial, int depth) {
  if (records_.process(g)) return;
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

std::optional<Mirror::Snapshot> Mirror::take_snapshot() {
  std::optional<std::vector<Pid>> pids = proc_.pids();
  if (!pids) return std::nullopt;
  Snapshot snap;
  for (Pid p : *pids)
    if (std::optional<ProcSnap> s = proc_.process(p)) snap.emplace(p, std::move(*s));
  return snap;
}

// The resynchronisation: the mirror becomes the snapshot. Processes gone
// or recycled (start time differs) exit; threads are matched the same
// way; new processes are added as forks of their parents (initial: spawned
// in the roots). Events stamped before the scan began describe changes the
// scan saw, and are skipped from now on (epoch_ns_).
bool Mirror::resync_locked(bool initial) {
  const uint64_t epoch = event_clock_ns();
  std::optional<Snapshot> snap = take_snapshot();
  if (!snap) {
    log_("cannot read " + proc_.root());
    return false;
  }
  epoch_ns_ = epoch;
  const std::vector<std::pair<Pid, ProcessRecord>> known = records_.processes();
  for (const auto& [g, rec] : known) {
    auto it = snap->find(g);
    if (it != snap->end() && it->second.start == rec.start && same_pidfs(g)) {
      sync_threads(it->second);
      continue;
    }
    // Missing from the scan: read it once more before it goes, since a
    // process whose entries could not be read as the scan passed (in the
    // middle of an exec, say) is not gone, and dropping it would re-add it
    // later as a fork of its parent, out of the cgroups it was moved to.
    if (it == snap->end())
      if (std::optional<ProcSnap> again = proc_.process(g); again && again->start == rec.start && same_pidfs(g)) {
        sync_threads(*again);
        continue;
      }
    drop_process(g);
  }
  for (const auto& [g, p] : *snap) add_from_snapshot(g, *snap, initial, 0);
  for (const auto& [g, p] : *snap)
    if (records_.process(g)) refresh_creds(g, p.creds);
  return true;
}

// ================================================================ events

void Mirror::apply_one(const ProcEvent& ev) {
  if (ev.ts < epoch_ns_) {  // the last scan saw its effect
    ++stale_events_;
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
      if (records_.process(ev.tgid))
        if (std::optional<ProcStatus> s = proc_.status(ev.tgid); s && s->tgid == ev.tgid)
          refresh_creds(ev.tgid, s->creds);
      break;
    case ProcEvent::kOther:
      break;
  }
}

// A new process: a fork of the parent thread the event names.
void Mirror::on_fork(const ProcEvent& ev) {
  const Pid c = ev.pid;
  std::optional<ThreadStat> st = proc_.stat(c);
  std::optional<ProcStatus> status = st ? proc_.status(c) : std::nullopt;
  if (st && younger_than(*st, ev.ts)) {
    // The child has gone and its id serves a newer task, whose own event
    // follows; make the mirror match /proc for this id now.
    pending_.insert(c);
    return;
  }
  if (std::optional<ProcessRecord> prec = records_.process(c)) {
    if (st && prec->start == st->start && same_pidfs(c)) return;  // added already (scan, ensure_pid)
    drop_process(c);                             // a stale record of a recycled id
  }
  if (records_.task(c)) drop_thread(c);
  // The forking thread: the event's parent if the mirror has it in that
  // process, else the parent process's leader (or any live thread).
  std::optional<Pid> parent;
  if (std::optional<TaskRecord> r = records_.task(ev.parent_pid); r && r->tgid == ev.parent_tgid &&
                                                          live_in_engine(ev.parent_pid))
    parent = ev.parent_pid;
  if (!parent) {
    if (!records_.process(ev.parent_tgid)) sync_pid(ev.parent_tgid, 1);
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
    if (Result<Creds> pc = engine_.creds(*parent); pc.ok()) p.creds = *pc;
  }
  p.threads.emplace_back(c, p.start);
  if (!add_process(p, parent)) return;
  // Gone already (its exit event follows) or never seen: check again at
  // the next tick, after events queued behind this one (its children's
  // forks) found it.
  if (!st || st->dead()) pending_.insert(c);
}

// A new thread of process ev.tgid.
void Mirror::on_clone(const ProcEvent& ev) {
  const Pid t = ev.pid, g = ev.tgid;
  std::optional<ThreadStat> st = proc_.thread_stat(g, t);
  if (st && younger_than(*st, ev.ts)) {
    pending_.insert(t);
    return;
  }
  if (std::optional<TaskRecord> rec = records_.task(t)) {
    if (st && rec->tgid == g && rec->start == st->start) return;
    drop_thread(t);
  }
  if (!records_.process(g)) {
    sync_pid(g, 1);  // adds the process with the threads it has now
    if (live_in_engine(t) || !records_.process(g)) return;
  }
  add_thread(g, t, st ? st->start : 0);
  if (!st || st->dead()) pending_.insert(t);
}

// Exec: sent after de_thread, naming the process only. The exec'ing thread
// is taken to be the leader if the mirror still runs it, else the first
// live thread (user space cannot tell which thread exec'd; it matters only
// when threads of one process sit in different v1 cgroups). The threads
// are then matched to /proc, so exit events of the zapped threads that
// arrive later find nothing, and threads the new program started are kept.
void Mirror::on_exec(Pid g) {
  std::optional<ProcessRecord> prec = records_.process(g);
  std::optional<ProcSnap> p = proc_.process(g);
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
void Mirror::on_exit(Pid tid) {
  std::optional<TaskRecord> rec = records_.task(tid);
  if (!rec) return;
  std::optional<ThreadStat> st = proc_.stat(tid);
  if (!st || st->dead() || st->start != rec->start || (tid == rec->tgid && !same_pidfs(tid))) drop_thread(tid);
  else pending_.insert(tid);
}

bool Mirror::same_pidfs(Pid tgid) const {
  std::optional<ProcessRecord> rec = records_.process(tgid);
  if (!rec || rec->ino == 0) return true;
  return proc_.pidfs_ino(tgid) == rec->ino;
}

}  // namespace cgcore::host
