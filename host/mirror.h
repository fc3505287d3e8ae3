// Mirror: the host's processes and threads kept as tasks of an engine, with
// their real ids and credentials, in step with /proc.
//
// Every change goes through one lock (sync_mu_) and follows rules that make
// applying the same fact twice harmless (docs/host.md): a connector event,
// a rescan of /proc, or a pid looked up on demand (ensure_pid) may describe
// the same fork, and the mirror ends the same whichever comes first. Start
// times tell a task from a later one that reuses its id: a recycled pid
// never inherits a dead process's cgroups.
//
// A fork the engine's controllers refuse (pids.max) has happened on the host
// all the same: it is added by spawning and migrating, as the kernel's
// migration would charge it.
//
// Thread-safety: thread-safe.
// Locking: sync_mu_ comes before the effects' lock and every engine lock; it
// is held across engine calls. Nothing here may be called from an engine
// hook, sink or observer.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>

#include "core/engine.h"
#include "host/connector.h"
#include "host/effects.h"
#include "host/procfs.h"
#include "host/records.h"

namespace cgcore::host {

class Mirror {
 public:
  Mirror(Engine& engine, const ProcFs& proc, ProcessRecords& records, Effects& effects, LogFn log);
  Mirror(const Mirror&) = delete;
  Mirror& operator=(const Mirror&) = delete;

  // Makes the mirror the /proc snapshot taken now: processes gone or
  // recycled exit, threads are matched, new processes are added as forks of
  // their parents (initial: spawned in the roots, as at start). Events
  // stamped before the scan began are skipped from then on. False if /proc
  // cannot be read (nothing changed then).
  bool resync(bool initial);
  // Adds `pid` (a process or a thread) from /proc if the engine lacks it;
  // whether the engine has the task afterwards.
  bool ensure_pid(Pid pid);
  // Adds the threads of known process `tgid` that ROOT/TGID/task lists and
  // the engine lacks (their clone events have not arrived yet), as clones
  // of a live thread, so that a move of the whole process takes them too.
  // One directory listing when there are none. Nothing if the process is
  // unknown or its id now names another process.
  void add_new_threads(Pid tgid);
  // Matches these tasks (thread ids; at most kMaxRecheck of them) against
  // /proc as the events would: those that have exited leave the engine now.
  void recheck_tasks(std::span<const Pid> tids);
  static constexpr size_t kMaxRecheck = 1024;
  // Applies connector events, in order.
  void apply(std::span<const ProcEvent> events);
  // Matches against /proc the ids that events left doubtful (a task already
  // gone, an exit /proc did not agree with yet).
  void recheck_pending();
  // Runs `fn` serialised with every change of the mirror (the memory pass).
  void serialized(const std::function<void()>& fn);

  // Charges a fork that supervised thread `caller` is about to make, before
  // the kernel makes it (`thread`: a thread of the caller's process;
  // `share_mm`: CLONE_VM). The engine creates the child now, under a
  // provisional id (core/types.h), in the caller's cgroups, with every
  // controller's can_fork run; the mirror gives it its real id when the child
  // appears (fork event, scan, ensure_pid). Errors: the controllers' refusal
  // (pids, numtasks: EAGAIN, counted as the kernel counts it); ESRCH if the
  // caller is not a live task here.
  Result<Pid> reserve_fork(Pid caller, bool thread, bool share_mm);
  // Settles reservations older than `age`: the caller's new children or
  // threads are looked up in /proc (taking their reservations); what is left
  // was a clone that failed, and is uncharged.
  void expire_reservations(std::chrono::milliseconds age);
  // Reservations waiting for their child.
  size_t nr_reservations();
  // Matches against /proc every task the engine has in the caller's cgroups
  // (each hierarchy's, not descendants'), at most `limit` of them: exits
  // whose events have not arrived yet are applied now. Used before a fork
  // is refused, so that a child the caller has just reaped no longer counts.
  // Also settles the caller's own earlier reservations: the caller is in a
  // new call, so its earlier clones have returned; a child that cannot be
  // found in /proc now has come and gone, and its charge is given back.
  void recheck_cgroup_mates(Pid caller, size_t limit);

