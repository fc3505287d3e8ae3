#include "controllers/pids.h"

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <new>

#include "core/migration.h"
#include "core/parse.h"

namespace cgcore {

// ------------------------------------------------------------------ shared

Result<int64_t> parse_task_limit(std::string_view text, std::string_view file) {
  text = strstrip(text);
  if (text == "max") return kTaskLimitMax;
  Result<int64_t> parsed = kstrtoll(text);
  if (!parsed.ok()) {
    const int err = parsed.err();
    return Status::Error(err, std::string(file) + ": '" + std::string(text) + "' is " +
                                  (err == ERANGE ? "out of range" : "not a number or \"max\""));
  }
  const int64_t v = *parsed;
  if (v < 0 || v >= kTaskLimitMax) {
    return Status::Error(EINVAL, std::string(file) + ": " + std::to_string(v) +
                                     " is not in 0.." + std::to_string(kTaskLimitMax - 1));
  }
  return v;
}

std::string format_task_limit(int64_t limit) {
  if (limit >= kTaskLimitMax) return "max\n";
  return std::to_string(limit) + "\n";
}

namespace {

// Checks the subtree below `cg` (inclusive); returns its task count through
// `total`. Locking: every engine lock held.
Status check_subtree(Engine& engine, const Cgroup& cg, ControllerId id, std::string_view name,
                     int64_t (*count_of)(const Css&), int64_t* total) {
  engine.cgroup_mutex().AssertHeld();
  int64_t n = static_cast<int64_t>(engine.cgroup_tids_locked(cg).size());
  for (const auto& [child_name, child] : cg.children()) {
    int64_t sub = 0;
    if (Status st = check_subtree(engine, *child, id, name, count_of, &sub); !st.ok()) return st;
    n += sub;
  }
  *total = n;
  if (cg.is_root()) {
    int64_t have = count_of(engine.root_css(id));
    if (have != 0)
      return Status::Error(EIO, std::string(name) + ": the root css counts " +
                                    std::to_string(have) + " tasks; it is never charged");
    return Status::Ok();
  }
  const Css* css = cg.css(id);
  if (!css) return Status::Ok();  // v2: the nearest enabled ancestor counts these
  int64_t have = count_of(*css);
  if (have != n)
    return Status::Error(EIO, std::string(name) + ": " + cg.path() + " counts " +
                                  std::to_string(have) + " tasks, its subtree holds " +
                                  std::to_string(n));
  return Status::Ok();
}

}  // namespace

Status check_subtree_task_counts(Engine& engine, ControllerId id, std::string_view name,
                                 int64_t (*count_of)(const Css&)) {
  engine.cgroup_mutex().AssertHeld();
  int64_t total = 0;
  return check_subtree(engine, engine.hierarchy_of_locked(id).root(), id, name, count_of, &total);
}

// ------------------------------------------------------------------ pids

namespace {

PidsCss* parent_of(PidsCss* css) { return static_cast<PidsCss*>(css->parent()); }

// Raises a peak to `value` if that is higher; exact under races.
void raise_watermark(std::atomic<int64_t>& wm, int64_t value) {
  int64_t old = wm.load(std::memory_order_relaxed);
  while (value > old && !wm.compare_exchange_weak(old, value, std::memory_order_relaxed)) {
  }
}

}  // namespace

bool PidsController::stops(PidsCss* p, PidsCss* stop) { return p == stop || p->is_root(); }

void PidsController::charge_forced(PidsCss* from, PidsCss* stop, int64_t n) {
  for (PidsCss* p = from; !stops(p, stop); p = parent_of(p)) {
    // Relaxed: each counter's read-modify-writes are totally ordered, which
    // is all the limit check needs; nothing else is published through it.
    int64_t now = p->counter_.fetch_add(n, std::memory_order_relaxed) + n;
    raise_watermark(p->watermark_, now);
  }
}

void PidsController::uncharge(PidsCss* from, PidsCss* stop, int64_t n) {
  for (PidsCss* p = from; !stops(p, stop); p = parent_of(p)) {
    int64_t before = p->counter_.fetch_sub(n, std::memory_order_relaxed);
    if (before < n) {
      std::fprintf(stderr, "pids: count %" PRId64 " - %" PRId64 " goes negative\n", before, n);
      std::abort();
    }
  }
}

PidsCss* PidsController::try_charge(PidsCss* from, int64_t n) {
  for (PidsCss* p = from; !p->is_root(); p = parent_of(p)) {
    int64_t now = p->counter_.fetch_add(n, std::memory_order_relaxed) + n;
    if (now > p->limit_.load(std::memory_order_relaxed)) {
      uncharge(from, parent_of(p), n);
      return p;
    }
    // Recorded even if a higher level refuses next: the kernel's peak does
    // the same.
    raise_watermark(p->watermark_, now);
  }
  return nullptr;
}

Result<std::unique_ptr<Css>> PidsController::css_alloc(Css*) {
  try {
    return std::unique_ptr<Css>(new PidsCss);
  } catch (const std::bad_alloc&) {
    return Status::Error(ENOMEM, "pids: out of memory for a css");
  }
}

namespace {

// The lowest common ancestor of two csses of one hierarchy.
PidsCss* common_ancestor(PidsCss* a, PidsCss* b) {
  auto depth = [](PidsCss* c) {
    int d = 0;
    for (; !c->is_root(); c = parent_of(c)) ++d;
    return d;
  };
  int da = depth(a), db = depth(b);
  for (; da > db; --da) a = parent_of(a);
  for (; db > da; --db) b = parent_of(b);
  while (a != b) {
    a = parent_of(a);
    b = parent_of(b);
  }
  return a;
}

}  // namespace

Status PidsController::can_attach(TaskSet& tset) {
  engine()->cgroup_mutex().AssertHeld();
  moves_.clear();
  const ControllerId ss = id();
  try {
    // Tasks come grouped by source css_set: one Move per group.
    const CssSet* last = nullptr;
    bool moving = false;
    tset.for_each([&](Task&, CssSet* src, CssSet& dst) {
      engine()->cgroup_mutex().AssertHeld();
      if (src != last) {
        last = src;
        PidsCss* s = &css_of(*src, ss);
        PidsCss* d = &css_of(dst, ss);
        moving = s != d;
        if (moving) moves_.push_back(Move{s, d, common_ancestor(s, d), 0});
      }
      if (moving) ++moves_.back().n;
    });
  } catch (const std::bad_alloc&) {
    moves_.clear();
    return Status::Error(ENOMEM, "pids: out of memory recording a migration");
  }
  return Status::Ok();
}

void PidsController::cancel_attach(TaskSet& tset) {
  engine()->cgroup_mutex().AssertHeld();
  moves_.clear();
}

void PidsController::attach(TaskSet& tset) noexcept {
  engine()->cgroup_mutex().AssertHeld();
  for (const Move& m : moves_) {
    // Destination first: a forced charge, never refused (the kernel's
    // pids_can_attach). The common ancestor and the levels above it keep
    // their count; the kernel charges and uncharges them once per task, so
    // their peaks see one more than their count — reproduced here.
    charge_forced(m.dst, m.common, m.n);
    for (PidsCss* p = m.common; !p->is_root(); p = parent_of(p))
      raise_watermark(p->watermark_, p->counter_.load(std::memory_order_relaxed) + 1);
    uncharge(m.src, m.common, m.n);
  }
  moves_.clear();
}

Status PidsController::can_fork(Task&, CssSet& cset) {
  PidsCss* pids = &css_of(cset, id());
  PidsCss* over = try_charge(pids, 1);
  if (!over) return Status::Ok();
  // v1 counts the refusal where the fork happened; v2 (pids.events) at the
  // refusing level and every non-root ancestor, plus pids.events.local at
  // the refusing level. Both are kept; the files show the one of their
  // hierarchy kind.
  pids->events_forkfail_.fetch_add(1, std::memory_order_relaxed);
  over->events_max_local_.fetch_add(1, std::memory_order_relaxed);
  for (PidsCss* p = over; !p->is_root(); p = parent_of(p))
    p->events_max_.fetch_add(1, std::memory_order_relaxed);
  // Watchers hear of it where the kernel notifies: v1 where the fork
  // happened; v2 pids.events.local at the refusing level and pids.events
  // there and at every non-root ancestor.
  if (Engine* e = engine(); e && pids->cgroup()) {
    if (!pids->cgroup()->hierarchy().is_default()) {
      e->notify_file_changed(*pids->cgroup(), "pids.events");
    } else {
      if (over->cgroup()) e->notify_file_changed(*over->cgroup(), "pids.events.local");
      for (PidsCss* p = over; !p->is_root(); p = parent_of(p))
        if (p->cgroup()) e->notify_file_changed(*p->cgroup(), "pids.events");
    }
  }
  return Status::Error(EAGAIN, "pids: fork refused, a pids.max limit is reached");
}

void PidsController::cancel_fork(Task&, CssSet& cset) {
  uncharge(&css_of(cset, id()), nullptr, 1);
}

void PidsController::release(Task&, CssSet& cset) {
  uncharge(&css_of(cset, id()), nullptr, 1);
}

// ------------------------------------------------------------------ files

Result<std::string> PidsController::read_max(Engine&, Css& css) {
  return format_task_limit(static_cast<PidsCss&>(css).limit());
}

Status PidsController::write_max(Engine&, Css& css, std::string_view text) {
  Result<int64_t> limit = parse_task_limit(text, "pids.max");
  if (!limit.ok()) return limit.status();
  // May be below the current count: only later forks are refused.
  static_cast<PidsCss&>(css).limit_.store(*limit, std::memory_order_relaxed);
  return Status::Ok();
}

Result<std::string> PidsController::read_current(Engine&, Css& css) {
  return std::to_string(static_cast<PidsCss&>(css).current()) + "\n";
}

Result<std::string> PidsController::read_peak(Engine&, Css& css) {
  return std::to_string(static_cast<PidsCss&>(css).peak()) + "\n";
}

Result<std::string> PidsController::read_events(Engine&, Css& css) {
  const PidsCss& p = static_cast<PidsCss&>(css);
  const bool v2 = css.cgroup()->hierarchy().is_default();
  return "max " + std::to_string(v2 ? p.events_max() : p.forks_refused()) + "\n";
}

Result<std::string> PidsController::read_events_local(Engine&, Css& css) {
  return "max " + std::to_string(static_cast<PidsCss&>(css).events_max_local()) + "\n";
}

// ------------------------------------------------------------------ checks

Status PidsController::check_invariants(Engine& engine) {
  engine.cgroup_mutex().AssertHeld();
  Status st = check_subtree_task_counts(engine, id(), "pids", [](const Css& css) {
    return static_cast<const PidsCss&>(css).current();
  });
  if (!st.ok()) return st;
  // Per-css checks over the hierarchy.
  std::vector<const Cgroup*> stack{&engine.hierarchy_of_locked(id()).root()};
  const bool v2 = stack.back()->hierarchy().is_default();
  while (!stack.empty()) {
    const Cgroup* cg = stack.back();
    stack.pop_back();
    int64_t children_events = 0;
    for (const auto& [name, child] : cg->children()) {
      stack.push_back(child);
      if (const Css* c = child->css(id()))
        children_events += static_cast<const PidsCss*>(c)->events_max();
    }
    if (cg->is_root()) continue;
    const Css* css = cg->css(id());
    if (!css) continue;
    const PidsCss& p = static_cast<const PidsCss&>(*css);
    auto fail = [&](const std::string& what) {
      return Status::Error(EIO, "pids: " + cg->path() + ": " + what);
    };
    if (p.limit() < 0 || p.limit() > kTaskLimitMax)
      return fail("limit " + std::to_string(p.limit()) + " out of range");
    if (p.peak() < p.current())
      return fail("peak " + std::to_string(p.peak()) + " below current " +
                  std::to_string(p.current()));
    if (v2 && p.events_max() < p.events_max_local() + children_events)
      return fail("events " + std::to_string(p.events_max()) +
                  " fewer than its local ones plus its children's");
  }
  return Status::Ok();
}

}  // namespace cgcore
