// CgroupFs: the cgroupfs file interface over an engine, independent of any
// VFS. A front end (FUSE, cgsh, an embedding sandbox) calls it with the
// caller's credentials; it answers with the kernel's file sets, formats and
// errnos, and enforces the kernel's permission rules.
//
// Nodes are identified by inode numbers: 1 is the mount root; a cgroup's
// directory is (cgroup id << 10) and its files (cgroup id << 10) | (file
// number + 1). Inode numbers are never reused, as cgroup ids are not.
//
// Its environment — how unknown pids are found, how processes are killed,
// where release notifications and effects go — is one fs::Backend, given at
// construction and never changed.
//
// Thread-safety: every method is thread-safe. Metadata (modes, owners,
// release agents) is guarded by the engine's cgroup mutex. Handles
// (OpenFile) belong to one caller at a time.
//
// Locking: every control-file handler, core or controller, runs with the
// engine's cgroup mutex held (see FileDef); the backend is called with no
// engine lock held.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/engine.h"
#include "fs/backend.h"
#include "fs/change_log.h"
#include "fs/file_events.h"
#include "fs/layout.h"

namespace cgcore::fs {

using Ino = uint64_t;
inline constexpr Ino kRootIno = 1;

// Who performs an operation: the opener of a file, the caller of mkdir.
struct Caller {
  uint32_t uid = 0;  // effective (fs) uid
  uint32_t gid = 0;
  std::vector<uint32_t> groups;  // supplementary groups
  // The caller's process, as the backend names it (FUSE reports the
  // requester in the daemon's pid namespace): "0" written to cgroup.procs
  // means it, and its pid namespace is the one pids are read and written in.
  Pid pid = 0;
  bool is_root() const { return uid == 0; }
};

enum class NodeType : uint8_t { kDir, kFile };

struct Attr {
  Ino ino = 0;
  NodeType type = NodeType::kDir;
  uint32_t mode = 0;  // permission bits only
  uint32_t uid = 0, gid = 0;
  uint32_t nlink = 1;
  uint64_t size = 0;
};

struct DirEntry {
  std::string name;
  Ino ino;
  NodeType type;
};

class CgroupFs;
struct FileDef;

// An open control file. Reads are served from a snapshot taken at offset 0
// (like seq_file), so a large file read in pieces is consistent; writes run
// one command each.
class OpenFile {
 public:
  Ino ino() const { return ino_; }

 private:
  friend class CgroupFs;
  Ino ino_ = 0;
  bool can_read_ = false, can_write_ = false;
  Caller caller_;
  // The opener's pid namespace (null: the backend's own), for the files
  // that name pids, used for the opener's own reads and writes (a request
  // from another task looks up that task's).
  std::shared_ptr<const PidNamespace> pidns_;
  std::string snapshot_;
  bool loaded_ = false;
};

// What a core file handler sees. The handler runs with the cgroup mutex
// held; what must happen outside it, it leaves here.
struct FileContext {
  CgroupFs& fs;
  Engine& engine;
  Cgroup& cgroup;  // kept alive by the caller
  const Caller& caller;
  // Processes the backend kills once the cgroup mutex is dropped
  // (cgroup.kill).
  std::vector<Pid> kill_after_unlock;
  // For a write to a names_pid file: the task the text names, resolved in
  // the writer's pid namespace before the lock (resolve_written_pid), or
  // why it names none (EINVAL, ESRCH).
  Result<Pid> pid = Status::Error(EINVAL, "no process id written");
};

class CgroupFs : private EngineObserver {
 public:
  // Mounts `layout` on `engine` (creating its v1 hierarchies) and serves it
  // in the environment `backend` (borrowed; it outlives the fs). EINVAL for a
  // bad layout; the engine's mount errors.
  static Result<std::unique_ptr<CgroupFs>> create(Engine& engine, std::string_view layout,
                                                  Backend& backend);
  // The same over virtual tasks: the fs owns a VirtualBackend
  // (virtual_backend()).
  static Result<std::unique_ptr<CgroupFs>> create(Engine& engine, std::string_view layout);
  ~CgroupFs() override;
  CgroupFs(const CgroupFs&) = delete;
  CgroupFs& operator=(const CgroupFs&) = delete;

