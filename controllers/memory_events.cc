#include "controllers/memory_events.h"

#include <algorithm>
#include <array>

#include "controllers/memory.h"

namespace cgcore {

namespace {

// The kernel's vmpressure argument: "LEVEL[,MODE]", read from at most 19
// characters (its longest valid text plus room), further fields ignored.
Status check_pressure_args(std::string_view args) {
  static constexpr std::array<std::string_view, 3> kLevels = {"low", "medium", "critical"};
  static constexpr std::array<std::string_view, 3> kModes = {"default", "hierarchy", "local"};
  args = args.substr(0, 19);
  const size_t comma = args.find(',');
  const std::string_view level = args.substr(0, comma);
  if (std::find(kLevels.begin(), kLevels.end(), level) == kLevels.end())
    return Status::Error(EINVAL, "unknown memory pressure level '" + std::string(level) + "'");
  if (comma != std::string_view::npos) {
    std::string_view mode = args.substr(comma + 1);
    mode = mode.substr(0, mode.find(','));
    if (std::find(kModes.begin(), kModes.end(), mode) == kModes.end())
      return Status::Error(EINVAL, "unknown memory pressure mode '" + std::string(mode) + "'");
  }
  return Status::Ok();
}

bool under_oom(const MemCss& css) {
  for (const MemCss* c = &css; c; c = c->up())
    if (c->oom_locked.load()) return true;
  return false;
}

bool in_subtree(const MemCss* css, const MemCss& top) {
  for (; css; css = css->up())
    if (css == &top) return true;
  return false;
}

}  // namespace

Status MemoryEventListeners::add(MemCss& css, std::string_view control, std::string_view args,
                                 std::unique_ptr<EventSink>& sink) {
  Listener l{&css, Kind::kThreshold, 0, false, nullptr};
  if (control == "memory.usage_in_bytes") {
    // The kernel would read past the end of the line for a missing one.
    if (args.empty()) return Status::Error(EINVAL, "a threshold is needed");
    Result<int64_t> t = parse_memory_size(args, "-1");
    if (!t.ok()) return t.status();
    l.threshold = *t;
  } else if (control == "memory.oom_control") {
    l.kind = Kind::kOom;  // the kernel ignores the arguments
  } else if (control == "memory.pressure_level") {
    if (Status st = check_pressure_args(args); !st.ok()) return st;
    l.kind = Kind::kPressure;
  } else {
    return Status::Error(EINVAL, std::string(control) + " has no events");
  }
  MutexLock lock(mu_);
  if (listeners_.size() >= kMaxListeners)
    return Status::Error(ENOMEM, "too many event listeners (" + std::to_string(kMaxListeners) + ")");
  if (l.kind == Kind::kThreshold) l.above = css.counter.usage() >= l.threshold;
  if (l.kind == Kind::kOom && under_oom(css)) sink->signal();
  l.sink = std::move(sink);
  listeners_.push_back(std::move(l));
  if (listeners_.back().kind == Kind::kThreshold) nr_thresholds_.fetch_add(1);
  return Status::Ok();
}

void MemoryEventListeners::check_thresholds() {
  MutexLock lock(mu_);
  for (Listener& l : listeners_) {
    if (l.kind != Kind::kThreshold) continue;
    const bool above = l.css->counter.usage() >= l.threshold;
    if (above == l.above) continue;
    l.above = above;
    l.sink->signal();
  }
}

void MemoryEventListeners::oom(const MemCss& css) {
  MutexLock lock(mu_);
  for (Listener& l : listeners_)
    if (l.kind == Kind::kOom && in_subtree(l.css, css)) l.sink->signal();
}

void MemoryEventListeners::css_removed(const MemCss& css) {
  MutexLock lock(mu_);
  auto gone = std::stable_partition(listeners_.begin(), listeners_.end(),
                                    [&](const Listener& l) { return l.css != &css; });
  for (auto it = gone; it != listeners_.end(); ++it) {
    it->sink->signal();
    if (it->kind == Kind::kThreshold) nr_thresholds_.fetch_sub(1);
  }
  listeners_.erase(gone, listeners_.end());
}

}  // namespace cgcore
