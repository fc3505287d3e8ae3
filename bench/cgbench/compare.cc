// The sections that put cgcore and the kernel on the same work, round by
// round (kernel, engine, mount, kernel, engine, mount...), so that a burst
// of noise on the machine hits both sides alike: moving a process, moving
// many threads, mkdir + rmdir, reading cgroup.procs.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>

#include "bench/cgbench/common.h"
#include "bench/cgbench/stats.h"
#include "bench/counting_allocator.h"
#include "controllers/registry.h"
#include "fs/cgroupfs.h"

namespace cgbench {

using namespace cgcore;
using cgcore::bench::nr_allocs;

namespace {

std::optional<double> med(const Samples& s) {
  return s.empty() ? std::nullopt : std::optional<double>(s.median());
}
std::optional<double> p99(const Samples& s) {
  return s.empty() ? std::nullopt : std::optional<double>(s.p99());
}

// A pair of cgroups a, b (cgroup.procs open for writing) and a process that
// moves between them: kernel or mount side.
struct FilePair {
  std::string base;  // directory holding a and b
  int fd[2] = {-1, -1};
  pid_t pid = -1;     // what is written
  bool in_b = false;  // where it is
  std::string err;    // set once a write failed (the series stops)
  // The kernel's write is bimodal: the first cgroup.procs write after an
  // idle spell waits for an RCU grace period (cgroup_threadgroup_rwsem is a
  // percpu rwsem; its writer side runs rcu_sync), later writes in the same
  // burst do not. `s` holds the writes of a burst after its first, `first`
  // the first ones.
  Samples s, first;

  bool setup(const std::string& dir, pid_t p) {
    base = dir;
    pid = p;
    if ((!make_dir(dir + "/a") && errno != EEXIST) || (!make_dir(dir + "/b") && errno != EEXIST)) {
      err = "mkdir " + dir + ": " + strerror(errno);
      return false;
    }
    fd[0] = open_wo(dir + "/a/cgroup.procs");
    fd[1] = open_wo(dir + "/b/cgroup.procs");
    if (fd[0] < 0 || fd[1] < 0 || !write_pid(fd[0], pid)) {
      err = "cannot move " + std::to_string(pid) + " into " + dir + "/a: " + strerror(errno);
      return false;
    }
    in_b = false;
    return true;
  }
  bool ok() const { return fd[0] >= 0 && err.empty(); }
  // A burst of n timed moves; each sample is one write(2), divided by `per`.
  void run(int n, double per = 1) {
    if (!ok()) return;
    for (int i = 0; i < n; ++i) {
      const int f = fd[in_b ? 0 : 1];
      const int64_t t0 = now_ns();
      const bool w = write_pid(f, pid);
      const int64_t t1 = now_ns();
      if (!w) {
        err = std::string("write to cgroup.procs failed: ") + strerror(errno);
        return;
      }
      in_b = !in_b;
      (i == 0 ? first : s).add(static_cast<double>(t1 - t0) / per);
    }
  }
  // n moves, each after `idle_ms` of rest: the kernel's slow path.
  void run_isolated(int n, int idle_ms, Samples& out) {
    for (int i = 0; i < n && ok(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(idle_ms));
      const int f = fd[in_b ? 0 : 1];
      const int64_t t0 = now_ns();
      const bool w = write_pid(f, pid);
      const int64_t t1 = now_ns();
      if (!w) {
        err = std::string("write to cgroup.procs failed: ") + strerror(errno);
        return;
      }
      in_b = !in_b;
      out.add(static_cast<double>(t1 - t0));
    }
  }
  void close_fds() {
    for (int& f : fd)
      if (f >= 0) {
        close(f);
        f = -1;
      }
  }
  ~FilePair() { close_fds(); }
};

// The engine side: process p moves between a and b.
struct EnginePair {
  Engine* e = nullptr;
  Cgroup* a = nullptr;
  Cgroup* b = nullptr;
  Pid p = 0;
  bool in_b = false;
  Samples s;
  uint64_t allocs = 0, moves = 0;

