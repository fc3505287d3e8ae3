// The memory controller (seed 003; kernel cgroup v1 and v2 files): limits
// the resident memory charged by the address spaces of a cgroup's processes.
//
// Model. An address space (Mm) points at its memory cgroup through a
// reserved Mm slot (mm->memcg, seed 003; there is no mm->owner and no walk
// over processes when a leader exits). charge()/uncharge() stand for the
// pages a process faults in and frees; Mm::charged holds the total. A charge
// goes to the css the address space points at, and up the hierarchy
// (PageCounter); over a limit anywhere it fails with ENOMEM, counting failcnt
// and a "max" event at the cgroup whose limit refused. There is no reclaim;
// an embedder may set a reclaim hook that runs once before a charge fails.
//
// Where charges live. Like the kernel's pages, bytes stay charged to the
// cgroup they were charged in until uncharged, also after the process moves
// (unless charge moving moves them, or the cgroup is removed: its charges
// then go to its parent). Each address space therefore keeps a ledger: the
// bytes it holds in each css, most recently charged first. An uncharge takes
// bytes from the front of the ledger (the css charged most recently) —
// cgcore has no page identities, so this order is its rule.
// When the address space is freed (its last user exits or execs), mm_release
// uncharges everything it still holds, wherever that is.
//
// Keeping mm->memcg in sync (seed 003): a new address space (fork, spawn)
// points at the css of the task that gets it; exec points the fresh address
// space at the exec'ing task's css; a migration that moves a thread-group
// leader points its address space at the destination; a css that went
// offline (rmdir) is replaced by its nearest online ancestor at the next
// lookup. Threads and CLONE_VM children do not change where a shared address
// space points.
//
// Charge moving (v1 memory.move_charge_at_immigrate, read from the
// destination): bit 1 (anonymous) moves the bytes an address space holds in
// the source css when its leader moves and it points at the source css; the
// destination is precharged in can_attach (ENOMEM vetoes the whole
// migration), the precharge is dropped by cancel_attach, the move happens in
// attach. All of an address space's charge is anonymous here; bit 2 (file
// pages) is stored and reads back but moves nothing (cgcore has no page
// cache). Linux removed charge moving in 2024; cgcore keeps it (seed 002).
//
// Thread-safety: charge/uncharge are thread-safe; hooks follow the engine's
// contract (core/controller.h). Lock order: see controllers/page_counter.h.
#pragma once

#include <functional>
#include <memory>
#include <string_view>
#include <type_traits>
#include <vector>

#include "controllers/page_counter.h"
#include "core/controller.h"
#include "core/engine.h"

namespace cgcore {

class MemoryController;

// One memory cgroup's state.
class MemCss final : public ChargeCss {
 public:
  static constexpr uint32_t kMoveAnon = 1;
  static constexpr uint32_t kMoveFile = 2;

  MemCss(MemCss* parent, CssRegistry& registry) : ChargeCss(parent, registry) {}
  MemCss* up() const { return static_cast<MemCss*>(ChargeCss::up()); }

  // memory.move_charge_at_immigrate bits. Written under the cgroup mutex,
  // read by migrations (which hold it too); atomic for lock-free readers.
  std::atomic<uint32_t> move_flags{0};
  // memory.events "max": charges refused by this cgroup's limit, counted
  // here and at every non-root ancestor (hierarchical), and here only
  // (local, memory.events.local).
  std::atomic<int64_t> max_events{0};
  std::atomic<int64_t> max_events_local{0};
  // Set by css_offline with every ledger shard mutex held; from then on no
  // charge lands here (see MemoryController::css_offline).
  std::atomic<bool> dying{false};
};

class MemoryController final : public Controller {
 public:
  // Called once, with no lock held, when a charge of `bytes` is refused by
  // the limit of the cgroup with id `over_limit` (Cgroup::id; look it up with
  // Engine::find_cgroup_locked); the charge is then tried once more. It may
  // uncharge other address spaces (through uncharge()), change limits, or
  // call into the engine. An id rather than a css: the controller holds no
  // reference across the call (the invariant checker counts them all).
  using ReclaimHook = std::function<void(Engine& engine, uint64_t over_limit, int64_t bytes)>;

  MemoryController() = default;
  ~MemoryController() override = default;

  std::string_view name() const override { return "memory"; }
  // The root css (parent null) also reserves the Mm slot for mm->memcg: at
  // registration, cgroup mutex held, so reserve_mm_slot_locked (ENOSPC if
  // none is left — registration fails and nothing is half set up).
  Result<std::unique_ptr<Css>> css_alloc(Css* parent) override;
  // Moves every charge held in the css to its parent (the parent already
  // counts them) and marks it dying, so that charges find an online css.
  // Locking: cgroup mutex held; takes every table shard mutex.
  void css_offline(Css& css) override;