  Engine& engine() const { return engine_; }
  const Layout& layout() const { return layout_; }
  // The VirtualBackend this fs owns (created without a backend), or null.
  VirtualBackend* virtual_backend() const { return owned_backend_.get(); }
  // Where changes of cgroup.events are recorded for a front end's pollers.
  FileEvents& events() { return events_; }

  // ---- the VFS-neutral node API
  // ENOENT / ENOTDIR as a VFS would.
  Result<Attr> lookup(Ino dir, std::string_view name);
  Result<Attr> getattr(Ino ino);
  // EACCES without read permission on the directory.
  Result<std::vector<DirEntry>> readdir(Ino dir, const Caller& caller);
  // EACCES without write permission on the parent; EEXIST also for a file's
  // name; EPERM where cgroups cannot be made (the hybrid root); the
  // engine's mkdir errors.
  Result<Attr> mkdir(Ino dir, std::string_view name, uint32_t mode, const Caller& caller);
  // Removes a cgroup directory; EPERM for a control file (unlink), ENOTDIR...
  // A cgroup refused for its tasks is tried once more after the backend
  // has settled their exits (Backend::settle_exits).
  Status rmdir(Ino dir, std::string_view name, const Caller& caller);
  // Removing a control file: always EPERM, as on cgroupfs.
  Status unlink(Ino dir, std::string_view name, const Caller& caller);
  // v1: renames a cgroup within its parent (EIO across parents, EEXIST onto
  // an existing name, ENOTDIR for a file); v2: EPERM. ENOENT for no such
  // source, then EACCES without write and search access to both
  // directories, before any of those (the VFS's checks come first).
  Status rename(Ino dir, std::string_view name, Ino new_dir, std::string_view new_name,
                const Caller& caller);
  // Owner may chmod; only root may chown (EPERM), as in the VFS.
  Status chmod(Ino ino, uint32_t mode, const Caller& caller);
  Status chown(Ino ino, uint32_t uid, uint32_t gid, const Caller& caller);
  // Opens a file for reading and/or writing: EACCES by mode bits (root
  // passes them); EISDIR for a directory. A direction the file has no
  // handler for fails later, at read / write, with EINVAL.
  Result<std::unique_ptr<OpenFile>> open(Ino ino, bool read, bool write, const Caller& caller);
  // Reads up to `size` bytes at `offset`. ENODEV if the cgroup was removed.
  // `requester`: the task reading (the backend's id; 0: one the backend
  // cannot name; none: the opener), whose pid namespace a pid file's text
  // is generated in, as the kernel lists pids in the reader's.
  Result<std::string> read(OpenFile& file, uint64_t offset, size_t size,
                           std::optional<Pid> requester = std::nullopt);
  // Runs one write command; returns the bytes consumed (all of them).
  // E2BIG for more than the file takes in one write (FileDef::max_write),
  // before anything else, as kernfs. `requester`: the task writing, as for
  // read; a pid written is the one its namespace names, and "0" is the
  // requester itself, as in the kernel. Permission checks use the opener's
  // credentials, as the kernel's use the open-time ones.
  Result<size_t> write(OpenFile& file, std::string_view data, std::optional<Pid> requester = std::nullopt);
  // The most one write to the file `ino` may carry (E2BIG beyond); 0 if
  // `ino` names no control file.
  size_t max_write(Ino ino) const;

  // ---- path conveniences (cgsh, tests): absolute paths in the mount.
  Result<Ino> resolve(std::string_view path);
  // The absolute path in the mount of a node ("/" for the mount root);
  // ENOENT once its cgroup is gone. Locking: no engine lock held.
  Result<std::string> path_of(Ino ino);
  Result<std::string> read_path(std::string_view path, const Caller& caller);
  Status write_path(std::string_view path, std::string_view data, const Caller& caller);

