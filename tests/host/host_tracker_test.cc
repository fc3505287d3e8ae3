// The host backend with real processes: every process here is one the test
// started (a /bin/sleep, or this binary re-run as a helper), in a process
// group of its own, killed and reaped by its guard also when a test fails.
// Each following test runs twice: through the process-events connector
// (skipped with a message where it is unavailable: it needs root in the
// initial namespaces) and through the /proc rescan fallback.
#include <sched.h>
#include <sys/resource.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <set>

#include "host/procfs.h"
#include "tests/host/host_test_util.h"
#include "tests/support/files.h"

namespace cgcore::host::testing {
namespace {

// ---------------------------------------------------------------- helpers
// The test binary re-run with CGCORE_HOST_TEST_HELPER=mode[:arg[:arg]] turns
// into one of these before main (and before GoogleTest) runs.

[[noreturn]] void park() {
  for (;;) ::pause();
}

[[noreturn]] void exec_sleep() {
  ::execl("/bin/sleep", "sleep", "1000", static_cast<char*>(nullptr));
  ::_exit(127);
}

int helper_main(const std::string& spec) {
  std::vector<std::string> a;
  std::stringstream ss(spec);
  for (std::string part; std::getline(ss, part, ':');) a.push_back(part);
  auto num = [&](size_t i) { return i < a.size() ? std::atol(a[i].c_str()) : 0L; };
  const std::string& mode = a.at(0);
  if (mode == "threads") {  // threads:N — N extra threads, all parked
    for (long i = 0; i < num(1); ++i) std::thread(park).detach();
    park();
  }
  if (mode == "thread_exec") {  // thread_exec:MS — a non-leader thread execs sleep after MS
    const long ms = num(1);
    std::thread([ms] {
      ::usleep(static_cast<useconds_t>(ms * 1000));
      exec_sleep();
    }).detach();
    park();
  }
  if (mode == "fork_after") {  // fork_after:MS — forks a sleep after MS
    ::usleep(static_cast<useconds_t>(num(1) * 1000));
    if (::fork() == 0) exec_sleep();
    park();
  }
  if (mode == "threads_after") {  // threads_after:MS:N — N parked threads after MS
    ::usleep(static_cast<useconds_t>(num(1) * 1000));
    for (long i = 0; i < num(2); ++i) std::thread(park).detach();
    park();
  }
  if (mode == "alloc_after") {  // alloc_after:MS:MB — touches MB MiB of anonymous memory after MS
    ::usleep(static_cast<useconds_t>(num(1) * 1000));
    const size_t bytes = static_cast<size_t>(num(2)) << 20;
    auto* p = static_cast<volatile char*>(std::malloc(bytes));
    for (size_t i = 0; p && i < bytes; i += 4096) p[i] = 1;
    park();
  }
  if (mode == "burn") {  // burn:MS:BURN_MS — after MS, spins BURN_MS of CPU time, then exits
    ::usleep(static_cast<useconds_t>(num(1) * 1000));
    timespec t0{}, t{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    volatile uint64_t x = 0;
    do {
      for (int i = 0; i < 100000; ++i) x = x + static_cast<uint64_t>(i);
      ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < num(2));
    ::_exit(0);
  }
  if (mode == "hog") {  // hog:MS:MB — after MS, touches 1 MiB more every 10 ms, up to MB MiB
    ::usleep(static_cast<useconds_t>(num(1) * 1000));
    for (long i = 0; i < num(2); ++i) {
      auto* p = static_cast<volatile char*>(std::malloc(1 << 20));
      for (size_t j = 0; p && j < (1u << 20); j += 4096) p[j] = 1;
      ::usleep(10000);
    }
    park();
  }
  if (mode == "setuid") {  // setuid:UID — drops to UID (real, effective, saved)
    const auto id = static_cast<uid_t>(num(1));
    if (::setresgid(id, id, id) != 0 || ::setresuid(id, id, id) != 0) ::_exit(126);
    park();
  }
  return 125;
}

struct HelperHook {
  HelperHook() {
    if (const char* mode = std::getenv(kHelperEnv)) ::_exit(helper_main(mode));
  }
} helper_hook;

// ---------------------------------------------------------------- fixture

bool have_proc() { return ::access("/proc/self/stat", R_OK) == 0; }

class Follow : public HostFixture, public ::testing::WithParamInterface<bool> {
 protected:
  void SetUp() override {
    if (!have_proc()) GTEST_SKIP() << "no /proc on this machine";
    HostFixture::SetUp();
  }
  // Starts a tracker: through the connector (GetParam()) or rescanning.
  // Skips the test if the connector was asked for and is unavailable.
  void start(HostOptions o = {}) {
    o.use_connector = GetParam();
    o.rescan_ms = without_rescans && !GetParam() ? 3600 * 1000 : 50;
    // Tests about other things do without the memory pass.
    if (!with_memory) o.memory_sync_ms = 0;
    make_tracker(std::move(o));
    ASSERT_TRUE(tracker->start().ok());
    if (GetParam() && !tracker->using_connector())
      GTEST_SKIP() << "process-events connector unavailable (needs root in the initial user and "
                      "network namespaces): "
                   << all_logs();
  }
  // Set by the memory tests before START: keep o.memory_sync_ms.
  bool with_memory = false;
  // Set before START by tests of what the fs asks the tracker at once: in
  // the rescanning mode, no rescan comes (the connector mode is unchanged).
  bool without_rescans = false;
  void enable(const std::string& controllers) {
    ASSERT_EQ(echo("/cgroup.subtree_control", controllers), 0);
  }
  // A process the tracker knows that has since made two threads it has not
  // heard of (the caller keeps the clone events from being read), in *out.
  void spawn_with_unseen_threads(std::optional<Child>* out) {
    out->emplace(Child::helper("threads_after:200:2"));
    ASSERT_TRUE((*out)->ok());
    const Pid pid = (*out)->pid();
    ASSERT_TRUE(tracker->ensure_pid(pid));
    const size_t before = engine_tids(pid).size();
    ASSERT_TRUE(eventually([&] { return proc_tids(pid).size() >= before + 2; }));
    ASSERT_LT(engine_tids(pid).size(), proc_tids(pid).size()) << "the tracker already knew";
  }
};

// start() skips the test where the connector is unavailable; GTEST_SKIP in
// a helper only leaves the helper, so the test body returns here.
#define START(...)                               \
  do {                                           \
    start(__VA_ARGS__);                          \
    if (IsSkipped() || HasFatalFailure()) return; \
  } while (0)

std::string mode_name(const ::testing::TestParamInfo<bool>& info) {
  return info.param ? "Connector" : "Rescan";
}

// ---------------------------------------------------------------- the mirror

TEST_P(Follow, InitialScanFindsThisProcessAndChildren) {
  Child sleeper = Child::sleep();
  Child threaded = Child::helper("threads:3");
  ASSERT_TRUE(sleeper.ok() && threaded.ok());
  // The helper is ready when it runs its three extra threads (a
  // ThreadSanitizer build may add one of its own).
  ASSERT_TRUE(eventually([&] { return proc_tids(threaded.pid()).size() >= 4; }));
  ASSERT_TRUE(eventually([&] { return status_field(sleeper.pid(), "Name") == "sleep"; }));
  START();
  EXPECT_TRUE(has_process(::getpid()));
  EXPECT_TRUE(has_task(::getpid()));
  EXPECT_EQ(cgroup_of(::getpid()), "/");
  EXPECT_TRUE(has_process(sleeper.pid()));
  EXPECT_EQ(engine.creds(sleeper.pid())->euid, ::geteuid());
  EXPECT_EQ(engine.creds(sleeper.pid())->uid, ::getuid());
  EXPECT_EQ(engine_tids(threaded.pid()), proc_tids(threaded.pid()));
  EXPECT_EQ(engine.tgid_of(proc_tids(threaded.pid()).back()).value(), threaded.pid());
  EXPECT_TRUE(has_process(1));
  // Every process of the host is there: compare with a scan of our own.
  ProcFs proc;
  size_t missing = 0, seen = 0;
  const std::vector<Pid> pids = proc.pids().value_or(std::vector<Pid>{});
  for (Pid p : pids) {
    auto snap = proc.process(p);
    if (!snap) continue;
    ++seen;
    // Processes that started or ended meanwhile may differ; count misses.
    if (!engine.tgid_of(p).ok()) ++missing;
  }
  EXPECT_LE(missing, seen / 10 + 2) << "of " << seen;
}

TEST_P(Follow, ForkAndExitAreFollowed) {
  START();
  enable("+pids");
  ASSERT_EQ(mkdir("/a"), 0);
  // A new child of this process lands in the root, as this process is.
  Child c = Child::sleep();
  ASSERT_TRUE(eventually([&] { return has_process(c.pid()); }));
  EXPECT_EQ(cgroup_of(c.pid()), "/");
  // A fork of a process in /a lands in /a.
  Child h = Child::helper("fork_after:300");
  ASSERT_TRUE(eventually([&] { return has_process(h.pid()); }));
  ASSERT_EQ(echo("/a/cgroup.procs", std::to_string(h.pid())), 0);
  std::vector<Pid> kids;
  ASSERT_TRUE(eventually([&] { return (kids = proc_children(h.pid())).size() == 1; }));
  const Pid gc = kids[0];
  ASSERT_TRUE(eventually([&] { return has_process(gc); }));
  EXPECT_EQ(cgroup_of(gc), "/a");
  // pids.current is exact: every thread of both (a sanitizer build's helper
  // runs an extra thread of its own).
  ASSERT_TRUE(eventually([&] { return status_field(gc, "Name") == "sleep"; }));
  const size_t expect = proc_tids(h.pid()).size() + proc_tids(gc).size();
  EXPECT_TRUE(eventually([&] { return cat("/a/pids.current") == std::to_string(expect) + "\n"; }))
      << cat("/a/pids.current") << " vs " << expect;
  // Exits: a zombie is no longer a task; reaped or not.
  c.signal(SIGKILL);
  EXPECT_TRUE(eventually([&] { return !engine.tgid_of(c.pid()).ok(); }));
  c.wait();
  ::kill(gc, SIGKILL);
  EXPECT_TRUE(eventually([&] { return !engine.tgid_of(gc).ok(); }));
  EXPECT_TRUE(eventually([&] { return cat("/a/cgroup.procs") == std::to_string(h.pid()) + "\n"; }));
  EXPECT_TRUE(engine.check_invariants().ok());
}

// A non-leader thread execs: it takes over the process id (de_thread). The
// engine must end with one task, the process id, still in its cgroup.
TEST_P(Follow, ExecFromANonLeaderThread) {
  START();
  ASSERT_EQ(mkdir("/a"), 0);
  Child h = Child::helper("thread_exec:700");
  ASSERT_TRUE(eventually([&] { return proc_tids(h.pid()).size() >= 2; }));
  ASSERT_TRUE(eventually([&] { return engine_tids(h.pid()).size() >= 2; }));
  ASSERT_EQ(echo("/a/cgroup.procs", std::to_string(h.pid())), 0);
  ASSERT_TRUE(eventually([&] { return status_field(h.pid(), "Name") == "sleep"; }));
  EXPECT_TRUE(eventually([&] { return engine_tids(h.pid()) == std::vector<Pid>{h.pid()}; }))
      << ::testing::PrintToString(engine_tids(h.pid()));
  EXPECT_EQ(proc_tids(h.pid()), std::vector<Pid>{h.pid()});
  EXPECT_EQ(cgroup_of(h.pid()), "/a");
  EXPECT_EQ(cat("/a/cgroup.threads"), std::to_string(h.pid()) + "\n");
}

TEST_P(Follow, CredentialsAreRead) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to start a process under another uid";
  Child before = Child::helper("setuid:4321");
  ASSERT_TRUE(eventually([&] { return status_field(before.pid(), "Uid").rfind("4321", 0) == 0; }));
  START();
  EXPECT_EQ(engine.creds(before.pid())->uid, 4321u);
  EXPECT_EQ(engine.creds(before.pid())->euid, 4321u);
  EXPECT_EQ(engine.creds(before.pid())->suid, 4321u);
  EXPECT_EQ(engine.creds(before.pid())->egid, 4321u);
  Child after = Child::helper("setuid:4322");
  EXPECT_TRUE(eventually([&] {
    auto c = engine.creds(after.pid());
    return c.ok() && c->uid == 4322u && c->euid == 4322u && c->suid == 4322u;
  }));
}

// `sleep 100 & echo $! > cgroup.procs` works even before the tracker heard
// of the new process: the pid is looked up in /proc at once.
TEST_P(Follow, WrittenPidIsLookedUpAtOnce) {
  without_rescans = true;  // only the write can find the new process
  START();
  ASSERT_EQ(mkdir("/a"), 0);
  if (GetParam()) tracker->TEST_pause_events(true);  // the fork event waits in the socket
  Child c = Child::sleep();
  EXPECT_FALSE(has_process(c.pid()));
  EXPECT_EQ(echo("/a/cgroup.procs", std::to_string(c.pid())), 0);
  EXPECT_EQ(cgroup_of(c.pid()), "/a");
  if (GetParam()) {
    // The queued fork and exec events change nothing now: no second task,
    // no move back to the parent's cgroup.
    const int64_t seen = tracker->events_seen();
    tracker->TEST_pause_events(false);
    EXPECT_TRUE(eventually([&] { return tracker->events_seen() > seen; }));
    Child marker = Child::sleep();  // its events come after c's
    EXPECT_TRUE(eventually([&] { return has_process(marker.pid()); }));
  }
  EXPECT_EQ(engine_tids(c.pid()), std::vector<Pid>{c.pid()});
  EXPECT_EQ(cgroup_of(c.pid()), "/a");
  EXPECT_EQ(cat("/a/cgroup.procs"), std::to_string(c.pid()) + "\n");
  // A process whose parent the mirror knows starts in the parent's cgroups.
  ASSERT_EQ(mkdir("/b"), 0);
  Child h = Child::helper("fork_after:200");
  ASSERT_TRUE(tracker->ensure_pid(h.pid()));
  ASSERT_EQ(echo("/b/cgroup.procs", std::to_string(h.pid())), 0);
  std::vector<Pid> kids;
  ASSERT_TRUE(eventually([&] { return (kids = proc_children(h.pid())).size() == 1; }));
  EXPECT_TRUE(tracker->ensure_pid(kids[0]));
  EXPECT_EQ(cgroup_of(kids[0]), "/b");
  EXPECT_EQ(echo("/a/cgroup.procs", "0x7ffffff0"), ESRCH);
}

// Threads a process made just before a cgroup.procs write, whose events the
// tracker has not had yet (with the connector: events it does not read),
// are looked up in /proc/PID/task at the write and move with their process.
TEST_P(Follow, ThreadsMadeJustBeforeAProcsWriteMoveWithIt) {
  without_rescans = true;
  START();
  ASSERT_EQ(mkdir("/a"), 0);
  if (GetParam()) tracker->TEST_pause_events(true);  // the clone events wait in the socket
  std::optional<Child> child;
  ASSERT_NO_FATAL_FAILURE(spawn_with_unseen_threads(&child));
  Child& h = *child;
  ASSERT_EQ(echo("/a/cgroup.procs", std::to_string(h.pid())), 0);
  EXPECT_EQ(engine_tids(h.pid()), proc_tids(h.pid()));
  for (Pid t : proc_tids(h.pid())) EXPECT_EQ(cgroup_of(t), "/a") << "thread " << t;
  if (GetParam()) {
    // The late clone events add nothing twice.
    const int64_t seen = tracker->events_seen();
    tracker->TEST_pause_events(false);
    EXPECT_TRUE(eventually([&] { return tracker->events_seen() > seen; }));
    Child marker = Child::sleep();
    EXPECT_TRUE(eventually([&] { return has_process(marker.pid()); }));
    EXPECT_EQ(engine_tids(h.pid()), proc_tids(h.pid()));
  }
  EXPECT_TRUE(engine.check_invariants().ok()) << engine.check_invariants().message();
}

// With the connector, the write applies the clone events still waiting in
// the socket (no /proc listing): the threads move with their process.
TEST_P(Follow, ThreadsWhoseEventsWaitInTheSocketMoveWithTheirProcess) {
  if (!GetParam()) GTEST_SKIP() << "the rescan fallback has no events to catch up on";
  without_rescans = true;
  START();
  ASSERT_EQ(mkdir("/a"), 0);
  tracker->TEST_hold_events(true);  // read only when a catch-up asks
  std::optional<Child> child;
  ASSERT_NO_FATAL_FAILURE(spawn_with_unseen_threads(&child));
  Child& h = *child;
  const int64_t seen = tracker->events_seen();
  ASSERT_EQ(echo("/a/cgroup.procs", std::to_string(h.pid())), 0);
  EXPECT_GT(tracker->events_seen(), seen) << "the write did not catch up on the events";
  EXPECT_EQ(engine_tids(h.pid()), proc_tids(h.pid()));
  for (Pid t : proc_tids(h.pid())) EXPECT_EQ(cgroup_of(t), "/a") << "thread " << t;
  tracker->TEST_hold_events(false);
  EXPECT_TRUE(engine.check_invariants().ok()) << engine.check_invariants().message();
}

// Events lost to a full socket buffer (ENOBUFS) are detected and the
// mirror is rebuilt from /proc without losing or duplicating a task.
TEST_P(Follow, LostEventsAreRecoveredFromProc) {
  if (!GetParam()) GTEST_SKIP() << "the rescan fallback has no events to lose";
  HostOptions o;
  o.rcvbuf_bytes = 1;  // the kernel's minimum: a few events
  START(o);
  ASSERT_EQ(mkdir("/a"), 0);
  // Bursts of forks while the tracker does not read, until the socket
  // buffer overflows (how many events a minimal buffer holds depends on
  // the kernel's accounting and the machine's load).
  std::vector<Child> kids;
  std::optional<Child> gone;
  for (int burst = 0; burst < 8 && tracker->stats().overflows == 0; ++burst) {
    tracker->TEST_pause_events(true);
    for (int i = 0; i < 48; ++i) kids.push_back(Child::sleep());
    if (!gone) {
      gone.emplace(Child::sleep());
      gone->signal(SIGKILL);
      gone->wait();
    }
    ::usleep(100 * 1000);
    tracker->TEST_pause_events(false);
    (void)eventually([&] { return tracker->stats().overflows >= 1; }, 1000);
  }
  ASSERT_GE(tracker->stats().overflows, 1) << "no overflow: the socket buffer held every event";
  for (const Child& k : kids) {
    EXPECT_TRUE(eventually([&] { return has_process(k.pid()); })) << k.pid();
    EXPECT_EQ(engine_tids(k.pid()), std::vector<Pid>{k.pid()});
  }
  EXPECT_FALSE(has_process(gone->pid()));
  // Each exactly once in the root's task list.
  std::vector<Pid> root = engine.cgroup_tids(engine.default_hierarchy().root());
  for (const Child& k : kids) EXPECT_EQ(std::count(root.begin(), root.end(), k.pid()), 1);
  // The overflow is counted before its resync runs.
  EXPECT_TRUE(eventually([&] { return tracker->resyncs() >= 1; }));
  // And they are followed afterwards.
  for (const Child& k : kids) k.signal(SIGKILL);
  for (Child& k : kids) k.wait();
  for (const Child& k : kids) EXPECT_TRUE(eventually([&] { return !engine.tgid_of(k.pid()).ok(); }));
  EXPECT_TRUE(engine.check_invariants().ok());
}

// The kernel has forked already when the tracker hears of it: a fork over
// pids.max cannot be refused. The child is counted in its parent's cgroup
// all the same (pids.current above pids.max, as a migration may leave it),
// and pids.events counts the refusal.
TEST_P(Follow, ForkOverPidsMaxIsCountedNotRefused) {
  START();
  enable("+pids");
  ASSERT_EQ(mkdir("/p"), 0);
  Child h = Child::helper("fork_after:300");
  ASSERT_TRUE(tracker->ensure_pid(h.pid()));
  const size_t threads = proc_tids(h.pid()).size();
  ASSERT_EQ(echo("/p/pids.max", std::to_string(threads)), 0);
  ASSERT_EQ(echo("/p/cgroup.procs", std::to_string(h.pid())), 0);
  std::vector<Pid> kids;
  ASSERT_TRUE(eventually([&] { return (kids = proc_children(h.pid())).size() == 1; }));
  EXPECT_TRUE(eventually([&] { return cgroup_of(kids[0]) == "/p"; })) << all_logs();
  // Exact, above the limit. (A ThreadSanitizer build's helper may start a
  // thread of its own when it forks: count what /proc shows.)
  EXPECT_TRUE(eventually([&] {
    return cat("/p/pids.current") ==
           std::to_string(proc_tids(h.pid()).size() + proc_tids(kids[0]).size()) + "\n";
  })) << cat("/p/pids.current");
  EXPECT_NE(cat("/p/pids.events"), "max 0\n");
  EXPECT_GE(tracker->stats().forks_over_limit, 1);
}

// A thread over pids.max: the engine has no way to record it, so it is
// retried until the limit allows it (and pids.events counts refusals).
TEST_P(Follow, ThreadOverPidsMaxIsRetried) {
  START();
  enable("+pids");
  ASSERT_EQ(mkdir("/p"), 0);
  Child h = Child::helper("threads_after:300:2");
  ASSERT_TRUE(tracker->ensure_pid(h.pid()));
  const size_t threads = proc_tids(h.pid()).size();
  ASSERT_EQ(echo("/p/pids.max", std::to_string(threads)), 0);
  ASSERT_EQ(echo("/p/cgroup.procs", std::to_string(h.pid())), 0);
  // (A ThreadSanitizer build's helper may add a thread of its own.)
  ASSERT_TRUE(eventually([&] { return proc_tids(h.pid()).size() >= threads + 2; }));
  EXPECT_TRUE(eventually([&] { return tracker->stats().threads_refused >= 1; }));
  ::usleep(100 * 1000);
  EXPECT_EQ(engine_tids(h.pid()).size(), threads);
  EXPECT_EQ(cat("/p/pids.current"), std::to_string(threads) + "\n");
  ASSERT_EQ(echo("/p/pids.max", "max"), 0);
  EXPECT_TRUE(eventually([&] { return engine_tids(h.pid()) == proc_tids(h.pid()); }))
      << ::testing::PrintToString(engine_tids(h.pid()));
  EXPECT_EQ(cat("/p/pids.current"), std::to_string(proc_tids(h.pid()).size()) + "\n");
}

// ---------------------------------------------------------------- effects

TEST_P(Follow, CpusetBecomesAffinity) {
  cpu_set_t mine;
  CPU_ZERO(&mine);
  ASSERT_EQ(::sched_getaffinity(0, sizeof mine, &mine), 0);
  if (!CPU_ISSET(0, &mine) || !CPU_ISSET(1, &mine))
    GTEST_SKIP() << "needs CPUs 0 and 1 (this machine or this process has " << CPU_COUNT(&mine) << ")";
  START();
  enable("+cpuset");
  ASSERT_EQ(mkdir("/c"), 0);
  ASSERT_EQ(echo("/c/cpuset.cpus", "1"), 0);
  Child c = Child::sleep();
  ASSERT_TRUE(eventually([&] { return status_field(c.pid(), "Name") == "sleep"; }));
  const std::string all = status_field(c.pid(), "Cpus_allowed_list");
  // Attach.
  ASSERT_EQ(echo("/c/cgroup.procs", std::to_string(c.pid())), 0);
  EXPECT_EQ(status_field(c.pid(), "Cpus_allowed_list"), "1");
  // cpuset.cpus changes.
  ASSERT_EQ(echo("/c/cpuset.cpus", "0"), 0);
  EXPECT_EQ(status_field(c.pid(), "Cpus_allowed_list"), "0");
  // Fork: the child of a process in /c runs on /c's CPUs.
  Child h = Child::helper("fork_after:300");
  ASSERT_TRUE(tracker->ensure_pid(h.pid()));
  ASSERT_EQ(echo("/c/cgroup.procs", std::to_string(h.pid())), 0);
  std::vector<Pid> kids;
  ASSERT_TRUE(eventually([&] { return (kids = proc_children(h.pid())).size() == 1; }));
  EXPECT_TRUE(eventually([&] { return cgroup_of(kids[0]) == "/c"; }));
  EXPECT_EQ(status_field(kids[0], "Cpus_allowed_list"), "0");
  // Back to the root: every CPU again.
  ASSERT_EQ(echo("/cgroup.procs", std::to_string(c.pid())), 0);
  EXPECT_EQ(status_field(c.pid(), "Cpus_allowed_list"), all);
  EXPECT_EQ(tracker->stats().affinity_errors, 0) << all_logs();
}

TEST_P(Follow, FreezeStopsAndThawContinues) {
  START();
  ASSERT_EQ(mkdir("/f"), 0);
  Child a = Child::sleep(), b = Child::sleep(), user_stopped = Child::sleep();
  ASSERT_TRUE(tracker->ensure_pid(a.pid()));
  ASSERT_TRUE(tracker->ensure_pid(b.pid()));
  ASSERT_TRUE(tracker->ensure_pid(user_stopped.pid()));
  ASSERT_EQ(echo("/f/cgroup.procs", std::to_string(a.pid())), 0);
  ASSERT_EQ(echo("/f/cgroup.procs", std::to_string(user_stopped.pid())), 0);
  user_stopped.signal(SIGSTOP);  // job control, before the freeze
  ASSERT_TRUE(eventually([&] { return proc_state(user_stopped.pid()) == 'T'; }));
  ASSERT_EQ(echo("/f/cgroup.freeze", "1"), 0);
  EXPECT_TRUE(eventually([&] { return proc_state(a.pid()) == 'T'; })) << proc_state(a.pid());
  // Moved into a frozen cgroup: stopped too.
  ASSERT_EQ(echo("/f/cgroup.procs", std::to_string(b.pid())), 0);
  EXPECT_TRUE(eventually([&] { return proc_state(b.pid()) == 'T'; }));
  // Continued by someone else while frozen: stopped again.
  a.signal(SIGCONT);
  (void)eventually([&] { return proc_state(a.pid()) != 'T'; }, 1000);
  EXPECT_TRUE(eventually([&] { return proc_state(a.pid()) == 'T'; }));
  ASSERT_EQ(echo("/f/cgroup.freeze", "0"), 0);
  EXPECT_TRUE(eventually([&] { return proc_state(a.pid()) == 'S'; })) << proc_state(a.pid());
  EXPECT_TRUE(eventually([&] { return proc_state(b.pid()) == 'S'; }));
  // The job-control stop was not the freezer's to end.
  ::usleep(200 * 1000);
  EXPECT_EQ(proc_state(user_stopped.pid()), 'T');
  // Freezing an ancestor freezes the descendants; moving out thaws.
  ASSERT_EQ(mkdir("/f/g"), 0);
  ASSERT_EQ(echo("/f/g/cgroup.procs", std::to_string(a.pid())), 0);
  ASSERT_EQ(echo("/f/cgroup.procs", std::to_string(b.pid())), 0);
  ASSERT_EQ(echo("/f/cgroup.freeze", "1"), 0);
  EXPECT_TRUE(eventually([&] { return proc_state(a.pid()) == 'T'; }));
  ASSERT_EQ(echo("/cgroup.procs", std::to_string(a.pid())), 0);
  EXPECT_TRUE(eventually([&] { return proc_state(a.pid()) == 'S'; }));
  EXPECT_TRUE(eventually([&] { return proc_state(b.pid()) == 'T'; }));
  // Stopping the tracker continues what the freezer stopped.
  tracker->stop();
  EXPECT_TRUE(eventually([&] { return proc_state(b.pid()) == 'S'; }));
}

TEST_P(Follow, KillSendsSigkillToTheSubtree) {
  START();
  ASSERT_EQ(mkdir("/k"), 0);
  ASSERT_EQ(mkdir("/k/sub"), 0);
  Child a = Child::sleep(), b = Child::sleep(), bystander = Child::sleep();
  ASSERT_TRUE(tracker->ensure_pid(a.pid()));
  ASSERT_TRUE(tracker->ensure_pid(b.pid()));
  ASSERT_TRUE(tracker->ensure_pid(bystander.pid()));
  ASSERT_EQ(echo("/k/cgroup.procs", std::to_string(a.pid())), 0);
  ASSERT_EQ(echo("/k/sub/cgroup.procs", std::to_string(b.pid())), 0);
  ASSERT_EQ(echo("/k/cgroup.kill", "1"), 0);
  int sa = a.wait(), sb = b.wait();
  EXPECT_TRUE(WIFSIGNALED(sa) && WTERMSIG(sa) == SIGKILL) << sa;
  EXPECT_TRUE(WIFSIGNALED(sb) && WTERMSIG(sb) == SIGKILL) << sb;
  EXPECT_TRUE(eventually([&] { return cat("/k/cgroup.procs").empty() && cat("/k/sub/cgroup.procs").empty(); }));
  // The process outside the subtree lives on.
  const char st = proc_state(bystander.pid());
  EXPECT_TRUE(st != 'Z' && st != 'X' && st != '?') << st;
  EXPECT_TRUE(has_process(bystander.pid()));
}

// As in the kernel, a cgroup whose last task the caller has killed and
// reaped can be removed at once, though the exit's news has not reached the
// mirror yet (events held back; no rescan before the rmdir).
TEST_P(Follow, ACgroupEmptiedByAReapedExitIsRemovedAtOnce) {
  without_rescans = true;
  START();
  ASSERT_EQ(mkdir("/gone"), 0);
  Child a = Child::sleep(), b = Child::sleep();
  ASSERT_TRUE(tracker->ensure_pid(a.pid()));
  ASSERT_TRUE(tracker->ensure_pid(b.pid()));
  ASSERT_EQ(echo("/gone/cgroup.procs", std::to_string(a.pid())), 0);
  ASSERT_EQ(echo("/gone/cgroup.procs", std::to_string(b.pid())), 0);
  if (GetParam()) tracker->TEST_pause_events(true);
  a.signal(SIGKILL);
  a.wait();
  // One task left, alive: refused, and it stays.
  EXPECT_EQ(rmdir("/gone"), EBUSY);
  EXPECT_EQ(cat("/gone/cgroup.procs"), std::to_string(b.pid()) + "\n");
  b.signal(SIGKILL);
  b.wait();
  EXPECT_EQ(rmdir("/gone"), 0);
  EXPECT_EQ(mkdir("/gone"), 0);  // the name is free again
  if (GetParam()) tracker->TEST_pause_events(false);
}

TEST_P(Follow, MemoryUsageFollowsResidentMemory) {
  HostOptions o;
  o.memory_sync_ms = 50;
  with_memory = true;
  START(o);
  enable("+memory");
  ASSERT_EQ(mkdir("/m"), 0);
  // Allocates after the move: charges stay where they were made, as in the
  // kernel, so the memory must be touched inside the cgroup.
  Child h = Child::helper("alloc_after:300:64");
  ASSERT_TRUE(tracker->ensure_pid(h.pid()));
  ASSERT_EQ(echo("/m/cgroup.procs", std::to_string(h.pid())), 0);
  auto current = [&](const std::string& cg) { return std::atoll(cat(cg + "/memory.current").c_str()); };
  EXPECT_TRUE(eventually([&] { return current("/m") >= (64ll << 20); })) << current("/m");
  const long long rss = std::atoll(status_field(h.pid(), "RssAnon").c_str()) * 1024;
  EXPECT_LE(current("/m"), rss + (8ll << 20));
  EXPECT_EQ(tracker->stats().oom_kills, 0);
  // The usage goes when the process does.
  h.signal(SIGKILL);
  h.wait();
  EXPECT_TRUE(eventually([&] { return current("/m") == 0; })) << current("/m");
}

// ---------------------------------------------------------------- cpu

// usage_usec of a v2 cpu.stat text, -1 if absent.
long long usage_usec(const std::string& stat) {
  std::istringstream in(stat);
  for (std::string k; in >> k;) {
    long long v;
    if (!(in >> v)) break;
    if (k == "usage_usec") return v;
  }
  return -1;
}

// cpu.stat follows the real CPU time of a process that burns 400 ms, and
// keeps it after the process exited and was reaped (usage never goes down).
TEST_P(Follow, CpuUsageIsTheRealCpuTimeAndStaysAfterExit) {
  HostOptions o;
  o.memory_sync_ms = 50;
  with_memory = true;
  START(o);
  enable("+cpu");
  ASSERT_EQ(mkdir("/c"), 0);
  EXPECT_EQ(usage_usec(cat("/c/cpu.stat")), 0);
  Child h = Child::helper("burn:300:400");
  ASSERT_TRUE(tracker->ensure_pid(h.pid()));
  ASSERT_EQ(echo("/c/cgroup.procs", std::to_string(h.pid())), 0);
  EXPECT_TRUE(eventually([&] { return usage_usec(cat("/c/cpu.stat")) >= 100000; }))
      << cat("/c/cpu.stat");
  const long long running = usage_usec(cat("/c/cpu.stat"));
  const int st = h.wait();
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  // Once the exit is applied (the process left the engine) nothing more
  // can be charged for it.
  EXPECT_TRUE(eventually([&] { return cat("/c/cgroup.procs").empty(); }));
  tracker->sync_cpu_usage();
  const long long after_exit = usage_usec(cat("/c/cpu.stat"));
  EXPECT_GE(after_exit, running);
  // All of it with taskstats at the exit; without, what ran after the last
  // pass is not seen: at most one period (50 ms here, with slack for a
  // loaded machine).
  EXPECT_GE(after_exit, 250000) << cat("/c/cpu.stat");
  EXPECT_LE(after_exit, 1000000) << cat("/c/cpu.stat");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  tracker->sync_cpu_usage();
  EXPECT_EQ(usage_usec(cat("/c/cpu.stat")), after_exit);
  EXPECT_GE(usage_usec(cat("/cpu.stat")), after_exit);
  EXPECT_GE(tracker->stats().cpu_charged_ns, static_cast<uint64_t>(after_exit) * 1000);
}

// A thread's last CPU time comes from taskstats at its exit: with no
// periodic pass after the baseline, the whole CPU time of a process born
// and ended in between is still charged, as much as the kernel reports to
// its parent (getrusage of the reaped child).
TEST_P(Follow, CpuTimeOfAnExitedProcessComesFromTaskstats) {
  HostOptions o;
  o.memory_sync_ms = 600000;  // the baseline at start, then no pass
  with_memory = true;
  START(o);
  if (!tracker->using_taskstats())
    GTEST_SKIP() << "taskstats unavailable (needs root in the initial namespaces): " << all_logs();
  if (!GetParam())
    GTEST_SKIP() << "with the rescan fallback a scan may apply an exit just before its statistics "
                    "are read, leaving the last /proc sample (docs/host.md)";
  enable("+cpu");
  ASSERT_EQ(mkdir("/x"), 0);
  Child h = Child::helper("burn:300:300");
  ASSERT_TRUE(tracker->ensure_pid(h.pid()));
  ASSERT_EQ(echo("/x/cgroup.procs", std::to_string(h.pid())), 0);
  const int st = h.wait();
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  rusage ru{};
  ASSERT_EQ(::getrusage(RUSAGE_CHILDREN, &ru), 0);
  // The statistics arrive before the exit event; wait for the event to be
  // applied (the process leaves the engine), then the usage is final.
  EXPECT_TRUE(eventually([&] { return cat("/x/cgroup.procs").empty(); }));
  const long long usage = usage_usec(cat("/x/cpu.stat"));
  EXPECT_GE(usage, 280000) << cat("/x/cpu.stat");
  EXPECT_LE(usage, 1000000) << cat("/x/cpu.stat");
  // Tick-sampled utime/stime of every child this test reaped (the kernel's
  // figure) is at least this one's share, to within a few ticks.
  const long long kernel_us = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000ll +
                              ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
  EXPECT_GE(kernel_us + 40000, usage) << "rusage of children " << kernel_us;
}

// cpu.weight is applied as the nice level its weight corresponds to.
TEST_P(Follow, CpuWeightBecomesTheNiceLevel) {
  START();
  enable("+cpu");
  ASSERT_EQ(mkdir("/w"), 0);
  Child s = Child::sleep();
  ASSERT_TRUE(tracker->ensure_pid(s.pid()));
  auto nice = [&] {
    errno = 0;
    const int n = ::getpriority(PRIO_PROCESS, static_cast<id_t>(s.pid()));
    return errno ? 1000 : n;
  };
  ASSERT_EQ(nice(), 0);
  ASSERT_EQ(echo("/w/cgroup.procs", std::to_string(s.pid())), 0);
  EXPECT_EQ(nice(), 0) << "weight 100 is nice 0: nothing to change";
  ASSERT_EQ(echo("/w/cpu.weight.nice", "19"), 0);
  EXPECT_TRUE(eventually([&] { return nice() == 19; })) << nice();
  EXPECT_GE(tracker->stats().nice_set, 1);
  EXPECT_EQ(tracker->stats().nice_errors, 0);
  // Raising a priority needs CAP_SYS_NICE.
  if (::geteuid() != 0) return;
  {
    ASSERT_EQ(echo("/w/cpu.weight", "10000"), 0);  // 102400: nearest is nice -20's weight
    EXPECT_TRUE(eventually([&] { return nice() == -20; })) << nice();
    ASSERT_EQ(echo("/w/cpu.weight", "200"), 0);  // 2048: nice -3's 1991 is closest
    EXPECT_TRUE(eventually([&] { return nice() == -3; })) << nice();
  }
  // Back to the root (weight 1024): nice 0 again.
  ASSERT_EQ(echo("/cgroup.procs", std::to_string(s.pid())), 0);
  EXPECT_TRUE(eventually([&] { return nice() == 0; })) << nice();
}

// ---------------------------------------------------------------- memory enforcement

// Whether `c` died of SIGKILL within `ms` (it is reaped then).
using ::cgcore::testing::read_file;
using ::cgcore::testing::write_file;

bool killed_within(Child& c, int ms) {
  if (!eventually([&] { return proc_state(c.pid()) == 'Z'; }, ms)) return false;
  const int st = c.wait();
  return WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
}
bool alive(const Child& c) {
  const char st = proc_state(c.pid());
  return st != 'Z' && st != 'X' && st != '?';
}
// One line of a "key value" file ("oom_kill" of memory.events), -1 if absent.
long long field(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  for (std::string k; in >> k;) {
    long long v;
    if (!(in >> v)) break;
    if (k == key) return v;
  }
  return -1;
}

// The kernel's memory.max: the process with the largest usage in the
// cgroup is killed once reclaim cannot help; others, and other cgroups'
// processes, are left alone. At the default sync period (250 ms) the hog,
// growing 100 MiB/s, is killed long before it reaches its 256 MiB.
TEST_P(Follow, MemoryMaxKillsTheLargestProcessOfTheCgroup) {
  HostOptions o;
  EXPECT_EQ(o.memory_sync_ms, 250);  // the default reaction time
  with_memory = true;
  START(o);
  enable("+memory");
  ASSERT_EQ(mkdir("/oom"), 0);
  ASSERT_EQ(mkdir("/sib"), 0);
  ASSERT_EQ(echo("/oom/memory.max", "32M"), 0);
  Child hog = Child::helper("hog:300:256");
  Child small = Child::helper("alloc_after:300:4");
  Child sibling = Child::helper("alloc_after:300:48");
  for (Child* c : {&hog, &small, &sibling}) ASSERT_TRUE(tracker->ensure_pid(c->pid()));
  ASSERT_EQ(echo("/oom/cgroup.procs", std::to_string(hog.pid())), 0);
  ASSERT_EQ(echo("/oom/cgroup.procs", std::to_string(small.pid())), 0);
  ASSERT_EQ(echo("/sib/cgroup.procs", std::to_string(sibling.pid())), 0);
  EXPECT_TRUE(killed_within(hog, 10000)) << all_logs();
  // Bounded reaction: the excess seen is what grows within a period or two.
  // (Seen here: about 44 MiB, i.e. 12 MiB past the limit.)
  EXPECT_LE(std::atoll(cat("/oom/memory.peak").c_str()), 96ll << 20) << cat("/oom/memory.peak");
  EXPECT_TRUE(alive(small));
  EXPECT_TRUE(alive(sibling));
  EXPECT_TRUE(eventually([&] { return std::atoll(cat("/oom/memory.current").c_str()) <= (32ll << 20); }))
      << cat("/oom/memory.current");
  const std::string ev = cat("/oom/memory.events");
  EXPECT_GE(field(ev, "max"), 1) << ev;
  EXPECT_GE(field(ev, "oom"), 1) << ev;
  EXPECT_EQ(field(ev, "oom_kill"), 1) << ev;
  EXPECT_EQ(field(ev, "oom_group_kill"), 0) << ev;
  EXPECT_EQ(field(cat("/oom/memory.events.local"), "oom_kill"), 1);
  EXPECT_EQ(field(cat("/sib/memory.events"), "oom_kill"), 0);
  EXPECT_EQ(tracker->stats().oom_kills, 1);
  EXPECT_GE(tracker->stats().memory_refused, 1);  // charged past the limit
  EXPECT_NE(all_logs().find("OOM in /oom"), std::string::npos) << all_logs();
  EXPECT_NE(all_logs().find("killed process " + std::to_string(hog.pid())), std::string::npos)
      << all_logs();
}

// The daemon never kills itself: with only its own process over the
// limit, the OOM is counted and nothing is killed.
TEST_P(Follow, MemoryOomNeverKillsTheDaemon) {
  HostOptions o;
  o.memory_sync_ms = 50;
  with_memory = true;
  START(o);
  enable("+memory");
  ASSERT_EQ(mkdir("/self"), 0);
  ASSERT_EQ(echo("/self/memory.max", "1M"), 0);
  ASSERT_EQ(echo("/self/cgroup.procs", std::to_string(::getpid())), 0);
  // Touched after the move, so charged to /self.
  std::vector<char> buf(16 << 20);
  for (size_t i = 0; i < buf.size(); i += 4096) buf[i] = 1;
  EXPECT_TRUE(eventually([&] { return field(cat("/self/memory.events"), "oom") >= 1; }))
      << cat("/self/memory.events") << cat("/self/memory.current");
  EXPECT_TRUE(eventually([&] { return all_logs().find("no process may be killed") != std::string::npos; }))
      << all_logs();
  EXPECT_EQ(field(cat("/self/memory.events"), "oom_kill"), 0);
  EXPECT_EQ(tracker->stats().oom_kills, 0);
  ASSERT_EQ(echo("/cgroup.procs", std::to_string(::getpid())), 0);
  buf[0] = static_cast<char>(buf[4096] + 1);  // kept until here
}

// memory.oom.group: every process of the group's subtree dies with the
// victim; a cgroup outside it does not.
TEST_P(Follow, MemoryOomGroupKillsEveryProcessOfTheCgroup) {
  HostOptions o;
  o.memory_sync_ms = 50;
  with_memory = true;
  START(o);
  enable("+memory");
  ASSERT_EQ(mkdir("/g"), 0);
  ASSERT_EQ(echo("/g/cgroup.subtree_control", "+memory"), 0);
  ASSERT_EQ(mkdir("/g/a"), 0);
  ASSERT_EQ(mkdir("/g/b"), 0);
  ASSERT_EQ(mkdir("/out"), 0);
  ASSERT_EQ(echo("/g/memory.max", "32M"), 0);
  ASSERT_EQ(echo("/g/memory.oom.group", "1"), 0);
  EXPECT_EQ(cat("/g/memory.oom.group"), "1\n");
  Child hog = Child::helper("hog:300:256");
  Child quiet = Child::sleep();
  Child outside = Child::sleep();
  for (Child* c : {&hog, &quiet, &outside}) ASSERT_TRUE(tracker->ensure_pid(c->pid()));
  ASSERT_EQ(echo("/g/a/cgroup.procs", std::to_string(hog.pid())), 0);
  ASSERT_EQ(echo("/g/b/cgroup.procs", std::to_string(quiet.pid())), 0);
  ASSERT_EQ(echo("/out/cgroup.procs", std::to_string(outside.pid())), 0);
  EXPECT_TRUE(killed_within(hog, 10000)) << all_logs();
  EXPECT_TRUE(killed_within(quiet, 5000)) << all_logs();
  EXPECT_TRUE(alive(outside));
  const std::string ev = cat("/g/memory.events");
  EXPECT_EQ(field(ev, "oom_group_kill"), 1) << ev;
  EXPECT_EQ(field(ev, "oom_kill"), 2) << ev;
  EXPECT_GE(field(ev, "oom"), 1) << ev;
  EXPECT_EQ(field(cat("/g/a/memory.events.local"), "oom_kill"), 1);
  EXPECT_EQ(field(cat("/g/b/memory.events.local"), "oom_kill"), 1);
  EXPECT_EQ(field(cat("/g/memory.events.local"), "oom_kill"), 0);
  EXPECT_NE(all_logs().find("memory.oom.group of /g"), std::string::npos) << all_logs();
}

// cgroup v1: memory.oom_control's oom_kill_disable keeps the process alive
// and the cgroup under_oom; clearing it lets the OOM killer act.
TEST_P(Follow, MemoryOomKillDisableKeepsTheCgroupUnderOom) {
  HostOptions o;
  o.memory_sync_ms = 50;
  with_memory = true;
  START(o);
  auto v1 = engine.mount({"memory"}, "");
  ASSERT_TRUE(v1.ok()) << v1.status().message();
  auto d = engine.mkdir((*v1)->root(), "d");
  ASSERT_TRUE(d.ok());
  Cgroup& cg = **d;
  auto rd = [&](const char* f) {
    auto r = read_file(engine, cg, f);
    return r.ok() ? *r : std::string("error");
  };
  ASSERT_TRUE(write_file(engine, cg, "memory.limit_in_bytes", "16M").ok());
  ASSERT_TRUE(write_file(engine, cg, "memory.oom_control", "1").ok());
  EXPECT_EQ(rd("memory.oom_control"), "oom_kill_disable 1\nunder_oom 0\noom_kill 0\n");
  Child hog = Child::helper("hog:300:48");
  ASSERT_TRUE(tracker->ensure_pid(hog.pid()));
  ASSERT_TRUE(engine.migrate_process(hog.pid(), cg).ok());
  EXPECT_TRUE(eventually([&] { return rd("memory.oom_control").find("under_oom 1") != std::string::npos; }))
      << rd("memory.oom_control");
  // The hog reaches its 48 MiB (some 0.5 s) and is still not killed.
  EXPECT_TRUE(eventually([&] {
    return std::atoll(status_field(hog.pid(), "RssAnon").c_str()) >= (48ll << 10);
  })) << status_field(hog.pid(), "RssAnon");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_TRUE(alive(hog));
  EXPECT_EQ(rd("memory.oom_control"), "oom_kill_disable 1\nunder_oom 1\noom_kill 0\n");
  EXPECT_GT(std::atoll(rd("memory.failcnt").c_str()), 0);
  EXPECT_GT(std::atoll(rd("memory.usage_in_bytes").c_str()), 16ll << 20);
  EXPECT_EQ(tracker->stats().oom_kills, 0);
  // Enabled again: killed, counted, and under_oom ends once usage fits.
  ASSERT_TRUE(write_file(engine, cg, "memory.oom_control", "0").ok());
  EXPECT_TRUE(killed_within(hog, 5000)) << all_logs();
  EXPECT_TRUE(eventually([&] { return rd("memory.oom_control") == "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"; }))
      << rd("memory.oom_control");
  EXPECT_EQ(tracker->stats().oom_kills, 1);
}

// Many threads use the tracker at once while processes come and go.
TEST_P(Follow, ConcurrentLookupsResyncsAndEvents) {
  START();
  ASSERT_EQ(mkdir("/a"), 0);
  std::atomic<bool> done{false};
  std::thread resyncer([&] {
    while (!done.load()) {
      tracker->resync();
      (void)tracker->ensure_pid(::getpid());
      (void)cat("/a/cgroup.procs");
    }
  });
  for (int i = 0; i < 20; ++i) {
    Child c = Child::sleep();
    EXPECT_EQ(echo("/a/cgroup.procs", std::to_string(c.pid())), 0);
    EXPECT_EQ(cgroup_of(c.pid()), "/a");
    c.signal(SIGKILL);
    c.wait();
  }
  done.store(true);
  resyncer.join();
  EXPECT_TRUE(eventually([&] { return cat("/a/cgroup.procs").empty(); })) << cat("/a/cgroup.procs");
  EXPECT_TRUE(engine.check_invariants().ok());
}

INSTANTIATE_TEST_SUITE_P(Host, Follow, ::testing::Values(true, false), mode_name);

}  // namespace
}  // namespace cgcore::host::testing
