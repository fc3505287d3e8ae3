// Journal: a cgcorefs server's state kept on disk so that the next server
// (after a crash, a kill, an upgrade, or a full stop and a new mount)
// continues where it stopped (docs/cgcorefs.md, "Restarts and upgrades").
//
// What is recorded is the fs's operations (fs::ChangeLog): mkdir, rmdir,
// rename, chmod, chown, and every successful write of a control file, in
// the order the fs made them; a write to cgroup.procs / tasks /
// cgroup.threads also records the process's identity (its start time) and
// when it was made (CLOCK_BOOTTIME). The identity is the one the fs's
// backend knew the task by (fs::Change::identity), read from /proc only
// when the backend has none. Restore replays them through the same fs
// calls, so one mechanism makes and remakes the state. A process is
// identified by its pid and its pidfs inode number (pidfs_ino), with its
// start time as a fallback (docs/host.md, "Process identity"). Memberships are
// then re-validated against /proc (restore()).
//
// File: DIR/journal, a sequence of records, each [u32 length][u32 CRC-32 of
// the payload][payload]. Appended with one write(2) per change and no
// fsync (the page cache outlives the daemon). A torn last record (a kill
// in the middle of an append) fails its length or checksum and is cut off;
// nothing before it is lost. Compaction rewrites the file (temporary file,
// rename) as the shortest sequence with the same effect: operations on
// cgroups removed since dropped, renames folded into later paths, for each
// value file only its last write, and the membership records replaced by a
// snapshot of every process outside the roots (as cgroup.procs lists it),
// stamped with the time the snapshot began.
//
// Thread-safety: record() may be called from any fs request thread (with
// the cgroup mutex held, so calls are serialised by the fs); the rest from
// the thread that owns the journal. Locking: mu_ is a leaf taken under the
// engine's cgroup mutex; nothing is called with it held but write(2).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "fs/cgroupfs.h"

namespace cgcore::journal {

struct Record {
  enum class Type : uint8_t { kHeader = 1, kMkdir, kRmdir, kRename, kChmod, kChown, kWrite };
  Type type = Type::kHeader;
  std::string path;   // header: the layout; else the node's path
  std::string text;   // rename: the new name; write: the text
  std::string file;   // write: the file's name
  uint32_t mode = 0, uid = 0, gid = 0;
  Pid pid = 0;        // membership writes: the pid named
  uint64_t start = 0; // ... its start time (/proc/PID/stat field 22)
  uint64_t stamp = 0; // ... when the write was made (CLOCK_BOOTTIME, ns)
  uint64_t ino = 0;   // ... its pidfs inode number (0: unknown)
  uint64_t id = 0;    // mkdir: the cgroup's id (its inode numbers follow)
  uint64_t request = 0;  // the request that made the change (fs::current_request)
};

// The record's bytes, framed (length, checksum).
std::string encode(const Record& r);
// The records of a journal file's bytes, in order; `valid` gets the length
// of the prefix that holds whole records (a torn tail is not in it).
std::vector<Record> decode(std::string_view bytes, size_t* valid);
// Whether a write to `file` changes membership / is an action that must not
// be replayed (cgroup.kill, memory.force_empty, memory.reclaim).
bool is_membership_file(std::string_view file);
bool is_action_file(std::string_view file);
// The compaction of `records` (see the file comment) without any
// membership record: the caller adds a snapshot of the memberships.
std::vector<Record> compact(const std::vector<Record>& records);

struct RestoreStats {
  size_t records = 0;        // replayed (tree, values)
  size_t failed = 0;         // ... that the fs refused now
  size_t placed = 0;         // processes placed outside the roots
  size_t gone = 0;           // membership records of processes that exited
  bool torn = false;         // a torn last record was cut off
};

class Journal final : public fs::ChangeLog {
 public:
  using LogFn = std::function<void(const std::string&)>;
  // Opens (creating) DIR (mode 0700) and reads DIR/journal if present.
  // Errors: the mkdir / open / read errno.
  static Result<std::unique_ptr<Journal>> open(const std::string& dir, LogFn log);
  ~Journal() override;  // stops
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Whether the file on disk holds a state (a header and records).
  bool has_state() const { return !loaded_.empty(); }
  // Forgets the recorded state: start() then begins an empty one.
  void discard() { loaded_.clear(); }
  // Whether the recorded state holds a change made by request `unique` (a
  // FUSE request id, without the resend bit): a request the kernel resends
  // after a restart that the dead server had carried out. Thread-safe
  // (reads what open() loaded).
  bool applied(uint64_t unique) const { return unique != 0 && applied_.count(unique) != 0; }
  // The layout the recorded state was made with ("" if none).
  std::string recorded_layout() const;

