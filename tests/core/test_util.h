// Helpers shared by the core tests.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "core/engine.h"
#include "tests/support/test_controller.h"

namespace cgcore::testing {

// An engine with two test controllers ("alpha", "beta") registered.
struct EngineFixture : public ::testing::Test {
  EngineFixture() {
    auto a = std::make_unique<TestController>("alpha");
    auto b = std::make_unique<TestController>("beta");
    alpha = a.get();
    beta = b.get();
    EXPECT_TRUE(engine.register_controller(std::move(a)).ok());
    EXPECT_TRUE(engine.register_controller(std::move(b)).ok());
  }
  ~EngineFixture() override {
    if (check_at_end) {
      EXPECT_EQ(engine.check_invariants().message(), "");
      EXPECT_TRUE(alpha->check_counts(engine).ok()) << alpha->check_counts(engine).message();
      EXPECT_TRUE(beta->check_counts(engine).ok()) << beta->check_counts(engine).message();
    }
  }
  Cgroup& root() { return engine.default_hierarchy().root(); }
  CgroupPtr mk(Cgroup& parent, const char* name) {
    auto r = engine.mkdir(parent, name);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r.value() : CgroupPtr();
  }
  Pid spawn() {
    auto r = engine.spawn({});
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r.value() : 0;
  }
  std::vector<Pid> tids(const Cgroup& cg) {
    auto v = engine.cgroup_tids(cg);
    std::sort(v.begin(), v.end());
    return v;
  }
  void expect_ok() {
    Status st = engine.check_invariants();
    EXPECT_TRUE(st.ok()) << st.message();
  }

  Engine engine;
  TestController* alpha = nullptr;
  TestController* beta = nullptr;
  bool check_at_end = true;
};

}  // namespace cgcore::testing
