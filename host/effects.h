// Effects: the engine's decisions applied to the real processes — CPU
// affinity from cpuset, the nice level of cpu's weight (setpriority), SIGSTOP / SIGCONT from the v2 freezer, SIGKILL from
// cgroup.kill and from the memory OOM killer, memory reclaim
// (process_madvise) — where user space can do so faithfully
// (docs/compatibility.md says how they differ from the kernel's).
//
// Decisions are taken under engine locks, where no system call on another
// process may be made: it would hold the engine while the kernel works, and
// a misbehaving process must never be able to stall the daemon. They are
// therefore only recorded there, in an EffectQueue (the cpuset sink and the
// freezer observer append to it), and applied by apply() with no engine
// lock held: by the file layer after each request (fs::Backend::
// apply_effects), by the mirror after each change it makes, and by the
// tracker's periodic pass.
//
// Identity: every signal goes through a pidfd taken before /proc's start
// time is compared with the record, so a recycled pid fails the check
// instead of receiving the signal. There is no pidfd for sched_setaffinity on
// a thread: the start-time check and the call are two steps there.
//
// Thread-safety: thread-safe. apply() calls are serialised, so effects reach
// processes in the order they were decided.
//
// Locking: apply_mu_ comes after the tracker's sync lock and before every
// engine lock; the queue's lock is a leaf (taken under engine locks).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "controllers/cpuset.h"
#include "core/engine.h"
#include "host/procfs.h"
#include "host/records.h"

namespace cgcore::host {

using LogFn = std::function<void(const std::string&)>;

// Decisions waiting to be applied. Thread-safe; push never blocks beyond a
// leaf mutex.
class EffectQueue {
 public:
  struct Affinity {
    Pid tid;
    CpuSet cpus;
    // A new task: the kernel gave it its creator's mask, which cpuset keeps
    // on fork unless it strays outside the cpuset.
    bool on_fork;
  };

  void push_affinity(Pid tid, const CpuSet& cpus, bool on_fork);
  // The effective freeze state of `cgroup` changed.
  void push_freeze(Cgroup& cgroup);
  // Moves everything queued into the arguments (replacing their content).
  void take(std::vector<Affinity>& affinity, std::vector<CgroupPtr>& freeze);

  // The sink a cpuset controller is built with: appends to `queue`.
  static CpusetController::AffinitySink sink(std::shared_ptr<EffectQueue> queue);

  // A thread's nice level, from its cpu cgroup's weight.
  struct Nice {
    Pid tid;
    int nice;
  };
  void push_nice(Pid tid, int nice);
  // Moves the queued nice levels into `out` (replacing its content).
  void take_nice(std::vector<Nice>& out);
  // The sink the cpu controller is built with (CpuController::NiceSink):
  // appends to `queue`.
  static std::function<void(Pid, int)> nice_sink(std::shared_ptr<EffectQueue> queue);

 private:
  Mutex mu_;
  std::vector<Affinity> affinity_ CG_GUARDED_BY(mu_);
  std::vector<CgroupPtr> freeze_ CG_GUARDED_BY(mu_);
  std::vector<Nice> nice_ CG_GUARDED_BY(mu_);
};

class Effects final : private EngineObserver {
 public:
  // `enabled`: effects reach real processes (the host's /proc and the
  // option on); otherwise everything is recorded and dropped. `self` is
  // never stopped or killed. Registers an engine observer (the engine must
  // not be in concurrent use); the destructor removes it.
  Effects(Engine& engine, const ProcFs& proc, ProcessRecords& records,
          std::shared_ptr<EffectQueue> queue, bool enabled, Pid self, LogFn log);
  ~Effects() override;
  Effects(const Effects&) = delete;
  Effects& operator=(const Effects&) = delete;

  bool enabled() const { return enabled_; }
  // While inactive (before start, after stop) the freezer observer records
  // nothing. The tracker activates effects once its mirror is complete.
  void set_active(bool active) { active_.store(active); }

