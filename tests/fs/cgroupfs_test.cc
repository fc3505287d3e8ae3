// The file interface: layouts, core file formats, errnos and permissions.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "core/parse.h"
#include "fs/cgroupfs.h"
#include "tests/support/test_controller.h"

namespace cgcore::fs {
namespace {

using testing::TestController;

class FsTest : public ::testing::Test {
 protected:
  void mount(const char* layout) {
    auto a = std::make_unique<TestController>("alpha");
    auto b = std::make_unique<TestController>("beta");
    alpha = a.get();
    ASSERT_TRUE(engine.register_controller(std::move(a)).ok());
    ASSERT_TRUE(engine.register_controller(std::move(b)).ok());
    auto f = CgroupFs::create(engine, layout);
    ASSERT_TRUE(f.ok()) << f.status().message();
    fs = std::move(f.value());
  }
  void TearDown() override {
    if (fs) EXPECT_TRUE(engine.check_invariants().ok()) << engine.check_invariants().message();
  }
  std::string cat(const std::string& path, const Caller& who = Caller{}) {
    auto r = fs->read_path(path, who);
    return r.ok() ? r.value() : std::string("error: ") + errno_name(r.err());
  }
  int echo(const std::string& path, const std::string& text, const Caller& who = Caller{}) {
    return fs->write_path(path, text, who).err();
  }
  int mkdir(const std::string& path, const Caller& who = Caller{}, uint32_t mode = 0755) {
    size_t slash = path.rfind('/');
    auto dir = fs->resolve(slash == 0 ? "/" : path.substr(0, slash));
    if (!dir.ok()) return dir.err();
    return fs->mkdir(*dir, path.substr(slash + 1), mode, who).err();
  }
  int rmdir(const std::string& path, const Caller& who = Caller{}) {
    size_t slash = path.rfind('/');
    auto dir = fs->resolve(slash == 0 ? "/" : path.substr(0, slash));
    if (!dir.ok()) return dir.err();
    return fs->rmdir(*dir, path.substr(slash + 1), who).err();
  }
  std::vector<std::string> ls(const std::string& path) {
    std::vector<std::string> out;
    auto ino = fs->resolve(path);
    if (!ino.ok()) return out;
    auto entries = fs->readdir(*ino, Caller{});
    if (entries.ok())
      for (auto& e : *entries) out.push_back(e.name);
    return out;
  }

