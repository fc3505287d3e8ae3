// cgroup.event_control through the file layer: the kernel's parsing and
// order of checks, the control file's identity (a regular file of this
// mount, of the same cgroup, that the writer may read), and what the memory
// controller's listeners are signalled by. A fake backend hands out the
// "descriptors": eventfds that count their signals and control files named
// by inode.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>

#include "controllers/memory.h"
#include "controllers/registry.h"
#include "fs/cgroupfs.h"

namespace cgcore::fs {
namespace {

constexpr uint64_t kDev = 0x2a;  // the mount's device, as the fake reports it

class CountingSink final : public EventSink {
 public:
  explicit CountingSink(std::shared_ptr<std::atomic<int>> n) : n_(std::move(n)) {}
  void signal() noexcept override { n_->fetch_add(1); }

 private:
  std::shared_ptr<std::atomic<int>> n_;
};

class FdBackend final : public Backend {
 public:
  bool resolve_pid(Pid) override { return false; }
  void kill_processes(std::span<const Pid>) override {}
  void release(const std::string&, const std::string&) override {}
  void apply_effects() override {}
  Result<EventFds> take_event_fds(const Caller&, int efd, int cfd) override {
    auto e = eventfds.find(efd);
    if (e == eventfds.end() && !others.count(efd)) return Status::Error(EBADF, "closed");
    auto c = controls.find(cfd);
    if (e == eventfds.end()) return Status::Error(EINVAL, "not an eventfd");
    if (c == controls.end()) return Status::Error(EBADF, "closed");
    EventFds out;
    out.sink = std::make_unique<CountingSink>(e->second);
    out.control_dev = c->second.dev;
    out.control_ino = c->second.ino;
    out.control_regular = c->second.regular;
    return out;
  }
  struct Control {
    uint64_t dev, ino;
    bool regular;
  };
  std::map<int, std::shared_ptr<std::atomic<int>>> eventfds;
  std::map<int, Control> controls;
  std::set<int> others;  // open, but no eventfd
};

class EventControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<BuiltinControllers> c = register_builtin_controllers(engine);
    ASSERT_TRUE(c.ok());
    mem = c->memory;
    auto f = CgroupFs::create(engine, "hybrid", backend);
    ASSERT_TRUE(f.ok()) << f.status().message();
    fs = std::move(f.value());
    fs->set_mount_device(kDev);
    for (const char* d : {"a", "b"}) {
      auto dir = fs->resolve("/memory");
      ASSERT_TRUE(fs->mkdir(*dir, d, 0755, root).ok());
    }
    backend.eventfds[3] = hits;
    backend.others.insert(4);
    control(10, "/memory/a/memory.usage_in_bytes");
    control(11, "/memory/a/memory.oom_control");
    control(12, "/memory/a/memory.pressure_level");
    control(13, "/memory/b/memory.usage_in_bytes");
    control(14, "/memory/a/cgroup.procs");
    control(15, "/memory/a/memory.limit_in_bytes");
    backend.controls[16] = {kDev, *fs->resolve("/memory/a"), false};  // the directory
    backend.controls[17] = {kDev + 1, *fs->resolve("/memory/a/memory.usage_in_bytes"), true};
  }
  void TearDown() override { EXPECT_TRUE(engine.check_invariants().ok()); }
  void control(int fd, const char* path) {
    auto ino = fs->resolve(path);
    ASSERT_TRUE(ino.ok()) << path;
    backend.controls[fd] = {kDev, *ino, true};
  }
  int echo(const std::string& path, const std::string& text, const Caller& who) {
    return fs->write_path(path, text, who).err();
  }
  int reg(const std::string& text, const char* cg = "a") {
    return echo(std::string("/memory/") + cg + "/cgroup.event_control", text, root);
  }
  Status charge(Pid pid, int64_t bytes) { return mem->charge(engine, pid, bytes); }

  Engine engine;
  MemoryController* mem = nullptr;
  FdBackend backend;
  std::unique_ptr<CgroupFs> fs;
  Caller root;
  std::shared_ptr<std::atomic<int>> hits = std::make_shared<std::atomic<int>>(0);
};

TEST_F(EventControlTest, TheFilesAreTheKernels) {
  auto a = fs->getattr(*fs->resolve("/memory/a/cgroup.event_control"));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->mode, 0200u);
  EXPECT_EQ(fs->getattr(*fs->resolve("/memory/a/memory.pressure_level"))->mode, 0444u);
  EXPECT_FALSE(fs->read_path("/memory/a/memory.pressure_level", root).ok());
  EXPECT_EQ(fs->read_path("/memory/a/memory.pressure_level", root).err(), EINVAL);
  // Only the memory hierarchy has it, as on the host; not v2.
  EXPECT_FALSE(fs->resolve("/pids/cgroup.event_control").ok());
  EXPECT_FALSE(fs->resolve("/unified/cgroup.event_control").ok());
  EXPECT_TRUE(fs->resolve("/memory/cgroup.event_control").ok());
}

