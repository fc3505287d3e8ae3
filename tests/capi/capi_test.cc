// The C API (capi/cgcore.h) as a program sees it: linked against
// libcgcore_capi.so, calling only cgcore_* functions. Each test checks the
// engine's invariants through the API at the end.
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <cgcore/cgcore.h>
#include <cgcore/version.h>

namespace {

// An engine on a fixed machine (4 CPUs, 1 node), destroyed at the end of
// the test after a last invariant check.
class CapiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cgcore_engine_options opts{};
    opts.size = sizeof opts;
    opts.nr_cpus = 4;
    opts.nr_nodes = 1;
    ASSERT_EQ(cgcore_engine_create(&opts, &e_), 0) << cgcore_last_error();
  }
  void TearDown() override {
    if (fs_) cgcore_fs_destroy(fs_);
    ExpectInvariants();
    EXPECT_EQ(cgcore_engine_destroy(e_), 0);
  }
  void ExpectInvariants() {
    char* message = nullptr;
    EXPECT_EQ(cgcore_check_invariants(e_, &message), 0) << (message ? message : "");
    EXPECT_EQ(message, nullptr);
    cgcore_free(message);
  }
  int Mount(const char* controllers) {
    int id = -1;
    EXPECT_EQ(cgcore_mount(e_, controllers, nullptr, &id), 0) << cgcore_last_error();
    return id;
  }
  cgcore_pid Spawn() {
    cgcore_pid pid = 0;
    EXPECT_EQ(cgcore_spawn(e_, 0, &pid), 0) << cgcore_last_error();
    return pid;
  }
  std::string CgroupOf(cgcore_pid tid, int hierarchy) {
    char* path = nullptr;
    if (cgcore_task_cgroup(e_, tid, hierarchy, &path) != 0) return "error";
    std::string s = path;
    cgcore_free(path);
    return s;
  }
  std::vector<cgcore_pid> Tasks(int hierarchy, const char* path, unsigned flags = 0) {
    cgcore_pid* pids = nullptr;
    size_t n = 0;
    EXPECT_EQ(cgcore_cgroup_tasks(e_, hierarchy, path, flags, &pids, &n), 0) << cgcore_last_error();
    std::vector<cgcore_pid> v(pids, pids + n);
    cgcore_free(pids);
    return v;
  }
  std::string Read(const char* path) {
    char* data = nullptr;
    size_t size = 0;
    int rc = cgcore_fs_read(fs_, path, nullptr, &data, &size);
    if (rc != 0) return std::string("error ") + cgcore_strerror(rc);
    std::string s(data, size);
    EXPECT_EQ(std::strlen(data), size);  // NUL-terminated
    cgcore_free(data);
    return s;
  }
  int Write(const char* path, const std::string& text, const cgcore_caller* caller = nullptr) {
    return cgcore_fs_write(fs_, path, text.data(), text.size(), caller);
  }

  cgcore_engine* e_ = nullptr;
  cgcore_fs* fs_ = nullptr;
};

TEST(CapiLibrary, VersionMatchesTheHeaders) {
  EXPECT_STREQ(cgcore_version(), CGCORE_VERSION_STRING);
  EXPECT_EQ(cgcore_version_number(), CGCORE_VERSION_NUMBER);
  EXPECT_STREQ(cgcore_strerror(-EBUSY), "EBUSY");
  EXPECT_STREQ(cgcore_strerror(ENOENT), "ENOENT");
  cgcore_free(nullptr);  // allowed
}

TEST(CapiLibrary, OptionsAreSizeVersioned) {
  cgcore_engine* e = nullptr;
  EXPECT_EQ(cgcore_engine_create(nullptr, nullptr), -EINVAL);
  // Too small to hold its own size member.
  cgcore_engine_options small{};
  small.size = 1;
  EXPECT_EQ(cgcore_engine_create(&small, &e), -EINVAL);
  // A struct from a newer header: unknown members zero are fine, others not.
  struct {
    cgcore_engine_options known;
    uint64_t later;
  } newer{};
  newer.known.size = sizeof newer;
  newer.known.nr_cpus = 2;
  ASSERT_EQ(cgcore_engine_create(&newer.known, &e), 0) << cgcore_last_error();
  EXPECT_EQ(cgcore_engine_destroy(e), 0);
  newer.later = 1;
  e = nullptr;
  EXPECT_EQ(cgcore_engine_create(&newer.known, &e), -E2BIG);
  EXPECT_EQ(e, nullptr);  // out-parameters are written only on success
  // A struct from an older header: the members it lacks are defaults.
  cgcore_engine_options older{};
  older.size = sizeof(size_t);
  ASSERT_EQ(cgcore_engine_create(&older, &e), 0);
  EXPECT_EQ(cgcore_engine_destroy(e), 0);
  cgcore_engine_options nodes_only{};
  nodes_only.size = sizeof nodes_only;
  nodes_only.nr_nodes = 2;
  EXPECT_EQ(cgcore_engine_create(&nodes_only, &e), -EINVAL);
}

