// cgctl end to end: the binary run against (1) fabricated cgroup trees and
// /proc directories in a temporary directory (run everywhere), (2) a
// cgcorefs --sim mount (skipped, saying why, without FUSE), (3) the
// kernel's cgroups in a directory of its own (skipped unless root with a
// writable hierarchy; removed also when a check fails).
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/fuse/mount_harness.h"

namespace {

namespace fsys = std::filesystem;
using nlohmann::json;
using cgcore::fuse::testing::fuse_unavailable;
using cgcore::fuse::testing::Mount;
using cgcore::fuse::testing::Proc;

struct Outcome {
  int status = -1;
  std::string out, err;
};

// Runs `cgctl ARGS` through the shell; stdout and stderr apart.
Outcome cgctl(const std::string& args, const std::string& env = "") {
  char errtmpl[] = "/tmp/cgctl-test-err.XXXXXX";
  int fd = mkstemp(errtmpl);
  close(fd);
  std::string cmd = env + " " + CGCTL_BINARY + " " + args + " 2>" + errtmpl;
  Outcome r;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream e(errtmpl);
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  unlink(errtmpl);
  return r;
}

void put(const fsys::path& p, const std::string& text) {
  fsys::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

std::string slurp(const fsys::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), {}};
}

// A temporary directory removed with everything in it.
struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/cgctl-test.XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { fsys::remove_all(path); }
  fsys::path path;
};

// A v2 mount: root with one process, /web with two (one of them gone from
// /proc), /web/api empty; counters in /web; and the /proc of those pids.
struct FabricatedV2 {
  FabricatedV2() {
    fsys::path m = dir.path / "cg", proc = dir.path / "proc";
    put(m / "cgroup.procs", "1\n");
    put(m / "cgroup.controllers", "cpu memory io pids\n");
    put(m / "web/cgroup.procs", "4242\n4243\n31337\n");
    put(m / "web/cgroup.controllers", "cpu memory io pids\n");
    put(m / "web/pids.max", "max\n");
    put(m / "web/cpu.stat", "usage_usec 5000000\nuser_usec 4000000\nsystem_usec 1000000\n");
    put(m / "web/memory.current", "1048576\n");
    put(m / "web/io.stat", "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2\n");
    put(m / "web/api/cgroup.procs", "");
    put(proc / "1/cmdline", std::string("/sbin/init\0splash\0", 18));
    put(proc / "4242/cmdline", std::string("sleep\0" "100\0", 10));
    put(proc / "4243/cmdline", "");
    put(proc / "4243/comm", "kworker/0:1\n");
    mount = m.string();
    args = "-m " + mount + " --proc " + proc.string() + " ";
  }
  TempDir dir;
  std::string mount, args;
};

TEST(CgctlFabricated, TreeDrawsProcessesThenChildren) {
  FabricatedV2 f;
  Outcome r = cgctl(f.args + "tree");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, f.mount + ":\n"
                   "├─1 /sbin/init splash\n"
                   "└─web\n"
                   "  ├─4242 sleep 100\n"
                   "  ├─4243 [kworker/0:1]\n"
                   "  ├─31337\n"
                   "  └─api\n");
  r = cgctl(f.args + "tree /web --no-procs");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "/web:\n└─api\n");
  r = cgctl(f.args + "tree nowhere");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("nowhere: not a cgroup"), std::string::npos) << r.err;
}

TEST(CgctlFabricated, TreeJson) {
  FabricatedV2 f;
  Outcome r = cgctl(f.args + "--json tree");
  ASSERT_EQ(r.status, 0) << r.err;
  json doc = json::parse(r.out);
  EXPECT_EQ(doc["mount"], f.mount);
  EXPECT_EQ(doc["tree"]["path"], "/");
  EXPECT_EQ(doc["tree"]["processes"][0]["pid"], 1);
  const json& web = doc["tree"]["children"][0];
  EXPECT_EQ(web["path"], "/web");
  ASSERT_EQ(web["processes"].size(), 3u);
  EXPECT_EQ(web["processes"][0]["cmdline"], "sleep 100");
  EXPECT_EQ(web["processes"][2]["cmdline"], "");
  EXPECT_EQ(web["children"][0]["path"], "/web/api");
}

