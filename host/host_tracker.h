// HostTracker: the real-process backend of the file layer. It keeps the
// host's processes and threads in an engine as tasks (real pids, real
// credentials) and applies the engine's decisions to the real processes
// where user space can do so faithfully.
//
// The parts, each with its own header:
//   * host/mirror.h — the mirror: /proc scan, process-events connector
//     events, resynchronisation after a loss, pids looked up on demand;
//   * host/effects.h — CPU affinity, the freezer's SIGSTOP / SIGCONT,
//     cgroup.kill's SIGKILL, applied with no engine lock held;
//   * host/memory_sync.h — memory usage from each process's RssAnon /
//     VmSize, and the memory controller's limits enforced (reclaim, then
//     the OOM killer);
//   * host/records.h — what identifies each mirrored task.
// This class owns them, runs the background thread (events, the /proc
// fallback, the freezer pass, the memory pass) and is the fs::Backend a
// CgroupFs over the host is created with.
//
// docs/host.md describes the design: the rules that make event handling
// idempotent, the pid-reuse guard, locking, and what user space cannot do.
//
// Build order: an Engine without controllers; HostTracker::create (which
// registers the builtin controllers so that cpuset's decisions reach the
// host); fs::CgroupFs::create(engine, layout, *tracker); start(). Stop the
// tracker before the fs goes: its thread drives the engine, whose
// observers include the fs.
//
// Thread-safety: create, start, stop and destruction from one thread;
// everything else is thread-safe. The tracker runs one background thread
// while started.
//
// Locking: the mirror's lock, then the effects' lock, then the engine's
// locks; the records' and the effect queue's locks are leaves. Nothing of
// the tracker may be called from an engine hook, sink or observer; the
// Backend methods are called by the fs with no engine lock held.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <thread>

#include "controllers/registry.h"
#include "core/engine.h"
#include "fs/backend.h"
#include "host/effects.h"
#include "host/event_notifier.h"
#include "host/pid_namespace.h"

namespace cgcore::host {

class Mirror;
class MemorySync;
class CpuSync;
class Taskstats;
class Connector;

struct HostOptions {
  // Follow events through the process-events connector when possible.
  bool use_connector = true;
  // Rescan period of the /proc fallback, in milliseconds (stretched on a
  // large host so that scanning takes at most a fifth of the time). Also the
  // period of the freezer pass and of re-checks of doubtful events.
  int rescan_ms = 200;
  // Where log lines go (default: stderr). Called from the tracker's thread
  // and from fs request threads: must be thread-safe.
  std::function<void(const std::string&)> log;
  // How often memory usage is brought in line with the processes' resident
  // memory (memory controller: RssAnon; memrlimit: VmSize) and memory
  // limits are enforced (reclaim, OOM kill), in milliseconds; 0 disables
  // both. It is the OOM killer's reaction time: a process that passes
  // memory.max is killed within one period (250 ms) of the excess. The CPU
  // time pass (host/cpu_sync.h) runs on the same period (0: no CPU time is
  // charged).
  int memory_sync_ms = 250;
  // Socket buffer asked for the connector (bytes; root may exceed
  // net.core.rmem_max). Tests shrink it to provoke lost events.
  int rcvbuf_bytes = 8 << 20;
  // Where /proc is. Anything but "/proc" is a fabricated tree (tests): no
  // connector, and no effect ever reaches a real process.
  std::string proc_root = "/proc";
  // Apply effects (affinity, signals) to the real processes. Off: observe
  // only (cgroup.kill and cgroup.freeze then change nothing on the host).
  bool apply_effects = true;
  // Each freezer stop and continue, reported as Effects::set_freezer_record
  // says (lock-free; none if empty).
  std::function<void(Pid, uint64_t start, bool stopped)> freezer_record;
};

class HostTracker final : public fs::Backend {
 public:
  // Registers the builtin controllers on `engine` (which must have none yet
  // and not be in concurrent use), cpuset's affinity decisions going to the
  // host, and returns the tracker over it. Errors as
  // register_builtin_controllers.
  static Result<std::unique_ptr<HostTracker>> create(Engine& engine, BuiltinOptions builtin = {},
                                                     HostOptions options = {});
  ~HostTracker() override;  // stops
  HostTracker(const HostTracker&) = delete;
  HostTracker& operator=(const HostTracker&) = delete;

