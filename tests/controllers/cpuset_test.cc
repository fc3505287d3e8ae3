// Tests of the cpuset controller. Expected texts and errnos marked "host" were
// observed on the host kernel (6.18, cgroup v1 cpuset hierarchy, 2 CPUs,
// node 0); v2 expectations follow cgroup-v2.rst and the kernel's source, as
// the host binds cpuset to v1.
#include "controllers/cpuset.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "core/engine.h"
#include "tests/support/files.h"
#include "tests/support/test_controller.h"

namespace cgcore::testing {
namespace {

// The host's shape: nr_cpu_ids 2, CPUs 0-1, node 0, relax levels up to 2.
CpusetTopology HostLike() {
  CpusetTopology t = CpusetTopology::uniform(2, 1);
  t.max_relax_domain_level = 2;
  return t;
}

struct SinkCall {
  Pid tid;
  std::string cpus;
  std::string mems;
};
struct MmCall {
  Pid tgid;
  std::string from;
  std::string to;
};

// An engine with the cpuset controller and a test controller ("alpha",
// which counts tasks and vetoes on demand), both in one v1 hierarchy unless
// `v2`; records every sink call.
class CpusetTest : public ::testing::Test {
 protected:
  explicit CpusetTest(CpusetTopology topo, bool v2 = false) {
    CpusetController::Sinks sinks;
    sinks.affinity = [this](Pid tid, const CpuSet& cpus, const CpuSet& mems,
                            CpusetController::AffinityCause cause) {
      MutexLock l(mu);
      causes[tid] = cause;
      calls.push_back({tid, cpus.to_string(), mems.to_string()});
      last[tid] = {cpus.to_string(), mems.to_string()};
    };
    sinks.mm_migration = [this](Pid tgid, const CpuSet& from, const CpuSet& to) {
      MutexLock l(mu);
      mm_calls.push_back({tgid, from.to_string(), to.to_string()});
    };
    auto c = std::make_unique<CpusetController>(std::move(topo), std::move(sinks));
    auto a = std::make_unique<TestController>("alpha");
    cpuset = c.get();
    alpha = a.get();
    // alpha first: its hooks run before cpuset's, so a cpuset veto cancels it.
    EXPECT_TRUE(engine.register_controller(std::move(a)).ok());
    EXPECT_TRUE(engine.register_controller(std::move(c)).ok());
    if (!v2) {
      auto h = engine.mount({"cpuset", "alpha"}, "");
      EXPECT_TRUE(h.ok()) << h.status().message();
      hier = h.ok() ? h.value() : nullptr;
    } else {
      hier = &engine.default_hierarchy();
    }
  }
  ~CpusetTest() override {
    Status st = engine.check_invariants();
    EXPECT_TRUE(st.ok()) << st.message();
    st = alpha->check_counts(engine);
    EXPECT_TRUE(st.ok()) << st.message();
  }

  Cgroup& root() { return hier->root(); }
  CgroupPtr mk(Cgroup& parent, const char* name) {
    auto r = engine.mkdir(parent, name);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r.value() : CgroupPtr();
  }
  // A cgroup with these sets (v1 files).
  CgroupPtr mkset(Cgroup& parent, const char* name, const char* cpus, const char* mems) {
    CgroupPtr cg = mk(parent, name);
    EXPECT_EQ(wr(*cg, "cpuset.cpus", cpus), 0);
    EXPECT_EQ(wr(*cg, "cpuset.mems", mems), 0);
    return cg;
  }
  std::string rd(Cgroup& cg, std::string_view file) {
    auto r = read_file(engine, cg, file);
    return r.ok() ? r.value() : "<" + std::string(errno_name(r.err())) + ">";
  }
  // 0 or the errno.
  int wr(Cgroup& cg, std::string_view file, std::string_view text) {
    return write_file(engine, cg, file, text).err();
  }
  Pid spawn() {
    auto r = engine.spawn({});
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r.value() : 0;
  }
  Pid spawn_in(Cgroup& cg) {
    Pid p = spawn();
    Status st = engine.migrate_process(p, cg);
    EXPECT_TRUE(st.ok()) << st.message();
    return p;
  }
  std::vector<Pid> tids(const Cgroup& cg) {
    auto v = engine.cgroup_tids(cg);
    std::sort(v.begin(), v.end());
    return v;
  }
  std::vector<SinkCall> take_calls() {
    MutexLock l(mu);
    std::vector<SinkCall> out;
    out.swap(calls);
    return out;
  }
  std::vector<MmCall> take_mm_calls() {
    MutexLock l(mu);
    std::vector<MmCall> out;
    out.swap(mm_calls);
    return out;
  }
  // The calls, as "tid:cpus/mems", sorted.
  static std::vector<std::string> show(const std::vector<SinkCall>& v) {
    std::vector<std::string> out;
    for (const SinkCall& c : v) out.push_back(std::to_string(c.tid) + ":" + c.cpus + "/" + c.mems);
    std::sort(out.begin(), out.end());
    return out;
  }
  static std::string call(Pid tid, const char* cpus, const char* mems) {
    return std::to_string(tid) + ":" + cpus + "/" + mems;
  }
  void expect_ok() {
    Status st = engine.check_invariants();
    EXPECT_TRUE(st.ok()) << st.message();
  }

