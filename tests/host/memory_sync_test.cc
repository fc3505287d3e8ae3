// MemorySync on a fabricated /proc: each process's RssAnon and VmSwap become
// its memory and swap charges by difference at each pass; swap past
// memory.swap.max is charged anyway (the kernel has swapped already) and
// counts "max" but not "fail". With no effects nothing is enforced, so no
// real process is touched.
#include "host/memory_sync.h"

#include <fstream>

#include "tests/host/host_test_util.h"
#include "tests/support/files.h"

namespace cgcore::host::testing {
namespace {

class MemorySyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = std::make_unique<MemoryController>();
    mem = c.get();
    ASSERT_TRUE(engine.register_controller(std::move(c)).ok());
    ASSERT_FALSE(fake.root().empty());
    ControllerSet s;
    s.set(mem->id());
    Cgroup& root = engine.default_hierarchy().root();
    ASSERT_TRUE(engine.set_subtree_control(root, s, {}).ok());
    a = *engine.mkdir(root, "a");
    auto p = engine.spawn({.pid = kPid});
    ASSERT_TRUE(p.ok()) << p.status().message();
    ASSERT_TRUE(engine.migrate_process(kPid, *a).ok());
    records.note_process(kPid, 100, false);
    records.note_task(kPid, kPid, 100);
    fake.put(kPid, 1, {{kPid, 100}});
  }
  void TearDown() override {
    Status st = engine.check_invariants();
    EXPECT_TRUE(st.ok()) << st.message();
  }
  // The process's status as the kernel writes it, with these sizes in kB
  // (a negative VmSwap: no such line).
  void status(int64_t rss_kb, int64_t swap_kb) {
    std::ofstream o(fake.root() + "/" + std::to_string(kPid) + "/status");
    o << "Name:\tfake\nTgid:\t" << kPid << "\nPid:\t" << kPid << "\nPPid:\t1\nUid:\t0\t0\t0\t0\n"
      << "Gid:\t0\t0\t0\t0\nVmSize:\t   65536 kB\nRssAnon:\t" << rss_kb << " kB\n";
    if (swap_kb >= 0) o << "VmSwap:\t" << swap_kb << " kB\n";
  }
  std::string rd(const char* file) {
    auto r = cgcore::testing::read_file(engine, *a, file);
    return r.ok() ? *r : std::string("<") + errno_name(r.err()) + ">";
  }
  void pass() {
    ProcFs proc(fake.root());
    MemorySync sync(engine, proc, records, mem, nullptr, nullptr, [](const std::string&) {});
    sync.run();
    refused += sync.refused();
  }

  static constexpr Pid kPid = 4242;
  Engine engine;
  MemoryController* mem = nullptr;
  CgroupPtr a;
  ProcessRecords records;
  FakeProc fake;
  int64_t refused = 0;
};

TEST_F(MemorySyncTest, VmSwapIsChargedAsSwapByDifference) {
  status(64, 0);
  pass();
  EXPECT_EQ(rd("memory.current"), "65536\n");
  EXPECT_EQ(rd("memory.swap.current"), "0\n");
  // 16 kB swapped out since: RssAnon shrank, VmSwap grew.
  status(48, 16);
  pass();
  EXPECT_EQ(rd("memory.current"), "49152\n");
  EXPECT_EQ(rd("memory.swap.current"), "16384\n");
  // Swapped in again.
  status(56, 8);
  pass();
  EXPECT_EQ(rd("memory.swap.current"), "8192\n");
  // A status without VmSwap (a kernel thread's) leaves the charge alone.
  status(56, -1);
  pass();
  EXPECT_EQ(rd("memory.swap.current"), "8192\n");
  EXPECT_EQ(refused, 0);
}

TEST_F(MemorySyncTest, SwapPastSwapMaxIsChargedAndCountsMaxOnly) {
  ASSERT_TRUE(cgcore::testing::write_file(engine, *a, "memory.swap.max", "8K").ok());
  status(0, 32);
  pass();
  EXPECT_EQ(rd("memory.swap.current"), "32768\n");
  EXPECT_EQ(rd("memory.swap.events"), "high 0\nmax 1\nfail 0\n");
  EXPECT_EQ(refused, 1);
  status(0, 0);
  pass();
  EXPECT_EQ(rd("memory.swap.current"), "0\n");
  EXPECT_EQ(rd("memory.swap.peak"), "32768\n");
}

}  // namespace
}  // namespace cgcore::host::testing
