#include "host/cpu_sync.h"

#include <algorithm>

namespace cgcore::host {

namespace {

// The runtime split like the kernel's cputime_adjust: user and system in
// the ratio of the tick-sampled utime to stime (all to one side if the
// other is 0), never below what was reported before.
void split(uint64_t runtime, uint64_t utime, uint64_t stime, uint64_t prev_user,
           uint64_t prev_system, uint64_t* user, uint64_t* system) {
  uint64_t u;
  if (stime == 0) {
    u = runtime;
  } else if (utime == 0) {
    u = 0;
  } else {
    u = static_cast<uint64_t>(static_cast<unsigned __int128>(runtime) * utime / (utime + stime));
  }
  uint64_t s = runtime - u;
  // Monotonic: neither side goes down; the total never exceeds runtime
  // unless an earlier split already took more than its share.
  if (u < prev_user) {
    u = prev_user;
    s = runtime > u ? runtime - u : 0;
  }
  if (s < prev_system) {
    s = prev_system;
    u = std::max(prev_user, runtime > s ? runtime - s : 0);
  }
  *user = u;
  *system = s;
}

}  // namespace

void CpuSync::run() {
  if (!cpu_) return;
  ++pass_;
  batch_.clear();
  for (Pid g : records_.user_processes()) {
    Result<std::vector<Pid>> threads = engine_.threads_of(g);
    if (!threads.ok()) continue;
    for (Pid t : *threads) {
      std::optional<ThreadStat> st = proc_.thread_stat(g, t);
      std::optional<uint64_t> runtime = proc_.thread_runtime_ns(g, t);
      if (!st || !runtime || st->kthread()) continue;
      uint64_t user, system;
      auto it = seen_.find(t);
      if (it == seen_.end() || it->second.start != st->start) {
        split(*runtime, st->utime, st->stime, 0, 0, &user, &system);
        seen_[t] = Seen{st->start, user, system, pass_};
        // The first pass sees what ran before cgcore knew of it: a
        // baseline. A thread new since then ran all its time here.
        if (pass_ > 1 && (user || system)) batch_.push_back(CpuCharge{t, user, system, st->nice > 0});
        continue;
      }
      Seen& s = it->second;
      split(*runtime, st->utime, st->stime, s.user_ns, s.system_ns, &user, &system);
      const uint64_t du = user - s.user_ns, ds = system - s.system_ns;
      s.user_ns = user;
      s.system_ns = system;
      s.pass = pass_;
      if (du || ds) batch_.push_back(CpuCharge{t, du, ds, st->nice > 0});
    }
  }
  // Threads not seen for a few passes have exited (or their tid was
  // recycled). Not at once: the exit's statistics may still be on their way
  // (on_exits), and must find what was charged already.
  for (auto it = seen_.begin(); it != seen_.end();)
    it = pass_ - it->second.pass <= kForgetAfter ? std::next(it) : seen_.erase(it);
  if (batch_.empty()) return;
  uint64_t total = 0;
  for (const CpuCharge& c : batch_) total += c.user_ns + c.system_ns;
  if (cpu_->charge(engine_, batch_).ok()) charged_ns_.fetch_add(total);
}

void CpuSync::on_exits(std::span<const Taskstats::Exit> exits) {
  if (!cpu_) return;
  batch_.clear();
  for (const Taskstats::Exit& e : exits) {
    auto it = seen_.find(e.tid);
    uint64_t prev_user = 0, prev_system = 0;
    if (it != seen_.end()) {
      prev_user = it->second.user_ns;
      prev_system = it->second.system_ns;
      seen_.erase(it);
    } else {
      // Never sampled: a user thread of a mirrored process born since the
      // baseline ran all its time here.
      std::optional<TaskRecord> t = records_.task(e.tid);
      std::optional<ProcessRecord> p = t ? records_.process(t->tgid) : std::nullopt;
      if (pass_ == 0 || !p || p->kthread) continue;
    }
    uint64_t user, system;
    split(e.runtime_ns, e.utime_us, e.stime_us, prev_user, prev_system, &user, &system);
    const uint64_t du = user - prev_user, ds = system - prev_system;
    if (du || ds) batch_.push_back(CpuCharge{e.tid, du, ds, e.nice > 0});
  }
  if (batch_.empty()) return;
  uint64_t total = 0;
  for (const CpuCharge& c : batch_) total += c.user_ns + c.system_ns;
  if (cpu_->charge(engine_, batch_).ok()) charged_ns_.fetch_add(total);
}

}  // namespace cgcore::host
