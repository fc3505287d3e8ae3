// A controller for tests: counts the tasks charged to each css through the
// fork / exit / attach hooks (so that a wrong hook sequence shows up as a
// wrong count), and vetoes on demand at every veto point.
//
// Thread-safety: the knobs are atomics and may be changed from any thread;
// the hooks follow the engine's locking contract.
#pragma once

#include <atomic>
#include <cerrno>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/controller.h"
#include "core/engine.h"

namespace cgcore::testing {

class TestCss : public Css {
 public:
  std::atomic<int64_t> tasks{0};
};

class TestController : public Controller {
 public:
  explicit TestController(std::string name = "test") : name_(std::move(name)) {}

  std::string_view name() const override { return name_; }
  Result<std::unique_ptr<Css>> css_alloc(Css* parent) override;
  Status css_online(Css& css) override;
  void css_offline(Css& css) override { ++nr_offline; }
  Status can_attach(TaskSet& tset) override;
  Status can_attach_locked(TaskSet& tset) override;
  void cancel_attach_locked(TaskSet& tset) override { ++nr_cancel_locked; }
  void cancel_attach(TaskSet& tset) override;
  void attach(TaskSet& tset) noexcept override;
  void post_attach(TaskSet& tset) override { ++nr_post_attach; }
  Status can_fork(Task& child, CssSet& cset) override;
  void cancel_fork(Task& child, CssSet& cset) override;
  void exit(Task& task, CssSet& cset) override;

  // Knobs: the next N calls of that hook fail (0: none). Vetoes return
  // `veto_errno`.
  std::atomic<int> fail_css_alloc{0}, fail_css_online{0}, veto_attach{0}, veto_attach_locked{0},
      veto_fork{0};
  std::atomic<int> veto_errno{EACCES};

  // Call counters.
  std::atomic<int64_t> nr_can_attach{0}, nr_cancel_attach{0}, nr_cancel_locked{0},
      nr_attach{0}, nr_post_attach{0}, nr_offline{0}, nr_fork{0}, nr_exit{0};

  // Checks that every css's count equals the number of tasks whose css_set
  // points at it. Ok or EIO naming the cgroup.
  Status check_counts(Engine& engine);

 private:
  static bool take(std::atomic<int>& knob);
  TestCss& my_css(CssSet& cset) { return static_cast<TestCss&>(*cset.css(id())); }

  std::string name_;
  // The charge moves of the transaction in progress (cgroup mutex).
  std::vector<std::pair<TestCss*, int64_t>> pending_;
};

}  // namespace cgcore::testing