  // ---- views of /proc
  // The text of /proc/cgroups.
  std::string proc_cgroups();
  // The pid namespace `caller` names pids in (null: the backend's own); see
  // Backend::pid_namespace. Locking: no engine lock held.
  std::shared_ptr<const PidNamespace> pid_namespace(const Caller& caller) {
    return backend_.pid_namespace(caller);
  }
  // The text of /proc/PID/cgroup (ESRCH if no such task).
  Result<std::string> proc_pid_cgroup(Pid pid);

  // ---- the backend
  // Offers a pid the engine does not know to the backend (host mode looks it
  // up in /proc); whether the engine has it afterwards. Locking: no engine
  // lock held.
  bool resolve_unknown_pid(Pid pid) { return backend_.resolve_pid(pid); }
  // Delivers queued release notifications to the backend. Requests run it
  // themselves; engine-level callers (tests, embedders) after operations.
  // Locking: no engine lock held.
  void run_pending_releases();

  // ---- cgroup.event_control
  // The device number (st_dev) at which the front end mounted this fs: a
  // control file named by a cgroup.event_control write must be one of
  // ours, i.e. have this device. 0 (not mounted, or unknown): none is.
  // Set once mounted, before requests that register events.
  void set_mount_device(uint64_t dev) { mount_dev_.store(dev); }

  // ---- the change log (journal/): every change is reported to `log`
  // (borrowed, may be null) from now on. Set it while no request runs.
  void set_change_log(ChangeLog* log) { change_log_.store(log); }
  // The next cgroup made gets id `next` at least (Engine::
  // advance_cgroup_ids_locked): a restore keeps inode numbers.
  void advance_cgroup_ids(uint64_t next) {
    MutexLock lock(engine_.cgroup_mutex());
    engine_.advance_cgroup_ids_locked(next);
  }
  // The path of a cgroup's directory from the mount root ("/" for the
  // mount root). Locking: cgroup mutex held.
  std::string path_locked(const Cgroup& cgroup) const CG_REQUIRES(engine_.cgroup_mutex());

  // ---- internals the file handlers use
  Hierarchy* mounted_hierarchy(HierarchyId id) const;
  // The directory / file inode of a cgroup in this mount.
  Ino dir_ino(const Cgroup& cgroup) const;
  Ino file_ino(const Cgroup& cgroup, std::string_view file) const;
  // The engine's cgroup mutex, named through this fs (what the *_locked
  // methods below require).
  Mutex& cgroup_mutex() const CG_RETURN_CAPABILITY(engine_.cgroup_mutex()) {
    return engine_.cgroup_mutex();
  }
  // For handlers, which hold the mutex through their FileContext's engine:
  // checks (debug builds) and tells the analysis that it is held.
  void assert_held() const CG_ASSERT_CAPABILITY(engine_.cgroup_mutex()) {
    engine_.cgroup_mutex().AssertHeld();
  }
  // Whether `caller` may access the node for `mask` (mode bits and owner),
  // VFS rules; root passes. Locking: cgroup mutex held.
  bool may_access_locked(Ino ino, const Caller& caller, int mask) CG_REQUIRES(engine_.cgroup_mutex());
  // The time `cgroup` has spent frozen (its effective freeze state set, by
  // itself or an ancestor), in microseconds, the current stretch included
  // (cgroup.stat.local's frozen_usec). Locking: cgroup mutex held.
  uint64_t frozen_usec_locked(const Cgroup& cgroup) CG_REQUIRES(engine_.cgroup_mutex());
  // The release agent of a v1 hierarchy. Locking: cgroup mutex held.
  std::string& release_agent_locked(HierarchyId id) CG_REQUIRES(engine_.cgroup_mutex());

