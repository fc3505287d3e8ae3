// The pids controller: pids.max syntax and errnos (as observed on the host's
// 6.18 kernel), hierarchical counting through real forks, exits, exec and
// every migration mode, forced migration charges, refused forks and their
// events, vetoes that change nothing, cgroup v2, and forks racing forks.
#include "controllers/pids.h"

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

class PidsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto p = std::make_unique<PidsController>();
    pids = p.get();
    ASSERT_TRUE(engine.register_controller(std::move(p)).ok());
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
  // Binds pids (and the vetoer, after it) to a v1 hierarchy.
  Cgroup& mount_v1() {
    auto h = engine.mount({"pids", "vetoer"}, "");
    EXPECT_TRUE(h.ok()) << h.status().message();
    return (*h)->root();
  }
  Cgroup& v2root() { return engine.default_hierarchy().root(); }
  CgroupPtr mk(Cgroup& parent, const char* name) {
    auto r = engine.mkdir(parent, name);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r.value() : CgroupPtr();
  }
  std::string rd(Cgroup& cg, const char* file) {
    auto r = read_file(engine, cg, file);
    return r.ok() ? r.value() : "<" + std::string(errno_name(r.err())) + ">";
  }
  int64_t cur(Cgroup& cg) { return std::stoll(rd(cg, "pids.current")); }
  int64_t peak(Cgroup& cg) { return std::stoll(rd(cg, "pids.peak")); }
  Status wr(Cgroup& cg, const char* file, std::string_view text) {
    return write_file(engine, cg, file, text);
  }
  void set_max(Cgroup& cg, int64_t max) {
    ASSERT_TRUE(wr(cg, "pids.max", std::to_string(max)).ok());
  }
  // A new process of `threads` threads, moved to `where`.
  Pid proc(Cgroup& where, int threads = 1) {
    auto r = engine.spawn({});
    EXPECT_TRUE(r.ok());
    Pid p = r.value();
    for (int i = 1; i < threads; ++i) EXPECT_TRUE(engine.clone_thread(p).ok());
    Status st = engine.migrate_process(p, where);
    EXPECT_TRUE(st.ok()) << st.message();
    return p;
  }
  PidsCss& css(Cgroup& cg) {
    MutexLock lock(engine.cgroup_mutex());
    return static_cast<PidsCss&>(*cg.css(pids->id()));
  }
  // Every pids file of every given cgroup.
  std::map<std::string, std::string> files_of(std::initializer_list<Cgroup*> cgs) {
    std::map<std::string, std::string> m;
    for (Cgroup* cg : cgs) {
      std::string path;
      {
        MutexLock lock(engine.cgroup_mutex());
        path = cg->path();
      }
      for (const char* f : {"pids.max", "pids.current", "pids.peak", "pids.events"})
        m[path + ":" + f] = rd(*cg, f);
    }
    return m;
  }
  void expect_ok() {
    Status st = engine.check_invariants();
    EXPECT_TRUE(st.ok()) << st.message();
  }

  Engine engine;
  PidsController* pids = nullptr;
  TestController* vetoer = nullptr;
};

// ---------------------------------------------------------------- files

TEST_F(PidsTest, FilesAreNotOnTheRootAndStartEmpty) {
  Cgroup& root = mount_v1();
  for (const char* f : {"pids.max", "pids.current", "pids.peak", "pids.events"})
    EXPECT_EQ(read_file(engine, root, f).err(), ENOENT) << f;
  auto a = mk(root, "a");
  EXPECT_EQ(rd(*a, "pids.max"), "max\n");
  EXPECT_EQ(rd(*a, "pids.current"), "0\n");
  EXPECT_EQ(rd(*a, "pids.peak"), "0\n");
  EXPECT_EQ(rd(*a, "pids.events"), "max 0\n");
  // v1 has no pids.events.local (host: absent).
  EXPECT_EQ(read_file(engine, *a, "pids.events.local").err(), ENOENT);
  // Read-only files refuse writes (host: EINVAL).
  for (const char* f : {"pids.current", "pids.peak", "pids.events"})
    EXPECT_EQ(wr(*a, f, "1").err(), EINVAL) << f;
}

