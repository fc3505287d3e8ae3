// The memory controller: files and their formats (compared with the host's
// 6.18 cgroup v1 memory controller, see docs/controllers/memory.md), charges
// and limits up the hierarchy, mm->memcg kept in sync through fork / exec /
// exit / migration, charge moving at immigrate with its veto, the
// v2 files, and concurrent charging.
#include "controllers/memory.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "core/migration.h"
#include "tests/support/files.h"
#include "tests/support/test_controller.h"

namespace cgcore::testing {
namespace {

constexpr const char* kUnlimitedText = "9223372036854771712\n";

class MemoryTest : public ::testing::Test {
 protected:
  MemoryTest() {
    auto c = std::make_unique<MemoryController>();
    mem = c.get();
    EXPECT_TRUE(engine.register_controller(std::move(c)).ok());
  }
  void SetUp() override {
    auto h = engine.mount({"memory"}, "");
    ASSERT_TRUE(h.ok()) << h.status().message();
    v1 = *h;
  }
  void TearDown() override { check(); }

  void check() {
    Status st = engine.check_invariants();
    EXPECT_TRUE(st.ok()) << st.message();
  }
  Cgroup& root() { return v1->root(); }
  CgroupPtr mk(Cgroup& parent, const char* name) {
    auto r = engine.mkdir(parent, name);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r.value() : CgroupPtr();
  }
  std::string rd(Cgroup& cg, std::string_view file) {
    auto r = read_file(engine, cg, file);
    if (!r.ok()) return std::string("<") + errno_name(r.err()) + ">";
    return *r;
  }
  int wr(Cgroup& cg, std::string_view file, std::string_view text) {
    return write_file(engine, cg, file, text).err();
  }
  int64_t num(Cgroup& cg, std::string_view file) { return std::stoll(rd(cg, file)); }
  int64_t usage(Cgroup& cg) { return num(cg, "memory.usage_in_bytes"); }
  int64_t failcnt(Cgroup& cg) { return num(cg, "memory.failcnt"); }
  Pid proc(Cgroup* where = nullptr) {
    Pid p = *engine.spawn({});
    if (where) EXPECT_TRUE(engine.migrate_process(p, *where).ok());
    return p;
  }
  MemCss& css(Cgroup& cg) {
    MutexLock l(engine.cgroup_mutex());
    return MemoryController::of(cg.is_root() ? engine.root_css(mem->id()) : *cg.css(mem->id()));
  }
  Css* memcg(Pid pid) {
    auto mm = engine.mm_of(pid);
    return mm.ok() ? (*mm)->slot(mem->mm_slot()) : nullptr;
  }
  int64_t charged(Pid pid) { return (*engine.mm_of(pid))->charged.load(); }
  int64_t charged_in(Pid pid, Cgroup& cg) {
    auto mm = engine.mm_of(pid);
    return mem->charged_in(**mm, css(cg));
  }
  Status charge(Pid pid, int64_t bytes) { return mem->charge(engine, pid, bytes); }
  Status uncharge(Pid pid, int64_t bytes) { return mem->uncharge(engine, pid, bytes); }

