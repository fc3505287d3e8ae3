// The mirror's rules on a fabricated /proc tree: pid reuse, zombie leaders,
// a missed exec, parents found for pids written to cgroup.procs. Nothing
// here touches a real process (a tree other than /proc turns effects and
// the connector off). Real pid reuse needs the host's pid space to wrap
// around, which a test cannot arrange; the fabricated tree shows the same
// /proc states the tracker would read.
#include "host/procfs.h"
#include "tests/host/host_test_util.h"

namespace cgcore::host::testing {
namespace {

TEST(ProcParse, StatFieldsAfterTheLastParenthesis) {
  auto st = parse_stat("42 (a) b) (c) S 7 42 42 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 3 0 123456 9 9\n");
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->state, 'S');
  EXPECT_EQ(st->ppid, 7);
  EXPECT_EQ(st->flags, 4194560u);
  EXPECT_EQ(st->start, 123456u);
  EXPECT_FALSE(st->dead());
  EXPECT_FALSE(parse_stat("42 (x) S 1 2").has_value());
  EXPECT_TRUE(parse_stat("1 (z) Z 1 0 0 0 0 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0")->dead());
  EXPECT_TRUE(parse_stat("2 (k) S 0 0 0 0 0 2129984 0 0 0 0 0 0 0 0 20 0 1 0 5 0")->kthread());
}

TEST(ProcParse, StatusIdsAndMemory) {
  auto st = parse_status(
      "Name:\tsleep\nTgid:\t12\nPid:\t13\nPPid:\t1\nUid:\t1\t2\t3\t4\nGid:\t5\t6\t7\t8\n"
      "VmSize:\t    8000 kB\nRssAnon:\t     100 kB\nVmSwap:\t      12 kB\n");
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->tgid, 12);
  EXPECT_EQ(st->ppid, 1);
  EXPECT_EQ(st->creds.uid, 1u);
  EXPECT_EQ(st->creds.euid, 2u);
  EXPECT_EQ(st->creds.suid, 3u);
  EXPECT_EQ(st->creds.gid, 5u);
  EXPECT_EQ(st->creds.egid, 6u);
  EXPECT_EQ(st->vm_size, 8000 * 1024);
  EXPECT_EQ(st->rss_anon, 100 * 1024);
  EXPECT_EQ(st->vm_swap, 12 * 1024);
  // A kernel thread's status has no memory lines.
  auto k = parse_status("Name:\tk\nTgid:\t2\nPid:\t2\nPPid:\t0\nUid:\t0\t0\t0\t0\n");
  ASSERT_TRUE(k.has_value());
  EXPECT_EQ(k->vm_swap, -1);
  EXPECT_EQ(k->rss_anon, -1);
  EXPECT_FALSE(parse_status("Name:\tx\n").has_value());
}

TEST(ProcParse, HostProcOfThisProcess) {
  if (::access("/proc/self/stat", R_OK) != 0) GTEST_SKIP() << "no /proc on this machine";
  ProcFs proc;
  auto p = proc.process(::getpid());
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->tgid, ::getpid());
  EXPECT_EQ(p->ppid, ::getppid());
  EXPECT_EQ(p->creds.euid, ::geteuid());
  ASSERT_FALSE(p->threads.empty());
  EXPECT_EQ(p->threads.front().first, ::getpid());
  // The start time lies in the past on the event clock.
  EXPECT_LE(start_to_event_clock_ns(p->start), event_clock_ns());
}

class Fabricated : public HostFixture {
 protected:
  void SetUp() override {
    HostFixture::SetUp();
    ASSERT_FALSE(fake.root().empty());
    fake.put(1, 0, {{1, 1}});
    HostOptions o;
    o.proc_root = fake.root();
    o.rescan_ms = 3600 * 1000;  // no background rescan: the test calls resync()
    o.memory_sync_ms = 0;
    make_tracker(std::move(o));
  }
  FakeProc fake;
};

