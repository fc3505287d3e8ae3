// The pids controller: limits the number of tasks (threads) in a cgroup and
// its descendants, as the kernel's kernel/cgroup/pids.c does.
//
// Every non-root css counts the tasks of its cgroup's subtree (its own tasks
// plus its children's counts; in cgroup v2 a css also collects the tasks of
// descendants where pids is not enabled). The root css counts nothing: like
// the kernel, charges stop below the root, which has no limit and no files.
//
// Rules (the kernel's):
//   * fork (and clone_thread) is refused with EAGAIN when the child would
//     push any non-root ancestor-or-self past its pids.max. The charge goes
//     up the tree with atomics; on the first level over its limit everything
//     added so far is rolled back.
//   * migration is never refused: the destination is charged by force and
//     may end above its limit; lowering pids.max below pids.current is
//     allowed. Either way, further forks there fail until enough tasks left.
//   * exit uncharges (in the release hook: the engine calls exit then
//     release back to back, and the kernel uncharges at release).
//
// What is guaranteed under concurrency: a fork succeeds only if, at the
// moment its charge was added, every charged level was within its limit, so
// the number of tasks that forks placed in a subtree never exceeds the limit
// that was in force when they forked. pids.current can read above pids.max
// (a) by the charge of a fork that is about to be refused and rolled back
// (transiently; the kernel shows the same), (b) after a migration forced the
// charge, or (c) after the limit was lowered. Two forks racing for the last
// slot may both be refused (each sees the other's transient charge), as in
// the kernel. pids.peak is exact (a compare-and-swap maximum) but, like the
// kernel's, records values of charges later rolled back at a higher level.
//
// Files (none on the root): pids.max, pids.current, pids.peak, pids.events
// (v1 and v2), pids.events.local (v2 only). See docs/controllers/pids.md.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/controller.h"
#include "core/engine.h"

namespace cgcore {

// ------------------------------------------------------------------ shared
// pids.max and numtasks.max share their syntax and checks; numtasks uses
// these too.

// The kernel's PIDS_MAX (PID_MAX_LIMIT + 1): valid limits are below it, and
// the value itself stands for "max" (no limit).
inline constexpr int64_t kTaskLimitMax = 4194305;

// Parses what was written to a task-limit file (`file` names it in error
// messages; the file layer has already cut it at its first NUL). As the
// kernel: white space (kisspace, core/parse.h) is stripped at both ends,
// "max" gives kTaskLimitMax, anything else is read as kstrtoll(s, 0) does
// (an optional sign; "0x" hex, leading-0 octal, else decimal; one trailing
// newline allowed). Errors: ERANGE if the number does not fit in 64 bits
// (before any junk after it is looked at), EINVAL for anything else that is
// not a number (the empty text included), or a number below 0 or not below
// kTaskLimitMax.
// Locking: none (pure).
Result<int64_t> parse_task_limit(std::string_view text, std::string_view file);

// The text a task-limit file reads: "max\n" for kTaskLimitMax, else the
// decimal number and "\n". Locking: none (pure).
std::string format_task_limit(int64_t limit);

// Checks that, for controller `id` (called `name` in messages), every css of
// its hierarchy counts exactly the tasks of its cgroup's subtree and the root
// css counts none; `count_of` reads a css's count. Ok, or EIO naming the
// cgroup and both numbers.
// Locking: as Controller::check_invariants (every engine lock held).
Status check_subtree_task_counts(Engine& engine, ControllerId id, std::string_view name,
                                 int64_t (*count_of)(const Css&));

// ------------------------------------------------------------------ pids

// One cgroup's pids state. Every field is an atomic: fork and exit change
// them concurrently on many threads with no engine lock that excludes each
// other; the limit is written by pids.max under the cgroup mutex.
class PidsCss final : public Css {
 public:
  // The readers below are atomic loads. Locking: none; a value read while
  // forks run may be outdated at once.
  // Tasks charged to this css (its subtree's tasks); 0 on the root.
  int64_t current() const { return counter_.load(std::memory_order_relaxed); }
  // The limit; kTaskLimitMax is "max".
  int64_t limit() const { return limit_.load(std::memory_order_relaxed); }
  // The highest count reached (pids.peak).
  int64_t peak() const { return watermark_.load(std::memory_order_relaxed); }
  // Forks refused while forking from this css, whichever level refused (the
  // v1 pids.events).
  int64_t forks_refused() const { return events_forkfail_.load(std::memory_order_relaxed); }
  // Forks refused by this css's or a descendant's limit (v2 pids.events).
  int64_t events_max() const { return events_max_.load(std::memory_order_relaxed); }
  // Forks refused by this very css's limit (v2 pids.events.local).
  int64_t events_max_local() const { return events_max_local_.load(std::memory_order_relaxed); }

  // Test hook: adds `delta` to the count alone (to prove the invariant
  // checker notices). Locking: none.
  void TEST_corrupt_count(int64_t delta) { counter_.fetch_add(delta); }

 private:
  friend class PidsController;