TEST(CapiLibrary, NullHandlesAreEinval) {
  int id;
  cgcore_pid pid;
  EXPECT_EQ(cgcore_engine_destroy(nullptr), -EINVAL);
  EXPECT_EQ(cgcore_mount(nullptr, "pids", nullptr, &id), -EINVAL);
  EXPECT_EQ(cgcore_spawn(nullptr, 0, &pid), -EINVAL);
  EXPECT_EQ(cgcore_mkdir(nullptr, 0, "/a", nullptr), -EINVAL);
  EXPECT_EQ(cgcore_check_invariants(nullptr, nullptr), -EINVAL);
  EXPECT_EQ(cgcore_fs_write(nullptr, "/x", "1", 1, nullptr), -EINVAL);
  EXPECT_STRNE(cgcore_last_error(), "");
  cgcore_fs_destroy(nullptr);  // ignored
}

TEST_F(CapiTest, MountFindsTheSameHierarchyAgain) {
  int pids = Mount("pids");
  EXPECT_GT(pids, 0);
  EXPECT_EQ(Mount("pids"), pids);
  int id = -1;
  EXPECT_EQ(cgcore_mount(e_, "nosuch", nullptr, &id), -EINVAL);
  EXPECT_STRNE(cgcore_last_error(), "");
  EXPECT_EQ(id, -1);
  EXPECT_EQ(cgcore_mount(e_, "", nullptr, &id), -EINVAL);  // neither controllers nor name
  int named = -1;
  EXPECT_EQ(cgcore_mount(e_, "", "systemd", &named), 0) << cgcore_last_error();
  EXPECT_NE(named, pids);
  EXPECT_EQ(cgcore_mount(e_, "memory,", nullptr, &id), -EINVAL);
  EXPECT_EQ(cgcore_umount(e_, 0), -EINVAL);  // the default hierarchy stays
  EXPECT_EQ(cgcore_umount(e_, 999), -ENOENT);
  ASSERT_EQ(cgcore_mkdir(e_, pids, "/busy", nullptr), 0);
  EXPECT_EQ(cgcore_umount(e_, pids), -EBUSY);
  ASSERT_EQ(cgcore_rmdir(e_, pids, "/busy"), 0);
  EXPECT_EQ(cgcore_umount(e_, pids), 0) << cgcore_last_error();
  EXPECT_EQ(cgcore_umount(e_, named), 0);
}

TEST_F(CapiTest, CgroupsByPath) {
  int h = Mount("pids");
  uint64_t a = 0, b = 0;
  ASSERT_EQ(cgcore_mkdir(e_, h, "/a", &a), 0) << cgcore_last_error();
  ASSERT_EQ(cgcore_mkdir(e_, h, "a//b/", &b), 0);  // empty components are skipped
  EXPECT_NE(a, 0u);
  EXPECT_NE(a, b);
  EXPECT_EQ(cgcore_mkdir(e_, h, "/a", nullptr), -EEXIST);
  EXPECT_EQ(cgcore_mkdir(e_, h, "/", nullptr), -EEXIST);
  EXPECT_EQ(cgcore_mkdir(e_, h, "/x/y", nullptr), -ENOENT);
  EXPECT_EQ(cgcore_mkdir(e_, h, "/a/../c", nullptr), -EINVAL);
  EXPECT_EQ(cgcore_mkdir(e_, 77, "/a", nullptr), -ENOENT);
  EXPECT_EQ(cgcore_mkdir(e_, 77, "/", nullptr), -ENOENT);
  EXPECT_EQ(cgcore_mkdir(e_, h, nullptr, nullptr), -EINVAL);

  EXPECT_EQ(cgcore_rename(e_, h, "/a/b", "c"), 0) << cgcore_last_error();
  EXPECT_EQ(cgcore_rmdir(e_, h, "/a/b"), -ENOENT);
  EXPECT_EQ(cgcore_rename(e_, h, "/a/c", "x/y"), -EINVAL);
  EXPECT_EQ(cgcore_rename(e_, h, "/", "r"), -EBUSY);
  EXPECT_EQ(cgcore_rmdir(e_, h, "/a"), -EBUSY);  // a child
  EXPECT_EQ(cgcore_rmdir(e_, h, "/"), -EBUSY);
  EXPECT_EQ(cgcore_rmdir(e_, h, "/a/c"), 0);
  EXPECT_EQ(cgcore_rmdir(e_, h, "/a"), 0);

  // The default hierarchy, id 0.
  EXPECT_EQ(cgcore_mkdir(e_, 0, "/v2", nullptr), 0);
  EXPECT_EQ(cgcore_rmdir(e_, 0, "/v2"), 0);
}