  // Precharges the destination for every address space whose charges move;
  // ENOMEM (and nothing changed but the refusing cgroup's failcnt and max
  // event) when a limit refuses. Locking: cgroup mutex, movers' threadgroup
  // locks and mmap_locks (shared) held.
  Status can_attach(TaskSet& tset) override;
  // Drops the precharges. Locking: as can_attach.
  void cancel_attach(TaskSet& tset) override;
  // Moves the precharged bytes from source to destination and points moved
  // leaders' address spaces at the destination. No allocation, no lock.
  void attach(TaskSet& tset) noexcept override;
  // Drops the css references attach replaced. Locking: as can_attach.
  void post_attach(TaskSet& tset) override;
  // A new address space (a forked or spawned process that does not share
  // its parent's) points at the css of the cgroup the child joins — set
  // before the child is visible, so no charge can find it unset.
  // Locking: threadgroup locks held shared (engine contract).
  Status can_fork(Task& child, CssSet& cset) override;
  void cancel_fork(Task& child, CssSet& cset) override;
  // Points the fresh address space at the exec'ing task's css (the task may
  // have migrated alone, seed 003).
  void exec(Task& task) override;
  // Uncharges whatever the address space still holds, wherever it lives.
  // Locking: any engine locks; takes one table shard mutex (a leaf).
  void mm_release(Mm& mm) override;
  bool needs_stable_mm() const override { return true; }
  // Every css's usage equals its local charges plus its children's (offline
  // ones included: css_offline has emptied them, so they must hold 0); each
  // css's local charge equals what the address spaces' ledgers say they hold
  // there, and no ledger names an offline css; each ledger adds up to
  // Mm::charged; watermarks are at least the usage.
  // Locking: every engine lock held (engine contract); takes every table
  // shard mutex, then the registry mutex.
  Status check_invariants(Engine& engine) override;
  std::span<const ControlFileSpec> files() const override;

  // Charges `bytes` (rounded up to whole pages) to the address space of
  // thread `pid`, at the css it points at (resolving an offline one to its
  // nearest online ancestor). ESRCH if there is no such thread; EINVAL if
  // negative or not this controller's engine; ENOMEM if a limit refuses
  // (after the reclaim hook, if any, had its one chance) or on allocation
  // failure. Nothing changes on failure except failcnt / max events.
  // Locking: takes the address space's mmap_lock exclusive; the caller
  // holds no engine lock.
  Status charge(Engine& engine, Pid pid, int64_t bytes);
  // Uncharges `bytes` (rounded up to pages) from the address space of thread
  // `pid`, most recently charged css first. ESRCH; EINVAL if negative or
  // more than the address space holds.
  // Locking: as charge.
  Status uncharge(Engine& engine, Pid pid, int64_t bytes);
  // Sets the reclaim hook (empty: none). Not synchronised with charges in
  // flight: set it before concurrent use.
  void set_reclaim_hook(ReclaimHook hook) { reclaim_ = std::move(hook); }

  // memory.force_empty (v1): moves the charges held in `css` itself (not
  // its children's) to its parent, as older (3.x) kernels did; the address
  // spaces' records follow. EBUSY while the cgroup has tasks (the 6.18
  // kernel reclaims instead and always succeeds: cgcore cannot reclaim).
  // REQUIRES: css is not a root.
  // Locking: cgroup mutex held; takes every table shard mutex.
  Status force_empty_locked(Engine& engine, MemCss& css);

  // The Mm slot holding mm->memcg (valid once registered).
  int mm_slot() const { return slot_; }
  // The bytes `mm` holds in `css` (0 if none). For tests and tools.
  // Locking: takes the table shard mutex.
  int64_t charged_in(const Mm& mm, const MemCss& css);

  static MemCss& of(Css& css) { return static_cast<MemCss&>(css); }

 private:
  struct LedgerEntry {
    // A live css: css_offline moves entries off a css before it can be
    // freed, so the entry needs no reference.
    MemCss* css;
    int64_t bytes;  // > 0 outside a migration (a precharged entry may be 0)
  };
  using Ledger = std::vector<LedgerEntry>;  // most recently charged first

  // A charge move planned by can_attach.
  struct Move {
    Mm* mm;
    Ledger* ledger;  // the mm's table entry; nodes are stable
    MemCss* from;
    MemCss* to;
    const PageCounter* stop;  // their common ancestor: not charged twice
    int64_t bytes;
    bool added_to_entry;  // can_attach created the ledger entry of `to`
  };
  // A leader's address space to point at `to` on commit.
  struct Switch {
    Mm* mm;
    MemCss* to;
  };

  // mm->memcg, resolved: an unset slot (an address space older than the
  // controller) is the root; an offline css is replaced by its nearest
  // online ancestor (exchanged into the slot, the old reference put).
  // Locking: the mm's mmap_lock held (exclusive, or shared by a migration,
  // which excludes every other writer of the slot).
  MemCss& memcg_of(Mm& mm);
  // Charges `bytes` at memcg_of(mm). On a refusal by a limit, *refused gets
  // the refusing cgroup's id. Locking: mmap_lock held exclusive.
  Status charge_locked(Mm& mm, int64_t bytes, uint64_t* refused);
  static LedgerEntry* find_entry(Ledger& ledger, const MemCss* css);
  // Online and not being taken offline.
  static bool alive(Css& css);
  // Re-labels entry `e` as `to`'s, merging with an entry `to` already has.
  // Locking: the ledger's shard mutex (or all of them) held.
  static void move_entry(Ledger& ledger, LedgerEntry& e, MemCss& to);
  // Counts a refusal at `refused` (memory.events max).
  static void count_max_event(MemCss& refused);
  // The css owning a refusing counter, found from the charged css upward.
  static MemCss* owner_of(MemCss& charged, const PageCounter* counter);
  // Undoes the precharges of moves_ (reverse order) and clears the plan.
  void cancel_moves();

  int slot_ = -1;           // Immutable after registration.
  MemCss* root_ = nullptr;  // Immutable after registration.
  CssRegistry registry_;
  MmTable<Ledger> ledgers_;
  ReclaimHook reclaim_;

  // The migration in progress. Guarded by the engine's cgroup mutex (every
  // migration hook runs under it); attach only changes elements in place.
  std::vector<Move> moves_;
  std::vector<Switch> switches_;
  std::vector<Css*> deferred_puts_;  // reserved in can_attach for attach
};
static_assert(!std::is_abstract_v<MemoryController>);

}  // namespace cgcore