 private:
  CgroupFs(Engine& engine, Layout layout, Backend& backend,
           std::unique_ptr<VirtualBackend> owned_backend);
  // Runs after every request that changed state: releases, then effects.
  // Locking: no engine lock held.
  void settle();
  void build_file_table();
  // The pid namespace a request on `file` names pids in: the opener's (found
  // at open) for the opener's own requests, else `requester`'s. Locking: no
  // engine lock held (the host reads /proc).
  std::shared_ptr<const PidNamespace> request_pidns(const OpenFile& file, std::optional<Pid> requester);
  // One attempt of rmdir(). If the engine refused it because the cgroup has
  // tasks, their thread ids are put in `*tasks`. Locking: none held; takes
  // the cgroup mutex.
  Status rmdir_once(Ino dir, std::string_view name, const Caller& caller, std::vector<Pid>* tasks);
  // A write to cgroup.event_control by `writer` (see FileDef::
  // registers_event). Locking: none held; takes the cgroup mutex after the
  // backend has taken the descriptors.
  Status register_event(OpenFile& file, std::string_view data, const Caller& writer);
  // Reports a change to the change log, if any. Locking: cgroup mutex held.
  void log_change_locked(const Change& change) CG_REQUIRES(engine_.cgroup_mutex()) {
    if (ChangeLog* log = change_log_.load()) log->record(change);
  }


  // A resolved inode.
  struct Node {
    enum Kind { kMountRoot, kCgroupDir, kFile } kind;
    Cgroup* cgroup = nullptr;   // kCgroupDir, kFile
    const FileDef* file = nullptr;  // kFile
  };
  Result<Node> node_locked(Ino ino) CG_REQUIRES(engine_.cgroup_mutex());
  // The path of a node (a cgroup directory, a file, the mount root).
  std::string node_path_locked(const Node& node) const CG_REQUIRES(engine_.cgroup_mutex());
  bool file_present_locked(const FileDef& def, const Cgroup& cgroup) CG_REQUIRES(engine_.cgroup_mutex());
  Css* file_css_locked(const FileDef& def, Cgroup& cgroup) CG_REQUIRES(engine_.cgroup_mutex());
  Attr attr_locked(Ino ino, const Node& node) CG_REQUIRES(engine_.cgroup_mutex());
  struct Meta {
    uint32_t mode, uid, gid;
  };
  Meta meta_locked(Ino ino, const Node& node) CG_REQUIRES(engine_.cgroup_mutex());
  Result<Cgroup*> cgroup_dir_locked(Ino dir) CG_REQUIRES(engine_.cgroup_mutex());

  // The definition of the file `ino` names if it is a control file's inode
  // (whether the file exists is node_locked's question).
  const FileDef* def_of(Ino ino) const;
  // The text of a pid file from the ids its handler listed: in the reader's
  // namespace `ns` (null: the backend's), then as FileDef::read_pids says.
  // Locking: no engine lock held (a namespace reads /proc).
  static std::string pid_lines(const FileDef& def, std::vector<Pid> ids, const PidNamespace* ns);

  // EngineObserver
  void populated_changed(Cgroup& cgroup, bool populated) override;
  void frozen_changed(Cgroup& cgroup, bool frozen) override;
  void file_changed(Cgroup& cgroup, std::string_view file) override;

  // ---- Immutable after construction
  Engine& engine_;
  Layout layout_;
  std::vector<FileDef> files_;
  const std::unique_ptr<VirtualBackend> owned_backend_;  // null when given one
  Backend& backend_;

  std::unordered_map<Ino, Meta> meta_ CG_GUARDED_BY(engine_.cgroup_mutex());  // explicit modes / owners
  std::unordered_map<HierarchyId, std::string> release_agents_ CG_GUARDED_BY(engine_.cgroup_mutex());
  // Frozen time of v2 cgroups that have been frozen, by cgroup id: the
  // stretches that ended, and when the current one began (if frozen).
  struct FrozenTime {
    std::chrono::nanoseconds total{0};
    std::optional<std::chrono::steady_clock::time_point> since;
  };
  std::unordered_map<uint64_t, FrozenTime> frozen_time_ CG_GUARDED_BY(engine_.cgroup_mutex());