TEST_F(CapiTest, TaskLifecycle) {
  int h = Mount("pids");
  cgcore_pid p = Spawn();
  cgcore_pid t = 0, child = 0, explicit_pid = 0;
  ASSERT_EQ(cgcore_clone_thread(e_, p, 0, &t), 0) << cgcore_last_error();
  ASSERT_EQ(cgcore_fork(e_, t, 0, 0, &child), 0);
  ASSERT_EQ(cgcore_spawn(e_, 4242, &explicit_pid), 0);
  EXPECT_EQ(explicit_pid, 4242);
  cgcore_pid dup = 0;
  EXPECT_EQ(cgcore_spawn(e_, 4242, &dup), -EEXIST);
  EXPECT_EQ(cgcore_spawn(e_, -1, &dup), -EINVAL);
  EXPECT_EQ(cgcore_fork(e_, p, 0, 0x80, &dup), -EINVAL);  // unknown flag
  cgcore_pid vfork_child = 0;
  EXPECT_EQ(cgcore_fork(e_, p, 5000, CGCORE_FORK_SHARE_MM, &vfork_child), 0);
  EXPECT_EQ(vfork_child, 5000);

  EXPECT_EQ(CgroupOf(t, h), "/");
  EXPECT_EQ(Tasks(h, "/"), (std::vector<cgcore_pid>{p, child, 4242, 5000}));
  EXPECT_EQ(Tasks(h, "/", CGCORE_TASKS_THREADS), (std::vector<cgcore_pid>{p, t, child, 4242, 5000}));
  cgcore_pid* none = nullptr;
  size_t n = 0;
  EXPECT_EQ(cgcore_cgroup_tasks(e_, h, "/", 0x4, &none, &n), -EINVAL);

  // exec from the non-leader thread: it takes the process id.
  ASSERT_EQ(cgcore_exec(e_, t), 0) << cgcore_last_error();
  EXPECT_EQ(Tasks(h, "/", CGCORE_TASKS_THREADS), (std::vector<cgcore_pid>{p, child, 4242, 5000}));
  EXPECT_EQ(cgcore_exit_thread(e_, t), -ESRCH);
  EXPECT_EQ(cgcore_set_creds(e_, child, 1000, 1000), 0);
  EXPECT_EQ(cgcore_set_creds(e_, 999999, 1000, 1000), -ESRCH);
  EXPECT_EQ(cgcore_exit_process(e_, child), 0);
  EXPECT_EQ(cgcore_exit_thread(e_, p), 0);
  EXPECT_EQ(cgcore_exit_process(e_, 4242), 0);
  EXPECT_EQ(cgcore_exit_process(e_, 5000), 0);
  EXPECT_EQ(cgcore_exit_process(e_, p), -ESRCH);
  EXPECT_TRUE(Tasks(h, "/").empty());
  char* path = nullptr;
  EXPECT_EQ(cgcore_task_cgroup(e_, p, h, &path), -ESRCH);
  EXPECT_EQ(path, nullptr);
}

