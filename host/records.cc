#include "host/records.h"

namespace cgcore::host {

std::optional<TaskRecord> ProcessRecords::task(Pid tid) const {
  MutexLock l(mu_);
  auto it = tasks_.find(tid);
  if (it == tasks_.end()) return std::nullopt;
  return it->second;
}

std::optional<ProcessRecord> ProcessRecords::process(Pid tgid) const {
  MutexLock l(mu_);
  auto it = procs_.find(tgid);
  if (it == procs_.end()) return std::nullopt;
  return it->second;
}

void ProcessRecords::note_task(Pid tid, Pid tgid, uint64_t start) {
  MutexLock l(mu_);
  tasks_[tid] = TaskRecord{tgid, start};
}

void ProcessRecords::forget_task(Pid tid) {
  MutexLock l(mu_);
  tasks_.erase(tid);
}

void ProcessRecords::note_process(Pid tgid, uint64_t start, bool kthread, uint64_t ino) {
  MutexLock l(mu_);
  procs_[tgid] = ProcessRecord{start, kthread, ino};
}

void ProcessRecords::forget_process(Pid tgid) {
  MutexLock l(mu_);
  procs_.erase(tgid);
  frozen_.erase(tgid);
  killed_.erase(tgid);
}

void ProcessRecords::replace_threads(std::span<const Pid> threads, Pid tgid, uint64_t start) {
  MutexLock l(mu_);
  for (Pid t : threads) tasks_.erase(t);
  tasks_[tgid] = TaskRecord{tgid, start};
}

void ProcessRecords::forget_tasks(std::span<const Pid> tids) {
  MutexLock l(mu_);
  for (Pid t : tids) tasks_.erase(t);
}

std::vector<std::pair<Pid, ProcessRecord>> ProcessRecords::processes() const {
  MutexLock l(mu_);
  return {procs_.begin(), procs_.end()};
}

std::vector<Pid> ProcessRecords::user_processes() const {
  MutexLock l(mu_);
  std::vector<Pid> out;
  for (const auto& [g, rec] : procs_)
    if (!rec.kthread) out.push_back(g);
  return out;
}

size_t ProcessRecords::nr_processes() const {
  MutexLock l(mu_);
  return procs_.size();
}

size_t ProcessRecords::nr_tasks() const {
  MutexLock l(mu_);
  return tasks_.size();
}

bool ProcessRecords::mark_frozen(Pid tgid) {
  MutexLock l(mu_);
  if (!procs_.count(tgid)) return false;
  frozen_.insert(tgid);
  return true;
}

std::optional<ProcessRecord> ProcessRecords::unmark_frozen(Pid tgid) {
  MutexLock l(mu_);
  if (!frozen_.erase(tgid)) return std::nullopt;
  auto it = procs_.find(tgid);
  if (it == procs_.end()) return std::nullopt;
  return it->second;
}

bool ProcessRecords::frozen_by_us(Pid tgid) const {
  MutexLock l(mu_);
  return frozen_.count(tgid) > 0;
}

std::vector<Pid> ProcessRecords::frozen() const {
  MutexLock l(mu_);
  return {frozen_.begin(), frozen_.end()};
}

std::optional<ProcessRecord> ProcessRecords::mark_killed(Pid tgid) {
  MutexLock l(mu_);
  auto it = procs_.find(tgid);
  if (it == procs_.end()) return std::nullopt;
  killed_.insert(tgid);
  return it->second;
}

bool ProcessRecords::inherit_killed(Pid parent, Pid child) {
  MutexLock l(mu_);
  if (!killed_.count(parent)) return false;
  killed_.insert(child);
  return true;
}

}  // namespace cgcore::host
