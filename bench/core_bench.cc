// core_bench: microbenchmarks of the cgroup core engine (core/engine.h).
//
// Build (Release) and run:
//   cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release && ninja -C build core_bench
//   build/bench/core_bench                                  # everything, ~25 s
//   build/bench/core_bench --benchmark_min_time=1           # steadier (default 0.2 s)
//   build/bench/core_bench --benchmark_filter=BM_MoveLargeProcess
//   build/bench/core_bench --benchmark_filter='BM_Transfer/1000000$'
//   build/bench/core_bench --benchmark_filter='BM_ForkExit/' --benchmark_counters_tabular=true
//   build/bench/core_bench --benchmark_format=json          # counters at full precision
//
// Every global operator new / new[] (plain, nothrow, aligned) in this binary
// is replaced by one that bumps a relaxed atomic counter and calls malloc (or
// aligned_alloc): bench/counting_allocator.cc. Only allocations made inside the timed operation are
// counted. Counters:
//   allocs_per_task  allocations / (iterations x tasks moved)   [migrations]
//   allocs_per_op    allocations per iteration (one migration, one fork+exit,
//                    one mkdir+rmdir)
//   time_per_task    time per iteration / tasks moved (printed as e.g. "6.2ns")
// The console prints small values with SI prefixes ("600u" = 0.0006); use
// --benchmark_format=json for plain numbers.
//
// Variants:
//   (no suffix)  no controllers: the engine's own cost.
//   _TestCtl     two TestControllers ("alpha", "beta") bound to a v1
//                hierarchy where the benchmark's cgroups live, so every
//                migration runs their hooks (TestController::can_attach
//                allocates a std::map: about 2 nodes per controller per
//                migration, not per task).
//   _Anchored    another one-thread process stays in each of the two cgroups,
//                so their css_sets keep tasks while the moved ones are away.
//                Without an anchor, the source css_set loses its last task and
//                is kept without tasks (Linux frees it and builds it again on
//                the way back); the moved task finds it there.
//
// The lock candidates are compared in core_bench_locks.cc (BM_Lock*).
//
// Setups (up to a million tasks) are built outside the timed region, once per
// benchmark instance: google benchmark calls a function several times while it
// sizes the iteration count, and the test bed is cached between those calls.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "bench/counting_allocator.h"
#include "core/engine.h"
#include "tests/support/test_controller.h"

// ------------------------------------------------------------ counting allocator

// The counting global allocator is bench/counting_allocator.cc.
namespace {
constexpr bool kCounting = cgcore::bench::kAllocCounting;
}  // namespace

// ------------------------------------------------------------ test beds

