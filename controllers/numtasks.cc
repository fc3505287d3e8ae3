#include "controllers/numtasks.h"

#include <algorithm>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <new>

#include "core/migration.h"

namespace cgcore {

namespace {

NumtasksCss* parent_of(NumtasksCss* css) { return static_cast<NumtasksCss*>(css->parent()); }

// The lowest common ancestor of two csses of one hierarchy.
NumtasksCss* common_ancestor(NumtasksCss* a, NumtasksCss* b) {
  auto depth = [](NumtasksCss* c) {
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

// Appends to `out` without growing it past its capacity (so without
// allocating): what does not fit is cut.
void append_bounded(std::string& out, std::string_view s) {
  size_t room = out.capacity() - out.size();
  out.append(s.substr(0, std::min(room, s.size())));
}

void append_bounded(std::string& out, int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  append_bounded(out, std::string_view(buf, static_cast<size_t>(end - buf)));
}

}  // namespace

bool NumtasksController::stops(NumtasksCss* p, NumtasksCss* stop) {
  return p == stop || p->is_root();
}

NumtasksCss* NumtasksController::try_charge(NumtasksCss* from, NumtasksCss* stop, int64_t n) {
  for (NumtasksCss* p = from; !stops(p, stop); p = parent_of(p)) {
    // Relaxed: each counter's read-modify-writes are totally ordered, which
    // is all the limit check needs.
    int64_t now = p->counter_.fetch_add(n, std::memory_order_relaxed) + n;
    if (now > p->limit_.load(std::memory_order_relaxed)) {
      uncharge(from, parent_of(p), n);
      return p;
    }
  }
  return nullptr;
}

void NumtasksController::uncharge(NumtasksCss* from, NumtasksCss* stop, int64_t n) {
  for (NumtasksCss* p = from; !stops(p, stop); p = parent_of(p)) {
    int64_t before = p->counter_.fetch_sub(n, std::memory_order_relaxed);
    if (before < n) {
      std::fprintf(stderr, "numtasks: count %" PRId64 " - %" PRId64 " goes negative\n", before,
                   n);
      std::abort();
    }
  }
}

Result<std::unique_ptr<Css>> NumtasksController::css_alloc(Css*) {
  try {
    return std::unique_ptr<Css>(new NumtasksCss);
  } catch (const std::bad_alloc&) {
    return Status::Error(ENOMEM, "numtasks: out of memory for a css");
  }
}

// ------------------------------------------------------------------ migration

Status NumtasksController::can_attach(TaskSet& tset) {
  engine()->cgroup_mutex().AssertHeld();
  moves_.clear();
  const ControllerId ss = id();
  try {
    veto_message_.clear();
    veto_message_.reserve(160);
    // Tasks come grouped by source css_set: one entry per group first...
    const CssSet* last = nullptr;
    bool moving = false;
    tset.for_each([&](Task&, CssSet* src, CssSet& dst) {
      engine()->cgroup_mutex().AssertHeld();
      if (src != last) {
        last = src;
        NumtasksCss* s = &css_of(*src, ss);
        NumtasksCss* d = &css_of(dst, ss);
        moving = s != d;
        if (moving) moves_.push_back(Move{s, d, nullptr, 0});
      }
      if (moving) ++moves_.back().n;
    });
  } catch (const std::bad_alloc&) {
    moves_.clear();
    return Status::Error(ENOMEM, "numtasks: out of memory recording a migration");
  }
  // ...then one per (source, destination) css pair: the move list has one
  // entry per source cgroup (several css_sets may share a css).
  std::sort(moves_.begin(), moves_.end(), [](const Move& a, const Move& b) {
    return std::less<>()(a.src, b.src) || (a.src == b.src && std::less<>()(a.dst, b.dst));
  });
  size_t out = 0;
  for (size_t i = 0; i < moves_.size(); ++i) {
    if (out > 0 && moves_[out - 1].src == moves_[i].src && moves_[out - 1].dst == moves_[i].dst) {
      moves_[out - 1].n += moves_[i].n;
    } else {
      moves_[out++] = moves_[i];
    }
  }
  moves_.resize(out);  // shrinking: no allocation
  for (Move& m : moves_) m.common = common_ancestor(m.src, m.dst);
  return Status::Ok();
}

Status NumtasksController::can_attach_locked(TaskSet& tset) {
  engine()->cgroup_mutex().AssertHeld();
  for (size_t i = 0; i < moves_.size(); ++i) {
    const Move& m = moves_[i];
    NumtasksCss* over = try_charge(m.dst, m.common, m.n);
    if (!over) continue;
    for (size_t j = i; j-- > 0;) uncharge(moves_[j].dst, moves_[j].common, moves_[j].n);
    // Composed in the buffer can_attach reserved: no allocation here.
    veto_message_.clear();
    append_bounded(veto_message_, "numtasks: moving ");
    append_bounded(veto_message_, m.n);
    append_bounded(veto_message_, m.n == 1 ? " task" : " tasks");
    append_bounded(veto_message_, " would exceed numtasks.max (");
    append_bounded(veto_message_, over->limit());
    append_bounded(veto_message_, ") of cgroup '");
    append_bounded(veto_message_, over->cgroup()->name());
    append_bounded(veto_message_, "'");
    return Status::Error(EAGAIN, std::move(veto_message_));
  }
  return Status::Ok();
}

void NumtasksController::cancel_attach_locked(TaskSet& tset) {
  engine()->cgroup_mutex().AssertHeld();
  for (const Move& m : moves_) uncharge(m.dst, m.common, m.n);
}

void NumtasksController::cancel_attach(TaskSet& tset) {
  engine()->cgroup_mutex().AssertHeld();
  moves_.clear();
}

void NumtasksController::attach(TaskSet& tset) noexcept {
  engine()->cgroup_mutex().AssertHeld();
  for (const Move& m : moves_) uncharge(m.src, m.common, m.n);
  moves_.clear();
}

// ------------------------------------------------------------------ fork, exit

Status NumtasksController::can_fork(Task&, CssSet& cset) {
  if (!try_charge(&css_of(cset, id()), nullptr, 1)) return Status::Ok();
  return Status::Error(EAGAIN, "numtasks: fork refused, a numtasks.max limit is reached");
}

void NumtasksController::cancel_fork(Task&, CssSet& cset) {
  uncharge(&css_of(cset, id()), nullptr, 1);
}

void NumtasksController::release(Task&, CssSet& cset) {
  uncharge(&css_of(cset, id()), nullptr, 1);
}

// ------------------------------------------------------------------ files

Result<std::string> NumtasksController::read_max(Engine&, Css& css) {
  return format_task_limit(static_cast<NumtasksCss&>(css).limit());
}

Status NumtasksController::write_max(Engine&, Css& css, std::string_view text) {
  Result<int64_t> limit = parse_task_limit(text, "numtasks.max");
  if (!limit.ok()) return limit.status();
  // May be below the current count: only later forks and moves are refused.
  static_cast<NumtasksCss&>(css).limit_.store(*limit, std::memory_order_relaxed);
  return Status::Ok();
}

Result<std::string> NumtasksController::read_current(Engine&, Css& css) {
  return std::to_string(static_cast<NumtasksCss&>(css).current()) + "\n";
}

// ------------------------------------------------------------------ checks

Status NumtasksController::check_invariants(Engine& engine) {
  engine.cgroup_mutex().AssertHeld();
  Status st = check_subtree_task_counts(engine, id(), "numtasks", [](const Css& css) {
    return static_cast<const NumtasksCss&>(css).current();
  });
  if (!st.ok()) return st;
  std::vector<const Cgroup*> stack{&engine.hierarchy_of_locked(id()).root()};
  while (!stack.empty()) {
    const Cgroup* cg = stack.back();
    stack.pop_back();
    for (const auto& [name, child] : cg->children()) stack.push_back(child);
    const Css* css = cg->is_root() ? &engine.root_css(id()) : cg->css(id());
    if (!css) continue;
    int64_t limit = static_cast<const NumtasksCss*>(css)->limit();
    if (limit < 0 || limit > kTaskLimitMax)
      return Status::Error(EIO, "numtasks: " + cg->path() + ": limit " + std::to_string(limit) +
                                    " out of range");
  }
  return Status::Ok();
}

}  // namespace cgcore
