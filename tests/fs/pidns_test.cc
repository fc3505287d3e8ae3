// Pids in the caller's pid namespace: the fs asks its backend for the
// opener's namespace and turns written pids into the engine's ids and
// listed ids into the reader's, as the kernel resolves them. Here a fake
// backend translates: its child namespace names engine task 1000 + n as n
// and sees only the tasks from 1001 up.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <sstream>

#include "controllers/registry.h"
#include "fs/cgroupfs.h"

namespace cgcore::fs {
namespace {

constexpr Pid kBase = 1000;  // the child namespace's n is engine id kBase + n

class ChildNamespace final : public PidNamespace {
 public:
  Result<Pid> from_caller(Pid pid) const override {
    if (pid <= 0) return Status::Error(ESRCH, "no such process");
    return kBase + pid;
  }
  void to_caller(std::span<Pid> ids) const override {
    for (Pid& id : ids) id = id > kBase ? id - kBase : 0;
  }
};

// Callers whose pid is above kBase are in the child namespace.
class TranslatingBackend final : public Backend {
 public:
  explicit TranslatingBackend(Engine& engine) : engine_(engine) {}
  bool resolve_pid(Pid) override { return false; }
  std::shared_ptr<const PidNamespace> pid_namespace(const Caller& caller) override {
    ++asked;
    if (caller.pid > kBase) return std::make_shared<ChildNamespace>();
    return nullptr;
  }
  void kill_processes(std::span<const Pid> tgids) override {
    for (Pid p : tgids) (void)engine_.exit_process(p);
  }
  void release(const std::string&, const std::string&) override {}
  void apply_effects() override {}

  std::atomic<int> asked{0};

 private:
  Engine& engine_;
};

class PidNsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(register_builtin_controllers(engine).ok());
    auto f = CgroupFs::create(engine, "hybrid", backend);
    ASSERT_TRUE(f.ok()) << f.status().message();
    fs = std::move(f.value());
    // Host-side tasks 1, 2 (invisible to the child) and the child's 1, 2
    // (engine 1001, 1002; 1002 has a thread, child 3 = engine 1003).
    for (Pid p : {1, 2, 1001, 1002}) ASSERT_TRUE(engine.spawn({.pid = p}).ok());
    ASSERT_TRUE(engine.clone_thread(1002, Pid{1003}).ok());
    host.pid = 1;
    inside.pid = 1001;
    for (const char* d : {"/pids/a", "/unified/a", "/unified/b"}) ASSERT_EQ(mkdir(d), 0) << d;
  }
  void TearDown() override {
    if (fs) EXPECT_TRUE(engine.check_invariants().ok()) << engine.check_invariants().message();
  }
  int mkdir(const std::string& path) {
    const size_t slash = path.rfind('/');
    auto dir = fs->resolve(path.substr(0, slash));
    if (!dir.ok()) return dir.err();
    return fs->mkdir(*dir, path.substr(slash + 1), 0755, host).err();
  }
  std::string cat(const std::string& path, const Caller& who) {
    auto r = fs->read_path(path, who);
    return r.ok() ? r.value() : std::string("error: ") + errno_name(r.err());
  }
  int echo(const std::string& path, const std::string& text, const Caller& who) {
    return fs->write_path(path, text, who).err();
  }
  std::string cgroup_of(Pid pid, const char* dir) {
    const LayoutDir* d = nullptr;
    for (const LayoutDir& l : fs->layout().dirs)
      if (l.name == dir) d = &l;
    if (!d) return "?";
    auto cg = engine.task_cgroup(pid, *d->hierarchy);
    if (!cg.ok()) return "?";
    MutexLock lock(engine.cgroup_mutex());
    return (*cg)->path();
  }

  Engine engine;
  TranslatingBackend backend{engine};
  std::unique_ptr<CgroupFs> fs;
  Caller host, inside;
};

TEST_F(PidNsTest, AWrittenPidIsTheWritersNamespaces) {
  // "1" from the child namespace is its own init (engine 1001), never the
  // host's 1.
  EXPECT_EQ(echo("/unified/a/cgroup.procs", "1", inside), 0);
  EXPECT_EQ(cgroup_of(1001, "unified"), "/a");
  EXPECT_EQ(cgroup_of(1, "unified"), "/");
  // A thread id of the child's, through cgroup.threads / tasks.
  EXPECT_EQ(echo("/pids/a/tasks", "3", inside), 0);
  EXPECT_EQ(cgroup_of(1003, "pids"), "/a");
  EXPECT_EQ(cgroup_of(1002, "pids"), "/");
  // "0" is the writer itself.
  EXPECT_EQ(echo("/pids/a/cgroup.procs", "0", inside), 0);
  EXPECT_EQ(cgroup_of(1001, "pids"), "/a");
  // The host writes host ids.
  EXPECT_EQ(echo("/unified/b/cgroup.procs", "2", host), 0);
  EXPECT_EQ(cgroup_of(2, "unified"), "/b");
}

