// The memory controller (the kernel's cgroup v1 and v2 files): limits
// the resident memory charged by the address spaces of a cgroup's processes.
//
// Model. An address space (Mm) points at its memory cgroup through a
// reserved Mm slot (mm->memcg: there is no mm->owner and no walk
// over processes when a leader exits). charge()/uncharge() stand for the
// pages a process faults in and frees; Mm::charged holds the total. A charge
// goes to the css the address space points at, and up the hierarchy
// (PageCounter); over a limit anywhere it fails with ENOMEM, counting failcnt
// and a "max" event at the cgroup whose limit refused. There is no reclaim;
// an embedder may set a reclaim hook that runs once before a charge fails.
//
// Enforcement (the kernel's OOM path, for an embedder that learns of memory
// after it is in use — the host backend): force_charge() lets usage pass
// the limits, as the kernel's OOM path lets a charge through briefly;
// over_limits() says which cgroups are above memory.max / memory.high;
// oom_candidates() and oom_group() say whom the kernel would kill; the
// embedder reclaims or kills outside every engine lock and reports back
// (begin_oom, count_oom_kill, count_oom_group_kill) so that memory.events
// and memory.oom_control count as the kernel's do. The controller itself
// never kills anything: virtual tasks are never OOM-killed.
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
// Keeping mm->memcg in sync: a new address space (fork, spawn)
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
// cache). Linux removed charge moving in 2024; cgcore keeps it, since moving a
// process's charges with it is what the transactional attach is for
// (docs/design-history.md).
//
// Swap (cgroup v2 memory.swap.*). A second account beside memory, kept the
// same way: every css has a swap PageCounter (parent-linked like `counter`),
// a local swap count and swap.high; every address space a swap ledger. An
// embedder that models swap-out calls uncharge() and then charge_swap() (and
// swap-in the reverse): the two accounts are independent, this controller
// moves nothing between them. A swap charge that would pass swap.max at any
// level is refused and counts "max" and "fail" in memory.swap.events at the
// cgroup being charged (not the refusing one) and its non-root ancestors;
// "high" counts at each level a swap charge leaves above its swap.high.
// Swap charges stay, follow css_offline, move with v1 charge moving (bit 1)
// and are freed by mm_release exactly as memory charges are. v1 has no swap
// files (its memsw.* files are a combined counter, not provided).
//
// v1 eventfd notifications (cgroup.event_control) live in listeners()
// (controllers/memory_events.h); every usage change, OOM and css_offline
// here reports to it.
//
// Thread-safety: charge/uncharge (and their swap forms) are thread-safe;
// hooks follow the engine's contract (core/controller.h). Lock order: see
// controllers/page_counter.h; a memory table shard mutex and a swap table
// shard mutex are never held together.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <string_view>
#include <type_traits>
#include <vector>