  Engine engine;
  TestController* alpha = nullptr;
  std::unique_ptr<CgroupFs> fs;
};

TEST(Parse, KernelIntegerRules) {
  EXPECT_EQ(kstrtoint("12").value(), 12);
  EXPECT_EQ(kstrtoint("12\n").value(), 12);
  EXPECT_EQ(kstrtoint("0x10").value(), 16);
  EXPECT_EQ(kstrtoint("010").value(), 8);
  EXPECT_EQ(kstrtoint("+3").value(), 3);
  EXPECT_EQ(kstrtoint("-3").value(), -3);
  EXPECT_EQ(kstrtoint(" 3").err(), EINVAL);
  EXPECT_EQ(kstrtoint("3 4").err(), EINVAL);
  EXPECT_EQ(kstrtoint("3\n\n").err(), EINVAL);
  EXPECT_EQ(kstrtoint("").err(), EINVAL);
  EXPECT_EQ(kstrtoint("abc").err(), EINVAL);
  EXPECT_EQ(kstrtoint("99999999999").err(), ERANGE);
  EXPECT_EQ(kstrtoull("-1").err(), EINVAL);
  EXPECT_EQ(strstrip("  a b \n"), "a b");
  EXPECT_EQ(memparse("4k").value, 4096u);
  EXPECT_EQ(memparse("1G").value, 1u << 30);
  EXPECT_EQ(memparse("12x").used, 2u);
}

TEST_F(FsTest, HybridLayoutShowsOneDirectoryPerController) {
  mount("hybrid");
  EXPECT_EQ(ls("/"), (std::vector<std::string>{"alpha", "beta", "unified"}));
  EXPECT_EQ(ls("/alpha"), (std::vector<std::string>{"cgroup.clone_children", "cgroup.procs",
                                                    "cgroup.sane_behavior", "notify_on_release",
                                                    "release_agent", "tasks"}));
  ASSERT_EQ(mkdir("/alpha/a"), 0);
  EXPECT_EQ(ls("/alpha/a"), (std::vector<std::string>{"cgroup.clone_children", "cgroup.procs",
                                                      "notify_on_release", "tasks"}));
  EXPECT_EQ(cat("/alpha/cgroup.sane_behavior"), "0\n");
  EXPECT_EQ(cat("/unified/cgroup.controllers"), "");  // every controller is on v1
  EXPECT_EQ(mkdir("/x"), EPERM);
  EXPECT_EQ(mkdir("/alpha"), EEXIST);
  EXPECT_EQ(rmdir("/alpha"), EBUSY);
}

TEST_F(FsTest, V1TasksAndProcs) {
  mount("hybrid");
  Pid p = *engine.spawn({});
  Pid t = *engine.clone_thread(p);
  Pid q = *engine.spawn({});
  ASSERT_EQ(mkdir("/alpha/a"), 0);
  EXPECT_EQ(cat("/alpha/tasks"), "1\n2\n3\n");
  EXPECT_EQ(cat("/alpha/cgroup.procs"), "1\n3\n");
  EXPECT_EQ(echo("/alpha/a/tasks", std::to_string(t)), 0);
  EXPECT_EQ(cat("/alpha/a/tasks"), "2\n");
  EXPECT_EQ(cat("/alpha/a/cgroup.procs"), "1\n");  // the process of thread 2
  EXPECT_EQ(echo("/alpha/a/cgroup.procs", " 3\n"), 0);
  EXPECT_EQ(cat("/alpha/a/cgroup.procs"), "1\n3\n");
  EXPECT_EQ(cat("/alpha/tasks"), "1\n");
  EXPECT_EQ(echo("/alpha/a/cgroup.procs", "1 3"), EINVAL);
  EXPECT_EQ(echo("/alpha/a/cgroup.procs", "-1"), EINVAL);
  EXPECT_EQ(echo("/alpha/a/cgroup.procs", "abc"), EINVAL);
  EXPECT_EQ(echo("/alpha/a/cgroup.procs", "4242"), ESRCH);
  Caller self;
  self.pid = q;
  EXPECT_EQ(echo("/alpha/cgroup.procs", "0", self), 0);  // "0": the writer
  EXPECT_EQ(cat("/alpha/cgroup.procs"), "1\n3\n");
  EXPECT_EQ(cat("/alpha/a/tasks"), "2\n");
  (void)p;
}

TEST_F(FsTest, V1Flags) {
  mount("hybrid");
  ASSERT_EQ(mkdir("/alpha/a"), 0);
  EXPECT_EQ(cat("/alpha/a/notify_on_release"), "0\n");
  EXPECT_EQ(echo("/alpha/a/notify_on_release", "1"), 0);
  EXPECT_EQ(cat("/alpha/a/notify_on_release"), "1\n");
  EXPECT_EQ(echo("/alpha/a/notify_on_release", "7"), 0);
  EXPECT_EQ(cat("/alpha/a/notify_on_release"), "1\n");
  EXPECT_EQ(echo("/alpha/a/notify_on_release", "x"), EINVAL);
  EXPECT_EQ(echo("/alpha/a/notify_on_release", " 1"), EINVAL);  // no stripping
  EXPECT_EQ(echo("/alpha/a/notify_on_release", "1\n"), 0);
  ASSERT_EQ(mkdir("/alpha/a/b"), 0);
  EXPECT_EQ(cat("/alpha/a/b/notify_on_release"), "1\n");  // inherited
  EXPECT_EQ(echo("/alpha/a/cgroup.clone_children", "1"), 0);
  EXPECT_EQ(cat("/alpha/a/cgroup.clone_children"), "1\n");
}

TEST_F(FsTest, ReleaseAgentRunsWhenANotifyingCgroupEmpties) {
  mount("hybrid");
  Caller user{1000, 1000};
  EXPECT_EQ(echo("/alpha/release_agent", "/bin/agent", user), EACCES);  // mode 0644
  ASSERT_EQ(fs->chmod(*fs->resolve("/alpha/release_agent"), 0666, Caller{}).err(), 0);
  EXPECT_EQ(echo("/alpha/release_agent", "/bin/agent", user), EPERM);  // and not root
  EXPECT_EQ(cat("/alpha/release_agent"), "\n");
  ASSERT_EQ(echo("/alpha/release_agent", "/bin/agent\n"), 0);
  EXPECT_EQ(cat("/alpha/release_agent"), "/bin/agent\n");
  ASSERT_EQ(mkdir("/alpha/a"), 0);
  ASSERT_EQ(mkdir("/alpha/a/b"), 0);
  ASSERT_EQ(echo("/alpha/a/notify_on_release", "1"), 0);
  ASSERT_EQ(echo("/alpha/a/b/notify_on_release", "1"), 0);
  Pid p = *engine.spawn({});
  ASSERT_EQ(echo("/alpha/a/b/cgroup.procs", std::to_string(p)), 0);
  VirtualBackend& backend = *fs->virtual_backend();
  EXPECT_TRUE(backend.released().empty());
  ASSERT_TRUE(engine.exit_process(p).ok());
  fs->run_pending_releases();
  ASSERT_EQ(backend.released().size(), 1u);
  EXPECT_EQ(backend.released()[0], (std::pair<std::string, std::string>{"/bin/agent", "/a/b"}));
  ASSERT_EQ(rmdir("/alpha/a/b"), 0);  // a has no children left
  ASSERT_EQ(backend.released().size(), 2u);
  EXPECT_EQ(backend.released()[1].second, "/a");
}

TEST_F(FsTest, ControlFilesCannotBeRemovedOrRenamedAway) {
  mount("hybrid");
  ASSERT_EQ(mkdir("/alpha/a"), 0);
  ASSERT_EQ(mkdir("/alpha/b"), 0);
  auto a = fs->resolve("/alpha/a");
  auto root = fs->resolve("/alpha");
  EXPECT_EQ(fs->unlink(*a, "tasks", Caller{}).err(), EPERM);
  EXPECT_EQ(mkdir("/alpha/a/tasks"), EEXIST);
  EXPECT_EQ(rmdir("/alpha/a/tasks"), ENOTDIR);
  EXPECT_EQ(fs->rename(*root, "a", *root, "b", Caller{}).err(), EEXIST);
  EXPECT_EQ(fs->rename(*root, "a", *root, "tasks", Caller{}).err(), ENOTDIR);
  EXPECT_EQ(fs->rename(*root, "a", *a, "c", Caller{}).err(), EIO);
  EXPECT_EQ(fs->rename(*a, "tasks", *a, "t2", Caller{}).err(), ENOTDIR);
  EXPECT_EQ(fs->rename(*root, "a", *root, "c", Caller{}).err(), 0);
  EXPECT_EQ(ls("/alpha").back(), "tasks");
  EXPECT_TRUE(fs->resolve("/alpha/c").ok());
  EXPECT_EQ(fs->resolve("/alpha/a").err(), ENOENT);
}

TEST_F(FsTest, V2CoreFiles) {
  mount("v2");
  EXPECT_EQ(cat("/cgroup.controllers"), "alpha beta\n");
  EXPECT_EQ(cat("/cgroup.subtree_control"), "");
  ASSERT_EQ(mkdir("/a"), 0);
  EXPECT_EQ(cat("/a/cgroup.events"), "populated 0\nfrozen 0\n");
  EXPECT_EQ(cat("/a/cgroup.type"), "domain\n");
  EXPECT_EQ(cat("/a/cgroup.max.depth"), "max\n");
  EXPECT_EQ(echo("/a/cgroup.max.depth", "2"), 0);
  EXPECT_EQ(cat("/a/cgroup.max.depth"), "2\n");
  EXPECT_EQ(echo("/a/cgroup.max.depth", "-1"), ERANGE);
  EXPECT_EQ(echo("/a/cgroup.max.depth", "x"), EINVAL);
  EXPECT_EQ(echo("/a/cgroup.max.depth", "max\n"), 0);
  EXPECT_EQ(cat("/cgroup.stat"),
            "nr_descendants 1\nnr_subsys_alpha 1\nnr_subsys_beta 1\nnr_dying_descendants 0\n"
            "nr_dying_subsys_alpha 0\nnr_dying_subsys_beta 0\n");
  EXPECT_EQ(echo("/cgroup.subtree_control", "+alpha -beta +beta -alpha +alpha"), 0);
  EXPECT_EQ(cat("/cgroup.subtree_control"), "alpha beta\n");
  EXPECT_EQ(cat("/a/cgroup.controllers"), "alpha beta\n");
  EXPECT_EQ(cat("/cgroup.stat").substr(0, 52), "nr_descendants 1\nnr_subsys_alpha 2\nnr_subsys_beta 2\n");
  EXPECT_EQ(echo("/cgroup.subtree_control", "+gamma"), EINVAL);
  EXPECT_EQ(echo("/cgroup.subtree_control", "alpha"), EINVAL);
  EXPECT_EQ(echo("/a/cgroup.subtree_control", "+alpha"), 0);
  EXPECT_EQ(echo("/cgroup.subtree_control", "-alpha"), EBUSY);
  Pid p = *engine.spawn({});
  EXPECT_EQ(echo("/a/cgroup.procs", std::to_string(p)), EBUSY);  // no internal processes
  ASSERT_EQ(mkdir("/a/b"), 0);
  EXPECT_EQ(echo("/a/b/cgroup.procs", std::to_string(p)), 0);
  EXPECT_EQ(cat("/a/cgroup.events"), "populated 1\nfrozen 0\n");
  EXPECT_EQ(echo("/a/cgroup.freeze", "1"), 0);
  EXPECT_EQ(cat("/a/b/cgroup.events"), "populated 1\nfrozen 1\n");
  EXPECT_EQ(cat("/a/b/cgroup.freeze"), "0\n");
  EXPECT_EQ(echo("/a/cgroup.freeze", "2"), ERANGE);
  EXPECT_EQ(echo("/a/cgroup.kill", "2"), ERANGE);
  EXPECT_EQ(echo("/a/cgroup.kill", "1"), 0);
  EXPECT_EQ(cat("/a/cgroup.events"), "populated 0\nfrozen 1\n");
  EXPECT_EQ(engine.nr_tasks(), 0u);
  auto root = fs->resolve("/");
  EXPECT_EQ(fs->rename(*root, "a", *root, "z", Caller{}).err(), EPERM);
}

TEST_F(FsTest, OpenChecksHandlersAndModes) {
  mount("v2");
  ASSERT_EQ(mkdir("/a"), 0);
  auto events = fs->resolve("/a/cgroup.events");
  auto kill = fs->resolve("/a/cgroup.kill");
  // Root passes the mode bits; the missing handler answers EINVAL.
  EXPECT_EQ(echo("/a/cgroup.events", "1"), EINVAL);
  EXPECT_EQ(cat("/a/cgroup.kill"), "error: EINVAL");
  Caller someone{1000, 1000};
  EXPECT_EQ(fs->open(*events, false, true, someone).err(), EACCES);
  EXPECT_EQ(fs->open(*kill, true, false, someone).err(), EACCES);
  EXPECT_EQ(fs->getattr(*kill)->mode, 0200u);
  EXPECT_EQ(fs->getattr(*events)->mode, 0444u);
  Caller user{1000, 1000};
  EXPECT_EQ(echo("/a/cgroup.procs", "1", user), EACCES);
  EXPECT_EQ(mkdir("/a/b", user), EACCES);
}

TEST_F(FsTest, DelegationByChown) {
  mount("v2");
  ASSERT_EQ(mkdir("/a"), 0);
  ASSERT_EQ(mkdir("/a/b"), 0);
  Caller user{1000, 1000};
  Pid p = *engine.spawn({.creds = Creds{1000, 1000, 1000, 1000, 1000}});
  ASSERT_EQ(echo("/a/b/cgroup.procs", std::to_string(p)), 0);
  auto a = fs->resolve("/a");
  auto procs = fs->resolve("/a/cgroup.procs");
  EXPECT_EQ(fs->chown(*a, 1000, 1000, user).err(), EPERM);
  ASSERT_EQ(fs->chown(*a, 1000, 1000, Caller{}).err(), 0);
  ASSERT_EQ(fs->chown(*procs, 1000, 1000, Caller{}).err(), 0);
  EXPECT_EQ(mkdir("/a/c", user), 0);
  auto c = fs->resolve("/a/c");
  EXPECT_EQ(fs->getattr(*c)->uid, 1000u);
  EXPECT_EQ(fs->getattr(*fs->resolve("/a/c/cgroup.procs"))->uid, 1000u);  // files too
  // Moving from b to c: common ancestor a's cgroup.procs is the user's.
  EXPECT_EQ(echo("/a/c/cgroup.procs", std::to_string(p), user), 0);
  // Moving back to b: b's own cgroup.procs is root's.
  EXPECT_EQ(echo("/a/b/cgroup.procs", std::to_string(p), user), EACCES);
  // To the root: the common ancestor is the root.
  EXPECT_EQ(echo("/cgroup.procs", std::to_string(p), user), EACCES);
  EXPECT_EQ(fs->chmod(*c, 0700, Caller{2000, 2000}).err(), EPERM);
  EXPECT_EQ(fs->chmod(*c, 0700, user).err(), 0);
  EXPECT_EQ(fs->getattr(*c)->mode, 0700u);
}

TEST_F(FsTest, V1PermissionIsByTargetCredentials) {
  mount("hybrid");
  ASSERT_EQ(mkdir("/alpha/a"), 0);
  auto procs = fs->resolve("/alpha/a/cgroup.procs");
  ASSERT_EQ(fs->chmod(*procs, 0666, Caller{}).err(), 0);
  Pid mine = *engine.spawn({.creds = Creds{1000, 1000, 1000, 1000, 1000}});
  Pid theirs = *engine.spawn({.creds = Creds{2000, 2000, 2000, 2000, 2000}});
  Pid setuid = *engine.spawn({.creds = Creds{2000, 2000, 1000, 2000, 2000}});
  Caller user{1000, 1000};
  EXPECT_EQ(echo("/alpha/a/cgroup.procs", std::to_string(mine), user), 0);
  EXPECT_EQ(echo("/alpha/a/cgroup.procs", std::to_string(theirs), user), EACCES);
  EXPECT_EQ(echo("/alpha/a/cgroup.procs", std::to_string(setuid), user), 0);  // suid matches
}

TEST_F(FsTest, ProcViews) {
  mount("hybrid");
  Pid p = *engine.spawn({});
  ASSERT_EQ(mkdir("/alpha/a"), 0);
  ASSERT_EQ(mkdir("/unified/u"), 0);
  ASSERT_EQ(echo("/alpha/a/cgroup.procs", std::to_string(p)), 0);
  ASSERT_EQ(echo("/unified/u/cgroup.procs", std::to_string(p)), 0);
  EXPECT_EQ(fs->proc_cgroups(),
            "#subsys_name\thierarchy\tnum_cgroups\tenabled\nalpha\t1\t2\t1\nbeta\t2\t1\t1\n");
  EXPECT_EQ(fs->proc_pid_cgroup(p).value(), "2:beta:/\n1:alpha:/a\n0::/u\n");
  EXPECT_EQ(fs->proc_pid_cgroup(99).err(), ESRCH);
}

TEST_F(FsTest, CustomLayout) {
  mount("alpha,beta;name=systemd");
  EXPECT_EQ(ls("/"), (std::vector<std::string>{"alpha,beta", "systemd"}));
  Pid p = *engine.spawn({});
  EXPECT_EQ(fs->proc_pid_cgroup(p).value(), "2:name=systemd:/\n1:alpha,beta:/\n");
}

TEST(FsLayout, BadSpecs) {
  Engine engine;
  ASSERT_TRUE(engine.register_controller(std::make_unique<TestController>("alpha")).ok());
  EXPECT_EQ(CgroupFs::create(engine, "").err(), EINVAL);
  EXPECT_EQ(CgroupFs::create(engine, "gamma").err(), EINVAL);
  EXPECT_EQ(CgroupFs::create(engine, "alpha;;").err(), EINVAL);
  EXPECT_EQ(CgroupFs::create(engine, "name=").err(), EINVAL);
}

}  // namespace
}  // namespace cgcore::fs

