#include "fs/file_events.h"

namespace cgcore::fs {

void FileEvents::post() {
  if (posted_) return;
  posted_ = true;
  ready_.release();
}

uint64_t FileEvents::watch(uint64_t ino) {
  MutexLock lock(mu_);
  Watch& w = watched_[ino];
  ++w.handles;
  return w.count;
}

void FileEvents::unwatch(uint64_t ino) {
  MutexLock lock(mu_);
  auto it = watched_.find(ino);
  if (it == watched_.end() || --it->second.handles > 0) return;
  watched_.erase(it);
  changed_.erase(ino);
}

uint64_t FileEvents::count(uint64_t ino) const {
  MutexLock lock(mu_);
  auto it = watched_.find(ino);
  return it == watched_.end() ? 0 : it->second.count;
}

void FileEvents::notify(uint64_t ino) {
  MutexLock lock(mu_);
  auto it = watched_.find(ino);
  if (it != watched_.end()) ++it->second.count;
  else if (!record_unwatched_) return;  // nobody has the file open
  changed_.insert(ino);
  post();
}

void FileEvents::set_record_unwatched(bool on) {
  MutexLock lock(mu_);
  record_unwatched_ = on;
}

void FileEvents::wake() {
  MutexLock lock(mu_);
  post();
}

void FileEvents::wait_take(std::vector<uint64_t>& out, std::chrono::milliseconds timeout) {
  (void)ready_.try_acquire_for(timeout);
  MutexLock lock(mu_);
  // Posted after the wait timed out: consume it, the set is taken now.
  if (posted_) (void)ready_.try_acquire();
  posted_ = false;
  out.assign(changed_.begin(), changed_.end());
  changed_.clear();
}

}  // namespace cgcore::fs
