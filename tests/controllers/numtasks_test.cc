// The numtasks controller: pids-like counting and fork refusal,
// plus migrations refused when the destination or an ancestor would pass
// its limit — all or nothing across processes, threads from several
// cgroups, transfers and vetoes by other controllers — and no double count
// for moves inside a limited subtree.
#include "controllers/numtasks.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>
#include <vector>

#include "tests/support/files.h"
#include "tests/support/test_controller.h"

namespace cgcore::testing {
namespace {

class NumtasksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto n = std::make_unique<NumtasksController>();
    numtasks = n.get();
    ASSERT_TRUE(engine.register_controller(std::move(n)).ok());
    auto v = std::make_unique<TestController>("vetoer");
    vetoer = v.get();
    ASSERT_TRUE(engine.register_controller(std::move(v)).ok());
  }
  void TearDown() override {
    Status st = engine.check_invariants();
    EXPECT_TRUE(st.ok()) << st.message();
    st = vetoer->check_counts(engine);
    EXPECT_TRUE(st.ok()) << st.message();
  }
  // numtasks first, then the vetoer, in one v1 hierarchy: a vetoer refusing
  // in the locked phase cancels numtasks' destination charges.
  Cgroup& mount_v1() {
    auto h = engine.mount({"numtasks", "vetoer"}, "");
    EXPECT_TRUE(h.ok()) << h.status().message();
    return (*h)->root();
  }
  CgroupPtr mk(Cgroup& parent, const char* name) {
    auto r = engine.mkdir(parent, name);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r.value() : CgroupPtr();
  }
  std::string rd(Cgroup& cg, const char* file) {
    auto r = read_file(engine, cg, file);
    return r.ok() ? r.value() : "<" + std::string(errno_name(r.err())) + ">";
  }
  int64_t cur(Cgroup& cg) { return std::stoll(rd(cg, "numtasks.current")); }
  Status wr(Cgroup& cg, const char* file, std::string_view text) {
    return write_file(engine, cg, file, text);
  }
  void set_max(Cgroup& cg, int64_t max) {
    ASSERT_TRUE(wr(cg, "numtasks.max", std::to_string(max)).ok());
  }
  Pid proc(Cgroup& where, int threads = 1) {
    auto r = engine.spawn({});
    EXPECT_TRUE(r.ok());
    Pid p = r.value();
    for (int i = 1; i < threads; ++i) EXPECT_TRUE(engine.clone_thread(p).ok());
    Status st = engine.migrate_process(p, where);
    EXPECT_TRUE(st.ok()) << st.message();
    return p;
  }
  NumtasksCss& css(Cgroup& cg) {
    MutexLock lock(engine.cgroup_mutex());
    return static_cast<NumtasksCss&>(*cg.css(numtasks->id()));
  }
  // Where every thread of every live process is, and every count.
  struct State {
    std::map<Pid, std::string> where;
    std::map<std::string, std::string> files;
    bool operator==(const State&) const = default;
  };
  State state(Cgroup& root, std::initializer_list<Cgroup*> cgs) {
    State s;
    for (Cgroup* cg : cgs) {
      std::string path;
      {
        MutexLock lock(engine.cgroup_mutex());
        path = cg->path();
      }
      for (Pid t : engine.cgroup_tids(*cg)) s.where[t] = path;
      if (cg->is_root()) continue;
      for (const char* f : {"numtasks.max", "numtasks.current"})
        s.files[path + ":" + f] = rd(*cg, f);
    }
    for (Pid t : engine.cgroup_tids(root)) s.where[t] = "/";
    return s;
  }
  void expect_ok() {
    Status st = engine.check_invariants();
    EXPECT_TRUE(st.ok()) << st.message();
  }

  Engine engine;
  NumtasksController* numtasks = nullptr;
  TestController* vetoer = nullptr;
};

// ---------------------------------------------------------------- files

