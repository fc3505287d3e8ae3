// Tasks, processes and address spaces: spawn, fork, threads, exit, exec.
#include <atomic>
#include <thread>

#include "tests/core/test_util.h"

namespace cgcore::testing {
namespace {

using TaskTest = EngineFixture;

TEST_F(TaskTest, SpawnAssignsIdsAndHonoursRequestedOnes) {
  EXPECT_EQ(spawn(), 1);
  EXPECT_EQ(spawn(), 2);
  auto r = engine.spawn({.pid = 100});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 100);
  EXPECT_EQ(engine.spawn({.pid = 100}).err(), EEXIST);
  EXPECT_EQ(engine.spawn({.pid = 0}).err(), EINVAL);
  EXPECT_EQ(engine.spawn({.pid = -5}).err(), EINVAL);
  EXPECT_EQ(engine.nr_tasks(), 3u);
  EXPECT_EQ(engine.task_cgroup(100, engine.default_hierarchy())->get(), &root());
}

TEST_F(TaskTest, ForkInheritsCgroupsAndCredentials) {
  auto h = engine.mount({"alpha"}, "");
  ASSERT_TRUE(h.ok());
  auto a = mk(root(), "a");
  auto b = mk((*h)->root(), "b");
  Pid p = *engine.spawn({.creds = Creds{1000, 1000, 1000, 100, 100}});
  ASSERT_TRUE(engine.migrate_process(p, *a).ok());
  ASSERT_TRUE(engine.migrate_process(p, *b).ok());
  auto c = engine.fork(p);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(engine.task_cgroup(*c, engine.default_hierarchy())->get(), a.get());
  EXPECT_EQ(engine.task_cgroup(*c, **h)->get(), b.get());
  EXPECT_EQ(engine.creds(*c)->uid, 1000u);
  auto d = engine.fork(p, {.creds = Creds{0, 0, 0, 0, 0}});
  EXPECT_EQ(engine.creds(*d)->euid, 0u);
  EXPECT_EQ(*engine.tgid_of(*c), *c);
  EXPECT_EQ(engine.fork(12345).err(), ESRCH);
  expect_ok();
}

// A fork charged before its real id is known: created with a provisional
// id, renamed once the id is known, with its cgroups and charges unchanged.
TEST_F(TaskTest, AProvisionalTaskTakesItsRealId) {
  auto a = mk(root(), "a");
  Pid p = spawn();
  Result<Pid> t = engine.clone_thread(p);
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(engine.migrate_process(p, *a).ok());
  const Pid prov = kFirstProvisionalId + 7;
  ASSERT_TRUE(engine.fork(p, {.pid = prov}).ok());
  ASSERT_TRUE(engine.clone_thread(p, prov + 1).ok());
  EXPECT_TRUE(engine.change_task_id(prov, 500).ok());
  EXPECT_EQ(engine.tgid_of(500).value(), 500);
  EXPECT_EQ(engine.tgid_of(prov).err(), ESRCH);
  EXPECT_EQ(engine.task_cgroup(500, engine.default_hierarchy())->get(), a.get());
  EXPECT_TRUE(engine.change_task_id(prov + 1, 501).ok());  // a thread
  EXPECT_EQ(engine.tgid_of(501).value(), p);
  EXPECT_EQ(engine.threads_of(p)->size(), 3u);
  // Errors change nothing.
  EXPECT_EQ(engine.change_task_id(500, *t).err(), EEXIST);
  EXPECT_EQ(engine.change_task_id(prov, 502).err(), ESRCH);
  EXPECT_EQ(engine.change_task_id(500, 0).err(), EINVAL);
  EXPECT_EQ(engine.change_task_id(p, 503).err(), EINVAL);  // a leader with threads
  EXPECT_EQ(engine.tgid_of(500).value(), 500);
  expect_ok();
  ASSERT_TRUE(engine.exit_process(500).ok());
  ASSERT_TRUE(engine.exit_process(p).ok());
  expect_ok();
}

TEST_F(TaskTest, ThreadsShareTheProcess) {
  Pid p = spawn();
  Pid t1 = *engine.clone_thread(p);
  Pid t2 = *engine.clone_thread(t1);  // from any thread
  EXPECT_EQ(*engine.tgid_of(t2), p);
  EXPECT_EQ(*engine.threads_of(t2), (std::vector<Pid>{p, t1, t2}));
  ASSERT_TRUE(engine.set_creds(p, Creds{7, 7, 7, 7, 7}).ok());
  EXPECT_EQ(engine.creds(t2)->uid, 7u);
  EXPECT_EQ(engine.TEST_object_counts().processes, 1);
  EXPECT_EQ(engine.TEST_object_counts().mms, 1);
}

// Two exit_thread calls and an exit_process racing for one thread: the
// thread is ended once (by at most one exit_thread), the losers get ESRCH,
// and nothing is unlinked twice.
TEST_F(TaskTest, RacingExitsOfOneThreadEndItOnce) {
  for (int round = 0; round < 200; ++round) {
    Pid p = spawn();
    Pid t1 = *engine.clone_thread(p);
    std::atomic<int> thread_ok{0}, thread_esrch{0};
    Status process_st;
    auto end_thread = [&] {
      Status st = engine.exit_thread(t1);
      if (st.ok()) thread_ok.fetch_add(1);
      else if (st.err() == ESRCH) thread_esrch.fetch_add(1);
    };
    std::thread a(end_thread), b(end_thread);
    std::thread c([&] { process_st = engine.exit_process(p); });
    a.join();
    b.join();
    c.join();
    EXPECT_TRUE(process_st.ok());  // its leader was alive
    // At most one exit_thread ends t1 (none if exit_process got there first).
    EXPECT_LE(thread_ok.load(), 1);
    EXPECT_EQ(thread_ok.load() + thread_esrch.load(), 2);
    EXPECT_FALSE(engine.tgid_of(t1).ok());
    EXPECT_FALSE(engine.tgid_of(p).ok());
  }
  ASSERT_TRUE(engine.check_invariants().ok());
  EXPECT_EQ(engine.TEST_object_counts().tasks, 0);
}

TEST_F(TaskTest, SharedAddressSpace) {
  Pid p = spawn();
  auto c = engine.fork(p, {.share_mm = true});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(engine.TEST_object_counts().mms, 1);
  auto d = engine.fork(p);
  EXPECT_EQ(engine.TEST_object_counts().mms, 2);
  ASSERT_TRUE(engine.exit_process(p).ok());
  EXPECT_EQ(engine.TEST_object_counts().mms, 2);  // the vfork child keeps it
  ASSERT_TRUE(engine.exec(*c).ok());
  EXPECT_EQ(engine.TEST_object_counts().mms, 2);  // old one freed, new one made
  expect_ok();
}

TEST_F(TaskTest, LeaderExitLeavesAZombieThatKeepsTheProcessId) {
  auto a = mk(root(), "a");
  Pid p = spawn();
  Pid t = *engine.clone_thread(p);
  ASSERT_TRUE(engine.exit_thread(p).ok());
  EXPECT_EQ(engine.exit_thread(p).err(), ESRCH);
  EXPECT_EQ(engine.tgid_of(p).value(), p);  // zombie leader
  EXPECT_EQ(*engine.threads_of(p), std::vector<Pid>{t});
  EXPECT_EQ(engine.task_cgroup(p, engine.default_hierarchy()).err(), ESRCH);
  EXPECT_EQ(tids(root()), std::vector<Pid>{t});
  // Moving the process by its id moves the live threads.
  ASSERT_TRUE(engine.migrate_process(p, *a).ok());
  EXPECT_EQ(tids(*a), std::vector<Pid>{t});
  // The zombie cannot fork; a migration of it alone does nothing.
  EXPECT_EQ(engine.fork(p).err(), ESRCH);
  EXPECT_TRUE(engine.migrate_thread(p, root()).ok());
  expect_ok();
  ASSERT_TRUE(engine.exit_thread(t).ok());
  EXPECT_EQ(engine.tgid_of(p).err(), ESRCH);
  EXPECT_EQ(engine.TEST_object_counts().processes, 0);
  EXPECT_EQ(engine.TEST_object_counts().tasks, 0);
  expect_ok();
}

TEST_F(TaskTest, ExecByANonLeaderTakesTheProcessId) {
  Pid p = spawn();
  Pid t1 = *engine.clone_thread(p);
  Pid t2 = *engine.clone_thread(p);
  auto a = mk(root(), "a");
  ASSERT_TRUE(engine.migrate_thread(t2, *a).ok());
  ASSERT_TRUE(engine.exec(t2).ok());
  EXPECT_EQ(*engine.threads_of(p), std::vector<Pid>{p});
  EXPECT_EQ(engine.tgid_of(t1).err(), ESRCH);
  EXPECT_EQ(engine.tgid_of(t2).err(), ESRCH);  // its old id is gone
  EXPECT_EQ(engine.task_cgroup(p, engine.default_hierarchy())->get(), a.get());
  EXPECT_EQ(tids(*a), std::vector<Pid>{p});
  EXPECT_TRUE(tids(root()).empty());
  expect_ok();
}

TEST_F(TaskTest, ExecByTheLeader) {
  Pid p = spawn();
  ASSERT_TRUE(engine.clone_thread(p).ok());
  ASSERT_TRUE(engine.exec(p).ok());
  EXPECT_EQ(*engine.threads_of(p), std::vector<Pid>{p});
  EXPECT_EQ(engine.TEST_object_counts().mms, 1);
  expect_ok();
}

TEST_F(TaskTest, ExitingTasksStayUntilTheyExit) {
  auto a = mk(root(), "a");
  Pid p = spawn();
  ASSERT_TRUE(engine.mark_exiting(p).ok());
  EXPECT_EQ(tids(root()), std::vector<Pid>{p});
  EXPECT_EQ(engine.fork(p).err(), ESRCH);
  EXPECT_EQ(engine.clone_thread(p).err(), ESRCH);
  EXPECT_TRUE(engine.migrate_process(p, *a).ok());  // skipped, as the kernel does
  EXPECT_TRUE(tids(*a).empty());
  ASSERT_TRUE(engine.exit_thread(p).ok());
  EXPECT_EQ(engine.mark_exiting(p).err(), ESRCH);
  expect_ok();
}

TEST_F(TaskTest, CanForkVetoLeavesNoTrace) {
  Pid p = spawn();
  auto before = engine.TEST_object_counts();
  beta->veto_fork = 1;  // alpha's can_fork succeeded first and is cancelled
  EXPECT_EQ(engine.fork(p).err(), EAGAIN);
  beta->veto_fork = 1;
  EXPECT_EQ(engine.clone_thread(p).err(), EAGAIN);
  alpha->veto_fork = 1;
  EXPECT_EQ(engine.spawn({}).err(), EAGAIN);
  auto after = engine.TEST_object_counts();
  EXPECT_EQ(after.tasks, before.tasks);
  EXPECT_EQ(after.processes, before.processes);
  EXPECT_EQ(after.mms, before.mms);
  EXPECT_EQ(engine.nr_tasks(), 1u);
  EXPECT_EQ(engine.tgid_of(2).err(), ESRCH);
  EXPECT_TRUE(engine.fork(p).ok());  // ids are not burnt
  EXPECT_EQ(engine.nr_tasks(), 2u);
  expect_ok();
}

TEST_F(TaskTest, ExitProcessEndsEveryThread) {
  Pid p = spawn();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(engine.clone_thread(p).ok());
  EXPECT_EQ(engine.nr_tasks(), 6u);
  ASSERT_TRUE(engine.exit_process(p).ok());
  EXPECT_EQ(engine.nr_tasks(), 0u);
  EXPECT_EQ(engine.exit_process(p).err(), ESRCH);
  EXPECT_EQ(alpha->nr_exit.load(), 6);
  expect_ok();
}

TEST_F(TaskTest, IdsAreReusedAfterExit) {
  Pid p = spawn();
  Pid q = spawn();
  ASSERT_TRUE(engine.exit_process(p).ok());
  // The allocator moves on, like Linux's, but a requested id can be reused.
  EXPECT_GT(spawn(), q);
  auto again = engine.spawn({.pid = p});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, p);
  expect_ok();
}