struct MaxCase {
  std::string_view text;
  int err;               // 0: accepted
  const char* expected;  // what pids.max reads after (before: "3\n")
};

// Each observed on the host (6.18, /sys/fs/cgroup/pids) with one write(2).
const MaxCase kMaxCases[] = {
    {"max", 0, "max\n"},
    {"0", 0, "0\n"},
    {" 5\n", 0, "5\n"},
    {"\t9\n\n", 0, "9\n"},
    {"  8  ", 0, "8\n"},
    {"-1", EINVAL, "3\n"},
    {"-0", 0, "0\n"},
    {"abc", EINVAL, "3\n"},
    {"5abc", EINVAL, "3\n"},
    {"5 6", EINVAL, "3\n"},
    {"5\n6", EINVAL, "3\n"},
    {"4194304", 0, "4194304\n"},
    {"4194305", EINVAL, "3\n"},
    {"99999999999999999999999", ERANGE, "3\n"},
    {"99999999999999999999999abc", ERANGE, "3\n"},
    {"\n", EINVAL, "3\n"},
    {" ", EINVAL, "3\n"},
    {"MAX", EINVAL, "3\n"},
    {"max\n", 0, "max\n"},
    {" max ", 0, "max\n"},
    {"maxx", EINVAL, "3\n"},
    {"+5", 0, "5\n"},
    {"+", EINVAL, "3\n"},
    {"-", EINVAL, "3\n"},
    {"-+5", EINVAL, "3\n"},
    {"+-5", EINVAL, "3\n"},
    {"++5", EINVAL, "3\n"},
    {"0x10", 0, "16\n"},
    {"0X1f", 0, "31\n"},
    {"0xA", 0, "10\n"},
    {"0x", EINVAL, "3\n"},
    {"0x1g", EINVAL, "3\n"},
    {"0x-5", EINVAL, "3\n"},
    {"00x5", EINVAL, "3\n"},
    {"-0x5", EINVAL, "3\n"},
    {"0x400000", 0, "4194304\n"},
    {"0x400001", EINVAL, "3\n"},
    {"0xffffffffffffffffff", ERANGE, "3\n"},
    {"010", 0, "8\n"},
    {"0777", 0, "511\n"},
    {"08", EINVAL, "3\n"},
    {"00000000000000000000000000005", 0, "5\n"},
    {" 0x00000000000000000000000000005", 0, "5\n"},
    {"1_0", EINVAL, "3\n"},
    {"0 ", 0, "0\n"},
    {"9223372036854775807", EINVAL, "3\n"},
    {"9223372036854775808", ERANGE, "3\n"},
    {"-9223372036854775808", EINVAL, "3\n"},
    {"-99999999999999999999", ERANGE, "3\n"},
    {"18446744073709551615", ERANGE, "3\n"},
    {"2147483648", EINVAL, "3\n"},
    {"5\n\n", 0, "5\n"},
    {"5\r", 0, "5\n"},
    {"5\v\f", 0, "5\n"},
    {"\n5", 0, "5\n"},
    {"\xa0" "5\xa0", 0, "5\n"},  // the kernel's isspace(0xA0)
    {"\x1c" "5", EINVAL, "3\n"},
    {std::string_view("5\0", 2), 0, "5\n"},  // cut at the NUL
    {std::string_view("max\0junk", 8), 0, "max\n"},
    {std::string_view("\0", 1), EINVAL, "3\n"},
    {std::string_view("\0" "5", 2), EINVAL, "3\n"},
    {"", 0, "3\n"},  // a zero-length write: accepted, nothing changes
};