TEST(CgctlFabricated, GetLikeCgget) {
  FabricatedV2 f;
  Outcome r = cgctl(f.args + "get -r pids.max -r cpu.stat web");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "/web:\npids.max: max\ncpu.stat: usage_usec 5000000\n\tuser_usec 4000000\n"
                   "\tsystem_usec 1000000\n\n");
  r = cgctl(f.args + "get -v -r pids.max /web " + f.mount + "/web/api -r memory.current");
  EXPECT_EQ(r.status, 1);  // /web/api has no memory.current
  EXPECT_EQ(r.out, "max\n1048576\n");
  EXPECT_NE(r.err.find("web/api/pids.max: No such file or directory"), std::string::npos) << r.err;
  r = cgctl(f.args + "--json get web/api");  // every file
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(json::parse(r.out), json::parse(R"({"/web/api": {"cgroup.procs": ""}})"));
  r = cgctl(f.args + "get -r pids.max");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("PATH is required"), std::string::npos) << r.err;
}

TEST(CgctlFabricated, SetWritesEachValueOnce) {
  FabricatedV2 f;
  Outcome r = cgctl(f.args + "set -r pids.max=7 -r memory.current=2M /web");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(slurp(f.mount + "/web/pids.max"), "7");
  EXPECT_EQ(slurp(f.mount + "/web/memory.current"), "2M");
  r = cgctl(f.args + "set -r novalue /web");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("expected FILE=VALUE"), std::string::npos) << r.err;
  r = cgctl(f.args + "set -r pids.max=1 /web/api");  // no such file: open fails
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("cannot write '1'"), std::string::npos) << r.err;
}

TEST(CgctlFabricated, TopBatchJson) {
  FabricatedV2 f;
  Outcome r = cgctl(f.args + "--json top -b -n 2 -d 0.05");
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<json> frames;
  for (size_t p = 0, e; (e = r.out.find('\n', p)) != std::string::npos; p = e + 1)
    frames.push_back(json::parse(r.out.substr(p, e - p)));
  ASSERT_EQ(frames.size(), 2u);
  const json& web1 = frames[0]["cgroups"][1];
  EXPECT_EQ(web1["path"], "/web");
  EXPECT_EQ(web1["tasks"], 3);
  EXPECT_EQ(web1["memory_bytes"], 1048576);
  EXPECT_TRUE(web1["cpu_percent"].is_null());  // no rate before a second sample
  const json& web2 = frames[1]["cgroups"][1];
  EXPECT_EQ(web2["cpu_percent"], 0.0);  // the counters did not move
  EXPECT_EQ(web2["io_read_bytes_per_second"], 0.0);
  EXPECT_EQ(frames[1]["cgroups"][0]["tasks"], 4);  // the root counts its subtree
  EXPECT_TRUE(frames[1]["cgroups"][2]["memory_bytes"].is_null());  // /web/api: no counter
}

TEST(CgctlFabricated, TopBatchTable) {
  FabricatedV2 f;
  Outcome r = cgctl(f.args + "top -b -n 1 -s memory");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, r.out.find('\n')),
            "Control Group   Tasks    %CPU    Memory   Input/s  Output/s");
  EXPECT_NE(r.out.find("\n/web                3       -      1.0M         -         -\n"),
            std::string::npos)
      << r.out;
}

TEST(CgctlFabricated, HybridMountAndDefaults) {
  TempDir d;
  fsys::path m = d.path / "cg";
  put(m / "pids/cgroup.procs", "1\n");
  put(m / "pids/a/cgroup.procs", "");
  put(m / "memory/cgroup.procs", "1\n");
  put(m / ".cgcore/cgroups", "");
  put(m / "notacgroup/file", "");
  fsys::create_directory_symlink("memory", m / "mem");
  Outcome r = cgctl("tree --no-procs", "CGCORE_MOUNT=" + m.string());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, m.string() + ":\n├─memory\n└─pids\n  └─a\n");  // hierarchies only
  r = cgctl("--json top -n 1 --depth 1", "CGCORE_MOUNT=" + m.string());
  ASSERT_EQ(r.status, 0) << r.err;
  json frame = json::parse(r.out);
  // The symlink and the plain directory left out; /pids/a is 2 levels down.
  ASSERT_EQ(frame["cgroups"].size(), 2u);
  EXPECT_EQ(frame["cgroups"][0]["path"], "/memory");
  EXPECT_EQ(frame["cgroups"][1]["path"], "/pids");
  // -m wins over the environment; a directory without cgroups is an error.
  r = cgctl("-m " + (m / "notacgroup").string() + " top -n 1", "CGCORE_MOUNT=" + m.string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("no cgroup hierarchy"), std::string::npos) << r.err;
}

