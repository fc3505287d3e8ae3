// What cgbench's sections share: options, errors, the engine bed.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/cgbench/host.h"
#include "bench/cgbench/mount.h"
#include "bench/cgbench/report.h"
#include "core/engine.h"

namespace cgbench {

struct Config {
  bool quick = false;
  bool no_kernel = false;
  bool no_mount = false;
  std::string json;
  std::vector<std::string> only;  // section names; empty: all
  std::string self_dir;           // the directory of the cgbench binary
  bool wants(const std::string& section) const;
};

// A failed step of a benchmark (engine error, failed write...).
struct BenchError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void must(const cgcore::Status& st, const std::string& what);
template <typename T>
T must(cgcore::Result<T> r, const std::string& what) {
  must(r.status(), what);
  return std::move(r.value());
}

// An engine with cgcore's controllers (cpuset, memory, pids, numtasks,
// memrlimit), the pids controller in a v1 hierarchy of its own (as the
// host's /sys/fs/cgroup/pids) and the rest in the default hierarchy.
// Cgroups a1, b1 in the v1 hierarchy; a2, b2 in the default one.
struct EngineBed {
  cgcore::Engine engine;
  cgcore::Hierarchy* v1 = nullptr;
  cgcore::CgroupPtr a1, b1, a2, b2;
  explicit EngineBed(bool with_v1 = true);
  cgcore::Cgroup& v2root() { return engine.default_hierarchy().root(); }
  // Enables these controllers in the default root's subtree_control.
  void enable_v2(const std::vector<std::string>& names);
  // A process of `threads` threads, moved into a1 (if any) and a2.
  cgcore::Pid make_process(int threads);
};

// Resident set size of this process, in bytes (/proc/self/statm).
long rss_bytes();

// Runs `fn` in a forked child (so that its heap does not stay in cgbench's
// process, which forks real processes later) and returns its rows; an
// error row if it fails.
std::vector<Row> run_in_child(const std::string& section,
                              const std::function<std::vector<Row>()>& fn);

// Sections (each returns its rows).
// `mount_why`: the note of the mount's rows when it is not there.
std::vector<Row> bench_moves(const Config& cfg, KernelCgroups& k, CgcorefsMount& m,
                             const std::string& mount_why);
std::vector<Row> bench_threads(const Config& cfg, KernelCgroups& k);
std::vector<Row> bench_mkdir(const Config& cfg, KernelCgroups& k, CgcorefsMount& m,
                             const std::string& mount_why);
std::vector<Row> bench_reads(const Config& cfg, KernelCgroups& k, CgcorefsMount& m,
                             const std::string& mount_why);
std::vector<Row> bench_fork_exit(const Config& cfg);
// Supervision's cost (cgexec), supervised / plain; needs the mount in host mode.
std::vector<Row> bench_supervised(const Config& cfg, CgcorefsMount& m, const std::string& mount_why);
// Journaling's cost through the mount (on vs --no-state) and the restart
// time with many cgroups and processes (bench/cgbench/journal.cc).
std::vector<Row> bench_journal(const Config& cfg);
std::vector<Row> bench_transfer(const Config& cfg);
// The mount over /dev/fuse and over io_uring side by side (its own mounts).
std::vector<Row> bench_transports(const Config& cfg, KernelCgroups& k);
std::vector<Row> bench_memory(const Config& cfg);
std::vector<Row> bench_concurrency(const Config& cfg);

}  // namespace cgbench
