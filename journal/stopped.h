// StoppedRecord: the processes a server's freezer stopped (SIGSTOP), kept
// in DIR/stopped so that the next server can tell them apart from
// processes stopped by anyone else: it continues those no restored cgroup
// keeps frozen — all of them when it starts without the previous state —
// and adopts the others as its own (docs/cgcorefs.md, "Restarts and
// upgrades"). Nothing then stays stopped that no server believes frozen.
//
// Format: lines "+ PID START" (stopped, written before the signal is sent)
// and "- PID START" (continued), START being /proc/PID/stat field 22, so
// that a pid reused since is not continued. Each line is one write(2) to an
// O_APPEND descriptor, atomic without a lock; the file is rewritten at
// start-up with the processes still stopped.
//
// Thread-safety: note() is thread-safe and takes no lock (it may be called
// under any lock); open/load/rewrite from the owning thread.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"
#include "core/types.h"

namespace cgcore::journal {

class StoppedRecord {
 public:
  explicit StoppedRecord(std::string dir) : path_(std::move(dir) + "/stopped") {}
  ~StoppedRecord();
  StoppedRecord(const StoppedRecord&) = delete;
  StoppedRecord& operator=(const StoppedRecord&) = delete;

  // The processes the record says are stopped (last line per identity
  // wins), whether or not they still exist.
  std::vector<std::pair<Pid, uint64_t>> load() const;
  // Replaces the file by `stopped` and opens it for appending. Errors: the
  // file's errno.
  Status rewrite(const std::vector<std::pair<Pid, uint64_t>>& stopped);
  // Appends one line. Lock-free (see the file comment).
  void note(Pid pid, uint64_t start, bool stopped);

 private:
  const std::string path_;
  int fd_ = -1;
};

}  // namespace cgcore::journal