  // The controllers create() registered (owned by the engine).
  const BuiltinControllers& controllers() const { return controllers_; }

  // Scans /proc and starts following events (a second call while started
  // does nothing). Errors: EIO if /proc cannot be read.
  Status start();
  // Stops following the host. `continue_frozen`: continue the processes the
  // freezer stopped (nothing else would); false when another server takes
  // over and keeps them frozen (docs/cgcorefs.md, "Restarts and upgrades").
  void stop(bool continue_frozen = true);

  // Charges the CPU time the mirrored threads ran since the last pass
  // (host/cpu_sync.h) now, serialised with the background thread's passes.
  // Locking: no engine lock held.
  void sync_cpu_usage();
  // Whether exiting threads' final CPU time comes from taskstats (root in
  // the initial namespaces, the tracker started with a CPU time pass).
  bool using_taskstats() const { return using_taskstats_.load(); }

  // Adds `pid` (a process or a thread) from /proc if the engine lacks it.
  // True if the engine has the task afterwards.
  bool ensure_pid(Pid pid);
  // Brings the engine in line with /proc now (tasks that appeared are added
  // under their parent, those gone or whose id was recycled exit). Used
  // after a lost event, by the fallback, and by tests.
  void resync();

  // A supervised thread is about to fork (see Mirror::reserve_fork): the
  // child is charged and placed now, under a provisional id, and takes its
  // real id when it appears. The controllers' refusal is returned (EAGAIN at
  // pids.max / numtasks.max). Locking: no engine lock held.
  Result<Pid> reserve_fork(Pid caller, bool thread, bool share_mm);
  // Applies now the exits of the caller's cgroup mates that /proc shows and
  // the events have not brought yet (Mirror::recheck_cgroup_mates).
  void recheck_cgroup_mates(Pid caller);
  // With the connector: if events are waiting in its socket, has the
  // background thread apply them and waits (at most 50 ms) until it has.
  // Costs one poll when nothing waits. A supervised fork calls it first, so
  // that a child the caller has just reaped no longer counts. Returns
  // whether events are followed through the connector (false: the caller
  // must fall back on recheck_cgroup_mates).
  bool catch_up_events();

  // ---- fs::Backend (called with no engine lock held)
  bool resolve_pid(Pid pid) override { return ensure_pid(pid); }
  // The threads the process has made that the mirror lacks are added now:
  // with the connector, by applying the events waiting in its socket
  // (catch_up_events); without it, those /proc/TGID/task lists
  // (Mirror::add_new_threads).
  void add_new_threads(Pid tgid) override;
  // A process's identity from its record (start time and pidfs inode
  // number, noted when the mirror added it); nullopt for a thread other
  // than the leader, whose record has no inode number, and for an unknown
  // id: the journal then reads /proc itself.
  std::optional<fs::TaskIdentity> identity(Pid tid) override;
  // Events waiting in the connector's socket are applied first (an exit the
  // caller has reaped is there already), then the tasks are matched against
  // /proc (Mirror::recheck_tasks), for exits no event has brought yet.
  void settle_exits(std::span<const Pid> tids) override;
  // The caller's pid namespace, from /proc (host/pid_namespace.h).
  std::shared_ptr<const fs::PidNamespace> pid_namespace(const fs::Caller& caller) override;
  void kill_processes(std::span<const Pid> tgids) override;
  // The writer's descriptors, copied with pidfd_getfd (host/event_notifier.h).
  Result<EventFds> take_event_fds(const fs::Caller& caller, int efd, int cfd) override;
  // The daemon runs no programs: the notification is logged.
  void release(const std::string& agent, const std::string& cgroup_path) override;
  void apply_effects() override;

