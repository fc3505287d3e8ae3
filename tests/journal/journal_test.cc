// The journal in process: records, their framing and torn tails,
// compaction, and a restore into a fresh engine that must give the same tree,
// values, modes and cgroup ids (inode numbers). Memberships need real
// processes: tests/fuse/restart_test.cc.
#include "journal/journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "controllers/registry.h"

namespace cgcore::journal {
namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char t[] = "/tmp/cgcore-journal-test.XXXXXX";
    if (mkdtemp(t)) path = t;
  }
  ~TempDir() {
    if (!path.empty()) (void)!std::system(("rm -rf '" + path + "'").c_str());
  }
};

// An engine with the builtin controllers and an fs of `layout` over it.
struct World {
  Engine engine;
  std::unique_ptr<fs::CgroupFs> fs;
  explicit World(const std::string& layout) {
    EXPECT_TRUE(register_builtin_controllers(engine, {}).ok());
    Result<std::unique_ptr<fs::CgroupFs>> f = fs::CgroupFs::create(engine, layout);
    EXPECT_TRUE(f.ok());
    fs = std::move(f.value());
  }
  Status mkdir(const std::string& path, uint32_t mode = 0755) {
    const size_t slash = path.rfind('/');
    Result<fs::Ino> dir = fs->resolve(slash == 0 ? "/" : path.substr(0, slash));
    if (!dir.ok()) return dir.status();
    return fs->mkdir(*dir, path.substr(slash + 1), mode, fs::Caller{}).status();
  }
  Status rmdir(const std::string& path) {
    const size_t slash = path.rfind('/');
    Result<fs::Ino> dir = fs->resolve(path.substr(0, slash));
    if (!dir.ok()) return dir.status();
    return fs->rmdir(*dir, path.substr(slash + 1), fs::Caller{});
  }
  std::string read(const std::string& path) {
    Result<std::string> r = fs->read_path(path, fs::Caller{});
    return r.ok() ? *r : "<" + std::to_string(r.err()) + ">";
  }
};

TEST(JournalRecord, EncodeDecodeAndATornTail) {
  Record a;
  a.type = Record::Type::kWrite;
  a.path = "/pids/a/pids.max";
  a.text = "7";
  a.file = "pids.max";
  a.pid = 42;
  a.start = 1234;
  a.stamp = 99;
  a.ino = 5;
  Record b = a;
  b.text = "8";
  const std::string bytes = encode(a) + encode(b);
  size_t valid = 0;
  std::vector<Record> out = decode(bytes, &valid);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(valid, bytes.size());
  EXPECT_EQ(out[1].text, "8");
  EXPECT_EQ(out[0].pid, 42);
  EXPECT_EQ(out[0].ino, 5u);
  // Every cut inside the last record loses that record only.
  for (size_t cut = 1; cut < encode(b).size(); ++cut) {
    out = decode(std::string_view(bytes).substr(0, bytes.size() - cut), &valid);
    ASSERT_EQ(out.size(), 1u) << cut;
    EXPECT_EQ(valid, encode(a).size());
  }
  // A flipped byte in the last record's payload fails its checksum.
  std::string bad = bytes;
  bad[bad.size() - 20] ^= 1;
  EXPECT_EQ(decode(bad, &valid).size(), 1u);
}

TEST(JournalCompact, DropsRemovedCgroupsFoldsRenamesKeepsLastValues) {
  auto rec = [](Record::Type t, std::string path, std::string text = "", std::string file = "") {
    Record r;
    r.type = t;
    r.path = std::move(path);
    r.text = std::move(text);
    r.file = std::move(file);
    return r;
  };
  using T = Record::Type;
  std::vector<Record> in = {
      rec(T::kHeader, "hybrid"),
      rec(T::kMkdir, "/pids/a"),
      rec(T::kWrite, "/pids/a/pids.max", "5", "pids.max"),
      rec(T::kWrite, "/pids/a/pids.max", "6", "pids.max"),
      rec(T::kMkdir, "/pids/gone"),
      rec(T::kWrite, "/pids/gone/pids.max", "1", "pids.max"),
      rec(T::kRmdir, "/pids/gone"),
      rec(T::kMkdir, "/pids/a/b"),
      rec(T::kRename, "/pids/a", "z"),
      rec(T::kWrite, "/unified/cgroup.subtree_control", "+pids", "cgroup.subtree_control"),
      rec(T::kWrite, "/unified/cgroup.subtree_control", "-pids", "cgroup.subtree_control"),
      rec(T::kWrite, "/pids/z/cgroup.procs", "1", "cgroup.procs"),
      rec(T::kWrite, "/pids/z/cgroup.kill", "1", "cgroup.kill"),
  };
  std::vector<Record> out = compact(in);
  std::vector<std::string> got;
  for (const Record& r : out) got.push_back(std::to_string(int(r.type)) + " " + r.path + " " + r.text);
  const std::vector<std::string> want = {
      "2 /pids/z ", "7 /pids/z/pids.max 6", "2 /pids/z/b ",
      "7 /unified/cgroup.subtree_control +pids", "7 /unified/cgroup.subtree_control -pids"};
  EXPECT_EQ(got, want);
}

