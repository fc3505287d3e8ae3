// Migration: the four-step transaction in every mode, vetoes at each point,
// allocation failures at each point, and what controllers are told.
#include <functional>
#include <map>
#include <string>

#include "core/migration.h"
#include "tests/core/test_util.h"

namespace cgcore::testing {
namespace {

class MigrationTest : public EngineFixture {
 protected:
  void SetUp() override {
    auto h = engine.mount({"alpha", "beta"}, "");
    ASSERT_TRUE(h.ok());
    v1 = *h;
    a = mk(v1->root(), "a");
    b = mk(v1->root(), "b");
    c = mk(v1->root(), "c");
  }
  // Every live task's cgroup in every hierarchy, plus object counts.
  struct Snapshot {
    std::map<std::pair<Pid, HierarchyId>, const Cgroup*> where;
    size_t csets;
    int64_t css_sets_alive;
    bool operator==(const Snapshot& o) const {
      return where == o.where && csets == o.csets && css_sets_alive == o.css_sets_alive;
    }
  };
  Snapshot snapshot() {
    Snapshot s;
    for (Hierarchy* h : engine.hierarchies()) {
      for (Pid pid : all) {
        auto cg = engine.task_cgroup(pid, *h);
        if (cg.ok()) s.where[{pid, h->id()}] = cg->get();
      }
    }
    s.csets = engine.nr_css_sets();
    s.css_sets_alive = engine.TEST_object_counts().css_sets;
    return s;
  }
  Pid proc(int threads, Cgroup* where = nullptr) {
    Pid p = spawn();
    all.push_back(p);
    for (int i = 1; i < threads; ++i) all.push_back(*engine.clone_thread(p));
    if (where) {
      EXPECT_TRUE(engine.migrate_process(p, *where).ok());
    }
    return p;
  }