TEST_F(NumtasksTest, FilesAreNotOnTheRootAndStartEmpty) {
  Cgroup& root = mount_v1();
  EXPECT_EQ(read_file(engine, root, "numtasks.max").err(), ENOENT);
  EXPECT_EQ(read_file(engine, root, "numtasks.current").err(), ENOENT);
  auto a = mk(root, "a");
  EXPECT_EQ(rd(*a, "numtasks.max"), "max\n");
  EXPECT_EQ(rd(*a, "numtasks.current"), "0\n");
  EXPECT_EQ(wr(*a, "numtasks.current", "1").err(), EINVAL);
  EXPECT_EQ(read_file(engine, *a, "numtasks.peak").err(), ENOENT);
}

// The syntax is pids.max's (see pids_test.cc for the full host table).
TEST_F(NumtasksTest, MaxHasThePidsSyntax) {
  auto a = mk(mount_v1(), "a");
  struct Case {
    std::string_view text;
    int err;
    const char* expected;
  } cases[] = {
      {"max", 0, "max\n"},        {" 7\n", 0, "7\n"},        {"0x10", 0, "16\n"},
      {"010", 0, "8\n"},          {"4194304", 0, "4194304\n"}, {"4194305", EINVAL, "3\n"},
      {"-1", EINVAL, "3\n"},      {"abc", EINVAL, "3\n"},    {"5abc", EINVAL, "3\n"},
      {"\n", EINVAL, "3\n"},      {"99999999999999999999", ERANGE, "3\n"},
      {"", 0, "3\n"},             {"0", 0, "0\n"},
  };
  for (const Case& c : cases) {
    ASSERT_TRUE(wr(*a, "numtasks.max", "3").ok());
    Status st = wr(*a, "numtasks.max", c.text);
    EXPECT_EQ(st.err(), c.err) << "'" << c.text << "'";
    if (!st.ok()) EXPECT_NE(st.message().find("numtasks.max"), std::string::npos) << st.message();
    EXPECT_EQ(rd(*a, "numtasks.max"), c.expected) << "'" << c.text << "'";
  }
}

// ---------------------------------------------------------------- fork/exit

TEST_F(NumtasksTest, ForksAndExitsCountHierarchicallyAndForksAreRefusedPastALimit) {
  Cgroup& root = mount_v1();
  auto p = mk(root, "p");
  auto a = mk(*p, "a");
  Pid t = proc(*a);
  set_max(*p, 3);
  Pid c1 = engine.fork(t).value();
  ASSERT_TRUE(engine.clone_thread(t).ok());
  EXPECT_EQ(cur(*a), 3);
  EXPECT_EQ(cur(*p), 3);
  size_t tasks = engine.nr_tasks();
  EXPECT_EQ(engine.fork(t).err(), EAGAIN);  // refused by p, the ancestor
  EXPECT_EQ(engine.clone_thread(c1).err(), EAGAIN);
  EXPECT_EQ(engine.nr_tasks(), tasks);
  EXPECT_EQ(cur(*a), 3);
  EXPECT_EQ(cur(*p), 3);
  ASSERT_TRUE(engine.exit_process(c1).ok());
  EXPECT_EQ(cur(*p), 2);
  EXPECT_TRUE(engine.fork(t).ok());
  // exec: the other threads exit and are uncharged.
  ASSERT_TRUE(engine.exec(t).ok());
  EXPECT_EQ(cur(*a), 2);
  expect_ok();
}

// ---------------------------------------------------------------- migration

TEST_F(NumtasksTest, MigrationPastTheLimitIsRefusedAndNothingMoves) {
  Cgroup& root = mount_v1();
  auto a = mk(root, "a"), b = mk(root, "b");
  Pid p = proc(*a, 3);
  proc(*b, 1);
  set_max(*b, 3);
  State before = state(root, {a.get(), b.get()});
  Status st = engine.migrate_process(p, *b);
  EXPECT_EQ(st.err(), EAGAIN);
  EXPECT_NE(st.message().find("numtasks.max (3) of cgroup 'b'"), std::string::npos)
      << st.message();
  EXPECT_EQ(state(root, {a.get(), b.get()}), before);
  // One thread fits.
  ASSERT_TRUE(engine.migrate_thread(p, *b).ok());
  EXPECT_EQ(cur(*b), 2);
  EXPECT_EQ(cur(*a), 2);
  // The rest of the process (2 more) would make 4: refused, by process.
  EXPECT_EQ(engine.migrate_process(p, *b).err(), EAGAIN);
  EXPECT_EQ(cur(*b), 2);
  EXPECT_EQ(cur(*a), 2);
}

