// What the memory and memrlimit controllers share: a hierarchical charge
// counter (the kernel's page_counter), a css that carries one, a registry of
// every such css (online or offline) for the invariant checkers, a table keyed
// by address space with sharded locks, and the parsers of the kernel's
// memory-size control files.
//
// Synchronization (both controllers): lock order, outermost first —
//   1. the engine's locks (see core/locking.h), when a hook runs under them;
//   2. Mm::mmap_lock (exclusive while an address space's charges change;
//      shared by the migration across a transaction that moves them);
//   3. one MmTable shard mutex (a leaf for everything but 4);
//   4. the CssRegistry mutex (a leaf).
// Nothing under 2-4 calls into the engine or waits for an engine lock.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/css.h"
#include "core/intrusive_list.h"
#include "core/locking.h"
#include "core/result.h"

namespace cgcore {

class Mm;

inline constexpr int64_t kPageSize = 4096;
// The largest charge or limit: the kernel's PAGE_COUNTER_MAX pages, in bytes
// (9223372036854771712). Limits at this value mean "no limit".
inline constexpr int64_t kUnlimited = INT64_MAX / kPageSize * kPageSize;

// A counter of bytes charged to one cgroup and to each ancestor's counter,
// with a limit, a high watermark and a failure count per level.
//
// Thread-safety: every method is safe from any thread; all fields are
// atomics. A charge either lands on every level up to its stop or on none.
class PageCounter {
 public:
  // `parent` is the parent cgroup's counter, null for a root. Immutable.
  explicit PageCounter(PageCounter* parent) : parent_(parent) {}
  PageCounter(const PageCounter&) = delete;
  PageCounter& operator=(const PageCounter&) = delete;

  PageCounter* parent() const { return parent_; }
  int64_t usage() const { return usage_.load(); }
  int64_t limit() const { return limit_.load(); }
  int64_t watermark() const { return watermark_.load(); }
  int64_t failcnt() const { return failcnt_.load(); }

  // Charges `bytes` (>= 0) to this counter and every ancestor below `stop`
  // (null: up to the top). All or nothing: returns null on success, else the
  // counter whose limit refused, after counting one failure there (the
  // kernel's rule: failcnt belongs to the level that said no) and rolling
  // back the levels below it. Never exceeds a limit, also against a
  // concurrent set_limit. Raises each level's watermark unless
  // `raise_watermark` is false (a migration's precharge, which may still be
  // cancelled: it calls raise_watermark when it commits).
  // Locking: none.
  PageCounter* try_charge(int64_t bytes, const PageCounter* stop = nullptr,
                          bool raise_watermark = true);
  // Charges `bytes` (>= 0) to this counter and every ancestor, past any
  // limit (the kernel's page_counter_charge, used when the memory is in use
  // already and refusing it would only make usage lie), raising each
  // watermark. Counts no failure: the caller tried try_charge first.
  // Locking: none.
  void force_charge(int64_t bytes);
  // Raises the watermark of this counter and every ancestor below `stop` to
  // its current usage. Locking: none.
  void raise_watermark(const PageCounter* stop = nullptr);
  // Removes `bytes` from this counter and every ancestor below `stop`.
  // REQUIRES: that much was charged on each of those levels (aborts with
  // context on underflow: an accounting bug).
  // Locking: none.
  void uncharge(int64_t bytes, const PageCounter* stop = nullptr);

  // Sets the limit (a page multiple in [0, kUnlimited]). EBUSY, leaving the
  // limit as it was, if usage is above it (there is no reclaim to make room).
  // Locking: callers serialise limit writers (the cgroup mutex).
  Status set_limit(int64_t bytes);
  // Sets the limit even below the current usage (cgroup v2's memory.max);
  // later charges fail until usage drops.
  // Locking: as set_limit.
  void force_limit(int64_t bytes) { limit_.store(bytes); }
  // memory.max_usage_in_bytes / failcnt writes: the watermark restarts at the
  // current usage (as the kernel's page_counter_reset_watermark does); the
  // failure count at 0.
  // Locking: none.
  void reset_watermark() { watermark_.store(usage_.load()); }
  void reset_failcnt() { failcnt_.store(0); }

  // The deepest counter that is `a` or an ancestor of `a` and also `b` or an
  // ancestor of `b`; null if they share none.
  // Locking: none (parents are immutable).
  static const PageCounter* common_ancestor(const PageCounter* a, const PageCounter* b);

 private:
  PageCounter* const parent_;
  std::atomic<int64_t> usage_{0};
  std::atomic<int64_t> limit_{kUnlimited};
  std::atomic<int64_t> watermark_{0};
  std::atomic<int64_t> failcnt_{0};
};

class CssRegistry;

// A css whose cgroup's charges live in a PageCounter. `local` counts the
// bytes charged to this very css (by address spaces whose charges live here),
// so that usage == local + the usage of every child css, offline ones
// included — the invariant the controllers check.
class ChargeCss : public Css {
 public:
  // Registers the css with `registry` until it is destroyed.
  // Locking: takes the registry mutex.
  ChargeCss(ChargeCss* parent, CssRegistry& registry);
  // Locking: takes the registry mutex (a leaf): a css may be freed by the
  // last reference dropped anywhere.
  ~ChargeCss() override;

  // The parent's ChargeCss; null for a root. Immutable.
  ChargeCss* up() const { return up_; }

  PageCounter counter;
  // Bytes charged here and not through a child. Changed together with
  // `counter` under the owning address space's table shard mutex (or, in a
  // migration's attach, with the cgroup mutex and the movers' mmap_locks).
  std::atomic<int64_t> local{0};

