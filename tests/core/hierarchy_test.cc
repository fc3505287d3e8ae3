// Hierarchies: mounting v1 hierarchies, rebinding controllers, destroying.
#include "tests/core/test_util.h"

namespace cgcore::testing {
namespace {

using HierarchyTest = EngineFixture;

bool bound_to(Engine& e, ControllerId id, const Hierarchy& h) {
  MutexLock lock(e.cgroup_mutex());
  return &e.hierarchy_of_locked(id) == &h;
}

TEST_F(HierarchyTest, DefaultHierarchyHoldsEveryController) {
  Hierarchy& dfl = engine.default_hierarchy();
  EXPECT_TRUE(dfl.is_default());
  EXPECT_TRUE(bound_to(engine, alpha->id(), dfl));
  EXPECT_TRUE(bound_to(engine, beta->id(), dfl));
  EXPECT_EQ(engine.hierarchies().size(), 1u);
}

TEST_F(HierarchyTest, MountBindsControllerAndRehomesEveryTask) {
  auto a = mk(root(), "a");
  Pid p1 = spawn(), p2 = spawn();
  Pid t = *engine.clone_thread(p2);
  ASSERT_TRUE(engine.migrate_process(p1, *a).ok());
  size_t csets_before = engine.nr_css_sets();

  auto h = engine.mount({"alpha"}, "");
  ASSERT_TRUE(h.ok()) << h.status().message();
  Hierarchy& v1 = **h;
  EXPECT_FALSE(v1.is_default());
  EXPECT_TRUE(bound_to(engine, alpha->id(), v1));
  EXPECT_TRUE(bound_to(engine, beta->id(), engine.default_hierarchy()));
  for (Pid pid : {p1, p2, t}) {
    auto cg = engine.task_cgroup(pid, v1);
    ASSERT_TRUE(cg.ok());
    EXPECT_EQ(cg->get(), &v1.root()) << pid;
  }
  // Default-hierarchy memberships are untouched.
  EXPECT_EQ(engine.task_cgroup(p1, engine.default_hierarchy())->get(), a.get());
  EXPECT_EQ(engine.task_cgroup(p2, engine.default_hierarchy())->get(), &root());
  // The old css_sets were replaced, not added to.
  EXPECT_EQ(engine.nr_css_sets(), csets_before);
  expect_ok();
}

TEST_F(HierarchyTest, MountingTheSameControllersAgainReturnsTheHierarchy) {
  auto h1 = engine.mount({"alpha"}, "");
  auto h2 = engine.mount({"alpha"}, "");
  ASSERT_TRUE(h1.ok() && h2.ok());
  EXPECT_EQ(*h1, *h2);
  auto n1 = engine.mount({"beta"}, "named");
  auto n2 = engine.mount({"beta"}, "named");
  auto n3 = engine.mount({}, "named");  // by name alone
  ASSERT_TRUE(n1.ok() && n2.ok() && n3.ok());
  EXPECT_EQ(*n1, *n2);
  EXPECT_EQ(*n1, *n3);
  EXPECT_EQ(engine.hierarchies().size(), 3u);
}

TEST_F(HierarchyTest, MountErrors) {
  ASSERT_TRUE(engine.mount({"alpha"}, "").ok());
  EXPECT_EQ(engine.mount({"alpha", "beta"}, "").err(), EBUSY);  // alpha is taken
  EXPECT_EQ(engine.mount({"alpha"}, "other").err(), EBUSY);
  EXPECT_EQ(engine.mount({"gamma"}, "").err(), EINVAL);
  EXPECT_EQ(engine.mount({}, "").err(), EINVAL);
  EXPECT_EQ(engine.mount({}, "bad name").err(), EINVAL);
  EXPECT_EQ(engine.mount({}, std::string(65, 'x')).err(), EINVAL);
  ASSERT_TRUE(engine.mount({}, "systemd").ok());
  EXPECT_EQ(engine.mount({"beta"}, "systemd").err(), EBUSY);  // exists with other controllers
  EXPECT_EQ(engine.hierarchies().size(), 3u);
  expect_ok();
}

TEST_F(HierarchyTest, NamedHierarchyWithoutControllersTracksTasks) {
  Pid p = spawn();
  auto h = engine.mount({}, "systemd");
  ASSERT_TRUE(h.ok());
  auto svc = mk((*h)->root(), "svc");
  ASSERT_TRUE(engine.migrate_process(p, *svc).ok());
  EXPECT_EQ(engine.task_cgroup(p, **h)->get(), svc.get());
  // No controller changes css, so none is asked.
  EXPECT_EQ(alpha->nr_can_attach.load(), 0);
  EXPECT_EQ(beta->nr_can_attach.load(), 0);
  expect_ok();
}

TEST_F(HierarchyTest, DestroyGivesControllersBack) {
  Pid p = spawn();
  auto h = engine.mount({"alpha", "beta"}, "");
  ASSERT_TRUE(h.ok());
  Hierarchy& v1 = **h;
  auto c = mk(v1.root(), "c");
  EXPECT_EQ(engine.destroy_hierarchy(v1).err(), EBUSY);
  ASSERT_TRUE(engine.migrate_process(p, *c).ok());
  EXPECT_EQ(engine.rmdir(*c).err(), EBUSY);
  ASSERT_TRUE(engine.migrate_process(p, v1.root()).ok());
  ASSERT_TRUE(engine.rmdir(*c).ok());
  c = CgroupPtr();
  ASSERT_TRUE(engine.destroy_hierarchy(v1).ok());
  EXPECT_EQ(engine.hierarchies().size(), 1u);
  EXPECT_TRUE(bound_to(engine, alpha->id(), engine.default_hierarchy()));
  EXPECT_TRUE(bound_to(engine, beta->id(), engine.default_hierarchy()));
  expect_ok();
  // The slot is reused and the controller can be bound again.
  auto again = engine.mount({"alpha"}, "");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(engine.task_cgroup(p, **again)->get(), &(*again)->root());
  expect_ok();
}

TEST_F(HierarchyTest, DestroyTheDefaultHierarchyIsRefused) {
  EXPECT_EQ(engine.destroy_hierarchy(engine.default_hierarchy()).err(), EINVAL);
}

TEST_F(HierarchyTest, MountWithAllocationFailureChangesNothing) {
  auto a = mk(root(), "a");
  Pid p1 = spawn();
  spawn();
  ASSERT_TRUE(engine.migrate_process(p1, *a).ok());
  auto before = engine.TEST_object_counts();
  for (int nth = 1; nth <= 2; ++nth) {
    engine.TEST_fail_cset_alloc(nth);
    EXPECT_EQ(engine.mount({"alpha"}, "").err(), ENOMEM) << nth;
    engine.TEST_fail_cset_alloc(0);
    EXPECT_EQ(engine.hierarchies().size(), 1u);
    EXPECT_TRUE(bound_to(engine, alpha->id(), engine.default_hierarchy()));
    auto after = engine.TEST_object_counts();
    EXPECT_EQ(after.css_sets, before.css_sets);
    EXPECT_EQ(after.cgroups, before.cgroups);
    expect_ok();
  }
  EXPECT_TRUE(engine.mount({"alpha"}, "").ok());
  expect_ok();
}

TEST(HierarchyRegistration, ControllersRegisterOnlyBeforeTheFirstCgroup) {
  Engine engine;
  EXPECT_TRUE(engine.register_controller(std::make_unique<TestController>("one")).ok());
  EXPECT_EQ(engine.register_controller(std::make_unique<TestController>("one")).err(), EEXIST);
  EXPECT_EQ(engine.register_controller(std::make_unique<TestController>("Bad-Name")).err(), EINVAL);
  Pid p = *engine.spawn({});
  // A mounted hierarchy with only its root still allows registration, and
  // existing tasks get the new controller's root css.
  ASSERT_TRUE(engine.mount({}, "named").ok());
  EXPECT_TRUE(engine.register_controller(std::make_unique<TestController>("two")).ok());
  EXPECT_TRUE(engine.check_invariants().ok()) << engine.check_invariants().message();
  ASSERT_TRUE(engine.mkdir(engine.default_hierarchy().root(), "x").ok());
  EXPECT_EQ(engine.register_controller(std::make_unique<TestController>("three")).err(), EBUSY);
  EXPECT_EQ(engine.nr_controllers(), 2u);
  EXPECT_TRUE(engine.exit_process(p).ok());
  EXPECT_TRUE(engine.check_invariants().ok()) << engine.check_invariants().message();
}

TEST(HierarchyRegistration, ManyControllers) {
  // There is no fixed limit on controllers: register well past 64.
  Engine engine;
  std::vector<TestController*> cs;
  for (int i = 0; i < 70; ++i) {
    auto c = std::make_unique<TestController>("c" + std::to_string(i));
    cs.push_back(c.get());
    ASSERT_TRUE(engine.register_controller(std::move(c)).ok());
  }
  Pid p = *engine.spawn({});
  auto h = engine.mount({"c65", "c3"}, "");
  ASSERT_TRUE(h.ok());
  auto g = engine.mkdir((*h)->root(), "g");
  ASSERT_TRUE(g.ok());
  ASSERT_TRUE(engine.migrate_process(p, **g).ok());
  EXPECT_EQ(cs[65]->nr_attach.load(), 1);
  EXPECT_EQ(cs[3]->nr_attach.load(), 1);
  EXPECT_EQ(cs[4]->nr_attach.load(), 0);
  EXPECT_TRUE(cs[65]->check_counts(engine).ok());
  EXPECT_TRUE(engine.check_invariants().ok()) << engine.check_invariants().message();
}

}  // namespace
}  // namespace cgcore::testing