TEST_F(NumtasksTest, MigrationUpToTheLimitSucceeds) {
  Cgroup& root = mount_v1();
  auto a = mk(root, "a"), b = mk(root, "b");
  Pid p = proc(*a, 3);
  set_max(*b, 3);
  ASSERT_TRUE(engine.migrate_process(p, *b).ok());
  EXPECT_EQ(cur(*b), 3);
  EXPECT_EQ(cur(*a), 0);
  Pid q = proc(root);
  EXPECT_EQ(engine.migrate_process(q, *b).err(), EAGAIN);
  set_max(*b, 0);  // lowering below the count is allowed
  EXPECT_EQ(rd(*b, "numtasks.max"), "0\n");
  EXPECT_EQ(engine.migrate_process(q, *b).err(), EAGAIN);
  EXPECT_EQ(engine.fork(p).err(), EAGAIN);
  // Leaving is always allowed.
  ASSERT_TRUE(engine.migrate_process(p, *a).ok());
  EXPECT_EQ(cur(*b), 0);
}

TEST_F(NumtasksTest, AnAncestorsLimitRefusesTheMove) {
  Cgroup& root = mount_v1();
  auto p = mk(root, "p");
  auto x = mk(*p, "x");
  auto y = mk(*p, "y");
  auto z = mk(root, "z");
  proc(*x, 2);
  Pid t = proc(*z, 1);
  set_max(*p, 2);
  State before = state(root, {p.get(), x.get(), y.get(), z.get()});
  EXPECT_EQ(engine.migrate_process(t, *y).err(), EAGAIN);  // p would hold 3
  EXPECT_EQ(state(root, {p.get(), x.get(), y.get(), z.get()}), before);
  expect_ok();
}

// Source and destination under the same limited ancestor at its limit: the
// ancestor's count does not change, so the move succeeds (charges stop below
// the common ancestor; it is never counted twice).
TEST_F(NumtasksTest, MovesWithinALimitedSubtreeAtItsLimitSucceed) {
  Cgroup& root = mount_v1();
  auto g = mk(root, "g");
  auto p = mk(*g, "p");
  auto x = mk(*p, "x"), y = mk(*p, "y");
  auto x1 = mk(*x, "x1");
  Pid t = proc(*x1, 2);
  proc(*y, 1);
  set_max(*p, 3);
  set_max(*g, 3);
  ASSERT_TRUE(engine.migrate_process(t, *y).ok());
  EXPECT_EQ(cur(*p), 3);
  EXPECT_EQ(cur(*g), 3);
  EXPECT_EQ(cur(*y), 3);
  EXPECT_EQ(cur(*x), 0);
  EXPECT_EQ(cur(*x1), 0);
  // Up to the ancestor itself, and back down below it.
  ASSERT_TRUE(engine.migrate_process(t, *p).ok());
  EXPECT_EQ(cur(*p), 3);
  EXPECT_EQ(cur(*y), 1);
  ASSERT_TRUE(engine.migrate_process(t, *x1).ok());
  EXPECT_EQ(cur(*x), 2);
  EXPECT_EQ(cur(*p), 3);
  // A limit below the common ancestor still counts.
  set_max(*y, 2);
  EXPECT_EQ(engine.migrate_process(t, *y).err(), EAGAIN);
  EXPECT_EQ(cur(*x1), 2);
  EXPECT_EQ(cur(*y), 1);
  expect_ok();
}