  int64_t stale_events() const { return stale_events_.load(); }
  int64_t forks_over_limit() const { return forks_over_limit_.load(); }
  int64_t threads_refused() const { return threads_refused_.load(); }

 private:
  using Snapshot = std::map<Pid, ProcSnap>;

  // ---- engine views (no mirror lock needed)
  bool live_in_engine(Pid tid);
  // Whether process `tgid` in /proc now is the one recorded, by its pidfs
  // identity (true when none was recorded): a pid reused within the
  // recorded start time's clock tick fails it.
  bool same_pidfs(Pid tgid) const;
  std::vector<Pid> live_threads(Pid tgid);
  // A live thread of a process the mirror knows (its leader if alive).
  std::optional<Pid> live_thread_of(Pid tgid);

  // ---- changes (docs/host.md gives the rules)
  void settle(Pid tgid) CG_REQUIRES(sync_mu_);
  void drop_thread(Pid tid) CG_REQUIRES(sync_mu_);
  void drop_process(Pid tgid) CG_REQUIRES(sync_mu_);
  Result<Pid> fork_from(Pid parent, Pid child, const Creds& creds) CG_REQUIRES(sync_mu_);
  bool add_process(const ProcSnap& p, std::optional<Pid> parent) CG_REQUIRES(sync_mu_);
  bool add_thread(Pid tgid, Pid tid, uint64_t start) CG_REQUIRES(sync_mu_);
  void exec_as(Pid tgid, Pid x, uint64_t start) CG_REQUIRES(sync_mu_);
  void refresh_creds(Pid tgid, const Creds& creds) CG_REQUIRES(sync_mu_);
  void sync_threads(const ProcSnap& p) CG_REQUIRES(sync_mu_);
  bool sync_pid(Pid id, int depth) CG_REQUIRES(sync_mu_);
  void add_from_snapshot(Pid g, const Snapshot& snap, bool initial, int depth) CG_REQUIRES(sync_mu_);
  std::optional<Snapshot> take_snapshot();
  bool resync_locked(bool initial) CG_REQUIRES(sync_mu_);

  // ---- fork reservations
  // The reservation a new child / thread of `tgid` takes, if any: its
  // provisional task gets `id` (and `creds`). True if one did.
  bool take_reservation(Pid tgid, bool thread, Pid id, const Creds* creds) CG_REQUIRES(sync_mu_);

  // ---- events
  void apply_one(const ProcEvent& ev) CG_REQUIRES(sync_mu_);
  void on_fork(const ProcEvent& ev) CG_REQUIRES(sync_mu_);
  void on_clone(const ProcEvent& ev) CG_REQUIRES(sync_mu_);
  void on_exec(Pid tgid) CG_REQUIRES(sync_mu_);
  void on_exit(Pid tid) CG_REQUIRES(sync_mu_);

  // ---- Immutable after construction
  Engine& engine_;
  const ProcFs& proc_;
  ProcessRecords& records_;
  Effects& effects_;
  const LogFn log_;

  Mutex sync_mu_;
  uint64_t epoch_ns_ CG_GUARDED_BY(sync_mu_) = 0;  // events older than this: seen by the last scan
  std::set<Pid> pending_ CG_GUARDED_BY(sync_mu_);  // ids to match against /proc at the next tick
  struct Reservation {
    Pid provisional;
    Pid caller;  // the thread whose clone it charges
    bool thread;
    std::chrono::steady_clock::time_point made;
  };
  // By the process that forks, oldest first.
  std::map<Pid, std::deque<Reservation>> reservations_ CG_GUARDED_BY(sync_mu_);
  Pid next_provisional_ CG_GUARDED_BY(sync_mu_) = kFirstProvisionalId;

  std::atomic<int64_t> stale_events_{0}, forks_over_limit_{0}, threads_refused_{0};
};

}  // namespace cgcore::host