  // Applies every queued decision. Locking: no engine lock held.
  void apply();
  // cgroup.kill: SIGKILL to each recorded process (kernel threads and this
  // process excepted), marking it so that its forks die too.
  void kill(std::span<const Pid> tgids);
  // Whether the memory OOM killer may choose process `tgid`: effects on, a
  // recorded process that is not this one nor a kernel thread, still the
  // one recorded (start time), alive, and not exempt by oom_score_adj
  // -1000 (the kernel's OOM_SCORE_ADJ_MIN). Reads /proc.
  // Locking: no engine lock held.
  bool oom_killable(Pid tgid);
  // SIGKILL to `tgid` for a memory cgroup over its limit (through a pidfd,
  // start time checked, as every signal here). True if it was sent; false
  // if effects are off, or it is this process, a kernel thread, unknown or
  // gone. Its later forks are not killed (the kernel's OOM killer kills
  // once). Locking: no engine lock held; takes apply_mu_.
  bool oom_kill(Pid tgid);
  // Memory reclaim for `tgid`: process_madvise(MADV_PAGEOUT) over its
  // private anonymous mappings (from /proc/PID/maps), through a pidfd taken
  // before the start-time check, until about `want` bytes of address range
  // were advised. Returns the bytes advised, or -errno: ESRCH (gone, not
  // the recorded process, a kernel thread or this one), ENOSYS (no
  // process_madvise), EPERM (it needs CAP_SYS_NICE and ptrace access),
  // ENOTSUP (effects off). Without swap the kernel cannot page anonymous
  // memory out and RssAnon stays as it was.
  // Locking: no engine lock held.
  int64_t reclaim(Pid tgid, int64_t want);
  // A process the mirror just added as a fork of `parent_tgid`: killed if
  // the parent was; stopped if its cgroup is frozen. Locking: no engine
  // lock held (takes the cgroup mutex briefly).
  void after_fork(Pid child, Pid parent_tgid, uint64_t start);
  // The periodic freezer pass: every process of an effectively frozen
  // cgroup is stopped (those forked or moved in since), every process the
  // freezer stopped that is no longer in one continues (moved out).
  void reconcile_freezer();
  // Continues every process the freezer stopped (the tracker stops: nothing
  // would ever continue them).
  void continue_all();
  // Where each freezer stop (before the SIGSTOP) and continue (after the
  // SIGCONT) is reported, with the process's start time (a server's
  // StoppedRecord, journal/stopped.h). Must be lock-free; set before start.
  using FreezerRecordFn = std::function<void(Pid, uint64_t start, bool stopped)>;
  void set_freezer_record(FreezerRecordFn fn) { freezer_record_ = std::move(fn); }
  // Processes a previous server's freezer stopped: each still the same
  // process (start time) and still stopped becomes this freezer's own, and
  // the next freezer pass keeps it stopped or continues it by its cgroup's
  // state. Returns how many were adopted. Locking: no engine lock held.
  size_t adopt_stopped(const std::vector<std::pair<Pid, uint64_t>>& stopped);

  int64_t signals() const { return signals_.load(); }
  int64_t affinity_set() const { return affinity_set_.load(); }
  int64_t affinity_errors() const { return affinity_errors_.load(); }
  // setpriority calls made for cpu weights, and those that failed.
  int64_t nice_set() const { return nice_set_.load(); }
  int64_t nice_errors() const { return nice_errors_.load(); }

 private:
  // EngineObserver: called with the cgroup mutex held; only records.
  void frozen_changed(Cgroup& cgroup, bool frozen) override;

  // Sends `sig` if `tgid` is still the process recorded with `start`.
  bool signal_process(Pid tgid, uint64_t start, int sig);
  void set_affinity(const EffectQueue::Affinity& a);
  // setpriority(PRIO_PROCESS, tid, nice) on the recorded thread (start time
  // checked first; kernel threads are left alone).
  void set_nice(const EffectQueue::Nice& n);
  // Stops a process of a frozen cgroup unless someone else (job control)
  // stopped it already; one the freezer stopped that runs again is stopped
  // again.
  void stop_process(Pid tgid);
  void continue_process(Pid tgid);
  // The processes of `cgroup` and whether it is effectively frozen now.
  std::pair<std::vector<Pid>, bool> freeze_state(Cgroup& cgroup);

  // ---- Immutable after construction
  Engine& engine_;
  const ProcFs& proc_;
  ProcessRecords& records_;
  const std::shared_ptr<EffectQueue> queue_;
  const bool enabled_;
  const Pid self_;
  const LogFn log_;
  FreezerRecordFn freezer_record_;  // set before start, then read-only

  Mutex apply_mu_;
  std::atomic<bool> active_{false};
  // Whether the freezer pass has anything to do (a freeze was seen and not
  // every frozen cgroup was thawed since).
  std::atomic<bool> freeze_active_{false};
  std::atomic<bool> warned_self_freeze_{false};
  std::atomic<int64_t> signals_{0}, affinity_set_{0}, affinity_errors_{0};
  std::atomic<int64_t> nice_set_{0}, nice_errors_{0};
};

// Whether a rate-limited message should be logged for the nth occurrence
// (n counted from 1): the first ten, then every thousandth.
inline bool worth_logging(int64_t n) { return n <= 10 || n % 1000 == 0; }

}  // namespace cgcore::host
