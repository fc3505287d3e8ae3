// Concurrency stress, meant to run under ThreadSanitizer as well as plain.
//
// Every thread runs a bounded number of iterations (not a time budget), so
// the tests terminate; CGCORE_STRESS_SCALE multiplies the iteration counts.
// Each thread only accepts the errors its operation may legitimately meet
// when racing the others (a task that exited meanwhile, a veto, a removed
// cgroup); at the end the engine must be consistent and must have lost no
// task: every process a thread created and did not end is still there, in
// exactly one cgroup of every hierarchy.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/engine.h"
#include "core/migration.h"
#include "tests/support/test_controller.h"

namespace cgcore::testing {
namespace {

int scale() {
  if (const char* e = std::getenv("CGCORE_STRESS_SCALE")) {
    int n = std::atoi(e);
    if (n > 0) return n;
  }
  return 1;
}

// Collects failures from worker threads (gtest assertions are only used on
// the main thread).
class Failures {
 public:
  void add(std::string s) {
    std::lock_guard<std::mutex> l(mu_);
    if (list_.size() < 20) list_.push_back(std::move(s));
    ++n_;
  }
  void expect_none() {
    std::lock_guard<std::mutex> l(mu_);
    EXPECT_EQ(n_, 0);
    for (auto& s : list_) ADD_FAILURE() << s;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> list_;
  int n_ = 0;
};

std::string ename(int err) { return err == 0 ? "OK" : errno_name(err); }

bool allowed(int err, std::initializer_list<int> ok) {
  return err == 0 || std::find(ok.begin(), ok.end(), err) != ok.end();
}

struct StressEngine {
  StressEngine() {
    auto a = std::make_unique<TestController>("alpha");
    auto b = std::make_unique<TestController>("beta");
    alpha = a.get();
    beta = b.get();
    EXPECT_TRUE(engine.register_controller(std::move(a)).ok());
    EXPECT_TRUE(engine.register_controller(std::move(b)).ok());
  }

  // Every cgroup of every hierarchy (a snapshot, referenced).
  std::vector<CgroupPtr> all_cgroups() {
    std::vector<CgroupPtr> out;
    MutexLock lock(engine.cgroup_mutex());
    for (Hierarchy* h : engine.hierarchies_locked()) {
      std::vector<Cgroup*> stack{&h->root()};
      while (!stack.empty()) {
        Cgroup* c = stack.back();
        stack.pop_back();
        out.emplace_back(c);
        for (auto& [n, child] : c->children()) stack.push_back(child);
      }
    }
    return out;
  }

  // Checks that the live tasks are exactly `live` (tid -> tgid), each in
  // exactly one cgroup of every hierarchy, that `zombies` still resolve, and
  // that the engine is consistent.
  void check_all(const std::map<Pid, Pid>& live, const std::set<Pid>& zombies) {
    Status st = engine.check_invariants();
    EXPECT_TRUE(st.ok()) << st.message();
    st = alpha->check_counts(engine);
    EXPECT_TRUE(st.ok()) << st.message();
    st = beta->check_counts(engine);
    EXPECT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(engine.nr_tasks(), live.size());

    auto hs = engine.hierarchies();
    std::map<std::pair<int, Pid>, int> seen;  // (hierarchy, tid) -> cgroups listing it
    std::map<std::pair<int, Pid>, const Cgroup*> where;
    for (const CgroupPtr& cg : all_cgroups()) {
      for (Pid t : engine.cgroup_tids(*cg)) {
        auto key = std::make_pair(cg->hierarchy().id(), t);
        ++seen[key];
        where[key] = cg.get();
        EXPECT_TRUE(live.count(t)) << "cgroup lists task " << t << " nobody owns";
      }
    }
    int lost = 0;
    for (auto& [tid, tgid] : live) {
      auto g = engine.tgid_of(tid);
      if (!g.ok() || g.value() != tgid) {
        if (++lost <= 10) ADD_FAILURE() << "task " << tid << " of " << tgid << " is lost: " << g.status().message();
        continue;
      }
      for (Hierarchy* h : hs) {
        auto key = std::make_pair(h->id(), tid);
        EXPECT_EQ(seen[key], 1) << "task " << tid << " is in " << seen[key]
                                << " cgroups of hierarchy " << h->id();
        auto c = engine.task_cgroup(tid, *h);
        EXPECT_TRUE(c.ok() && c.value().get() == where[key])
            << "task_cgroup(" << tid << ", " << h->id() << ") disagrees with cgroup_tids";
      }
    }
    EXPECT_EQ(lost, 0);
    for (Pid z : zombies) {
      auto g = engine.tgid_of(z);
      EXPECT_TRUE(g.ok() && g.value() == z) << "zombie leader " << z << " is gone";
    }
    for (TestController* c : {alpha, beta}) {
      EXPECT_EQ(c->nr_attach.load(), c->nr_post_attach.load()) << c->name();
      EXPECT_GE(c->nr_can_attach.load(), c->nr_attach.load() + c->nr_cancel_attach.load())
          << c->name();
    }
  }

