// CpuSync: reports the CPU time the host's threads really ran to the cpu
// controller (CpuController::charge), so that v2 cpu.stat and cpuacct's
// files show the real usage of each cgroup's tasks.
//
// Each pass reads, for every thread of every mirrored user process,
// /proc/TGID/task/TID/schedstat (the scheduler's runtime, ns) and stat
// (utime and stime in clock ticks, and the nice level), and charges what
// the thread ran since the previous pass to the cgroups it is in now: a
// thread that moves takes the time it runs from then on to its new cgroup,
// to within one pass. The runtime is split into user and system time in
// the proportion of utime to stime, each never going down (the kernel's
// cputime_adjust does the same for cgroup v2's cpu.stat); user time run at
// a nice level above 0 also counts as nice time.
//
// Exits: the time is charged as it is sampled, so an exited thread's time
// stays counted. Its final figure comes from taskstats (host/taskstats.h)
// where the tracker could open it: on_exits() charges what the thread ran
// since its last pass, while the engine still has it (the kernel sends the
// statistics before the connector's exit event). Without taskstats, what a
// thread ran after its last pass is not seen (at most one period;
// docs/host.md and docs/compatibility.md). The first pass takes a
// baseline of every thread (what ran before cgcore was started is not
// charged); a thread first seen by a later pass is new and is charged all
// the time it ran.
//
// Thread-safety: run() from one thread at a time (the tracker runs it
// serialised with the mirror's changes, beside the memory pass).
#pragma once

#include <atomic>
#include <span>
#include <unordered_map>
#include <vector>

#include "controllers/cpu.h"
#include "core/engine.h"
#include "host/procfs.h"
#include "host/records.h"
#include "host/taskstats.h"

namespace cgcore::host {

class CpuSync {
 public:
  // `cpu` may be null (not registered): run() does nothing.
  CpuSync(Engine& engine, const ProcFs& proc, const ProcessRecords& records, CpuController* cpu)
      : engine_(engine), proc_(proc), records_(records), cpu_(cpu) {}

  // One pass (above). Locking: no engine lock held; never concurrently
  // with itself.
  void run();
  // Charges each exited thread's time since its last pass (all of it for a
  // user thread no pass saw, once a baseline exists) and forgets it; a
  // thread the engine no longer has, or a kernel thread, is skipped.
  // Locking: as run(), serialised with it.
  void on_exits(std::span<const Taskstats::Exit> exits);
  // CPU time handed to CpuController::charge so far, in ns (for stats).
  uint64_t charged_ns() const { return charged_ns_.load(); }

 private:
  // What the last pass saw of one thread.
  struct Seen {
    uint64_t start = 0;     // /proc start time: a recycled tid starts over
    uint64_t user_ns = 0;   // reported so far
    uint64_t system_ns = 0;
    uint64_t pass = 0;      // the last pass that saw it
  };

  // Passes a thread may go unseen before it is forgotten.
  static constexpr uint64_t kForgetAfter = 4;

  // ---- Immutable after construction
  Engine& engine_;
  const ProcFs& proc_;
  const ProcessRecords& records_;
  CpuController* const cpu_;

  // ---- Used by run() only
  std::unordered_map<Pid, Seen> seen_;
  std::vector<CpuCharge> batch_;
  uint64_t pass_ = 0;

  std::atomic<uint64_t> charged_ns_{0};
};

}  // namespace cgcore::host