TEST(JournalRestore, AFreshEngineGetsTheSameTreeValuesModesAndIds) {
  TempDir dir;
  ASSERT_FALSE(dir.path.empty());
  fs::Ino ino_c = 0;
  {
    World w("hybrid");
    Result<std::unique_ptr<Journal>> j = Journal::open(dir.path, [](const std::string&) {});
    ASSERT_TRUE(j.ok());
    ASSERT_FALSE((*j)->has_state());
    ASSERT_TRUE((*j)->start(*w.fs, "hybrid").ok());
    ASSERT_TRUE(w.mkdir("/pids/a").ok());
    ASSERT_TRUE(w.fs->write_path("/pids/a/pids.max", "5", {}).ok());
    ASSERT_TRUE(w.mkdir("/pids/x").ok());
    ASSERT_TRUE(w.rmdir("/pids/x").ok());
    ASSERT_TRUE(w.mkdir("/pids/c", 0700).ok());
    ASSERT_TRUE(w.fs->write_path("/pids/c/pids.max", "3", {}).ok());
    ASSERT_TRUE(w.mkdir("/cpuset/old").ok());
    ASSERT_TRUE(w.fs->rename(*w.fs->resolve("/cpuset"), "old", *w.fs->resolve("/cpuset"), "new", {}).ok());
    ASSERT_TRUE(w.mkdir("/unified/u").ok());
    ASSERT_TRUE(w.fs->write_path("/unified/u/cgroup.freeze", "1", {}).ok());
    // A refused write is not recorded.
    EXPECT_FALSE(w.fs->write_path("/pids/a/pids.max", "nonsense", {}).ok());
    ino_c = *w.fs->resolve("/pids/c");
    (*j)->compact_now();
    ASSERT_TRUE(w.fs->write_path("/pids/a/pids.max", "6", {}).ok());  // after the compaction
    (*j)->stop();
  }
  World w("hybrid");
  Result<std::unique_ptr<Journal>> j = Journal::open(dir.path, [](const std::string&) {});
  ASSERT_TRUE(j.ok());
  ASSERT_TRUE((*j)->has_state());
  EXPECT_EQ((*j)->recorded_layout(), "hybrid");
  RestoreStats st = (*j)->restore(*w.fs);
  EXPECT_EQ(st.failed, 0u);
  EXPECT_FALSE(st.torn);
  EXPECT_EQ(w.read("/pids/a/pids.max"), "6\n");
  EXPECT_EQ(w.read("/pids/c/pids.max"), "3\n");
  EXPECT_FALSE(w.fs->resolve("/pids/x").ok());
  EXPECT_TRUE(w.fs->resolve("/cpuset/new").ok());
  EXPECT_FALSE(w.fs->resolve("/cpuset/old").ok());
  EXPECT_EQ(w.read("/unified/u/cgroup.freeze"), "1\n");
  Result<fs::Ino> c = w.fs->resolve("/pids/c");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, ino_c) << "the cgroup's id (inode number) changed";
  EXPECT_EQ(w.fs->getattr(*c)->mode, 0700u);
}

// A membership write records the identity the fs's backend gave with the
// change, and reads /proc only when there is none.
TEST(JournalRecord, AMembershipTakesTheBackendsIdentityElseReadsProc) {
  TempDir dir;
  ASSERT_FALSE(dir.path.empty());
  World w("hybrid");
  Result<std::unique_ptr<Journal>> j = Journal::open(dir.path, [](const std::string&) {});
  ASSERT_TRUE(j.ok());
  ASSERT_TRUE((*j)->start(*w.fs, "hybrid").ok());
  const Pid self = getpid();
  {
    MutexLock lock(w.engine.cgroup_mutex());
    (*j)->record({.kind = fs::Change::Kind::kWrite, .path = "/pids/cgroup.procs", .text = "1",
                  .file = "cgroup.procs", .pid = self,
                  .identity = fs::TaskIdentity{.start = 12345, .ino = 678}});
    (*j)->record({.kind = fs::Change::Kind::kWrite, .path = "/pids/cgroup.procs", .text = "1",
                  .file = "cgroup.procs", .pid = self});
  }
  (*j)->stop();
  std::string bytes;
  {
    const int fd = open((dir.path + "/journal").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    char buf[4096];
    for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) bytes.append(buf, static_cast<size_t>(n));
    close(fd);
  }
  size_t valid = 0;
  std::vector<Record> records = decode(bytes, &valid);
  ASSERT_GE(records.size(), 2u);
  const Record& given = records[records.size() - 2];
  const Record& looked_up = records.back();
  EXPECT_EQ(given.pid, self);
  EXPECT_EQ(given.start, 12345u);
  EXPECT_EQ(given.ino, 678u);
  EXPECT_NE(given.stamp, 0u);
  std::optional<ProcStat> st = proc_stat(self);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(looked_up.start, st->start);
  EXPECT_EQ(looked_up.ino, pidfs_ino(self));
}

}  // namespace
}  // namespace cgcore::journal