TEST_F(CapiTest, MigrationModes) {
  int h = Mount("pids,memory");
  ASSERT_EQ(cgcore_mkdir(e_, h, "/a", nullptr), 0);
  ASSERT_EQ(cgcore_mkdir(e_, h, "/b", nullptr), 0);
  cgcore_pid p = Spawn(), q = Spawn(), r = Spawn();
  cgcore_pid pt = 0;
  ASSERT_EQ(cgcore_clone_thread(e_, p, 0, &pt), 0);

  ASSERT_EQ(cgcore_migrate_thread(e_, pt, h, "/a"), 0) << cgcore_last_error();
  EXPECT_EQ(CgroupOf(pt, h), "/a");
  EXPECT_EQ(CgroupOf(p, h), "/");
  ASSERT_EQ(cgcore_migrate_process(e_, pt, h, "/b"), 0);  // every thread of pt's process
  EXPECT_EQ(CgroupOf(p, h), "/b");
  EXPECT_EQ(CgroupOf(pt, h), "/b");
  const cgcore_pid both[] = {q, r};
  ASSERT_EQ(cgcore_migrate_processes(e_, both, 2, h, "/a"), 0);
  EXPECT_EQ(Tasks(h, "/a"), (std::vector<cgcore_pid>{q, r}));
  ASSERT_EQ(cgcore_transfer(e_, h, "/a", "/b"), 0) << cgcore_last_error();
  EXPECT_TRUE(Tasks(h, "/a").empty());
  EXPECT_EQ(Tasks(h, "/b"), (std::vector<cgcore_pid>{p, q, r}));

  EXPECT_EQ(cgcore_migrate_thread(e_, 999999, h, "/a"), -ESRCH);
  EXPECT_EQ(cgcore_migrate_process(e_, p, h, "/nosuch"), -ENOENT);
  EXPECT_EQ(cgcore_migrate_processes(e_, nullptr, 1, h, "/a"), -EINVAL);
  EXPECT_EQ(cgcore_migrate_processes(e_, nullptr, 0, h, "/a"), 0);  // nothing to move
  EXPECT_EQ(cgcore_transfer(e_, h, "/b", "/nosuch"), -ENOENT);
  ExpectInvariants();
}

// A veto by one controller leaves every task of the transaction where it was.
TEST_F(CapiTest, VetoedMigrationChangesNothing) {
  int h = Mount("cpuset");
  ASSERT_EQ(cgcore_mkdir(e_, h, "/empty", nullptr), 0);  // no cpus, no mems yet
  cgcore_pid p = Spawn(), q = Spawn();
  const cgcore_pid both[] = {p, q};
  EXPECT_EQ(cgcore_migrate_processes(e_, both, 2, h, "/empty"), -ENOSPC);
  EXPECT_NE(std::string(cgcore_last_error()).find("cpuset"), std::string::npos);
  EXPECT_EQ(CgroupOf(p, h), "/");
  EXPECT_EQ(CgroupOf(q, h), "/");
  ASSERT_EQ(cgcore_migrate_thread(e_, p, h, "/"), 0);
  EXPECT_STREQ(cgcore_last_error(), "");  // a success clears it
}