  void warm() {
    must(e->migrate_process(p, *b), "warm-up move");
    must(e->migrate_process(p, *a), "warm-up move");
    in_b = false;
  }
  void run(int n, double per = 1) {
    for (int i = 0; i < n; ++i) {
      Cgroup& dst = in_b ? *a : *b;
      const uint64_t a0 = nr_allocs();
      const int64_t t0 = now_ns();
      Status st = e->migrate_process(p, dst);
      const int64_t t1 = now_ns();
      allocs += nr_allocs() - a0;
      must(st, "migrate_process");
      in_b = !in_b;
      ++moves;
      s.add(static_cast<double>(t1 - t0) / per);
    }
  }
};

std::string kernel_note(const KernelCgroups& k, bool v2) {
  const KernelHier& h = v2 ? k.v2 : k.v1;
  return h.ok() ? "" : "kernel: " + h.why_not;
}

std::string our_name() { return "cgbench." + std::to_string(getpid()); }

// The directory cgbench uses inside the mount's pids hierarchy; "" if the
// mount is not there.
std::string mount_dir(CgcorefsMount& m, bool v2 = false) {
  if (!m.ok()) return "";
  std::string d = (v2 ? m.unified_dir() : m.pids_dir()) + "/" + our_name();
  if (!make_dir(d) && errno != EEXIST) return "";
  return d;
}

Row mount_row(const std::string& name, CgcorefsMount& m, const std::string& mount_why,
              const Samples& mount, const Samples& kernel, const std::string& unit,
              const std::string& err, bool use_p99 = false) {
  auto pick = use_p99 ? p99 : med;
  if (!m.ok()) {
    Row r = time_row(name, std::nullopt, pick(kernel), unit, mount_why);
    return r;
  }
  std::string note = "through the mount (" + m.mode() + ")";
  if (!err.empty()) note += "; " + err;
  return time_row(name, pick(mount), pick(kernel), unit, note);
}

}  // namespace

// ---------------------------------------------------------------- 1. moves

std::vector<Row> bench_moves(const Config& cfg, KernelCgroups& k, CgcorefsMount& m,
                             const std::string& mount_why) {
  const int rounds = cfg.quick ? 8 : 40;
  const int kops = 25;
  const int eops = cfg.quick ? 500 : 2000;

  EngineBed bed;
  const Pid p = bed.make_process(1);
  EnginePair e1{&bed.engine, bed.a1.get(), bed.b1.get(), p};
  EnginePair e2{&bed.engine, bed.a2.get(), bed.b2.get(), p};
  e1.warm();
  e2.warm();

  pid_t sleeper = -1;
  if (k.any() || m.ok()) sleeper = fork_sleeper();
  FilePair kv1, kv2, mv1;
  if (k.v1.ok()) {
    make_dir(k.v1.dir + "/move1");
    kv1.setup(k.v1.dir + "/move1", sleeper);
  }
  if (k.v2.ok()) {
    make_dir(k.v2.dir + "/move1");
    kv2.setup(k.v2.dir + "/move1", sleeper);
  }
  std::string mdir = mount_dir(m);
  if (!mdir.empty()) {
    make_dir(mdir + "/move1");
    mv1.setup(mdir + "/move1", m.sim() ? 2 : sleeper);
  }

  for (int r = 0; r < rounds; ++r) {
    kv1.run(kops);
    e1.run(eops);
    mv1.run(kops);
    kv2.run(kops);
    e2.run(eops);
  }
  // The kernel's write after 50 ms of rest (what a lone `echo PID >
  // cgroup.procs` pays).
  Samples iso1, iso2;
  const int iso = cfg.quick ? 5 : 20;
  kv1.run_isolated(iso, 50, iso1);
  kv2.run_isolated(iso, 50, iso2);
  kv1.close_fds();
  kv2.close_fds();
  mv1.close_fds();
  kill_child(sleeper);

  std::vector<Row> rows;
  auto kerr = [&](const FilePair& f, bool v2) {
    std::string n = kernel_note(k, v2);
    if (!f.err.empty()) n += (n.empty() ? "" : "; ") + std::string("kernel: ") + f.err;
    return n;
  };
  rows.push_back(time_row("move_1thread_engine", med(e1.s), med(kv1.s), "ns",
                          "engine API, v1 pids hierarchy; kernel: write(2) to v1 pids cgroup.procs" +
                              (kerr(kv1, false).empty() ? "" : "; " + kerr(kv1, false))));
  rows.push_back(time_row("move_1thread_engine_p99", p99(e1.s), p99(kv1.s), "ns", ""));
  rows.push_back(time_row("move_1thread_engine_v2", med(e2.s), med(kv2.s), "ns",
                          "default hierarchy; kernel: unified cgroup.procs" +
                              (kerr(kv2, true).empty() ? "" : "; " + kerr(kv2, true))));
  rows.push_back(time_row("move_1thread_engine_v2_p99", p99(e2.s), p99(kv2.s), "ns", ""));
  rows.push_back(time_row("move_1thread_engine_vs_idle_kernel", med(e1.s), med(iso1), "ns",
                          "kernel: a v1 write after 50 ms idle (waits for an RCU grace period)"));
  rows.push_back(time_row("move_1thread_engine_v2_vs_idle_kernel", med(e2.s), med(iso2), "ns",
                          "kernel: a unified write after 50 ms idle"));
  rows.push_back(mount_row("move_1thread_mount", m, mount_why, mv1.s, kv1.s, "ns", mv1.err));
  rows.push_back(mount_row("move_1thread_mount_p99", m, mount_why, mv1.s, kv1.s, "ns", mv1.err, true));
  rows.push_back(value_row("allocs_per_move_1thread_engine",
                           static_cast<double>(e1.allocs) / static_cast<double>(e1.moves),
                           "allocs", "heap allocations per engine move, v1 pids hierarchy"));
  rows.push_back(value_row("allocs_per_move_1thread_engine_v2",
                           static_cast<double>(e2.allocs) / static_cast<double>(e2.moves),
                           "allocs", "default hierarchy"));
  return rows;
}

// ---------------------------------------------------------------- 2. threads

std::vector<Row> bench_threads(const Config& cfg, KernelCgroups& k) {
  const int rounds = cfg.quick ? 4 : 20;
  std::vector<Row> rows;
  for (int n : {10, 100, 1000, 5000}) {
    const int eops = n >= 1000 ? (cfg.quick ? 4 : 10) : (cfg.quick ? 20 : 50);
    EngineBed bed;
    const Pid p = bed.make_process(n);
    EnginePair e1{&bed.engine, bed.a1.get(), bed.b1.get(), p};
    EnginePair e2{&bed.engine, bed.a2.get(), bed.b2.get(), p};
    e1.warm();
    e2.warm();

    pid_t helper = -1;
    std::string herr;
    if (k.any()) {
      helper = fork_threads(n);
      if (helper < 0) herr = "could not start a process of " + std::to_string(n) + " threads";
    }
    FilePair kv1, kv2;
    const std::string sub = "/threads" + std::to_string(n);
    if (helper > 0 && k.v1.ok()) {
      make_dir(k.v1.dir + sub);
      kv1.setup(k.v1.dir + sub, helper);
    }
    if (helper > 0 && k.v2.ok()) {
      make_dir(k.v2.dir + sub);
      kv2.setup(k.v2.dir + sub, helper);
    }
    // Kernel: bursts of 3 writes; the first of each (which may wait for an
    // RCU grace period) is reported apart.
    for (int r = 0; r < rounds; ++r) {
      kv1.run(3, n);
      e1.run(eops, n);
      kv2.run(3, n);
      e2.run(eops, n);
    }
    kv1.close_fds();
    kv2.close_fds();
    kill_child(helper);
    if (k.v1.ok()) remove_cgroup_tree(k.v1.dir + sub);
    if (k.v2.ok()) remove_cgroup_tree(k.v2.dir + sub);

    auto note = [&](const FilePair& f, bool v2) {
      std::string s = kernel_note(k, v2);
      if (!herr.empty()) s += (s.empty() ? "" : "; ") + herr;
      if (!f.err.empty()) s += (s.empty() ? "" : "; ") + f.err;
      return s;
    };
    const std::string ns = std::to_string(n);
    rows.push_back(time_row("move_" + ns + "threads_per_thread_engine", med(e1.s), med(kv1.s), "ns",
                            note(kv1, false)));
    rows.push_back(time_row("move_" + ns + "threads_per_thread_engine_v2", med(e2.s), med(kv2.s),
                            "ns", note(kv2, true)));
    rows.push_back(time_row("move_" + ns + "threads_per_thread_engine_vs_first_write", med(e1.s),
                            med(kv1.first), "ns", "kernel: the first v1 write of each burst"));
    rows.push_back(value_row("allocs_per_task_move_" + ns + "threads_engine",
                             static_cast<double>(e1.allocs + e2.allocs) /
                                 (static_cast<double>(e1.moves + e2.moves) * n),
                             "allocs", ""));
  }
  return rows;
}

// ---------------------------------------------------------------- 3. mkdir + rmdir

std::vector<Row> bench_mkdir(const Config& cfg, KernelCgroups& k, CgcorefsMount& m,
                             const std::string& mount_why) {
  const int rounds = cfg.quick ? 8 : 40;
  const int kops = 20;
  const int eops = cfg.quick ? 500 : 2000;
  EngineBed bed;
  Samples e1, e2, kv1, kv2, mv;
  std::string kerr1, kerr2, merr;
  uint64_t allocs = 0, ops = 0;

  auto engine_run = [&](Cgroup& parent, Samples& s) {
    for (int i = 0; i < eops; ++i) {
      const uint64_t a0 = nr_allocs();
      const int64_t t0 = now_ns();
      Status st;
      {
        Result<CgroupPtr> c = bed.engine.mkdir(parent, "x");
        st = c.ok() ? bed.engine.rmdir(*c.value()) : c.status();
      }
      const int64_t t1 = now_ns();
      allocs += nr_allocs() - a0;
      ++ops;
      must(st, "mkdir/rmdir");
      s.add(static_cast<double>(t1 - t0));
    }
  };
  auto file_run = [&](const std::string& dir, Samples& s, std::string& err) {
    if (dir.empty() || !err.empty()) return;
    const std::string x = dir + "/x";
    for (int i = 0; i < kops; ++i) {
      const int64_t t0 = now_ns();
      bool ok = make_dir(x) && rmdir(x.c_str()) == 0;
      const int64_t t1 = now_ns();
      if (!ok) {
        err = "mkdir/rmdir " + x + ": " + strerror(errno);
        rmdir(x.c_str());
        return;
      }
      s.add(static_cast<double>(t1 - t0));
    }
  };
  const std::string kd1 = k.v1.ok() ? k.v1.dir : "", kd2 = k.v2.ok() ? k.v2.dir : "";
  const std::string md = mount_dir(m);
  for (int r = 0; r < rounds; ++r) {
    file_run(kd1, kv1, kerr1);
    engine_run(*bed.a1, e1);
    file_run(md, mv, merr);
    file_run(kd2, kv2, kerr2);
    engine_run(*bed.a2, e2);
  }
  auto note = [&](const std::string& base, const std::string& e, bool v2) {
    std::string s = base;
    std::string kn = kernel_note(k, v2);
    if (!kn.empty()) s += "; " + kn;
    if (!e.empty()) s += "; kernel: " + e;
    return s;
  };
  std::vector<Row> rows;
  rows.push_back(time_row("mkdir_rmdir_engine", med(e1), med(kv1), "ns",
                          note("v1 pids hierarchy (a pids css each)", kerr1, false)));
  rows.push_back(time_row("mkdir_rmdir_engine_p99", p99(e1), p99(kv1), "ns", ""));
  rows.push_back(time_row("mkdir_rmdir_engine_v2", med(e2), med(kv2), "ns",
                          note("default hierarchy, no controller enabled", kerr2, true)));
  rows.push_back(mount_row("mkdir_rmdir_mount", m, mount_why, mv, kv1, "ns", merr));
  rows.push_back(value_row("allocs_per_mkdir_rmdir_engine",
                           static_cast<double>(allocs) / static_cast<double>(ops), "allocs", ""));
  return rows;
}

// ---------------------------------------------------------------- 4. reads

namespace {

// Waits until `path` lists at least `n` lines (the mount's host tracker
// learns of forks asynchronously); returns the last count.
long wait_lines(const std::string& path, long n, int timeout_ms) {
  long c = -1;
  for (int waited = 0;; waited += 10) {
    c = read_count_lines(path);
    if (c >= n || waited >= timeout_ms) return c;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

std::vector<Row> bench_reads(const Config& cfg, KernelCgroups& k, CgcorefsMount& m,
                             const std::string& mount_why) {
  const int rounds = cfg.quick ? 5 : 20;
  std::vector<Row> rows;

  // cgcore's file layer in process (no FUSE): the same reads, virtual tasks.
  Engine fe;
  must(register_builtin_controllers(fe), "register controllers");
  std::unique_ptr<fs::CgroupFs> cfs = must(fs::CgroupFs::create(fe, "hybrid"), "CgroupFs::create");
  Hierarchy* fpids = nullptr;
  for (const fs::LayoutDir& d : cfs->layout().dirs)
    if (d.name == "pids") fpids = d.hierarchy;
  if (!fpids) throw BenchError("no pids directory in the hybrid layout");
  CgroupPtr fr1 = must(fe.mkdir(fpids->root(), "r"), "fs mkdir /pids/r");
  CgroupPtr fr2 = must(fe.mkdir(fe.default_hierarchy().root(), "r"), "fs mkdir /unified/r");
  const fs::Caller root;
  size_t fs_have = 0;

  // The kernel's and the mount's: a factory forks sleepers inside r.
  struct Dir {
    std::string r, park;
    bool ok() const { return !r.empty(); }
  };
  auto prep = [](const std::string& base) {
    Dir d;
    if (base.empty()) return d;
    if ((make_dir(base + "/r") || errno == EEXIST) && (make_dir(base + "/park") || errno == EEXIST)) {
      d.r = base + "/r";
      d.park = base + "/park";
    }
    return d;
  };
  Dir kd1 = prep(k.v1.ok() ? k.v1.dir : ""), kd2 = prep(k.v2.ok() ? k.v2.dir : "");
  Dir md1 = prep(mount_dir(m)), md2 = prep(mount_dir(m, true));
  Factory factory;
  std::string kerr, merr;
  const bool real = kd1.ok() || kd2.ok() || ((md1.ok() || md2.ok()) && !m.sim());
  if (real && !factory.start()) kerr = merr = "could not start the process factory";
  int have = 0;      // sleepers made so far
  int sim_next = 2;  // --sim mount: the next virtual pid to move into r

  for (int n : {1000, 10000}) {
    const std::string ns = std::to_string(n);
    // -- populate the in-process file layer's r
    {
      std::vector<Pid> add;
      while (fs_have < static_cast<size_t>(n)) {
        add.push_back(must(fe.spawn({}), "spawn"));
        ++fs_have;
      }
      must(fe.migrate_processes(add, *fr1), "fs: move into /pids/r");
      must(fe.migrate_processes(add, *fr2), "fs: move into /unified/r");
    }
    // -- the kernel's and the mount's (host mode): fork inside r
    if (factory.pid() > 0) {
      const bool mount_real = !m.sim();
      for (const Dir* d : {&kd1, &kd2, mount_real ? &md1 : nullptr, mount_real ? &md2 : nullptr})
        if (d && d->ok() && !write_pid_path(d->r + "/cgroup.procs", factory.pid())) {
          std::string& e = (d == &md1 || d == &md2) ? merr : kerr;
          if (e.empty()) e = "cannot move the factory into " + d->r + ": " + strerror(errno);
        }
      if (!factory.spawn(n - have)) kerr = merr = "the factory could not fork " + std::to_string(n - have);
      have = n;
      // The mount's host tracker learns of the forks through events: wait
      // until it shows them all before the factory leaves r.
      if (mount_real)
        for (const Dir* d : {&md1, &md2})
          if (d->ok()) {
            long c = wait_lines(d->r + "/cgroup.procs", n + 1, 30000);
            if (c < n + 1 && merr.empty())
              merr = "the mount showed " + std::to_string(c) + " of " + std::to_string(n + 1) +
                     " processes after 30 s";
          }
      for (const Dir* d : {&kd1, &kd2, mount_real ? &md1 : nullptr, mount_real ? &md2 : nullptr})
        if (d && d->ok()) write_pid_path(d->park + "/cgroup.procs", factory.pid());
    }
    // Let the mount's host tracker finish with the burst of fork events
    // (it may resynchronise from /proc after one) before timing reads.
    if (m.ok() && !m.sim() && factory.pid() > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(cfg.quick ? 1000 : 3000));
    if (m.ok() && m.sim()) {
      for (; sim_next < n + 2; ++sim_next)
        for (const Dir* d : {&md1, &md2})
          if (d->ok() && !write_pid_path(d->r + "/cgroup.procs", sim_next) && merr.empty())
            merr = "cannot move virtual pid " + std::to_string(sim_next) + ": " + strerror(errno);
    }

    // -- rounds
    Samples kp1, kt1, kp2, mp1, mt1, mp2, fp1, fp2;
    std::string rk, rm;  // line-count mismatches
    auto file_read = [&](const Dir& d, const char* file, Samples& s, std::string& bad) {
      if (!d.ok()) return;
      const std::string path = d.r + "/" + file;
      const int64_t t0 = now_ns();
      long lines = read_count_lines(path);
      const int64_t t1 = now_ns();
      if (lines < 0) {
        if (bad.empty()) bad = "read " + path + ": " + strerror(errno);
        return;
      }
      if (lines != n && bad.empty())
        bad = path.substr(path.rfind('/', path.rfind('/') - 1)) + " listed " + std::to_string(lines);
      s.add(static_cast<double>(t1 - t0) / 1000.0);
    };
    auto fs_read = [&](const char* path, Samples& s) {
      const int64_t t0 = now_ns();
      std::string text = must(cfs->read_path(path, root), std::string("fs read ") + path);
      const int64_t t1 = now_ns();
      long lines = 0;
      for (char c : text) lines += c == '\n';
      if (lines != n) throw BenchError(std::string(path) + " listed " + std::to_string(lines));
      s.add(static_cast<double>(t1 - t0) / 1000.0);
    };
    for (int r = 0; r < rounds; ++r) {
      file_read(kd1, "cgroup.procs", kp1, rk);
      file_read(md1, "cgroup.procs", mp1, rm);
      fs_read("/pids/r/cgroup.procs", fp1);
      file_read(kd1, "tasks", kt1, rk);
      file_read(md1, "tasks", mt1, rm);
      file_read(kd2, "cgroup.procs", kp2, rk);
      file_read(md2, "cgroup.procs", mp2, rm);
      fs_read("/unified/r/cgroup.procs", fp2);
    }
    auto knote = [&](bool v2) {
      std::string s = kernel_note(k, v2);
      for (const std::string* e : {&kerr, &rk})
        if (!e->empty()) s += (s.empty() ? "kernel: " : "; kernel: ") + *e;
      return s;
    };
    std::string mextra = merr.empty() ? rm : merr + (rm.empty() ? "" : "; " + rm);
    rows.push_back(mount_row("read_procs_" + ns + "_mount", m, mount_why, mp1, kp1, "us", mextra));
    rows.push_back(mount_row("read_tasks_" + ns + "_mount", m, mount_why, mt1, kt1, "us", mextra));
    rows.push_back(mount_row("read_procs_" + ns + "_mount_v2", m, mount_why, mp2, kp2, "us", mextra));
    rows.push_back(time_row("read_procs_" + ns + "_fs", med(fp1), med(kp1), "us",
                            "cgcore's file layer in process (no FUSE), v1 pids" +
                                (knote(false).empty() ? "" : "; " + knote(false))));
    rows.push_back(time_row("read_procs_" + ns + "_fs_v2", med(fp2), med(kp2), "us",
                            "in process, unified" + (knote(true).empty() ? "" : "; " + knote(true))));
  }
  factory.stop();
  for (const Dir* d : {&kd1, &kd2})
    if (d->ok()) remove_cgroup_tree(d->r);
  return rows;
}

}  // namespace cgbench