TEST_F(Fabricated, InitialScanSpawnsEveryProcessInTheRoots) {
  fake.put(100, 1, {{100, 50}, {101, 51}, {102, 52}}, 1000);
  fake.put(200, 100, {{200, 60}});
  fake.put(300, 1, {{300, 70, 'Z'}});  // a zombie waiting for its parent: not a task
  ASSERT_TRUE(tracker->start().ok());
  EXPECT_FALSE(tracker->using_connector());
  EXPECT_NE(all_logs().find("rescanning"), std::string::npos) << all_logs();
  EXPECT_EQ(engine_tids(100), (std::vector<Pid>{100, 101, 102}));
  EXPECT_EQ(engine.tgid_of(101).value(), 100);
  EXPECT_EQ(cgroup_of(101), "/");
  EXPECT_EQ(engine.creds(100)->euid, 1000u);
  EXPECT_TRUE(has_process(200));
  EXPECT_FALSE(engine.tgid_of(300).ok());
  EXPECT_EQ(engine.nr_tasks(), 5u);
}

// A recycled pid never inherits a dead process's cgroups: the engine's task
// is ended and the new process is added as a fork of its own parent.
TEST_F(Fabricated, RecycledPidDoesNotKeepTheDeadProcessesCgroups) {
  fake.put(10, 1, {{10, 100}});
  fake.put(11, 1, {{11, 110}});
  ASSERT_TRUE(tracker->start().ok());
  ASSERT_EQ(mkdir("/a"), 0);
  ASSERT_EQ(mkdir("/b"), 0);
  ASSERT_EQ(echo("/a/cgroup.procs", "10"), 0);
  ASSERT_EQ(echo("/b/cgroup.procs", "11"), 0);
  ASSERT_EQ(cgroup_of(11), "/b");
  // 10 lives on; 11 died and its id now names a child of 10.
  fake.put(11, 10, {{11, 500}}, 42);
  tracker->resync();
  EXPECT_EQ(cgroup_of(10), "/a");
  EXPECT_EQ(cgroup_of(11), "/a");  // its parent's, not the dead process's /b
  EXPECT_EQ(engine.creds(11)->uid, 42u);
  EXPECT_EQ(cat("/b/cgroup.procs"), "");
  // Recycled with a parent in the root: back in the root.
  fake.put(11, 1, {{11, 900}});
  tracker->resync();
  EXPECT_EQ(cgroup_of(11), "/");
  // Gone altogether.
  fake.remove(11);
  tracker->resync();
  EXPECT_FALSE(engine.tgid_of(11).ok());
  EXPECT_EQ(cat("/a/cgroup.procs"), "10\n");
}

TEST_F(Fabricated, RecycledThreadIdIsReplaced) {
  fake.put(20, 1, {{20, 100}, {21, 101}});
  ASSERT_TRUE(tracker->start().ok());
  ASSERT_EQ(mkdir("/a"), 0);
  ASSERT_EQ(echo("/a/cgroup.procs", "20"), 0);
  // Thread 21 exited; a new thread of another process got its id.
  fake.put(20, 1, {{20, 100}});
  fake.put(30, 1, {{30, 300}, {21, 301}});
  tracker->resync();
  EXPECT_EQ(engine_tids(20), (std::vector<Pid>{20}));
  EXPECT_EQ(engine.tgid_of(21).value(), 30);
  EXPECT_EQ(cgroup_of(21), "/");
  EXPECT_EQ(cgroup_of(20), "/a");
}