TEST_F(NumtasksTest, ThreadsFromSeveralSourcesAreChargedAndUnchargedPerSource) {
  Cgroup& root = mount_v1();
  auto x = mk(root, "x"), y = mk(root, "y"), z = mk(root, "z"), w = mk(root, "w");
  Pid p = proc(*x, 5);
  std::vector<Pid> th = engine.threads_of(p).value();
  ASSERT_TRUE(engine.migrate_thread(th[1], *y).ok());
  ASSERT_TRUE(engine.migrate_thread(th[2], *z).ok());
  ASSERT_TRUE(engine.migrate_thread(th[3], *z).ok());
  EXPECT_EQ(cur(*x), 2);
  EXPECT_EQ(cur(*y), 1);
  EXPECT_EQ(cur(*z), 2);
  set_max(*w, 4);
  State before = state(root, {x.get(), y.get(), z.get(), w.get()});
  EXPECT_EQ(engine.migrate_process(p, *w).err(), EAGAIN);  // 5 > 4
  EXPECT_EQ(state(root, {x.get(), y.get(), z.get(), w.get()}), before);
  set_max(*w, 5);
  ASSERT_TRUE(engine.migrate_process(p, *w).ok());
  EXPECT_EQ(cur(*x) + cur(*y) + cur(*z), 0);
  EXPECT_EQ(cur(*w), 5);
  expect_ok();
}

// The showcase: several processes (one of them with threads in two cgroups)
// and a transfer, refused as a whole: every task stays, every count stays.
TEST_F(NumtasksTest, MultiProcessMoveAndTransferAreAllOrNothing) {
  Cgroup& root = mount_v1();
  auto a = mk(root, "a"), b = mk(root, "b"), d = mk(root, "d");
  Pid p = proc(*a, 2), q = proc(*b, 2), r = proc(*a, 1);
  ASSERT_TRUE(engine.migrate_thread(engine.threads_of(q).value()[1], *a).ok());
  proc(*d, 1);
  set_max(*d, 4);  // holds 1; the three processes bring 5, a holds 4
  std::initializer_list<Cgroup*> all{a.get(), b.get(), d.get()};
  State before = state(root, all);
  std::vector<Pid> three{p, q, r};
  EXPECT_EQ(engine.migrate_processes(three, *d).err(), EAGAIN);
  EXPECT_EQ(state(root, all), before);
  EXPECT_EQ(engine.transfer(*a, *d).err(), EAGAIN);
  EXPECT_EQ(state(root, all), before);
  expect_ok();
  std::vector<Pid> two{p, r};
  ASSERT_TRUE(engine.migrate_processes(two, *d).ok());  // 1 + 3 = 4
  EXPECT_EQ(cur(*d), 4);
  EXPECT_EQ(cur(*a), 1);
  EXPECT_EQ(engine.transfer(*a, *d).err(), EAGAIN);  // q's thread: 5
  set_max(*d, 5);
  ASSERT_TRUE(engine.transfer(*a, *d).ok());
  EXPECT_EQ(cur(*d), 5);
  EXPECT_EQ(cur(*a), 0);
  EXPECT_EQ(cur(*b), 1);
}

TEST_F(NumtasksTest, AnotherControllersVetoUndoesTheCharges) {
  Cgroup& root = mount_v1();
  auto a = mk(root, "a"), b = mk(root, "b");
  auto b1 = mk(*b, "b1");
  Pid p = proc(*a, 2);
  set_max(*b, 2);
  std::initializer_list<Cgroup*> all{a.get(), b.get(), b1.get()};
  State before = state(root, all);
  // After numtasks charged (can_attach_locked), the vetoer refuses.
  vetoer->veto_attach_locked = 1;
  EXPECT_EQ(engine.migrate_process(p, *b1).err(), EACCES);
  EXPECT_EQ(state(root, all), before);
  // Before numtasks charged.
  vetoer->veto_attach = 1;
  EXPECT_EQ(engine.migrate_process(p, *b1).err(), EACCES);
  EXPECT_EQ(state(root, all), before);
  // The charge cancelled, the full move fits exactly.
  ASSERT_TRUE(engine.migrate_process(p, *b1).ok());
  EXPECT_EQ(cur(*b), 2);
  EXPECT_EQ(cur(*b1), 2);
  EXPECT_EQ(cur(*a), 0);
}