  Engine engine;
  CpusetController* cpuset = nullptr;
  TestController* alpha = nullptr;
  Hierarchy* hier = nullptr;
  Mutex mu;
  std::vector<SinkCall> calls CG_GUARDED_BY(mu);
  std::vector<MmCall> mm_calls CG_GUARDED_BY(mu);
  std::map<Pid, std::pair<std::string, std::string>> last CG_GUARDED_BY(mu);
  std::map<Pid, CpusetController::AffinityCause> causes CG_GUARDED_BY(mu);
  // Why `tid` got its last sink call.
  CpusetController::AffinityCause cause_of(Pid tid) {
    MutexLock l(mu);
    return causes.at(tid);
  }
};

// v1, 4 CPUs (0-3) and 2 nodes (0-1).
class CpusetV1 : public CpusetTest {
 protected:
  CpusetV1() : CpusetTest(CpusetTopology::uniform(4, 2)) {}
};

// v1 shaped like the host.
class CpusetHost : public CpusetTest {
 protected:
  CpusetHost() : CpusetTest(HostLike()) {}
};

// v2, 4 CPUs and 2 nodes.
class CpusetV2 : public CpusetTest {
 protected:
  CpusetV2() : CpusetTest(CpusetTopology::uniform(4, 2), true) {}
  ControllerSet cpuset_only() {
    ControllerSet s;
    s.set(cpuset->id());
    return s;
  }
  void enable(Cgroup& cg) {
    Status st = engine.set_subtree_control(cg, cpuset_only(), ControllerSet());
    ASSERT_TRUE(st.ok()) << st.message();
  }
};

// ------------------------------------------------------------------ CpuSet

TEST(CpusetSet, FormatsRangesLikeTheKernel) {
  EXPECT_EQ(CpuSet().format(), "\n");
  EXPECT_EQ(CpuSet::Of({0, 1, 2, 3, 5}).format(), "0-3,5\n");
  EXPECT_EQ(CpuSet::Of({0, 2, 4, 5}).to_string(), "0,2,4-5");
  EXPECT_EQ(CpuSet::Range(60, 130).to_string(), "60-130");
  EXPECT_EQ(CpuSet::Range(3, 2).to_string(), "");
  EXPECT_EQ(CpuSet::Of({63, 64}).to_string(), "63-64");
}

TEST(CpusetSet, Operations) {
  CpuSet a = CpuSet::Range(0, 3), b = CpuSet::Of({3, 200});
  EXPECT_TRUE(a.intersects(b));
  EXPECT_FALSE(a.subset_of(b));
  EXPECT_TRUE(CpuSet::Of({3}).subset_of(b));
  EXPECT_TRUE(CpuSet().subset_of(CpuSet()));
  EXPECT_EQ((a & b).to_string(), "3");
  EXPECT_EQ((a | b).to_string(), "0-3,200");
  EXPECT_EQ(b.minus(a).to_string(), "200");
  EXPECT_EQ(b.end(), 201u);
  EXPECT_EQ((a | b).count(), 5u);
  // Equality ignores capacity: a set that grew and shrank equals a small one.
  CpuSet c = CpuSet::Of({1, 500});
  c.reset(500);
  EXPECT_EQ(c, CpuSet::Of({1}));
  EXPECT_TRUE((b & CpuSet::Of({200})) == CpuSet::Of({200}));
  EXPECT_TRUE(b.minus(b).empty());
}

TEST(CpusetSet, ParseErrorsAndEdgeCases) {
  auto err = [](std::string_view t, uint32_t n) { return CpuSet::parse(t, n).err(); };
  auto ok = [](std::string_view t, uint32_t n) {
    auto r = CpuSet::parse(t, n);
    return r.ok() ? r.value().to_string() : std::string("<") + errno_name(r.err()) + ">";
  };
  EXPECT_EQ(ok("", 8), "");
  EXPECT_EQ(ok("0-3,5", 8), "0-3,5");
  EXPECT_EQ(ok("0-7:2/4", 8), "0-1,4-5");
  EXPECT_EQ(ok("N", 8), "7");
  EXPECT_EQ(err("8", 8), ERANGE);
  EXPECT_EQ(err("5,abc", 8), EINVAL);
  EXPECT_EQ(err("9,abc", 8), ERANGE);  // regions are checked in order
  EXPECT_EQ(err("abc,9", 8), EINVAL);
  EXPECT_EQ(err("18446744073709551616", 8), EOVERFLOW);
}

// ------------------------------------------------------------------ host formats

struct WriteCase {
  const char* text;
  int err;
  const char* want;  // the file afterwards when err == 0
};

// Every case was written to a v1 child cpuset on the host (see file comment).
TEST_F(CpusetHost, CpusWritesMatchHost) {
  CgroupPtr a = mk(root(), "a");
  const std::vector<WriteCase> cases = {
      {"0", 0, "0\n"},          {"0-1", 0, "0-1\n"},       {"0,1", 0, "0-1\n"},
      {"0-1,", 0, "0-1\n"},     {"1,", 0, "1\n"},          {",", 0, "\n"},
      {"\n", 0, "\n"},          {" 0 ", 0, "0\n"},         {"0-", EINVAL, ""},
      {"-1", EINVAL, ""},       {"abc", EINVAL, ""},       {"0-1-", EINVAL, ""},
      {"1-0", EINVAL, ""},      {"2", ERANGE, ""},         {"3", ERANGE, ""},
      {"64", ERANGE, ""},       {"4095", ERANGE, ""},      {"4096", ERANGE, ""},
      {"100000", ERANGE, ""},   {"0:1/1", EINVAL, ""},     {"0-1:1/2", 0, "0\n"},
      {"0,,1", 0, "0-1\n"},     {"0 1", 0, "0-1\n"},       {"0\n", 0, "0\n"},
      {"  0-1  \n", 0, "0-1\n"}, {"00", 0, "0\n"},         {"0x1", EINVAL, ""},
      {"1-1", 0, "1\n"},        {"0,0", 0, "0\n"},         {"N", 0, "1\n"},
      {"0-N", 0, "0-1\n"},      {"1-N", 0, "1\n"},         {"0-N:1/2", 0, "0\n"},
      {"0-1:2/2", 0, "0-1\n"},  {"0-1:3/2", EINVAL, ""},   {"0-1:0/2", 0, "\n"},
      {"0-1:1/0", EINVAL, ""},  {"0-1:1/2,1", 0, "0-1\n"}, {"0-1:1/2x", EINVAL, ""},
      {"0\n1", 0, "0\n"},       {"0-1\n", 0, "0-1\n"},     {"99999999999", EOVERFLOW, ""},
      {"4294967295", EINVAL, ""}, {"4294967296", EOVERFLOW, ""},
      {"0-99999999999", EOVERFLOW, ""}, {"1 -1", EINVAL, ""}, {"0 - 1", EINVAL, ""},
      {"0-1 :1/2", EINVAL, ""}, {"0,\t1", 0, "0-1\n"},    {"+1", EINVAL, ""},
      {"1-N:1/1", 0, "1\n"},    {"1-1:1/4294967295", 0, "0-1\n"},
      {"0-1:1/4294967295", 0, "0\n"}, {"1-1:1/4294967294", 0, "1\n"},
      {",0,\n1", 0, "0-1\n"},   {"0,\n1", 0, "0-1\n"},     {"0\n,1", 0, "0\n"},
      {"0 \n1", 0, "0-1\n"},    {"N-N", 0, "1\n"},         {"NN", EINVAL, ""},
      {"0-1:1/2:3", EINVAL, ""}, {"0-1:1", EINVAL, ""},    {"0-1:/2", EINVAL, ""},
      {"0--1", EINVAL, ""},     {"\xa0" "1", 0, "1\n"},    {"0\xa0" "1", 0, "0-1\n"},
      {"0\t", 0, "0\n"},        {"\t0", 0, "0\n"},         {"0\r", 0, "0\n"},
      {"\v1", 0, "1\n"},        {" ", 0, "\n"},            {" \n", 0, "\n"},
  };
  for (const WriteCase& c : cases) {
    ASSERT_EQ(wr(*a, "cpuset.cpus", "1"), 0);
    EXPECT_EQ(wr(*a, "cpuset.cpus", c.text), c.err) << "'" << c.text << "'";
    EXPECT_EQ(rd(*a, "cpuset.cpus"), c.err ? "1\n" : c.want) << "'" << c.text << "'";
    EXPECT_EQ(rd(*a, "cpuset.effective_cpus"), rd(*a, "cpuset.cpus"));
  }
  // The kernel reads a written buffer as a C string (host: "1\0" -> 1).
  EXPECT_EQ(wr(*a, "cpuset.cpus", std::string_view("0\0" "1", 3)), 0);
  EXPECT_EQ(rd(*a, "cpuset.cpus"), "0\n");
}

TEST_F(CpusetHost, MemsWritesMatchHost) {
  CgroupPtr a = mk(root(), "a");
  const std::vector<WriteCase> cases = {
      {"0", 0, "0\n"},           {"1", EINVAL, ""},     {"2", EINVAL, ""},
      {"0-1", EINVAL, ""},       {"abc", EINVAL, ""},   {"0-", EINVAL, ""},
      {"0,", 0, "0\n"},          {"1023", EINVAL, ""},  {"1024", ERANGE, ""},
      {"100000", ERANGE, ""},    {"64", EINVAL, ""},    {"N", EINVAL, ""},
      {"0-N", EINVAL, ""},       {"\n", 0, "\n"},
  };
  for (const WriteCase& c : cases) {
    ASSERT_EQ(wr(*a, "cpuset.mems", "0"), 0);
    EXPECT_EQ(wr(*a, "cpuset.mems", c.text), c.err) << "'" << c.text << "'";
    EXPECT_EQ(rd(*a, "cpuset.mems"), c.err ? "0\n" : c.want) << "'" << c.text << "'";
    EXPECT_EQ(rd(*a, "cpuset.effective_mems"), rd(*a, "cpuset.mems"));
  }
}

TEST_F(CpusetHost, FlagWritesMatchHost) {
  CgroupPtr a = mk(root(), "a");
  const std::vector<WriteCase> cases = {
      {"1", 0, "1\n"},      {"0", 0, "0\n"},      {"2", 0, "1\n"},
      {"-1", EINVAL, ""},   {"abc", EINVAL, ""},  {" 1\n", EINVAL, ""},
      {"01", 0, "1\n"},     {"0x1", 0, "1\n"},    {"+1", 0, "1\n"},
      {"1\n\n", EINVAL, ""}, {"0x", EINVAL, ""},  {"0X1f", 0, "1\n"},
      {"18446744073709551615", 0, "1\n"},         {"18446744073709551616", ERANGE, ""},
      {"08", EINVAL, ""},   {"07", 0, "1\n"},     {"-", EINVAL, ""},
      {"+", EINVAL, ""},    {"1 ", EINVAL, ""},   {"\n", EINVAL, ""},
      {"+0", 0, "0\n"},     {"1\n", 0, "1\n"},
  };
  for (const char* f : {"cpuset.mem_hardwall", "cpuset.memory_migrate", "cpuset.memory_spread_page",
                        "cpuset.memory_spread_slab", "cpuset.sched_load_balance",
                        "cpuset.cpu_exclusive", "cpuset.mem_exclusive"}) {
    for (const WriteCase& c : cases) {
      ASSERT_EQ(wr(*a, f, "0"), 0) << f;
      EXPECT_EQ(wr(*a, f, c.text), c.err) << f << " '" << c.text << "'";
      EXPECT_EQ(rd(*a, f), c.err ? "0\n" : c.want) << f << " '" << c.text << "'";
    }
  }
  EXPECT_EQ(wr(root(), "cpuset.memory_pressure_enabled", "1"), 0);
  EXPECT_EQ(rd(root(), "cpuset.memory_pressure_enabled"), "1\n");
  EXPECT_EQ(wr(root(), "cpuset.memory_pressure_enabled", "x"), EINVAL);
  EXPECT_EQ(rd(root(), "cpuset.memory_pressure_enabled"), "1\n");
  EXPECT_EQ(wr(root(), "cpuset.memory_pressure_enabled", "0"), 0);
  EXPECT_EQ(rd(root(), "cpuset.memory_pressure_enabled"), "0\n");
}

TEST_F(CpusetHost, RelaxDomainLevelMatchesHost) {
  CgroupPtr a = mk(root(), "a");
  const std::vector<WriteCase> cases = {
      {"-1", 0, "-1\n"},   {"0", 0, "0\n"},     {"1", 0, "1\n"},      {"2", 0, "2\n"},
      {"3", EINVAL, ""},   {"5", EINVAL, ""},   {"-2", EINVAL, ""},   {"abc", EINVAL, ""},
      {" 3\n", EINVAL, ""}, {"0x2", 0, "2\n"},  {"010", EINVAL, ""},  {"-1\n", 0, "-1\n"},
      {"-0", 0, "0\n"},    {"+1", 0, "1\n"},    {"--1", EINVAL, ""},  {"-+1", EINVAL, ""},
      {"-9223372036854775808", EINVAL, ""},     {"9223372036854775808", ERANGE, ""},
      {"-0x1", 0, "-1\n"}, {"\n", EINVAL, ""},  {"-", EINVAL, ""},
  };
  for (const WriteCase& c : cases) {
    ASSERT_EQ(wr(*a, "cpuset.sched_relax_domain_level", "1"), 0);
    EXPECT_EQ(wr(*a, "cpuset.sched_relax_domain_level", c.text), c.err) << "'" << c.text << "'";
    EXPECT_EQ(rd(*a, "cpuset.sched_relax_domain_level"), c.err ? "1\n" : c.want)
        << "'" << c.text << "'";
  }
}

TEST_F(CpusetHost, FilesAndDefaultsMatchHost) {
  const std::map<std::string, std::string> root_files = {
      {"cpuset.cpus", "0-1\n"},           {"cpuset.mems", "0\n"},
      {"cpuset.effective_cpus", "0-1\n"}, {"cpuset.effective_mems", "0\n"},
      {"cpuset.cpu_exclusive", "1\n"},    {"cpuset.mem_exclusive", "1\n"},
      {"cpuset.mem_hardwall", "0\n"},     {"cpuset.sched_load_balance", "1\n"},
      {"cpuset.sched_relax_domain_level", "-1\n"},
      {"cpuset.memory_migrate", "0\n"},   {"cpuset.memory_pressure", "0\n"},
      {"cpuset.memory_spread_page", "0\n"}, {"cpuset.memory_spread_slab", "0\n"},
      {"cpuset.memory_pressure_enabled", "0\n"},
  };
  for (const auto& [f, want] : root_files) EXPECT_EQ(rd(root(), f), want) << f;
  CgroupPtr a = mk(root(), "a");
  std::map<std::string, std::string> child_files = root_files;
  child_files.erase("cpuset.memory_pressure_enabled");
  child_files["cpuset.cpus"] = child_files["cpuset.mems"] = "\n";
  child_files["cpuset.effective_cpus"] = child_files["cpuset.effective_mems"] = "\n";
  child_files["cpuset.cpu_exclusive"] = child_files["cpuset.mem_exclusive"] = "0\n";
  for (const auto& [f, want] : child_files) EXPECT_EQ(rd(*a, f), want) << f;
  EXPECT_EQ(rd(*a, "cpuset.memory_pressure_enabled"), "<ENOENT>");
  // v2 names do not exist on v1.
  EXPECT_EQ(rd(*a, "cpuset.cpus.effective"), "<ENOENT>");
  // Read-only files refuse writes (host: EINVAL).
  EXPECT_EQ(wr(*a, "cpuset.memory_pressure", "1"), EINVAL);
  EXPECT_EQ(wr(*a, "cpuset.effective_cpus", "0"), EINVAL);
}

TEST_F(CpusetHost, RootSetsAreReadOnly) {
  // host: EACCES for the same value, another value, and garbage alike.
  for (const char* f : {"cpuset.cpus", "cpuset.mems"})
    for (const char* t : {"0-1", "0", "abc"}) EXPECT_EQ(wr(root(), f, t), EACCES) << f << t;
  EXPECT_EQ(rd(root(), "cpuset.cpus"), "0-1\n");
}

// ------------------------------------------------------------------ v1 rules

TEST_F(CpusetV1, ParentCannotShrinkBelowAChild) {
  CgroupPtr a = mkset(root(), "a", "0-3", "0-1");
  CgroupPtr b = mkset(*a, "b", "1", "1");
  EXPECT_EQ(wr(*a, "cpuset.cpus", "2-3"), EBUSY);  // host: EBUSY
  EXPECT_EQ(wr(*a, "cpuset.mems", "0"), EBUSY);
  EXPECT_EQ(wr(*a, "cpuset.mems", "\n"), EBUSY);
  EXPECT_EQ(rd(*a, "cpuset.cpus"), "0-3\n");
  EXPECT_EQ(rd(*a, "cpuset.mems"), "0-1\n");
  // Dropping what no child uses is fine.
  EXPECT_EQ(wr(*a, "cpuset.cpus", "1-2"), 0);
  EXPECT_EQ(rd(*a, "cpuset.effective_cpus"), "1-2\n");
  EXPECT_EQ(rd(*b, "cpuset.cpus"), "1\n");
}

TEST_F(CpusetV1, ChildMustStayWithinItsParent) {
  CgroupPtr a = mkset(root(), "a", "0-1", "0");
  CgroupPtr b = mk(*a, "b");
  EXPECT_EQ(wr(*b, "cpuset.cpus", "0-2"), EACCES);  // host: EACCES
  EXPECT_EQ(wr(*b, "cpuset.cpus", "2"), EACCES);
  EXPECT_EQ(wr(*b, "cpuset.mems", "1"), EACCES);
  EXPECT_EQ(rd(*b, "cpuset.cpus"), "\n");
  EXPECT_EQ(wr(*b, "cpuset.cpus", "1"), 0);
  // A CPU the machine does not have: ERANGE; one that is offline: EINVAL.
  EXPECT_EQ(wr(*b, "cpuset.cpus", "4"), ERANGE);
  EXPECT_EQ(wr(*b, "cpuset.mems", "2"), EINVAL);
  EXPECT_EQ(wr(*b, "cpuset.mems", "1024"), ERANGE);
  // EBUSY (children) is checked before EACCES (parent), as on the host.
  CgroupPtr c = mkset(*b, "c", "1", "");
  EXPECT_EQ(wr(*b, "cpuset.cpus", "2"), EBUSY);
}

TEST_F(CpusetV1, ExclusiveFlagsNeedAnExclusiveParentAndNoOverlap) {
  CgroupPtr a = mkset(root(), "a", "0-3", "0-1");
  CgroupPtr b = mkset(*a, "b", "0", "0");
  CgroupPtr c = mk(*a, "c");
  // host: EACCES below a non-exclusive parent.
  EXPECT_EQ(wr(*c, "cpuset.cpu_exclusive", "1"), EACCES);
  EXPECT_EQ(wr(*c, "cpuset.mem_exclusive", "1"), EACCES);
  EXPECT_EQ(wr(*a, "cpuset.cpu_exclusive", "1"), 0);  // the root is exclusive
  EXPECT_EQ(wr(*a, "cpuset.mem_exclusive", "1"), 0);
  EXPECT_EQ(wr(*b, "cpuset.cpu_exclusive", "1"), 0);
  // host: EINVAL overlapping an exclusive sibling, either way round.
  EXPECT_EQ(wr(*c, "cpuset.cpus", "0"), EINVAL);
  EXPECT_EQ(wr(*c, "cpuset.cpus", "0-1"), EINVAL);
  EXPECT_EQ(wr(*c, "cpuset.cpus", "1"), 0);
  EXPECT_EQ(wr(*b, "cpuset.cpus", "0-1"), EINVAL);
  // host: EBUSY dropping exclusivity while a child has it.
  EXPECT_EQ(wr(*a, "cpuset.cpu_exclusive", "0"), EBUSY);
  EXPECT_EQ(rd(*a, "cpuset.cpu_exclusive"), "1\n");
  EXPECT_EQ(wr(*b, "cpuset.cpu_exclusive", "0"), 0);
  EXPECT_EQ(wr(*c, "cpuset.cpus", "0-1"), 0);
  EXPECT_EQ(wr(*b, "cpuset.cpu_exclusive", "1"), EINVAL);  // c overlaps now
  EXPECT_EQ(rd(*b, "cpuset.cpu_exclusive"), "0\n");
  // Nodes likewise.
  ASSERT_EQ(wr(*c, "cpuset.mems", "0"), 0);
  EXPECT_EQ(wr(*b, "cpuset.mem_exclusive", "1"), EINVAL);
  ASSERT_EQ(wr(*c, "cpuset.mems", "1"), 0);
  EXPECT_EQ(wr(*b, "cpuset.mem_exclusive", "1"), 0);
  EXPECT_EQ(wr(*c, "cpuset.mems", "0-1"), EINVAL);
  EXPECT_EQ(wr(*a, "cpuset.mem_exclusive", "0"), EBUSY);
  // An exclusive cpuset with no CPUs overlaps nobody (host: OK).
  CgroupPtr d = mk(*a, "d");
  EXPECT_EQ(wr(*d, "cpuset.cpu_exclusive", "1"), 0);
  // The root's flags are writable but validated against its children.
  EXPECT_EQ(wr(root(), "cpuset.cpu_exclusive", "0"), EBUSY);
  EXPECT_EQ(wr(root(), "cpuset.mem_hardwall", "1"), 0);
  EXPECT_EQ(rd(root(), "cpuset.mem_hardwall"), "1\n");
}

TEST_F(CpusetV1, CpusetWithTasksCannotBecomeEmpty) {
  CgroupPtr a = mkset(root(), "a", "0-3", "0-1");
  CgroupPtr b = mkset(*a, "b", "0", "0");
  Pid p = spawn_in(*b);
  EXPECT_EQ(wr(*b, "cpuset.cpus", "\n"), ENOSPC);  // host: ENOSPC
  EXPECT_EQ(wr(*b, "cpuset.mems", "\n"), ENOSPC);
  EXPECT_EQ(rd(*b, "cpuset.cpus"), "0\n");
  EXPECT_EQ(wr(*b, "cpuset.cpus", "1"), 0);
  // A parent whose child holds the task: EBUSY (the child is not within).
  EXPECT_EQ(wr(*a, "cpuset.cpus", "\n"), EBUSY);
  // host: ENOSPC also with an empty child next to the task.
  CgroupPtr g = mk(*b, "g");
  EXPECT_EQ(wr(*b, "cpuset.cpus", "\n"), ENOSPC);
  ASSERT_EQ(wr(*g, "cpuset.cpus", "1"), 0);
  ASSERT_EQ(wr(*g, "cpuset.mems", "0"), 0);
  ASSERT_TRUE(engine.migrate_process(p, *g).ok());
  EXPECT_EQ(wr(*b, "cpuset.cpus", "\n"), EBUSY);
  EXPECT_EQ(wr(*g, "cpuset.cpus", "\n"), ENOSPC);
  // Once the task left, emptying is fine.
  ASSERT_TRUE(engine.migrate_process(p, root()).ok());
  EXPECT_EQ(wr(*g, "cpuset.cpus", "\n"), 0);
}

TEST_F(CpusetV1, AttachToAnEmptyCpusetIsVetoedAndUndone) {
  CgroupPtr src = mkset(root(), "src", "0-1", "0");
  CgroupPtr nocpus = mkset(root(), "nocpus", "", "0");
  CgroupPtr nomems = mkset(root(), "nomems", "2", "");
  CgroupPtr empty = mk(root(), "empty");
  std::vector<Pid> pids = {spawn_in(*src), spawn_in(*src), spawn_in(root())};
  ASSERT_TRUE(engine.clone_thread(pids[0]).ok());
  take_calls();
  const auto src_before = tids(*src);
  const auto root_before = tids(root());
  const int64_t cancels = alpha->nr_cancel_attach.load();
  const int64_t attaches = alpha->nr_attach.load();
  for (Cgroup* dst : {nocpus.get(), nomems.get(), empty.get()}) {
    // host: ENOSPC through cgroup.procs and tasks alike.
    EXPECT_EQ(engine.migrate_processes(pids, *dst).err(), ENOSPC) << dst->id();
    EXPECT_EQ(engine.migrate_thread(pids[0], *dst).err(), ENOSPC);
    EXPECT_EQ(engine.transfer(*src, *dst).err(), ENOSPC);
    EXPECT_TRUE(tids(*dst).empty());
  }
  EXPECT_EQ(tids(*src), src_before);
  EXPECT_EQ(tids(root()), root_before);
  // alpha (same hierarchy) prepared and was cancelled each time; nobody got a
  // placement.
  EXPECT_EQ(alpha->nr_cancel_attach.load() - cancels, 9);
  EXPECT_EQ(alpha->nr_attach.load(), attaches);
  EXPECT_TRUE(take_calls().empty());
  expect_ok();
}

TEST_F(CpusetV1, CloneChildrenCopiesTheParentsSets) {
  CgroupPtr a = mkset(root(), "a", "1-2", "1");
  CgroupPtr plain = mk(*a, "plain");
  EXPECT_EQ(rd(*plain, "cpuset.cpus"), "\n");
  a->set_clone_children(true);  // cgroup.clone_children (a core file)
  CgroupPtr cl = mk(*a, "clone");
  EXPECT_EQ(rd(*cl, "cpuset.cpus"), "1-2\n");
  EXPECT_EQ(rd(*cl, "cpuset.mems"), "1\n");
  EXPECT_EQ(rd(*cl, "cpuset.effective_cpus"), "1-2\n");
  EXPECT_EQ(rd(*cl, "cpuset.effective_mems"), "1\n");
  EXPECT_EQ(rd(*cl, "cpuset.cpu_exclusive"), "0\n");  // host: flags are not copied
  // A task may join the clone at once.
  Pid p = spawn();
  EXPECT_TRUE(engine.migrate_process(p, *cl).ok());
  // host: no cloning next to an exclusive sibling.
  ASSERT_EQ(wr(*a, "cpuset.cpu_exclusive", "1"), 0);
  CgroupPtr x = mkset(*a, "x", "\n", "\n");  // "\n" empties (a zero-length write does nothing)
  ASSERT_EQ(wr(*x, "cpuset.cpu_exclusive", "1"), 0);
  CgroupPtr cl2 = mk(*a, "clone2");
  EXPECT_EQ(rd(*cl2, "cpuset.cpus"), "\n");
  EXPECT_EQ(rd(*cl2, "cpuset.mems"), "\n");
}

TEST_F(CpusetV1, SpreadFlagsAreInheritedOthersStartAtDefaults) {
  CgroupPtr a = mkset(root(), "a", "0-1", "0");
  for (const char* f : {"cpuset.memory_spread_page", "cpuset.memory_spread_slab",
                        "cpuset.memory_migrate", "cpuset.mem_hardwall"})
    ASSERT_EQ(wr(*a, f, "1"), 0);
  ASSERT_EQ(wr(*a, "cpuset.sched_load_balance", "0"), 0);
  ASSERT_EQ(wr(*a, "cpuset.sched_relax_domain_level", "1"), 0);
  CgroupPtr d = mk(*a, "d");
  // host: spread_page 1, spread_slab 1, migrate 0, hardwall 0, slb 1, relax -1
  EXPECT_EQ(rd(*d, "cpuset.memory_spread_page"), "1\n");
  EXPECT_EQ(rd(*d, "cpuset.memory_spread_slab"), "1\n");
  EXPECT_EQ(rd(*d, "cpuset.memory_migrate"), "0\n");
  EXPECT_EQ(rd(*d, "cpuset.mem_hardwall"), "0\n");
  EXPECT_EQ(rd(*d, "cpuset.sched_load_balance"), "1\n");
  EXPECT_EQ(rd(*d, "cpuset.sched_relax_domain_level"), "-1\n");
}

// ------------------------------------------------------------------ affinity

TEST_F(CpusetV1, SinkGetsEveryMoverAndEveryForkedTask) {
  CgroupPtr a = mkset(root(), "a", "1-2", "1");
  Pid p = spawn();
  Result<Pid> t = engine.clone_thread(p);
  ASSERT_TRUE(t.ok());
  take_calls();
  ASSERT_TRUE(engine.migrate_process(p, *a).ok());
  EXPECT_EQ(show(take_calls()),
            (std::vector<std::string>{call(p, "1-2", "1"), call(*t, "1-2", "1")}));
  EXPECT_EQ(cause_of(p), CpusetController::AffinityCause::kMove);
  Result<Pid> child = engine.fork(p);
  ASSERT_TRUE(child.ok());
  EXPECT_EQ(show(take_calls()), std::vector<std::string>{call(*child, "1-2", "1")});
  EXPECT_EQ(cause_of(*child), CpusetController::AffinityCause::kFork);
  Result<Pid> thr = engine.clone_thread(*child);
  ASSERT_TRUE(thr.ok());
  EXPECT_EQ(show(take_calls()), std::vector<std::string>{call(*thr, "1-2", "1")});
  // A spawned task starts in the root, with the online sets.
  Pid s = spawn();
  EXPECT_EQ(show(take_calls()), std::vector<std::string>{call(s, "0-3", "0-1")});
  // v1 re-places a mover even when the sets do not change.
  CgroupPtr b = mkset(root(), "b", "1-2", "1");
  ASSERT_TRUE(engine.migrate_thread(*t, *b).ok());
  EXPECT_EQ(show(take_calls()), std::vector<std::string>{call(*t, "1-2", "1")});
  // The query API agrees.
  EXPECT_EQ(cpuset->effective_cpus_of(engine, *t).value(), CpuSet::Range(1, 2));
  EXPECT_EQ(cpuset->effective_mems_of(engine, s).value(), CpuSet::Range(0, 1));
  EXPECT_EQ(cpuset->effective_cpus_of(engine, 999999).err(), ESRCH);
  // A cpuset built without sinks works the same (nothing to call).
  Engine bare;
  ASSERT_TRUE(bare.register_controller(std::make_unique<CpusetController>(CpusetTopology::uniform(4, 2))).ok());
  Result<Pid> q = bare.spawn({});
  ASSERT_TRUE(q.ok());
  ASSERT_TRUE(bare.fork(*q).ok());
  Result<CgroupPtr> c = bare.mkdir(bare.default_hierarchy().root(), "c");
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(bare.migrate_process(*q, **c).ok());
  EXPECT_TRUE(bare.check_invariants().ok());
}

TEST_F(CpusetV1, SinkGetsTheTasksOfACpusetWhoseSetsChange) {
  CgroupPtr a = mkset(root(), "a", "0-3", "0-1");
  CgroupPtr b = mkset(*a, "b", "1", "0");
  CgroupPtr other = mkset(root(), "other", "0-1", "0");
  Pid pa = spawn_in(*a);
  Result<Pid> ta = engine.clone_thread(pa);
  ASSERT_TRUE(ta.ok());
  Pid pb = spawn_in(*b);
  Pid po = spawn_in(*other);
  take_calls();
  ASSERT_EQ(wr(*a, "cpuset.cpus", "1-2"), 0);
  EXPECT_EQ(show(take_calls()),
            (std::vector<std::string>{call(pa, "1-2", "0-1"), call(*ta, "1-2", "0-1")}));
  ASSERT_EQ(wr(*b, "cpuset.mems", "1"), 0);
  EXPECT_EQ(show(take_calls()), std::vector<std::string>{call(pb, "1", "1")});
  // Same value, failed write, flag write: nobody is told anything.
  ASSERT_EQ(wr(*a, "cpuset.cpus", "2,1"), 0);
  ASSERT_EQ(wr(*a, "cpuset.cpus", "5"), ERANGE);
  ASSERT_EQ(wr(*a, "cpuset.mem_hardwall", "1"), 0);
  EXPECT_TRUE(take_calls().empty());
  (void)po;
}

// ------------------------------------------------------------------ memory_migrate

TEST_F(CpusetV1, MemoryMigrateMovesTheAddressSpaceWithTheLeader) {
  CgroupPtr a = mkset(root(), "a", "0-1", "0");
  CgroupPtr b = mkset(root(), "b", "0-1", "1");
  CgroupPtr c = mkset(root(), "c", "0-1", "1");
  Pid p = spawn_in(*a);
  Result<Pid> t = engine.clone_thread(p);
  ASSERT_TRUE(t.ok());
  take_mm_calls();
  const uint64_t n0 = cpuset->nr_mm_migrations();
  // Without memory_migrate on the destination nothing is migrated.
  ASSERT_TRUE(engine.migrate_process(p, *c).ok());
  EXPECT_TRUE(take_mm_calls().empty());
  ASSERT_TRUE(engine.migrate_process(p, *a).ok());
  ASSERT_EQ(wr(*b, "cpuset.memory_migrate", "1"), 0);
  // A thread alone does not take the address space along.
  ASSERT_TRUE(engine.migrate_thread(*t, *b).ok());
  EXPECT_TRUE(take_mm_calls().empty());
  // The leader does: once per process, from the old nodes to the new.
  ASSERT_TRUE(engine.migrate_process(p, *b).ok());
  auto mm = take_mm_calls();
  ASSERT_EQ(mm.size(), 1u);
  EXPECT_EQ(mm[0].tgid, p);
  EXPECT_EQ(mm[0].from, "0");
  EXPECT_EQ(mm[0].to, "1");
  EXPECT_EQ(cpuset->nr_mm_migrations() - n0, 1u);
  // Changing the nodes of a memory_migrate cpuset migrates its processes.
  Pid q = spawn_in(*b);
  mm = take_mm_calls();
  ASSERT_EQ(mm.size(), 1u);  // q came from the root (nodes 0-1) to node 1
  EXPECT_EQ(mm[0].from, "0-1");
  ASSERT_EQ(wr(*b, "cpuset.mems", "0-1"), 0);
  mm = take_mm_calls();
  ASSERT_EQ(mm.size(), 2u);
  std::sort(mm.begin(), mm.end(), [](const MmCall& x, const MmCall& y) { return x.tgid < y.tgid; });
  EXPECT_EQ(mm[0].tgid, std::min(p, q));
  EXPECT_EQ(mm[1].tgid, std::max(p, q));
  EXPECT_EQ(mm[0].from, "1");
  EXPECT_EQ(mm[0].to, "0-1");
  // Same nodes: nothing to migrate.
  CgroupPtr d = mkset(root(), "d", "0", "0-1");
  ASSERT_EQ(wr(*d, "cpuset.memory_migrate", "1"), 0);
  ASSERT_TRUE(engine.migrate_process(q, *d).ok());
  EXPECT_TRUE(take_mm_calls().empty());
}

// ------------------------------------------------------------------ hotplug

TEST_F(CpusetV1, HotUnplugMovesTasksToTheNearestAncestorWithCpus) {
  CgroupPtr a = mkset(root(), "a", "2-3", "0-1");
  CgroupPtr b = mkset(*a, "b", "3", "0");
  CgroupPtr c = mkset(*b, "c", "3", "0");
  CgroupPtr keep = mkset(*a, "keep", "2-3", "1");
  Pid pb = spawn_in(*b);
  Result<Pid> tb = engine.clone_thread(pb);
  ASSERT_TRUE(tb.ok());
  Pid pc = spawn_in(*c);
  Pid pk = spawn_in(*keep);
  Pid pr = spawn();
  take_calls();
  ASSERT_TRUE(cpuset->set_online(engine, CpuSet::Range(0, 2), CpuSet::Range(0, 1)).ok());
  EXPECT_EQ(rd(root(), "cpuset.cpus"), "0-2\n");
  EXPECT_EQ(rd(root(), "cpuset.effective_cpus"), "0-2\n");
  EXPECT_EQ(rd(*a, "cpuset.cpus"), "2\n");
  EXPECT_EQ(rd(*b, "cpuset.cpus"), "\n");
  EXPECT_EQ(rd(*c, "cpuset.cpus"), "\n");
  EXPECT_EQ(rd(*keep, "cpuset.cpus"), "2\n");
  EXPECT_TRUE(tids(*b).empty());
  EXPECT_TRUE(tids(*c).empty());
  std::vector<Pid> want = {pb, *tb, pc};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(tids(*a), want);
  EXPECT_EQ(tids(*keep), std::vector<Pid>{pk});
  EXPECT_EQ(show(take_calls()),
            (std::vector<std::string>{call(pb, "2", "0-1"), call(*tb, "2", "0-1"),
                                      call(pc, "2", "0-1"), call(pk, "2", "1"),
                                      call(pr, "0-2", "0-1")}));
  // The CPU comes back: the root follows, v1 cpusets do not regain it.
  ASSERT_TRUE(cpuset->set_online(engine, CpuSet::Range(0, 3), CpuSet::Range(0, 1)).ok());
  EXPECT_EQ(rd(root(), "cpuset.cpus"), "0-3\n");
  EXPECT_EQ(rd(*a, "cpuset.cpus"), "2\n");
  EXPECT_EQ(show(take_calls()), std::vector<std::string>{call(pr, "0-3", "0-1")});
  // Nodes go the same way.
  ASSERT_TRUE(cpuset->set_online(engine, CpuSet::Range(0, 3), CpuSet::Of({0})).ok());
  EXPECT_EQ(rd(*keep, "cpuset.mems"), "\n");
  EXPECT_EQ(rd(*a, "cpuset.mems"), "0\n");
  EXPECT_EQ(tids(*keep), std::vector<Pid>{});
  EXPECT_EQ(engine.task_cgroup(pk, *hier).value().get(), a.get());
  expect_ok();
}

TEST_F(CpusetV1, HotUnplugTransferIsAllOrNothing) {
  CgroupPtr a = mkset(root(), "a", "0-3", "0-1");
  CgroupPtr b = mkset(*a, "b", "3", "0");
  std::vector<Pid> pids = {spawn_in(*b), spawn_in(*b), spawn_in(*b)};
  ASSERT_TRUE(engine.clone_thread(pids[1]).ok());
  const auto before = tids(*b);
  const int64_t cancels = alpha->nr_cancel_attach.load();
  take_calls();
  // Both controllers prepare, then alpha vetoes under the css_set lock.
  alpha->veto_attach_locked = 1;
  alpha->veto_errno = EAGAIN;
  Status st = cpuset->set_online(engine, CpuSet::Range(0, 2), CpuSet::Range(0, 1));
  EXPECT_EQ(st.err(), EAGAIN) << st.message();
  // Every task stayed (none moved), the online sets were applied anyway.
  EXPECT_EQ(tids(*b), before);
  EXPECT_EQ(alpha->nr_cancel_attach.load(), cancels + 1);
  EXPECT_TRUE(take_calls().empty());  // nobody was placed
  EXPECT_EQ(rd(*b, "cpuset.cpus"), "\n");
  EXPECT_EQ(rd(root(), "cpuset.cpus"), "0-2\n");
  expect_ok();  // a stranded cpuset may hold tasks
  // New tasks cannot join it; the user can give it CPUs again.
  Pid p = spawn();
  EXPECT_EQ(engine.migrate_process(p, *b).err(), ENOSPC);
  EXPECT_EQ(wr(*b, "cpuset.cpus", "2"), 0);
  EXPECT_TRUE(engine.migrate_process(p, *b).ok());
  // A later unplug moves everything in one go.
  ASSERT_TRUE(cpuset->set_online(engine, CpuSet::Range(0, 1), CpuSet::Range(0, 1)).ok());
  EXPECT_TRUE(tids(*b).empty());
  EXPECT_EQ(tids(*a).size(), before.size() + 1);
}

TEST_F(CpusetV1, SetOnlineRejectsImpossibleSets) {
  CgroupPtr a = mkset(root(), "a", "1", "1");
  EXPECT_EQ(cpuset->set_online(engine, CpuSet(), CpuSet::Of({0})).err(), EINVAL);
  EXPECT_EQ(cpuset->set_online(engine, CpuSet::Of({0}), CpuSet()).err(), EINVAL);
  EXPECT_EQ(cpuset->set_online(engine, CpuSet::Of({4}), CpuSet::Of({0})).err(), ERANGE);
  EXPECT_EQ(cpuset->set_online(engine, CpuSet::Of({0}), CpuSet::Of({2})).err(), EINVAL);
  Engine other;
  EXPECT_EQ(cpuset->set_online(other, CpuSet::Of({0}), CpuSet::Of({0})).err(), EINVAL);
  EXPECT_EQ(rd(root(), "cpuset.cpus"), "0-3\n");
  EXPECT_EQ(rd(*a, "cpuset.cpus"), "1\n");
  EXPECT_EQ(cpuset->topology().online_cpus, CpuSet::Range(0, 3));
}

TEST(CpusetTopologyTest, HostTopologyIsSane) {
  CpusetTopology t = CpusetTopology::host();
  EXPECT_FALSE(t.online_cpus.empty());
  EXPECT_LE(t.online_cpus.end(), t.nr_cpu_ids);
  EXPECT_FALSE(t.online_mems.empty());
  EXPECT_TRUE(t.online_mems.subset_of(t.possible_mems));
  // Normalisation repairs a contradictory topology.
  CpusetTopology bad;
  bad.nr_cpu_ids = 1;
  bad.online_cpus = CpuSet::Range(0, 7);
  bad.online_mems = CpuSet();
  CpusetController c(bad);
  EXPECT_EQ(c.topology().nr_cpu_ids, 8u);
  EXPECT_EQ(c.topology().online_mems, CpuSet::Of({0}));
}

// The root's allowed sets follow the hierarchy kind (the kernel's bind):
// v1 the online CPUs, v2 every possible one.
TEST(CpusetBind, RootAllowsOnlineCpusInV1AndPossibleOnesInV2) {
  CpusetTopology t = CpusetTopology::uniform(4, 1);
  t.nr_cpu_ids = 8;  // CPUs 4-7 exist but are offline
  Engine e;
  auto c = std::make_unique<CpusetController>(t);
  ASSERT_TRUE(e.register_controller(std::move(c)).ok());
  {
    auto h = e.mount({"cpuset"}, "");
    ASSERT_TRUE(h.ok());
    EXPECT_EQ(read_file(e, (*h)->root(), "cpuset.cpus").value(), "0-3\n");
    auto a = e.mkdir((*h)->root(), "a");
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(write_file(e, **a, "cpuset.cpus", "6").err(), EINVAL);  // offline
    EXPECT_EQ(write_file(e, **a, "cpuset.cpus", "8").err(), ERANGE);  // nonexistent
    EXPECT_TRUE(e.check_invariants().ok()) << e.check_invariants().message();
    ASSERT_TRUE(e.rmdir(**a).ok());
    ASSERT_TRUE(e.destroy_hierarchy(**h).ok());
  }
  EXPECT_TRUE(e.check_invariants().ok()) << e.check_invariants().message();
  Cgroup& root = e.default_hierarchy().root();
  ControllerSet on;
  on.set(e.find_controller("cpuset")->id());
  ASSERT_TRUE(e.set_subtree_control(root, on, ControllerSet()).ok());
  auto a = e.mkdir(root, "a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(write_file(e, **a, "cpuset.cpus", "6").err(), 0);  // possible: accepted
  EXPECT_EQ(read_file(e, **a, "cpuset.cpus").value(), "6\n");
  EXPECT_EQ(read_file(e, **a, "cpuset.cpus.effective").value(), "0-3\n");
  EXPECT_EQ(write_file(e, **a, "cpuset.cpus", "8").err(), ERANGE);
  EXPECT_TRUE(e.check_invariants().ok()) << e.check_invariants().message();
}

// ------------------------------------------------------------------ v2

TEST_F(CpusetV2, RootShowsOnlyTheEffectiveFiles) {
  EXPECT_EQ(rd(root(), "cpuset.cpus.effective"), "0-3\n");
  EXPECT_EQ(rd(root(), "cpuset.mems.effective"), "0-1\n");
  EXPECT_EQ(rd(root(), "cpuset.cpus"), "<ENOENT>");
  EXPECT_EQ(rd(root(), "cpuset.mems"), "<ENOENT>");
  EXPECT_EQ(rd(root(), "cpuset.effective_cpus"), "<ENOENT>");
  EXPECT_EQ(rd(root(), "cpuset.cpu_exclusive"), "<ENOENT>");
}

TEST_F(CpusetV2, EmptyOrUnsatisfiableSetsInheritTheParents) {
  enable(root());
  CgroupPtr a = mk(root(), "a");
  EXPECT_EQ(rd(*a, "cpuset.cpus"), "\n");
  EXPECT_EQ(rd(*a, "cpuset.cpus.effective"), "0-3\n");
  EXPECT_EQ(rd(*a, "cpuset.mems.effective"), "0-1\n");
  ASSERT_EQ(wr(*a, "cpuset.cpus", "1-2"), 0);
  ASSERT_EQ(wr(*a, "cpuset.mems", "1"), 0);
  EXPECT_EQ(rd(*a, "cpuset.cpus.effective"), "1-2\n");
  enable(*a);
  CgroupPtr b = mk(*a, "b");
  EXPECT_EQ(rd(*b, "cpuset.cpus.effective"), "1-2\n");
  EXPECT_EQ(rd(*b, "cpuset.mems.effective"), "1\n");
  // Not within the parent's effective set: effective is the parent's.
  ASSERT_EQ(wr(*b, "cpuset.cpus", "3"), 0);
  EXPECT_EQ(rd(*b, "cpuset.cpus"), "3\n");
  EXPECT_EQ(rd(*b, "cpuset.cpus.effective"), "1-2\n");
  ASSERT_EQ(wr(*b, "cpuset.cpus", "2-3"), 0);
  EXPECT_EQ(rd(*b, "cpuset.cpus.effective"), "2\n");
  // The parent grows: the child's effective set follows, and its tasks hear.
  Pid p = spawn_in(*b);
  take_calls();
  ASSERT_EQ(wr(*a, "cpuset.cpus", "0-3"), 0);
  EXPECT_EQ(rd(*b, "cpuset.cpus.effective"), "2-3\n");
  EXPECT_EQ(show(take_calls()), std::vector<std::string>{call(p, "2-3", "1")});
  // v2 has no subset rule: a child may ask for more than its parent has.
  EXPECT_EQ(wr(*a, "cpuset.cpus", "0"), 0);
  EXPECT_EQ(rd(*b, "cpuset.cpus.effective"), "0\n");
  // Errors: syntax and range as in v1, and ids must be possible.
  EXPECT_EQ(wr(*a, "cpuset.cpus", "4"), ERANGE);
  EXPECT_EQ(wr(*a, "cpuset.mems", "2"), EINVAL);
  EXPECT_EQ(wr(*a, "cpuset.cpus", "x"), EINVAL);
}

TEST_F(CpusetV2, AttachIsNeverRefusedAndTasksBelowFollowTheirCss) {
  enable(root());
  CgroupPtr a = mk(root(), "a");
  CgroupPtr leaf = mk(*a, "leaf");  // cpuset not enabled in a: leaf uses a's css
  Pid p = spawn();
  take_calls();
  ASSERT_TRUE(engine.migrate_process(p, *leaf).ok());
  // Same effective sets as the root: v2 leaves the task alone.
  EXPECT_TRUE(take_calls().empty());
  ASSERT_EQ(wr(*a, "cpuset.cpus", "3"), 0);
  EXPECT_EQ(show(take_calls()), std::vector<std::string>{call(p, "3", "0-1")});
  EXPECT_EQ(cpuset->effective_cpus_of(engine, p).value(), CpuSet::Of({3}));
  // A populated cpuset cannot drop its last CPU (the kernel's check applies
  // to both hierarchies).
  EXPECT_EQ(wr(*a, "cpuset.cpus", "\n"), ENOSPC);
  // Moving back to the root changes the sets: the task hears.
  ASSERT_TRUE(engine.migrate_process(p, root()).ok());
  EXPECT_EQ(show(take_calls()), std::vector<std::string>{call(p, "0-3", "0-1")});
  EXPECT_EQ(wr(*a, "cpuset.cpus", "\n"), 0);
  EXPECT_EQ(rd(*a, "cpuset.cpus.effective"), "0-3\n");
}

TEST_F(CpusetV2, EnablingAndDisablingRehomesTasks) {
  CgroupPtr a = mk(root(), "a");
  Pid p = spawn_in(*a);
  take_calls();
  enable(root());
  EXPECT_EQ(rd(*a, "cpuset.cpus.effective"), "0-3\n");
  EXPECT_TRUE(take_calls().empty());  // same sets, nothing to tell
  ASSERT_EQ(wr(*a, "cpuset.mems", "1"), 0);
  EXPECT_EQ(show(take_calls()), std::vector<std::string>{call(p, "0-3", "1")});
  Status st = engine.set_subtree_control(root(), ControllerSet(), cpuset_only());
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(show(take_calls()), std::vector<std::string>{call(p, "0-3", "0-1")});
  EXPECT_EQ(cpuset->effective_mems_of(engine, p).value(), CpuSet::Range(0, 1));
}

TEST_F(CpusetV2, HotplugRecomputesEffectiveSetsWithoutMovingTasks) {
  enable(root());
  CgroupPtr a = mk(root(), "a");
  ASSERT_EQ(wr(*a, "cpuset.cpus", "3"), 0);
  Pid p = spawn_in(*a);
  take_calls();
  ASSERT_TRUE(cpuset->set_online(engine, CpuSet::Range(0, 2), CpuSet::Range(0, 1)).ok());
  EXPECT_EQ(rd(*a, "cpuset.cpus"), "3\n");  // v2 keeps the request
  EXPECT_EQ(rd(*a, "cpuset.cpus.effective"), "0-2\n");
  EXPECT_EQ(rd(root(), "cpuset.cpus.effective"), "0-2\n");
  EXPECT_EQ(tids(*a), std::vector<Pid>{p});
  EXPECT_EQ(show(take_calls()), std::vector<std::string>{call(p, "0-2", "0-1")});
  ASSERT_TRUE(cpuset->set_online(engine, CpuSet::Range(0, 3), CpuSet::Range(0, 1)).ok());
  EXPECT_EQ(rd(*a, "cpuset.cpus.effective"), "3\n");
  EXPECT_EQ(show(take_calls()), std::vector<std::string>{call(p, "3", "0-1")});
}

TEST_F(CpusetV2, ThreadsOfOneProcessMayHaveTheirOwnCpus) {
  // cpuset is a threaded controller: it may be enabled in a threaded subtree.
  EXPECT_TRUE(cpuset->threaded());
  enable(root());
  CgroupPtr a = mk(root(), "a");
  enable(*a);
  CgroupPtr t1 = mk(*a, "t1");
  CgroupPtr t2 = mk(*a, "t2");
  {
    MutexLock l(engine.cgroup_mutex());
    ASSERT_TRUE(engine.enable_threaded_locked(*t1).ok());
    ASSERT_TRUE(engine.enable_threaded_locked(*t2).ok());
  }
  ASSERT_EQ(wr(*t1, "cpuset.cpus", "1"), 0);
  ASSERT_EQ(wr(*t2, "cpuset.cpus", "2-3"), 0);
  Pid p = spawn();
  Result<Pid> th = engine.clone_thread(p);
  ASSERT_TRUE(th.ok());
  Status st = engine.migrate_process(p, *t1);
  ASSERT_TRUE(st.ok()) << st.message();
  st = engine.migrate_thread(*th, *t2);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(cpuset->effective_cpus_of(engine, p).value(), CpuSet::Of({1}));
  EXPECT_EQ(cpuset->effective_cpus_of(engine, *th).value(), CpuSet::Range(2, 3));
  take_calls();
  ASSERT_EQ(wr(*t2, "cpuset.cpus", "3"), 0);
  EXPECT_EQ(show(take_calls()), std::vector<std::string>{call(*th, "3", "0-1")});
}

// ------------------------------------------------------------------ concurrency

// Forks and exits race with writes of cpuset.cpus and migrations: at the end
// every live task's last sink call must carry its cpuset's current CPUs.
TEST_F(CpusetV1, LastSinkCallWinsUnderConcurrency) {
  CgroupPtr a = mkset(root(), "a", "0-1", "0");
  CgroupPtr b = mkset(root(), "b", "2-3", "1");
  std::vector<Pid> parents;
  for (int i = 0; i < 4; ++i) parents.push_back(spawn_in(i % 2 ? *a : *b));
  std::atomic<bool> stop{false};
  std::atomic<int> forks{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      std::vector<Pid> kids;
      while (!stop.load()) {
        Result<Pid> k = engine.fork(parents[i]);
        if (k.ok()) kids.push_back(*k);
        ++forks;
        if (kids.size() > 8) {
          EXPECT_TRUE(engine.exit_process(kids.front()).ok());
          kids.erase(kids.begin());
        }
      }
    });
  }
  // Run until the forkers got going for real, whatever the scheduling.
  for (int round = 0; round < 200 || (forks.load() < 4000 && round < 200000); ++round) {
    ASSERT_EQ(wr(*a, "cpuset.cpus", round % 2 ? "0" : "0-1"), 0);
    ASSERT_EQ(wr(*b, "cpuset.cpus", round % 3 ? "2" : "2-3"), 0);
    ASSERT_TRUE(engine.migrate_process(parents[round % 4], round % 2 ? *b : *a).ok());
  }
  stop = true;
  for (auto& t : threads) t.join();
  std::map<Pid, std::pair<std::string, std::string>> got;
  {
    MutexLock l(mu);
    got = last;
  }
  int checked = 0;
  for (Cgroup* cg : {&root(), a.get(), b.get()})
    for (Pid tid : tids(*cg)) {
      auto it = got.find(tid);
      ASSERT_NE(it, got.end()) << tid;
      EXPECT_EQ(it->second.first, cpuset->effective_cpus_of(engine, tid).value().to_string()) << tid;
      EXPECT_EQ(it->second.second, cpuset->effective_mems_of(engine, tid).value().to_string())
          << tid;
      ++checked;
    }
  EXPECT_GE(forks.load(), 4000);
  EXPECT_GT(checked, 4);  // the forkers' live children were checked too
}

}  // namespace
}  // namespace cgcore::testing
