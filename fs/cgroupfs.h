// CgroupFs: the cgroupfs file interface over an engine, independent of any
// VFS. A front end (FUSE, cgsh, an embedding sandbox) calls it with the
// caller's credentials; it answers with the kernel's file sets, formats and
// errnos, and enforces the kernel's permission rules.
//
// Nodes are identified by inode numbers: 1 is the mount root; a cgroup's
// directory is (cgroup id << 10) and its files (cgroup id << 10) | (file
// number + 1). Inode numbers are never reused, as cgroup ids are not.
//
// Thread-safety: every method is thread-safe. Metadata (modes, owners,
// release agents) is guarded by the engine's cgroup mutex. Handles
// (OpenFile) belong to one caller at a time.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/engine.h"
#include "fs/layout.h"

namespace cgcore::fs {

using Ino = uint64_t;
inline constexpr Ino kRootIno = 1;

// Who performs an operation: the opener of a file, the caller of mkdir.
struct Caller {
  uint32_t uid = 0;  // effective (fs) uid
  uint32_t gid = 0;
  std::vector<uint32_t> groups;  // supplementary groups
  Pid pid = 0;  // the caller's process: "0" written to cgroup.procs means it
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
  std::string snapshot_;
  bool loaded_ = false;
};

// What a core file handler sees.
struct FileContext {
  CgroupFs& fs;
  Engine& engine;
  Cgroup& cgroup;  // kept alive by the caller
  const Caller& caller;
};

class CgroupFs : private EngineObserver {
 public:
  // Mounts `layout` on `engine` (creating its v1 hierarchies) and serves it.
  // EINVAL for a bad layout; the engine's mount errors.
  static Result<std::unique_ptr<CgroupFs>> create(Engine& engine, std::string_view layout);
  ~CgroupFs() override;
  CgroupFs(const CgroupFs&) = delete;
  CgroupFs& operator=(const CgroupFs&) = delete;

  Engine& engine() const { return engine_; }
  const Layout& layout() const { return layout_; }

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
  Status rmdir(Ino dir, std::string_view name, const Caller& caller);
  // Removing a control file: always EPERM, as on cgroupfs.
  Status unlink(Ino dir, std::string_view name, const Caller& caller);
  // v1: renames a cgroup within its parent (EIO across parents, EEXIST onto
  // an existing name, ENOTDIR for a file); v2: EPERM.
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
  Result<std::string> read(OpenFile& file, uint64_t offset, size_t size);
  // Runs one write command; returns the bytes consumed (all of them).
  Result<size_t> write(OpenFile& file, std::string_view data);

  // ---- path conveniences (cgsh, tests): absolute paths in the mount.
  Result<Ino> resolve(std::string_view path);
  Result<std::string> read_path(std::string_view path, const Caller& caller);
  Status write_path(std::string_view path, std::string_view data, const Caller& caller);

  // ---- views of /proc
  // The text of /proc/cgroups.
  std::string proc_cgroups();
  // The text of /proc/PID/cgroup (ESRCH if no such task).
  Result<std::string> proc_pid_cgroup(Pid pid);

  // ---- notifications and effects
  // Called (from any thread, possibly with engine locks held: must only
  // queue) when a cgroup.events file's content may have changed.
  void set_events_sink(std::function<void(Ino)> sink) { events_sink_ = std::move(sink); }
  // Called with (release agent, cgroup path) when a v1 cgroup with
  // notify_on_release becomes empty (no tasks, no children); runs from
  // run_pending_releases(). Default: recorded in released().
  void set_release_sink(std::function<void(const std::string&, const std::string&)> sink) {
    release_sink_ = std::move(sink);
  }
  // Delivers queued release notifications. Callers run it after operations.
  void run_pending_releases();
  // Called with a pid written to tasks / cgroup.procs / cgroup.threads that
  // the engine does not know: the host backend looks it up in /proc, adds
  // it, and returns whether the engine has it now. Set before concurrent use.
  void set_pid_resolver(std::function<bool(Pid)> resolver) { pid_resolver_ = std::move(resolver); }
  // Whether the resolver knew `pid` (false without one).
  bool resolve_unknown_pid(Pid pid) { return pid_resolver_ && pid_resolver_(pid); }
  // cgroup.kill: how to kill a process. Default: the engine's exit_process
  // (virtual tasks); the host backend sends SIGKILL instead.
  void set_kill_sink(std::function<void(Pid)> sink) { kill_sink_ = std::move(sink); }