namespace cgcore::fs {
namespace {

// A threaded controller (like pids or cpuset) beside the domain ones.
class ThreadedTestController : public testing::TestController {
 public:
  ThreadedTestController() : TestController("gamma") {}
  bool threaded() const override { return true; }
};

class ThreadedFsTest : public FsTest {
 protected:
  void SetUp() override {
    ASSERT_TRUE(engine.register_controller(std::make_unique<ThreadedTestController>()).ok());
    mount("v2");
  }
};

TEST_F(ThreadedFsTest, ThreadedSubtreeRules) {
  ASSERT_EQ(mkdir("/dom"), 0);
  ASSERT_EQ(mkdir("/dom/t1"), 0);
  ASSERT_EQ(mkdir("/dom/t2"), 0);
  EXPECT_EQ(echo("/dom/t1/cgroup.type", "domain"), EINVAL);
  EXPECT_EQ(echo("/dom/t1/cgroup.type", "threaded"), 0);
  EXPECT_EQ(cat("/dom/t1/cgroup.type"), "threaded\n");
  EXPECT_EQ(cat("/dom/cgroup.type"), "domain threaded\n");
  EXPECT_EQ(cat("/dom/t2/cgroup.type"), "domain invalid\n");  // a domain under a thread root
  Pid p = *engine.spawn({});
  Pid t = *engine.clone_thread(p);
  EXPECT_EQ(echo("/dom/t2/cgroup.procs", std::to_string(p)), EOPNOTSUPP);
  ASSERT_EQ(echo("/dom/t2/cgroup.type", "threaded"), 0);
  ASSERT_EQ(echo("/dom/cgroup.procs", std::to_string(p)), 0);
  // Threads move within the domain; reading procs of a threaded cgroup fails.
  EXPECT_EQ(echo("/dom/t1/cgroup.threads", std::to_string(t)), 0);
  EXPECT_EQ(cat("/dom/t1/cgroup.threads"), std::to_string(t) + "\n");
  EXPECT_EQ(cat("/dom/t1/cgroup.procs"), "error: EOPNOTSUPP");
  EXPECT_EQ(cat("/dom/cgroup.procs"), std::to_string(p) + "\n");
  ASSERT_EQ(mkdir("/other"), 0);
  EXPECT_EQ(echo("/other/cgroup.threads", std::to_string(t)), EOPNOTSUPP);  // another domain
  // Domain controllers cannot be enabled inside the threaded subtree; the
  // threaded one can, with tasks present.
  ASSERT_EQ(echo("/cgroup.subtree_control", "+alpha +gamma"), 0);
  EXPECT_EQ(cat("/dom/t1/cgroup.controllers"), "");
  EXPECT_EQ(echo("/dom/cgroup.subtree_control", "+alpha"), EOPNOTSUPP);
  EXPECT_EQ(echo("/dom/cgroup.subtree_control", "+gamma"), 0);
  EXPECT_EQ(cat("/dom/t1/cgroup.controllers"), "gamma\n");
  EXPECT_EQ(echo("/dom/t1/cgroup.kill", "1"), EOPNOTSUPP);
  // Populated cgroups cannot turn threaded.
  ASSERT_EQ(mkdir("/busy"), 0);
  ASSERT_EQ(mkdir("/busy/c"), 0);
  Pid q = *engine.spawn({});
  ASSERT_EQ(echo("/busy/c/cgroup.procs", std::to_string(q)), 0);
  EXPECT_EQ(echo("/busy/c/cgroup.type", "threaded"), EOPNOTSUPP);
}

}  // namespace
}  // namespace cgcore::fs