  Engine engine;
  MemoryController* mem = nullptr;
  Hierarchy* v1 = nullptr;
};

// ------------------------------------------------------------ files (v1)

TEST_F(MemoryTest, RootFilesAndRootWrites) {
  // Host: the root's limit reads PAGE_COUNTER_MAX pages in bytes; writing it
  // (even "-1") and force_empty there fail with EINVAL.
  EXPECT_EQ(rd(root(), "memory.limit_in_bytes"), kUnlimitedText);
  EXPECT_EQ(rd(root(), "memory.usage_in_bytes"), "0\n");
  EXPECT_EQ(rd(root(), "memory.failcnt"), "0\n");
  EXPECT_EQ(rd(root(), "memory.move_charge_at_immigrate"), "0\n");
  EXPECT_EQ(wr(root(), "memory.limit_in_bytes", "1G"), EINVAL);
  EXPECT_EQ(wr(root(), "memory.limit_in_bytes", "-1"), EINVAL);
  EXPECT_EQ(wr(root(), "memory.force_empty", "1"), EINVAL);
  EXPECT_EQ(wr(root(), "memory.failcnt", "0"), 0);
  EXPECT_EQ(wr(root(), "memory.max_usage_in_bytes", "0"), 0);
  EXPECT_EQ(wr(root(), "memory.move_charge_at_immigrate", "0"), 0);
  EXPECT_EQ(rd(root(), "memory.force_empty"), "<EINVAL>");      // write-only
  EXPECT_EQ(wr(root(), "memory.usage_in_bytes", "0"), EINVAL);  // read-only
  // The v2 files do not exist on a v1 hierarchy.
  EXPECT_EQ(rd(root(), "memory.current"), "<ENOENT>");
  EXPECT_EQ(rd(root(), "memory.max"), "<ENOENT>");
}

TEST_F(MemoryTest, ChildDefaults) {
  auto a = mk(root(), "a");
  EXPECT_EQ(rd(*a, "memory.limit_in_bytes"), kUnlimitedText);
  EXPECT_EQ(rd(*a, "memory.usage_in_bytes"), "0\n");
  EXPECT_EQ(rd(*a, "memory.max_usage_in_bytes"), "0\n");
  EXPECT_EQ(rd(*a, "memory.failcnt"), "0\n");
  EXPECT_EQ(rd(*a, "memory.move_charge_at_immigrate"), "0\n");
}

TEST_F(MemoryTest, LimitParsingMatchesTheHost) {
  auto a = mk(root(), "a");
  // Each pair was written to and read back from a child of the host's
  // /sys/fs/cgroup/memory (kernel 6.18): rounded down to a page, suffixes of
  // either case, C radix prefixes, silent wrap past 2^64, capped at the max.
  const std::pair<const char*, const char*> ok[] = {
      {"5000", "4096"},
      {"4096", "4096"},
      {"4097", "4096"},
      {"8191", "4096"},
      {"5k", "4096"},
      {"5K", "4096"},
      {"1m", "1048576"},
      {"1M", "1048576"},
      {"1g", "1073741824"},
      {"1G", "1073741824"},
      {"1t", "1099511627776"},
      {"1T", "1099511627776"},
      {"1p", "1125899906842624"},
      {"1e", "1152921504606846976"},
      {"-1", "9223372036854771712"},
      {" 8192 ", "8192"},
      {"8192\n", "8192"},
      {"0x1000", "4096"},
      {"010", "0"},
      {"0", "0"},
      {"1", "0"},
      {"18446744073709551615", "9223372036854771712"},
      {"9223372036854775807", "9223372036854771712"},
      {"99999999999999999999", "7766279631452237824"},
      {"-1\n", "9223372036854771712"},
      {" -1", "9223372036854771712"},
      {"\n", "0"},
  };
  for (auto [in, out] : ok) {
    EXPECT_EQ(wr(*a, "memory.limit_in_bytes", in), 0) << in;
    EXPECT_EQ(rd(*a, "memory.limit_in_bytes"), std::string(out) + "\n") << in;
  }
  ASSERT_EQ(wr(*a, "memory.limit_in_bytes", "1M"), 0);
  for (const char* bad : {"-2", "abc", "1kb", "1 k", "1.5k", "+4096"}) {
    EXPECT_EQ(wr(*a, "memory.limit_in_bytes", bad), EINVAL) << bad;
    EXPECT_EQ(rd(*a, "memory.limit_in_bytes"), "1048576\n") << "a failed write changed it";
  }
}

TEST_F(MemoryTest, LimitBelowUsageIsBusy) {
  // Host: a 64 MiB process, no swap: writing 1M fails with EBUSY.
  auto a = mk(root(), "a");
  Pid p = proc(a.get());
  ASSERT_TRUE(charge(p, 8192).ok());
  EXPECT_EQ(wr(*a, "memory.limit_in_bytes", "4096"), EBUSY);
  EXPECT_EQ(rd(*a, "memory.limit_in_bytes"), kUnlimitedText);
  EXPECT_EQ(wr(*a, "memory.limit_in_bytes", "8192"), 0);
  EXPECT_EQ(rd(*a, "memory.limit_in_bytes"), "8192\n");
}

TEST_F(MemoryTest, FailcntAndMaxUsageResetOnAnyWrite) {
  // Host: the kernel does not parse these writes; "5", "abc", "-1" reset too.
  auto a = mk(root(), "a");
  Pid p = proc(a.get());
  ASSERT_EQ(wr(*a, "memory.limit_in_bytes", "8192"), 0);
  ASSERT_TRUE(charge(p, 8192).ok());
  EXPECT_EQ(charge(p, 1).err(), ENOMEM);
  EXPECT_EQ(failcnt(*a), 1);
  ASSERT_TRUE(uncharge(p, 4096).ok());
  EXPECT_EQ(rd(*a, "memory.max_usage_in_bytes"), "8192\n");
  for (const char* text : {"5", "abc", "-1", "0"}) {
    ASSERT_TRUE(charge(p, 4096).ok());
    EXPECT_EQ(charge(p, 4096).err(), ENOMEM);
    EXPECT_EQ(failcnt(*a), text == std::string("5") ? 2 : 1);
    EXPECT_EQ(wr(*a, "memory.failcnt", text), 0);
    EXPECT_EQ(rd(*a, "memory.failcnt"), "0\n");
    ASSERT_TRUE(uncharge(p, 4096).ok());
    EXPECT_EQ(wr(*a, "memory.max_usage_in_bytes", text), 0);
    // The watermark restarts at the current usage.
    EXPECT_EQ(rd(*a, "memory.max_usage_in_bytes"), "4096\n");
    ASSERT_EQ(wr(*a, "memory.failcnt", "0"), 0);
  }
}

TEST_F(MemoryTest, MoveChargeAtImmigrateValues) {
  auto a = mk(root(), "a");
  // The cgroup core parses this u64 file with kstrtoull(base 0) and no
  // stripping (host: " 0 " and "\n" are EINVAL, "00", "0x0", "+0" are fine).
  for (const char* v : {"0", "1", "2", "3", "0\n", "+1", "0x3", "00"}) {
    EXPECT_EQ(wr(*a, "memory.move_charge_at_immigrate", v), 0) << v;
  }
  EXPECT_EQ(rd(*a, "memory.move_charge_at_immigrate"), "0\n");
  ASSERT_EQ(wr(*a, "memory.move_charge_at_immigrate", "3"), 0);
  for (const char* v : {"4", "-1", "abc", " 0 ", "\n", "0x", "1 "}) {
    EXPECT_EQ(wr(*a, "memory.move_charge_at_immigrate", v), EINVAL) << v;
  }
  // Host: a zero-length write is accepted and changes nothing (no handler
  // runs); a lone NUL hands the handler an empty text: EINVAL.
  EXPECT_EQ(wr(*a, "memory.move_charge_at_immigrate", ""), 0);
  EXPECT_EQ(wr(*a, "memory.move_charge_at_immigrate", std::string_view("\0", 1)), EINVAL);
  EXPECT_EQ(wr(*a, "memory.move_charge_at_immigrate", "99999999999999999999"), ERANGE);
  EXPECT_EQ(rd(*a, "memory.move_charge_at_immigrate"), "3\n");
  EXPECT_EQ(wr(root(), "memory.move_charge_at_immigrate", "1"), 0);
  EXPECT_EQ(rd(root(), "memory.move_charge_at_immigrate"), "1\n");
}

TEST_F(MemoryTest, StatFormat) {
  auto a = mk(root(), "a");
  auto b = mk(*a, "b");
  ASSERT_EQ(wr(*a, "memory.limit_in_bytes", "8M"), 0);
  ASSERT_EQ(wr(*b, "memory.limit_in_bytes", "16M"), 0);
  Pid pa = proc(a.get());
  Pid pb = proc(b.get());
  ASSERT_TRUE(charge(pa, 4096).ok());
  ASSERT_TRUE(charge(pb, 3 * 4096).ok());
  EXPECT_EQ(rd(*a, "memory.stat"),
            "cache 0\nrss 4096\nrss_huge 0\nshmem 0\nmapped_file 0\ndirty 0\nwriteback 0\n"
            "inactive_anon 4096\nactive_anon 0\ninactive_file 0\nactive_file 0\nunevictable 0\n"
            "hierarchical_memory_limit 8388608\n"
            "total_cache 0\ntotal_rss 16384\ntotal_rss_huge 0\ntotal_shmem 0\n"
            "total_mapped_file 0\ntotal_dirty 0\ntotal_writeback 0\ntotal_inactive_anon 16384\n"
            "total_active_anon 0\ntotal_inactive_file 0\ntotal_active_file 0\n"
            "total_unevictable 0\n");
  // Host: the hierarchical limit is the smallest on the path.
  std::string sb = rd(*b, "memory.stat");
  EXPECT_NE(sb.find("\nrss 12288\n"), std::string::npos) << sb;
  EXPECT_NE(sb.find("\nhierarchical_memory_limit 8388608\n"), std::string::npos) << sb;
  ASSERT_EQ(wr(*b, "memory.limit_in_bytes", "4M"), 0);
  EXPECT_NE(rd(*b, "memory.stat").find("\nhierarchical_memory_limit 4194304\n"), std::string::npos);
  EXPECT_NE(rd(root(), "memory.stat").find("\ntotal_rss 16384\n"), std::string::npos);
}

// ------------------------------------------------------------ charges

TEST_F(MemoryTest, ChargesGoUpTheHierarchyInWholePages) {
  auto a = mk(root(), "a");
  auto b = mk(*a, "b");
  Pid p = proc(b.get());
  ASSERT_TRUE(charge(p, 1).ok());
  EXPECT_EQ(charged(p), 4096);
  ASSERT_TRUE(charge(p, 5000).ok());
  EXPECT_EQ(charged(p), 4096 + 8192);
  EXPECT_EQ(usage(*b), 12288);
  EXPECT_EQ(usage(*a), 12288);
  EXPECT_EQ(usage(root()), 12288);
  EXPECT_EQ(num(*b, "memory.max_usage_in_bytes"), 12288);
  EXPECT_TRUE(charge(p, 0).ok());
  EXPECT_EQ(charge(p, -1).err(), EINVAL);
  EXPECT_EQ(uncharge(p, -1).err(), EINVAL);
  EXPECT_EQ(uncharge(p, 16384).err(), EINVAL);  // more than it holds
  EXPECT_EQ(charge(4242, 4096).err(), ESRCH);
  ASSERT_TRUE(uncharge(p, 4097).ok());  // rounded up too
  EXPECT_EQ(usage(*b), 4096);
  EXPECT_EQ(usage(root()), 4096);
  EXPECT_EQ(num(*b, "memory.max_usage_in_bytes"), 12288);
  Engine other;
  EXPECT_EQ(mem->charge(other, p, 4096).err(), EINVAL);
}

TEST_F(MemoryTest, FailcntCountsAtTheCgroupWhoseLimitRefused) {
  // Host: parent limit 8M, child 16M, a child process faulting in 64M: the
  // parent's failcnt rose, the child's stayed 0; then child limit 4M: the
  // child's rose.
  auto a = mk(root(), "a");
  auto b = mk(*a, "b");
  ASSERT_EQ(wr(*a, "memory.limit_in_bytes", "8M"), 0);
  ASSERT_EQ(wr(*b, "memory.limit_in_bytes", "16M"), 0);
  Pid p = proc(b.get());
  ASSERT_TRUE(charge(p, 8 << 20).ok());
  Status st = charge(p, 4096);
  EXPECT_EQ(st.err(), ENOMEM);
  EXPECT_NE(st.message().find("cgroup id " + std::to_string(a->id())), std::string::npos)
      << st.message();
  EXPECT_EQ(failcnt(*a), 1);
  EXPECT_EQ(failcnt(*b), 0);
  EXPECT_EQ(usage(*b), 8 << 20);
  EXPECT_EQ(usage(*a), 8 << 20);
  EXPECT_EQ(charged(p), 8 << 20);
  ASSERT_TRUE(uncharge(p, 8 << 20).ok());
  ASSERT_EQ(wr(*b, "memory.limit_in_bytes", "4M"), 0);
  EXPECT_EQ(charge(p, 5 << 20).err(), ENOMEM);
  EXPECT_EQ(failcnt(*a), 1);
  EXPECT_EQ(failcnt(*b), 1);
  EXPECT_EQ(usage(*a), 0);
  // As on the host (child max_usage 8638464 under a parent limited to 8M):
  // the child's watermark saw the page its parent then refused.
  EXPECT_EQ(num(*b, "memory.max_usage_in_bytes"), (8 << 20) + 4096);
}

TEST_F(MemoryTest, ReclaimHookRunsOnceBeforeFailing) {
  auto a = mk(root(), "a");
  ASSERT_EQ(wr(*a, "memory.limit_in_bytes", "8192"), 0);
  Pid victim = proc(a.get());
  Pid p = proc(a.get());
  ASSERT_TRUE(charge(victim, 8192).ok());
  int calls = 0;
  uint64_t seen = 0;
  int64_t wanted = 0;
  mem->set_reclaim_hook([&](Engine& e, uint64_t over, int64_t bytes) {
    ++calls;
    seen = over;
    wanted = bytes;
    {
      MutexLock l(e.cgroup_mutex());  // free to use the engine
      EXPECT_EQ(e.find_cgroup_locked(over), a.get());
    }
    EXPECT_TRUE(mem->uncharge(e, victim, 4096).ok());  // no lock is held here
  });
  EXPECT_TRUE(charge(p, 4000).ok());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen, a->id());
  EXPECT_EQ(wanted, 4096);
  EXPECT_EQ(failcnt(*a), 1);  // the first attempt was refused
  // A hook that frees nothing: still one call, then ENOMEM.
  mem->set_reclaim_hook([&](Engine&, uint64_t, int64_t) { ++calls; });
  EXPECT_EQ(charge(p, 4096).err(), ENOMEM);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(failcnt(*a), 3);
  mem->set_reclaim_hook(nullptr);
  EXPECT_EQ(charge(p, 4096).err(), ENOMEM);
  EXPECT_EQ(calls, 2);
}

// ------------------------------------------------------------ mm->memcg

TEST_F(MemoryTest, NewAddressSpacesPointAtTheForkingTasksMemcg) {
  auto a = mk(root(), "a");
  Pid s = proc();
  EXPECT_EQ(memcg(s), &css(root()));  // spawned: the root's
  Pid p = proc(a.get());
  EXPECT_EQ(memcg(p), &css(*a));
  auto c = engine.fork(p);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(memcg(*c), &css(*a));
  EXPECT_EQ(charged(*c), 0);  // a forked copy has no resident charges
  ASSERT_TRUE(charge(*c, 4096).ok());
  EXPECT_EQ(usage(*a), 4096);
  // A thread and a CLONE_VM child share the address space (and its memcg).
  auto t = engine.clone_thread(p);
  auto v = engine.fork(p, {.share_mm = true});
  ASSERT_TRUE(t.ok() && v.ok());
  ASSERT_TRUE(charge(*t, 4096).ok());
  ASSERT_TRUE(charge(*v, 4096).ok());
  EXPECT_EQ(charged(p), 8192);
  EXPECT_EQ(usage(*a), 12288);
  check();
}

TEST_F(MemoryTest, ForkFromAThreadInAnotherCgroupChargesThatCgroup) {
  auto a = mk(root(), "a");
  auto b = mk(root(), "b");
  Pid p = proc(a.get());
  Pid t = *engine.clone_thread(p);
  ASSERT_TRUE(engine.migrate_thread(t, *b).ok());
  EXPECT_EQ(memcg(p), &css(*a));  // a thread's move leaves the mm alone
  auto c = engine.fork(t);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(memcg(*c), &css(*b));
  ASSERT_TRUE(charge(*c, 4096).ok());
  EXPECT_EQ(usage(*b), 4096);
  EXPECT_EQ(usage(*a), 0);
}

TEST_F(MemoryTest, ExecPointsTheFreshAddressSpaceAtTheTasksMemcg) {
  auto a = mk(root(), "a");
  auto b = mk(root(), "b");
  Pid p = proc(a.get());
  ASSERT_TRUE(charge(p, 8192).ok());
  ASSERT_TRUE(engine.exec(p).ok());
  EXPECT_EQ(usage(*a), 0);  // the old address space went with its charges
  EXPECT_EQ(charged(p), 0);
  EXPECT_EQ(memcg(p), &css(*a));
  // A thread migrated alone and then exec'ing takes its own
  // cgroup's memcg to its new address space.
  Pid t = *engine.clone_thread(p);
  ASSERT_TRUE(charge(p, 4096).ok());
  ASSERT_TRUE(engine.migrate_thread(t, *b).ok());
  EXPECT_EQ(memcg(p), &css(*a));
  ASSERT_TRUE(engine.exec(t).ok());
  EXPECT_EQ(memcg(p), &css(*b));  // t took the process id
  EXPECT_EQ(usage(*a), 0);
  ASSERT_TRUE(charge(p, 4096).ok());
  EXPECT_EQ(usage(*b), 4096);
}

TEST_F(MemoryTest, ExecOfASharedAddressSpaceKeepsItsChargesForTheOtherUser) {
  auto a = mk(root(), "a");
  Pid p = proc(a.get());
  Pid v = *engine.fork(p, {.share_mm = true});
  ASSERT_TRUE(charge(p, 8192).ok());
  ASSERT_TRUE(engine.exec(p).ok());
  EXPECT_EQ(usage(*a), 8192);
  EXPECT_EQ(charged(v), 8192);
  ASSERT_TRUE(engine.exit_process(v).ok());
  EXPECT_EQ(usage(*a), 0);
}

TEST_F(MemoryTest, LastUserExitUnchargesAndLeaderExitChangesNothing) {
  auto a = mk(root(), "a");
  Pid p = proc(a.get());
  Pid t = *engine.clone_thread(p);
  ASSERT_TRUE(charge(p, 8192).ok());
  // The leader exits first: no owner to hand over (no mm->owner), the
  // address space still points at its memcg with its charges.
  ASSERT_TRUE(engine.exit_thread(p).ok());
  EXPECT_EQ(memcg(t), &css(*a));
  EXPECT_EQ(charged(t), 8192);
  EXPECT_EQ(usage(*a), 8192);
  check();
  ASSERT_TRUE(engine.exit_thread(t).ok());
  EXPECT_EQ(usage(*a), 0);
  EXPECT_EQ(usage(root()), 0);
}

TEST_F(MemoryTest, AnAddressSpaceHeldPastItsProcessKeepsItsChargeUntilFreed) {
  auto a = mk(root(), "a");
  Pid p = proc(a.get());
  ASSERT_TRUE(charge(p, 4096).ok());
  {
    auto mm = engine.mm_of(p);
    ASSERT_TRUE(mm.ok());
    ASSERT_TRUE(engine.exit_process(p).ok());
    EXPECT_EQ(usage(*a), 4096);
    EXPECT_EQ(mem->charged_in(**mm, css(*a)), 4096);
  }
  EXPECT_EQ(usage(*a), 0);
}

TEST_F(MemoryTest, OfflineMemcgResolvesToTheNearestOnlineAncestor) {
  auto a = mk(root(), "a");
  auto b = mk(*a, "b");
  auto c = mk(*b, "c");
  Pid p = proc(c.get());
  Pid t = *engine.clone_thread(p);
  ASSERT_TRUE(charge(t, 4096).ok());
  // Leave c's address space pointing at c with nobody in c: the leader
  // exits, the remaining thread (not a leader) moves without the mm.
  ASSERT_TRUE(engine.exit_thread(p).ok());
  ASSERT_TRUE(engine.migrate_process(t, root()).ok());
  Css* c_css = &css(*c);
  EXPECT_EQ(memcg(t), c_css);
  ASSERT_TRUE(engine.rmdir(*c).ok());
  EXPECT_EQ(usage(*b), 4096);  // the charge moved up to b at rmdir
  EXPECT_EQ(charged_in(t, *b), 4096);
  EXPECT_NE(rd(*b, "memory.stat").find("\nrss 4096\n"), std::string::npos);
  EXPECT_EQ(memcg(t), c_css);  // the address space still points at c
  ASSERT_TRUE(engine.rmdir(*b).ok());
  check();
  EXPECT_EQ(usage(*a), 4096);
  ASSERT_TRUE(charge(t, 8192).ok());
  EXPECT_EQ(memcg(t), &css(*a));  // stored: the next lookup is direct
  EXPECT_EQ(usage(*a), 12288);
  EXPECT_EQ(charged_in(t, *a), 12288);
  check();
  ASSERT_TRUE(uncharge(t, 12288).ok());
  EXPECT_EQ(usage(*a), 0);
  EXPECT_EQ(usage(root()), 0);
}

// ------------------------------------------------------------ migration

TEST_F(MemoryTest, ChargesStayBehindWithoutMoveChargeAndUnchargeFindsThem) {
  // Host: a task moved out of a cgroup left its 71 MiB charged there.
  auto a = mk(root(), "a");
  auto b = mk(root(), "b");
  Pid p = proc(a.get());
  ASSERT_TRUE(charge(p, 8192).ok());
  ASSERT_TRUE(engine.migrate_process(p, *b).ok());
  EXPECT_EQ(memcg(p), &css(*b));
  EXPECT_EQ(usage(*a), 8192);
  EXPECT_EQ(usage(*b), 0);
  ASSERT_TRUE(charge(p, 4096).ok());
  EXPECT_EQ(usage(*b), 4096);
  check();
  // Most recently charged first: b, then a.
  ASSERT_TRUE(uncharge(p, 8192).ok());
  EXPECT_EQ(usage(*b), 0);
  EXPECT_EQ(usage(*a), 4096);
  EXPECT_EQ(charged_in(p, *a), 4096);
  // The next charge to a is again the most recent.
  ASSERT_TRUE(engine.migrate_process(p, *a).ok());
  ASSERT_TRUE(charge(p, 4096).ok());
  ASSERT_TRUE(engine.migrate_process(p, *b).ok());
  ASSERT_TRUE(charge(p, 4096).ok());
  ASSERT_TRUE(uncharge(p, 4096).ok());
  EXPECT_EQ(usage(*b), 0);
  EXPECT_EQ(usage(*a), 8192);
  check();
}

TEST_F(MemoryTest, OnlyALeadersMoveSwitchesTheAddressSpace) {
  auto a = mk(root(), "a");
  auto b = mk(root(), "b");
  Pid p = proc(a.get());
  Pid t = *engine.clone_thread(p);
  ASSERT_TRUE(engine.migrate_thread(t, *b).ok());
  EXPECT_EQ(memcg(p), &css(*a));
  ASSERT_TRUE(engine.migrate_thread(p, *b).ok());
  EXPECT_EQ(memcg(p), &css(*b));
  // A CLONE_VM child is a leader of its own process: it takes the shared
  // address space along (cgcore's documented difference from mm->owner).
  Pid v = *engine.fork(p, {.share_mm = true});
  ASSERT_TRUE(engine.migrate_process(v, *a).ok());
  EXPECT_EQ(memcg(p), &css(*a));
}

TEST_F(MemoryTest, MoveChargeAtImmigrateMovesTheSourceCharges) {
  auto a = mk(root(), "a");
  auto b = mk(root(), "b");
  Pid p = proc(a.get());
  Pid q = proc(a.get());
  ASSERT_TRUE(charge(p, 8192).ok());
  ASSERT_TRUE(charge(q, 4096).ok());
  ASSERT_EQ(wr(*b, "memory.move_charge_at_immigrate", "1"), 0);
  ASSERT_TRUE(engine.migrate_process(p, *b).ok());
  EXPECT_EQ(usage(*a), 4096);
  EXPECT_EQ(usage(*b), 8192);
  EXPECT_EQ(charged_in(p, *b), 8192);
  EXPECT_EQ(charged_in(p, *a), 0);
  EXPECT_EQ(memcg(p), &css(*b));
  EXPECT_EQ(num(*b, "memory.max_usage_in_bytes"), 8192);
  check();
  // The bits are the destination's: moving back to a (0) leaves them in b.
  ASSERT_TRUE(engine.migrate_process(p, *a).ok());
  EXPECT_EQ(usage(*b), 8192);
  // Bit 2 alone (file pages) moves nothing: every charge here is anonymous.
  ASSERT_EQ(wr(*b, "memory.move_charge_at_immigrate", "2"), 0);
  ASSERT_TRUE(charge(p, 4096).ok());
  ASSERT_TRUE(engine.migrate_process(p, *b).ok());
  EXPECT_EQ(usage(*a), 8192);
  EXPECT_EQ(usage(*b), 8192);
  // Only what lives in the source moves: p holds 4096 in a (most recent)
  // and 8192 in b; moving from b to a moves the 8192 only.
  ASSERT_EQ(wr(*a, "memory.move_charge_at_immigrate", "3"), 0);
  ASSERT_TRUE(engine.migrate_process(p, *a).ok());
  EXPECT_EQ(usage(*a), 4096 + 4096 + 8192);
  EXPECT_EQ(usage(*b), 0);
  EXPECT_EQ(charged_in(p, *a), 12288);
  check();
}

TEST_F(MemoryTest, ChargesMoveOnlyWhenTheAddressSpacePointsAtTheSource) {
  auto a = mk(root(), "a");
  auto b = mk(root(), "b");
  auto x = mk(root(), "x");
  Pid p = proc(a.get());
  Pid v = *engine.fork(p, {.share_mm = true});  // in a, same address space
  ASSERT_TRUE(charge(p, 8192).ok());
  ASSERT_TRUE(engine.migrate_process(p, *x).ok());  // bits 0: mm -> x
  EXPECT_EQ(memcg(v), &css(*x));
  ASSERT_EQ(wr(*b, "memory.move_charge_at_immigrate", "1"), 0);
  ASSERT_TRUE(engine.migrate_process(v, *b).ok());  // v's source a != x
  EXPECT_EQ(usage(*a), 8192);
  EXPECT_EQ(usage(*b), 0);
  EXPECT_EQ(memcg(v), &css(*b));  // the leader still takes the mm along
  check();
}

TEST_F(MemoryTest, CommonAncestorsAreNotChargedTwiceByAMove) {
  // The kernel precharges the whole destination path, so a parent at its
  // limit refuses moves between its own children; cgcore charges only
  // below the common ancestor, which already counts the bytes.
  auto par = mk(root(), "p");
  auto a = mk(*par, "a");
  auto b = mk(*par, "b");
  ASSERT_EQ(wr(*par, "memory.limit_in_bytes", "8192"), 0);
  ASSERT_EQ(wr(*b, "memory.move_charge_at_immigrate", "1"), 0);
  Pid p = proc(a.get());
  ASSERT_TRUE(charge(p, 8192).ok());
  ASSERT_TRUE(engine.migrate_process(p, *b).ok());
  EXPECT_EQ(usage(*b), 8192);
  EXPECT_EQ(usage(*par), 8192);
  EXPECT_EQ(num(*par, "memory.max_usage_in_bytes"), 8192);
  EXPECT_EQ(failcnt(*par), 0);
  // Up to an ancestor: nothing to precharge at all.
  ASSERT_EQ(wr(*par, "memory.move_charge_at_immigrate", "1"), 0);
  ASSERT_TRUE(engine.migrate_process(p, *par).ok());
  EXPECT_EQ(usage(*b), 0);
  EXPECT_EQ(usage(*par), 8192);
  EXPECT_EQ(charged_in(p, *par), 8192);
}

struct MemSnapshot {
  std::map<const Cgroup*, std::vector<int64_t>> counters;
  std::map<Pid, std::vector<int64_t>> mms;
  std::map<Pid, const Cgroup*> where;
  bool operator==(const MemSnapshot&) const = default;
};

TEST_F(MemoryTest, AVetoedMoveOfSeveralProcessesChangesNothing) {
  auto a = mk(root(), "a");
  auto b = mk(root(), "b");
  ASSERT_EQ(wr(*b, "memory.move_charge_at_immigrate", "1"), 0);
  ASSERT_EQ(wr(*b, "memory.limit_in_bytes", "12288"), 0);
  Pid p1 = proc(a.get());
  Pid p2 = proc(a.get());
  Pid t2 = *engine.clone_thread(p2);
  ASSERT_TRUE(charge(p1, 8192).ok());
  ASSERT_TRUE(charge(p2, 8192).ok());
  auto snap = [&] {
    MemSnapshot s;
    for (Cgroup* cg : {&root(), a.get(), b.get()})
      s.counters[cg] = {usage(*cg), num(*cg, "memory.max_usage_in_bytes"),
                        num(*cg, "memory.limit_in_bytes")};
    for (Pid pid : {p1, p2, t2}) {
      Css* m = memcg(pid);
      s.mms[pid] = {charged(pid), charged_in(pid, *a), charged_in(pid, *b),
                    m == &css(*a)   ? 1
                    : m == &css(*b) ? 2
                                    : 0};
      s.where[pid] = engine.task_cgroup(pid, *v1)->get();
    }
    return s;
  };
  const MemSnapshot before = snap();
  const Pid both[] = {p1, p2};
  Status st = engine.migrate_processes(both, *b);
  EXPECT_EQ(st.err(), ENOMEM) << st.message();
  EXPECT_EQ(snap(), before);
  EXPECT_EQ(failcnt(*b), 1);  // the refusal itself is counted, as the kernel does
  check();
  // Each alone fits.
  ASSERT_TRUE(engine.migrate_process(p1, *b).ok());
  EXPECT_EQ(usage(*b), 8192);
  EXPECT_EQ(engine.migrate_process(p2, *b).err(), ENOMEM);
  EXPECT_EQ(memcg(p2), &css(*a));
}

TEST_F(MemoryTest, AnotherControllersVetoCancelsThePrecharge) {
  // memory and a test controller on one hierarchy; the test controller's
  // can_attach runs after memory's (registration order) and vetoes.
  Engine e2;
  auto m = std::make_unique<MemoryController>();
  MemoryController* mc = m.get();
  auto t = std::make_unique<TestController>("vetoer");
  TestController* tc = t.get();
  ASSERT_TRUE(e2.register_controller(std::move(m)).ok());
  ASSERT_TRUE(e2.register_controller(std::move(t)).ok());
  auto h = e2.mount({"memory", "vetoer"}, "");
  ASSERT_TRUE(h.ok());
  auto a = *e2.mkdir((*h)->root(), "a");
  auto b = *e2.mkdir((*h)->root(), "b");
  ASSERT_TRUE(write_file(e2, *b, "memory.move_charge_at_immigrate", "1").ok());
  Pid p = *e2.spawn({});
  ASSERT_TRUE(e2.migrate_process(p, *a).ok());
  ASSERT_TRUE(mc->charge(e2, p, 8192).ok());
  for (std::atomic<int>* knob : {&tc->veto_attach, &tc->veto_attach_locked}) {
    knob->store(1);
    EXPECT_EQ(e2.migrate_process(p, *b).err(), EACCES);
    EXPECT_EQ(*read_file(e2, *a, "memory.usage_in_bytes"), "8192\n");
    EXPECT_EQ(*read_file(e2, *b, "memory.usage_in_bytes"), "0\n");
    EXPECT_EQ(*read_file(e2, *b, "memory.max_usage_in_bytes"), "0\n");  // precharge undone
    EXPECT_EQ((*e2.mm_of(p))->slot(mc->mm_slot()), [&] {
      MutexLock l(e2.cgroup_mutex());
      return a->css(mc->id());
    }());
    Status st = e2.check_invariants();
    EXPECT_TRUE(st.ok()) << st.message();
  }
  ASSERT_TRUE(e2.migrate_process(p, *b).ok());
  EXPECT_EQ(*read_file(e2, *b, "memory.usage_in_bytes"), "8192\n");
  EXPECT_EQ(*read_file(e2, *a, "memory.usage_in_bytes"), "0\n");
  Status st = e2.check_invariants();
  EXPECT_TRUE(st.ok()) << st.message();
  // A fork refused after memory's can_fork: the new address space's
  // reference to its memcg goes with it (the checker counts them).
  tc->veto_fork = 1;
  EXPECT_EQ(e2.fork(p).err(), EAGAIN);
  EXPECT_EQ(e2.TEST_object_counts().mms, 1);
  st = e2.check_invariants();
  EXPECT_TRUE(st.ok()) << st.message();
}

TEST(MemoryRegistrationTest, AddressSpacesOlderThanTheControllerBelongToTheRoot) {
  Engine engine;
  Pid old = *engine.spawn({});
  Pid old_child = *engine.fork(old, {.share_mm = true});
  auto m = std::make_unique<MemoryController>();
  MemoryController* mem = m.get();
  ASSERT_TRUE(engine.register_controller(std::move(m)).ok());
  EXPECT_EQ((*engine.mm_of(old))->slot(mem->mm_slot()), nullptr);
  ASSERT_TRUE(mem->charge(engine, old_child, 4096).ok());
  Css* root_css = &engine.root_css(mem->id());
  EXPECT_EQ((*engine.mm_of(old))->slot(mem->mm_slot()), root_css);  // resolved and stored
  Cgroup& root = engine.default_hierarchy().root();
  EXPECT_EQ(MemoryController::of(*root_css).local.load(), 4096);
  ControllerSet mine;
  mine.set(mem->id());
  ASSERT_TRUE(engine.set_subtree_control(root, mine, {}).ok());
  auto a = *engine.mkdir(root, "a");
  ASSERT_TRUE(engine.migrate_process(old, *a).ok());
  ASSERT_TRUE(mem->charge(engine, old, 4096).ok());
  EXPECT_EQ(*read_file(engine, *a, "memory.current"), "4096\n");
  ASSERT_TRUE(engine.exit_process(old).ok());
  ASSERT_TRUE(engine.exit_process(old_child).ok());
  EXPECT_EQ(*read_file(engine, *a, "memory.current"), "0\n");
  Status st = engine.check_invariants();
  EXPECT_TRUE(st.ok()) << st.message();
}

TEST_F(MemoryTest, TransferMovesEveryLeadersCharges) {
  auto a = mk(root(), "a");
  auto b = mk(root(), "b");
  ASSERT_EQ(wr(*b, "memory.move_charge_at_immigrate", "1"), 0);
  Pid p = proc(a.get());
  Pid q = proc(a.get());
  Pid v = *engine.fork(p, {.share_mm = true});
  ASSERT_TRUE(charge(p, 8192).ok());
  ASSERT_TRUE(charge(q, 4096).ok());
  ASSERT_TRUE(engine.transfer(*a, *b).ok());
  EXPECT_EQ(usage(*a), 0);
  EXPECT_EQ(usage(*b), 12288);  // the shared address space moved once
  EXPECT_EQ(memcg(v), &css(*b));
  check();
  ASSERT_EQ(wr(*b, "memory.limit_in_bytes", "12288"), 0);
  ASSERT_EQ(wr(*a, "memory.move_charge_at_immigrate", "1"), 0);
  ASSERT_EQ(wr(*a, "memory.limit_in_bytes", "8192"), 0);
  EXPECT_EQ(engine.transfer(*b, *a).err(), ENOMEM);
  EXPECT_EQ(usage(*b), 12288);
  EXPECT_EQ(engine.cgroup_tids(*b).size(), 3u);
}

TEST_F(MemoryTest, ForceEmptyMovesChargesToTheParent) {
  auto par = mk(root(), "p");
  auto a = mk(*par, "a");
  auto c = mk(*a, "c");
  Pid p = proc(a.get());
  Pid q = proc(c.get());
  ASSERT_TRUE(charge(p, 8192).ok());
  ASSERT_TRUE(charge(q, 4096).ok());
  // The 6.18 host reclaims what it can and succeeds even with tasks; cgcore
  // cannot reclaim and, as kernels that moved charges did, refuses.
  EXPECT_EQ(wr(*a, "memory.force_empty", "1"), EBUSY);
  ASSERT_TRUE(engine.migrate_process(p, root()).ok());  // charges stay in a
  EXPECT_EQ(usage(*a), 12288);
  EXPECT_EQ(wr(*a, "memory.force_empty", "anything"), 0);
  EXPECT_EQ(usage(*a), 4096);  // c's charge is c's
  EXPECT_EQ(usage(*par), 12288);
  EXPECT_NE(rd(*par, "memory.stat").find("\nrss 8192\n"), std::string::npos);
  EXPECT_EQ(charged_in(p, *par), 8192);
  check();
  ASSERT_TRUE(uncharge(p, 8192).ok());
  EXPECT_EQ(usage(*par), 4096);
  // The record merges with an existing entry for the parent.
  ASSERT_TRUE(engine.migrate_process(p, *par).ok());
  ASSERT_TRUE(charge(p, 4096).ok());
  ASSERT_TRUE(engine.migrate_process(p, *a).ok());
  ASSERT_TRUE(charge(p, 4096).ok());
  ASSERT_TRUE(engine.migrate_process(p, root()).ok());
  ASSERT_EQ(wr(*a, "memory.force_empty", "1"), 0);
  EXPECT_EQ(charged_in(p, *par), 8192);
  EXPECT_EQ(charged_in(p, *a), 0);
  check();
}

TEST_F(MemoryTest, TheCheckerCatchesAccountingErrors) {
  auto a = mk(root(), "a");
  Pid p = proc(a.get());
  ASSERT_TRUE(charge(p, 4096).ok());
  auto mm = engine.mm_of(p);
  (*mm)->charged.fetch_add(4096);
  Status st = engine.check_invariants();
  EXPECT_EQ(st.err(), EIO);
  EXPECT_NE(st.message().find("Mm::charged"), std::string::npos) << st.message();
  (*mm)->charged.fetch_sub(4096);
  css(*a).local.fetch_add(1);
  st = engine.check_invariants();
  EXPECT_EQ(st.err(), EIO);
  EXPECT_NE(st.message().find("/a"), std::string::npos) << st.message();
  css(*a).local.fetch_sub(1);
}

// ------------------------------------------------------------ cgroup v2

class MemoryV2Test : public ::testing::Test {
 protected:
  MemoryV2Test() {
    auto c = std::make_unique<MemoryController>();
    mem = c.get();
    EXPECT_TRUE(engine.register_controller(std::move(c)).ok());
  }
  void TearDown() override {
    Status st = engine.check_invariants();
    EXPECT_TRUE(st.ok()) << st.message();
  }
  Cgroup& root() { return engine.default_hierarchy().root(); }
  ControllerSet mine() {
    ControllerSet s;
    s.set(mem->id());
    return s;
  }
  std::string rd(Cgroup& cg, std::string_view file) {
    auto r = read_file(engine, cg, file);
    return r.ok() ? *r : std::string("<") + errno_name(r.err()) + ">";
  }
  Engine engine;
  MemoryController* mem = nullptr;
};

TEST_F(MemoryV2Test, FilesAndEvents) {
  ASSERT_TRUE(engine.set_subtree_control(root(), mine(), {}).ok());
  auto a = *engine.mkdir(root(), "a");
  ASSERT_TRUE(engine.set_subtree_control(*a, mine(), {}).ok());
  auto b = *engine.mkdir(*a, "b");
  // Not on the root; v1 files absent.
  EXPECT_EQ(rd(root(), "memory.current"), "<ENOENT>");
  EXPECT_EQ(rd(root(), "memory.max"), "<ENOENT>");
  EXPECT_EQ(rd(*a, "memory.limit_in_bytes"), "<ENOENT>");
  EXPECT_EQ(rd(*a, "memory.move_charge_at_immigrate"), "<ENOENT>");
  EXPECT_EQ(rd(*b, "memory.current"), "0\n");
  EXPECT_EQ(rd(*b, "memory.max"), "max\n");
  EXPECT_EQ(rd(*b, "memory.peak"), "0\n");
  EXPECT_EQ(rd(*b, "memory.events"), "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n");
  EXPECT_TRUE(write_file(engine, *a, "memory.max", "12k\n").ok());
  EXPECT_EQ(rd(*a, "memory.max"), "12288\n");
  EXPECT_EQ(write_file(engine, *a, "memory.max", "-1").err(), EINVAL);
  EXPECT_TRUE(write_file(engine, *a, "memory.max", " max ").ok());
  EXPECT_EQ(rd(*a, "memory.max"), "max\n");
  EXPECT_TRUE(write_file(engine, *a, "memory.max", "9223372036854771712").ok());
  EXPECT_EQ(rd(*a, "memory.max"), "max\n");
  ASSERT_TRUE(write_file(engine, *a, "memory.max", "8192").ok());

  Pid p = *engine.spawn({});
  ASSERT_TRUE(engine.migrate_process(p, *b).ok());
  ASSERT_TRUE(mem->charge(engine, p, 8192).ok());
  EXPECT_EQ(mem->charge(engine, p, 4096).err(), ENOMEM);
  EXPECT_EQ(rd(*b, "memory.current"), "8192\n");
  EXPECT_EQ(rd(*a, "memory.current"), "8192\n");
  EXPECT_EQ(rd(*a, "memory.peak"), "8192\n");
  // Refused by a's limit: hierarchical at a (and its non-root ancestors),
  // local at a only; b saw nothing.
  EXPECT_EQ(rd(*a, "memory.events"), "low 0\nhigh 0\nmax 1\noom 0\noom_kill 0\noom_group_kill 0\n");
  EXPECT_EQ(rd(*a, "memory.events.local"),
            "low 0\nhigh 0\nmax 1\noom 0\noom_kill 0\noom_group_kill 0\n");
  EXPECT_EQ(rd(*b, "memory.events"), "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n");
  ASSERT_TRUE(write_file(engine, *b, "memory.max", "4096").ok());  // below usage: allowed
  EXPECT_EQ(rd(*b, "memory.max"), "4096\n");
  EXPECT_EQ(mem->charge(engine, p, 4096).err(), ENOMEM);
  auto events = [](int max) {
    return "low 0\nhigh 0\nmax " + std::to_string(max) + "\noom 0\noom_kill 0\noom_group_kill 0\n";
  };
  EXPECT_EQ(rd(*b, "memory.events.local"), events(1));
  EXPECT_EQ(rd(*b, "memory.events"), events(1));
  EXPECT_EQ(rd(*a, "memory.events"), events(2));
  EXPECT_EQ(rd(*a, "memory.events.local"), events(1));
  ASSERT_TRUE(mem->uncharge(engine, p, 8192).ok());
  EXPECT_EQ(rd(*a, "memory.current"), "0\n");
}

TEST_F(MemoryV2Test, DisablingTheControllerRehomesAddressSpacesAndKeepsCharges) {
  ASSERT_TRUE(engine.set_subtree_control(root(), mine(), {}).ok());
  auto a = *engine.mkdir(root(), "a");
  ASSERT_TRUE(engine.set_subtree_control(*a, mine(), {}).ok());
  auto b = *engine.mkdir(*a, "b");
  Pid p = *engine.spawn({});
  ASSERT_TRUE(engine.migrate_process(p, *b).ok());
  ASSERT_TRUE(mem->charge(engine, p, 8192).ok());
  Css* a_css;
  {
    MutexLock l(engine.cgroup_mutex());
    a_css = a->css(mem->id());
  }
  ASSERT_TRUE(engine.set_subtree_control(*a, {}, mine()).ok());
  // The leader moved to a's css: the address space followed; the charges
  // b's css held went up to a's when it went offline.
  EXPECT_EQ((*engine.mm_of(p))->slot(mem->mm_slot()), a_css);
  EXPECT_EQ(rd(*a, "memory.current"), "8192\n");
  EXPECT_EQ(mem->charged_in(**engine.mm_of(p), MemoryController::of(*a_css)), 8192);
  Status st = engine.check_invariants();
  EXPECT_TRUE(st.ok()) << st.message();
  ASSERT_TRUE(mem->charge(engine, p, 4096).ok());
  EXPECT_EQ(mem->charged_in(**engine.mm_of(p), MemoryController::of(*a_css)), 12288);
  ASSERT_TRUE(mem->uncharge(engine, p, 12288).ok());
  EXPECT_EQ(rd(*a, "memory.current"), "0\n");
}

// ------------------------------------------------------------ concurrency

// Threshold listeners under concurrent charges: every flip is one signal,
// and flips alternate, so a cgroup back below its threshold has been
// signalled an even number of times; an OOM listener registered meanwhile
// and the removal signal race neither.
TEST_F(MemoryTest, ConcurrentChargesSignalThresholdsInPairs) {
  class Counting final : public EventSink {
   public:
    explicit Counting(std::atomic<int>& n) : n_(n) {}
    void signal() noexcept override { n_.fetch_add(1); }

   private:
    std::atomic<int>& n_;
  };
  auto a = mk(root(), "a");
  std::atomic<int> threshold_hits{0}, oom_hits{0};
  std::unique_ptr<EventSink> sink = std::make_unique<Counting>(threshold_hits);
  MemCss& a_css = css(*a);
  {
    MutexLock l(engine.cgroup_mutex());
    ASSERT_TRUE(mem->listeners().add(a_css, "memory.usage_in_bytes", "64K", sink).ok());
  }
  constexpr int kThreads = 4;
  std::vector<Pid> procs;
  for (int i = 0; i < kThreads; ++i) procs.push_back(proc(a.get()));
  std::vector<std::thread> workers;
  for (int i = 0; i < kThreads; ++i)
    workers.emplace_back([&, i] {
      for (int r = 0; r < 2000; ++r) {
        ASSERT_TRUE(charge(procs[i], 32 << 10).ok());
        ASSERT_TRUE(uncharge(procs[i], 32 << 10).ok());
      }
    });
  {
    std::unique_ptr<EventSink> oom = std::make_unique<Counting>(oom_hits);
    MutexLock l(engine.cgroup_mutex());
    ASSERT_TRUE(mem->listeners().add(a_css, "memory.oom_control", "", oom).ok());
  }
  for (std::thread& t : workers) t.join();
  EXPECT_EQ(usage(*a), 0);
  EXPECT_EQ(threshold_hits.load() % 2, 0) << threshold_hits.load();
  EXPECT_EQ(oom_hits.load(), 0);
  for (Pid p : procs) ASSERT_TRUE(engine.migrate_process(p, root()).ok());
  ASSERT_TRUE(engine.rmdir(*a).ok());
  EXPECT_EQ(oom_hits.load(), 1);
  EXPECT_EQ(threshold_hits.load() % 2, 1);
}

TEST_F(MemoryTest, ConcurrentChargesForksExitsAndMigrations) {
  auto a = mk(root(), "a");
  auto b = mk(root(), "b");
  ASSERT_EQ(wr(*a, "memory.limit_in_bytes", "1M"), 0);
  ASSERT_EQ(wr(*b, "memory.move_charge_at_immigrate", "1"), 0);
  ASSERT_EQ(wr(*a, "memory.move_charge_at_immigrate", "1"), 0);
  constexpr int kThreads = 4;
  std::atomic<bool> stop{false};
  int moved = 0;  // by the mover only
  std::atomic<int64_t> refused{0};
  std::vector<std::thread> workers;
  std::vector<Pid> procs;
  for (int i = 0; i < kThreads; ++i) procs.push_back(proc(i % 2 ? a.get() : b.get()));
  for (int i = 0; i < kThreads; ++i) {
    workers.emplace_back([&, i] {
      Pid p = procs[i];
      for (int n = 0; n < 300; ++n) {
        if (charge(p, 4096 * (1 + n % 7)).ok()) {
          EXPECT_TRUE(uncharge(p, 4096).ok());
        } else {
          ++refused;
        }
        auto c = engine.fork(p, {.share_mm = n % 3 == 0});
        if (c.ok()) {
          (void)charge(*c, 4096);
          EXPECT_TRUE(engine.exit_process(*c).ok());
        }
      }
    });
  }
  std::thread mover([&] {
    for (int n = 0; !stop.load() || n < 100; ++n) {
      if (engine.migrate_process(procs[n % kThreads], n % 2 ? *a : *b).ok()) ++moved;
      Status st = engine.check_invariants();
      // Core checker races (reported to the lead): objects pinned outside
      // the locks it takes — an Mm between ~MmRef's count drop and its
      // free, or exec's fresh Mm counted before exec takes any lock; a Task,
      // its Process and Mm kept by a TaskRef after leaving the id table
      // (whose Mm slots then hold css references the checker cannot see) —
      // make a concurrent check count one too many. They stop that check
      // before the controllers' own; the final check below is exact.
      const std::string& msg = st.message();
      if (msg.find("address spaces leaked") != std::string::npos ||
          msg.find("objects leaked") != std::string::npos ||
          msg.find(" references, expected ") != std::string::npos)
        continue;
      EXPECT_TRUE(st.ok()) << msg;
    }
  });
  for (auto& w : workers) w.join();
  stop = true;
  mover.join();
  EXPECT_GT(moved, 0);
  check();
  for (Pid p : procs) ASSERT_TRUE(engine.exit_process(p).ok());
  EXPECT_EQ(usage(root()), 0);
  EXPECT_EQ(usage(*a), 0);
  EXPECT_EQ(usage(*b), 0);
}

// ------------------------------------------------------------ enforcement (v1)

// Every answer below was taken from the host kernel (6.18, a v1 memory
// cgroup): memory.oom_control is a u64 file (kstrtoull, nothing stripped),
// 0 or 1, EINVAL on the root.
TEST_F(MemoryTest, OomControlFormatAndWritesMatchTheHost) {
  constexpr const char* kClear = "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n";
  constexpr const char* kSet = "oom_kill_disable 1\nunder_oom 0\noom_kill 0\n";
  EXPECT_EQ(rd(root(), "memory.oom_control"), kClear);
  EXPECT_EQ(wr(root(), "memory.oom_control", "1"), EINVAL);
  EXPECT_EQ(wr(root(), "memory.oom_control", "0"), EINVAL);
  auto a = mk(root(), "a");
  EXPECT_EQ(rd(*a, "memory.oom_control"), kClear);
  const std::pair<const char*, int> cases[] = {
      {"1", 0},   {"0", 0},  {"2", EINVAL},    {"-1", EINVAL}, {" 1", EINVAL},
      {"1 ", EINVAL}, {"abc", EINVAL}, {"18446744073709551615", EINVAL},
      {"18446744073709551616", ERANGE}, {"0x1", 0}, {"0", 0}, {"+1", 0}, {"0", 0}, {"01", 0},
      {"0", 0}, {"1\n", 0},
  };
  for (auto [text, err] : cases) EXPECT_EQ(wr(*a, "memory.oom_control", text), err) << text;
  EXPECT_EQ(rd(*a, "memory.oom_control"), kSet);
  // A new cgroup takes its parent's setting (the host kernel does); an
  // existing one keeps its own.
  auto b = mk(*a, "b");
  EXPECT_EQ(rd(*b, "memory.oom_control"), kSet);
  EXPECT_EQ(wr(*a, "memory.oom_control", "0"), 0);
  EXPECT_EQ(rd(*b, "memory.oom_control"), kSet);
  EXPECT_EQ(rd(*mk(*a, "c"), "memory.oom_control"), kClear);
  // v1 has no memory.high / memory.oom.group.
  EXPECT_EQ(rd(*a, "memory.high"), "<ENOENT>");
  EXPECT_EQ(rd(*a, "memory.oom.group"), "<ENOENT>");
}

// force_charge: the memory is in use, so the charge lands past the limit,
// counted as a refused one would be (failcnt at the refusing level); plain
// charges are still refused while usage is over.
TEST_F(MemoryTest, ForceChargePassesTheLimitAndOverLimitsReportsIt) {
  auto a = mk(root(), "a");
  auto b = mk(*a, "b");
  ASSERT_EQ(wr(*a, "memory.limit_in_bytes", "8K"), 0);
  Pid p = proc(b.get());
  bool over = true;
  ASSERT_TRUE(mem->force_charge(engine, p, 4096, &over).ok());
  EXPECT_FALSE(over);
  EXPECT_TRUE(mem->over_limits(engine).empty());
  ASSERT_TRUE(mem->force_charge(engine, p, 3 * 4096 - 100, &over).ok());  // rounded up: 3 pages
  EXPECT_TRUE(over);
  EXPECT_EQ(usage(*a), 16384);
  EXPECT_EQ(usage(*b), 16384);
  EXPECT_EQ(charged(p), 16384);
  EXPECT_EQ(num(*a, "memory.max_usage_in_bytes"), 16384);
  EXPECT_EQ(failcnt(*a), 1);
  EXPECT_EQ(failcnt(*b), 0);
  EXPECT_EQ(charge(p, 4096).err(), ENOMEM);
  EXPECT_EQ(failcnt(*a), 2);
  std::vector<MemoryController::OverLimit> ol = mem->over_limits(engine);
  ASSERT_EQ(ol.size(), 1u);
  EXPECT_EQ(ol[0].cgroup, a->id());
  EXPECT_EQ(ol[0].path, "/a");
  EXPECT_EQ(ol[0].usage, 16384);
  EXPECT_EQ(ol[0].max, 8192);
  EXPECT_TRUE(ol[0].over_max);
  EXPECT_FALSE(ol[0].kill_disabled);
  // Errors as charge.
  EXPECT_EQ(mem->force_charge(engine, 999999, 4096).err(), ESRCH);
  EXPECT_EQ(mem->force_charge(engine, p, -1).err(), EINVAL);
  ASSERT_TRUE(uncharge(p, 8192).ok());
  EXPECT_TRUE(mem->over_limits(engine).empty());
  ASSERT_TRUE(uncharge(p, 8192).ok());
}

TEST_F(MemoryTest, OverLimitsListsTheDeepestFirst) {
  auto a = mk(root(), "a");
  auto b = mk(*a, "b");
  auto c = mk(*b, "c");
  ASSERT_EQ(wr(*a, "memory.limit_in_bytes", "8K"), 0);
  ASSERT_EQ(wr(*c, "memory.limit_in_bytes", "4K"), 0);
  Pid p = proc(c.get());
  ASSERT_TRUE(mem->force_charge(engine, p, 16384).ok());
  // The charge failed first at c (the deepest level over its limit).
  EXPECT_EQ(failcnt(*c), 1);
  EXPECT_EQ(failcnt(*a), 0);
  std::vector<MemoryController::OverLimit> ol = mem->over_limits(engine);
  ASSERT_EQ(ol.size(), 2u);
  EXPECT_EQ(ol[0].path, "/a/b/c");
  EXPECT_EQ(ol[1].path, "/a");
  ASSERT_TRUE(uncharge(p, 16384).ok());
}

// oom_kill_disable: begin_oom refuses the kill, the cgroup and its subtree
// read under_oom 1 (the kernel marks the OOM domain's subtree) until usage
// fits; one OOM is counted however often it is asked. oom_kill counts at
// the victim's own cgroup (on the host a kill in a child leaves the
// parent's oom_control at 0).
TEST_F(MemoryTest, OomKillDisableAndOomCounts) {
  auto a = mk(root(), "a");
  auto b = mk(*a, "b");
  ASSERT_EQ(wr(*a, "memory.limit_in_bytes", "8K"), 0);
  ASSERT_EQ(wr(*a, "memory.oom_control", "1"), 0);
  Pid p = proc(b.get());
  ASSERT_TRUE(mem->force_charge(engine, p, 16384).ok());
  std::vector<MemoryController::OverLimit> ol = mem->over_limits(engine);
  ASSERT_EQ(ol.size(), 1u);
  EXPECT_TRUE(ol[0].kill_disabled);
  EXPECT_FALSE(mem->begin_oom(engine, a->id()));
  EXPECT_FALSE(mem->begin_oom(engine, a->id()));
  EXPECT_EQ(css(*a).events_local[MemCss::kOom].load(), 1);
  EXPECT_EQ(rd(*a, "memory.oom_control"), "oom_kill_disable 1\nunder_oom 1\noom_kill 0\n");
  EXPECT_EQ(rd(*b, "memory.oom_control"), "oom_kill_disable 0\nunder_oom 1\noom_kill 0\n");
  EXPECT_EQ(rd(root(), "memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n");
  // Still over: still under_oom. Fits: over.
  (void)mem->over_limits(engine);
  EXPECT_NE(rd(*a, "memory.oom_control").find("under_oom 1"), std::string::npos);
  ASSERT_TRUE(uncharge(p, 8192).ok());
  EXPECT_TRUE(mem->over_limits(engine).empty());
  EXPECT_EQ(rd(*a, "memory.oom_control"), "oom_kill_disable 1\nunder_oom 0\noom_kill 0\n");
  // Enabled: the OOM may kill; each begin_oom is one more OOM.
  ASSERT_TRUE(mem->force_charge(engine, p, 8192).ok());
  ASSERT_EQ(wr(*a, "memory.oom_control", "0"), 0);
  EXPECT_TRUE(mem->begin_oom(engine, a->id()));
  EXPECT_EQ(css(*a).events_local[MemCss::kOom].load(), 2);
  mem->count_oom_kill(engine, p);
  EXPECT_EQ(rd(*b, "memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n");
  EXPECT_EQ(rd(*a, "memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n");
  // v1 never kills groups.
  auto g = mem->oom_group(engine, p, a->id());
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->cgroup, 0u);
  EXPECT_TRUE(g->tgids.empty());
  // A removed cgroup: nothing to do.
  auto gone = mk(root(), "gone");
  const uint64_t gone_id = gone->id();
  ASSERT_TRUE(engine.rmdir(*gone).ok());
  EXPECT_FALSE(mem->begin_oom(engine, gone_id));
  EXPECT_EQ(mem->oom_candidates(engine, gone_id).err(), ENOENT);
  EXPECT_EQ(mem->oom_group(engine, p, gone_id).err(), ENOENT);
  ASSERT_TRUE(uncharge(p, 16384).ok());
}

TEST_F(MemoryTest, OomCandidatesAreTheSubtreesProcessesLargestFirst) {
  auto a = mk(root(), "a");
  auto b = mk(*a, "b");
  auto other = mk(root(), "other");
  Pid p1 = proc(a.get()), p2 = proc(b.get()), p3 = proc(other.get()), p4 = proc(a.get());
  ASSERT_TRUE(engine.clone_thread(p2).ok());  // a process counts once, whatever its threads
  ASSERT_TRUE(charge(p1, 4096).ok());
  ASSERT_TRUE(charge(p2, 12288).ok());
  ASSERT_TRUE(charge(p3, 65536).ok());
  auto c = mem->oom_candidates(engine, a->id());
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(c->size(), 3u);
  EXPECT_EQ((*c)[0].tgid, p2);
  EXPECT_EQ((*c)[0].bytes, 12288);
  EXPECT_EQ((*c)[1].tgid, p1);
  EXPECT_EQ((*c)[2].tgid, p4);
  EXPECT_EQ((*c)[2].bytes, 0);
  c = mem->oom_candidates(engine, b->id());
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(c->size(), 1u);
  EXPECT_EQ((*c)[0].tgid, p2);
  // Not a cgroup of the memory hierarchy.
  EXPECT_EQ(mem->oom_candidates(engine, engine.default_hierarchy().root().id()).err(), ENOENT);
}

// The enforcement queries run beside chargers (the host's memory pass
// beside fs requests and exits): no race, and the accounts add up.
TEST_F(MemoryTest, EnforcementQueriesRunBesideCharges) {
  auto a = mk(root(), "a");
  auto b = mk(*a, "b");
  ASSERT_EQ(wr(*a, "memory.limit_in_bytes", "16K"), 0);
  constexpr int kThreads = 3;
  std::vector<Pid> pids;
  for (int i = 0; i < kThreads; ++i) pids.push_back(proc(i % 2 ? b.get() : a.get()));
  std::atomic<bool> done{false};
  std::vector<std::thread> chargers;
  for (Pid p : pids)
    chargers.emplace_back([&, p] {
      for (int i = 0; i < 2000; ++i) {
        EXPECT_TRUE(mem->force_charge(engine, p, 8192).ok());
        EXPECT_TRUE(uncharge(p, 8192).ok());
      }
    });
  std::thread enforcer([&] {
    while (!done.load()) {
      for (const MemoryController::OverLimit& o : mem->over_limits(engine)) {
        auto c = mem->oom_candidates(engine, o.cgroup);
        if (c.ok() && !c->empty() && mem->begin_oom(engine, o.cgroup)) {
          (void)mem->oom_group(engine, c->front().tgid, o.cgroup);
          mem->count_oom_kill(engine, c->front().tgid);
        }
      }
      (void)read_file(engine, *a, "memory.oom_control");
      (void)write_file(engine, *b, "memory.oom_control", "1");
      (void)write_file(engine, *b, "memory.oom_control", "0");
    }
  });
  for (std::thread& t : chargers) t.join();
  done.store(true);
  enforcer.join();
  EXPECT_EQ(usage(*a), 0);
}

// ------------------------------------------------------------ enforcement (v2)

// memory.high takes memory.max's format; memory.oom.group is the kernel's
// memory_oom_group_write: strstrip, kstrtoint base 0, 0 or 1 (EINVAL
// otherwise, ERANGE past int). Neither is on the root. (The host binds
// memory to v1: these follow the kernel's source.)
TEST_F(MemoryV2Test, HighAndOomGroupFiles) {
  ASSERT_TRUE(engine.set_subtree_control(root(), mine(), {}).ok());
  auto a = *engine.mkdir(root(), "a");
  EXPECT_EQ(rd(root(), "memory.high"), "<ENOENT>");
  EXPECT_EQ(rd(root(), "memory.oom.group"), "<ENOENT>");
  EXPECT_EQ(rd(*a, "memory.oom_control"), "<ENOENT>");
  EXPECT_EQ(rd(*a, "memory.high"), "max\n");
  EXPECT_EQ(rd(*a, "memory.oom.group"), "0\n");
  const std::pair<const char*, int> high[] = {
      {"1M", 0}, {"max", 0}, {" max\n", 0}, {"5000", 0}, {"-1", EINVAL}, {"abc", EINVAL},
      {"1.5k", EINVAL}, {"1 k", EINVAL}, {"MAX", EINVAL},
  };
  for (auto [text, err] : high) EXPECT_EQ(write_file(engine, *a, "memory.high", text).err(), err) << text;
  EXPECT_EQ(rd(*a, "memory.high"), "4096\n");  // 5000, rounded down to a page
  ASSERT_TRUE(write_file(engine, *a, "memory.high", "1M").ok());
  EXPECT_EQ(rd(*a, "memory.high"), "1048576\n");
  ASSERT_TRUE(write_file(engine, *a, "memory.high", "9223372036854771712").ok());
  EXPECT_EQ(rd(*a, "memory.high"), "max\n");
  const std::pair<const char*, int> group[] = {
      {"1", 0}, {"0", 0}, {"2", EINVAL}, {"-1", EINVAL}, {"abc", EINVAL}, {"1x", EINVAL},
      {"2147483648", ERANGE}, {" 1 \n", 0}, {"0x0", 0}, {"01", 0},
  };
  for (auto [text, err] : group)
    EXPECT_EQ(write_file(engine, *a, "memory.oom.group", text).err(), err) << text;
  EXPECT_EQ(rd(*a, "memory.oom.group"), "1\n");
  // Not inherited by a new cgroup.
  ASSERT_TRUE(engine.set_subtree_control(*a, mine(), {}).ok());
  EXPECT_EQ(rd(**engine.mkdir(*a, "b"), "memory.oom.group"), "0\n");
}

// "high" is counted at each charge that leaves a level above its
// memory.high — there and up its ancestors — and never refuses.
TEST_F(MemoryV2Test, HighCountsEventsAndIsNoLimit) {
  ASSERT_TRUE(engine.set_subtree_control(root(), mine(), {}).ok());
  auto a = *engine.mkdir(root(), "a");
  ASSERT_TRUE(engine.set_subtree_control(*a, mine(), {}).ok());
  auto b = *engine.mkdir(*a, "b");
  ASSERT_TRUE(write_file(engine, *b, "memory.high", "8K").ok());
  Pid p = *engine.spawn({});
  ASSERT_TRUE(engine.migrate_process(p, *b).ok());
  ASSERT_TRUE(mem->charge(engine, p, 8192).ok());
  EXPECT_EQ(rd(*b, "memory.events"), "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n");
  ASSERT_TRUE(mem->charge(engine, p, 4096).ok());
  ASSERT_TRUE(mem->charge(engine, p, 4096).ok());
  EXPECT_EQ(rd(*b, "memory.events"), "low 0\nhigh 2\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n");
  EXPECT_EQ(rd(*b, "memory.events.local"), "low 0\nhigh 2\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n");
  EXPECT_EQ(rd(*a, "memory.events"), "low 0\nhigh 2\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n");
  EXPECT_EQ(rd(*a, "memory.events.local"), "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n");
  std::vector<MemoryController::OverLimit> ol = mem->over_limits(engine);
  ASSERT_EQ(ol.size(), 1u);
  EXPECT_EQ(ol[0].path, "/a/b");
  EXPECT_FALSE(ol[0].over_max);
  EXPECT_EQ(ol[0].high, 8192);
  ASSERT_TRUE(mem->uncharge(engine, p, 16384).ok());
  EXPECT_TRUE(mem->over_limits(engine).empty());
}

// The kernel's mem_cgroup_get_oom_group: from the victim's memory cgroup up
// to the OOM domain, the highest cgroup with oom.group set.
TEST_F(MemoryV2Test, OomGroupIsTheHighestGroupUpToTheDomain) {
  ASSERT_TRUE(engine.set_subtree_control(root(), mine(), {}).ok());
  auto a = *engine.mkdir(root(), "a");
  ASSERT_TRUE(engine.set_subtree_control(*a, mine(), {}).ok());
  auto b = *engine.mkdir(*a, "b");
  ASSERT_TRUE(engine.set_subtree_control(*b, mine(), {}).ok());
  auto c = *engine.mkdir(*b, "c");
  auto e = *engine.mkdir(*b, "e");
  auto d = *engine.mkdir(*a, "d");
  Pid victim = *engine.spawn({}), mate = *engine.spawn({}), cousin = *engine.spawn({});
  ASSERT_TRUE(engine.migrate_process(victim, *c).ok());
  ASSERT_TRUE(engine.migrate_process(mate, *e).ok());
  ASSERT_TRUE(engine.migrate_process(cousin, *d).ok());
  auto group = [&](Cgroup& domain) {
    auto g = mem->oom_group(engine, victim, domain.id());
    EXPECT_TRUE(g.ok());
    return g.ok() ? g->path : std::string("?");
  };
  EXPECT_EQ(group(*a), "");  // none set: the victim alone
  ASSERT_TRUE(write_file(engine, *b, "memory.oom.group", "1").ok());
  EXPECT_EQ(group(*a), "/a/b");
  EXPECT_EQ(group(*c), "");  // the domain is below the group
  ASSERT_TRUE(write_file(engine, *a, "memory.oom.group", "1").ok());
  EXPECT_EQ(group(*a), "/a");
  EXPECT_EQ(group(*b), "/a/b");
  auto g = mem->oom_group(engine, victim, a->id());
  ASSERT_TRUE(g.ok());
  std::vector<Pid> want{victim, mate, cousin};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(g->tgids, want);
  EXPECT_EQ(mem->oom_group(engine, 999999, a->id()).err(), ESRCH);
  // The counters a group kill leaves.
  EXPECT_TRUE(mem->begin_oom(engine, a->id()));
  mem->count_oom_group_kill(engine, a->id());
  for (Pid p : g->tgids) mem->count_oom_kill(engine, p);
  EXPECT_EQ(rd(*a, "memory.events"), "low 0\nhigh 0\nmax 0\noom 1\noom_kill 3\noom_group_kill 1\n");
  EXPECT_EQ(rd(*a, "memory.events.local"), "low 0\nhigh 0\nmax 0\noom 1\noom_kill 0\noom_group_kill 1\n");
  EXPECT_EQ(rd(*b, "memory.events"), "low 0\nhigh 0\nmax 0\noom 0\noom_kill 2\noom_group_kill 0\n");
  EXPECT_EQ(rd(*c, "memory.events.local"), "low 0\nhigh 0\nmax 0\noom 0\noom_kill 1\noom_group_kill 0\n");
}


// ------------------------------------------------------------ swap (v2)

// Records the control files the controller says changed (by cgroup id:
// paths need the cgroup mutex, which may be held at the call).
class FileChanges : public EngineObserver {
 public:
  void file_changed(Cgroup& cgroup, std::string_view file) override {
    std::lock_guard<std::mutex> l(mu);
    seen.emplace_back(cgroup.id(), std::string(file));
  }
  // How often `file` of cgroup `id` was notified; forgets everything seen.
  std::map<std::pair<uint64_t, std::string>, int> take() {
    std::lock_guard<std::mutex> l(mu);
    std::map<std::pair<uint64_t, std::string>, int> out;
    for (auto& e : seen) ++out[e];
    seen.clear();
    return out;
  }
  std::mutex mu;
  std::vector<std::pair<uint64_t, std::string>> seen;
};

std::string swap_events(int high, int max, int fail) {
  return "high " + std::to_string(high) + "\nmax " + std::to_string(max) + "\nfail " +
         std::to_string(fail) + "\n";
}

// root -> a -> b, memory enabled in both levels; p in b.
class MemorySwapTest : public MemoryV2Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(engine.set_subtree_control(root(), mine(), {}).ok());
    a = *engine.mkdir(root(), "a");
    ASSERT_TRUE(engine.set_subtree_control(*a, mine(), {}).ok());
    b = *engine.mkdir(*a, "b");
    p = *engine.spawn({});
    ASSERT_TRUE(engine.migrate_process(p, *b).ok());
    engine.add_observer(&changes);
  }
  void TearDown() override {
    engine.remove_observer(&changes);
    MemoryV2Test::TearDown();
  }
  int wr(Cgroup& cg, std::string_view file, std::string_view text) {
    return write_file(engine, cg, file, text).err();
  }
  MemCss& css(Cgroup& cg) {
    MutexLock l(engine.cgroup_mutex());
    return MemoryController::of(*cg.css(mem->id()));
  }
  int64_t swapped(Pid pid) { return (*engine.mm_of(pid))->swapped.load(); }
  int64_t swapped_in(Pid pid, Cgroup& cg) {
    return mem->swap_charged_in(**engine.mm_of(pid), css(cg));
  }
  Status swap(Pid pid, int64_t bytes) { return mem->charge_swap(engine, pid, bytes); }
  Status unswap(Pid pid, int64_t bytes) { return mem->uncharge_swap(engine, pid, bytes); }

  CgroupPtr a, b;
  Pid p = 0;
  FileChanges changes;
};

// The kernel's OOM badness counts swap entries with resident pages.
TEST_F(MemorySwapTest, OomCandidatesCountSwapWithMemory) {
  Pid q = *engine.spawn({});
  ASSERT_TRUE(engine.migrate_process(q, *b).ok());
  ASSERT_TRUE(mem->charge(engine, p, 8192).ok());
  ASSERT_TRUE(mem->charge(engine, q, 12288).ok());
  ASSERT_TRUE(swap(p, 8192).ok());  // p: 8K resident + 8K swapped
  auto c = mem->oom_candidates(engine, a->id());
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(c->size(), 2u);
  EXPECT_EQ((*c)[0].tgid, p);
  EXPECT_EQ((*c)[0].bytes, 16384);
  EXPECT_EQ((*c)[1].tgid, q);
  EXPECT_EQ((*c)[1].bytes, 12288);
}

// The kernel's swap_files: current, high, max, peak, events on non-root v2
// cgroups; high and max parsed as memory.max is (page_counter_memparse).
TEST_F(MemorySwapTest, FilesDefaultsAndParsing) {
  for (const char* f : {"memory.swap.current", "memory.swap.high", "memory.swap.max",
                        "memory.swap.peak", "memory.swap.events"})
    EXPECT_EQ(rd(root(), f), "<ENOENT>") << f;
  EXPECT_EQ(rd(*b, "memory.swap.current"), "0\n");
  EXPECT_EQ(rd(*b, "memory.swap.high"), "max\n");
  EXPECT_EQ(rd(*b, "memory.swap.max"), "max\n");
  EXPECT_EQ(rd(*b, "memory.swap.peak"), "0\n");
  EXPECT_EQ(rd(*b, "memory.swap.events"), swap_events(0, 0, 0));
  EXPECT_EQ(rd(*b, "memory.swap.events.local"), "<ENOENT>");
  const std::pair<const char*, const char*> ok[] = {
      {"5000", "4096\n"}, {"12k\n", "12288\n"}, {" max ", "max\n"}, {"1M", "1048576\n"},
      {"0x2000", "8192\n"}, {"9223372036854771712", "max\n"}, {"0", "0\n"}, {"", "0\n"},
  };
  const std::pair<const char*, int> bad[] = {
      {"abc", EINVAL}, {"-1", EINVAL}, {"+1", EINVAL}, {"1.5k", EINVAL}, {"1 k", EINVAL},
      {"MAX", EINVAL}, {"1kb", EINVAL},
  };
  for (const char* f : {"memory.swap.max", "memory.swap.high"}) {
    for (auto [text, want] : ok) {
      // A zero-length write never reaches the handler: "" is left out.
      if (!*text) continue;
      EXPECT_EQ(wr(*b, f, text), 0) << f << " " << text;
      EXPECT_EQ(rd(*b, f), want) << f << " " << text;
    }
    ASSERT_EQ(wr(*b, f, "8192"), 0);
    for (auto [text, err] : bad) EXPECT_EQ(wr(*b, f, text), err) << f << " " << text;
    EXPECT_EQ(rd(*b, f), "8192\n") << f << ": a refused write changes nothing";
  }
  // Read-only, as memory.peak and memory.current are.
  EXPECT_EQ(wr(*b, "memory.swap.peak", "0"), EINVAL);
  EXPECT_EQ(wr(*b, "memory.swap.current", "0"), EINVAL);
  EXPECT_EQ(wr(*b, "memory.swap.events", "0"), EINVAL);
}

// __mem_cgroup_try_charge_swap: a refusal counts "max" and "fail" at the
// memcg charged, hierarchically (its non-root ancestors too), whichever
// level refused; memory.swap.events of each is notified.
TEST_F(MemorySwapTest, RefusalCountsMaxAndFailAtTheChargedCgroupAndNotifies) {
  ASSERT_EQ(wr(*a, "memory.swap.max", "8K"), 0);
  ASSERT_TRUE(swap(p, 8192).ok());
  EXPECT_EQ(rd(*b, "memory.swap.current"), "8192\n");
  EXPECT_EQ(rd(*a, "memory.swap.current"), "8192\n");
  EXPECT_EQ(css(*a).swap.usage(), 8192);
  EXPECT_TRUE(changes.take().empty());
  EXPECT_EQ(swap(p, 1).err(), ENOMEM);  // one page, refused by a
  EXPECT_EQ(rd(*b, "memory.swap.events"), swap_events(0, 1, 1));
  EXPECT_EQ(rd(*a, "memory.swap.events"), swap_events(0, 1, 1));
  EXPECT_EQ(rd(*b, "memory.swap.current"), "8192\n");
  EXPECT_EQ(swapped(p), 8192);
  // b's watermark saw the refused page before a said no (level by level).
  EXPECT_EQ(rd(*b, "memory.swap.peak"), "12288\n");
  EXPECT_EQ(rd(*a, "memory.swap.peak"), "8192\n");
  auto seen = changes.take();
  EXPECT_EQ(seen, (std::map<std::pair<uint64_t, std::string>, int>{
                      {{a->id(), "memory.swap.events"}, 2}, {{b->id(), "memory.swap.events"}, 2}}));
  // Memory's own events are untouched.
  EXPECT_EQ(rd(*a, "memory.events"), "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n");
  // Below the usage: stored, no EBUSY; the next charge at b is refused by b.
  ASSERT_EQ(wr(*b, "memory.swap.max", "4096"), 0);
  EXPECT_EQ(rd(*b, "memory.swap.max"), "4096\n");
  ASSERT_EQ(wr(*a, "memory.swap.max", "max"), 0);
  EXPECT_EQ(swap(p, 4096).err(), ENOMEM);
  EXPECT_EQ(rd(*b, "memory.swap.events"), swap_events(0, 2, 2));
  EXPECT_EQ(rd(*a, "memory.swap.events"), swap_events(0, 2, 2));
  EXPECT_EQ(css(*b).swap.failcnt(), 1);  // the counter's own count: the refusing level
  EXPECT_EQ(css(*a).swap.failcnt(), 1);
  ASSERT_TRUE(unswap(p, 8192).ok());
  EXPECT_EQ(rd(*a, "memory.swap.current"), "0\n");
  EXPECT_EQ(swapped(p), 0);
}

// A charge in the root itself counts nothing: the root has no swap.events.
TEST_F(MemorySwapTest, TheRootCountsNoEvents) {
  Pid r = *engine.spawn({});
  ASSERT_TRUE(swap(r, 4096).ok());
  EXPECT_EQ(MemoryController::of(engine.root_css(mem->id())).swap.usage(), 4096);
  EXPECT_TRUE(changes.take().empty());
  ASSERT_TRUE(unswap(r, 4096).ok());
}

// Model: each swap charge that leaves a level above its swap.high counts
// "high" there and up its non-root ancestors; swap.high never refuses.
TEST_F(MemorySwapTest, HighCountsAtEachLevelLeftAboveIt) {
  ASSERT_EQ(wr(*b, "memory.swap.high", "8K"), 0);
  ASSERT_TRUE(swap(p, 8192).ok());  // at high, not above
  EXPECT_EQ(rd(*b, "memory.swap.events"), swap_events(0, 0, 0));
  ASSERT_TRUE(swap(p, 4096).ok());
  ASSERT_TRUE(swap(p, 4096).ok());
  EXPECT_EQ(rd(*b, "memory.swap.events"), swap_events(2, 0, 0));
  EXPECT_EQ(rd(*a, "memory.swap.events"), swap_events(2, 0, 0));
  // a over its own high too: the charge counts for b's level (at b and a)
  // and for a's (at a).
  ASSERT_EQ(wr(*a, "memory.swap.high", "4K"), 0);
  ASSERT_TRUE(swap(p, 4096).ok());
  EXPECT_EQ(rd(*b, "memory.swap.events"), swap_events(3, 0, 0));
  EXPECT_EQ(rd(*a, "memory.swap.events"), swap_events(4, 0, 0));
  auto seen = changes.take();
  EXPECT_EQ((seen[{b->id(), "memory.swap.events"}]), 3);
  EXPECT_EQ((seen[{a->id(), "memory.swap.events"}]), 4);
  EXPECT_EQ(rd(*b, "memory.swap.current"), "20480\n");
}

// Swap and memory are separate accounts: a swap-out is uncharge() then
// charge_swap(); neither moves bytes into the other.
TEST_F(MemorySwapTest, SwapOutIsUnchargeThenChargeSwapAndErrors) {
  ASSERT_TRUE(mem->charge(engine, p, 16384).ok());
  ASSERT_TRUE(mem->uncharge(engine, p, 8192).ok());
  ASSERT_TRUE(swap(p, 8000).ok());  // rounded up to 2 pages
  EXPECT_EQ(rd(*b, "memory.current"), "8192\n");
  EXPECT_EQ(rd(*b, "memory.swap.current"), "8192\n");
  EXPECT_EQ((*engine.mm_of(p))->charged.load(), 8192);
  EXPECT_EQ(swapped(p), 8192);
  EXPECT_EQ(unswap(p, 8193).err(), EINVAL);  // 3 pages, 2 held
  EXPECT_EQ(unswap(p, -1).err(), EINVAL);
  EXPECT_EQ(swap(p, -1).err(), EINVAL);
  EXPECT_EQ(swap(999999, 4096).err(), ESRCH);
  EXPECT_EQ(unswap(999999, 4096).err(), ESRCH);
  EXPECT_EQ(mem->force_charge_swap(engine, 999999, 4096).err(), ESRCH);
  Engine other;
  EXPECT_EQ(mem->charge_swap(other, p, 4096).err(), EINVAL);
  EXPECT_TRUE(swap(p, 0).ok());
  EXPECT_EQ(rd(*b, "memory.swap.current"), "8192\n");
  Status st = engine.check_invariants();
  EXPECT_TRUE(st.ok()) << st.message();
  ASSERT_TRUE(unswap(p, 8192).ok());
  ASSERT_TRUE(mem->uncharge(engine, p, 8192).ok());
}

// The host's case: swapped already, so swap.max does not refuse; passing it
// counts "max" (not "fail") at the charged cgroup and up.
TEST_F(MemorySwapTest, ForcedChargePassesMaxCountingMaxOnly) {
  ASSERT_EQ(wr(*a, "memory.swap.max", "4K"), 0);
  bool over = true;
  ASSERT_TRUE(mem->force_charge_swap(engine, p, 4096, &over).ok());
  EXPECT_FALSE(over);
  ASSERT_TRUE(mem->force_charge_swap(engine, p, 8192, &over).ok());
  EXPECT_TRUE(over);
  EXPECT_EQ(rd(*a, "memory.swap.current"), "12288\n");
  EXPECT_EQ(rd(*a, "memory.swap.peak"), "12288\n");
  EXPECT_EQ(rd(*b, "memory.swap.events"), swap_events(0, 1, 0));
  EXPECT_EQ(rd(*a, "memory.swap.events"), swap_events(0, 1, 0));
  EXPECT_EQ((changes.take()[{b->id(), "memory.swap.events"}]), 1);
  // A plain charge is refused meanwhile.
  EXPECT_EQ(swap(p, 4096).err(), ENOMEM);
  EXPECT_EQ(rd(*b, "memory.swap.events"), swap_events(0, 2, 1));
  ASSERT_TRUE(unswap(p, 12288).ok());
}

// Swap charges stay where they were made when the process moves (v2 never
// moves charges); uncharges take the most recent first; a removed cgroup's
// swap charges go to its parent, which already counted them.
TEST_F(MemorySwapTest, ChargesStayAfterAMoveAndGoToTheParentOnRmdir) {
  auto c = *engine.mkdir(*a, "c");
  ASSERT_TRUE(swap(p, 8192).ok());
  ASSERT_TRUE(engine.migrate_process(p, *c).ok());
  EXPECT_EQ(rd(*b, "memory.swap.current"), "8192\n");
  EXPECT_EQ(rd(*c, "memory.swap.current"), "0\n");
  ASSERT_TRUE(swap(p, 4096).ok());
  EXPECT_EQ(swapped_in(p, *c), 4096);
  EXPECT_EQ(swapped_in(p, *b), 8192);
  ASSERT_TRUE(unswap(p, 8192).ok());  // c's 4096 first, then 4096 of b's
  EXPECT_EQ(swapped_in(p, *c), 0);
  EXPECT_EQ(swapped_in(p, *b), 4096);
  Status st = engine.check_invariants();
  EXPECT_TRUE(st.ok()) << st.message();
  MemCss& b_css = css(*b);
  b_css.get();  // the offline css is looked at after its cgroup is gone
  ASSERT_TRUE(engine.rmdir(*b).ok());
  EXPECT_EQ(swapped_in(p, *a), 4096);
  EXPECT_EQ(b_css.swap.usage(), 0);
  EXPECT_EQ(b_css.swap_local.load(), 0);
  b_css.put();
  EXPECT_EQ(rd(*a, "memory.swap.current"), "4096\n");
  st = engine.check_invariants();
  EXPECT_TRUE(st.ok()) << st.message();
  ASSERT_TRUE(unswap(p, 4096).ok());
  EXPECT_EQ(rd(*a, "memory.swap.current"), "0\n");
}

// An address space that points at a removed cgroup charges swap to the
// nearest online ancestor, as memory does.
TEST_F(MemorySwapTest, AnOfflineMemcgsSwapGoesToTheNearestOnlineAncestor) {
  ASSERT_TRUE(swap(p, 4096).ok());
  // Disabling memory in a's subtree takes b's css offline; p's address
  // space still points at it.
  ASSERT_TRUE(engine.set_subtree_control(*a, {}, mine()).ok());
  ASSERT_TRUE(swap(p, 4096).ok());
  EXPECT_EQ(swapped_in(p, *a), 8192);
  EXPECT_EQ(rd(*a, "memory.swap.current"), "8192\n");
  ASSERT_TRUE(unswap(p, 8192).ok());
}

// mm_release: the last user's exit (or exec) frees the address space and
// its swap with it, wherever the swap lives.
TEST_F(MemorySwapTest, FreeingTheAddressSpaceUnchargesItsSwap) {
  auto c = *engine.mkdir(*a, "c");
  ASSERT_TRUE(swap(p, 8192).ok());
  ASSERT_TRUE(engine.migrate_process(p, *c).ok());
  ASSERT_TRUE(swap(p, 4096).ok());
  ASSERT_TRUE(engine.exec(p).ok());
  EXPECT_EQ(rd(*b, "memory.swap.current"), "0\n");
  EXPECT_EQ(rd(*c, "memory.swap.current"), "0\n");
  EXPECT_EQ(swapped(p), 0);
  ASSERT_TRUE(swap(p, 4096).ok());
  {
    auto mm = engine.mm_of(p);  // held past the exit: freed when dropped
    ASSERT_TRUE(engine.exit_process(p).ok());
    EXPECT_EQ(rd(*c, "memory.swap.current"), "4096\n");
  }
  EXPECT_EQ(rd(*c, "memory.swap.current"), "0\n");
  EXPECT_EQ(rd(*a, "memory.swap.current"), "0\n");
  EXPECT_EQ(MemoryController::of(engine.root_css(mem->id())).swap.usage(), 0);
}

TEST_F(MemorySwapTest, TheCheckerCatchesSwapAccountingErrors) {
  ASSERT_TRUE(swap(p, 4096).ok());
  css(*b).swap_local.fetch_add(4096);
  Status st = engine.check_invariants();
  EXPECT_EQ(st.err(), EIO);
  EXPECT_NE(st.message().find("/a/b: swap"), std::string::npos) << st.message();
  css(*b).swap_local.fetch_sub(4096);
  css(*a).swap.force_charge(4096);  // a's usage no longer its children's
  st = engine.check_invariants();
  EXPECT_EQ(st.err(), EIO);
  EXPECT_NE(st.message().find("/a: swap usage"), std::string::npos) << st.message();
  css(*a).swap.uncharge(4096);  // from a and the root, as force_charge charged
  st = engine.check_invariants();
  EXPECT_TRUE(st.ok()) << st.message();
  ASSERT_TRUE(unswap(p, 4096).ok());
}

// v1 charge moving: bit 1 moves the swap the address space holds in the
// source with its memory (the kernel's v1 moved swap entries with anonymous
// pages); no swap files on v1.
TEST_F(MemoryTest, MoveChargeAtImmigrateMovesSwapWithBit1) {
  auto a = mk(root(), "a");
  auto b = mk(root(), "b");
  EXPECT_EQ(rd(*a, "memory.swap.current"), "<ENOENT>");
  EXPECT_EQ(rd(*a, "memory.swap.max"), "<ENOENT>");
  Pid p = proc(a.get());
  ASSERT_TRUE(mem->charge_swap(engine, p, 8192).ok());  // swap only, no memory
  auto in = [&](Cgroup& cg) { return mem->swap_charged_in(**engine.mm_of(p), css(cg)); };
  // Bit 2 alone: nothing moves.
  ASSERT_EQ(wr(*b, "memory.move_charge_at_immigrate", "2"), 0);
  ASSERT_TRUE(engine.migrate_process(p, *b).ok());
  EXPECT_EQ(in(*a), 8192);
  EXPECT_EQ(css(*a).swap.usage(), 8192);
  ASSERT_TRUE(engine.migrate_process(p, *a).ok());
  ASSERT_EQ(wr(*b, "memory.move_charge_at_immigrate", "1"), 0);
  ASSERT_TRUE(charge(p, 4096).ok());
  ASSERT_TRUE(engine.migrate_process(p, *b).ok());
  EXPECT_EQ(in(*a), 0);
  EXPECT_EQ(in(*b), 8192);
  EXPECT_EQ(css(*a).swap.usage(), 0);
  EXPECT_EQ(css(*b).swap.usage(), 8192);
  EXPECT_EQ(css(*b).swap.watermark(), 8192);
  EXPECT_EQ(css(root()).swap.usage(), 8192);  // the common ancestor keeps it
  EXPECT_EQ(charged_in(p, *b), 4096);
  check();
  ASSERT_TRUE(mem->uncharge_swap(engine, p, 8192).ok());
}

// A vetoed move leaves swap where it was and drops every precharge: a swap
// refusal (a limit only a css rebound from v2 could carry, set here
// directly) undoes the memory part already planned for the same process.
TEST_F(MemoryTest, AVetoedMoveLeavesSwapAndMemoryWhereTheyWere) {
  auto a = mk(root(), "a");
  auto b = mk(root(), "b");
  Pid p = proc(a.get());
  ASSERT_TRUE(charge(p, 4096).ok());
  ASSERT_TRUE(mem->charge_swap(engine, p, 8192).ok());
  ASSERT_EQ(wr(*b, "memory.move_charge_at_immigrate", "1"), 0);
  css(*b).swap.force_limit(4096);
  EXPECT_EQ(engine.migrate_process(p, *b).err(), ENOMEM);
  EXPECT_EQ(usage(*a), 4096);
  EXPECT_EQ(usage(*b), 0);
  EXPECT_EQ(css(*a).swap.usage(), 8192);
  EXPECT_EQ(css(*b).swap.usage(), 0);
  EXPECT_EQ(memcg(p), &css(*a));
  check();
  // A memory refusal: the swap part is never planned.
  css(*b).swap.force_limit(kUnlimited);
  ASSERT_EQ(wr(*b, "memory.limit_in_bytes", "0"), 0);
  EXPECT_EQ(engine.migrate_process(p, *b).err(), ENOMEM);
  EXPECT_EQ(css(*b).swap.usage(), 0);
  EXPECT_EQ(mem->swap_charged_in(**engine.mm_of(p), css(*a)), 8192);
  check();
  ASSERT_EQ(wr(*b, "memory.limit_in_bytes", "-1"), 0);
  ASSERT_TRUE(engine.migrate_process(p, *b).ok());
  EXPECT_EQ(css(*b).swap.usage(), 8192);
  EXPECT_EQ(usage(*b), 4096);
}

// Swap charges, uncharges and moves racing migrations and rmdirs keep the
// accounts whole.
TEST_F(MemoryTest, ConcurrentSwapChargesMovesAndRemovals) {
  auto a = mk(root(), "a");
  auto b = mk(root(), "b");
  ASSERT_EQ(wr(*b, "memory.move_charge_at_immigrate", "1"), 0);
  ASSERT_EQ(wr(*a, "memory.move_charge_at_immigrate", "1"), 0);
  std::vector<Pid> ps;
  for (int i = 0; i < 4; ++i) ps.push_back(proc(a.get()));
  std::atomic<bool> stop{false};
  std::vector<std::thread> chargers;
  for (Pid pid : ps)
    chargers.emplace_back([&, pid] {
      int64_t held = 0;
      while (!stop.load()) {
        if (mem->charge_swap(engine, pid, 4096).ok()) held += 4096;
        if (held >= 8 * 4096 && mem->uncharge_swap(engine, pid, 3 * 4096).ok()) held -= 3 * 4096;
      }
    });
  for (int i = 0; i < 200; ++i) {
    Pid pid = ps[i % ps.size()];
    EXPECT_TRUE(engine.migrate_process(pid, i % 2 ? *a : *b).ok());
    auto tmp = mk(root(), "tmp");
    Pid q = proc(tmp.get());
    EXPECT_TRUE(mem->charge_swap(engine, q, 4096).ok());
    EXPECT_TRUE(engine.migrate_process(q, root()).ok());
    EXPECT_TRUE(engine.rmdir(*tmp).ok());  // q's swap goes to the root
    EXPECT_TRUE(engine.exit_process(q).ok());
  }
  stop.store(true);
  for (std::thread& t : chargers) t.join();
  check();
  int64_t total = 0;
  for (Pid pid : ps) total += (*engine.mm_of(pid))->swapped.load();
  EXPECT_EQ(css(root()).swap.usage(), total);
}

}  // namespace
}  // namespace cgcore::testing
