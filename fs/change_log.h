// ChangeLog: where a CgroupFs reports each change of its state as it
// happens — the tree (mkdir, rmdir, rename), owners and modes, and every
// successful write of a control file — so that a journal (journal/) can
// replay the same operations after a restart.
//
// record() is called with the engine's cgroup mutex held, right after the
// change and before any other change can follow, so the order of the calls
// is the order of the changes. It must not call the fs or the engine, nor
// take a lock that is held while calling into either.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "core/types.h"

namespace cgcore::fs {

// What tells a task from a later one that reuses its id: its start time
// (ticks since boot, /proc/PID/stat field 22) and its pidfs inode number,
// which no later task shares (0: not known).
struct TaskIdentity {
  uint64_t start = 0;
  uint64_t ino = 0;
};

struct Change {
  enum class Kind : uint8_t { kMkdir, kRmdir, kRename, kChmod, kChown, kWrite };
  Kind kind;
  // The node, from the mount root ("/pids/a", "/pids/a/pids.max"; "/" for
  // the mount root). mkdir: the new cgroup; rename: the old path.
  std::string_view path;
  // rename: the new name; write: the text written (after the NUL cut).
  std::string_view text;
  // write: the file's name.
  std::string_view file;
  // mkdir, chmod: the mode; mkdir, chown: the owner (mkdir: the creator).
  uint32_t mode = 0, uid = 0, gid = 0;
  // A write to tasks, cgroup.procs or cgroup.threads: the pid it named ("0"
  // resolved to the writer).
  Pid pid = 0;
  // ... and that task's identity as the backend knew it when the write was
  // made (Backend::identity); unset when the backend has none to give.
  std::optional<TaskIdentity> identity;
  // mkdir: the new cgroup's id.
  uint64_t id = 0;
};

// The front end's request being served on this thread (FUSE: its unique
// id), or 0. A journal records it with each change, so that a request the
// kernel resends after a server restart is recognised as done (FuseServer).
inline thread_local uint64_t current_request = 0;

class ChangeLog {
 public:
  virtual ~ChangeLog() = default;
  // REQUIRES: the engine's cgroup mutex (see the file comment).
  virtual void record(const Change& change) = 0;
};

}  // namespace cgcore::fs