TEST_F(PidNsTest, APidTheWriterCannotSeeIsEsrchAndMovesNothing) {
  // Engine 1 and 2 have no name in the child namespace: the fake answers
  // "n" with 1000 + n, and 1000 + 50 does not exist.
  EXPECT_EQ(echo("/unified/a/cgroup.procs", "50", inside), ESRCH);
  EXPECT_EQ(echo("/pids/a/tasks", "50", inside), ESRCH);
  // Parse errors stay EINVAL, before any namespace question.
  EXPECT_EQ(echo("/unified/a/cgroup.procs", "x", inside), EINVAL);
  EXPECT_EQ(echo("/unified/a/cgroup.procs", "-1", inside), EINVAL);
  EXPECT_EQ(cat("/unified/a/cgroup.procs", host), "");
  EXPECT_EQ(cgroup_of(1, "unified"), "/");
}

TEST_F(PidNsTest, ListsAreInTheReadersNamespace) {
  for (const char* pid : {"1", "2", "1001", "1002"}) {
    ASSERT_EQ(echo("/unified/a/cgroup.procs", pid, host), 0);
    ASSERT_EQ(echo("/pids/a/cgroup.procs", pid, host), 0);
  }
  // The host sees engine ids.
  EXPECT_EQ(cat("/pids/a/tasks", host), "1\n2\n1001\n1002\n1003\n");
  // v1 drops what the reader cannot see and sorts its own ids.
  EXPECT_EQ(cat("/pids/a/tasks", inside), "1\n2\n3\n");
  EXPECT_EQ(cat("/pids/a/cgroup.procs", inside), "1\n2\n");
  // v2 keeps its order and shows each invisible task as 0.
  auto sorted_lines = [](const std::string& text) {
    std::vector<std::string> v;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) v.push_back(l);
    std::sort(v.begin(), v.end());
    return v;
  };
  EXPECT_EQ(sorted_lines(cat("/unified/a/cgroup.procs", inside)),
            (std::vector<std::string>{"0", "0", "1", "2"}));
  EXPECT_EQ(sorted_lines(cat("/unified/a/cgroup.threads", inside)),
            (std::vector<std::string>{"0", "0", "1", "2", "3"}));
  EXPECT_EQ(sorted_lines(cat("/unified/a/cgroup.procs", host)),
            (std::vector<std::string>{"1", "1001", "1002", "2"}));
}

TEST_F(PidNsTest, OnlyPidFilesAskForTheNamespaceOnceAtOpen) {
  const int before = backend.asked.load();
  EXPECT_EQ(cat("/pids/a/pids.max", inside), "max\n");
  EXPECT_EQ(echo("/unified/a/cgroup.freeze", "1", inside), 0);
  EXPECT_EQ(backend.asked.load(), before);
  auto ino = fs->resolve("/unified/a/cgroup.procs");
  ASSERT_TRUE(ino.ok());
  auto f = fs->open(*ino, true, true, inside);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(backend.asked.load(), before + 1);
  ASSERT_TRUE(fs->write(**f, "1").ok());
  ASSERT_TRUE(fs->write(**f, "2").ok());
  ASSERT_TRUE(fs->read(**f, 0, 100).ok());
  EXPECT_EQ(backend.asked.load(), before + 1);
  EXPECT_EQ(cgroup_of(1002, "unified"), "/a");
}

// A descriptor opened on the host and used from the child namespace (fork
// after open, then unshare; or an fd passed over a socket): each read and
// write names pids in the namespace of the task doing it, as the kernel's
// task_pid_vnr / find_task_by_vpid of current do.
TEST_F(PidNsTest, AnInheritedDescriptorNamesPidsInTheRequestersNamespace) {
  auto ino = fs->resolve("/pids/a/cgroup.procs");
  ASSERT_TRUE(ino.ok());
  auto f = fs->open(*ino, true, true, host);
  ASSERT_TRUE(f.ok());
  // Written by the child's task 1001: "2" is its 2 (engine 1002), "0" is
  // the writer itself, not the opener.
  ASSERT_TRUE(fs->write(**f, "2", inside.pid).ok());
  EXPECT_EQ(cgroup_of(1002, "pids"), "/a");
  EXPECT_EQ(cgroup_of(2, "pids"), "/");
  ASSERT_TRUE(fs->write(**f, "0", inside.pid).ok());
  EXPECT_EQ(cgroup_of(1001, "pids"), "/a");
  EXPECT_EQ(cgroup_of(1, "pids"), "/");
  // The opener's own write: host ids.
  ASSERT_TRUE(fs->write(**f, "2", host.pid).ok());
  EXPECT_EQ(cgroup_of(2, "pids"), "/a");
  // Read by the child: its names, without the host's task; by the opener:
  // the engine's.
  auto in = fs->read(**f, 0, 100, inside.pid);
  ASSERT_TRUE(in.ok());
  EXPECT_EQ(*in, "1\n2\n");
  auto out = fs->read(**f, 0, 100, host.pid);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "2\n1001\n1002\n");
  // The opener asks nothing more than at open.
  const int before = backend.asked.load();
  ASSERT_TRUE(fs->read(**f, 0, 100).ok());
  ASSERT_TRUE(fs->read(**f, 0, 100, host.pid).ok());
  EXPECT_EQ(backend.asked.load(), before);
}

}  // namespace
}  // namespace cgcore::fs