#include "controllers/memory_events.h"
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

  MemCss(MemCss* parent, CssRegistry& registry)
      : ChargeCss(parent, registry), swap(parent ? &parent->swap : nullptr) {}
  MemCss* up() const { return static_cast<MemCss*>(ChargeCss::up()); }

  // Swap bytes of this cgroup and its descendants (memory.swap.current;
  // limit: swap.max, watermark: swap.peak), and those charged here and not
  // through a child (`swap_local`, so that swap usage == swap_local + the
  // children's). Changed together under the owning address space's swap
  // table shard mutex, as `counter` and `local` are under its memory one.
  PageCounter swap;
  std::atomic<int64_t> swap_local{0};
  // memory.swap.high (v2): above it a swap charge counts a "high" event;
  // never a limit. kUnlimited: "max".
  std::atomic<int64_t> swap_high{kUnlimited};
  // memory.swap.events, in the kernel's order, counted here and at every
  // non-root ancestor (there is no local form).
  enum SwapEvent { kSwapHigh, kSwapMax, kSwapFail, kNrSwapEvents };
  std::array<std::atomic<int64_t>, kNrSwapEvents> swap_events{};

  // memory.move_charge_at_immigrate bits. Written under the cgroup mutex,
  // read by migrations (which hold it too); atomic for lock-free readers.
  std::atomic<uint32_t> move_flags{0};
  // memory.events, in the kernel's order: counted here and at every
  // non-root ancestor (`events`, hierarchical) and here only
  // (`events_local`, memory.events.local; v1's oom_control oom_kill).
  enum Event { kLow, kHigh, kMax, kOom, kOomKill, kOomGroupKill, kNrEvents };
  std::array<std::atomic<int64_t>, kNrEvents> events{};
  std::array<std::atomic<int64_t>, kNrEvents> events_local{};
  // memory.high (v2): above it a charge counts a "high" event and the
  // embedder may reclaim; never a limit. kUnlimited: "max".
  std::atomic<int64_t> high{kUnlimited};
  // memory.oom.group (v2): an OOM kill in the subtree kills every process
  // of the highest such cgroup on the victim's path.
  std::atomic<bool> oom_group{false};
  // memory.oom_control oom_kill_disable (v1); copied from the parent when
  // the cgroup is made, as the host kernel does.
  std::atomic<bool> oom_kill_disable{false};
  // An OOM here found kills disabled: the cgroup and its subtree read
  // under_oom 1 until its usage fits its limit again (over_limits clears it).
  std::atomic<bool> oom_locked{false};
  // Set by css_offline with every memory ledger shard mutex held (before it
  // takes the swap ones); from then on no charge, memory or swap, lands here
  // (see MemoryController::css_offline).
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
  // Moves every charge held in the css, memory and swap, to its parent (the
  // parent already counts them) and marks it dying, so that charges find an
  // online css. Locking: cgroup mutex held; takes every memory table shard
  // mutex, releases them, then every swap table shard mutex.
  void css_offline(Css& css) override;

  // Precharges the destination for every address space whose charges move
  // (its memory, and its swap: bit 1 moves both, as the kernel's v1 did);
  // ENOMEM (and nothing changed but the refusing cgroup's failcnt and, for
  // memory, its max event) when a limit refuses. Locking: cgroup mutex,
  // movers' threadgroup locks and mmap_locks (shared) held; takes one table
  // shard mutex at a time.
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
  // have migrated alone).
  void exec(Task& task) override;
  // Uncharges whatever the address space still holds, memory and swap,
  // wherever it lives. Locking: any engine locks; takes one memory table
  // shard mutex, then one swap table shard mutex (each a leaf).
  void mm_release(Mm& mm) override;
  bool needs_stable_mm() const override { return true; }
  // Every css's usage equals its local charges plus its children's (offline
  // ones included: css_offline has emptied them, so they must hold 0); each
  // css's local charge equals what the address spaces' ledgers say they hold
  // there, and no ledger names an offline css; each ledger adds up to
  // Mm::charged; watermarks are at least the usage. The same for swap:
  // swap usage == swap_local + the children's, swap_local equal to what the
  // swap ledgers hold there, each swap ledger adding up to its total.
  // Locking: every engine lock held (engine contract); takes every memory
  // table shard mutex, then the registry mutex; then the same for swap.
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
  // Charges like charge(), except that no limit refuses: the bytes are in
  // use already (the host backend learns of memory after the fact), so
  // usage may pass memory.max / limit_in_bytes, as the kernel's OOM path
  // lets a charge through. A limit the charge passes counts failcnt and a
  // "max" event where a refused charge would (the deepest level over its
  // limit), and *over_limit (if given) is set. The reclaim hook is not
  // called. ESRCH, EINVAL as charge; ENOMEM only on allocation failure or
  // past kUnlimited. Locking: as charge.
  Status force_charge(Engine& engine, Pid pid, int64_t bytes, bool* over_limit = nullptr);

  // Swap. Pure accounting: a page swapped out is uncharge() then
  // charge_swap(); swapped in, uncharge_swap() then charge().
  //
  // Charges `bytes` (rounded up to whole pages) of swap to the address space
  // of thread `pid`, at the css it points at (an offline one resolved as for
  // charge), and up the hierarchy. ENOMEM if memory.swap.max refuses at any
  // level: nothing is charged, and "max" and "fail" count in
  // memory.swap.events at the css charged and its non-root ancestors (the
  // kernel's rule: swap events belong to the cgroup whose page could not be
  // swapped out, not to the refusing ancestor), whose watchers are notified.
  // ESRCH if there is no such thread; EINVAL if negative or not this
  // controller's engine; ENOMEM also on allocation failure. The reclaim hook
  // is not called: the kernel does not reclaim for swap space. A charge that
  // leaves a level above its swap.high counts "high" there (and up).
  // Locking: takes the address space's mmap_lock exclusive, then its swap
  // table shard mutex; the caller holds no engine lock.
  Status charge_swap(Engine& engine, Pid pid, int64_t bytes);
  // Uncharges `bytes` (rounded up to pages) of swap from the address space of
  // thread `pid`, most recently charged css first (swap freed, or swapped
  // in). ESRCH; EINVAL if negative or more than the address space holds in
  // swap. Locking: as charge_swap.
  Status uncharge_swap(Engine& engine, Pid pid, int64_t bytes);
  // Charges swap like charge_swap(), except that swap.max does not refuse:
  // the kernel has swapped already (the host backend learns of it from
  // /proc), so usage may pass swap.max. Passing it counts "max" (usage went
  // over the max boundary, which a watcher should hear of) but not "fail"
  // (no swap-out failed), at the css charged and its non-root ancestors,
  // and sets *over_limit (if given). ESRCH, EINVAL as charge_swap; ENOMEM
  // only on allocation failure or past kUnlimited. Locking: as charge_swap.
  Status force_charge_swap(Engine& engine, Pid pid, int64_t bytes, bool* over_limit = nullptr);

  // A memory cgroup above its memory.max / limit_in_bytes or memory.high.
  struct OverLimit {
    uint64_t cgroup = 0;  // Cgroup::id, for the calls below
    std::string path;     // for the log
    int64_t usage = 0, max = 0, high = 0;
    bool over_max = false;       // usage > max (else only above high)
    bool kill_disabled = false;  // v1 oom_kill_disable
  };
  // Every cgroup of the memory hierarchy (the root excepted: it has no
  // limits) whose usage is above its max or its high, deepest first, so
  // that an OOM is handled in the smallest domain first. Clears the OOM
  // state (under_oom) of every cgroup whose usage fits its limit again.
  // Never fails. Locking: takes the cgroup mutex; the caller holds no
  // engine lock.
  std::vector<OverLimit> over_limits(Engine& engine);

  // A process the OOM killer may choose: the bytes its address space holds
  // in memory and in swap (Mm::charged + Mm::swapped: the kernel's badness,
  // rss + swap entries, without page tables or oom_score_adj).
  struct OomCandidate {
    Pid tgid = 0;
    int64_t bytes = 0;
  };
  // The processes of the subtree of cgroup `cgroup` (a cgroup of this
  // controller's hierarchy), largest first (ties: lower pid first). ENOENT
  // if the cgroup was removed. Locking: takes the cgroup mutex; the caller
  // holds no engine lock.
  Result<std::vector<OomCandidate>> oom_candidates(Engine& engine, uint64_t cgroup);

  // A cgroup an OOM kill takes whole (memory.oom.group).
  struct OomGroup {
    uint64_t cgroup = 0;     // Cgroup::id; 0: none, kill the victim alone
    std::string path;        // for the log
    std::vector<Pid> tgids;  // the processes of its subtree, sorted
  };
  // What the kernel's mem_cgroup_get_oom_group answers for a kill of
  // `victim` in an OOM of `oom_cgroup`: on cgroup v2, the highest cgroup on
  // the path from the victim's cgroup up to `oom_cgroup` with
  // memory.oom.group 1, and its subtree's processes; on v1, when none is
  // set, or when the victim is no longer below `oom_cgroup`, none.
  // ESRCH if the victim is gone, ENOENT if oom_cgroup was removed.
  // Locking: takes the cgroup mutex; the caller holds no engine lock.
  Result<OomGroup> oom_group(Engine& engine, Pid victim, uint64_t oom_cgroup);

  // An OOM in cgroup `cgroup` (usage stays above its limit after reclaim):
  // counts memory.events "oom" there. With oom_kill_disable set there
  // (v1), marks it under_oom and returns false: nothing may be killed until
  // usage fits. True: the caller may kill. False also if it was removed.
  // Locking: takes the cgroup mutex; the caller holds no engine lock.
  bool begin_oom(Engine& engine, uint64_t cgroup);
  // A process killed by the OOM killer: counts "oom_kill" at the memory
  // cgroup of `victim`'s task (hierarchical in memory.events, local in
  // events.local and v1 oom_control). Nothing if the victim is gone.
  // Locking: as begin_oom.
  void count_oom_kill(Engine& engine, Pid victim);
  // A group kill (memory.oom.group) of cgroup `cgroup`: counts
  // "oom_group_kill" there. Locking: as begin_oom.
  void count_oom_group_kill(Engine& engine, uint64_t cgroup);

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
  // The swap bytes `mm` holds in `css` (0 if none; Mm::swapped is the
  // total). Locking: takes the swap table shard mutex.
  int64_t swap_charged_in(const Mm& mm, const MemCss& css);

  static MemCss& of(Css& css) { return static_cast<MemCss&>(css); }
  // The v1 eventfd listeners (cgroup.event_control), signalled by usage
  // changes, OOMs and rmdir (controllers/memory_events.h).
  MemoryEventListeners& listeners() { return listeners_; }

 private:
  struct LedgerEntry {
    // A live css: css_offline moves entries off a css before it can be
    // freed, so the entry needs no reference.
    MemCss* css;
    int64_t bytes;  // > 0 outside a migration (a precharged entry may be 0)
  };
  using Ledger = std::vector<LedgerEntry>;  // most recently charged first
  using LedgerTable = MmTable<Ledger>;

  // Which of a css's two accounts a shared helper works on: its counter and
  // local count, the address space's total, and the table of ledgers.
  struct Account {
    PageCounter MemCss::*counter;
    std::atomic<int64_t> MemCss::*local;
    std::atomic<int64_t> Mm::*total;
    LedgerTable MemoryController::*table;
  };
  // Defined in memory.cc, where the class they point into is complete.
  static const Account kMemory, kSwap;

  // One account's part of a charge move planned by can_attach.
  struct MovePart {
    Ledger* ledger = nullptr;  // the mm's table entry (nodes are stable); null: nothing moves
    const PageCounter* stop = nullptr;  // the common ancestor: not charged twice
    int64_t bytes = 0;
    bool added_to_entry = false;  // can_attach created the ledger entry of `to`
  };
  // A charge move planned by can_attach.
  struct Move {
    Mm* mm;
    MemCss* from;
    MemCss* to;
    MovePart mem, swap;
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
  // The address space of `pid`, and `bytes` rounded up to pages in *pages:
  // what every public charging call starts with. EINVAL for another
  // engine or negative bytes, ENOMEM past kUnlimited, ESRCH for no task.
  // Locking: none held.
  Result<MmRef> charge_target(Engine& engine, Pid pid, int64_t bytes, int64_t* pages);
  // Charges `bytes` of account `a` at memcg_of(mm) (*charged: that css) and
  // records them in the address space's ledger. If a limit refuses,
  // *refused is the refusing counter and nothing is charged, or, with
  // `force`, the charge is made past the limit. ENOMEM, charging nothing,
  // when the ledger cannot grow. Counts no events: each account's caller
  // counts its own.
  // Locking: mmap_lock held exclusive; takes the account's shard mutex.
  Status charge_account_locked(Mm& mm, int64_t bytes, const Account& a, bool force,
                               MemCss** charged, PageCounter** refused);
  // Uncharges `bytes` (page-rounded) of account `a` from the address space,
  // the most recent charges first. EINVAL if it holds less (`what` names
  // the account in the message).
  // Locking: mmap_lock held exclusive; takes the account's shard mutex.
  Status uncharge_account_locked(Mm& mm, int64_t bytes, const Account& a, const char* what);
  // Uncharges everything the address space holds in account `a`.
  // Locking: takes the account's shard mutex.
  void release_account(Mm& mm, const Account& a);
  // The bytes of account `a` the address space holds in `css`.
  // Locking: takes the account's shard mutex.
  int64_t held_in(const Mm& mm, const MemCss& css, const Account& a);
  // Charges `bytes` at memcg_of(mm). On a refusal by a limit, *refused gets
  // the refusing cgroup's id; with `force` the charge is made anyway (and
  // Ok returned). Counts "max" at the refusing level and "high" at every
  // level left above its high.
  // Locking: mmap_lock held exclusive.
  Status charge_locked(Mm& mm, int64_t bytes, uint64_t* refused, bool force);
  // The memory css that governs `cgroup` (its own, or on v2 the nearest
  // ancestor's where the controller is enabled). Locking: cgroup mutex.
  MemCss& css_of_locked(Engine& engine, const Cgroup& cgroup);
  // Charges `bytes` of swap at memcg_of(mm); with `force` past swap.max
  // (*over_max then set). Counts swap events as charge_swap says.
  // Locking: mmap_lock held exclusive; takes the swap table shard mutex.
  Status charge_swap_locked(Mm& mm, int64_t bytes, bool force, bool* over_max);
  // Counts event `ev` at `css`: locally, and there and at every non-root
  // ancestor hierarchically.
  void count_event(MemCss& css, MemCss::Event ev);
  // Counts swap event `ev` at `css` and every non-root ancestor (none at a
  // root), notifying memory.swap.events of each on v2.
  void count_swap_event(MemCss& css, MemCss::SwapEvent ev);
  static LedgerEntry* find_entry(Ledger& ledger, const MemCss* css);
  // The entry of `css`, made at the front (holding 0) if there is none
  // (*added then true). Null on allocation failure.
  static LedgerEntry* entry_for(Ledger& ledger, MemCss& css, bool* added);
  // After a charge to `e`: it becomes the most recently charged.
  static void to_front(Ledger& ledger, LedgerEntry& e);
  // Uncharges `bytes` from account `a`, the front (most recent) entries
  // first, dropping emptied entries. REQUIRES: the ledger holds that much.
  // Locking: the ledger's shard mutex held.
  static void take_recent(Ledger& ledger, int64_t bytes, const Account& a);
  // Uncharges every entry (an address space being freed).
  // Locking: the ledger's shard mutex held.
  static void release_all(Ledger& ledger, const Account& a);
  // Plans moving what `ledger` holds in `from` to `to` (account `a`):
  // precharges `to` below their common ancestor, without raising
  // watermarks, and adds a placeholder entry of `to` if it has none.
  // Nothing to move: Ok with part->ledger null. ENOMEM on allocation
  // failure, or a refusal (*refused: the refusing counter; only its failcnt
  // changed). Locking: the ledger's shard mutex held.
  static Status plan_part(Ledger& ledger, MemCss& from, MemCss& to, const Account& a,
                          MovePart* part, PageCounter** refused);
  // Undoes a planned part (its precharge, its placeholder).
  // Locking: `shard_mu` is the ledger's shard mutex, not held.
  static void undo_part(MovePart& part, MemCss& to, const Account& a, Mutex& shard_mu);
  // Commits a planned part: moves its bytes from `from` to `to`. No
  // allocation. Locking: as attach.
  static void commit_part(MovePart& part, MemCss& from, MemCss& to, const Account& a) noexcept;
  // Online and not being taken offline.
  static bool alive(Css& css);
  // Re-labels entry `e` as `to`'s, merging with an entry `to` already has.
  // Locking: the ledger's shard mutex (or all of them) held.
  static void move_entry(Ledger& ledger, LedgerEntry& e, MemCss& to);
  // The css owning a refusing memory counter, found from the charged css
  // upward.
  static MemCss* owner_of(MemCss& charged, const PageCounter* counter);
  // Undoes the precharges of moves_ (reverse order) and clears the plan.
  void cancel_moves();

  int slot_ = -1;           // Immutable after registration.
  MemCss* root_ = nullptr;  // Immutable after registration.
  CssRegistry registry_;
  LedgerTable ledgers_;  // memory
  LedgerTable swap_ledgers_;
  ReclaimHook reclaim_;
  MemoryEventListeners listeners_;

  // The migration in progress. Guarded by the engine's cgroup mutex (every
  // migration hook runs under it); attach only changes elements in place.
  std::vector<Move> moves_;
  std::vector<Switch> switches_;
  std::vector<Css*> deferred_puts_;  // reserved in can_attach for attach
};
static_assert(!std::is_abstract_v<MemoryController>);

}  // namespace cgcore