TEST_F(NumtasksTest, InvariantCheckerNoticesAWrongCount) {
  auto a = mk(mount_v1(), "a");
  auto b = mk(*a, "b");
  proc(*b);
  css(*a).TEST_corrupt_count(-1);
  Status st = engine.check_invariants();
  EXPECT_EQ(st.err(), EIO);
  EXPECT_NE(st.message().find("/a counts 0 tasks, its subtree holds 1"), std::string::npos)
      << st.message();
  css(*a).TEST_corrupt_count(1);
  expect_ok();
}

// ---------------------------------------------------------------- cgroup v2

ControllerSet only(ControllerId id) {
  ControllerSet s;
  s.set(id);
  return s;
}

TEST_F(NumtasksTest, V2CountsWhereEnabledAndRefusesMovesIntoAFullSubtree) {
  Cgroup& root = engine.default_hierarchy().root();
  auto a = mk(root, "a"), b = mk(root, "b");
  auto a1 = mk(*a, "a1"), a2 = mk(*a, "a2");
  Pid p = proc(*a1, 2);
  Pid q = proc(*b, 1);
  ASSERT_TRUE(engine.set_subtree_control(root, only(numtasks->id()), {}).ok());
  EXPECT_EQ(rd(*a, "numtasks.current"), "2\n");
  EXPECT_EQ(read_file(engine, *a1, "numtasks.current").err(), ENOENT);
  EXPECT_EQ(read_file(engine, root, "numtasks.current").err(), ENOENT);
  expect_ok();
  set_max(*a, 2);
  // a1 -> a2: the css (a's) does not change; numtasks is not even asked.
  ASSERT_TRUE(engine.migrate_process(p, *a2).ok());
  EXPECT_EQ(rd(*a, "numtasks.current"), "2\n");
  std::initializer_list<Cgroup*> all{a.get(), b.get(), a1.get(), a2.get()};
  State before = state(root, all);
  EXPECT_EQ(engine.migrate_process(q, *a1).err(), EAGAIN);
  EXPECT_EQ(state(root, all), before);
  expect_ok();
  // Disabling moves the charges back to the root css (which counts none);
  // enabling again re-creates them, never refused (new csses have no limit).
  ASSERT_TRUE(engine.set_subtree_control(root, {}, only(numtasks->id())).ok());
  expect_ok();
  ASSERT_TRUE(engine.set_subtree_control(root, only(numtasks->id()), {}).ok());
  EXPECT_EQ(rd(*a, "numtasks.current"), "2\n");
  EXPECT_EQ(rd(*a, "numtasks.max"), "max\n");
  expect_ok();
}

// numtasks is threaded like pids: in a threaded subtree a single thread's
// move is checked against the destination's limit.
TEST_F(NumtasksTest, V2ThreadedSubtreeRefusesSingleThreadMoves) {
  EXPECT_TRUE(numtasks->threaded());
  Cgroup& root = engine.default_hierarchy().root();
  auto a = mk(root, "a");
  auto t1 = mk(*a, "t1"), t2 = mk(*a, "t2");
  ASSERT_TRUE(engine.set_subtree_control(root, only(numtasks->id()), {}).ok());
  {
    MutexLock lock(engine.cgroup_mutex());
    ASSERT_TRUE(engine.enable_threaded_locked(*t1).ok());
    ASSERT_TRUE(engine.enable_threaded_locked(*t2).ok());
  }
  ASSERT_TRUE(engine.set_subtree_control(*a, only(numtasks->id()), {}).ok());
  Pid p = proc(*a, 3);
  std::vector<Pid> th = engine.threads_of(p).value();
  set_max(*t1, 1);
  ASSERT_TRUE(engine.migrate_thread(th[1], *t1).ok());
  std::initializer_list<Cgroup*> all{a.get(), t1.get(), t2.get()};
  State before = state(root, all);
  EXPECT_EQ(engine.migrate_thread(th[2], *t1).err(), EAGAIN);
  EXPECT_EQ(state(root, all), before);
  ASSERT_TRUE(engine.migrate_thread(th[2], *t2).ok());
  EXPECT_EQ(rd(*t2, "numtasks.current"), "1\n");
  EXPECT_EQ(rd(*a, "numtasks.current"), "3\n");
  // A move between the two threaded siblings at a's limit: a is the common
  // ancestor, its count does not change.
  set_max(*a, 3);
  ASSERT_TRUE(engine.migrate_thread(th[1], *t2).ok());
  EXPECT_EQ(rd(*t1, "numtasks.current"), "0\n");
  EXPECT_EQ(rd(*t2, "numtasks.current"), "2\n");
  expect_ok();
}

