// The sections that measure the engine alone: fork + exit as the number of
// processes grows (against the old mm->owner scheme), transferring a
// cgroup of a million tasks, memory per task and per cgroup, fork + exit
// throughput under concurrent migration. Each runs in a child process
// (run_in_child), so that its large heap never stays in cgbench's process.
#include <atomic>
#include <cmath>
#include <memory>
#include <thread>

#include "bench/cgbench/common.h"
#include "bench/cgbench/stats.h"
#include "bench/counting_allocator.h"
#include "bench/mm_owner_baseline.h"

namespace cgbench {

using namespace cgcore;
using cgcore::bench::nr_allocs;
namespace mmo = cgcore::bench::mm_owner;

namespace {

std::string exp10_name(int64_t n) {
  int e = 0;
  for (int64_t x = n; x >= 10 && x % 10 == 0; x /= 10) ++e;
  return "1e" + std::to_string(e);
}

}  // namespace

// ---------------------------------------------------------------- 5. fork + exit

// One engine per size, N one-thread processes in cgroup a of the default
// hierarchy with memory and pids enabled (so a fork points the child's new
// address space at its memory cgroup: mm->memcg), and one of them forking.
// Two operations:
//   fork_exit           fork, then the child exits;
//   fork_exit_leader_first  fork, the child starts a thread (sharing its
//                       address space), the child's leader exits first, then
//                       the thread — the case where the old scheme searched
//                       every process for the address space's next owner.
// The baseline runs the same two operations on the mm->owner model with
// the same N processes. The sizes are measured round-robin, so that noise
// spreads over them alike.
std::vector<Row> bench_fork_exit(const Config& cfg) {
  const std::vector<int64_t> sizes = {1000, 10000, 100000, 1000000};
  const int rounds = cfg.quick ? 4 : 16;
  const int ops = cfg.quick ? 2000 : 8000;               // per round, engine and plain baseline
  const int64_t baseline_budget_ns = cfg.quick ? 30'000'000 : 120'000'000;  // leader-first baseline

  struct Bed {
    int64_t n;
    std::unique_ptr<EngineBed> bed;
    Pid parent = 0;
    mmo::Model model;
    mmo::Task* mparent = nullptr;
    Samples fe, fl, bfe, bfl;
    uint64_t allocs = 0, allocs_ops = 0;
  };
  std::vector<std::unique_ptr<Bed>> beds;
  for (int64_t n : sizes) {
    auto b = std::make_unique<Bed>();
    b->n = n;
    b->bed = std::make_unique<EngineBed>(false);
    b->bed->enable_v2({"memory", "pids"});
    Engine& e = b->bed->engine;
    for (int64_t i = 0; i < n; ++i) {
      Pid p = must(e.spawn({}), "spawn");
      if (i == 0) b->parent = p;
    }
    must(e.transfer(b->bed->v2root(), *b->bed->a2), "transfer into a");
    for (int64_t i = 0; i < n; ++i) {
      mmo::Task* t = b->model.spawn();
      if (i == 0) b->mparent = t;
    }
    // Warm up: the first fork of a bed allocates its css_set-independent
    // bits (task table pages...).
    Pid c = must(e.fork(b->parent), "fork");
    must(e.exit_process(c), "exit");
    beds.push_back(std::move(b));
  }

  for (int r = 0; r < rounds; ++r) {
    for (auto& bp : beds) {
      Bed& b = *bp;
      Engine& e = b.bed->engine;
      for (int i = 0; i < ops; ++i) {
        const uint64_t a0 = nr_allocs();
        const int64_t t0 = now_ns();
        Result<Pid> c = e.fork(b.parent);
        Status st = c.ok() ? e.exit_process(*c) : c.status();
        const int64_t t1 = now_ns();
        b.allocs += nr_allocs() - a0;
        ++b.allocs_ops;
        must(st, "fork + exit");
        b.fe.add(static_cast<double>(t1 - t0));
      }
      for (int i = 0; i < ops; ++i) {
        const int64_t t0 = now_ns();
        Pid c = must(e.fork(b.parent), "fork");
        Pid t = must(e.clone_thread(c), "clone_thread");
        must(e.exit_thread(c), "leader exit");
        must(e.exit_thread(t), "thread exit");
        const int64_t t1 = now_ns();
        b.fl.add(static_cast<double>(t1 - t0));
      }
      for (int i = 0; i < ops; ++i) {
        const int64_t t0 = now_ns();
        mmo::Task* c = b.model.fork(b.mparent);
        b.model.exit_task(c);
        const int64_t t1 = now_ns();
        b.bfe.add(static_cast<double>(t1 - t0));
      }
      const int64_t start = now_ns();
      for (int i = 0; i < ops && now_ns() - start < baseline_budget_ns / rounds; ++i) {
        const int64_t t0 = now_ns();
        mmo::Task* c = b.model.fork(b.mparent);
        mmo::Task* t = b.model.clone_thread(c);
        b.model.exit_task(c);
        b.model.exit_task(t);
        const int64_t t1 = now_ns();
        b.bfl.add(static_cast<double>(t1 - t0));
      }
    }
  }

  std::vector<Row> rows;
  for (auto& bp : beds) {
    Bed& b = *bp;
    const std::string s = exp10_name(b.n);
    rows.push_back(value_row("fork_exit_" + s + "_engine", b.fe.median(), "ns",
                             std::to_string(b.n) + " processes; memory + pids enabled"));
    rows.push_back(value_row("fork_exit_" + s + "_engine_mean", b.fe.mean(), "ns",
                             "mean (the median hides the task table's page churn)"));
    rows.push_back(value_row("fork_exit_leader_first_" + s + "_engine", b.fl.median(), "ns",
                             "fork, thread, leader exits first, thread exits"));
    rows.push_back(value_row("mm_owner_baseline_fork_exit_" + s, b.bfe.median(), "ns",
                             "baseline model (not cgcore)"));
    rows.push_back(value_row("mm_owner_baseline_fork_exit_leader_first_" + s, b.bfl.median(), "ns",
                             "baseline model (not cgcore): next-owner walk"));
  }
  const Bed& lo = *beds.front();
  const Bed& hi = *beds.back();
  Row r = value_row("fork_exit_1e6_vs_1e3", hi.fe.median() / lo.fe.median(), "x",
                    "engine fork + exit: cost at 10^6 processes / at 10^3");
  r.target = "<= 1.5";
  r.met = *r.cgcore <= 1.5;
  rows.push_back(r);
  rows.push_back(value_row("fork_exit_1e6_vs_1e3_mean", hi.fe.mean() / lo.fe.mean(), "x",
                           "the same with means"));
  Row r2 = value_row("fork_exit_leader_first_1e6_vs_1e3", hi.fl.median() / lo.fl.median(), "x",
                     "engine, leader exits first");
  r2.target = "<= 1.5";
  r2.met = *r2.cgcore <= 1.5;
  rows.push_back(r2);
  rows.push_back(value_row("mm_owner_baseline_fork_exit_1e6_vs_1e3", hi.bfe.median() / lo.bfe.median(),
                           "x", "baseline model (not cgcore)"));
  rows.push_back(value_row("mm_owner_baseline_leader_first_1e6_vs_1e3",
                           hi.bfl.median() / lo.bfl.median(), "x",
                           "baseline model (not cgcore): grows with the number of processes"));
  rows.push_back(value_row("allocs_per_fork_exit_1e6_engine",
                           static_cast<double>(hi.allocs) / static_cast<double>(hi.allocs_ops),
                           "allocs", "fork + exit at 10^6 processes"));
  return rows;
}

// ---------------------------------------------------------------- 6. transfer

// Every task of a cgroup moved to its sibling (Engine::transfer), with
// 10^3 and 10^6 one-thread processes, in the v1 pids hierarchy and in the
// default hierarchy with memory and pids enabled. Time per transfer and heap
// allocations per transfer; the allocations a task adds are
// (allocs at 10^6 - allocs at 10^3) / (10^6 - 10^3).
std::vector<Row> bench_transfer(const Config& cfg) {
  const int rounds = cfg.quick ? 4 : 12;
  std::vector<Row> rows;
  struct Result1 {
    Samples t1, t2;  // v1, v2 (ns per transfer)
    double allocs1 = 0, allocs2 = 0;  // per transfer
  };
  std::vector<std::pair<int64_t, Result1>> results;
  for (int64_t n : {int64_t{1000}, int64_t{1000000}}) {
    EngineBed bed;
    bed.enable_v2({"memory"});  // pids is in the v1 hierarchy here
    Engine& e = bed.engine;
    for (int64_t i = 0; i < n; ++i) must(e.spawn({}), "spawn");
    must(e.transfer(bed.v1->root(), *bed.a1), "transfer into a1");
    must(e.transfer(bed.v2root(), *bed.a2), "transfer into a2");
    // Warm up: there and back in both.
    for (int i = 0; i < 2; ++i) {
      must(e.transfer(*bed.a1, *bed.b1), "warm-up");
      must(e.transfer(*bed.b1, *bed.a1), "warm-up");
      must(e.transfer(*bed.a2, *bed.b2), "warm-up");
      must(e.transfer(*bed.b2, *bed.a2), "warm-up");
    }
    Result1 res;
    uint64_t al1 = 0, al2 = 0;
    int nt = 0;
    for (int r = 0; r < rounds; ++r) {
      for (int dir = 0; dir < 2; ++dir) {
        Cgroup& f1 = dir ? *bed.b1 : *bed.a1;
        Cgroup& to1 = dir ? *bed.a1 : *bed.b1;
        Cgroup& f2 = dir ? *bed.b2 : *bed.a2;
        Cgroup& to2 = dir ? *bed.a2 : *bed.b2;
        uint64_t a0 = nr_allocs();
        int64_t t0 = now_ns();
        must(e.transfer(f1, to1), "transfer v1");
        int64_t t1 = now_ns();
        al1 += nr_allocs() - a0;
        res.t1.add(static_cast<double>(t1 - t0));
        a0 = nr_allocs();
        t0 = now_ns();
        must(e.transfer(f2, to2), "transfer v2");
        t1 = now_ns();
        al2 += nr_allocs() - a0;
        res.t2.add(static_cast<double>(t1 - t0));
        ++nt;
      }
    }
    if (e.cgroup_tids(*bed.a1).size() != static_cast<size_t>(n) ||
        e.cgroup_tids(*bed.a2).size() != static_cast<size_t>(n))
      throw BenchError("transfer: tasks went missing");
    res.allocs1 = static_cast<double>(al1) / nt;
    res.allocs2 = static_cast<double>(al2) / nt;
    const std::string s = exp10_name(n);
    rows.push_back(value_row("transfer_" + s + "_engine", res.t1.median() / 1e6, "ms",
                             std::to_string(n) + " processes, v1 pids hierarchy"));
    rows.push_back(value_row("transfer_" + s + "_per_task_engine", res.t1.median() / n, "ns", ""));
    rows.push_back(value_row("transfer_" + s + "_allocs_engine", res.allocs1, "allocs",
                             "heap allocations per transfer"));
    rows.push_back(value_row("transfer_" + s + "_engine_v2", res.t2.median() / 1e6, "ms",
                             "default hierarchy, memory enabled"));
    rows.push_back(value_row("transfer_" + s + "_per_task_engine_v2", res.t2.median() / n, "ns", ""));
    rows.push_back(value_row("transfer_" + s + "_allocs_engine_v2", res.allocs2, "allocs", ""));
    results.emplace_back(n, res);
  }
  const auto& lo = results.front();
  const auto& hi = results.back();
  const double dn = static_cast<double>(hi.first - lo.first);
  const double per_task = std::max((hi.second.allocs1 - lo.second.allocs1) / dn,
                                   (hi.second.allocs2 - lo.second.allocs2) / dn);
  Row r = value_row("allocs_per_migrated_task", per_task, "allocs",
                    "marginal: (allocs per transfer of 10^6 tasks - of 10^3) / (10^6 - 10^3), "
                    "worse of v1 and v2");
  r.target = "0";
  r.met = per_task <= 0;
  rows.push_back(r);
  return rows;
}

// ---------------------------------------------------------------- 7. memory

// Resident memory growth (/proc/self/statm) while the engine (cgcore's
// controllers registered) gains tasks, processes and cgroups. The engines
// are never freed (the child process ends): freed memory would be reused by
// the next measurement without growing the resident set.
std::vector<Row> bench_memory(const Config& cfg) {
  const int64_t procs_for_threads = cfg.quick ? 1000 : 10000;  // x 1000 threads
  const int64_t threads = 1000;
  const int64_t procs = cfg.quick ? 100000 : 1000000;
  const int64_t cgroups = cfg.quick ? 100000 : 1000000;
  std::vector<Row> rows;
  const std::string scale = cfg.quick ? " (--quick: fewer, per-unit figures)" : "";

  {
    EngineBed& bed = *new EngineBed(false);
    Engine& e = bed.engine;
    must(e.set_pid_max(1 << 25), "set_pid_max");
    const long before = rss_bytes();
    for (int64_t p = 0; p < procs_for_threads; ++p) {
      Pid pid = must(e.spawn({}), "spawn");
      for (int64_t t = 1; t < threads; ++t) must(e.clone_thread(pid), "clone_thread");
    }
    const long after = rss_bytes();
    const int64_t tasks = procs_for_threads * threads;
    if (static_cast<int64_t>(e.nr_tasks()) < tasks) throw BenchError("tasks missing");
    Row r = value_row("bytes_per_task", static_cast<double>(after - before) / tasks, "bytes",
                      std::to_string(tasks) + " tasks (processes of 1000 threads)" + scale);
    r.target = "<= 48";
    r.met = *r.cgcore <= 48;
    rows.push_back(r);
  }
  {
    EngineBed& bed = *new EngineBed(false);
    Engine& e = bed.engine;
    bed.enable_v2({"memory", "pids"});
    const long before = rss_bytes();
    for (int64_t p = 0; p < procs; ++p) must(e.spawn({}), "spawn");
    const long after = rss_bytes();
    rows.push_back(value_row("bytes_per_process", static_cast<double>(after - before) / procs,
                             "bytes",
                             std::to_string(procs) + " one-thread processes (task + process + "
                                                     "address space)" + scale));
  }
  {
    EngineBed& bed = *new EngineBed(false);
    Engine& e = bed.engine;
    const int64_t fan = static_cast<int64_t>(std::sqrt(static_cast<double>(cgroups)));
    const long before = rss_bytes();
    std::vector<CgroupPtr> parents;
    for (int64_t i = 0; i < fan; ++i) {
      parents.push_back(must(e.mkdir(bed.v2root(), "p" + std::to_string(i)), "mkdir"));
      for (int64_t j = 1; j < fan; ++j) must(e.mkdir(*parents.back(), "c" + std::to_string(j)), "mkdir");
    }
    const long after = rss_bytes();
    rows.push_back(value_row("bytes_per_cgroup", static_cast<double>(after - before) / (fan * fan),
                             "bytes",
                             std::to_string(fan * fan) + " cgroups (" + std::to_string(fan) + " x " +
                                 std::to_string(fan) +
                                 "), default hierarchy, no controller enabled" + scale));
  }
  {
    EngineBed& bed = *new EngineBed(false);
    Engine& e = bed.engine;
    bed.enable_v2({"memory", "pids"});
    const int64_t fan = static_cast<int64_t>(std::sqrt(static_cast<double>(cgroups / 10)));
    // Children of a cgroup that enables memory and pids get a css of each.
    ControllerSet set;
    set.set(e.find_controller("memory")->id());
    set.set(e.find_controller("pids")->id());
    const long before = rss_bytes();
    for (int64_t i = 0; i < fan; ++i) {
      CgroupPtr p = must(e.mkdir(bed.v2root(), "p" + std::to_string(i)), "mkdir");
      must(e.set_subtree_control(*p, set, ControllerSet()), "subtree_control");
      for (int64_t j = 1; j < fan; ++j) must(e.mkdir(*p, "c" + std::to_string(j)), "mkdir");
    }
    const long after = rss_bytes();
    rows.push_back(value_row("bytes_per_cgroup_memory_pids",
                             static_cast<double>(after - before) / (fan * fan), "bytes",
                             std::to_string(fan * fan) +
                                 " cgroups with a memory and a pids css each"));
  }
  return rows;
}

// ---------------------------------------------------------------- 8. concurrency

// Two threads fork + exit as fast as they can (each from its own process in
// cgroup a; memory and pids enabled), for a fixed time, while a third
// thread: does nothing (none), moves an unrelated one-thread process between
// a and b continuously (unrelated), moves the two forking processes
// themselves between a and b (forkers; their threadgroup locks contend), or
// only spins without touching the engine (spin). The spin phase separates
// what a busy third thread changes by taking CPU time (three threads on
// fewer than three CPUs) from what its engine calls change.
std::vector<Row> bench_concurrency(const Config& cfg) {
  const int rounds = cfg.quick ? 3 : 8;
  const int64_t phase_ns = cfg.quick ? 250'000'000 : 1'000'000'000;
  EngineBed bed(false);
  bed.enable_v2({"memory", "pids"});
  Engine& e = bed.engine;
  for (int i = 0; i < 1000; ++i) must(e.spawn({}), "spawn");
  must(e.transfer(bed.v2root(), *bed.a2), "transfer");
  Pid forker[2], mover;
  for (Pid& f : forker) f = bed.make_process(1);
  mover = bed.make_process(1);

  enum Mode { kNone, kUnrelated, kForkers, kSpin };
  auto phase = [&](Mode mode, double* migrations_per_s) {
    std::atomic<bool> stop{false};
    std::atomic<int64_t> forks{0}, moves{0};
    std::atomic<int> failures{0};
    auto fork_loop = [&](Pid parent) {
      int64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        Result<Pid> c = e.fork(parent);
        if (!c.ok() || !e.exit_process(*c).ok()) {
          failures.fetch_add(1);
          break;
        }
        ++n;
      }
      forks.fetch_add(n);
    };
    auto move_loop = [&] {
      int64_t n = 0;
      bool in_b = false;
      if (mode == kSpin) {
        volatile uint64_t sink = 0;
        while (!stop.load(std::memory_order_relaxed)) sink = sink + 1;
        return;
      }
      while (!stop.load(std::memory_order_relaxed)) {
        Cgroup& dst = in_b ? *bed.a2 : *bed.b2;
        Status st = mode == kUnrelated ? e.migrate_process(mover, dst)
                                       : e.migrate_processes(forker, dst);
        if (!st.ok()) {
          failures.fetch_add(1);
          break;
        }
        in_b = !in_b;
        ++n;
      }
      moves.fetch_add(n);
    };
    const int64_t t0 = now_ns();
    std::thread f1(fork_loop, forker[0]), f2(fork_loop, forker[1]);
    std::thread m;
    if (mode != kNone) m = std::thread(move_loop);
    while (now_ns() - t0 < phase_ns) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    stop = true;
    f1.join();
    f2.join();
    if (m.joinable()) m.join();
    const double secs = static_cast<double>(now_ns() - t0) / 1e9;
    if (failures.load()) throw BenchError("an operation failed during the concurrency run");
    if (migrations_per_s) *migrations_per_s = static_cast<double>(moves.load()) / secs;
    return static_cast<double>(forks.load()) / secs;
  };