TEST(CgctlConventions, HelpVersionUsage) {
  Outcome r = cgctl("--version");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out.rfind("cgctl (cgcore) ", 0), 0u) << r.out;
  r = cgctl("--help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("Exit status: 0"), std::string::npos);
  r = cgctl("");
  EXPECT_EQ(r.status, 2);
  r = cgctl("frobnicate");
  EXPECT_EQ(r.status, 2);
  EXPECT_FALSE(r.err.empty());
}

// ------------------------------------------------------------ cgcorefs

TEST(CgctlCgcorefs, SimMountTreeGetSet) {
  if (std::string why = fuse_unavailable(); !why.empty())
    GTEST_SKIP() << "cgcorefs mount tests skipped: " << why;
  Mount m({"--sim", "--sim-tasks", "3", "--layout", "hybrid"});
  ASSERT_TRUE(m.ok()) << m.error();
  ASSERT_EQ(mkdir(m.path("pids/web").c_str(), 0755), 0);
  const std::string args = "-m " + m.dir() + " ";
  Outcome r = cgctl(args + "set -r pids.max=5 -r cgroup.procs=2 pids/web");
  ASSERT_EQ(r.status, 0) << r.err;
  r = cgctl(args + "get -n -r pids.max -r cgroup.procs pids/web");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "pids.max: 5\ncgroup.procs: 2\n\n");
  // The kernel's errno comes back through the mount.
  r = cgctl(args + "set -r pids.max=abc pids/web");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("Invalid argument"), std::string::npos) << r.err;
  r = cgctl(args + "--json tree pids");
  ASSERT_EQ(r.status, 0) << r.err;
  json doc = json::parse(r.out);
  ASSERT_EQ(doc["tree"]["processes"].size(), 2u);  // 1 and 3
  EXPECT_EQ(doc["tree"]["children"][0]["path"], "/pids/web");
  EXPECT_EQ(doc["tree"]["children"][0]["processes"][0]["pid"], 2);
  // The whole mount: every hierarchy, .cgcore left out.
  r = cgctl(args + "tree --no-procs");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, m.dir() + ":\n├─cpu\n├─cpuacct\n├─cpuset\n├─memory\n├─memrlimit\n├─numtasks\n├─pids\n│ └─web\n"
                              "└─unified\n");
  r = cgctl(args + "--json top -n 1");
  ASSERT_EQ(r.status, 0) << r.err;
  json frame = json::parse(r.out);
  bool saw_web = false;
  for (const json& c : frame["cgroups"])
    if (c["path"] == "/pids/web") {
      saw_web = true;
      EXPECT_EQ(c["tasks"], 1);
    } else if (c["path"] == "/memory") {
      EXPECT_TRUE(c["memory_bytes"].is_number()) << c;  // memory.usage_in_bytes
    }
  EXPECT_TRUE(saw_web) << r.out;
}

// ------------------------------------------------------------- kernel

// A cgroup of the kernel's made for one test and removed by the
// destructor, its processes moved back to the parent first.
struct KernelCgroup {
  explicit KernelCgroup(std::string parent_dir) : parent(std::move(parent_dir)) {
    std::random_device rd;
    name = "cgctl-test-" + std::to_string(getpid()) + "-" + std::to_string(rd() % 100000);
    dir = parent + "/" + name;
    made = mkdir(dir.c_str(), 0755) == 0;
  }
  ~KernelCgroup() {
    if (!made) return;
    std::ifstream procs(dir + "/cgroup.procs");
    for (long pid; procs >> pid;) std::ofstream(parent + "/cgroup.procs") << pid;
    rmdir(dir.c_str());
  }
  std::string parent, name, dir;
  bool made = false;
};