TEST_F(PidsTest, MaxSyntaxAndErrnosMatchTheHost) {
  auto a = mk(mount_v1(), "a");
  for (const MaxCase& c : kMaxCases) {
    ASSERT_TRUE(wr(*a, "pids.max", "3").ok());
    Status st = wr(*a, "pids.max", c.text);
    EXPECT_EQ(st.err(), c.err) << "'" << c.text << "': " << st.message();
    if (!st.ok()) EXPECT_FALSE(st.message().empty());
    EXPECT_EQ(rd(*a, "pids.max"), c.expected) << "'" << c.text << "'";
  }
}

TEST_F(PidsTest, ParserFunctionsAgreeWithTheFile) {
  EXPECT_EQ(parse_task_limit("max", "x").value(), kTaskLimitMax);
  EXPECT_EQ(parse_task_limit("4194304", "x").value(), kTaskLimitMax - 1);
  EXPECT_EQ(format_task_limit(kTaskLimitMax), "max\n");
  EXPECT_EQ(format_task_limit(kTaskLimitMax - 1), "4194304\n");
  EXPECT_EQ(format_task_limit(0), "0\n");
  Status st = parse_task_limit("abc", "pids.max").status();
  EXPECT_EQ(st.err(), EINVAL);
  EXPECT_NE(st.message().find("pids.max"), std::string::npos) << st.message();
}

// ---------------------------------------------------------------- fork/exit

TEST_F(PidsTest, ForksThreadsAndExitsCountHierarchically) {
  Cgroup& root = mount_v1();
  auto a = mk(root, "a");
  auto b = mk(*a, "b");
  auto c = mk(root, "c");
  Pid p = proc(*b);
  EXPECT_EQ(cur(*b), 1);
  EXPECT_EQ(cur(*a), 1);
  EXPECT_EQ(cur(*c), 0);
  Pid child = engine.fork(p).value();
  Pid thread = engine.clone_thread(p).value();
  EXPECT_EQ(cur(*b), 3);
  EXPECT_EQ(cur(*a), 3);
  expect_ok();
  ASSERT_TRUE(engine.exit_thread(thread).ok());
  EXPECT_EQ(cur(*b), 2);
  ASSERT_TRUE(engine.exit_process(child).ok());
  EXPECT_EQ(cur(*a), 1);
  EXPECT_EQ(peak(*a), 3);
  EXPECT_EQ(peak(*b), 3);
  // A thread that is marked exiting is still there (and charged) until it
  // exits; exit uncharges once (exit and release run back to back).
  Pid t2 = engine.clone_thread(p).value();
  ASSERT_TRUE(engine.mark_exiting(t2).ok());
  EXPECT_EQ(cur(*b), 2);
  expect_ok();
  ASSERT_TRUE(engine.exit_thread(t2).ok());
  EXPECT_EQ(cur(*b), 1);
  ASSERT_TRUE(engine.exit_process(p).ok());
  EXPECT_EQ(cur(*a), 0);
  EXPECT_EQ(cur(*b), 0);
  EXPECT_TRUE(engine.rmdir(*b).ok());
}

TEST_F(PidsTest, ExecLeavesOneThreadCharged) {
  auto a = mk(mount_v1(), "a");
  Pid p = proc(*a, 4);
  EXPECT_EQ(cur(*a), 4);
  Pid non_leader = engine.threads_of(p).value().back();
  ASSERT_TRUE(engine.exec(non_leader).ok());
  EXPECT_EQ(cur(*a), 1);
  EXPECT_EQ(engine.cgroup_tids(*a), std::vector<Pid>{p});
}