namespace cgcore::fs {
namespace {

TEST_F(FsTest, EventsAreCountedForPopulatedAndFrozen) {
  mount("v2");
  std::vector<Ino> heard;
  auto take = [&] {
    fs->events().wait_take(heard, std::chrono::milliseconds(0));
    return heard;
  };
  ASSERT_EQ(mkdir("/a"), 0);
  Ino events = *fs->resolve("/a/cgroup.events");
  EXPECT_EQ(fs->events().watch(events), 0u);
  Pid p = *engine.spawn({});
  ASSERT_EQ(echo("/a/cgroup.procs", std::to_string(p)), 0);
  EXPECT_EQ(take(), std::vector<Ino>{events});
  EXPECT_EQ(fs->events().count(events), 1u);
  ASSERT_EQ(echo("/a/cgroup.freeze", "1"), 0);
  EXPECT_EQ(take(), std::vector<Ino>{events});
  EXPECT_EQ(fs->events().count(events), 2u);
  ASSERT_TRUE(engine.exit_process(p).ok());
  EXPECT_EQ(take(), std::vector<Ino>{events});
  EXPECT_EQ(fs->events().count(events), 3u);
  EXPECT_TRUE(take().empty());
  // Unwatched files are not recorded.
  fs->events().unwatch(events);
  EXPECT_EQ(fs->events().count(events), 0u);
  ASSERT_EQ(echo("/a/cgroup.freeze", "0"), 0);
  EXPECT_TRUE(take().empty());
}

// The delegation check of a cgroup.procs write and the move it permits run
// in one hold of the cgroup mutex. A mover, as a user, keeps moving a
// process between two cgroups, which it may do only while it owns the common
// ancestor's cgroup.procs; another thread keeps taking that ownership away
// and giving it back. Between taking it away and giving it back the process
// must stay where it is: a check made before the chown and acted on after it
// would show up as a move in that window.
TEST_F(FsTest, NoMoveIsPermittedByAStaleDelegationCheck) {
  mount("v2");
  ASSERT_EQ(mkdir("/a"), 0);
  ASSERT_EQ(mkdir("/a/x"), 0);
  ASSERT_EQ(mkdir("/a/y"), 0);
  const Pid p = *engine.spawn({});
  ASSERT_EQ(echo("/a/x/cgroup.procs", std::to_string(p)), 0);
  const Caller user{.uid = 1000, .gid = 1000, .groups = {}, .pid = 0};
  for (const char* f : {"/a/x/cgroup.procs", "/a/y/cgroup.procs"})
    ASSERT_EQ(fs->chown(*fs->resolve(f), 1000, 1000, Caller{}).err(), 0);
  const Ino common = *fs->resolve("/a/cgroup.procs");
  auto where = [&] {
    auto cg = engine.task_cgroup(p, engine.default_hierarchy());
    MutexLock l(engine.cgroup_mutex());
    return cg.ok() ? (*cg)->path() : std::string("?");
  };
  std::atomic<bool> stop{false};
  std::atomic<int> moved{0};
  std::thread mover([&] {
    bool to_y = true;
    while (!stop.load()) {
      if (fs->write_path(to_y ? "/a/y/cgroup.procs" : "/a/x/cgroup.procs", std::to_string(p), user).ok()) {
        moved.fetch_add(1);
        to_y = !to_y;
      }
    }
  });
  int stale = 0;
  for (int i = 0; i < 3000; ++i) {
    ASSERT_EQ(fs->chown(common, 0, 0, Caller{}).err(), 0);  // the user may not move now
    const std::string before = where();
    for (int spin = 0; spin < 50; ++spin) std::this_thread::yield();
    if (where() != before) ++stale;
    ASSERT_EQ(fs->chown(common, 1000, 1000, Caller{}).err(), 0);
    for (int spin = 0; spin < 20; ++spin) std::this_thread::yield();
  }
  stop.store(true);
  mover.join();
  EXPECT_EQ(stale, 0);
  EXPECT_GT(moved.load(), 0) << "the mover never moved: the test proved nothing";
}

TEST(FileEventsTest, CountsWatchedFilesAndWakesTheConsumer) {
  FileEvents ev;
  std::vector<uint64_t> out;
  EXPECT_EQ(ev.watch(7), 0u);
  EXPECT_EQ(ev.watch(7), 0u);  // a second handle
  EXPECT_EQ(ev.watch(9), 0u);
  ev.notify(7);
  ev.notify(7);
  ev.notify(9);
  ev.notify(11);  // not watched
  ev.wait_take(out, std::chrono::milliseconds(0));
  std::sort(out.begin(), out.end());
  EXPECT_EQ(out, (std::vector<uint64_t>{7, 9}));
  EXPECT_EQ(ev.count(7), 2u);
  EXPECT_EQ(ev.count(11), 0u);
  ev.unwatch(7);
  EXPECT_EQ(ev.count(7), 2u);  // one handle left
  ev.unwatch(7);
  EXPECT_EQ(ev.count(7), 0u);
  // A waiter is woken by a notification from another thread.
  std::thread t([&] { ev.notify(9); });
  ev.wait_take(out, std::chrono::seconds(10));
  t.join();
  EXPECT_EQ(out, std::vector<uint64_t>{9});
}

}  // namespace
}  // namespace cgcore::fs