// The kernel's hierarchy cgctl can test in: /sys/fs/cgroup itself (v2) or
// its pids hierarchy (v1); "" with *why when there is none writable.
std::string kernel_hierarchy(std::string* why) {
  if (geteuid() != 0) {
    *why = "not root";
    return "";
  }
  for (std::string d : {"/sys/fs/cgroup", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified"})
    if (access((d + "/cgroup.procs").c_str(), W_OK) == 0) {
      KernelCgroup probe(d);
      if (probe.made) return d;
    }
  *why = "no writable cgroup hierarchy under /sys/fs/cgroup";
  return "";
}

TEST(CgctlKernel, TreeGetSetOnTheKernelsCgroups) {
  std::string why;
  std::string h = kernel_hierarchy(&why);
  if (h.empty()) GTEST_SKIP() << "kernel cgroup tests skipped: " << why;
  KernelCgroup cg(h);
  ASSERT_TRUE(cg.made);
  Proc sleeper({"/bin/sleep", "30"});
  const std::string rel = h.substr(std::string("/sys/fs/cgroup").size()) + "/" + cg.name;
  Outcome r = cgctl("set -r cgroup.procs=" + std::to_string(sleeper.pid()) + " " + rel);
  ASSERT_EQ(r.status, 0) << r.err;
  r = cgctl("get -v -r cgroup.procs " + rel);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, std::to_string(sleeper.pid()) + "\n");
  r = cgctl("tree " + cg.dir);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, rel + ":\n└─" + std::to_string(sleeper.pid()) + " /bin/sleep 30\n");
  r = cgctl("--json top -n 1");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("\"path\":\"" + rel + "\",\"tasks\":1"), std::string::npos);
  sleeper.kill_and_reap();
}

// The point of running cgctl on both: the same process, put in a cgroup of
// the same name on the kernel's pids hierarchy and on a host-mode cgcorefs
// mount, reads back the same through either.
TEST(CgctlKernel, TheKernelAndCgcorefsShowTheSame) {
  std::string why;
  std::string h = kernel_hierarchy(&why);
  if (h.empty() || h != "/sys/fs/cgroup/pids") GTEST_SKIP() << "needs a writable v1 pids hierarchy: " << why;
  if (std::string no_fuse = fuse_unavailable(); !no_fuse.empty()) GTEST_SKIP() << "needs FUSE: " << no_fuse;
  Mount m({"--layout", "hybrid"});
  ASSERT_TRUE(m.ok()) << m.error();
  KernelCgroup cg(h);
  ASSERT_TRUE(cg.made);
  ASSERT_EQ(mkdir(m.path("pids/" + cg.name).c_str(), 0755), 0);
  Proc sleeper({"/bin/sleep", "30"});
  const std::string pid = std::to_string(sleeper.pid()), rel = "pids/" + cg.name;
  for (const std::string& mount : {std::string("/sys/fs/cgroup"), m.dir()}) {
    Outcome r = cgctl("-m " + mount + " set -r cgroup.procs=" + pid + " -r pids.max=7 " + rel);
    ASSERT_EQ(r.status, 0) << mount << ": " << r.err;
  }
  Outcome kernel = cgctl("-m /sys/fs/cgroup get -n -r cgroup.procs -r pids.max -r pids.current " + rel);
  Outcome ours = cgctl("-m " + m.dir() + " get -n -r cgroup.procs -r pids.max -r pids.current " + rel);
  ASSERT_EQ(kernel.status, 0) << kernel.err;
  EXPECT_EQ(ours.out, kernel.out);
  EXPECT_EQ(kernel.out, "cgroup.procs: " + pid + "\npids.max: 7\npids.current: 1\n\n");
  Outcome kernel_tree = cgctl("-m /sys/fs/cgroup tree " + rel);
  Outcome our_tree = cgctl("-m " + m.dir() + " tree " + rel);
  EXPECT_EQ(our_tree.out, kernel_tree.out);
  sleeper.kill_and_reap();
  // cgcorefs' cgroup empties once the exit is followed; the destructors
  // remove both.
  EXPECT_TRUE(cgcore::fuse::testing::eventually(
      [&] { return cgctl("-m " + m.dir() + " get -v -r cgroup.procs " + rel).out == "\n"; }));
  rmdir(m.path(rel).c_str());
}

}  // namespace