TEST_F(PidsTest, ForkIsRefusedAtTheLimitAndNothingIsCharged) {
  auto a = mk(mount_v1(), "a");
  Pid p = proc(*a);
  set_max(*a, 2);
  ASSERT_TRUE(engine.fork(p).ok());
  size_t tasks = engine.nr_tasks();
  EXPECT_EQ(engine.fork(p).err(), EAGAIN);
  EXPECT_EQ(engine.clone_thread(p).err(), EAGAIN);
  EXPECT_EQ(engine.nr_tasks(), tasks);
  EXPECT_EQ(cur(*a), 2);
  EXPECT_EQ(peak(*a), 2);
  EXPECT_EQ(rd(*a, "pids.events"), "max 2\n");
  EXPECT_EQ(engine.cgroup_tids(*a).size(), 2u);
  // "max" lifts it.
  ASSERT_TRUE(wr(*a, "pids.max", "max").ok());
  EXPECT_TRUE(engine.fork(p).ok());
  EXPECT_EQ(cur(*a), 3);
}

TEST_F(PidsTest, MaxZeroRefusesEveryFork) {
  auto a = mk(mount_v1(), "a");
  Pid p = proc(*a);
  set_max(*a, 0);
  EXPECT_EQ(engine.fork(p).err(), EAGAIN);
  EXPECT_EQ(cur(*a), 1);
}

// Host: p max=1 holding a/ with one task; a fork in a fails with EAGAIN;
// a's pids.events "max 1", p's "max 0"; a's peak 2 (the charge that p
// refused), p's peak 1.
TEST_F(PidsTest, AncestorLimitRefusesAndV1CountsTheEventWhereTheForkHappened) {
  auto p = mk(mount_v1(), "p");
  auto a = mk(*p, "a");
  Pid t = proc(*a);
  set_max(*p, 1);
  EXPECT_EQ(engine.fork(t).err(), EAGAIN);
  EXPECT_EQ(rd(*a, "pids.events"), "max 1\n");
  EXPECT_EQ(rd(*p, "pids.events"), "max 0\n");
  EXPECT_EQ(peak(*a), 2);
  EXPECT_EQ(peak(*p), 1);
  EXPECT_EQ(cur(*a), 1);
  EXPECT_EQ(cur(*p), 1);
  // The v2-only counters are kept but not shown on v1.
  EXPECT_EQ(css(*p).events_max_local(), 1);
  EXPECT_EQ(css(*a).events_max(), 0);
}

TEST_F(PidsTest, SpawnIntoTheRootIsNeverRefused) {
  mount_v1();
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(engine.spawn({}).ok());
  expect_ok();  // the root css counts nothing
}

// ---------------------------------------------------------------- migration

// Host: moving a process into a cgroup with pids.max 0 succeeds; current 1,
// peak 1, events "max 0"; lowering max below current is accepted.
TEST_F(PidsTest, MigrationIsNeverRefusedAndMayExceedTheLimit) {
  Cgroup& root = mount_v1();
  auto c = mk(root, "c");
  set_max(*c, 0);
  Pid p = proc(root, 3);
  ASSERT_TRUE(engine.migrate_process(p, *c).ok());
  EXPECT_EQ(cur(*c), 3);
  EXPECT_EQ(rd(*c, "pids.max"), "0\n");
  EXPECT_EQ(peak(*c), 3);
  EXPECT_EQ(rd(*c, "pids.events"), "max 0\n");
  EXPECT_EQ(engine.fork(p).err(), EAGAIN);
  EXPECT_EQ(rd(*c, "pids.events"), "max 1\n");
  // Back out and in again, by thread.
  ASSERT_TRUE(engine.migrate_thread(p, root).ok());
  EXPECT_EQ(cur(*c), 2);
  ASSERT_TRUE(engine.migrate_thread(p, *c).ok());
  EXPECT_EQ(cur(*c), 3);
  expect_ok();
}