  std::atomic<int64_t> counter_{0};
  std::atomic<int64_t> limit_{kTaskLimitMax};
  std::atomic<int64_t> watermark_{0};
  std::atomic<int64_t> events_forkfail_{0};
  std::atomic<int64_t> events_max_{0};
  std::atomic<int64_t> events_max_local_{0};
};

class PidsController final : public Controller {
 public:
  PidsController() = default;

  std::string_view name() const override { return "pids"; }
  // Threaded, as the kernel's: it counts threads, so a v2 threaded subtree
  // may enable it and its css follows single threads.
  bool threaded() const override { return true; }

  // A css with no limit and no charge. Cannot fail but for ENOMEM.
  // Locking: cgroup mutex held.
  Result<std::unique_ptr<Css>> css_alloc(Css* parent) override;

  // Records, per source css_set of the transaction, how many tasks move from
  // which css to which (nothing is charged yet, so a veto by any controller
  // leaves every counter and peak as it was). Never refuses: ENOMEM only.
  // Locking: cgroup mutex and the movers' threadgroup locks held.
  Status can_attach(TaskSet& tset) override;
  // Drops what can_attach recorded. Locking: as can_attach.
  void cancel_attach(TaskSet& tset) override;
  // Moves the recorded charges: the destination side is charged by force
  // (may exceed pids.max), then the source side uncharged, each only below
  // the two csses' common ancestor, whose count does not change. Like the
  // kernel, which moves one task at a time, the common ancestors' peaks see
  // the transient "+1". Allocates nothing.
  // Locking: cgroup mutex, movers' threadgroup locks, css_set lock held.
  void attach(TaskSet& tset) noexcept override;

  // Charges the child to `cset`'s css and every non-root ancestor; EAGAIN
  // (nothing charged, refusal counted in pids.events) if a level would pass
  // its limit. Locking: the parent's threadgroup lock held shared; runs
  // concurrently with other forks and exits.
  Status can_fork(Task& child, CssSet& cset) override;
  // Undoes a successful can_fork. Locking: as can_fork.
  void cancel_fork(Task& child, CssSet& cset) override;
  // Uncharges an exited task, once (exit does nothing). Locking: the task's
  // threadgroup lock held shared; concurrent with forks and exits.
  void release(Task& task, CssSet& cset) override;

  // Every css counts its subtree's tasks (the root none), counts and limits
  // are in range, peak >= current, and a v2 css's events count at least its
  // local events plus its live children's. Ok or EIO.
  // Locking: every engine lock held (see Controller::check_invariants).
  Status check_invariants(Engine& engine) override;

  std::span<const ControlFileSpec> files() const override { return kFiles; }

 private:
  // Tasks moving from one css to another, for one source css_set.
  struct Move {
    PidsCss* src;
    PidsCss* dst;
    PidsCss* common;  // the lowest common ancestor of src and dst
    int64_t n;
  };

  // Charge walks. Each goes from `from` up to, not including, `stop` (null:
  // up to the root, which is never charged). Locking: none (atomics).
  static bool stops(PidsCss* p, PidsCss* stop);
  // Adds n at every level without looking at limits (migration).
  static void charge_forced(PidsCss* from, PidsCss* stop, int64_t n);
  // Takes n back at every level; a count going negative aborts.
  static void uncharge(PidsCss* from, PidsCss* stop, int64_t n);
  // Adds n level by level up to the root; returns the first level that
  // passes its limit after taking back everything added (null: charged).
  static PidsCss* try_charge(PidsCss* from, int64_t n);

  // The controller's css in `cset`. Locking: none (css_set keys are
  // immutable).
  static PidsCss& css_of(const CssSet& cset, ControllerId id) {
    return static_cast<PidsCss&>(*cset.css(id));
  }
  // The control-file handlers of kFiles. Reads return the kernel's exact
  // text; write_max fails as parse_task_limit, changing nothing.
  // Locking: cgroup mutex held (the file layer calls them so).
  static Result<std::string> read_max(Engine&, Css& css);
  static Status write_max(Engine&, Css& css, std::string_view text);
  static Result<std::string> read_current(Engine&, Css& css);
  static Result<std::string> read_peak(Engine&, Css& css);
  static Result<std::string> read_events(Engine&, Css& css);
  static Result<std::string> read_events_local(Engine&, Css& css);

  static constexpr ControlFileSpec kFiles[] = {
      {"max", kV1V2, FileScope::kNonRoot, &read_max, &write_max},
      {"current", kV1V2, FileScope::kNonRoot, &read_current, nullptr},
      {"peak", kV1V2, FileScope::kNonRoot, &read_peak, nullptr},
      {"events", kV1V2, FileScope::kNonRoot, &read_events, nullptr},
      {"events.local", kV2, FileScope::kNonRoot, &read_events_local, nullptr},
  };

  // The transaction in progress: filled by can_attach, consumed by attach,
  // dropped by cancel_attach. Guarded by the engine's cgroup mutex (one
  // migration at a time); its capacity is kept so that a warm controller
  // allocates nothing per migration.
  std::vector<Move> moves_ CG_GUARDED_BY(engine()->cgroup_mutex());
};

static_assert(!std::is_abstract_v<PidsController>);

}  // namespace cgcore