  // Processes a previous server's freezer stopped, as (pid, start time):
  // see Effects::adopt_stopped. Call after start() (and after the previous
  // state is restored). Returns how many were adopted.
  size_t adopt_stopped(const std::vector<std::pair<Pid, uint64_t>>& stopped) {
    return effects_->adopt_stopped(stopped);
  }
  // Whether events come from the connector (false: /proc rescans).
  bool using_connector() const { return using_connector_.load(); }
  // Counters, for tests and the log.
  int64_t events_seen() const { return events_seen_.load(); }
  int64_t resyncs() const { return resyncs_.load(); }

  struct Stats {
    int64_t overflows = 0;         // ENOBUFS: events lost, then a resync
    int64_t stale_events = 0;      // older than the last scan: skipped
    int64_t affinity_set = 0;      // sched_setaffinity calls made
    int64_t affinity_errors = 0;   // ... that failed
    int64_t signals = 0;           // SIGSTOP / SIGCONT / SIGKILL sent
    int64_t forks_over_limit = 0;  // real forks a controller refused (added by migration)
    int64_t threads_refused = 0;   // thread creations a controller refused (retried)
    int64_t memory_refused = 0;    // memrlimit syncs refused, memory charged past a limit
    int64_t oom_kills = 0;         // processes killed for a memory cgroup over its limit
    int64_t memory_reclaims = 0;   // process_madvise(MADV_PAGEOUT) calls that advised memory
    int64_t nice_set = 0;          // setpriority calls made for cpu weights
    int64_t nice_errors = 0;       // ... that failed
    uint64_t cpu_charged_ns = 0;   // CPU time handed to the cpu controller
  };
  Stats stats() const;

  // Test hooks. Stops (true) or resumes (false) reading the connector, so
  // that a burst of events overflows the socket buffer.
  void TEST_pause_events(bool paused);
  // Holds (true) the connector's events in the socket until a catch-up
  // (catch_up_events) asks for them, as if the background thread had not
  // got to them yet; false reads them as they come again.
  void TEST_hold_events(bool held);

 private:
  HostTracker(Engine& engine, const BuiltinControllers& controllers,
              std::shared_ptr<EffectQueue> queue, HostOptions options);
  // Opens the connector if it can be used; why not otherwise.
  std::string open_connector();
  void loop();
  void drain();
  // Hands the exits taskstats reported to the CPU time pass.
  void drain_taskstats();
  void wake();
  int tick_ms() const;

  // ---- Immutable after construction
  Engine& engine_;
  const BuiltinControllers controllers_;
  HostOptions opts_;  // log filled in
  const ProcFs proc_;
  const PidNamespaces pid_namespaces_;
  ProcessRecords records_;
  std::unique_ptr<Effects> effects_;
  std::unique_ptr<Mirror> mirror_;
  std::unique_ptr<MemorySync> memory_;
  std::unique_ptr<CpuSync> cpu_;

  // ---- Owned by start()/stop() and the background thread (which alone
  // uses conn_ while it runs)
  std::thread thread_;
  std::unique_ptr<Connector> conn_;
  std::unique_ptr<Taskstats> taskstats_;  // exits' final CPU time; may be null
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> paused_{false};
  std::atomic<bool> held_{false};  // TEST_hold_events
  std::atomic<int> conn_fd_{-1};  // conn_'s socket, for catch_up_events' poll

  // catch_up_events' requests and the thread's answers. A std::mutex, for
  // the condition variable: a leaf, held only around the counters.
  std::mutex catch_up_mu_;
  std::condition_variable catch_up_cv_;
  uint64_t catch_up_asked_ = 0, catch_up_done_ = 0;  // guarded by catch_up_mu_

  std::atomic<bool> using_connector_{false};
  std::atomic<bool> using_taskstats_{false};
  std::atomic<int64_t> events_seen_{0};
  std::atomic<int64_t> resyncs_{0};
  EventNotifier event_notifier_;
  std::atomic<int64_t> overflows_{0};
};

}  // namespace cgcore::host