TEST_F(PidsTest, LimitMayBeLoweredBelowTheCount) {
  auto a = mk(mount_v1(), "a");
  Pid p = proc(*a, 3);
  ASSERT_TRUE(wr(*a, "pids.max", "1").ok());
  EXPECT_EQ(rd(*a, "pids.max"), "1\n");
  EXPECT_EQ(cur(*a), 3);
  EXPECT_EQ(engine.fork(p).err(), EAGAIN);
  ASSERT_TRUE(engine.exit_thread(engine.threads_of(p).value().back()).ok());
  ASSERT_TRUE(engine.exit_thread(engine.threads_of(p).value().back()).ok());
  EXPECT_EQ(engine.clone_thread(p).err(), EAGAIN);  // 1 of 1
  ASSERT_TRUE(wr(*a, "pids.max", "2").ok());
  EXPECT_TRUE(engine.clone_thread(p).ok());
}

// Host: p/x -> p/y keeps p's count; p's peak goes one above (the kernel
// charges the destination before it uncharges the source, per task).
TEST_F(PidsTest, MoveWithinASubtreeKeepsTheAncestorsCount) {
  auto p = mk(mount_v1(), "p");
  auto x = mk(*p, "x");
  auto y = mk(*p, "y");
  Pid t = proc(*x, 3);
  set_max(*p, 3);
  EXPECT_EQ(peak(*p), 3);
  ASSERT_TRUE(engine.migrate_process(t, *y).ok());
  EXPECT_EQ(cur(*p), 3);
  EXPECT_EQ(peak(*p), 4);  // once +1, not +3
  EXPECT_EQ(cur(*x), 0);
  EXPECT_EQ(peak(*x), 3);
  EXPECT_EQ(cur(*y), 3);
  EXPECT_EQ(peak(*y), 3);
  // To the ancestor itself: nothing above it changes.
  ASSERT_TRUE(engine.migrate_process(t, *p).ok());
  EXPECT_EQ(cur(*p), 3);
  EXPECT_EQ(cur(*y), 0);
  expect_ok();
}

TEST_F(PidsTest, ThreadsFromSeveralCgroupsMoveAsOneProcess) {
  Cgroup& root = mount_v1();
  auto x = mk(root, "x"), y = mk(root, "y"), z = mk(root, "z"), w = mk(root, "w");
  Pid p = proc(*x, 4);
  std::vector<Pid> th = engine.threads_of(p).value();
  ASSERT_TRUE(engine.migrate_thread(th[1], *y).ok());
  ASSERT_TRUE(engine.migrate_thread(th[2], *z).ok());
  ASSERT_TRUE(engine.migrate_thread(th[3], *z).ok());
  EXPECT_EQ(cur(*x), 1);
  EXPECT_EQ(cur(*y), 1);
  EXPECT_EQ(cur(*z), 2);
  set_max(*w, 1);
  ASSERT_TRUE(engine.migrate_process(p, *w).ok());  // forced past w's limit
  EXPECT_EQ(cur(*x) + cur(*y) + cur(*z), 0);
  EXPECT_EQ(cur(*w), 4);
  expect_ok();
}

TEST_F(PidsTest, MigrateProcessesAndTransferMoveEveryCharge) {
  Cgroup& root = mount_v1();
  auto a = mk(root, "a"), b = mk(root, "b"), b1 = mk(*b, "b1");
  Pid p = proc(root, 2), q = proc(*a, 3);
  std::vector<Pid> both{p, q};
  ASSERT_TRUE(engine.migrate_processes(both, *b1).ok());
  EXPECT_EQ(cur(*b1), 5);
  EXPECT_EQ(cur(*b), 5);
  EXPECT_EQ(cur(*a), 0);
  ASSERT_TRUE(engine.transfer(*b1, *a).ok());
  EXPECT_EQ(cur(*a), 5);
  EXPECT_EQ(cur(*b), 0);
  EXPECT_EQ(cur(*b1), 0);
  expect_ok();
}