// ---------------------------------------------------------------- concurrency

// Forkers fork and exit children under a limited p while a migrator moves
// a process in and out of p (refused when p is full). `occupied` rises
// after a charge succeeded and falls before it is given back, so it never
// exceeds p's real count: it must never pass the limit.
TEST_F(NumtasksTest, ConcurrentForksExitsAndMigrationsNeverPassTheLimit) {
  Cgroup& root = mount_v1();
  auto p = mk(root, "p");
  auto x = mk(*p, "x"), y = mk(*p, "y"), q = mk(root, "q");
  // One worker holding its 4 children already passes the limit, so forks
  // are refused even if the threads never overlap; with the mover's 2
  // threads inside, one fork still fits.
  constexpr int kWorkers = 4, kLimit = kWorkers + 3, kIters = 300, kHold = 4;
  std::vector<Pid> parents;
  for (int i = 0; i < kWorkers; ++i) parents.push_back(proc(i % 2 ? *y : *x));
  Pid mover = proc(*q, 2);
  set_max(*p, kLimit);
  std::atomic<int> occupied{kWorkers}, worst{0}, refused{0}, forked{0}, moves_in{0},
      moves_refused{0};
  auto raise = [&](int n) {
    int now = occupied.fetch_add(n) + n;
    int old = worst.load();
    while (now > old && !worst.compare_exchange_weak(old, now)) {
    }
  };
  std::atomic<bool> stop{false}, go{false};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWorkers; ++w) {
    threads.emplace_back([&, w] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < kIters; ++i) {
        std::vector<Pid> kids;
        for (int k = 0; k < kHold; ++k) {
          auto r = engine.fork(parents[w]);
          if (!r.ok()) {
            EXPECT_EQ(r.err(), EAGAIN);
            ++refused;
            continue;
          }
          ++forked;
          raise(1);
          kids.push_back(r.value());
        }
        for (Pid k : kids) {
          --occupied;
          EXPECT_TRUE(engine.exit_process(k).ok());
        }
      }
    });
  }
  std::thread migrator([&] {
    while (!go.load()) std::this_thread::yield();
    for (int i = 0; !stop.load() || i < 100; ++i) {
      Status st = engine.migrate_process(mover, i % 2 ? *y : *x);
      if (!st.ok()) {
        EXPECT_EQ(st.err(), EAGAIN);
        ++moves_refused;
        continue;
      }
      ++moves_in;
      raise(2);
      occupied -= 2;
      EXPECT_TRUE(engine.migrate_process(mover, *q).ok());
    }
  });
  go = true;
  for (auto& t : threads) t.join();
  stop = true;
  migrator.join();
  EXPECT_LE(worst.load(), kLimit);
  EXPECT_GT(forked.load(), 0);
  EXPECT_GT(refused.load(), 0);
  EXPECT_GT(moves_in.load() + moves_refused.load(), 0);
  EXPECT_EQ(cur(*p), kWorkers);
  EXPECT_EQ(cur(*q), 2);
  expect_ok();
}

}  // namespace
}  // namespace cgcore::testing
