#include "tests/core/test_util.h"
namespace cgcore::testing {
namespace {
using Smoke = EngineFixture;
TEST_F(Smoke, Basics) {
  auto a = mk(root(), "a");
  Pid p = spawn();
  auto t = engine.clone_thread(p);
  ASSERT_TRUE(t.ok());
  auto c = engine.fork(p);
  ASSERT_TRUE(c.ok());
  expect_ok();
  ASSERT_TRUE(engine.migrate_process(p, *a).ok());
  expect_ok();
  EXPECT_EQ(tids(*a), (std::vector<Pid>{p, *t}));
  ASSERT_TRUE(engine.transfer(root(), *a).ok());
  EXPECT_EQ(tids(*a).size(), 3u);
  expect_ok();
  auto h = engine.mount({"alpha"}, "");
  ASSERT_TRUE(h.ok()) << h.status().message();
  expect_ok();
  auto b = mk((*h)->root(), "b");
  ASSERT_TRUE(engine.migrate_thread(*t, *b).ok());
  expect_ok();
  ASSERT_TRUE(engine.exit_thread(p).ok());
  expect_ok();
  ASSERT_TRUE(engine.exec(*t).ok());
  expect_ok();
  EXPECT_FALSE(engine.rmdir(*b).ok());
  ASSERT_TRUE(engine.exit_process(p).ok());
  ASSERT_TRUE(engine.rmdir(*b).ok());
  ASSERT_TRUE(engine.destroy_hierarchy(**h).ok());
  expect_ok();
}
}  // namespace
}  // namespace cgcore::testing
