// The interface every controller implements. The core calls these hooks and
// never names a controller; a controller is a plug-in registered with
// Engine::register_controller before the first non-root cgroup exists.
//
// All hooks are optional except name() and css_alloc(). Unless said
// otherwise, hooks may allocate and may fail with an errno Status.
//
// Migration hooks see one TaskSet: every task of the transaction, with its
// source and destination css_set. A controller is called for a migration only
// if the migration changes its css for at least one task. The contract:
//
//   can_attach         cgroup mutex + the movers' threadgroup locks held; may
//                      block and allocate; may veto. On a veto no later hook
//                      of this controller runs for the transaction.
//   can_attach_locked  the same plus the css_set lock held exclusive; must not
//                      block or allocate; may veto. Runs only if every
//                      controller's can_attach succeeded.
//   cancel_attach_locked  undo can_attach_locked; called (css_set lock held)
//                      for controllers whose can_attach_locked succeeded when
//                      a later controller vetoed in that phase.
//   cancel_attach      undo can_attach; called for every controller whose
//                      can_attach succeeded when the transaction is vetoed.
//   attach             the commit: called under the css_set lock right after
//                      every task moved; cannot fail (noexcept) and must not
//                      block or allocate. Tasks already point at their
//                      destination css_set.
//   post_attach        after the css_set lock is dropped (cgroup mutex and
//                      threadgroup locks still held); may block, cannot fail.
//                      It may walk the TaskSet only if the controller's
//                      post_attach_needs_tasks() says so: otherwise the
//                      transaction has already released its tasks (it ended
//                      in the commit hold) and a walk aborts in debug builds.
//
// Exactly one of {cancel_attach, attach} follows a successful can_attach.
//
// Fork hooks: can_fork runs before the child is visible, with the parent's
// threadgroup lock held shared, against the css_set the child will join; it
// may refuse (pids: EAGAIN). cancel_fork undoes a successful can_fork when a
// later controller refused. fork runs after the child is linked. exit runs
// when a task exits (it is already unlinked from its css_set, which is
// passed); release right after it (this engine has no zombies that linger
// with charges).
#pragma once

#include <memory>
#include <span>
#include <string_view>

#include "core/control_file.h"
#include "core/css.h"
#include "core/result.h"

namespace cgcore {

class CssSet;
class Engine;
class Mm;
class Task;
class TaskSet;

class Controller {
 public:
  Controller() = default;
  virtual ~Controller() = default;
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // The controller's name ("pids"), also the prefix of its files. Must be
  // unique in an engine, [a-z0-9_]+.
  virtual std::string_view name() const = 0;
  // Whether the controller works on threads (cgroup v2 threaded mode: it may
  // be enabled inside a threaded subtree, and its css follows single
  // threads). Domain controllers (false) see whole processes only.
  virtual bool threaded() const { return false; }
  // Whether the controller exists on cgroup v2. A v1-only controller (the
  // kernel's cpuacct) is never listed in, nor enabled through, the default
  // hierarchy's cgroup.controllers / cgroup.subtree_control; while bound
  // there its root css holds every task, unseen.
  virtual bool on_v2() const { return true; }

  // Allocates state for a new cgroup; `parent` is the parent cgroup's css, or
  // null for the root css (allocated once, at registration). Failing makes
  // the mkdir fail with that errno and leaves nothing behind.
  // Locking: cgroup mutex held.
  virtual Result<std::unique_ptr<Css>> css_alloc(Css* parent) = 0;
  // Makes the css visible to the controller's hierarchy-wide state; may fail.
  // Locking: cgroup mutex held.
  virtual Status css_online(Css&) { return Status::Ok(); }
  // The cgroup is being removed (or the controller disabled there); the css
  // lives on until its last reference drops. Locking: cgroup mutex held.
  virtual void css_offline(Css&) {}

  virtual Status can_attach(TaskSet&) { return Status::Ok(); }
  virtual Status can_attach_locked(TaskSet&) { return Status::Ok(); }
  virtual void cancel_attach_locked(TaskSet&) {}
  virtual void cancel_attach(TaskSet&) {}
  virtual void attach(TaskSet&) noexcept {}
  virtual void post_attach(TaskSet&) {}

  virtual Status can_fork(Task& /*child*/, CssSet& /*cset*/) { return Status::Ok(); }
  virtual void cancel_fork(Task& /*child*/, CssSet& /*cset*/) {}
  virtual void fork(Task& /*child*/) {}
  virtual void exit(Task& /*task*/, CssSet& /*cset*/) {}
  virtual void release(Task& /*task*/, CssSet& /*cset*/) {}
  // The process of `task` replaced its address space.
  // Locking: the process's threadgroup lock held shared.
  virtual void exec(Task& /*task*/) {}

  // An address space is freed (its last user is gone). Called from whatever
  // thread dropped the last reference, with arbitrary engine locks held:
  // must not block or call into the engine.
  virtual void mm_release(Mm& /*mm*/) {}
  // True if the controller's migration hooks read or move state of the
  // movers' address spaces: the transaction then holds each mover's
  // Mm::mmap_lock shared from before can_attach until after post_attach (or
  // the cancel), so that no charge changes an address space in between. The
  // core takes each lock once, for every controller that asks: a controller
  // does not take it itself.
  virtual bool needs_stable_mm() const { return false; }
  // True if post_attach walks the TaskSet. The core then keeps the
  // transaction's task lists until post_attach returns, at the price of one
  // more css_set lock hold per migration.
  virtual bool post_attach_needs_tasks() const { return false; }

  // The controller's root css moved to the root of another hierarchy
  // (mounting or destroying a v1 hierarchy). Locking: cgroup mutex held.
  virtual void bind(Css& /*root_css*/) {}

  // Checks the controller's own invariants (charges adding up across the
  // hierarchy, ...); Ok or EIO naming the violation. Called by
  // Engine::check_invariants, which holds every engine lock (cgroup mutex,
  // global threadgroup lock exclusive, css_set lock shared): use the
  // engine's *_locked accessors, take no engine lock.
  virtual Status check_invariants(Engine& /*engine*/) { return Status::Ok(); }

  // The control files added to each cgroup where the controller is active.
  virtual std::span<const ControlFileSpec> files() const { return {}; }

  // The engine this controller is registered with; null before.
  Engine* engine() const { return engine_; }
  // Set by the engine at registration.
  ControllerId id() const { return id_; }

 private:
  friend class Engine;
  Engine* engine_ = nullptr;
  ControllerId id_ = -1;
};

}  // namespace cgcore
