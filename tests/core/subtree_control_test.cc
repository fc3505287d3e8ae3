// cgroup v2's subtree_control: enabling and disabling controllers below a
// cgroup, all or nothing, and the no-internal-process rule.
#include "tests/core/test_util.h"

namespace cgcore::testing {
namespace {

class SubtreeControlTest : public EngineFixture {
 protected:
  ControllerSet set(std::initializer_list<TestController*> cs) {
    ControllerSet s;
    for (auto* c : cs) s.set(c->id());
    return s;
  }
  Css* css_of(Cgroup& cg, TestController* c) {
    MutexLock lock(engine.cgroup_mutex());
    return cg.css(c->id());
  }
  ControllerSet control(Cgroup& cg) {
    MutexLock lock(engine.cgroup_mutex());
    return cg.subtree_control();
  }
};

TEST_F(SubtreeControlTest, EnablingCreatesChildCssesAndRehomesTasks) {
  auto a = mk(root(), "a"), b = mk(root(), "b");
  auto a1 = mk(*a, "a1");
  Pid p = spawn(), q = spawn();
  ASSERT_TRUE(engine.migrate_process(p, *a1).ok());
  ASSERT_TRUE(engine.migrate_process(q, *b).ok());
  ASSERT_TRUE(engine.set_subtree_control(root(), set({alpha}), {}).ok());
  EXPECT_TRUE(control(root()).test(alpha->id()));
  EXPECT_NE(css_of(*a, alpha), nullptr);
  EXPECT_NE(css_of(*b, alpha), nullptr);
  EXPECT_EQ(css_of(*a1, alpha), nullptr);  // a does not enable it below
  EXPECT_EQ(css_of(*a, beta), nullptr);
  // Tasks of a1 now use a's css (nearest enabled ancestor); counts follow.
  EXPECT_TRUE(alpha->check_counts(engine).ok()) << alpha->check_counts(engine).message();
  EXPECT_EQ(alpha->nr_attach.load(), 1);  // one re-homing transaction
  // New children of the root get the css at mkdir.
  auto c = mk(root(), "c");
  EXPECT_NE(css_of(*c, alpha), nullptr);
  expect_ok();
}

TEST_F(SubtreeControlTest, KeptCssSetsBelowDoNotOutliveTheirCsses) {
  // A css_set kept in a1 (its task left) holds a's alpha css once alpha is
  // enabled; enabling and disabling must not leave it with a stale or
  // offline css (the checker would say so), and a task moving back gets a
  // css_set with the right css.
  auto a = mk(root(), "a"), b = mk(root(), "b");
  auto a1 = mk(*a, "a1");
  Pid p = spawn();
  ASSERT_TRUE(engine.migrate_process(p, *a1).ok());
  ASSERT_TRUE(engine.migrate_process(p, *b).ok());
  ASSERT_GE(engine.nr_kept_css_sets(), 1u);
  ASSERT_TRUE(engine.set_subtree_control(root(), set({alpha}), {}).ok());
  expect_ok();
  ASSERT_TRUE(engine.migrate_process(p, *a1).ok());
  ASSERT_TRUE(engine.migrate_process(p, *b).ok());
  ASSERT_TRUE(engine.set_subtree_control(*a, set({alpha}), {}).ok());
  expect_ok();
  ASSERT_TRUE(engine.set_subtree_control(*a, {}, set({alpha})).ok());
  expect_ok();
  ASSERT_TRUE(engine.migrate_process(p, *a1).ok());
  EXPECT_TRUE(alpha->check_counts(engine).ok()) << alpha->check_counts(engine).message();
  expect_ok();
}

TEST_F(SubtreeControlTest, Errors) {
  auto a = mk(root(), "a");
  auto a1 = mk(*a, "a1");
  EXPECT_EQ(engine.set_subtree_control(*a, set({alpha}), {}).err(), ENOENT);  // root has not
  EXPECT_EQ(engine.set_subtree_control(root(), set({alpha}), set({alpha})).err(), EINVAL);
  ASSERT_TRUE(engine.set_subtree_control(root(), set({alpha, beta}), {}).ok());
  ASSERT_TRUE(engine.set_subtree_control(*a, set({alpha}), {}).ok());
  EXPECT_NE(css_of(*a1, alpha), nullptr);
  EXPECT_EQ(engine.set_subtree_control(root(), {}, set({alpha})).err(), EBUSY);  // a enables it
  // No internal processes: a task cannot enter a, and a cannot enable
  // while it holds tasks.
  Pid p = spawn();
  EXPECT_EQ(engine.migrate_process(p, *a).err(), EBUSY);
  ASSERT_TRUE(engine.migrate_process(p, *a1).ok());
  EXPECT_EQ(engine.set_subtree_control(*a1, set({alpha}), {}).err(), EBUSY);  // has tasks
  auto b = mk(root(), "b");
  ASSERT_TRUE(engine.migrate_process(p, *b).ok());
  EXPECT_EQ(engine.set_subtree_control(*b, set({beta}), {}).err(), EBUSY);
  // The root may hold tasks and enable controllers.
  EXPECT_TRUE(engine.migrate_process(p, root()).ok());
  // v1 hierarchies have no subtree_control; bound controllers are not
  // available in the default hierarchy.
  ASSERT_TRUE(engine.set_subtree_control(*a, {}, set({alpha})).ok());
  ASSERT_TRUE(engine.set_subtree_control(root(), {}, set({alpha})).ok());
  auto h = engine.mount({"alpha"}, "");
  ASSERT_TRUE(h.ok()) << h.status().message();
  EXPECT_EQ(engine.set_subtree_control((*h)->root(), set({alpha}), {}).err(), EINVAL);
  EXPECT_EQ(engine.set_subtree_control(root(), set({alpha}), {}).err(), ENOENT);
  expect_ok();
}

TEST_F(SubtreeControlTest, AControllerInUseInV2CannotBeMountedOnV1) {
  ASSERT_TRUE(engine.set_subtree_control(root(), set({beta}), {}).ok());
  EXPECT_EQ(engine.mount({"beta"}, "").err(), EBUSY);
  ASSERT_TRUE(engine.set_subtree_control(root(), {}, set({beta})).ok());
  EXPECT_TRUE(engine.mount({"beta"}, "").ok());
}

TEST_F(SubtreeControlTest, DisablingOfflinesAndRehomes) {
  auto a = mk(root(), "a");
  Pid p = spawn();
  ASSERT_TRUE(engine.set_subtree_control(root(), set({alpha}), {}).ok());
  ASSERT_TRUE(engine.migrate_process(p, *a).ok());
  ASSERT_TRUE(engine.set_subtree_control(root(), {}, set({alpha})).ok());
  EXPECT_EQ(css_of(*a, alpha), nullptr);
  EXPECT_EQ(alpha->nr_offline.load(), 1);
  EXPECT_TRUE(alpha->check_counts(engine).ok());
  expect_ok();
}

TEST_F(SubtreeControlTest, FailuresLeaveNothingChanged) {
  auto a = mk(root(), "a"), b = mk(root(), "b");
  Pid p = spawn(), q = spawn();
  ASSERT_TRUE(engine.migrate_process(p, *a).ok());
  ASSERT_TRUE(engine.migrate_process(q, *b).ok());
  auto before = engine.TEST_object_counts();
  size_t csets = engine.nr_css_sets();

  alpha->fail_css_alloc = 1;  // the first child's css
  EXPECT_EQ(engine.set_subtree_control(root(), set({alpha, beta}), {}).err(), ENOMEM);
  beta->fail_css_online = 1;
  EXPECT_EQ(engine.set_subtree_control(root(), set({alpha, beta}), {}).err(), ENOSPC);
  alpha->veto_attach = 1;  // the re-homing migration is vetoed
  EXPECT_EQ(engine.set_subtree_control(root(), set({alpha, beta}), {}).err(), EACCES);
  engine.TEST_fail_cset_alloc(2);
  EXPECT_EQ(engine.set_subtree_control(root(), set({alpha, beta}), {}).err(), ENOMEM);
  engine.TEST_fail_cset_alloc(0);

  EXPECT_TRUE(control(root()).empty());
  EXPECT_EQ(css_of(*a, alpha), nullptr);
  EXPECT_EQ(css_of(*b, beta), nullptr);
  auto after = engine.TEST_object_counts();
  EXPECT_EQ(after.csses, before.csses);
  EXPECT_EQ(after.css_sets, before.css_sets);
  EXPECT_EQ(engine.nr_css_sets(), csets);
  expect_ok();
  ASSERT_TRUE(engine.set_subtree_control(root(), set({alpha, beta}), {}).ok());
  expect_ok();
  // A disable whose re-homing is vetoed keeps the old csses online.
  Css* old = css_of(*a, alpha);
  beta->veto_attach = 1;
  EXPECT_EQ(engine.set_subtree_control(root(), {}, set({alpha, beta})).err(), EACCES);
  EXPECT_EQ(css_of(*a, alpha), old);
  EXPECT_TRUE(old->online());
  expect_ok();
}

}  // namespace
}  // namespace cgcore::testing