  Hierarchy* v1 = nullptr;
  CgroupPtr a, b, c;
  std::vector<Pid> all;
};

TEST_F(MigrationTest, ThreadModeMovesOneThread) {
  Pid p = proc(3, a.get());
  Pid t = all[1];
  ASSERT_TRUE(engine.migrate_thread(t, *b).ok());
  EXPECT_EQ(tids(*b), std::vector<Pid>{t});
  EXPECT_EQ(tids(*a), (std::vector<Pid>{p, all[2]}));
  // Only the v1 hierarchy changed.
  EXPECT_EQ(engine.task_cgroup(t, engine.default_hierarchy())->get(), &root());
  EXPECT_EQ(engine.migrate_thread(999, *b).err(), ESRCH);
  expect_ok();
}

TEST_F(MigrationTest, ProcessModeGathersThreadsFromSeveralCgroups) {
  Pid p = proc(4, a.get());
  ASSERT_TRUE(engine.migrate_thread(all[1], *b).ok());
  ASSERT_TRUE(engine.migrate_thread(all[2], *c).ok());
  int64_t attaches = alpha->nr_attach.load();
  ASSERT_TRUE(engine.migrate_process(all[3], v1->root()).ok());  // by any thread's id
  EXPECT_EQ(alpha->nr_attach.load(), attaches + 1);  // one transaction
  EXPECT_EQ(tids(v1->root()), (std::vector<Pid>{p, all[1], all[2], all[3]}));
  expect_ok();
}

TEST_F(MigrationTest, AlreadyThereIsANoOpThatAsksNoController) {
  Pid p = proc(2, a.get());
  int64_t asked = alpha->nr_can_attach.load();
  int64_t asked_beta = beta->nr_can_attach.load();
  EXPECT_TRUE(engine.migrate_process(p, *a).ok());
  EXPECT_EQ(alpha->nr_can_attach.load(), asked);
  // Default-hierarchy moves without enabled controllers change no css.
  auto d = mk(root(), "d");
  EXPECT_TRUE(engine.migrate_process(p, *d).ok());
  EXPECT_EQ(alpha->nr_can_attach.load(), asked);
  EXPECT_EQ(beta->nr_can_attach.load(), asked_beta);
  EXPECT_EQ(tids(*d).size(), 2u);
  expect_ok();
}

TEST_F(MigrationTest, RemovedDestinationIsENODEV) {
  Pid p = proc(1);
  ASSERT_TRUE(engine.rmdir(*c).ok());
  EXPECT_EQ(engine.migrate_process(p, *c).err(), ENODEV);
  EXPECT_EQ(engine.transfer(v1->root(), *c).err(), ENODEV);
  expect_ok();
}

TEST_F(MigrationTest, ManyProcessesAreOneTransaction) {
  Pid p1 = proc(2, a.get()), p2 = proc(3, b.get()), p3 = proc(1);
  std::vector<Pid> pids{p1, p2, p3, p1};  // duplicates are fine
  ASSERT_TRUE(engine.migrate_processes(pids, *c).ok());
  EXPECT_EQ(tids(*c).size(), 6u);
  EXPECT_EQ(alpha->nr_attach.load(), 3);  // two set-up moves, then one
  std::vector<Pid> bad{p1, 4242};
  Snapshot before = snapshot();
  EXPECT_EQ(engine.migrate_processes(bad, *a).err(), ESRCH);
  EXPECT_TRUE(snapshot() == before);
  expect_ok();
}

TEST_F(MigrationTest, VetoInCanAttachUndoesEverything) {
  Pid p1 = proc(2, a.get()), p2 = proc(2, b.get()), p3 = proc(1);
  std::vector<Pid> pids{p1, p2, p3};
  Snapshot before = snapshot();
  int64_t attach = alpha->nr_attach.load();
  beta->veto_attach = 1;  // alpha (id 0) prepares first, then beta vetoes
  beta->veto_errno = EPERM;
  EXPECT_EQ(engine.migrate_processes(pids, *c).err(), EPERM);
  EXPECT_TRUE(snapshot() == before);
  EXPECT_EQ(alpha->nr_cancel_attach.load(), 1);
  EXPECT_EQ(beta->nr_cancel_attach.load(), 0);  // a vetoer is not cancelled
  EXPECT_EQ(alpha->nr_attach.load(), attach);
  EXPECT_EQ(alpha->nr_cancel_locked.load(), 0);
  expect_ok();
  // The first controller's veto: the second is never asked.
  int64_t asked = beta->nr_can_attach.load();
  alpha->veto_attach = 1;
  EXPECT_EQ(engine.migrate_processes(pids, *c).err(), EACCES);
  EXPECT_EQ(beta->nr_can_attach.load(), asked);
  EXPECT_TRUE(snapshot() == before);
  // And then it goes through.
  ASSERT_TRUE(engine.migrate_processes(pids, *c).ok());
  EXPECT_EQ(tids(*c).size(), 5u);
  expect_ok();
}

TEST_F(MigrationTest, VetoUnderTheCssSetLockUndoesBothPhases) {
  Pid p1 = proc(3, a.get()), p2 = proc(1);
  std::vector<Pid> pids{p1, p2};
  Snapshot before = snapshot();
  beta->veto_attach_locked = 1;
  EXPECT_EQ(engine.migrate_processes(pids, *b).err(), EACCES);
  EXPECT_TRUE(snapshot() == before);
  EXPECT_EQ(alpha->nr_cancel_locked.load(), 1);
  EXPECT_EQ(beta->nr_cancel_locked.load(), 0);
  EXPECT_EQ(alpha->nr_cancel_attach.load(), 1);
  EXPECT_EQ(beta->nr_cancel_attach.load(), 1);  // its can_attach had succeeded
  expect_ok();
}

TEST_F(MigrationTest, AllocationFailureAtEveryPointChangesNothing) {
  // Three sources whose destinations are all new css_sets (they differ in
  // the default hierarchy): three allocation points. Fail each in turn;
  // then let it through.
  Pid p1 = proc(2, a.get()), p2 = proc(2, b.get()), p3 = proc(1);
  auto d1 = mk(root(), "d1"), d2 = mk(root(), "d2");
  ASSERT_TRUE(engine.migrate_process(p1, *d1).ok());
  ASSERT_TRUE(engine.migrate_process(p2, *d2).ok());
  std::vector<Pid> pids{p1, p2, p3};
  auto fresh = mk(v1->root(), "fresh");
  Snapshot before = snapshot();
  int64_t asked = alpha->nr_can_attach.load();
  int failures = 0;
  for (int nth = 1;; ++nth) {
    ASSERT_LE(nth, 10);
    engine.TEST_fail_cset_alloc(nth);
    Status st = engine.migrate_processes(pids, *fresh);
    engine.TEST_fail_cset_alloc(0);
    if (st.ok()) break;
    ASSERT_EQ(st.err(), ENOMEM) << st.message();
    ++failures;
    EXPECT_TRUE(snapshot() == before) << "after failing allocation " << nth;
    EXPECT_EQ(alpha->nr_can_attach.load(), asked);  // failed before any hook
    expect_ok();
  }
  EXPECT_EQ(failures, 3);
  EXPECT_EQ(tids(*fresh).size(), 5u);
  expect_ok();
}

TEST_F(MigrationTest, TransferMovesTheCgroupsOwnTasksOnly) {
  auto sub = mk(*a, "sub");
  Pid p1 = proc(3, a.get()), p2 = proc(1, a.get()), p3 = proc(2, sub.get());
  ASSERT_TRUE(engine.migrate_thread(all[1], *b).ok());  // one thread of p1 elsewhere
  ASSERT_TRUE(engine.transfer(*a, *c).ok());
  EXPECT_TRUE(tids(*a).empty());
  EXPECT_EQ(tids(*c), (std::vector<Pid>{p1, all[2], p2}));
  EXPECT_EQ(tids(*sub).size(), 2u);
  EXPECT_EQ(tids(*b), std::vector<Pid>{all[1]});
  (void)p3;
  EXPECT_EQ(engine.transfer(*c, root()).err(), EINVAL);  // other hierarchy
  EXPECT_TRUE(engine.transfer(*c, *c).ok());
  EXPECT_TRUE(engine.transfer(*b, *b).ok());
  expect_ok();
}

TEST_F(MigrationTest, TransferIsAllOrNothing) {
  proc(3, a.get());
  proc(2, a.get());
  Snapshot before = snapshot();
  beta->veto_attach = 1;
  EXPECT_EQ(engine.transfer(*a, *b).err(), EACCES);
  EXPECT_TRUE(snapshot() == before);
  engine.TEST_fail_cset_alloc(1);
  EXPECT_EQ(engine.transfer(*a, *b).err(), ENOMEM);
  engine.TEST_fail_cset_alloc(0);
  EXPECT_TRUE(snapshot() == before);
  EXPECT_TRUE(engine.transfer(*a, *b).ok());
  EXPECT_EQ(tids(*b).size(), 5u);
  expect_ok();
}

TEST_F(MigrationTest, TransferSkipsExitingTasks) {
  Pid p1 = proc(1, a.get()), p2 = proc(1, a.get());
  ASSERT_TRUE(engine.mark_exiting(p2).ok());
  ASSERT_TRUE(engine.transfer(*a, *b).ok());
  EXPECT_EQ(tids(*b), std::vector<Pid>{p1});
  EXPECT_EQ(tids(*a), std::vector<Pid>{p2});
  ASSERT_TRUE(engine.exit_thread(p2).ok());
  expect_ok();
}

TEST_F(MigrationTest, HooksSeeSourcesBeforeTheCommitOnly) {
  // TestController::attach aborts if a source is visible after the commit
  // point or the task count is off; its counts prove attach ran once per
  // transaction with the right deltas.
  proc(4, a.get());
  proc(2, b.get());
  ASSERT_TRUE(engine.transfer(*a, *c).ok());
  ASSERT_TRUE(engine.transfer(*b, *c).ok());
  EXPECT_EQ(alpha->nr_post_attach.load(), alpha->nr_attach.load());
  EXPECT_TRUE(alpha->check_counts(engine).ok());
  EXPECT_TRUE(beta->check_counts(engine).ok());
}

TEST_F(MigrationTest, UnusedCssSetsAreKeptForTheWayBack) {
  size_t base = engine.nr_css_sets();
  Pid p = proc(1);
  ASSERT_TRUE(engine.migrate_process(p, *a).ok());
  EXPECT_EQ(engine.nr_css_sets(), base + 1);
  EXPECT_EQ(engine.nr_kept_css_sets(), 0u);
  ASSERT_TRUE(engine.migrate_process(p, *b).ok());
  EXPECT_EQ(engine.nr_css_sets(), base + 2);  // a's css_set is kept without tasks
  EXPECT_EQ(engine.nr_kept_css_sets(), 1u);
  expect_ok();
  const int64_t made = engine.TEST_object_counts().css_sets;
  ASSERT_TRUE(engine.migrate_process(p, *a).ok());
  EXPECT_EQ(engine.TEST_object_counts().css_sets, made);  // found again, not made
  EXPECT_EQ(engine.nr_kept_css_sets(), 1u);               // now b's
  expect_ok();
  ASSERT_TRUE(engine.exit_process(p).ok());
  EXPECT_EQ(engine.nr_kept_css_sets(), 2u);
  expect_ok();
  // Removing a cgroup takes its kept css_sets with it.
  ASSERT_TRUE(engine.rmdir(*a).ok());
  EXPECT_EQ(engine.nr_css_sets(), base + 1);
  EXPECT_EQ(engine.nr_kept_css_sets(), 1u);
  expect_ok();
}

TEST_F(MigrationTest, AMoveTakesTheCssSetLockTwice) {
  // Once to prepare, once to commit and finish (both test controllers'
  // hooks run: a and b are in their v1 hierarchy).
  if (!kLockDebug) GTEST_SKIP() << "the hold counter is compiled out in NDEBUG builds";
  Pid p = proc(1, a.get());
  ASSERT_TRUE(engine.migrate_process(p, *b).ok());  // both css_sets exist now
  ASSERT_TRUE(engine.migrate_process(p, *a).ok());
  const int64_t attached = alpha->nr_attach.load();
  uint64_t before = engine.TEST_css_set_lock_holds();
  ASSERT_TRUE(engine.migrate_process(p, *b).ok());
  EXPECT_EQ(engine.TEST_css_set_lock_holds() - before, 2u);
  EXPECT_EQ(alpha->nr_attach.load(), attached + 1);
  before = engine.TEST_css_set_lock_holds();
  ASSERT_TRUE(engine.migrate_thread(p, *a).ok());
  EXPECT_EQ(engine.TEST_css_set_lock_holds() - before, 2u);
  expect_ok();
}

TEST_F(MigrationTest, KeptCssSetsAreBounded) {
  // Each move to a new cgroup leaves the previous one's css_set kept; past
  // the bound the oldest ones go.
  Pid p = proc(1);
  constexpr int kMoves = 1100;
  std::vector<CgroupPtr> dirs;
  for (int i = 0; i < kMoves; ++i) {
    dirs.push_back(mk(v1->root(), ("m" + std::to_string(i)).c_str()));
    ASSERT_TRUE(engine.migrate_process(p, *dirs.back()).ok());
  }
  EXPECT_EQ(engine.nr_kept_css_sets(), 1024u);
  expect_ok();
  // The newest kept ones are still there: moving back allocates none.
  const int64_t made = engine.TEST_object_counts().css_sets;
  ASSERT_TRUE(engine.migrate_process(p, *dirs[kMoves - 2]).ok());
  EXPECT_EQ(engine.TEST_object_counts().css_sets, made);
  expect_ok();
}

TEST_F(MigrationTest, AFailedMoveKeepsNoNewCssSet) {
  Pid p = proc(1, a.get());
  const int64_t made = engine.TEST_object_counts().css_sets;
  const size_t kept = engine.nr_kept_css_sets();
  beta->veto_attach = 1;
  EXPECT_EQ(engine.migrate_process(p, *b).err(), EACCES);
  EXPECT_EQ(engine.TEST_object_counts().css_sets, made);
  EXPECT_EQ(engine.nr_kept_css_sets(), kept);
  expect_ok();
}

// ---- Move checks: the check and the move in one cgroup-mutex hold.

// Records every target a check is shown, and answers with `answer`.
struct RecordingCheck {
  struct Seen {
    Pid tid, tgid;
    Creds creds;
    const Cgroup* src;
  };
  Status operator()(const MoveTarget& t) {
    seen.push_back({t.tid, t.tgid, t.creds, &t.src});
    return answer;
  }
  std::vector<Seen> seen;
  Status answer;
};

TEST_F(MigrationTest, ProcessCheckSeesTheLeaderItsCgroupAndCreds) {
  Pid p = proc(3, a.get());
  Pid t1 = all[1], t2 = all[2];
  ASSERT_TRUE(engine.migrate_thread(p, *b).ok());  // the leader alone in b
  const Creds creds{1, 2, 3, 4, 5};
  ASSERT_TRUE(engine.set_creds(p, creds).ok());
  RecordingCheck check;
  {
    MutexLock lock(engine.cgroup_mutex());
    // Named by a thread that is not the leader: the check still sees the leader.
    ASSERT_TRUE(engine.migrate_process_locked(t2, *c, std::ref(check)).ok());
  }
  ASSERT_EQ(check.seen.size(), 1u);
  EXPECT_EQ(check.seen[0].tid, p);
  EXPECT_EQ(check.seen[0].tgid, p);
  EXPECT_EQ(check.seen[0].creds, creds);
  EXPECT_EQ(check.seen[0].src, b.get());
  EXPECT_EQ(tids(*c), (std::vector<Pid>{p, t1, t2}));
  // The source is the one of dst's hierarchy: the default one here.
  auto d = mk(root(), "d");
  {
    MutexLock lock(engine.cgroup_mutex());
    ASSERT_TRUE(engine.migrate_process_locked(p, *d, std::ref(check)).ok());
  }
  ASSERT_EQ(check.seen.size(), 2u);
  EXPECT_EQ(check.seen[1].src, &root());
  expect_ok();
}

TEST_F(MigrationTest, ProcessCheckSeesTheNamedThreadWhenTheLeaderIsGone) {
  Pid p = proc(3, a.get());
  Pid t1 = all[1], t2 = all[2];
  ASSERT_TRUE(engine.migrate_thread(t2, *b).ok());
  ASSERT_TRUE(engine.exit_thread(p).ok());  // a zombie leader keeps the id
  RecordingCheck check;
  {
    MutexLock lock(engine.cgroup_mutex());
    ASSERT_TRUE(engine.migrate_process_locked(t2, *c, std::ref(check)).ok());
    // By the process id: the leader is gone and so is the named (zombie)
    // thread; the check sees a live one.
    ASSERT_TRUE(engine.migrate_process_locked(p, *a, std::ref(check)).ok());
  }
  ASSERT_EQ(check.seen.size(), 2u);
  EXPECT_EQ(check.seen[0].tid, t2);
  EXPECT_EQ(check.seen[0].tgid, p);
  EXPECT_EQ(check.seen[0].src, b.get());
  EXPECT_TRUE(check.seen[1].tid == t1 || check.seen[1].tid == t2);
  EXPECT_EQ(check.seen[1].src, c.get());
  EXPECT_EQ(tids(*a), (std::vector<Pid>{t1, t2}));
  expect_ok();
}

TEST_F(MigrationTest, ThreadCheckSeesTheThreadAndItsOwnCgroup) {
  Pid p = proc(2, a.get());
  Pid t = all[1];
  ASSERT_TRUE(engine.migrate_thread(t, *b).ok());
  ASSERT_TRUE(engine.set_creds(p, Creds{9, 9, 9, 9, 9}).ok());
  RecordingCheck check;
  {
    MutexLock lock(engine.cgroup_mutex());
    ASSERT_TRUE(engine.migrate_thread_locked(t, *c, std::ref(check)).ok());
  }
  ASSERT_EQ(check.seen.size(), 1u);
  EXPECT_EQ(check.seen[0].tid, t);
  EXPECT_EQ(check.seen[0].tgid, p);
  EXPECT_EQ(check.seen[0].creds, (Creds{9, 9, 9, 9, 9}));
  EXPECT_EQ(check.seen[0].src, b.get());
  EXPECT_EQ(tids(*c), std::vector<Pid>{t});
  EXPECT_EQ(tids(*a), std::vector<Pid>{p});
  expect_ok();
}

TEST_F(MigrationTest, ARefusalChangesNothing) {
  Pid p = proc(3, a.get());
  proc(1, b.get());
  ASSERT_TRUE(engine.migrate_thread(all[1], *b).ok());
  Snapshot before = snapshot();
  auto counts = engine.TEST_object_counts();
  int64_t asked = alpha->nr_can_attach.load(), attached = alpha->nr_attach.load();
  RecordingCheck check;
  check.answer = Status::Error(EACCES, "refused by the test");
  {
    MutexLock lock(engine.cgroup_mutex());
    Status st = engine.migrate_process_locked(p, *c, std::ref(check));
    EXPECT_EQ(st.err(), EACCES);
    EXPECT_EQ(st.message(), "refused by the test");  // returned as is
    EXPECT_EQ(engine.migrate_thread_locked(all[1], *c, std::ref(check)).err(), EACCES);
    EXPECT_EQ(engine.migrate_thread_locked(all[1], *b, std::ref(check)).err(), EACCES);
  }
  EXPECT_EQ(check.seen.size(), 3u);
  EXPECT_TRUE(snapshot() == before);
  auto after = engine.TEST_object_counts();
  EXPECT_EQ(after.css_sets, counts.css_sets);
  EXPECT_EQ(after.csses, counts.csses);
  EXPECT_EQ(after.tasks, counts.tasks);
  EXPECT_EQ(alpha->nr_can_attach.load(), asked);  // no controller was asked
  EXPECT_EQ(alpha->nr_attach.load(), attached);
  expect_ok();
  // Errors the check is not asked about.
  {
    MutexLock lock(engine.cgroup_mutex());
    EXPECT_EQ(engine.migrate_process_locked(4242, *c, std::ref(check)).err(), ESRCH);
    auto gone = engine.mkdir_locked(v1->root(), "gone");
    ASSERT_TRUE(gone.ok());
    ASSERT_TRUE(engine.rmdir_locked(**gone).ok());
    EXPECT_EQ(engine.migrate_process_locked(p, **gone, std::ref(check)).err(), ENODEV);
  }
  EXPECT_EQ(check.seen.size(), 3u);
  EXPECT_TRUE(snapshot() == before);
  // Accepted, the same move goes through.
  check.answer = Status::Ok();
  {
    MutexLock lock(engine.cgroup_mutex());
    EXPECT_TRUE(engine.migrate_process_locked(p, *c, std::ref(check)).ok());
  }
  EXPECT_EQ(tids(*c), (std::vector<Pid>{p, all[1], all[2]}));
  expect_ok();
}

TEST_F(MigrationTest, ACheckMayUseTheLockedEngineMethods) {
  Pid p = proc(1, a.get());
  auto dom = mk(root(), "dom");
  auto thr = mk(*dom, "thr");
  ASSERT_TRUE(engine.migrate_process(p, *dom).ok());
  std::string seen_path, seen_type;
  {
    MutexLock lock(engine.cgroup_mutex());
    ASSERT_TRUE(engine.enable_threaded_locked(*thr).ok());
    Status st = engine.migrate_thread_locked(p, *thr, [&](const MoveTarget& t) {
      engine.cgroup_mutex().AssertHeld();
      seen_path = t.src.path();
      seen_type = engine.cgroup_type_locked(t.src);
      // Threads stay inside their threaded domain.
      if (&engine.threaded_domain_locked(t.src) != &engine.threaded_domain_locked(*thr))
        return Status::Error(EOPNOTSUPP, "leaving the threaded domain");
      return Status::Ok();
    });
    EXPECT_TRUE(st.ok()) << st.message();
  }
  EXPECT_EQ(seen_path, "/dom");
  EXPECT_EQ(seen_type, "domain threaded");
  EXPECT_EQ(tids(*thr), std::vector<Pid>{p});
  expect_ok();
}

// A controller that needs stable address spaces: checks in every hook that
// the transaction holds each mover's mmap_lock.
class StableMmController : public TestController {
 public:
  StableMmController() : TestController("stable") {}
  bool needs_stable_mm() const override { return true; }
  Status can_attach(TaskSet& tset) override {
    check(tset);
    return TestController::can_attach(tset);
  }
  void attach(TaskSet& tset) noexcept override {
    check(tset);
    TestController::attach(tset);
  }
  void check(TaskSet& tset) {
    tset.for_each([&](Task& t, CssSet*, CssSet&) {
      if (lock_debug::held_mode(&t.process().mm()->mmap_lock()) != 1) ++unlocked;
    });
  }
  int unlocked = 0;
};

TEST(MigrationMm, AddressSpacesAreHeldAcrossTheTransaction) {
  if (!kLockDebug) GTEST_SKIP() << "needs lock tracking (debug build)";
  Engine engine;
  auto c = std::make_unique<StableMmController>();
  StableMmController* ctl = c.get();
  ASSERT_TRUE(engine.register_controller(std::move(c)).ok());
  auto h = engine.mount({"stable"}, "");
  auto g = engine.mkdir((*h)->root(), "g");
  Pid p = *engine.spawn({});
  ASSERT_TRUE(engine.clone_thread(p).ok());
  Pid q = *engine.fork(p, {.share_mm = true});  // two processes, one mm
  Pid r = *engine.spawn({});
  std::vector<Pid> all{p, q, r};
  ASSERT_TRUE(engine.migrate_processes(all, **g).ok());
  EXPECT_EQ(ctl->unlocked, 0);
  EXPECT_EQ(ctl->nr_attach.load(), 1);
  // Released afterwards: a writer can take them.
  auto mm = engine.mm_of(p);
  mm.value()->mmap_lock().Lock();
  mm.value()->mmap_lock().Unlock();
  ctl->veto_attach_locked = 1;
  EXPECT_EQ(engine.migrate_processes(all, (*h)->root()).err(), EACCES);
  mm.value()->mmap_lock().Lock();  // released on the veto path too
  mm.value()->mmap_lock().Unlock();
  EXPECT_TRUE(engine.check_invariants().ok());
}

}  // namespace
}  // namespace cgcore::testing