TEST_F(PidsTest, VetoesLeaveEveryCounterAndPeakUnchanged) {
  Cgroup& root = mount_v1();
  auto p = mk(root, "p");
  auto x = mk(*p, "x"), y = mk(*p, "y"), z = mk(root, "z");
  Pid t = proc(*x, 2), u = proc(*z, 1);
  auto before = files_of({p.get(), x.get(), y.get(), z.get()});
  std::vector<Pid> both{t, u};
  vetoer->veto_attach = 1;
  EXPECT_EQ(engine.migrate_processes(both, *y).err(), EACCES);
  EXPECT_EQ(files_of({p.get(), x.get(), y.get(), z.get()}), before);
  vetoer->veto_attach_locked = 1;
  EXPECT_EQ(engine.transfer(*x, *y).err(), EACCES);
  EXPECT_EQ(files_of({p.get(), x.get(), y.get(), z.get()}), before);
  EXPECT_EQ(engine.cgroup_tids(*x).size(), 2u);
  expect_ok();
  // And the next migration still moves the right charges.
  ASSERT_TRUE(engine.migrate_processes(both, *y).ok());
  EXPECT_EQ(cur(*y), 3);
  EXPECT_EQ(cur(*p), 3);
  EXPECT_EQ(cur(*z), 0);
}

TEST_F(PidsTest, RemovedCgroupsLeaveNoCharges) {
  Cgroup& root = mount_v1();
  auto a = mk(root, "a");
  auto b = mk(*a, "b");
  Pid p = proc(*b, 2);
  ASSERT_TRUE(engine.migrate_process(p, root).ok());
  ASSERT_TRUE(engine.rmdir(*b).ok());
  EXPECT_EQ(cur(*a), 0);
  b = mk(*a, "b");
  EXPECT_EQ(rd(*b, "pids.current"), "0\n");
  EXPECT_EQ(rd(*b, "pids.peak"), "0\n");
}

TEST_F(PidsTest, InvariantCheckerNoticesAWrongCount) {
  auto a = mk(mount_v1(), "a");
  proc(*a);
  css(*a).TEST_corrupt_count(1);
  Status st = engine.check_invariants();
  EXPECT_EQ(st.err(), EIO);
  EXPECT_NE(st.message().find("/a counts 2 tasks, its subtree holds 1"), std::string::npos)
      << st.message();
  css(*a).TEST_corrupt_count(-1);
  expect_ok();
}

// ---------------------------------------------------------------- cgroup v2

ControllerSet only(ControllerId id) {
  ControllerSet s;
  s.set(id);
  return s;
}

TEST_F(PidsTest, V2FilesFollowSubtreeControlAndTasksCountWhereEnabled) {
  Cgroup& root = v2root();
  auto a = mk(root, "a");
  auto a1 = mk(*a, "a1");
  Pid p = proc(*a1, 2);
  EXPECT_EQ(read_file(engine, *a, "pids.current").err(), ENOENT);  // not enabled yet
  ASSERT_TRUE(engine.set_subtree_control(root, only(pids->id()), {}).ok());
  // a has its css; a1 does not, so a collects a1's tasks.
  EXPECT_EQ(rd(*a, "pids.current"), "2\n");
  EXPECT_EQ(rd(*a, "pids.events"), "max 0\n");
  EXPECT_EQ(rd(*a, "pids.events.local"), "max 0\n");
  EXPECT_EQ(read_file(engine, *a1, "pids.current").err(), ENOENT);
  EXPECT_EQ(read_file(engine, root, "pids.current").err(), ENOENT);
  expect_ok();
  // Enabling below a moves the charge to a1's new css; a keeps counting it.
  ASSERT_TRUE(engine.migrate_process(p, root).ok());  // a must hold no tasks
  ASSERT_TRUE(engine.set_subtree_control(*a, only(pids->id()), {}).ok());
  ASSERT_TRUE(engine.migrate_process(p, *a1).ok());
  EXPECT_EQ(rd(*a1, "pids.current"), "2\n");
  EXPECT_EQ(rd(*a, "pids.current"), "2\n");
  expect_ok();
  // Disabling gives the tasks back to a's css.
  ASSERT_TRUE(engine.set_subtree_control(*a, {}, only(pids->id())).ok());
  EXPECT_EQ(read_file(engine, *a1, "pids.current").err(), ENOENT);
  EXPECT_EQ(rd(*a, "pids.current"), "2\n");
  expect_ok();
  ASSERT_TRUE(engine.set_subtree_control(root, {}, only(pids->id())).ok());
  EXPECT_EQ(read_file(engine, *a, "pids.current").err(), ENOENT);
  expect_ok();
}