namespace cgcore::bench {
namespace {

using testing::TestController;

enum class Ctl { kNone, kTest };

// An engine and two sibling cgroups `a` and `b`, in the default hierarchy
// (no controllers) or in a v1 hierarchy bound to the two test controllers.
struct Bed {
  Engine engine;
  TestController* alpha = nullptr;
  TestController* beta = nullptr;
  Hierarchy* hier = nullptr;
  CgroupPtr a, b;
  Pid mover = 0;      // the moved process / the fork parent
  bool in_b = false;  // the moved tasks are in b (else in a)
};

#define BENCH_TRY(expr)                     \
  do {                                      \
    if (Status st_ = (expr); !st_.ok()) return st_; \
  } while (0)

Status init_bed(Bed& bed, Ctl ctl) {
  Engine& e = bed.engine;
  if (ctl == Ctl::kTest) {
    auto a = std::make_unique<TestController>("alpha");
    auto b = std::make_unique<TestController>("beta");
    bed.alpha = a.get();
    bed.beta = b.get();
    BENCH_TRY(e.register_controller(std::move(a)).status());
    BENCH_TRY(e.register_controller(std::move(b)).status());
    auto h = e.mount({"alpha", "beta"}, "");
    BENCH_TRY(h.status());
    bed.hier = h.value();
  } else {
    bed.hier = &e.default_hierarchy();
  }
  auto a = e.mkdir(bed.hier->root(), "a");
  BENCH_TRY(a.status());
  auto b = e.mkdir(bed.hier->root(), "b");
  BENCH_TRY(b.status());
  bed.a = a.value();
  bed.b = b.value();
  return Status::Ok();
}

// A process of `nr_threads` threads in the hierarchy's root.
Result<Pid> make_process(Engine& e, int64_t nr_threads) {
  auto p = e.spawn({});
  if (!p.ok()) return p;
  for (int64_t i = 1; i < nr_threads; ++i) {
    auto t = e.clone_thread(*p);
    if (!t.ok()) return t.status();
  }
  return p;
}

// Puts a one-thread process in each of a and b for good.
Status add_anchors(Bed& bed) {
  for (Cgroup* cg : {bed.a.get(), bed.b.get()}) {
    auto p = make_process(bed.engine, 1);
    BENCH_TRY(p.status());
    BENCH_TRY(bed.engine.migrate_process(*p, *cg));
  }
  return Status::Ok();
}

// Structural invariants, test controller charges, and that the moved tasks
// are where the benchmark left them.
Status validate(Bed& bed) {
  BENCH_TRY(bed.engine.check_invariants());
  if (bed.alpha) BENCH_TRY(bed.alpha->check_counts(bed.engine));
  if (bed.beta) BENCH_TRY(bed.beta->check_counts(bed.engine));
  if (bed.mover) {
    auto cg = bed.engine.task_cgroup(bed.mover, *bed.hier);
    BENCH_TRY(cg.status());
    if (cg.value().get() != (bed.in_b ? bed.b.get() : bed.a.get()))
      return Status::Error(EIO, "the moved process is not where it should be");
  }
  return Status::Ok();
}

// One test bed at a time, kept across the calls google benchmark makes for
// one benchmark instance (it reruns the function while sizing iterations).
struct BedCache {
  std::string key;
  std::unique_ptr<Bed> bed;
};
BedCache g_cache;

Bed* get_bed(benchmark::State& state, const std::string& key, Ctl ctl,
             const std::function<Status(Bed&)>& setup) {
  if (g_cache.key != key || !g_cache.bed) {
    g_cache.bed.reset();  // free the previous instance's (maybe large) bed first
    g_cache.key.clear();
    auto bed = std::make_unique<Bed>();
    Status st = init_bed(*bed, ctl);
    if (st.ok()) st = setup(*bed);
    if (!st.ok()) {
      state.SkipWithError(("setup: " + st.message()).c_str());
      return nullptr;
    }
    g_cache.bed = std::move(bed);
    g_cache.key = key;
  }
  return g_cache.bed.get();
}

void report(benchmark::State& state, uint64_t allocs, int64_t tasks_per_op) {
  const double iters = static_cast<double>(state.iterations());
  if (iters == 0) return;
  const double a = kCounting ? static_cast<double>(allocs) : -1.0;
  state.counters["allocs_per_op"] = kCounting ? a / iters : -1.0;
  if (tasks_per_op > 0) {
    state.counters["allocs_per_task"] =
        kCounting ? a / (iters * static_cast<double>(tasks_per_op)) : -1.0;
    state.counters["time_per_task"] =
        benchmark::Counter(static_cast<double>(tasks_per_op),
                           benchmark::Counter::kIsIterationInvariantRate |
                               benchmark::Counter::kInvert);
  }
}

void finish(benchmark::State& state, Bed& bed) {
  if (Status st = validate(bed); !st.ok()) {
    state.SkipWithError(("validation: " + st.message()).c_str());
    g_cache.bed.reset();
    g_cache.key.clear();
  }
}

// Runs `op(from, to)` once per iteration, alternating a -> b and b -> a.
template <typename Op>
void run_back_and_forth(benchmark::State& state, Bed& bed, int64_t tasks, Op&& op) {
  uint64_t allocs = 0;
  for (auto _ : state) {
    Cgroup& from = bed.in_b ? *bed.b : *bed.a;
    Cgroup& to = bed.in_b ? *bed.a : *bed.b;
    const uint64_t before = nr_allocs();
    Status st = op(from, to);
    allocs += nr_allocs() - before;
    if (!st.ok()) {
      state.SkipWithError(st.message().c_str());
      break;
    }
    bed.in_b = !bed.in_b;
  }
  report(state, allocs, tasks);
  finish(state, bed);
}

// Moves the mover process (already in a) to b and back: creates the
// css_sets and grows the engine's scratch buffers before timing.
Status warm_up_mover(Bed& bed) {
  BENCH_TRY(bed.engine.migrate_process(bed.mover, *bed.b));
  BENCH_TRY(bed.engine.migrate_process(bed.mover, *bed.a));
  bed.in_b = false;
  return Status::Ok();
}

// ------------------------------------------------------------ benchmarks

// A process of `threads` threads moved back and forth between a and b.
void BM_MoveProcess(benchmark::State& state, const std::string& key, Ctl ctl, bool anchored,
                    int64_t threads) {
  Bed* bed = get_bed(state, key, ctl, [&](Bed& b) {
    if (anchored) BENCH_TRY(add_anchors(b));
    auto p = make_process(b.engine, threads);
    BENCH_TRY(p.status());
    b.mover = *p;
    BENCH_TRY(b.engine.migrate_process(b.mover, *b.a));
    return warm_up_mover(b);
  });
  if (!bed) return;
  run_back_and_forth(state, *bed, threads, [bed](Cgroup&, Cgroup& to) {
    return bed->engine.migrate_process(bed->mover, to);
  });
}

// A cgroup of N tasks (processes of up to 1000 threads) transferred to its
// sibling and back.
void BM_Transfer(benchmark::State& state, const std::string& key, Ctl ctl) {
  const int64_t n = state.range(0);
  Bed* bed = get_bed(state, key, ctl, [&](Bed& b) {
    for (int64_t left = n; left > 0; left -= 1000) {
      auto p = make_process(b.engine, std::min<int64_t>(left, 1000));
      BENCH_TRY(p.status());
    }
    // Every task is in the root: move them all to a, then b, then a.
    BENCH_TRY(b.engine.transfer(b.hier->root(), *b.a));
    BENCH_TRY(b.engine.transfer(*b.a, *b.b));
    BENCH_TRY(b.engine.transfer(*b.b, *b.a));
    if (b.engine.cgroup_tids(*b.a).size() != static_cast<size_t>(n))
      return Status::Error(EIO, "wrong number of tasks in a");
    b.in_b = false;
    return Status::Ok();
  });
  if (!bed) return;
  run_back_and_forth(state, *bed, n, [bed](Cgroup& from, Cgroup& to) {
    return bed->engine.transfer(from, to);
  });
}

// With N one-thread processes in a, one of them forks and the child exits.
// Expect 3 allocations (Mm, Process, Task) plus 1/4096: ids keep climbing and
// the task table allocates a page of 4096 slots each time a new range is
// reached (and never frees emptied pages).
void BM_ForkExit(benchmark::State& state, const std::string& key, Ctl ctl) {
  const int64_t n = state.range(0);
  Bed* bed = get_bed(state, key, ctl, [&](Bed& b) {
    for (int64_t i = 0; i < n; ++i) {
      auto p = b.engine.spawn({});
      BENCH_TRY(p.status());
      if (i == 0) b.mover = *p;
    }
    BENCH_TRY(b.engine.transfer(b.hier->root(), *b.a));
    b.in_b = false;
    // Warm up: a first fork + exit.
    auto c = b.engine.fork(b.mover);
    BENCH_TRY(c.status());
    return b.engine.exit_process(*c);
  });
  if (!bed) return;
  Engine& e = bed->engine;
  const Pid parent = bed->mover;
  uint64_t allocs = 0;
  for (auto _ : state) {
    const uint64_t before = nr_allocs();
    Result<Pid> child = e.fork(parent);
    Status st = child.ok() ? e.exit_process(*child) : child.status();
    allocs += nr_allocs() - before;
    if (!st.ok()) {
      state.SkipWithError(st.message().c_str());
      break;
    }
  }
  report(state, allocs, 0);
  finish(state, *bed);
}

// mkdir + rmdir of one child of a.
void BM_MkdirRmdir(benchmark::State& state, const std::string& key, Ctl ctl) {
  Bed* bed = get_bed(state, key, ctl, [](Bed&) { return Status::Ok(); });
  if (!bed) return;
  Engine& e = bed->engine;
  Cgroup& parent = *bed->a;
  uint64_t allocs = 0;
  for (auto _ : state) {
    const uint64_t before = nr_allocs();
    Status st;
    {
      Result<CgroupPtr> child = e.mkdir(parent, "x");
      st = child.ok() ? e.rmdir(*child.value()) : child.status();
    }  // the last reference to the removed cgroup goes here
    allocs += nr_allocs() - before;
    if (!st.ok()) {
      state.SkipWithError(st.message().c_str());
      break;
    }
  }
  report(state, allocs, 0);
  finish(state, *bed);
}

// ------------------------------------------------------------ registration

void register_all() {
  const struct {
    Ctl ctl;
    const char* suffix;
  } ctls[] = {{Ctl::kNone, ""}, {Ctl::kTest, "_TestCtl"}};

  for (const auto& c : ctls) {
    const Ctl ctl = c.ctl;
    const std::string sfx = c.suffix;
    for (bool anchored : {false, true}) {
      const std::string name =
          std::string("BM_MoveOneThreadProcess") + (anchored ? "_Anchored" : "") + sfx;
      benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
        BM_MoveProcess(s, name, ctl, anchored, 1);
      });
    }
  }
  for (const auto& c : ctls) {
    const Ctl ctl = c.ctl;
    const std::string sfx = c.suffix;
    for (bool anchored : {false, true}) {
      const std::string name =
          std::string("BM_MoveLargeProcess") + (anchored ? "_Anchored" : "") + sfx;
      benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
        BM_MoveProcess(s, name + "/" + std::to_string(s.range(0)), ctl, anchored, s.range(0));
      })->Arg(10)->Arg(100)->Arg(1000)->Arg(5000);
    }
  }
  for (const auto& c : ctls) {
    const Ctl ctl = c.ctl;
    const std::string sfx = c.suffix;
    const std::string name = std::string("BM_Transfer") + sfx;
    benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
      BM_Transfer(s, name + "/" + std::to_string(s.range(0)), ctl);
    })->Arg(1000)->Arg(100000)->Arg(1000000)->Unit(benchmark::kMicrosecond);
  }
  for (const auto& c : ctls) {
    const Ctl ctl = c.ctl;
    const std::string sfx = c.suffix;
    const std::string name = std::string("BM_ForkExit") + sfx;
    benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
      BM_ForkExit(s, name + "/" + std::to_string(s.range(0)), ctl);
    })->Arg(1000)->Arg(10000)->Arg(100000)->Arg(1000000);
  }
  for (const auto& c : ctls) {
    const Ctl ctl = c.ctl;
    const std::string sfx = c.suffix;
    const std::string name = std::string("BM_MkdirRmdir") + sfx;
    benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
      BM_MkdirRmdir(s, name, ctl);
    });
  }
}

}  // namespace
}  // namespace cgcore::bench

int main(int argc, char** argv) {
  cgcore::bench::register_all();
  // A shorter default minimum time than the library's 0.5 s (so the whole
  // binary runs in about a minute); a --benchmark_min_time given on the
  // command line comes later and wins.
  std::vector<char*> args(argv, argv + argc);
  char min_time[] = "--benchmark_min_time=0.2";
  args.insert(args.begin() + (argc > 0 ? 1 : 0), min_time);
  int nargs = static_cast<int>(args.size());
  args.push_back(nullptr);
  benchmark::Initialize(&nargs, args.data());
  if (benchmark::ReportUnrecognizedArguments(nargs, args.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  cgcore::bench::g_cache.bed.reset();
  return 0;
}
