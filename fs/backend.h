// Backend: what the file layer needs from the world its tasks live in — the
// one seam between fs::CgroupFs and its environment. A CgroupFs is given its
// backend at construction and never changes it.
//
// Two backends exist: VirtualBackend (below: cgsh, tests, embedders whose
// tasks exist only in the engine) and host::HostTracker (the host's real
// processes).
//
// Locking: CgroupFs calls every method with no engine lock held, so a
// backend may call the engine (and take its own locks before the engine's).
// Calls may come from any request thread at once: implementations are
// thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/engine.h"
#include "fs/change_log.h"

namespace cgcore::fs {

struct Caller;

// How one caller's pid namespace names the backend's tasks, for a caller
// outside the backend's own namespace (the kernel resolves every pid written
// to or listed by a cgroup file in the pid namespace of the process at hand).
// Obtained from Backend::pid_namespace; immutable; thread-safe.
//
// Locking: no engine lock held (implementations read /proc).
class PidNamespace {
 public:
  virtual ~PidNamespace() = default;
  // The backend's id of the task the caller's namespace calls `pid` (> 0).
  // ESRCH if the caller's namespace has no such task.
  virtual Result<Pid> from_caller(Pid pid) const = 0;
  // Replaces each of the backend's task ids in `ids` by the id the caller's
  // namespace knows it by, or 0 where the caller cannot see the task (it
  // lives in an ancestor or a sibling namespace). Order is kept.
  virtual void to_caller(std::span<Pid> ids) const = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // A pid written to tasks, cgroup.procs or cgroup.threads that the engine
  // does not know: makes it known if it exists in the backend's world (the
  // host looks it up in /proc). Returns whether the engine has it now.
  virtual bool resolve_pid(Pid pid) = 0;

  // Process `tgid`, which the engine knows, is about to move as a whole
  // (cgroup.procs): threads it made that the engine has not been told of
  // yet are added first, so that they move with it as they would in the
  // kernel. The default does nothing (the engine is the whole world).
  virtual void add_new_threads(Pid tgid);

  // The identity of task `tid` as the backend recorded it when it learned
  // of the task, with no lookup in the world (a journal of memberships
  // needs it on every cgroup.procs write). nullopt when the backend keeps
  // none for it; the default keeps none (virtual tasks are never reused
  // behind the engine's back).
  virtual std::optional<TaskIdentity> identity(Pid tid);

  // An rmdir was refused because the cgroup holds these tasks (thread ids):
  // those that have already exited in the backend's world, news of which
  // has not reached the engine yet, are removed from the engine now, so
  // that a cgroup emptied by an exit the caller has seen (it reaped its
  // child) can be removed, as in the kernel. The default does nothing (the
  // engine is the whole world).
  virtual void settle_exits(std::span<const Pid> tids);

  // The pid namespace `caller` names pids in (its pid is the backend's id
  // of it, as FUSE reports the requester). Null when no translation is
  // needed: the caller is in the backend's own namespace, or the backend
  // has no namespaces (virtual tasks), or the caller is not visible to the
  // backend at all (pid 0). A caller whose namespace cannot be read any
  // more (it exited) gets a namespace that sees nothing. The default is
  // for backends whose tasks all live in one namespace (virtual tasks).
  virtual std::shared_ptr<const PidNamespace> pid_namespace(const Caller& caller);

  // What a cgroup.event_control write names: the listener's sink, made from
  // the writer's eventfd, and the identity of the control file the writer's
  // second descriptor refers to.
  struct EventFds {
    std::unique_ptr<EventSink> sink;
    uint64_t control_dev = 0;  // st_dev of the control file
    uint64_t control_ino = 0;  // st_ino
    bool control_regular = false;  // a regular file
  };
  // Takes descriptors `efd` and `cfd` of the writer `caller` (its pid is the
  // backend's id of the writing thread, blocked in its write meanwhile).
  // In the kernel's order: EBADF if `efd` is not open, EINVAL if it is no
  // eventfd, EBADF if `cfd` is not open; EPERM if the backend may not take
  // them. The default has no descriptors to take (virtual tasks): EBADF.
  virtual Result<EventFds> take_event_fds(const Caller& caller, int efd, int cfd);

  // cgroup.kill: ends these processes (sorted, no duplicates), as the
  // kernel's SIGKILL would.
  virtual void kill_processes(std::span<const Pid> tgids) = 0;

  // A v1 cgroup with notify_on_release became empty (no tasks, no children)
  // and its hierarchy names a release agent: the kernel would now run
  // `agent cgroup_path`.
  virtual void release(const std::string& agent, const std::string& cgroup_path) = 0;

  // Called after every request that may have changed the engine's state
  // (writes, mkdir, rmdir), so that effects recorded under the engine's
  // locks — CPU affinity from cpuset, stops and continues from the freezer —
  // reach the world before the request returns.
  virtual void apply_effects() = 0;
};

// The backend of virtual tasks: no pid exists outside the engine, cgroup.kill
// ends the processes in the engine, there is nothing outside to apply
// effects to. Release notifications go to `on_release` if given, else they
// are kept in order for whoever asks (released()). Thread-safe.
class VirtualBackend final : public Backend {
 public:
  using ReleaseFn = std::function<void(const std::string& agent, const std::string& cgroup_path)>;
  explicit VirtualBackend(Engine& engine, ReleaseFn on_release = {})
      : engine_(engine), on_release_(std::move(on_release)) {}

  bool resolve_pid(Pid) override { return false; }
  void kill_processes(std::span<const Pid> tgids) override;
  void release(const std::string& agent, const std::string& cgroup_path) override;
  void apply_effects() override {}

  // The release notifications kept so far (none with an on_release), as
  // (agent, cgroup path), oldest first.
  std::vector<std::pair<std::string, std::string>> released() const;

 private:
  // ---- Immutable after construction
  Engine& engine_;
  const ReleaseFn on_release_;

  mutable Mutex mu_;
  std::vector<std::pair<std::string, std::string>> released_ CG_GUARDED_BY(mu_);
};

}  // namespace cgcore::fs
