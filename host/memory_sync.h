// MemorySync: brings the memory controllers' usage in line with what the
// host's processes really use — each process's address space is charged
// (memory) its RssAnon and its VmSwap as swap, and sized (memrlimit) to its
// VmSize, by the difference since the last pass — and then does what the
// kernel does for a memory cgroup over its limits.
//
// Swap is accounted, never enforced: the kernel enforces memory.swap.max by
// not swapping out, and user space cannot keep it from swapping. Swap past
// swap.max is charged anyway (force_charge_swap: "max" counts, "fail" does
// not) and nothing else happens.
//
// Usage is the truth: memory a process already uses is charged even past
// memory.max / memory.limit_in_bytes (MemoryController::force_charge,
// counting failcnt and memory.events "max" as a refused charge would).
// Enforcement then follows the kernel's order, with effects applied through
// host/effects (no engine lock held, pidfd and start time checked):
//   1. reclaim — the processes of a cgroup above memory.high or memory.max,
//      largest first, are asked to page out about the excess between them
//      (process_madvise MADV_PAGEOUT), and re-synced if anything was advised;
//   2. OOM — a cgroup still above its max (deepest first) counts "oom";
//      with v1 oom_kill_disable nothing is killed and it stays under_oom
//      until usage fits; otherwise the process with the largest usage in
//      its subtree (oom_score_adj -1000, kernel threads and the daemon
//      excepted) is SIGKILLed — with every process of the cgroup named by
//      memory.oom.group (v2) instead, if any — counting "oom_kill" (and
//      "oom_group_kill"), and the kill is logged. While a victim is still
//      in the engine (its exit not yet seen) no other kill is made in a
//      cgroup containing it, as the kernel waits for an exiting victim.
// memrlimit limits still refuse (counted; usage stays below the truth).
// With effects off (observe only) usage is charged, nothing is enforced.
//
// Thread-safety: run() from one thread at a time (the tracker runs it
// serialised with the mirror's changes).
#pragma once

#include <atomic>
#include <map>
#include <set>

#include "controllers/memory.h"
#include "controllers/memrlimit.h"
#include "core/engine.h"
#include "host/effects.h"
#include "host/procfs.h"
#include "host/records.h"

namespace cgcore::host {

class MemorySync {
 public:
  // Either controller may be null (not registered); `effects` null: usage
  // only, nothing enforced. `log` receives every OOM kill (rate-limited
  // notes otherwise); it must be thread-safe.
  MemorySync(Engine& engine, const ProcFs& proc, const ProcessRecords& records,
             MemoryController* memory, MemrlimitController* memrlimit, Effects* effects, LogFn log)
      : engine_(engine),
        proc_(proc),
        records_(records),
        memory_(memory),
        memrlimit_(memrlimit),
        effects_(effects),
        log_(std::move(log)) {}

  // One pass over every user process, then enforcement (above).
  // Locking: no engine lock held; never called concurrently with itself.
  void run();
  // memrlimit charges a limit refused, plus memory and swap charges made
  // past a limit, so far.
  int64_t refused() const { return refused_.load(); }
  // Processes killed for a memory cgroup over its limit.
  int64_t oom_kills() const { return oom_kills_.load(); }
  // process_madvise calls that advised memory for reclaim.
  int64_t reclaims() const { return reclaims_.load(); }

 private:
  // Brings process `g`'s charge and size in line with /proc.
  void sync_process(Pid g);
  // Steps 1 and 2 above.
  void enforce();
  // Step 2 for one cgroup above its max.
  void handle_oom(const MemoryController::OverLimit& over);
  // Reclaims about `want` bytes from the processes of `cgroup`'s subtree
  // not in `done` (added to it), largest first; true if anything was
  // advised.
  bool reclaim_cgroup(uint64_t cgroup, int64_t want, std::set<Pid>& done);

  // ---- Immutable after construction
  Engine& engine_;
  const ProcFs& proc_;
  const ProcessRecords& records_;
  MemoryController* const memory_;
  MemrlimitController* const memrlimit_;
  Effects* const effects_;
  const LogFn log_;

  // ---- Used by run() only (one caller at a time)
  // Processes the OOM killer signalled, with their start times, until the
  // mirror no longer has them.
  std::map<Pid, uint64_t> victims_;
  // Reclaim was refused by the host (ENOSYS, EPERM): not tried again.
  bool reclaim_unavailable_ = false;
  int64_t oom_notes_ = 0;  // rate limit of the non-kill OOM notes

  std::atomic<int64_t> refused_{0};
  std::atomic<int64_t> oom_kills_{0};
  std::atomic<int64_t> reclaims_{0};
};

}  // namespace cgcore::host