  // Replays the recorded state into `fs` (whose layout must be the
  // recorded one) and places the live processes: a process whose
  // identity (pid, start time) a membership record names gets that
  // cgroup; one forked since gets its parent's cgroups as of its own start
  // (as the kernel would have placed it); one whose pid was reused is not
  // taken for the old one. Locking: no engine lock held; no request runs.
  RestoreStats restore(fs::CgroupFs& fs);

  // Starts journaling `fs`: writes the state so far (compacted) as a new
  // file with `layout` in its header, installs itself as the fs's change
  // log, and starts the background compactor. Errors: file errnos.
  Status start(fs::CgroupFs& fs, const std::string& layout);
  // Removes itself from the fs and stops the compactor; the fs may be
  // destroyed after it. Idempotent (the destructor calls it again).
  void stop();

  // fs::ChangeLog. REQUIRES: the engine's cgroup mutex.
  void record(const fs::Change& change) override;

  // Compacts now (tests; the compactor does it when the file has grown).
  void compact_now();
  uint64_t appended() const { return appended_.load(); }

 private:
  Journal(std::string dir, LogFn log) : dir_(std::move(dir)), log_(std::move(log)) {}
  void compactor_main();
  // Compacts: the records so far plus a membership snapshot of fs_ become
  // the new file (written aside, then renamed over the old one). Errors:
  // the files' errnos (the old file stays). Locking: neither mu_ nor any
  // engine lock held; takes compact_mu_, then the fs's locks, then mu_.
  Status compact_to_disk();
  // Every process outside the roots: membership records stamped `stamp`.
  std::vector<Record> snapshot(uint64_t stamp);

  const std::string dir_;
  const LogFn log_;
  std::vector<Record> loaded_;  // read at open(); immutable after
  std::unordered_set<uint64_t> applied_;  // the loaded records' requests; immutable after open()
  bool torn_ = false;
  fs::CgroupFs* fs_ = nullptr;

  std::mutex compact_mu_;  // one compaction at a time; taken before the fs's locks
  std::mutex mu_;  // a leaf (see the file comment)
  int fd_ = -1;                          // guarded by mu_
  std::vector<Record> records_;          // guarded by mu_: the file's records
  uint64_t bytes_ = 0, compacted_bytes_ = 0;  // guarded by mu_
  std::condition_variable cv_;
  bool stopping_ = false;                // guarded by mu_
  std::thread compactor_;
  std::atomic<uint64_t> appended_{0};
};

// Reads /proc/PID/stat: the start time (field 22) and parent (field 4) of a
// live task; nullopt if there is none.
struct ProcStat {
  uint64_t start = 0;
  Pid ppid = 0;
  Pid tgid = 0;
};
std::optional<ProcStat> proc_stat(Pid pid);

// The identity of a live task that no later task can share: the inode
// number of a pidfd for it (pidfs, Linux 6.9+, numbers each struct pid from
// a 64-bit counter and never reuses one during a boot). 0 if the task is
// gone or the kernel has no pidfs (then the start time alone identifies).
uint64_t pidfs_ino(Pid pid);

}  // namespace cgcore::journal