  Engine engine;
  TestController* alpha = nullptr;
  TestController* beta = nullptr;
};

// ------------------------------------------------------------ churn

// The processes one forker thread owns: tgid -> live threads. Nobody else
// creates or ends them; others migrate them.
struct Owned {
  std::map<Pid, std::vector<Pid>> procs;
  std::set<Pid> zombies;  // tgids whose leader exited before the rest

  size_t nr_threads() const {
    size_t n = 0;
    for (auto& [g, th] : procs) n += th.size();
    return n;
  }
  void exit_thread(Pid tgid, Pid tid) {
    auto& th = procs[tgid];
    th.erase(std::find(th.begin(), th.end(), tid));
    if (th.empty()) {
      procs.erase(tgid);
      zombies.erase(tgid);
    } else if (tid == tgid) {
      zombies.insert(tgid);
    }
  }
};

void forker(Engine& engine, Owned& own, Failures& fail, int iters, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto rnd = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  auto any_thread = [&](Pid* tgid) {
    auto it = own.procs.begin();
    std::advance(it, rnd(own.procs.size()));
    *tgid = it->first;
    return it->second[rnd(it->second.size())];
  };
  for (int i = 0; i < iters; ++i) {
    const size_t n = own.nr_threads();
    int op = static_cast<int>(rnd(100));
    if (own.procs.empty() || (n < 8 && op < 60)) op = 0;
    if (n > 60 && op < 50) op = 80;
    Pid tgid = 0;
    if (op < 10) {
      auto r = engine.spawn({});
      if (r.ok()) own.procs[r.value()] = {r.value()};
      else if (r.err() != EAGAIN) fail.add("spawn: " + r.status().message());
    } else if (op < 35) {
      Pid t = any_thread(&tgid);
      ForkOptions o;
      o.share_mm = rnd(5) == 0;
      auto r = engine.fork(t, o);
      if (r.ok()) own.procs[r.value()] = {r.value()};
      else if (r.err() != EAGAIN) fail.add("fork(" + std::to_string(t) + "): " + r.status().message());
    } else if (op < 55) {
      Pid t = any_thread(&tgid);
      auto r = engine.clone_thread(t);
      if (r.ok()) own.procs[tgid].push_back(r.value());
      else if (r.err() != EAGAIN) fail.add("clone_thread(" + std::to_string(t) + "): " + r.status().message());
    } else if (op < 80) {
      Pid t = any_thread(&tgid);
      Status st = engine.exit_thread(t);
      if (!st.ok()) fail.add("exit_thread(" + std::to_string(t) + "): " + st.message());
      else own.exit_thread(tgid, t);
    } else if (op < 90) {
      any_thread(&tgid);
      Status st = engine.exit_process(tgid);
      if (!st.ok()) fail.add("exit_process(" + std::to_string(tgid) + "): " + st.message());
      else {
        own.procs.erase(tgid);
        own.zombies.erase(tgid);
      }
    } else {
      Pid t = any_thread(&tgid);
      Status st = engine.exec(t);
      if (!st.ok()) {
        fail.add("exec(" + std::to_string(t) + "): " + st.message());
      } else {
        own.procs[tgid] = {tgid};
        own.zombies.erase(tgid);
      }
    }
  }
}

// Cgroups the movers use: fixed ones in the default and the alpha hierarchy,
// plus the scratch cgroups of the mkdir/rmdir thread when they exist.
struct Targets {
  std::vector<CgroupPtr> fixed;
  Cgroup* dfl_root = nullptr;
  std::vector<std::string> scratch_names;
};

CgroupPtr pick_target(Engine& engine, const Targets& tg, std::mt19937_64& rng) {
  if (rng() % 5 == 0) {  // a scratch cgroup, which rmdir may race
    CgroupPtr c = engine.find_child(*tg.dfl_root, tg.scratch_names[rng() % tg.scratch_names.size()]);
    if (c) return c;
  }
  return tg.fixed[rng() % tg.fixed.size()];
}

void mover(Engine& engine, const Targets& tg, Failures& fail, int iters, uint64_t seed,
           std::atomic<int64_t>& moved) {
  std::mt19937_64 rng(seed);
  for (int i = 0; i < iters; ++i) {
    CgroupPtr src = pick_target(engine, tg, rng);
    CgroupPtr dst = pick_target(engine, tg, rng);
    std::vector<Pid> tids = engine.cgroup_tids(*src);
    if (tids.empty()) continue;
    Pid t = tids[rng() % tids.size()];
    Status st;
    std::string what;
    switch (rng() % 3) {
      case 0:
        st = engine.migrate_process(t, *dst);
        what = "migrate_process";
        break;
      case 1:
        st = engine.migrate_thread(t, *dst);
        what = "migrate_thread";
        break;
      default: {
        std::vector<Pid> pids{t};
        for (int k = 0; k < 3; ++k) pids.push_back(tids[rng() % tids.size()]);
        st = engine.migrate_processes(pids, *dst);
        what = "migrate_processes";
      }
    }
    // ESRCH: exited meanwhile; ENODEV: a scratch cgroup was removed;
    // EACCES: the veto thread.
    if (!allowed(st.err(), {ESRCH, ENODEV, EACCES}))
      fail.add(what + "(" + std::to_string(t) + "): " + ename(st.err()) + " " + st.message());
    if (st.ok()) moved.fetch_add(1, std::memory_order_relaxed);
  }
}

TEST(Stress, ConcurrentChurn) {
  StressEngine se;
  Engine& engine = se.engine;
  const int k = 15 * scale();

  auto ha = engine.mount({"alpha"}, "");
  ASSERT_TRUE(ha.ok()) << ha.status().message();
  Hierarchy& alpha_h = *ha.value();
  Targets tg;
  tg.dfl_root = &engine.default_hierarchy().root();
  tg.fixed.emplace_back(tg.dfl_root);
  tg.fixed.emplace_back(&alpha_h.root());
  for (const char* n : {"d0", "d1", "d2"}) {
    auto r = engine.mkdir(*tg.dfl_root, n);
    ASSERT_TRUE(r.ok());
    tg.fixed.push_back(r.value());
  }
  for (const char* n : {"a0", "a1", "a2"}) {
    auto r = engine.mkdir(alpha_h.root(), n);
    ASSERT_TRUE(r.ok());
    tg.fixed.push_back(r.value());
  }
  auto a0a = engine.mkdir(*tg.fixed[5], "nested");
  ASSERT_TRUE(a0a.ok());
  tg.fixed.push_back(a0a.value());
  tg.scratch_names = {"s0", "s1", "s2"};

  Failures fail;
  constexpr int kForkers = 3;
  Owned owned[kForkers];
  std::atomic<int64_t> moved{0}, transferred{0}, vetoes{0}, mkdirs{0}, rmdirs{0}, rebinds{0};
  std::vector<std::thread> threads;

  for (int i = 0; i < kForkers; ++i)
    threads.emplace_back([&, i] { forker(engine, owned[i], fail, 20000 * k, 100 + i); });
  for (int i = 0; i < 2; ++i)
    threads.emplace_back([&, i] { mover(engine, tg, fail, 20000 * k, 200 + i, moved); });

  // transfer() back and forth.
  threads.emplace_back([&] {
    std::mt19937_64 rng(300);
    for (int i = 0; i < 4000 * k; ++i) {
      int h = static_cast<int>(rng() % 2);  // 0: d0/d1, 1: a0/a1
      Cgroup& x = *tg.fixed[h ? 5 : 2];
      Cgroup& y = *tg.fixed[h ? 6 : 3];
      Status st = (i % 2) ? engine.transfer(x, y) : engine.transfer(y, x);
      if (!allowed(st.err(), {EACCES})) fail.add("transfer: " + st.message());
      if (st.ok()) transferred.fetch_add(1);
    }
  });

  // Scratch cgroups come and go (EBUSY while a mover put tasks there).
  threads.emplace_back([&] {
    std::mt19937_64 rng(400);
    for (int i = 0; i < 10000 * k; ++i) {
      const std::string& name = tg.scratch_names[rng() % tg.scratch_names.size()];
      CgroupPtr c = engine.find_child(*tg.dfl_root, name);
      if (!c) {
        auto r = engine.mkdir(*tg.dfl_root, name);
        if (r.ok()) mkdirs.fetch_add(1);
        else fail.add("mkdir " + name + ": " + r.status().message());
        continue;
      }
      Status st = engine.rmdir(*c);
      if (st.ok()) {
        rmdirs.fetch_add(1);
      } else if (st.err() == EBUSY) {
        Status t = engine.transfer(*c, *tg.dfl_root);
        if (!t.ok()) fail.add("transfer out of " + name + ": " + t.message());
      } else {
        fail.add("rmdir " + name + ": " + st.message());
      }
    }
  });

  // Vetoes at every veto point, on and off.
  threads.emplace_back([&] {
    std::mt19937_64 rng(500);
    for (int i = 0; i < 20000 * k; ++i) {
      TestController* c = rng() % 4 == 0 ? se.beta : se.alpha;
      switch (rng() % 3) {
        case 0: c->veto_attach = 1; break;
        case 1: c->veto_attach_locked = 1; break;
        default: c->veto_fork = 1; break;
      }
      vetoes.fetch_add(1);
      std::this_thread::yield();
    }
  });

  // A v1 hierarchy for beta is mounted and destroyed (every task re-homed
  // each time) while everything else runs.
  threads.emplace_back([&] {
    for (int i = 0; i < 700 * k; ++i) {
      auto r = engine.mount({"beta"}, "");
      if (!r.ok()) {
        fail.add("mount beta: " + r.status().message());
        continue;
      }
      std::this_thread::yield();
      Status st = engine.destroy_hierarchy(*r.value());
      if (!st.ok()) fail.add("destroy beta: " + st.message());
      else rebinds.fetch_add(1);
    }
  });

  for (auto& t : threads) t.join();
  fail.expect_none();
  for (TestController* c : {se.alpha, se.beta}) {
    c->veto_attach = 0;
    c->veto_attach_locked = 0;
    c->veto_fork = 0;
  }

  std::map<Pid, Pid> live;
  std::set<Pid> zombies;
  for (auto& o : owned) {
    for (auto& [tgid, th] : o.procs) {
      for (Pid t : th) EXPECT_TRUE(live.emplace(t, tgid).second) << "tid " << t << " owned twice";
      auto r = engine.threads_of(tgid);
      ASSERT_TRUE(r.ok()) << "process " << tgid << " is lost";
      std::vector<Pid> got = r.value(), want = th;
      std::sort(got.begin(), got.end());
      std::sort(want.begin(), want.end());
      EXPECT_EQ(got, want) << "threads of " << tgid;
    }
    zombies.insert(o.zombies.begin(), o.zombies.end());
  }
  se.check_all(live, zombies);
  // The threads did real work (a stress test that moved nothing proves little).
  EXPECT_GT(moved.load(), 0);
  EXPECT_GT(transferred.load(), 0);
  EXPECT_GT(rebinds.load(), 0);
  EXPECT_GT(mkdirs.load(), 0);
  EXPECT_GT(se.alpha->nr_cancel_attach.load(), 0);
  std::printf("moved %lld, transfers %lld, rebinds %lld, mkdir %lld, rmdir %lld, live %zu\n",
              static_cast<long long>(moved.load()), static_cast<long long>(transferred.load()),
              static_cast<long long>(rebinds.load()), static_cast<long long>(mkdirs.load()),
              static_cast<long long>(rmdirs.load()), live.size());
}

// rmdir racing the exit of a cgroup's last task: rmdir must answer EBUSY
// (still populated) or succeed (then the task's migration into it fails with
// ENODEV); nothing else, and the engine stays consistent.
TEST(Stress, RmdirRacesLastExit) {
  StressEngine se;
  Engine& engine = se.engine;
  auto ha = engine.mount({"alpha"}, "");
  ASSERT_TRUE(ha.ok());
  Cgroup* roots[2] = {&engine.default_hierarchy().root(), &ha.value()->root()};
  const int iters = 200000 * scale();
  Failures fail;
  std::atomic<bool> done{false};
  std::atomic<int64_t> removed{0}, busy{0};
  std::thread churn([&] {
    for (int i = 0; i < iters; ++i) {
      Cgroup& root = *roots[2 * i / iters];  // default hierarchy, then alpha's
      CgroupPtr x = engine.find_child(root, "x");
      auto p = engine.spawn({});
      if (!p.ok()) {
        fail.add("spawn: " + p.status().message());
        continue;
      }
      if (x) {
        Status st = engine.migrate_process(p.value(), *x);
        if (!allowed(st.err(), {ENODEV})) fail.add("migrate_process: " + st.message());
      }
      Status st = engine.exit_process(p.value());
      if (!st.ok()) fail.add("exit_process: " + st.message());
    }
    done = true;
  });
  for (int i = 0; !done.load(); ++i) {
    Cgroup& root = *roots[i % 2];
    CgroupPtr x = engine.find_child(root, "x");
    if (!x) {
      auto r = engine.mkdir(root, "x");
      if (!r.ok()) fail.add("mkdir: " + r.status().message());
      continue;
    }
    Status st = engine.rmdir(*x);
    if (st.ok()) removed.fetch_add(1);
    else if (st.err() == EBUSY) busy.fetch_add(1);
    else fail.add("rmdir: " + st.message());
  }
  churn.join();
  fail.expect_none();
  se.check_all({}, {});
  EXPECT_GT(removed.load(), 0);
}

// ------------------------------------------------------------ drain while forking

// The fork/migration guarantee: migrating a process excludes its forks, so a child
// forked after its parent left cgroup A never appears in A, and draining A
// ("while A has tasks: move each") terminates even while A's processes keep
// forking. Forker threads fork children and threads from parents that start
// in A; a mover drains A by migrate_process passes or by transfer(); both in
// the default hierarchy and in a v1 hierarchy with alpha bound (so that the
// controller's hooks run for every move).
void drain_round(StressEngine& se, Cgroup& a, Cgroup& b, bool use_transfer, int round,
                 std::vector<Pid>& parents, std::map<Pid, Pid>& live) {
  Engine& engine = se.engine;
  constexpr int kForkers = 2;
  const int forks_per_thread = 5000 * scale();
  SCOPED_TRACE(std::string(use_transfer ? "transfer" : "migrate loop") + " round " +
               std::to_string(round) + " in hierarchy " + std::to_string(a.hierarchy().id()));

  // Every owned task back into A.
  for (Pid p : parents) ASSERT_TRUE(engine.migrate_process(p, a).ok());
  {
    std::set<Pid> tgids;
    for (auto& [t, g] : live) tgids.insert(g);
    for (Pid g : tgids) ASSERT_TRUE(engine.migrate_process(g, a).ok());
  }
  ASSERT_EQ(engine.cgroup_tids(a).size(), live.size());

  // moved[i]: parents[i] has been migrated out of A (set after the call
  // returned).
  std::unique_ptr<std::atomic<bool>[]> moved(new std::atomic<bool>[parents.size()]);
  for (size_t i = 0; i < parents.size(); ++i) moved[i] = false;
  std::map<Pid, size_t> parent_index;
  for (size_t i = 0; i < parents.size(); ++i) parent_index[parents[i]] = i;

  Failures fail;
  std::atomic<bool> go{false};
  std::atomic<int> forkers_running{kForkers};
  std::atomic<bool> mover_done{false};
  std::vector<std::map<Pid, Pid>> made(kForkers);  // per forker: tid -> tgid
  std::vector<std::map<Pid, size_t>> forked(kForkers);  // per forker: child -> parent index
  std::vector<std::thread> threads;
  for (int f = 0; f < kForkers; ++f) {
    threads.emplace_back([&, f] {
      std::mt19937_64 rng(1000 * round + f);
      while (!go.load()) std::this_thread::yield();
      // Fork until the mover is done (and a little longer), bounded.
      int after = 0;
      for (int i = 0; i < forks_per_thread && (!mover_done.load() || after++ < 50); ++i) {
        size_t pi = (rng() % (parents.size() / kForkers)) * kForkers + f;  // own parents only
        Pid p = parents[pi];
        bool moved_before = moved[pi].load();
        bool thread = rng() % 4 == 0;
        auto r = thread ? engine.clone_thread(p) : engine.fork(p);
        if (!r.ok()) {
          fail.add("fork(" + std::to_string(p) + "): " + r.status().message());
          continue;
        }
        Pid c = r.value();
        made[f][c] = thread ? p : c;
        if (!thread) forked[f][c] = pi;
        if (moved_before) {
          auto where = engine.task_cgroup(c, a.hierarchy());
          if (!where.ok() || where.value().get() != &b)
            fail.add("child " + std::to_string(c) + " of " + std::to_string(p) +
                     ", forked after its parent left A, is not in B");
        }
        // Keep the population bounded: end most children again.
        if (rng() % 8 != 0) {
          Status st = thread ? engine.exit_thread(c) : engine.exit_process(c);
          if (!st.ok()) fail.add("exit: " + st.message());
          else made[f].erase(c);
        }
      }
      forkers_running.fetch_sub(1);
    });
  }

  int passes = 0, passes_with_tasks = 0;
  // left_behind[i]: A's tasks right after parents[i] first left A. A child
  // of parents[i] seen in A later must be among them: it was linked before
  // the parent's migration began (a fork in flight completes first).
  std::vector<std::set<Pid>> left_behind(parents.size());
  std::vector<std::vector<Pid>> later_snapshots;
  bool drained_while_forking = false;
  std::thread mover([&] {
    while (!go.load()) std::this_thread::yield();
    if (use_transfer) {
      Status st = engine.transfer(a, b);
      if (!st.ok()) fail.add("transfer: " + st.message());
      for (size_t i = 0; i < parents.size(); ++i) moved[i] = true;
      // Every fork that began before the transfer finished before it moved
      // A's tasks; every later one forks from a parent in B.
      auto left = engine.cgroup_tids(a);
      if (!left.empty())
        fail.add("A holds " + std::to_string(left.size()) + " tasks right after transfer(A, B)");
      drained_while_forking = forkers_running.load() > 0;
      passes = 1;
      mover_done = true;
      return;
    }
    for (;;) {
      std::vector<Pid> tids = engine.cgroup_tids(a);
      ++passes;
      if (tids.empty()) {
        drained_while_forking = forkers_running.load() > 0;
        break;
      }
      ++passes_with_tasks;
      if (passes > 1) later_snapshots.push_back(tids);
      if (passes > 1000) {
        fail.add("draining A does not terminate");
        break;
      }
      for (Pid t : tids) {
        Status st = engine.migrate_process(t, b);
        if (!allowed(st.err(), {ESRCH})) fail.add("migrate_process: " + st.message());
        auto it = parent_index.find(t);
        if (st.ok() && it != parent_index.end() && !moved[it->second]) {
          auto now = engine.cgroup_tids(a);
          left_behind[it->second].insert(now.begin(), now.end());
          moved[it->second] = true;
        }
      }
    }
    mover_done = true;
  });
  go = true;
  for (auto& t : threads) t.join();
  mover.join();
  fail.expect_none();
  if (!use_transfer) {
    // Pass 1 moved every parent (all were in A when it began).
    for (size_t i = 0; i < parents.size(); ++i) EXPECT_TRUE(moved[i].load()) << parents[i];
    for (auto& snap : later_snapshots)
      for (Pid c : snap)
        for (auto& fk : forked)
          if (auto it = fk.find(c); it != fk.end())
            EXPECT_TRUE(left_behind[it->second].count(c))
                << "child " << c << " of " << parents[it->second]
                << " appeared in A after its parent had left A";
  }

  // The forkers have stopped: one more pass empties A for good.
  for (Pid t : engine.cgroup_tids(a)) {
    Status st = engine.migrate_process(t, b);
    EXPECT_TRUE(st.ok()) << st.message();
  }
  EXPECT_TRUE(engine.cgroup_tids(a).empty());
  // Pass 1 moves every parent (all were in A); pass 2 the children forked
  // before their parent moved; pass 3 finds A empty.
  if (!use_transfer) EXPECT_LE(passes_with_tasks, 2) << "children keep appearing in A";
  std::printf("round %d (%s, hierarchy %d): %d passes, drained while forking: %s\n", round,
              use_transfer ? "transfer" : "migrate loop", a.hierarchy().id(), passes,
              drained_while_forking ? "yes" : "no");

  for (auto& m : made) live.insert(m.begin(), m.end());
  // Every task accounted for, and all of them in B now.
  std::vector<Pid> in_b = engine.cgroup_tids(b);
  std::sort(in_b.begin(), in_b.end());
  std::vector<Pid> want;
  for (auto& [t, g] : live) want.push_back(t);
  EXPECT_EQ(in_b, want);
  se.check_all(live, {});
}

TEST(Stress, DrainingACgroupTerminates) {
  StressEngine se;
  Engine& engine = se.engine;
  auto ha = engine.mount({"alpha"}, "");
  ASSERT_TRUE(ha.ok());
  Cgroup& droot = engine.default_hierarchy().root();
  Cgroup& aroot = ha.value()->root();
  CgroupPtr da = engine.mkdir(droot, "A").value(), db = engine.mkdir(droot, "B").value();
  CgroupPtr aa = engine.mkdir(aroot, "A").value(), ab = engine.mkdir(aroot, "B").value();

  std::vector<Pid> parents;
  std::map<Pid, Pid> live;
  for (int i = 0; i < 8; ++i) {
    Pid p = engine.spawn({}).value();
    parents.push_back(p);
    live[p] = p;
  }
  for (int round = 0; round < 32 && !::testing::Test::HasFailure(); ++round) {
    bool v1 = round % 2;
    drain_round(se, v1 ? *aa : *da, v1 ? *ab : *db, (round / 2) % 2, round, parents, live);
  }
}

// ------------------------------------------------------------ move checks

// What a move check answered on, recorded by the check on the migrating
// thread, and compared by the witness controller's hooks (which run on the
// same thread, inside the same transaction) with the state at the commit.
struct SeenByCheck {
  Pid tid = 0;
  const Cgroup* src = nullptr;
  std::string src_name;
  Creds creds;
};
thread_local const SeenByCheck* tl_seen = nullptr;

// Bound to the hierarchy the moves happen in, so that every move between two
// of its cgroups runs its hooks. can_attach (before the commit) checks the
// moved thread's source cgroup and that cgroup's name; post_attach (after the
// commit, threadgroup lock still held) the process's credentials.
class Witness : public TestController {
 public:
  Witness() : TestController("witness") {}
  Status can_attach(TaskSet& tset) override {
    if (const SeenByCheck* seen = tl_seen) {
      ++nr_checked_moves;
      tset.for_each([&](Task& t, CssSet* src, CssSet&) {
        if (t.tid() != seen->tid) return;
        const Cgroup* cg = src->cgroup(hierarchy);
        if (cg != seen->src) ++nr_stale;
        else if (cg->name() != seen->src_name) ++nr_stale;
      });
    }
    return TestController::can_attach(tset);
  }
  void post_attach(TaskSet& tset) override {
    if (const SeenByCheck* seen = tl_seen) {
      auto creds = tset.engine().creds(seen->tid);
      if (!creds.ok() || !(creds.value() == seen->creds)) ++nr_stale;
    }
    TestController::post_attach(tset);
  }
  HierarchyId hierarchy = -1;
  std::atomic<int64_t> nr_checked_moves{0}, nr_stale{0};
};

// A check that answers on state another thread keeps changing (the source
// cgroup's name, the process's credentials, the process's cgroup) must see
// that state unchanged at the commit: the check and the move are one hold.
// With CGCORE_STRESS_TWO_HOLDS=1 the migrators check in one hold of the
// cgroup mutex and move in the next (what the file layer did before
// migrate_*_locked took a check); the witness then finds stale moves and the
// test fails, which shows that it can.
TEST(Stress, MoveChecksAreNeverStale) {
  Engine engine;
  auto w = std::make_unique<Witness>();
  Witness* witness = w.get();
  ASSERT_TRUE(engine.register_controller(std::move(w)).ok());
  auto h = engine.mount({"witness"}, "");
  ASSERT_TRUE(h.ok());
  Hierarchy& hier = *h.value();
  witness->hierarchy = hier.id();
  const bool two_holds = std::getenv("CGCORE_STRESS_TWO_HOLDS") != nullptr;

  constexpr int kCgroups = 3, kProcs = 4;
  std::vector<CgroupPtr> cgs;
  for (int i = 0; i < kCgroups; ++i)
    cgs.push_back(engine.mkdir(hier.root(), "ok" + std::to_string(i)).value());
  std::vector<std::vector<Pid>> procs;  // [leader, thread]
  for (int i = 0; i < kProcs; ++i) {
    Pid p = engine.spawn({}).value();
    procs.push_back({p, engine.clone_thread(p).value()});
  }

  // The policy: a process whose uid is 0 may leave a cgroup whose name does
  // not start with "no".
  auto policy = [](const MoveTarget& t, const std::string& name) {
    if (t.creds.uid != 0) return Status::Error(EPERM, "uid");
    if (name.rfind("no", 0) == 0) return Status::Error(EACCES, "source closed");
    return Status::Ok();
  };

  const int iters = 20000 * scale();
  Failures fail;
  std::atomic<int> running{2};
  std::atomic<int64_t> moved{0}, refused{0};
  auto migrator = [&](unsigned seed) {
    std::mt19937 rng(seed);
    SeenByCheck seen;
    // On a loaded machine the mutator can be preempted for a migrator's
    // whole run while every move is refused (or every one permitted), so a
    // migrator goes on past `iters` until it has seen both outcomes; the
    // mutator keeps changing the state meanwhile, so this ends.
    auto saw_both = [&] { return moved.load() > 0 && refused.load() > 0; };
    for (int i = 0; i < iters || (!saw_both() && i < 1000 * iters); ++i) {
      const std::vector<Pid>& pr = procs[rng() % kProcs];
      Cgroup& dst = *cgs[rng() % kCgroups];
      const bool thread_mode = rng() % 3 == 0;
      const Pid who = thread_mode ? pr[rng() % 2] : pr[0];
      auto check = [&](const MoveTarget& t) {
        engine.cgroup_mutex().AssertHeld();
        seen.tid = t.tid;
        seen.src = &t.src;
        seen.src_name = t.src.name();
        seen.creds = t.creds;
        return policy(t, seen.src_name);
      };
      auto move = [&](MoveCheck c) {
        engine.cgroup_mutex().AssertHeld();
        return thread_mode ? engine.migrate_thread_locked(who, dst, c)
                           : engine.migrate_process_locked(who, dst, c);
      };
      Status st;
      if (!two_holds) {
        MutexLock lock(engine.cgroup_mutex());
        tl_seen = &seen;
        st = move(check);
        tl_seen = nullptr;
      } else {
        {
          MutexLock lock(engine.cgroup_mutex());
          st = move([&](const MoveTarget& t) {
            Status r = check(t);
            return r.ok() ? Status::Error(ECANCELED, "checked only") : r;
          });
        }
        if (st.err() == ECANCELED) {
          MutexLock lock(engine.cgroup_mutex());
          tl_seen = &seen;
          st = move([](const MoveTarget&) { return Status::Ok(); });
          tl_seen = nullptr;
        }
      }
      if (st.ok()) moved.fetch_add(1);
      else if (st.err() == EPERM || st.err() == EACCES) refused.fetch_add(1);
      else fail.add("migrate: " + st.message());
    }
    running.fetch_sub(1);
  };
  std::thread m1(migrator, 1), m2(migrator, 2);
  // The mutator: renames the cgroups between "okN" and "noN", flips the
  // processes' uids, and moves the processes itself (without a check).
  std::mt19937 rng(3);
  int64_t mutations = 0;
  while (running.load() > 0) {
    ++mutations;
    switch (rng() % 3) {
      case 0: {
        int i = static_cast<int>(rng() % kCgroups);
        std::string name = (rng() % 2 ? "ok" : "no") + std::to_string(i);
        Status st = engine.rename(*cgs[i], name);
        if (!st.ok()) fail.add("rename: " + st.message());
        break;
      }
      case 1: {
        Creds c;
        c.uid = c.euid = rng() % 2;
        Status st = engine.set_creds(procs[rng() % kProcs][0], c);
        if (!st.ok()) fail.add("set_creds: " + st.message());
        break;
      }
      default: {
        Status st = engine.migrate_process(procs[rng() % kProcs][0], *cgs[rng() % kCgroups]);
        if (!st.ok()) fail.add("migrate_process: " + st.message());
        break;
      }
    }
  }
  m1.join();
  m2.join();
  fail.expect_none();
  EXPECT_EQ(witness->nr_stale.load(), 0)
      << "moves made on a stale check, of " << witness->nr_checked_moves.load();
  EXPECT_GT(moved.load(), 0);
  EXPECT_GT(refused.load(), 0);
  EXPECT_GT(witness->nr_checked_moves.load(), 0);
  Status st = engine.check_invariants();
  EXPECT_TRUE(st.ok()) << st.message();
  st = witness->check_counts(engine);
  EXPECT_TRUE(st.ok()) << st.message();
  std::printf("move checks: %lld moved, %lld refused, %lld witnessed, %lld mutations\n",
              static_cast<long long>(moved.load()), static_cast<long long>(refused.load()),
              static_cast<long long>(witness->nr_checked_moves.load()),
              static_cast<long long>(mutations));
}

}  // namespace
}  // namespace cgcore::testing
