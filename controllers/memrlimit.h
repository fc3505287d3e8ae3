// The memrlimit controller: limits the total address-space size (total_vm)
// of the processes of a cgroup. Not a Linux controller — it was proposed
// with the transactional attach design and never merged
// (docs/design-history.md).
//
// Model. Each address space's whole size (Mm::total_vm) is charged to one
// css, the one its reserved Mm slot points at (its "owner" css, in the
// mm->memcg style: there is no mm->owner task). mmap()/munmap()
// grow and shrink it; growing past a limit anywhere up the hierarchy fails
// with ENOMEM and counts failcnt at the cgroup that refused.
//
//   fork   A forked (non-shared) address space is a copy of its parent's
//          size: can_fork charges it to the child's cgroup and may refuse
//          the fork with ENOMEM (cancel_fork undoes). CLONE_VM children and
//          threads share the parent's address space and charge nothing.
//   exec   The process gets a fresh, empty address space pointing at the
//          exec'ing task's css; the old one's charge goes when it is freed.
//   exit   The last user of an address space gone, mm_release uncharges it.
//   move   When a thread-group leader moves and its address space points at
//          the leader's source css, the charge moves with it: can_attach
//          charges the destination (ENOMEM vetoes the migration), attach
//          uncharges the source and points the slot at the destination,
//          cancel_attach uncharges the destination. Common ancestors of
//          source and destination are never charged twice. Otherwise (a
//          thread, a CLONE_VM sharer whose address space points elsewhere)
//          nothing moves.
//   rmdir  An address space whose css went offline is re-pointed at the
//          nearest online ancestor at its next lookup; its charge moves up
//          with it (the ancestor already counted it).
//
// Thread-safety: mmap/munmap are thread-safe; hooks follow the engine's
// contract (core/controller.h). Lock order: see controllers/page_counter.h.
#pragma once

#include <memory>
#include <string_view>
#include <type_traits>
#include <vector>

#include "controllers/page_counter.h"
#include "core/controller.h"
#include "core/engine.h"

namespace cgcore {

class MemrlimitCss final : public ChargeCss {
 public:
  MemrlimitCss(MemrlimitCss* parent, CssRegistry& registry) : ChargeCss(parent, registry) {}
};

class MemrlimitController final : public Controller {
 public:
  MemrlimitController() = default;
  ~MemrlimitController() override = default;

  std::string_view name() const override { return "memrlimit"; }
  // The root css (parent null) reserves the Mm slot, at registration with
  // the cgroup mutex held (ENOSPC: registration fails, nothing half set up).
  Result<std::unique_ptr<Css>> css_alloc(Css* parent) override;

  // Charges the destination for each address space that moves with its
  // leader; ENOMEM (only the refusing cgroup's failcnt changed) vetoes.
  // Locking: cgroup mutex, movers' threadgroup locks and mmap_locks
  // (shared) held.
  Status can_attach(TaskSet& tset) override;
  void cancel_attach(TaskSet& tset) override;
  // Uncharges the sources and re-points the slots. No allocation, no lock.
  void attach(TaskSet& tset) noexcept override;
  // Drops the replaced css references.
  void post_attach(TaskSet& tset) override;
  // A new address space: points at the child's css and charges its copied
  // size there; ENOMEM over a limit (failcnt counted). Before the child is
  // visible. Locking: threadgroup locks held shared (engine contract).
  Status can_fork(Task& child, CssSet& cset) override;
  void cancel_fork(Task& child, CssSet& cset) override;
  // Points the fresh (empty) address space at the exec'ing task's css.
  void exec(Task& task) override;
  // Uncharges the address space's size from its css.
  // Locking: any engine locks; takes one table shard mutex (a leaf).
  void mm_release(Mm& mm) override;
  bool needs_stable_mm() const override { return true; }
  // Each css's usage equals its local charge plus its children's (offline
  // included); each local charge equals the total_vm of the address spaces
  // pointing there. Locking: every engine lock held; takes every shard
  // mutex, then the registry mutex.
  Status check_invariants(Engine& engine) override;
  std::span<const ControlFileSpec> files() const override;

  // Grows the address space of thread `pid` by `bytes` (rounded up to whole
  // pages, as mmap does). ESRCH if there is no such thread; EINVAL if
  // negative or not this controller's engine; ENOMEM over a limit (failcnt
  // counted) or on allocation failure — then nothing else changed.
  // Locking: takes the address space's mmap_lock exclusive; the caller holds
  // no engine lock.
  Status mmap(Engine& engine, Pid pid, int64_t bytes);
  // Shrinks it by `bytes` (rounded up to pages). ESRCH; EINVAL if negative
  // or larger than the address space. Locking: as mmap.
  Status munmap(Engine& engine, Pid pid, int64_t bytes);

  // The Mm slot of the owner css (valid once registered).
  int mm_slot() const { return slot_; }
  static MemrlimitCss& of(Css& css) { return static_cast<MemrlimitCss&>(css); }

 private:
  struct Charged {};  // table value: the key (a charged address space) is all

  // A charge move planned by can_attach.
  struct Move {
    Mm* mm;
    MemrlimitCss* from;
    MemrlimitCss* to;
    const PageCounter* stop;  // their common ancestor
    int64_t bytes;
  };

  // The owner css, resolved: unset means the root (an address space older
  // than the controller, size 0); an offline css is replaced by its nearest
  // online ancestor, its charge moving up with it.
  // Locking: the mm's mmap_lock held (exclusive, or shared by a migration).
  MemrlimitCss& owner_of(Mm& mm);
  void cancel_moves();

  int slot_ = -1;                 // Immutable after registration.
  MemrlimitCss* root_ = nullptr;  // Immutable after registration.
  CssRegistry registry_;
  // Address spaces with total_vm > 0 (charged at their slot's css).
  MmTable<Charged> charged_;

  // The migration in progress. Guarded by the engine's cgroup mutex.
  std::vector<Move> moves_;
  std::vector<Css*> deferred_puts_;  // reserved in can_attach for attach
};
static_assert(!std::is_abstract_v<MemrlimitController>);

}  // namespace cgcore