TEST_F(PidsTest, V2ReHomingMovesChargesFromEverySubtree) {
  Cgroup& root = v2root();
  auto a = mk(root, "a"), b = mk(root, "b");
  auto a1 = mk(*a, "a1"), a2 = mk(*a, "a2");
  proc(*a1, 2);
  proc(*a2, 3);
  proc(*b, 1);
  proc(root, 1);
  ASSERT_TRUE(engine.set_subtree_control(root, only(pids->id()), {}).ok());
  EXPECT_EQ(rd(*a, "pids.current"), "5\n");
  EXPECT_EQ(rd(*b, "pids.current"), "1\n");
  expect_ok();
}

// v2 events (kernel documentation, not checkable on this host, whose v2
// hierarchy has no controllers): pids.events counts refusals by this
// cgroup's or a descendant's limit; pids.events.local only its own.
TEST_F(PidsTest, V2EventsAreHierarchicalAndLocal) {
  Cgroup& root = v2root();
  auto a = mk(root, "a");
  auto b = mk(*a, "b");
  auto c = mk(*b, "c");
  ASSERT_TRUE(engine.set_subtree_control(root, only(pids->id()), {}).ok());
  ASSERT_TRUE(engine.set_subtree_control(*a, only(pids->id()), {}).ok());
  ASSERT_TRUE(engine.set_subtree_control(*b, only(pids->id()), {}).ok());
  Pid t = proc(*c);
  set_max(*b, 1);
  EXPECT_EQ(engine.fork(t).err(), EAGAIN);
  EXPECT_EQ(engine.fork(t).err(), EAGAIN);
  EXPECT_EQ(rd(*c, "pids.events"), "max 0\n");
  EXPECT_EQ(rd(*c, "pids.events.local"), "max 0\n");
  EXPECT_EQ(rd(*b, "pids.events"), "max 2\n");
  EXPECT_EQ(rd(*b, "pids.events.local"), "max 2\n");
  EXPECT_EQ(rd(*a, "pids.events"), "max 2\n");
  EXPECT_EQ(rd(*a, "pids.events.local"), "max 0\n");
  set_max(*c, 0);
  EXPECT_EQ(engine.fork(t).err(), EAGAIN);
  EXPECT_EQ(rd(*c, "pids.events"), "max 1\n");
  EXPECT_EQ(rd(*c, "pids.events.local"), "max 1\n");
  EXPECT_EQ(rd(*b, "pids.events"), "max 3\n");
  EXPECT_EQ(rd(*b, "pids.events.local"), "max 2\n");
  EXPECT_EQ(rd(*a, "pids.events"), "max 3\n");
  expect_ok();
}

