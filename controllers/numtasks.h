// The numtasks controller (not in Linux; docs/design-history.md): limits the number of tasks (threads)
// in a cgroup and its descendants like pids, but also refuses a migration
// that would take the destination, or any of its ancestors, past its limit.
//
// Counting is pids': every non-root css counts the tasks of its cgroup's
// subtree (in v2 also those of descendants where numtasks is not enabled);
// the root css counts nothing. fork and clone_thread are refused with EAGAIN
// past a limit; exit uncharges.
//
// Migration collects charges from every source cgroup at once:
//   can_attach          builds the list of moves, one per (source css,
//                       destination css) pair — a process's threads may come
//                       from several cgroups — with its task count and the
//                       two csses' common ancestor. Allocates; never refuses
//                       but with ENOMEM.
//   can_attach_locked   charges every destination, each from the destination
//                       css up to, not including, the common ancestor, and
//                       checks the limits on the way; refuses with EAGAIN
//                       after taking back all it charged.
//   cancel_attach_locked  takes the destination charges back.
//   attach              uncharges every source up to the common ancestor.
//   cancel_attach       drops the list.
// Charging only below the common ancestor (as the kernel's page counters do
// when memcg moves charges) means the ancestors shared by source and
// destination never count a mover twice: a move within a limited subtree
// that is at its limit succeeds, because that limit's count does not change.
//
// Concurrency: charges are atomics added and checked level by level and
// rolled back on refusal, so forks, exits and one migration run together. A
// refused fork or migration may be caused by a charge that is later rolled
// back (a fork racing for the last slot, or a migration that is then vetoed);
// no charge that succeeds ever takes a level past its limit, so, unlike
// pids, numtasks.current never stays above numtasks.max except when the
// limit was lowered below it (which is allowed).
//
// Files (none on the root; v1 and v2): numtasks.max, numtasks.current. See
// docs/controllers/numtasks.md.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "controllers/pids.h"
#include "core/controller.h"
#include "core/engine.h"

namespace cgcore {

// One cgroup's numtasks state; atomics, since forks and exits change the
// count concurrently and the limit is read by them (written by numtasks.max
// under the cgroup mutex).
class NumtasksCss final : public Css {
 public:
  // The readers below are atomic loads. Locking: none; a value read while
  // forks run may be outdated at once.
  // Tasks charged to this css (its subtree's tasks); 0 on the root.
  int64_t current() const { return counter_.load(std::memory_order_relaxed); }
  // The limit; kTaskLimitMax is "max".
  int64_t limit() const { return limit_.load(std::memory_order_relaxed); }

  // Test hook: adds `delta` to the count alone (to prove the invariant
  // checker notices). Locking: none.
  void TEST_corrupt_count(int64_t delta) { counter_.fetch_add(delta); }

 private:
  friend class NumtasksController;

  std::atomic<int64_t> counter_{0};
  std::atomic<int64_t> limit_{kTaskLimitMax};
};

class NumtasksController final : public Controller {
 public:
  NumtasksController() = default;

  std::string_view name() const override { return "numtasks"; }
  // Threaded, like pids: it counts threads, so a v2 threaded subtree may
  // enable it, as pids.
  bool threaded() const override { return true; }

  // A css with no limit and no charge; ENOMEM only.
  // Locking: cgroup mutex held.
  Result<std::unique_ptr<Css>> css_alloc(Css* parent) override;

  // Builds the list of moves (see the file comment); ENOMEM only.
  // Locking: cgroup mutex and the movers' threadgroup locks held.
  Status can_attach(TaskSet& tset) override;
  // Charges every move's destination below the common ancestor; EAGAIN,
  // with nothing left charged, if a level would pass its limit. Allocates
  // nothing, even to refuse.
  // Locking: as can_attach, plus the css_set lock held exclusive.
  Status can_attach_locked(TaskSet& tset) override;
  // Takes back what can_attach_locked charged. Locking: as can_attach_locked.
  void cancel_attach_locked(TaskSet& tset) override;
  // Drops the list. Locking: as can_attach.
  void cancel_attach(TaskSet& tset) override;
  // Uncharges every move's source below the common ancestor; the charges
  // are then where the tasks are. Locking: as can_attach_locked.
  void attach(TaskSet& tset) noexcept override;

  // Charges the child up the tree; EAGAIN (nothing charged) past a limit.
  // Locking: the parent's threadgroup lock held shared; concurrent with
  // other forks, exits and a migration.
  Status can_fork(Task& child, CssSet& cset) override;
  // Undoes a successful can_fork. Locking: as can_fork.
  void cancel_fork(Task& child, CssSet& cset) override;
  // Uncharges an exited task, once (exit does nothing). Locking: the task's
  // threadgroup lock held shared.
  void release(Task& task, CssSet& cset) override;

  // Every css counts its subtree's tasks (the root none) and limits are in
  // range. Ok or EIO. Locking: every engine lock held.
  Status check_invariants(Engine& engine) override;

  std::span<const ControlFileSpec> files() const override { return kFiles; }

 private:
  // Tasks moving from one css to another.
  struct Move {
    NumtasksCss* src;
    NumtasksCss* dst;
    NumtasksCss* common;  // the lowest common ancestor of src and dst
    int64_t n;
  };

  // The controller's css in `cset`. Locking: none (css_set keys are
  // immutable).
  static NumtasksCss& css_of(const CssSet& cset, ControllerId id) {
    return static_cast<NumtasksCss&>(*cset.css(id));
  }
  // Charge walks from `from` up to, not including, `stop` (null: the root,
  // never charged). Locking: none (atomics).
  static bool stops(NumtasksCss* p, NumtasksCss* stop);
  // Returns the first level that would pass its limit, after taking back
  // everything added; null when charged.
  static NumtasksCss* try_charge(NumtasksCss* from, NumtasksCss* stop, int64_t n);
  // Takes n back at every level; a count going negative aborts.
  static void uncharge(NumtasksCss* from, NumtasksCss* stop, int64_t n);

  // The control-file handlers of kFiles. Reads return the kernel's exact
  // text; write_max fails as parse_task_limit, changing nothing.
  // Locking: cgroup mutex held (the file layer calls them so).
  static Result<std::string> read_max(Engine&, Css& css);
  static Status write_max(Engine&, Css& css, std::string_view text);
  static Result<std::string> read_current(Engine&, Css& css);

  static constexpr ControlFileSpec kFiles[] = {
      {"max", kV1V2, FileScope::kNonRoot, &read_max, &write_max},
      {"current", kV1V2, FileScope::kNonRoot, &read_current, nullptr},
  };

  // ---- The transaction in progress. Guarded by the engine's cgroup mutex
  // (one migration at a time, and every migration hook holds it; the hooks
  // assert it); capacity is kept so that a warm controller allocates nothing
  // per migration.
  std::vector<Move> moves_ CG_GUARDED_BY(engine()->cgroup_mutex());
  // The refusal message, reserved in can_attach so that can_attach_locked
  // can refuse without allocating.
  std::string veto_message_ CG_GUARDED_BY(engine()->cgroup_mutex());
};

static_assert(!std::is_abstract_v<NumtasksController>);

}  // namespace cgcore
