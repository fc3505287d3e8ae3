// MountTree without FUSE: the /proc views under .cgcore, and the errnos the
// adapter answers for operations cgroupfs has no handler for.
#include "fuse/mount_tree.h"

#include <gtest/gtest.h>

#include "controllers/registry.h"

namespace cgcore::fuse {
namespace {

// A world in which exactly pid 77 exists outside the engine.
class Pid77Backend final : public fs::Backend {
 public:
  explicit Pid77Backend(Engine& engine) : engine_(engine) {}
  bool resolve_pid(Pid pid) override {
    SpawnOptions so;
    so.pid = pid;
    return pid == 77 && engine_.spawn(so).ok();
  }
  void kill_processes(std::span<const Pid>) override {}
  void release(const std::string&, const std::string&) override {}
  void apply_effects() override {}

 private:
  Engine& engine_;
};

class MountTreeTest : public ::testing::Test {
 protected:
  void mount(const char* layout, fs::Backend* backend = nullptr) {
    BuiltinOptions builtin;
    builtin.cpuset_topology = CpusetTopology::uniform(2, 1);
    ASSERT_TRUE(register_builtin_controllers(engine, builtin).ok());
    auto f = backend ? fs::CgroupFs::create(engine, layout, *backend) : fs::CgroupFs::create(engine, layout);
    ASSERT_TRUE(f.ok()) << f.status().message();
    cgfs = std::move(f.value());
    tree = std::make_unique<MountTree>(*cgfs);
  }
  void TearDown() override {
    if (cgfs) EXPECT_TRUE(engine.check_invariants().ok()) << engine.check_invariants().message();
  }
  // The inode at `path` (relative to the mount), or 0.
  Ino at(const std::string& path, const Caller& who = root) {
    Ino ino = fs::kRootIno;
    size_t pos = 0;
    while (pos < path.size()) {
      size_t end = path.find('/', pos);
      if (end == std::string::npos) end = path.size();
      Result<Node> n = tree->lookup(ino, path.substr(pos, end - pos), who);
      if (!n.ok()) return 0;
      ino = n->ino;
      pos = end + 1;
    }
    return ino;
  }
  int lookup_err(const std::string& dir, const std::string& name, const Caller& who = root) {
    return tree->lookup(dir.empty() ? fs::kRootIno : at(dir), name, who).err();
  }
  std::string cat(const std::string& path, const Caller& who = root) {
    auto h = tree->open(at(path), true, false, who);
    if (!h.ok()) return std::string("error: ") + errno_name(h.err());
    auto text = tree->read(**h, 0, 1 << 20);
    return text.ok() ? *text : std::string("error: ") + errno_name(text.err());
  }
  std::vector<std::string> ls(const std::string& path) {
    std::vector<std::string> out;
    auto entries = tree->readdir(path.empty() ? fs::kRootIno : at(path), root);
    if (entries.ok())
      for (auto& e : *entries) out.push_back(e.name);
    return out;
  }

