#include "core/task_table.h"

#include <new>

namespace cgcore {

Status TaskTable::reserve(Pid pid) {
  if (pid <= 0 || pid > kMaxPid) return Status::Error(EINVAL, "pid out of range");
  size_t p = static_cast<size_t>(pid) >> kPageBits;
  try {
    if (p >= pages_.size()) pages_.resize(p + 1);
    if (!pages_[p]) {
      pages_[p] = std::make_unique<Page>();
      pages_[p]->fill(0);
    }
  } catch (const std::bad_alloc&) {
    return Status::Error(ENOMEM, "out of memory for the task table");
  }
  return Status::Ok();
}

void TaskTable::set(Pid pid, Task* task) {
  CompactRef& slot = (*pages_[static_cast<size_t>(pid) >> kPageBits])[pid & kPageMask];
  if (slot && !task) --size_;
  if (!slot && task) ++size_;
  slot = compact_ref(task);
}

Pid TaskTable::next_free() {
  const Pid limit = pid_max_ - 1;  // ids 1 .. pid_max - 1
  if (size_ >= static_cast<size_t>(limit)) return 0;
  Pid pid = last_;
  for (Pid tries = 0; tries < limit; ++tries) {
    pid = pid >= limit ? 1 : pid + 1;
    if (!get(pid)) return last_ = pid;
  }
  return 0;
}

}  // namespace cgcore