TEST_F(TaskTest, IdsWrapBelowPidMax) {
  EXPECT_EQ(engine.set_pid_max(1).err(), EINVAL);
  ASSERT_TRUE(engine.set_pid_max(5).ok());  // ids 1..4
  for (Pid want = 1; want <= 4; ++want) EXPECT_EQ(spawn(), want);
  EXPECT_EQ(engine.spawn({}).err(), EAGAIN);  // every id in use
  ASSERT_TRUE(engine.exit_process(2).ok());
  EXPECT_EQ(spawn(), 2);  // wrapped around to the free one
  expect_ok();
}

TEST_F(TaskTest, ForkCopiesTheAddressSpaceSizeButNotItsCharges) {
  Pid p = spawn();
  {
    auto mm = engine.mm_of(p);
    ASSERT_TRUE(mm.ok());
    (*mm)->total_vm = 8192;
    (*mm)->charged = 4096;
  }
  Pid c = *engine.fork(p);
  auto cm = engine.mm_of(c);
  ASSERT_TRUE(cm.ok());
  EXPECT_EQ((*cm)->total_vm.load(), 8192);
  EXPECT_EQ((*cm)->charged.load(), 0);
  auto shared = engine.fork(p, {.share_mm = true});
  EXPECT_EQ(engine.mm_of(*shared)->get(), engine.mm_of(p)->get());
  ASSERT_TRUE(engine.exec(c).ok());
  EXPECT_EQ(engine.mm_of(c).value()->total_vm.load(), 0);  // exec empties it
  EXPECT_EQ(engine.mm_of(9999).err(), ESRCH);
  expect_ok();
}

// Records the address spaces released.
class MmWatcher : public TestController {
 public:
  MmWatcher() : TestController("mmwatch") {}
  void mm_release(Mm& mm) override { released.push_back(&mm); }
  std::vector<Mm*> released;
};

TEST(TaskMm, ReleaseHookRunsWhenTheLastUserGoes) {
  Engine engine;
  auto w = std::make_unique<MmWatcher>();
  MmWatcher* watcher = w.get();
  ASSERT_TRUE(engine.register_controller(std::move(w)).ok());
  Pid p = *engine.spawn({});
  Mm* mm = engine.mm_of(p)->get();
  Pid c = *engine.fork(p, {.share_mm = true});
  ASSERT_TRUE(engine.exit_process(p).ok());
  EXPECT_TRUE(watcher->released.empty());
  {
    auto ref = engine.mm_of(c);  // a reference keeps it too
    ASSERT_TRUE(engine.exit_process(c).ok());
    EXPECT_TRUE(watcher->released.empty());
  }
  EXPECT_EQ(watcher->released, std::vector<Mm*>{mm});
  EXPECT_TRUE(engine.check_invariants().ok());
}

}  // namespace
}  // namespace cgcore::testing