TEST_F(Fabricated, ZombieLeaderThenMissedExec) {
  fake.put(40, 1, {{40, 100}, {41, 101}});
  ASSERT_TRUE(tracker->start().ok());
  ASSERT_EQ(mkdir("/a"), 0);
  ASSERT_EQ(echo("/a/cgroup.procs", "40"), 0);
  // The leader exits; thread 41 runs on: a zombie leader holds the id.
  fake.put(40, 1, {{40, 100, 'Z'}, {41, 101}});
  tracker->resync();
  EXPECT_EQ(engine_tids(40), (std::vector<Pid>{41}));
  EXPECT_FALSE(has_task(40));
  EXPECT_EQ(engine.tgid_of(40).value(), 40);
  EXPECT_EQ(cat("/a/cgroup.procs"), "40\n");
  // 41 execs: it takes over id 40 and the leader's start time (de_thread);
  // its exec event was lost. The process keeps its cgroup.
  fake.put(40, 1, {{40, 100}});
  tracker->resync();
  EXPECT_EQ(engine_tids(40), (std::vector<Pid>{40}));
  EXPECT_FALSE(engine.tgid_of(41).ok());
  EXPECT_EQ(cgroup_of(40), "/a");
}

// A pid written to cgroup.procs that the mirror lacks is looked up at once;
// unknown ancestors are added first, each as a fork of its parent, so a new
// process starts in its parent's cgroups.
TEST_F(Fabricated, WrittenPidIsLookedUpWithItsParents) {
  fake.put(50, 1, {{50, 100}});
  ASSERT_TRUE(tracker->start().ok());
  ASSERT_EQ(mkdir("/a"), 0);
  ASSERT_EQ(mkdir("/b"), 0);
  ASSERT_EQ(echo("/a/cgroup.procs", "50"), 0);
  fake.put(51, 50, {{51, 200}});
  fake.put(52, 51, {{52, 300}, {53, 301}});
  EXPECT_EQ(echo("/b/cgroup.procs", "52"), 0);
  EXPECT_EQ(cgroup_of(51), "/a");  // a fork of 50
  EXPECT_EQ(cgroup_of(52), "/b");
  EXPECT_EQ(engine_tids(52), (std::vector<Pid>{52, 53}));
  // A thread id: its process comes along.
  fake.put(60, 50, {{60, 400}, {61, 401}});
  EXPECT_TRUE(tracker->ensure_pid(61));
  EXPECT_EQ(engine.tgid_of(61).value(), 60);
  EXPECT_EQ(cgroup_of(61), "/a");
  // Nothing there, or only a zombie.
  EXPECT_EQ(echo("/b/cgroup.procs", "77"), ESRCH);
  fake.put(78, 1, {{78, 500, 'Z'}});
  EXPECT_FALSE(tracker->ensure_pid(78));
  // A recycled id of a known process is replaced, not reused.
  fake.put(51, 1, {{51, 999}});
  EXPECT_TRUE(tracker->ensure_pid(51));
  EXPECT_EQ(cgroup_of(51), "/");
}

TEST_F(Fabricated, CredentialsFollowStatus) {
  fake.put(70, 1, {{70, 100}}, 0);
  ASSERT_TRUE(tracker->start().ok());
  EXPECT_EQ(engine.creds(70)->uid, 0u);
  fake.put(70, 1, {{70, 100}}, 1234);  // setuid: same process
  tracker->resync();
  EXPECT_EQ(engine.creds(70)->uid, 1234u);
  EXPECT_EQ(engine.creds(70)->suid, 1234u);
}

TEST_F(Fabricated, EffectsNeverReachTheHost) {
  // Pid 1 of the fabricated tree is not the host's; cgroup.kill must not
  // signal anything.
  ASSERT_TRUE(tracker->start().ok());
  ASSERT_EQ(mkdir("/k"), 0);
  ASSERT_EQ(echo("/k/cgroup.procs", "1"), 0);
  EXPECT_EQ(echo("/k/cgroup.kill", "1"), 0);
  EXPECT_EQ(echo("/k/cgroup.freeze", "1"), 0);
  EXPECT_EQ(tracker->stats().signals, 0);
  EXPECT_NE(all_logs().find("effects are off"), std::string::npos);
  EXPECT_TRUE(has_process(1));
}

}  // namespace
}  // namespace cgcore::host::testing