TEST_F(EventControlTest, RefusalsComeInTheKernelsOrderAndRegisterNothing) {
  EXPECT_EQ(reg("abc"), EINVAL);
  EXPECT_EQ(reg("3"), EINVAL);
  EXPECT_EQ(reg("3 10x"), EINVAL);
  EXPECT_EQ(reg("3  10"), EBADF);  // the second number reads as 0 (not open here), "10" its argument
  EXPECT_EQ(reg("99 10"), EBADF);
  EXPECT_EQ(reg("4 10"), EINVAL);   // not an eventfd
  EXPECT_EQ(reg("4 99"), EINVAL);   // the eventfd is checked first
  EXPECT_EQ(reg("3 99"), EBADF);
  EXPECT_EQ(reg("3 16"), EINVAL);   // a directory
  EXPECT_EQ(reg("3 17 1M"), EINVAL);  // another file system's
  EXPECT_EQ(reg("3 14"), EINVAL);   // cgroup.procs: no events
  EXPECT_EQ(reg("3 15 1M"), EINVAL);  // limit_in_bytes: no events
  EXPECT_EQ(reg("3 13 1M"), EINVAL);  // another cgroup's
  EXPECT_EQ(reg("3 10 abc"), EINVAL);
  EXPECT_EQ(reg("3 10"), EINVAL);   // a threshold is needed
  EXPECT_EQ(reg("3 10 "), EINVAL);
  EXPECT_EQ(reg("3 12 bogus"), EINVAL);
  EXPECT_EQ(reg("3 12 low,bogus"), EINVAL);
  EXPECT_EQ(reg("3 12"), EINVAL);
  EXPECT_EQ(echo("/memory/a/cgroup.event_control", "3 10 1M", Caller{.uid = 1000, .gid = 1000}), EACCES);
  // Nothing was registered: removing the cgroup signals nobody.
  EXPECT_EQ(fs->rmdir(*fs->resolve("/memory"), "a", root).err(), 0);
  EXPECT_EQ(hits->load(), 0);
}

TEST_F(EventControlTest, ListenersAreSignalledAsTheKernelSignalsThem) {
  Pid p = *engine.spawn({});
  ASSERT_EQ(echo("/memory/a/cgroup.procs", std::to_string(p), root), 0);
  EXPECT_EQ(reg("  3 10 8K \n"), 0);
  EXPECT_EQ(reg("3 12 low"), 0);
  EXPECT_EQ(reg("3 12 critical,local"), 0);
  EXPECT_EQ(reg("3 11 ignored"), 0);
  EXPECT_EQ(hits->load(), 0);  // registering signals nothing
  ASSERT_TRUE(charge(p, 4096).ok());
  EXPECT_EQ(hits->load(), 0);
  ASSERT_TRUE(charge(p, 4096).ok());  // 8K: at the threshold
  EXPECT_EQ(hits->load(), 1);
  ASSERT_TRUE(charge(p, 4096).ok());
  EXPECT_EQ(hits->load(), 1);
  ASSERT_TRUE(mem->uncharge(engine, p, 8192).ok());  // back below
  EXPECT_EQ(hits->load(), 2);
  ASSERT_EQ(echo("/memory/cgroup.procs", std::to_string(p), root), 0);
  // Four listeners, each signalled once by the removal.
  EXPECT_EQ(fs->rmdir(*fs->resolve("/memory"), "a", root).err(), 0);
  EXPECT_EQ(hits->load(), 6);
  ASSERT_TRUE(charge(p, 1 << 20).ok());
  EXPECT_EQ(hits->load(), 6);
}

TEST_F(EventControlTest, AnOomSignalsItsCgroupsSubtreeAndAnUnderOomOneAtOnce) {
  auto dir = fs->resolve("/memory/a");
  ASSERT_TRUE(fs->mkdir(*dir, "child", 0755, root).ok());
  control(20, "/memory/a/child/memory.oom_control");
  auto sibling = std::make_shared<std::atomic<int>>(0);
  backend.eventfds[5] = sibling;
  control(21, "/memory/b/memory.oom_control");
  EXPECT_EQ(reg("3 20", "a/child"), 0);
  EXPECT_EQ(reg("3 11"), 0);
  EXPECT_EQ(reg("5 21", "b"), 0);
  const uint64_t a_id = *fs->resolve("/memory/a") >> 10;  // a directory's inode is its id << 10
  EXPECT_TRUE(mem->begin_oom(engine, a_id));  // kills allowed: an OOM each time
  EXPECT_EQ(hits->load(), 2);
  EXPECT_EQ(sibling->load(), 0);
  // With kills disabled the cgroup stays under_oom: one signal, and a new
  // listener hears of it at once.
  ASSERT_EQ(echo("/memory/a/memory.oom_control", "1", root), 0);
  EXPECT_FALSE(mem->begin_oom(engine, a_id));
  EXPECT_FALSE(mem->begin_oom(engine, a_id));
  EXPECT_EQ(hits->load(), 4);
  EXPECT_EQ(reg("3 11"), 0);
  EXPECT_EQ(hits->load(), 5);
}

TEST_F(EventControlTest, ListenersAreBounded) {
  for (size_t i = 0; i < MemoryEventListeners::kMaxListeners; ++i) ASSERT_EQ(reg("3 12 low"), 0) << i;
  EXPECT_EQ(reg("3 12 low"), ENOMEM);
  EXPECT_EQ(fs->rmdir(*fs->resolve("/memory"), "a", root).err(), 0);
  EXPECT_EQ(hits->load(), static_cast<int>(MemoryEventListeners::kMaxListeners));
  // Removal freed them.
  auto dir = fs->resolve("/memory");
  ASSERT_TRUE(fs->mkdir(*dir, "a", 0755, root).ok());
  control(12, "/memory/a/memory.pressure_level");
  EXPECT_EQ(reg("3 12 low"), 0);
}

TEST_F(EventControlTest, VirtualTasksHaveNoDescriptors) {
  Engine e;
  ASSERT_TRUE(register_builtin_controllers(e).ok());
  auto f = CgroupFs::create(e, "hybrid");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ((*f)->write_path("/memory/cgroup.event_control", "3 4 1M", root).err(), EBADF);
}

}  // namespace
}  // namespace cgcore::fs