  // ---- internals the file handlers use
  Hierarchy* mounted_hierarchy(HierarchyId id) const;
  // The directory / file inode of a cgroup in this mount.
  Ino dir_ino(const Cgroup& cgroup) const;
  Ino file_ino(const Cgroup& cgroup, std::string_view file) const;
  // Whether `caller` may write the file (mode bits and owner), VFS rules.
  // Locking: cgroup mutex held.
  // (Asserted at run time: handlers reach it through another alias of the
  // engine, which the static analysis cannot match.)
  bool may_access_locked(Ino ino, const Caller& caller, int mask);
  // The release agent of a v1 hierarchy.
  std::string& release_agent_locked(HierarchyId id);
  void kill(Pid pid);

 private:
  CgroupFs(Engine& engine, Layout layout);
  void build_file_table();

  // A resolved inode.
  struct Node {
    enum Kind { kMountRoot, kCgroupDir, kFile } kind;
    Cgroup* cgroup = nullptr;   // kCgroupDir, kFile
    const FileDef* file = nullptr;  // kFile
  };
  Result<Node> node_locked(Ino ino) CG_REQUIRES(engine_.cgroup_mutex());
  bool file_present_locked(const FileDef& def, const Cgroup& cgroup) CG_REQUIRES(engine_.cgroup_mutex());
  Css* file_css_locked(const FileDef& def, Cgroup& cgroup) CG_REQUIRES(engine_.cgroup_mutex());
  Attr attr_locked(Ino ino, const Node& node) CG_REQUIRES(engine_.cgroup_mutex());
  struct Meta {
    uint32_t mode, uid, gid;
  };
  Meta meta_locked(Ino ino, const Node& node) CG_REQUIRES(engine_.cgroup_mutex());
  Result<Cgroup*> cgroup_dir_locked(Ino dir) CG_REQUIRES(engine_.cgroup_mutex());

  // EngineObserver
  void populated_changed(Cgroup& cgroup, bool populated) override;
  void frozen_changed(Cgroup& cgroup, bool frozen) override;

  Engine& engine_;
  Layout layout_;
  std::vector<FileDef> files_;  // constant after construction

  // Guarded by the engine's cgroup mutex.
  std::unordered_map<Ino, Meta> meta_;  // explicit modes / owners
  std::unordered_map<HierarchyId, std::string> release_agents_;

  // Release notifications waiting for run_pending_releases().
  Mutex pending_mu_;
  std::vector<CgroupPtr> pending_releases_ CG_GUARDED_BY(pending_mu_);

  std::function<void(Ino)> events_sink_;
  std::function<void(const std::string&, const std::string&)> release_sink_;
  std::function<void(Pid)> kill_sink_;
  std::function<bool(Pid)> pid_resolver_;

 public:
  // Release notifications delivered with the default sink.
  std::vector<std::pair<std::string, std::string>> released;
};

// One file of the table: a core file (read/write set) or a controller's
// (spec set).
struct FileDef {
  std::string name;
  uint32_t mode = 0;
  uint8_t versions = kV1V2;
  FileScope scope = FileScope::kEverywhere;
  ControllerId controller = -1;  // -1: a core file
  const ControlFileSpec* spec = nullptr;
  Result<std::string> (*read)(FileContext&) = nullptr;
  Status (*write)(FileContext&, std::string_view) = nullptr;
};

// The core (cgroup.*, tasks, ...) files, in fs/core_files.cc.
std::vector<FileDef> core_file_defs();

}  // namespace cgcore::fs