  // Release notifications waiting for run_pending_releases().
  Mutex pending_mu_;
  std::vector<CgroupPtr> pending_releases_ CG_GUARDED_BY(pending_mu_);

  FileEvents events_;
  std::atomic<ChangeLog*> change_log_{nullptr};
  std::atomic<uint64_t> mount_dev_{0};
};

// One file of the table: a core file (read/write set) or a controller's
// (spec set).
//
// The lock rule, for every handler (core read/write here, controller ones in
// ControlFileSpec): it runs with the engine's cgroup mutex held, so it sees
// a stable hierarchy, may call the engine's *_locked methods and the queries
// that take only the css_set and task-table locks, and never calls an engine
// method that takes the cgroup mutex. Nothing in a handler reaches the world
// outside the engine: a pid that names_pid files are written is resolved
// before the lock is taken, processes to kill are left in FileContext, and
// effects recorded under the lock are applied by the backend after it.
struct FileDef {
  std::string name;
  uint32_t mode = 0;
  uint8_t versions = kV1V2;
  FileScope scope = FileScope::kEverywhere;
  ControllerId controller = -1;  // -1: a core file
  const ControlFileSpec* spec = nullptr;
  Result<std::string> (*read)(FileContext&) = nullptr;
  Status (*write)(FileContext&, std::string_view) = nullptr;
  // tasks, cgroup.procs, cgroup.threads: the written text names a pid
  // (parse_written_pid), resolved in the writer's pid namespace and through
  // the backend before the lock (FileContext::pid).
  bool names_pid = false;
  // cgroup.procs: the written pid's whole process moves, and the backend
  // adds the threads it has just made first (Backend::add_new_threads).
  bool moves_process = false;
  // The files that list pids read through this instead of `read`: the ids
  // in the order the file shows them, in the backend's namespace. The fs
  // turns them into the reader's namespace after the lock; v1 files
  // (`sorted_pids`) then drop the tasks the reader cannot see and sort,
  // each id once (the kernel's pidlist), v2 files keep their order and
  // show an invisible task as 0, as the kernel does.
  Result<std::vector<Pid>> (*read_pids)(FileContext&) = nullptr;
  bool sorted_pids = false;
  // cgroup.event_control: the write names two of the writer's descriptors,
  // taken through the backend before the lock (ControlFileSpec::
  // register_event).
  bool registers_event = false;
  // The largest write the file takes in one call (kernfs' atomic write
  // length: a page, unless the kernel's file says otherwise).
  size_t max_write = kPageWrite;
  static constexpr size_t kPageWrite = 4096;
};

// The pid a write to a names_pid file names: one integer (base 0, as the
// kernel's kstrtoint; leading/trailing white space stripped), 0 meaning the
// writer. EINVAL for anything else, ESRCH for 0 from a writer without a
// process here. The number is in the writer's pid namespace (see
// resolve_written_pid).
Result<Pid> parse_written_pid(std::string_view text, const Caller& caller);
// parse_written_pid, then the number turned from the writer's namespace
// `ns` (null: the backend's own) into the backend's id: ESRCH for a task
// the writer cannot see. "0" is the writer, whose id is the backend's
// already. Locking: no engine lock held (a namespace reads /proc).
Result<Pid> resolve_written_pid(std::string_view text, const Caller& caller,
                                const PidNamespace* ns);

// A cgroup.event_control line: "EFD CFD[ ARGS]", parsed as the kernel does
// (white space stripped around it, each number decimal digits only, EFD
// followed by one space, CFD by a space or the end; ARGS the rest, empty
// at the end). EINVAL otherwise. A number past INT_MAX reads as -1, which
// names no descriptor.
struct EventControlLine {
  int efd = -1, cfd = -1;
  std::string_view args;
};
Result<EventControlLine> parse_event_control(std::string_view text);

// The core (cgroup.*, tasks, ...) files, in fs/core_files.cc.
std::vector<FileDef> core_file_defs();

}  // namespace cgcore::fs
