// The v1 memory controller's eventfd listeners (cgroup.event_control):
// usage thresholds on memory.usage_in_bytes, OOM notifications on
// memory.oom_control, and memory.pressure_level registrations.
//
// Semantics, as the kernel's v1 memcg events:
//  - a threshold listener is "above" while the cgroup's usage is at least its
//    threshold (set at registration, without a signal) and is signalled each
//    time that flips, in either direction; every listener is checked after
//    every usage change anywhere in the hierarchy (the kernel checks a few
//    times a second per CPU, so it may miss a crossing that we report);
//  - an OOM listener is signalled by every OOM of its cgroup or an ancestor,
//    and at once at registration if its cgroup is under_oom;
//  - a pressure listener is accepted with the kernel's level and mode
//    parsing but never signalled: cgcore has no reclaim, so no pressure;
//  - removing the cgroup signals each of its listeners once and drops them.
// A listener lives until its cgroup is removed (the kernel also drops it when
// the eventfd is closed; a held eventfd cannot tell us that).
//
// Synchronization: one leaf mutex guards the listener list; sinks' signal()
// is called under it (sinks never block). nr_thresholds_ lets usage changes
// skip the lock when no threshold is registered.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "core/control_file.h"
#include "core/locking.h"
#include "core/result.h"

namespace cgcore {

class MemCss;

class MemoryEventListeners {
 public:
  // The most listeners of one controller: each holds an open descriptor in
  // the daemon. ENOMEM beyond, as a kernel out of memory for the event.
  static constexpr size_t kMaxListeners = 1024;

  MemoryEventListeners() = default;
  MemoryEventListeners(const MemoryEventListeners&) = delete;
  MemoryEventListeners& operator=(const MemoryEventListeners&) = delete;

  // Registers a listener named by a cgroup.event_control write on `control`
  // of `css` with `args` (see the header comment): EINVAL for another file,
  // a threshold that is not a memory size ("-1" meaning the largest), or a
  // pressure "LEVEL[,MODE]" the kernel does not know; ENOMEM past
  // kMaxListeners. Takes `sink` on success.
  // Locking: cgroup mutex held (css is online); takes the listener mutex.
  Status add(MemCss& css, std::string_view control, std::string_view args,
             std::unique_ptr<EventSink>& sink);
  // Signals the threshold listeners whose cgroup's usage crossed their
  // threshold since the last check. Locking: any (the listener mutex is a
  // leaf).
  void usage_changed() {
    if (nr_thresholds_.load(std::memory_order_relaxed) > 0) check_thresholds();
  }
  // An OOM in `css`: signals the OOM listeners of it and its descendants.
  // Locking: as usage_changed.
  void oom(const MemCss& css);
  // `css` goes offline: signals each of its listeners once and drops them.
  // Locking: as usage_changed.
  void css_removed(const MemCss& css);

 private:
  enum class Kind : uint8_t { kThreshold, kOom, kPressure };
  struct Listener {
    const MemCss* css;  // online: css_removed drops its listeners first
    Kind kind;
    int64_t threshold;  // kThreshold
    bool above;         // kThreshold: usage >= threshold at the last check
    std::unique_ptr<EventSink> sink;
  };
  void check_thresholds();

  Mutex mu_;
  std::vector<Listener> listeners_ CG_GUARDED_BY(mu_);
  std::atomic<int> nr_thresholds_{0};
};

}  // namespace cgcore