  Samples none, unrelated, forkers, spin, mig_u, mig_f;
  for (int r = 0; r < rounds; ++r) {
    double m1 = 0, m2 = 0;
    none.add(phase(kNone, nullptr));
    unrelated.add(phase(kUnrelated, &m1));
    forkers.add(phase(kForkers, &m2));
    spin.add(phase(kSpin, nullptr));
    mig_u.add(m1);
    mig_f.add(m2);
  }
  must(e.check_invariants(), "invariants after the concurrency run");
  std::vector<Row> rows;
  rows.push_back(value_row("fork_exit_throughput_2threads", none.median(), "ops/s",
                           "fork + exit per second, two threads, no migration"));
  rows.push_back(value_row("fork_exit_throughput_2threads_migrating_other", unrelated.median(),
                           "ops/s", "a third thread moves another process back and forth"));
  rows.push_back(value_row("fork_exit_throughput_2threads_migrating_forkers", forkers.median(),
                           "ops/s", "a third thread moves the two forking processes"));
  rows.push_back(value_row("fork_exit_throughput_ratio_migrating_other",
                           unrelated.median() / none.median(), "x", "with / without migrations"));
  rows.push_back(value_row("fork_exit_throughput_ratio_migrating_forkers",
                           forkers.median() / none.median(), "x", "with / without migrations"));
  rows.push_back(value_row("fork_exit_throughput_ratio_spinning_other", spin.median() / none.median(),
                           "x",
                           "a third thread only spins (" + std::to_string(std::thread::hardware_concurrency()) +
                               " CPUs), never touching the engine"));
  // With three busy threads on two CPUs the forkers get less CPU than with
  // two, whatever the engine does; against the spinning phase (the same
  // three threads, one never touching the engine) what is left is the
  // migrations' interference.
  rows.push_back(value_row("fork_exit_throughput_ratio_migrating_vs_spinning",
                           unrelated.median() / spin.median(), "x",
                           "migrating other / spinning other: the migrations' cost alone"));
  rows.push_back(value_row("migrations_per_s_other", mig_u.median(), "ops/s",
                           "the migrating thread's rate meanwhile"));
  rows.push_back(value_row("migrations_per_s_forkers", mig_f.median(), "ops/s",
                           "migrate_processes of both forkers, per second"));
  return rows;
}

}  // namespace cgbench
