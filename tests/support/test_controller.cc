#include "tests/support/test_controller.h"

#include <map>

#include "core/migration.h"

namespace cgcore::testing {

bool TestController::take(std::atomic<int>& knob) {
  int n = knob.load();
  while (n > 0)
    if (knob.compare_exchange_weak(n, n - 1)) return true;
  return false;
}

Result<std::unique_ptr<Css>> TestController::css_alloc(Css*) {
  if (take(fail_css_alloc)) return Status::Error(ENOMEM, "test: css_alloc fails");
  return std::unique_ptr<Css>(new TestCss);
}

Status TestController::css_online(Css&) {
  if (take(fail_css_online)) return Status::Error(ENOSPC, "test: css_online fails");
  return Status::Ok();
}

Status TestController::can_attach(TaskSet& tset) {
  ++nr_can_attach;
  if (take(veto_attach)) return Status::Error(veto_errno.load(), "test: can_attach vetoes");
  pending_.clear();
  std::map<TestCss*, int64_t> delta;
  tset.for_each([&](Task&, CssSet* src, CssSet& dst) {
    --delta[&my_css(*src)];
    ++delta[&my_css(dst)];
  });
  pending_.assign(delta.begin(), delta.end());
  return Status::Ok();
}

Status TestController::can_attach_locked(TaskSet&) {
  if (take(veto_attach_locked))
    return Status::Error(veto_errno.load(), "test: can_attach_locked vetoes");
  return Status::Ok();
}

void TestController::cancel_attach(TaskSet&) {
  ++nr_cancel_attach;
  pending_.clear();
}

void TestController::attach(TaskSet& tset) noexcept {
  ++nr_attach;
  int64_t n = 0;
  tset.for_each([&](Task&, CssSet* src, CssSet&) {
    if (src) std::abort();  // after the commit point there is no source
    ++n;
  });
  if (n != static_cast<int64_t>(tset.nr_tasks())) std::abort();
  for (auto& [css, d] : pending_) css->tasks += d;
  pending_.clear();
}

Status TestController::can_fork(Task&, CssSet& cset) {
  if (take(veto_fork)) return Status::Error(EAGAIN, "test: can_fork refuses");
  ++my_css(cset).tasks;
  return Status::Ok();
}

void TestController::cancel_fork(Task&, CssSet& cset) { --my_css(cset).tasks; }

void TestController::exit(Task&, CssSet& cset) {
  ++nr_exit;
  --my_css(cset).tasks;
}

Status TestController::check_counts(Engine& engine) {
  // Count the tasks of each cgroup of the controller's hierarchy under its
  // effective css.
  std::map<const Css*, int64_t> want;
  std::vector<std::pair<const Cgroup*, const Css*>> cgroups;
  {
    MutexLock lock(engine.cgroup_mutex());
    Hierarchy& h = engine.hierarchy_of_locked(id());
    std::vector<const Cgroup*> stack{&h.root()};
    while (!stack.empty()) {
      const Cgroup* cg = stack.back();
      stack.pop_back();
      const Css* css = cg->is_root() ? &engine.root_css(id()) : engine.effective_css_locked(*cg, id());
      cgroups.emplace_back(cg, css);
      want.emplace(css, 0);
      for (const auto& [n, child] : cg->children()) stack.push_back(child);
    }
  }
  for (auto& [cg, css] : cgroups) want[css] += static_cast<int64_t>(engine.cgroup_tids(*cg).size());
  for (auto& [css, n] : want) {
    int64_t have = static_cast<const TestCss*>(css)->tasks.load();
    if (have != n)
      return Status::Error(EIO, "test controller '" + name_ + "': a css counts " +
                                    std::to_string(have) + " tasks, holds " + std::to_string(n));
  }
  return Status::Ok();
}

}  // namespace cgcore::testing
