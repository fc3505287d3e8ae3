// Cgroups: creation rules, limits, removal, renaming, css lifecycle,
// populated tracking.
#include <map>

#include "tests/core/test_util.h"

namespace cgcore::testing {
namespace {

using CgroupTest = EngineFixture;

TEST_F(CgroupTest, NameRules) {
  EXPECT_EQ(engine.mkdir(root(), "").err(), EINVAL);
  EXPECT_EQ(engine.mkdir(root(), ".").err(), EINVAL);
  EXPECT_EQ(engine.mkdir(root(), "..").err(), EINVAL);
  EXPECT_EQ(engine.mkdir(root(), "a/b").err(), EINVAL);
  EXPECT_EQ(engine.mkdir(root(), "a\nb").err(), EINVAL);
  EXPECT_TRUE(engine.mkdir(root(), std::string(1000, 'x')).ok());  // no length limit
  EXPECT_TRUE(engine.mkdir(root(), std::string(255, 'x')).ok());
  EXPECT_TRUE(engine.mkdir(root(), "...").ok());
  EXPECT_TRUE(engine.mkdir(root(), "a b").ok());
  auto a = mk(root(), "a");
  EXPECT_EQ(engine.mkdir(root(), "a").err(), EEXIST);
  EXPECT_EQ(a->level(), 1);
  EXPECT_EQ(mk(*a, "b")->level(), 2);
}

TEST_F(CgroupTest, MkdirUnderRemovedParentIsENOENT) {
  auto a = mk(root(), "a");
  ASSERT_TRUE(engine.rmdir(*a).ok());
  EXPECT_TRUE(a->dead());
  EXPECT_EQ(engine.mkdir(*a, "b").err(), ENOENT);
  EXPECT_EQ(engine.rmdir(*a).err(), ENOENT);
}

TEST_F(CgroupTest, DepthAndDescendantLimits) {
  auto a = mk(root(), "a");
  {
    MutexLock lock(engine.cgroup_mutex());
    ASSERT_TRUE(engine.set_max_depth_locked(*a, 1).ok());
    ASSERT_TRUE(engine.set_max_descendants_locked(root(), 3).ok());
    EXPECT_EQ(engine.set_max_depth_locked(*a, -1).err(), EINVAL);
    EXPECT_EQ(engine.set_max_descendants_locked(*a, -1).err(), EINVAL);
  }
  auto b = mk(*a, "b");
  EXPECT_EQ(engine.mkdir(*b, "c").err(), EAGAIN);  // depth 2 below a
  mk(root(), "x");
  EXPECT_EQ(engine.mkdir(root(), "y").err(), EAGAIN);  // root has 3 descendants
  ASSERT_TRUE(engine.rmdir(*b).ok());
  EXPECT_TRUE(engine.mkdir(root(), "y").ok());
  {
    MutexLock lock(engine.cgroup_mutex());
    EXPECT_EQ(root().nr_descendants(), 3);
    EXPECT_EQ(a->nr_descendants(), 0);
  }
}

TEST_F(CgroupTest, RmdirRefusedWhileBusy) {
  auto a = mk(root(), "a");
  auto b = mk(*a, "b");
  EXPECT_EQ(engine.rmdir(*a).err(), EBUSY);  // child
  EXPECT_EQ(engine.rmdir(root()).err(), EBUSY);
  Pid p = spawn();
  ASSERT_TRUE(engine.migrate_process(p, *b).ok());
  EXPECT_EQ(engine.rmdir(*b).err(), EBUSY);  // task
  ASSERT_TRUE(engine.mark_exiting(p).ok());
  EXPECT_EQ(engine.rmdir(*b).err(), EBUSY);  // an exiting task still counts
  ASSERT_TRUE(engine.exit_thread(p).ok());
  EXPECT_TRUE(engine.rmdir(*b).ok());
  EXPECT_TRUE(engine.rmdir(*a).ok());
  expect_ok();
}

TEST_F(CgroupTest, Rename) {
  auto a = mk(root(), "a");
  mk(root(), "b");
  EXPECT_EQ(engine.rename(*a, "b").err(), EEXIST);
  EXPECT_EQ(engine.rename(*a, "x/y").err(), EINVAL);
  EXPECT_EQ(engine.rename(root(), "r").err(), EBUSY);
  EXPECT_TRUE(engine.rename(*a, "a").ok());
  ASSERT_TRUE(engine.rename(*a, "c").ok());
  EXPECT_FALSE(engine.find_child(root(), "a"));
  EXPECT_EQ(engine.find_child(root(), "c").get(), a.get());
  {
    MutexLock lock(engine.cgroup_mutex());
    EXPECT_EQ(a->name(), "c");
    EXPECT_EQ(a->path(), "/c");
  }
  ASSERT_TRUE(engine.rmdir(*a).ok());
  EXPECT_EQ(engine.rename(*a, "d").err(), ENOENT);
  expect_ok();
}

class CssFailureTest : public EngineFixture {
 protected:
  void SetUp() override {
    auto h = engine.mount({"alpha", "beta"}, "");
    ASSERT_TRUE(h.ok());
    v1 = *h;
  }
  Hierarchy* v1 = nullptr;
};

TEST_F(CssFailureTest, AllocFailureOfALaterControllerUndoesTheEarlierOnes) {
  auto before = engine.TEST_object_counts();
  beta->fail_css_alloc = 1;  // alpha (id 0) is allocated first
  EXPECT_EQ(engine.mkdir(v1->root(), "g").err(), ENOMEM);
  EXPECT_FALSE(engine.find_child(v1->root(), "g"));
  auto after = engine.TEST_object_counts();
  EXPECT_EQ(after.csses, before.csses);
  EXPECT_EQ(after.cgroups, before.cgroups);
  EXPECT_EQ(alpha->nr_offline.load(), 0);  // never onlined
  EXPECT_TRUE(engine.mkdir(v1->root(), "g").ok());
  expect_ok();
}

TEST_F(CssFailureTest, OnlineFailureOfflinesTheOnlinedOnes) {
  auto before = engine.TEST_object_counts();
  beta->fail_css_online = 1;
  EXPECT_EQ(engine.mkdir(v1->root(), "g").err(), ENOSPC);
  EXPECT_FALSE(engine.find_child(v1->root(), "g"));
  EXPECT_EQ(alpha->nr_offline.load(), 1);
  EXPECT_EQ(beta->nr_offline.load(), 0);
  auto after = engine.TEST_object_counts();
  EXPECT_EQ(after.csses, before.csses);
  EXPECT_EQ(after.cgroups, before.cgroups);
  expect_ok();
}

TEST_F(CssFailureTest, EveryCgroupOfAV1HierarchyHasACssPerController) {
  auto g = mk(v1->root(), "g");
  auto h = mk(*g, "h");
  MutexLock lock(engine.cgroup_mutex());
  for (ControllerId id : {alpha->id(), beta->id()}) {
    Css* cg = g->css(id);
    Css* ch = h->css(id);
    ASSERT_TRUE(cg && ch);
    EXPECT_EQ(ch->parent(), cg);
    EXPECT_EQ(cg->parent(), &engine.root_css(id));
    EXPECT_TRUE(ch->online());
    EXPECT_EQ(ch->cgroup(), h.get());
  }
  // In the default hierarchy nothing is enabled, so children share the root css.
  EXPECT_EQ(root().css(alpha->id()), nullptr);
}

TEST_F(CssFailureTest, AnOfflineCssLivesWhileReferenced) {
  auto g = mk(v1->root(), "g");
  Css* css;
  {
    MutexLock lock(engine.cgroup_mutex());
    css = g->css(alpha->id());
    css->get();
  }
  int64_t before = engine.TEST_object_counts().csses;
  ASSERT_TRUE(engine.rmdir(*g).ok());
  EXPECT_FALSE(css->online());
  EXPECT_EQ(css->cgroup(), g.get());  // still answers
  EXPECT_EQ(engine.TEST_object_counts().csses, before - 1);  // beta's css is gone
  g = CgroupPtr();
  css->put();
  EXPECT_EQ(engine.TEST_object_counts().csses, before - 2);  // alpha's and beta's
  expect_ok();
}

// Records populated notifications.
class Recorder : public EngineObserver {
 public:
  void populated_changed(Cgroup& cg, bool populated) override { events.emplace_back(&cg, populated); }
  std::vector<std::pair<Cgroup*, bool>> events;
};

TEST_F(CgroupTest, PopulatedFollowsTasksAndPropagatesUp) {
  Recorder rec;
  engine.add_observer(&rec);
  auto a = mk(root(), "a");
  auto b = mk(*a, "b");
  auto c = mk(root(), "c");
  Pid p = spawn();  // root becomes populated
  EXPECT_TRUE(engine.populated(root()));
  EXPECT_FALSE(engine.populated(*a));
  rec.events.clear();
  ASSERT_TRUE(engine.migrate_process(p, *b).ok());
  EXPECT_TRUE(engine.populated(*b));
  EXPECT_TRUE(engine.populated(*a));
  EXPECT_TRUE(engine.populated(root()));
  // b and a turned populated; the root never flapped.
  std::map<Cgroup*, std::vector<bool>> by;
  for (auto& [cg, v] : rec.events) by[cg].push_back(v);
  EXPECT_EQ(by[b.get()], std::vector<bool>{true});
  EXPECT_EQ(by[a.get()], std::vector<bool>{true});
  EXPECT_TRUE(by[&root()].empty());
  rec.events.clear();
  ASSERT_TRUE(engine.migrate_process(p, *c).ok());
  EXPECT_FALSE(engine.populated(*a));
  EXPECT_FALSE(engine.populated(*b));
  EXPECT_TRUE(engine.populated(*c));
  ASSERT_TRUE(engine.exit_process(p).ok());
  EXPECT_FALSE(engine.populated(*c));
  EXPECT_FALSE(engine.populated(root()));
  engine.remove_observer(&rec);
  expect_ok();
}

TEST_F(CgroupTest, V1FlagsAreInheritedAtCreation) {
  auto a = mk(root(), "a");
  a->set_notify_on_release(true);
  a->set_clone_children(true);
  auto b = mk(*a, "b");
  EXPECT_TRUE(b->notify_on_release());
  EXPECT_TRUE(b->clone_children());
  a->set_notify_on_release(false);
  EXPECT_TRUE(b->notify_on_release());  // not live-inherited
  EXPECT_FALSE(mk(root(), "c")->notify_on_release());
}

}  // namespace
}  // namespace cgcore::testing