TEST_F(CapiTest, FilesThroughTheFs) {
  ASSERT_EQ(cgcore_fs_create(e_, "hybrid", &fs_), 0) << cgcore_last_error();
  EXPECT_EQ(cgcore_engine_destroy(e_), -EBUSY);  // the fs borrows it

  ASSERT_EQ(cgcore_fs_mkdir(fs_, "/pids/web", 0755, nullptr), 0) << cgcore_last_error();
  EXPECT_EQ(cgcore_fs_mkdir(fs_, "/pids/web/", 0755, nullptr), -EEXIST);
  EXPECT_EQ(cgcore_fs_mkdir(fs_, "/", 0755, nullptr), -EINVAL);
  EXPECT_EQ(Write("/pids/web/pids.max", "1"), 0) << cgcore_last_error();
  EXPECT_EQ(Read("/pids/web/pids.max"), "1\n");
  EXPECT_EQ(Write("/pids/web/pids.max", "-3"), -EINVAL);

  cgcore_pid p = Spawn();
  EXPECT_EQ(Write("/pids/web/cgroup.procs", "abc"), -EINVAL);
  ASSERT_EQ(Write("/pids/web/cgroup.procs", std::to_string(p)), 0) << cgcore_last_error();
  EXPECT_EQ(Read("/pids/web/cgroup.procs"), std::to_string(p) + "\n");
  EXPECT_EQ(Read("/pids/web/pids.current"), "1\n");
  cgcore_pid child = 0;
  EXPECT_EQ(cgcore_fork(e_, p, 0, 0, &child), -EAGAIN);
  EXPECT_NE(std::string(cgcore_last_error()).find("pids.max"), std::string::npos);

  // The engine's view and the files' agree on hierarchy ids.
  int pids = Mount("pids");
  EXPECT_EQ(CgroupOf(p, pids), "/web");

  EXPECT_EQ(Read("/pids/nosuch/pids.max"), "error ENOENT");
  EXPECT_EQ(Read("/pids/web"), "error EISDIR");
  EXPECT_EQ(cgcore_fs_rmdir(fs_, "/pids/web", nullptr), -EBUSY);

  // An unprivileged caller: the directory is root's.
  cgcore_caller user{};
  user.size = sizeof user;
  user.uid = 1000;
  user.gid = 1000;
  EXPECT_EQ(cgcore_fs_mkdir(fs_, "/pids/web/sub", 0755, &user), -EACCES);
  EXPECT_EQ(Write("/pids/web/pids.max", "5", &user), -EACCES);
  cgcore_caller flagged = user;
  flagged.flags = 1;
  EXPECT_EQ(Write("/pids/web/pids.max", "5", &flagged), -EINVAL);
  struct {
    cgcore_caller known;
    uint32_t later[2];
  } newer{};
  newer.known.size = sizeof newer;
  EXPECT_EQ(Write("/pids/web/pids.max", "5", &newer.known), 0);  // root, unknown members zero
  newer.later[1] = 7;
  EXPECT_EQ(Write("/pids/web/pids.max", "5", &newer.known), -E2BIG);
  static_assert(sizeof(cgcore_caller) == sizeof(size_t) + 4 * sizeof(uint32_t),
                "no implicit padding (cgcore.h, rule 4)");
  static_assert(sizeof(cgcore_engine_options) == sizeof(size_t) + 2 * sizeof(uint32_t),
                "no implicit padding (cgcore.h, rule 4)");

  ASSERT_EQ(cgcore_exit_process(e_, p), 0);
  EXPECT_EQ(cgcore_fs_rmdir(fs_, "/pids/web", nullptr), 0) << cgcore_last_error();
  cgcore_fs_destroy(fs_);
  fs_ = nullptr;
}

TEST_F(CapiTest, FsLayouts) {
  cgcore_fs* bad = nullptr;
  EXPECT_EQ(cgcore_fs_create(e_, "no;such;layout", &bad), -EINVAL);
  EXPECT_EQ(bad, nullptr);
  ASSERT_EQ(cgcore_fs_create(e_, "v2", &fs_), 0) << cgcore_last_error();
  EXPECT_NE(Read("/cgroup.controllers").find("pids"), std::string::npos);
  ASSERT_EQ(cgcore_fs_mkdir(fs_, "/app", 0755, nullptr), 0);
  ASSERT_EQ(Write("/cgroup.subtree_control", "+pids"), 0) << cgcore_last_error();
  EXPECT_EQ(Read("/app/pids.max"), "max\n");
}

// The engine is thread-safe, and so is the API over it.
TEST_F(CapiTest, ConcurrentCallers) {
  int h = Mount("pids");
  constexpr int kThreads = 4, kRounds = 200;
  for (int i = 0; i < kThreads; ++i) {
    std::string path = "/w" + std::to_string(i);
    ASSERT_EQ(cgcore_mkdir(e_, h, path.c_str(), nullptr), 0);
  }
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([this, h, i, &failures] {
      std::string mine = "/w" + std::to_string(i);
      std::string next = "/w" + std::to_string((i + 1) % kThreads);
      for (int round = 0; round < kRounds; ++round) {
        cgcore_pid p = 0, c = 0;
        if (cgcore_spawn(e_, 0, &p) != 0) { ++failures[i]; continue; }
        if (cgcore_migrate_process(e_, p, h, mine.c_str()) != 0) ++failures[i];
        if (cgcore_fork(e_, p, 0, 0, &c) != 0) ++failures[i];
        const cgcore_pid both[] = {p, c};
        if (cgcore_migrate_processes(e_, both, 2, h, next.c_str()) != 0) ++failures[i];
        if (round % 2 == 0) {
          cgcore_exit_process(e_, p);
          cgcore_exit_process(e_, c);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) EXPECT_EQ(failures[i], 0) << "thread " << i;
  size_t total = 0;
  for (int i = 0; i < kThreads; ++i) total += Tasks(h, ("/w" + std::to_string(i)).c_str()).size();
  EXPECT_EQ(total, static_cast<size_t>(kThreads * kRounds));  // half the pairs live on
}

}  // namespace
