// Mirror: forks charged before the kernel makes them (supervised processes).
// The child is created in the engine at once, under a provisional id, and
// takes its real id when the mirror first meets it; a reservation whose
// child never appears is given back.
#include <algorithm>
#include <cerrno>

#include "core/task_table.h"
#include "host/mirror.h"

namespace cgcore::host {

Result<Pid> Mirror::reserve_fork(Pid caller, bool thread, bool share_mm) {
  MutexLock l(sync_mu_);
  if (!live_in_engine(caller) && !sync_pid(caller, 0)) return Status::Error(ESRCH, "the caller is not here");
  Result<Pid> tgid = engine_.tgid_of(caller);
  if (!tgid.ok()) return tgid.status();
  // Provisional ids are handed out in turn; one still in use (a reservation
  // that long) is skipped.
  Result<Pid> made = Status::Error(EEXIST, "");
  for (int tries = 0; tries < 16 && !made.ok() && made.err() == EEXIST; ++tries) {
    const Pid id = next_provisional_;
    next_provisional_ = id + 1 > TaskTable::kMaxPid ? kFirstProvisionalId : id + 1;
    made = thread ? engine_.clone_thread(caller, id)
                  : engine_.fork(caller, ForkOptions{.pid = id, .share_mm = share_mm});
  }
  if (!made.ok()) return made.status();
  reservations_[*tgid].push_back({*made, caller, thread, std::chrono::steady_clock::now()});
  return *made;
}

bool Mirror::take_reservation(Pid tgid, bool thread, Pid id, const Creds* creds) {
  auto it = reservations_.find(tgid);
  if (it == reservations_.end()) return false;
  std::deque<Reservation>& q = it->second;
  for (auto r = q.begin(); r != q.end(); ++r) {
    if (r->thread != thread) continue;
    const Pid prov = r->provisional;
    q.erase(r);
    if (q.empty()) reservations_.erase(it);
    if (!engine_.change_task_id(prov, id).ok()) {
      // Gone meanwhile (an exec ended the provisional thread) or the id is
      // somehow taken: drop it; the caller adds the task the ordinary way.
      if (thread) (void)engine_.exit_thread(prov);
      else (void)engine_.exit_process(prov);
      return false;
    }
    if (creds && !thread) refresh_creds(id, *creds);
    return true;
  }
  return false;
}

void Mirror::expire_reservations(std::chrono::milliseconds age) {
  MutexLock l(sync_mu_);
  const auto now = std::chrono::steady_clock::now();
  std::vector<Pid> forkers;
  for (const auto& [tgid, q] : reservations_)
    if (!q.empty() && now - q.front().made >= age) forkers.push_back(tgid);
  for (Pid tgid : forkers) {
    // Children and threads the mirror has not seen yet take their
    // reservations here.
    for (Pid c : proc_.children(tgid))
      if (!records_.process(c)) sync_pid(c, 0);
    if (records_.process(tgid)) sync_pid(tgid, 0);
    auto it = reservations_.find(tgid);
    if (it == reservations_.end()) continue;
    std::deque<Reservation>& q = it->second;
    // A caller still inside a fork call may be making this very child (on a
    // loaded machine a clone the supervisor let through can take longer
    // than two ticks): its charge stays, or the child would start over the
    // limit. A caller that has returned has made its child or failed, and a
    // child not found above is not coming.
    for (auto r = q.begin(); r != q.end();) {
      if (now - r->made < age || proc_.in_fork_call(tgid, r->caller)) {
        ++r;
        continue;
      }
      if (r->thread) (void)engine_.exit_thread(r->provisional);
      else (void)engine_.exit_process(r->provisional);
      r = q.erase(r);
    }
    if (q.empty()) reservations_.erase(it);
  }
  effects_.apply();
}

size_t Mirror::nr_reservations() {
  MutexLock l(sync_mu_);
  size_t n = 0;
  for (const auto& [tgid, q] : reservations_) n += q.size();
  return n;
}

void Mirror::recheck_cgroup_mates(Pid caller, size_t limit) {
  std::vector<Pid> mates;
  for (Hierarchy* h : engine_.hierarchies()) {
    Result<CgroupPtr> cg = engine_.task_cgroup(caller, *h);
    if (!cg.ok()) continue;
    for (Pid t : engine_.cgroup_tids(**cg))
      if (!is_provisional_id(t) && mates.size() < limit) mates.push_back(t);
  }
  std::sort(mates.begin(), mates.end());
  mates.erase(std::unique(mates.begin(), mates.end()), mates.end());
  MutexLock l(sync_mu_);
  for (Pid t : mates)
    if (records_.task(t)) sync_pid(t, 0);
  Result<Pid> tgid = engine_.tgid_of(caller);
  if (!tgid.ok() || !reservations_.count(*tgid)) return;
  for (Pid c : proc_.children(*tgid))
    if (!records_.process(c)) sync_pid(c, 0);
  if (records_.process(*tgid)) sync_pid(*tgid, 0);  // new threads
  auto it = reservations_.find(*tgid);
  if (it == reservations_.end()) return;
  std::deque<Reservation>& q = it->second;
  for (auto r = q.begin(); r != q.end();) {
    if (r->caller != caller) {
      ++r;
      continue;
    }
    if (r->thread) (void)engine_.exit_thread(r->provisional);
    else (void)engine_.exit_process(r->provisional);
    r = q.erase(r);
  }
  if (q.empty()) reservations_.erase(it);
}

}  // namespace cgcore::host