  static inline const Caller root{};
  static inline const Caller user{1000, 1000, {}, 0};
  Engine engine;
  std::unique_ptr<fs::CgroupFs> cgfs;
  std::unique_ptr<MountTree> tree;
};

TEST_F(MountTreeTest, ViewsSitBesideTheHierarchies) {
  mount("hybrid");
  Pid p = *engine.spawn({});
  Pid q = *engine.spawn({});
  Pid t = *engine.clone_thread(q);
  // The layout's order (registration), as the fs lists the mount root.
  EXPECT_EQ(ls(""), (std::vector<std::string>{".cgcore", "cpuset", "cpu", "cpuacct", "memory",
                                             "pids", "numtasks", "memrlimit", "unified"}));
  EXPECT_EQ(ls(".cgcore"), (std::vector<std::string>{"cgroups", "self", "1", "2"}));
  EXPECT_EQ(ls(".cgcore/1"), (std::vector<std::string>{"cgroup"}));
  EXPECT_EQ(cat(".cgcore/cgroups"), cgfs->proc_cgroups());
  EXPECT_EQ(cat(".cgcore/1/cgroup"), cgfs->proc_pid_cgroup(p).value());
  // A thread's directory is found (not listed), as /proc/TID.
  EXPECT_NE(at(".cgcore/" + std::to_string(t)), 0u);
  EXPECT_EQ(lookup_err(".cgcore", "99"), ENOENT);
  EXPECT_EQ(lookup_err(".cgcore", "01"), ENOENT);
  EXPECT_EQ(lookup_err(".cgcore", "x"), ENOENT);
  EXPECT_EQ(lookup_err(".cgcore/1", "status"), ENOENT);
  Result<Node> dir = tree->getattr(at(".cgcore/1"));
  ASSERT_TRUE(dir.ok());
  EXPECT_EQ(dir->kind, NodeKind::kDir);
  EXPECT_EQ(dir->mode, 0555u);
  // self: the caller's process.
  Caller thread{0, 0, {}, t};
  EXPECT_EQ(tree->readlink(at(".cgcore/self"), thread).value(), std::to_string(q));
  EXPECT_EQ(tree->readlink(at(".cgcore/self"), Caller{0, 0, {}, 4242}).err(), ENOENT);
  // A process that exits leaves.
  ASSERT_TRUE(engine.exit_process(p).ok());
  EXPECT_EQ(lookup_err(".cgcore", "1"), ENOENT);
  EXPECT_EQ(ls(".cgcore"), (std::vector<std::string>{"cgroups", "self", "2"}));
}

TEST_F(MountTreeTest, TheBackendIsAskedForUnknownPids) {
  Pid77Backend backend(engine);
  mount("v2", &backend);
  EXPECT_EQ(lookup_err(".cgcore", "78"), ENOENT);
  EXPECT_EQ(lookup_err(".cgcore", "77"), 0);
  EXPECT_EQ(cat(".cgcore/77/cgroup"), "0::/\n");
}

TEST_F(MountTreeTest, TheViewsCannotBeChanged) {
  mount("v2");
  ASSERT_TRUE(engine.spawn({}).ok());
  const Ino views = at(".cgcore");
  EXPECT_EQ(tree->mkdir(fs::kRootIno, ".cgcore", 0755, root).err(), EEXIST);
  EXPECT_EQ(tree->mkdir(views, "x", 0755, root).err(), EPERM);
  EXPECT_EQ(tree->mkdir(views, "x", 0755, user).err(), EACCES);
  EXPECT_EQ(tree->rmdir(fs::kRootIno, ".cgcore", root).err(), EBUSY);
  EXPECT_EQ(tree->rmdir(views, "1", root).err(), EPERM);
  EXPECT_EQ(tree->unlink(views, "cgroups", root).err(), EPERM);
  EXPECT_EQ(tree->unlink(views, "1", root).err(), EISDIR);
  EXPECT_EQ(tree->unlink(fs::kRootIno, ".cgcore", root).err(), EISDIR);
  EXPECT_EQ(tree->rename(views, "cgroups", fs::kRootIno, "x", 0, root).err(), EXDEV);
  EXPECT_EQ(tree->rename(views, "cgroups", views, "x", 0, root).err(), EPERM);
  EXPECT_EQ(tree->rename(fs::kRootIno, ".cgcore", fs::kRootIno, "x", 0, root).err(), EBUSY);
  EXPECT_EQ(tree->open(at(".cgcore/cgroups"), false, true, root).err(), EACCES);
  EXPECT_EQ(tree->open(views, true, false, root).err(), EISDIR);
  EXPECT_EQ(tree->setattr(at(".cgcore/cgroups"), SetAttr{.mode = 0777}, root).err(), EPERM);
  EXPECT_EQ(tree->create(views, "f", root).err(), EACCES);
}

TEST_F(MountTreeTest, OperationsCgroupfsLacksAnswerAsTheVfs) {
  mount("hybrid");
  Pid p = *engine.spawn({});
  const Ino pids = at("pids");
  ASSERT_TRUE(tree->mkdir(pids, "a", 0755, root).ok());
  const Ino a = at("pids/a");
  EXPECT_EQ(tree->create(a, "newfile", root).err(), EACCES);
  EXPECT_EQ(tree->create(at("pids/a/tasks"), "x", root).err(), ENOTDIR);
  EXPECT_EQ(tree->make_other(a, "fifo", root).err(), EPERM);
  EXPECT_EQ(tree->make_other(a, "fifo", user).err(), EACCES);
  EXPECT_EQ(tree->unlink(a, "tasks", root).err(), EPERM);
  EXPECT_EQ(tree->rename(pids, "a", pids, "b", 1 /* RENAME_NOREPLACE */, root).err(), EINVAL);
  EXPECT_EQ(tree->rename(pids, "a", a, "b", 0, root).err(), EIO);
  EXPECT_EQ(tree->rename(pids, "a", pids, "b", 0, root).err(), 0);
  // One write is one command of at most a page.
  auto h = tree->open(at("pids/b/cgroup.procs"), false, true, root);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(tree->write(**h, std::string(4097, '1')).err(), E2BIG);
  EXPECT_EQ(tree->write(**h, std::to_string(p)).value(), std::to_string(p).size());
  EXPECT_EQ(cat("pids/b/tasks"), std::to_string(p) + "\n");
}

TEST_F(MountTreeTest, SetattrAndAccessFollowTheVfsRules) {
  mount("v2");
  ASSERT_TRUE(tree->mkdir(fs::kRootIno, "a", 0755, root).ok());
  const Ino procs = at("a/cgroup.procs");
  // Truncation (echo > file) is accepted from a writer; times from the owner.
  EXPECT_TRUE(tree->setattr(procs, SetAttr{.size = 0}, root).ok());
  EXPECT_EQ(tree->setattr(procs, SetAttr{.size = 0}, user).err(), EACCES);
  EXPECT_EQ(tree->setattr(at("a"), SetAttr{.size = 0}, root).err(), EISDIR);
  EXPECT_EQ(tree->setattr(procs, SetAttr{.times_explicit = true}, user).err(), EPERM);
  EXPECT_EQ(tree->setattr(procs, SetAttr{.times_now = true}, user).err(), EACCES);
  EXPECT_TRUE(tree->setattr(procs, SetAttr{.times_now = true}, root).ok());
  // chown / chmod through the fs.
  Result<Node> n = tree->setattr(procs, SetAttr{.uid = 1000u, .gid = 1000u}, root);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->uid, 1000u);
  EXPECT_TRUE(tree->setattr(procs, SetAttr{.times_now = true}, user).ok());
  n = tree->setattr(procs, SetAttr{.mode = 0600}, user);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->mode, 0600u);
  EXPECT_EQ(tree->setattr(procs, SetAttr{.uid = 0u}, user).err(), EPERM);
  EXPECT_TRUE(tree->access(procs, kMayWrite, user).ok());
  EXPECT_EQ(tree->access(at("a/cgroup.events"), kMayWrite, user).err(), EACCES);
  EXPECT_TRUE(tree->access(at("a/cgroup.events"), kMayRead, user).ok());
  EXPECT_EQ(tree->access(procs, kMayExec, root).err(), EACCES);  // no x bit at all
  EXPECT_TRUE(tree->access(at("a"), kMayExec | kMayWrite, root).ok());
  // Search permission is needed to look inside a directory.
  ASSERT_TRUE(tree->setattr(at("a"), SetAttr{.mode = 0700}, root).ok());
  EXPECT_EQ(lookup_err("a", "cgroup.procs", user), EACCES);
  EXPECT_EQ(lookup_err("a", "nonexistent", user), EACCES);
  EXPECT_EQ(lookup_err("a", "cgroup.procs", root), 0);
}

}  // namespace
}  // namespace cgcore::fuse