// pids is a threaded controller (as in the kernel): it may be enabled in a
// threaded subtree, where single threads of one process sit in different
// cgroups and are counted (and refused) there.
TEST_F(PidsTest, V2ThreadedSubtreeCountsSingleThreads) {
  EXPECT_TRUE(pids->threaded());
  Cgroup& root = v2root();
  auto a = mk(root, "a");
  auto t1 = mk(*a, "t1"), t2 = mk(*a, "t2");
  ASSERT_TRUE(engine.set_subtree_control(root, only(pids->id()), {}).ok());
  {
    MutexLock lock(engine.cgroup_mutex());
    ASSERT_TRUE(engine.enable_threaded_locked(*t1).ok());
    ASSERT_TRUE(engine.enable_threaded_locked(*t2).ok());
  }
  ASSERT_TRUE(engine.set_subtree_control(*a, only(pids->id()), {}).ok());
  Pid p = proc(*a, 3);
  std::vector<Pid> th = engine.threads_of(p).value();
  ASSERT_TRUE(engine.migrate_thread(th[1], *t1).ok());
  ASSERT_TRUE(engine.migrate_thread(th[2], *t2).ok());
  EXPECT_EQ(rd(*t1, "pids.current"), "1\n");
  EXPECT_EQ(rd(*t2, "pids.current"), "1\n");
  EXPECT_EQ(rd(*a, "pids.current"), "3\n");
  set_max(*t1, 1);
  EXPECT_EQ(engine.clone_thread(th[1]).err(), EAGAIN);
  EXPECT_EQ(rd(*t1, "pids.events.local"), "max 1\n");
  EXPECT_EQ(rd(*a, "pids.events"), "max 1\n");
  ASSERT_TRUE(engine.clone_thread(th[2]).ok());
  EXPECT_EQ(rd(*t2, "pids.current"), "2\n");
  // Forced into t1 past its limit, thread by thread.
  ASSERT_TRUE(engine.migrate_thread(th[2], *t1).ok());
  EXPECT_EQ(rd(*t1, "pids.current"), "2\n");
  EXPECT_EQ(rd(*a, "pids.current"), "4\n");
  expect_ok();
}

// ---------------------------------------------------------------- concurrency

// Forkers in two children of a limited parent fork and exit children while
// a migrator moves their parents between the children (forced charges that
// keep the parent's count). `occupied` is raised after a fork succeeded and
// lowered before the child exits, so it never exceeds the real charge: it
// must never pass the limit.
TEST_F(PidsTest, ConcurrentForksAndExitsNeverPassTheLimit) {
  Cgroup& root = mount_v1();
  auto p = mk(root, "p");
  auto x = mk(*p, "x"), y = mk(*p, "y");
  // One worker holding its 3 children already passes the limit, so forks
  // are refused even if the threads never overlap.
  constexpr int kWorkers = 4, kLimit = kWorkers + 2, kIters = 300, kHold = 3;
  std::vector<Pid> parents;
  for (int i = 0; i < kWorkers; ++i) parents.push_back(proc(i % 2 ? *y : *x));
  set_max(*p, kLimit);
  std::atomic<int> occupied{kWorkers}, worst{0}, refused{0}, forked{0};
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
          int now = ++occupied;
          int old = worst.load();
          while (now > old && !worst.compare_exchange_weak(old, now)) {
          }
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
      EXPECT_TRUE(engine.migrate_process(parents[i % kWorkers], i % 3 ? *x : *y).ok());
    }
  });
  go = true;
  for (auto& t : threads) t.join();
  stop = true;
  migrator.join();
  EXPECT_LE(worst.load(), kLimit);
  EXPECT_GT(forked.load(), 0);
  EXPECT_GT(refused.load(), 0);
  EXPECT_EQ(cur(*p), kWorkers);
  EXPECT_EQ(cur(*x) + cur(*y), kWorkers);
  // Forks record only charges within the limit in the peak. A move within p
  // records p's count "+1" (the kernel's charge-then-uncharge per task), and
  // that count may include the transient charges of forks being refused at
  // that moment (one per worker) — as in the kernel.
  EXPECT_LE(peak(*p), kLimit + 1 + kWorkers);
  // v1 counts each refusal where the fork happened: in x or y.
  auto events = [&](Cgroup& cg) { return std::stoll(rd(cg, "pids.events").substr(4)); };
  EXPECT_EQ(events(*x) + events(*y), refused.load());
  EXPECT_EQ(events(*p), 0);
  expect_ok();
}

}  // namespace
}  // namespace cgcore::testing
