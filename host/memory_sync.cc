#include "host/memory_sync.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace cgcore::host {

void MemorySync::run() {
  if (!memory_ && !memrlimit_) return;
  for (Pid g : records_.user_processes()) sync_process(g);
  enforce();
}

void MemorySync::sync_process(Pid g) {
  std::optional<ProcStatus> st = proc_.status(g);
  if (!st || st->tgid != g) return;
  Result<std::vector<Pid>> threads = engine_.threads_of(g);
  if (!threads.ok() || threads->empty()) return;
  const Pid t = threads->front();
  int64_t charged, vm, swapped;
  {
    Result<MmRef> mm = engine_.mm_of(t);
    if (!mm.ok()) return;
    charged = mm.value()->charged.load();
    vm = mm.value()->total_vm.load();
    swapped = mm.value()->swapped.load();
  }
  if (memory_ && st->rss_anon >= 0) {
    const int64_t d = st->rss_anon - charged;
    // The memory is in use: charged past a limit, which enforce() handles.
    bool over = false;
    if (d > 0) (void)memory_->force_charge(engine_, t, d, &over);
    else if (d < 0) (void)memory_->uncharge(engine_, t, -d);
    if (over) ++refused_;
  }
  // After RssAnon: a page swapped out since the last pass left it first.
  if (memory_ && st->vm_swap >= 0) {
    const int64_t d = st->vm_swap - swapped;
    bool over = false;
    if (d > 0) (void)memory_->force_charge_swap(engine_, t, d, &over);
    else if (d < 0) (void)memory_->uncharge_swap(engine_, t, -d);
    if (over) ++refused_;
  }
  if (memrlimit_ && st->vm_size >= 0) {
    const int64_t d = st->vm_size - vm;
    Status s = d > 0   ? memrlimit_->mmap(engine_, t, d)
               : d < 0 ? memrlimit_->munmap(engine_, t, -d)
                       : Status::Ok();
    if (!s.ok() && s.err() == ENOMEM) ++refused_;
  }
}

bool MemorySync::reclaim_cgroup(uint64_t cgroup, int64_t want, std::set<Pid>& done) {
  if (reclaim_unavailable_) return false;
  Result<std::vector<MemoryController::OomCandidate>> procs = memory_->oom_candidates(engine_, cgroup);
  if (!procs.ok()) return false;
  bool any = false;
  // The excess is the cgroup's, not each process's: the largest processes
  // are asked first, each for what is left.
  int64_t left = want;
  for (const MemoryController::OomCandidate& c : *procs) {
    if (left <= 0) break;
    if (c.bytes <= 0 || !done.insert(c.tgid).second) continue;
    const int64_t r = effects_->reclaim(c.tgid, left);
    if (r > 0) {
      any = true;
      left -= r;
      ++reclaims_;
    } else if (r == -ENOSYS || r == -EPERM || r == -ENOTSUP) {
      reclaim_unavailable_ = true;
      log_(std::string("memory: reclaim (process_madvise MADV_PAGEOUT) is unavailable: ") +
           std::strerror(static_cast<int>(-r)) + "; cgroups over their limits go straight to the OOM killer");
      return any;
    }
  }
  return any;
}

void MemorySync::enforce() {
  if (!memory_ || !effects_ || !effects_->enabled()) return;
  // Victims stay victims until the mirror saw them go.
  for (auto it = victims_.begin(); it != victims_.end();) {
    std::optional<ProcessRecord> rec = records_.process(it->first);
    it = rec && rec->start == it->second ? std::next(it) : victims_.erase(it);
  }
  std::vector<MemoryController::OverLimit> over = memory_->over_limits(engine_);
  if (over.empty()) return;
  // 1. Reclaim first, as the kernel does before it counts an OOM.
  std::set<Pid> reclaimed;
  bool advised = false;
  for (const MemoryController::OverLimit& o : over)
    advised |= reclaim_cgroup(o.cgroup, o.usage - std::min(o.max, o.high), reclaimed);
  if (advised) {
    for (Pid g : reclaimed) sync_process(g);
    over = memory_->over_limits(engine_);
  }
  // 2. What is still above its max is an OOM, the smallest domain first.
  for (const MemoryController::OverLimit& o : over)
    if (o.over_max) handle_oom(o);
}

void MemorySync::handle_oom(const MemoryController::OverLimit& o) {
  Result<std::vector<MemoryController::OomCandidate>> cands = memory_->oom_candidates(engine_, o.cgroup);
  if (!cands.ok()) return;
  // A victim of an earlier kill is still exiting here: its memory is about
  // to go, so the kernel kills nothing more meanwhile.
  for (const MemoryController::OomCandidate& c : *cands)
    if (victims_.count(c.tgid)) return;
  const std::string what = "memory: OOM in " + o.path + " (usage " + std::to_string(o.usage) +
                           " > max " + std::to_string(o.max) + ")";
  if (!memory_->begin_oom(engine_, o.cgroup)) {
    if (worth_logging(++oom_notes_)) log_(what + ": oom_kill_disable is set, nothing killed");
    return;
  }
  Pid victim = 0;
  int64_t victim_bytes = 0;
  for (const MemoryController::OomCandidate& c : *cands)
    if (c.bytes > 0 && effects_->oom_killable(c.tgid)) {
      victim = c.tgid;
      victim_bytes = c.bytes;
      break;
    }
  if (!victim) {
    if (worth_logging(++oom_notes_)) log_(what + ": no process may be killed");
    return;
  }
  std::vector<Pid> kill{victim};
  Result<MemoryController::OomGroup> group = memory_->oom_group(engine_, victim, o.cgroup);
  const bool whole = group.ok() && group->cgroup != 0;
  if (whole) {
    memory_->count_oom_group_kill(engine_, group->cgroup);
    kill.clear();
    for (Pid g : group->tgids)
      if (g == victim || effects_->oom_killable(g)) kill.push_back(g);
  }
  int killed = 0;
  for (Pid g : kill) {
    std::optional<ProcessRecord> rec = records_.process(g);
    if (!rec) continue;
    // Counted while the engine still has the task: its exit is applied
    // under the same serialisation as this pass, so not before we return.
    if (!effects_->oom_kill(g)) continue;
    memory_->count_oom_kill(engine_, g);
    victims_[g] = rec->start;
    ++killed;
    ++oom_kills_;
  }
  if (whole)
    log_(what + ": memory.oom.group of " + group->path + ": killed " + std::to_string(killed) +
         " process(es), the largest " + std::to_string(victim) + " (" + std::to_string(victim_bytes) +
         " bytes)");
  else if (killed)
    log_(what + ": killed process " + std::to_string(victim) + " (" + std::to_string(victim_bytes) +
         " bytes charged)");
}

}  // namespace cgcore::host
