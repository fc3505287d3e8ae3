// cgbench: cgcore against the host kernel's cgroups, on the same work, in
// one run. See docs/performance.md for what each row measures, the latest
// results and how to reproduce them.
//
//   build/tools/cgbench [--quick] [--json FILE] [--no-kernel] [--no-mount]
//                       [--only SECTION,...]
//
// Sections: memory, forkexit, transfer, concurrency (the engine alone, each
// in a child process), moves, threads, mkdir, reads (kernel, engine and the
// cgcorefs mount, round by round), supervised (what cgexec's supervision
// costs a process), transports (the mount over /dev/fuse and over
// io_uring). Where the kernel's cgroups are not writable (or with
// --no-kernel) cgbench says so and prints cgcore's figures alone. It removes everything it created under /sys/fs/cgroup,
// also when interrupted (see bench/cgbench/host.h).
#include <sys/utsname.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "bench/cgbench/common.h"
#include "bench/cgbench/stats.h"
#include "tools/common/cli.h"

namespace cgbench {
namespace {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::string self_dir() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  buf[n] = 0;
  std::string p = buf;
  return p.substr(0, p.rfind('/'));
}

void set_target(std::vector<Row>& rows, const std::string& name, const std::string& target,
                double min_ratio) {
  for (Row& r : rows)
    if (r.name == name) {
      r.target = target;
      if (r.ratio) r.met = *r.ratio >= min_ratio;
    }
}

int run(int argc, char** argv) {
  Config cfg;
  std::string only;
  CLI::App app{"cgbench: cgcore against the host kernel's cgroups, on the same work, in one run "
               "(docs/performance.md)",
               "cgbench"};
  cgcore::tools::standard_options(app, "cgbench",
                                  "ratio = kernel / cgcore for times: higher means cgcore is faster.");
  app.add_flag("--quick", cfg.quick,
               "a smaller run (under a minute): fewer rounds, smaller sizes where noted "
               "(memory figures are then per unit from fewer objects)");
  app.add_option("--json", cfg.json,
                 "also write the rows as a JSON array of {name, cgcore, kernel, ratio, unit}")
      ->type_name("FILE");
  app.add_flag("--no-kernel", cfg.no_kernel, "do not touch the kernel's cgroups (cgcore's figures alone)");
  app.add_flag("--no-mount", cfg.no_mount, "do not mount cgcorefs");
  app.add_option("--only", only,
                 "sections, comma-separated: memory,forkexit,transfer,concurrency,moves,threads,"
                 "mkdir,reads,supervised,transports,journal")
      ->type_name("LIST");
  if (int rc = cgcore::tools::parse(app, argc, argv); rc >= 0) return rc;
  for (size_t pos = 0; pos <= only.size() && !only.empty();) {
    size_t c = only.find(',', pos);
    if (c == std::string::npos) c = only.size();
    if (c > pos) cfg.only.push_back(only.substr(pos, c - pos));
    pos = c + 1;
  }
  cfg.self_dir = self_dir();
  setvbuf(stdout, nullptr, _IOLBF, 0);

  utsname u;
  uname(&u);
  const int64_t t_start = now_ns();
  printf("cgbench%s: %u CPUs (%s), kernel %s, load average %s\n", cfg.quick ? " --quick" : "",
         std::thread::hardware_concurrency(), cpu_model().c_str(), u.release, loadavg().c_str());

  guard_start();
  std::vector<Row> rows;
  auto add = [&](std::vector<Row> r) { rows.insert(rows.end(), r.begin(), r.end()); };
  auto progress = [&](const char* what) {
    fprintf(stderr, "cgbench: %-12s (%.1f s)\n", what, static_cast<double>(now_ns() - t_start) / 1e9);
  };

  // The engine alone, each in a child process: first, while cgbench's own
  // heap is still small (the memory figures must not reuse freed memory).
  if (cfg.wants("memory")) {
    progress("memory");
    add(run_in_child("memory", [&] { return bench_memory(cfg); }));
  }
  if (cfg.wants("forkexit")) {
    progress("forkexit");
    add(run_in_child("forkexit", [&] { return bench_fork_exit(cfg); }));
  }
  if (cfg.wants("transfer")) {
    progress("transfer");
    add(run_in_child("transfer", [&] { return bench_transfer(cfg); }));
  }
  if (cfg.wants("concurrency")) {
    progress("concurrency");
    add(run_in_child("concurrency", [&] { return bench_concurrency(cfg); }));
  }

  // Against the kernel (and the mount).
  const bool compare = cfg.wants("moves") || cfg.wants("threads") || cfg.wants("mkdir") ||
                       cfg.wants("reads") || cfg.wants("supervised") || cfg.wants("transports") ||
                       cfg.wants("journal");
  KernelCgroups k;
  CgcorefsMount mount;
  std::string mount_why = "n/a (--no-mount)";
  if (compare) {
    k = kernel_setup(cfg.no_kernel);
    if (!k.v1.ok() || !k.v2.ok()) {
      if (!k.any())
        printf("kernel cgroups not writable (v1: %s; v2: %s): cgcore's figures alone\n",
               k.v1.why_not.c_str(), k.v2.why_not.c_str());
      else
        printf("kernel cgroups: %s not writable (%s)\n", k.v1.ok() ? "the unified hierarchy" : "v1 pids",
               (k.v1.ok() ? k.v2 : k.v1).why_not.c_str());
    }
    if (!cfg.no_mount && !mount.start(cfg.self_dir + "/cgcorefs", &mount_why))
      printf("cgcorefs mount: %s\n", mount_why.c_str());
    auto section = [&](const char* name, const std::function<std::vector<Row>()>& fn) {
      if (!cfg.wants(name)) return;
      progress(name);
      try {
        add(fn());
      } catch (const std::exception& e) {
        rows.push_back(value_row(std::string(name) + "_error", std::nullopt, "",
                                 std::string("error: ") + e.what()));
      }
    };
    section("moves", [&] { return bench_moves(cfg, k, mount, mount_why); });
    section("threads", [&] { return bench_threads(cfg, k); });
    section("mkdir", [&] { return bench_mkdir(cfg, k, mount, mount_why); });
    section("reads", [&] { return bench_reads(cfg, k, mount, mount_why); });
    section("supervised", [&] { return bench_supervised(cfg, mount, mount_why); });
    if (!cfg.no_mount) section("journal", [&] { return bench_journal(cfg); });
    mount.stop();
    section("transports", [&] { return bench_transports(cfg, k); });
    k.cleanup();
  }
  guard_finish();

  set_target(rows, "move_1thread_engine", ">= 20", 20);
  set_target(rows, "move_5000threads_per_thread_engine", ">= 10", 10);
  set_target(rows, "mkdir_rmdir_engine", ">= 20", 20);
  set_target(rows, "move_1thread_mount", ">= 0.333 (3x)", 1.0 / 3);
  set_target(rows, "read_procs_10000_mount", ">= 0.5 (2x)", 0.5);
  for (Row& r : rows)
    if ((r.name == "fork_exit_supervised_vs_plain" || r.name == "mmap_supervised_vs_plain") && r.cgcore) {
      r.target = "<= 1.5";
      r.met = *r.cgcore <= 1.5;
    }
  for (Row& r : rows)
    if (r.name == "mm_owner_baseline_leader_first_1e6_vs_1e3" && r.cgcore) {
      r.target = "> 1.5 (grows)";
      r.met = *r.cgcore > 1.5;
    }

  printf("\n");
  print_table(rows, stdout);
  printf("\nratio = kernel / cgcore (higher: cgcore faster). %.1f s, load average %s\n",
         static_cast<double>(now_ns() - t_start) / 1e9, loadavg().c_str());
  int rc = 0;
  for (const Row& r : rows)
    if (r.name.size() > 6 && r.name.compare(r.name.size() - 6, 6, "_error") == 0) rc = 1;
  if (!cfg.json.empty() && !write_json(rows, cfg.json)) {
    fprintf(stderr, "cgbench: cannot write %s\n", cfg.json.c_str());
    rc = 1;
  }
  return rc;
}

}  // namespace
}  // namespace cgbench

int main(int argc, char** argv) { return cgbench::run(argc, argv); }