 private:
  friend class CssRegistry;
  ChargeCss* const up_;
  CssRegistry& registry_;
  ListHook registry_node_;  // guarded by registry_.mu_
};

// Which counter of a css CssRegistry::check reads: ChargeCss::counter and
// ::local, or a second account a controller keeps beside them (memory's
// swap). `what` starts the messages ("" or e.g. "swap ").
struct ChargeView {
  const PageCounter& (*counter)(const ChargeCss& css);
  int64_t (*local)(const ChargeCss& css);
  std::string_view what;
};

// Every live ChargeCss of one controller, online or not, so that the checker
// also sees the offline csses whose charges still count in their parents.
// Thread-safety: all methods are thread-safe.
class CssRegistry {
 public:
  CssRegistry() = default;
  CssRegistry(const CssRegistry&) = delete;
  CssRegistry& operator=(const CssRegistry&) = delete;

  // Checks each css's counter against the others and `local_want` (what the
  // caller's own records say each css holds locally; a css not in the map
  // must hold 0): usage == local + the usage of its children, local equal to
  // local_want, local >= 0, watermark >= usage. Also every key of local_want
  // must be a registered css. Ok or EIO naming the css's cgroup.
  // Locking: takes the registry mutex; the caller excludes every charger
  // (table shards locked, cgroup mutex held).
  Status check(const std::unordered_map<const ChargeCss*, int64_t>& local_want) const;
  // The same for the counter `view` names. Locking: as above, with every
  // charger of that counter excluded.
  Status check(const std::unordered_map<const ChargeCss*, int64_t>& local_want,
               const ChargeView& view) const;
  // Whether `css` is a live css of this registry.
  // Locking: takes the registry mutex.
  bool contains(const ChargeCss* css) const;

 private:
  friend class ChargeCss;
  mutable Mutex mu_;
  IntrusiveList<ChargeCss, &ChargeCss::registry_node_> csses_ CG_GUARDED_BY(mu_);
};

// A map from address space to V, split over shards each with its own mutex,
// so that chargers of different address spaces rarely contend. An entry is
// removed by its controller's mm_release hook at the latest, so a freed Mm's
// address is never found again.
// Thread-safety: each shard's map is guarded by the shard's mutex.
template <typename V>
class MmTable {
 public:
  struct Shard {
    Mutex mu;
    std::unordered_map<const Mm*, V> map CG_GUARDED_BY(mu);
  };

  Shard& shard(const Mm* mm) { return shards_[(reinterpret_cast<uintptr_t>(mm) >> 6) % kShards]; }

  // Runs body(for_each) with every shard locked, in index order — one
  // consistent view of the whole table — where for_each(fn) calls
  // fn(const Mm*, V&) for every entry. Not analysed: the locks are an
  // array, which clang's analysis cannot follow.
  template <typename Body>
  void with_all_locked(Body&& body) CG_NO_THREAD_SAFETY_ANALYSIS {
    for (Shard& s : shards_) s.mu.Lock();
    auto for_each = [this](auto&& fn) CG_NO_THREAD_SAFETY_ANALYSIS {
      for (Shard& s : shards_)
        for (auto& [mm, v] : s.map) fn(mm, v);
    };
    body(for_each);
    for (size_t i = shards_.size(); i-- > 0;) shards_[i].mu.Unlock();
  }

 private:
  static constexpr size_t kShards = 16;
  std::array<Shard, kShards> shards_;
};

// ------------------------------------------------------------------ files

// The value of a memory-size write, as the kernel's page_counter_memparse
// reads it: surrounding white space (kisspace) stripped; `unlimited_word`
// ("-1" for v1 files, "max" for v2) is kUnlimited; otherwise all of the text
// must be a memparse size (core/parse.h: C notation, an optional K/M/G/T/P/E
// suffix, wrapping modulo 2^64 as on the host: "16E" is 0), rounded down to
// a page and capped at kUnlimited. "" and "k" are 0. EINVAL for anything
// else ("+1", "-2", "1kb", "1.5k", "1 k").
Result<int64_t> parse_memory_size(std::string_view text, std::string_view unlimited_word);
// The value of a cgroup u64 write (the kernel's kstrtoull base 0, which the
// cgroup core applies to write_u64 files without stripping): an optional '+',
// C notation, an optional single trailing '\n', nothing else. EINVAL if
// malformed, ERANGE past 2^64 - 1.
Result<uint64_t> parse_u64(std::string_view text);
// "<value>\n".
std::string format_line(int64_t value);
// `bytes` rounded up to whole pages, for a charge or an address-space change.
// EINVAL if negative; ENOMEM if the result would pass kUnlimited.
Result<int64_t> page_round_up(int64_t bytes);

// The handlers of the v1-style counter files both controllers have, for
// their file tables; `css` is a ChargeCss.
// <ctl>.limit_in_bytes: the limit, "-1" and the memparse sizes of
// parse_memory_size; a write is EINVAL on the root or when malformed, EBUSY
// below the current usage.
Result<std::string> read_charge_limit(Engine& engine, Css& css);
Status write_charge_limit(Engine& engine, Css& css, std::string_view text);
// <ctl>.usage_in_bytes (and memory.current).
Result<std::string> read_charge_usage(Engine& engine, Css& css);
// <ctl>.max_usage_in_bytes / <ctl>.failcnt: any write resets (the kernel
// does not parse the value).
Result<std::string> read_charge_watermark(Engine& engine, Css& css);
Status write_charge_watermark(Engine& engine, Css& css, std::string_view text);
Result<std::string> read_charge_failcnt(Engine& engine, Css& css);
Status write_charge_failcnt(Engine& engine, Css& css, std::string_view text);

}  // namespace cgcore
