// Randomized operation sequences against a reference model.
//
// One Engine with two TestControllers ("alpha", "beta") runs long random
// sequences of cgroup, task, migration and hierarchy operations, with vetoes
// and injected css_set allocation failures armed at random. A plain model
// (std::map and friends) predicts the exact outcome of every operation: its
// errno, and on success its effect. After every step the engine is compared
// with the model in full: structural invariants, the controllers' per-css
// counts, each task's cgroup in every hierarchy, each cgroup's tasks, thread
// lists, the hierarchy trees, hook call counters, knob consumption, and the
// number of live objects (leaks). A failed operation must leave the model —
// hence the engine — unchanged: the all-or-nothing property.
//
// Environment: CGCORE_RANDOM_OPS sets the total number of operations
// (default 100000, split over the seeds); CGCORE_RANDOM_SEED runs that one
// seed only; CGCORE_RANDOM_STATS=1 prints outcome counts per seed.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/engine.h"
#include "tests/support/test_controller.h"

namespace cgcore::testing {
namespace {

constexpr int kMaxSlots = 8;          // hierarchy slots ever in use (default + v1s)
constexpr size_t kMaxTasks = 150;     // live threads
constexpr int kMaxCgroupsPerHier = 30;
constexpr int kNrCtl = 2;             // alpha (id 0), beta (id 1)

// A css_set, as the model sees it: the cgroup (model id) of each hierarchy
// slot, -1 where the slot holds no hierarchy. Controllers' csses follow from
// the cgroups (the default hierarchy never enables controllers below its root).
using Key = std::array<int, kMaxSlots>;

struct MCgroup {
  int slot = 0;
  int parent = -1;  // model id; -1 for a root
  std::string name;
  Cgroup* cg = nullptr;
  CgroupPtr ref;  // non-roots: keeps the object valid
  std::map<std::string, int> children;
};

struct MHier {
  Hierarchy* h = nullptr;
  std::string name;
  std::set<int> ctrls;
  int root = -1;
};

struct MTask {
  Pid tgid = 0;
  bool exiting = false;
  Key cg{};
};

struct MProc {
  std::vector<Pid> threads;  // live threads, creation order
  int mm = 0;
};

// Expected hook call counters of one TestController.
struct Counters {
  int64_t can_attach = 0, cancel_attach = 0, cancel_locked = 0, attach = 0, post_attach = 0,
          offline = 0, exit = 0;
};

// Expected knob values of one TestController.
struct Knobs {
  int fail_css_alloc = 0, fail_css_online = 0, veto_attach = 0, veto_attach_locked = 0,
      veto_fork = 0;
};

const char* ename(int err) { return err == 0 ? "OK" : errno_name(err); }

class Runner {
 public:
  explicit Runner(uint64_t seed) : rng_(seed) {
    for (int i = 0; i < kNrCtl; ++i) {
      auto c = std::make_unique<TestController>(i == 0 ? "alpha" : "beta");
      ctl_[i] = c.get();
      auto r = engine_.register_controller(std::move(c));
      EXPECT_TRUE(r.ok()) << r.status().message();
      EXPECT_EQ(r.ok() ? r.value() : -1, i);
    }
    Hierarchy& d = engine_.default_hierarchy();
    MHier mh;
    mh.h = &d;
    mh.ctrls = {0, 1};
    mh.root = add_cgroup(0, -1, "", &d.root(), CgroupPtr());
    hiers_[0] = mh;
    bound_ = {0, 0};
  }

  // Runs `n` random steps, verifying after each; stops at the first failure.
  void run(int n) {
    verify();
    for (step_ = 0; step_ < n && !::testing::Test::HasFailure(); ++step_) random_step();
    if (::testing::Test::HasFailure()) dump_log();
  }

  // The number of steps run (fewer than asked after a failure).
  int64_t nr_ops_done() const { return step_; }
  // Outcome counts, "op:ERRNO" -> n, and the largest population seen.
  std::string stats() const {
    std::string s = "max tasks " + std::to_string(max_tasks_) + ";";
    for (int c = 0; c < kNrCtl; ++c)
      s += " ctl" + std::to_string(c) + ".can_attach=" + std::to_string(exp_[c].can_attach) +
           " ctl" + std::to_string(c) + ".attach=" + std::to_string(exp_[c].attach);
    for (auto& [k, n] : stats_) s += " " + k + "=" + std::to_string(n);
    return s;
  }

 private:
  // ------------------------------------------------------------ randomness
  uint64_t rnd(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }
  bool chance(int percent) { return static_cast<int>(rnd(100)) < percent; }
  template <typename T>
  const T& pick(const std::vector<T>& v) {
    return v[rnd(v.size())];
  }

  // ------------------------------------------------------------ model queries
  int add_cgroup(int slot, int parent, std::string name, Cgroup* cg, CgroupPtr ref) {
    int id = next_cg_id_++;
    MCgroup m;
    m.slot = slot;
    m.parent = parent;
    m.name = name;
    m.cg = cg;
    m.ref = std::move(ref);
    cgs_[id] = std::move(m);
    if (parent >= 0) cgs_[parent].children[name] = id;
    return id;
  }
  bool is_live(Pid p) const { return tasks_.count(p) != 0; }
  bool is_zombie(Pid p) const { return !is_live(p) && procs_.count(p) != 0; }
  bool exists(Pid p) const { return is_live(p) || is_zombie(p); }
  Pid proc_of(Pid p) const { return is_live(p) ? tasks_.at(p).tgid : p; }
  Key root_key() const {
    Key k;
    k.fill(-1);
    for (auto& [s, h] : hiers_) k[s] = h.root;
    return k;
  }
  // The css_sets in use: one per distinct key of a live task, plus the root
  // css_set the engine pins.
  std::set<Key> live_keys() const {
    std::set<Key> keys{root_key()};
    for (auto& [tid, t] : tasks_) keys.insert(t.cg);
    return keys;
  }
  // The css_sets that exist: those in use and the kept ones.
  std::set<Key> cset_keys() const {
    std::set<Key> keys = live_keys();
    keys.insert(kept_.begin(), kept_.end());
    return keys;
  }
  // After a change of the tasks' keys (or of the cgroups), from `before`
  // (live_keys() then): a key no task uses any more is kept, one in use
  // again is not, and none is kept with a removed cgroup.
  void settle_kept(const std::set<Key>& before) {
    const std::set<Key> now = live_keys();
    for (const Key& k : before)
      if (!now.count(k)) kept_.insert(k);
    for (const Key& k : now) kept_.erase(k);
    for (auto it = kept_.begin(); it != kept_.end();) {
      bool dead = false;
      for (int id : *it) dead |= id >= 0 && !cgs_.count(id);
      it = dead ? kept_.erase(it) : std::next(it);
    }
  }
  int cgroups_in(int slot) const {
    int n = 0;
    for (auto& [id, c] : cgs_) n += c.slot == slot;
    return n;
  }
  std::vector<int> cgroups_of(int slot) const {
    std::vector<int> v;
    for (auto& [id, c] : cgs_)
      if (c.slot == slot) v.push_back(id);
    return v;
  }
  std::vector<int> slots() const {
    std::vector<int> v;
    for (auto& [s, h] : hiers_) v.push_back(s);
    return v;
  }
  std::string path(int id) const {
    const MCgroup& c = cgs_.at(id);
    std::string p = c.parent < 0 ? "/" : "";
    for (int x = id; cgs_.at(x).parent >= 0; x = cgs_.at(x).parent) p = "/" + cgs_.at(x).name + p;
    return "h" + std::to_string(c.slot) + ":" + p;
  }
  bool has_tasks(int cg) const {
    int s = cgs_.at(cg).slot;
    for (auto& [tid, t] : tasks_)
      if (t.cg[s] == cg) return true;
    return false;
  }
  std::vector<Pid> live_tids() const {
    std::vector<Pid> v;
    for (auto& [tid, t] : tasks_) v.push_back(tid);
    return v;
  }
  std::vector<Pid> zombies() const {
    std::vector<Pid> v;
    for (auto& [tgid, p] : procs_)
      if (!is_live(tgid)) v.push_back(tgid);
    return v;
  }

  // An id for a task operation: mostly live threads, sometimes zombie
  // leaders, exiting threads, or ids that name nothing.
  Pid pick_id() {
    int r = static_cast<int>(rnd(100));
    if (r < 8) {
      auto z = zombies();
      if (!z.empty()) return pick(z);
    } else if (r < 16) {
      std::vector<Pid> ex;
      for (auto& [tid, t] : tasks_)
        if (t.exiting) ex.push_back(tid);
      if (!ex.empty()) return pick(ex);
    } else if (r < 22) {
      return nonexistent_id();
    }
    auto live = live_tids();
    return live.empty() ? nonexistent_id() : pick(live);
  }
  Pid nonexistent_id() {
    for (;;) {
      Pid p = static_cast<Pid>(rnd(static_cast<uint64_t>(max_pid_) + 20)) - 1;  // -1 .. max+18
      if (!exists(p)) return p;
    }
  }
  // A live cgroup of a random hierarchy, or (sometimes) a removed one.
  Cgroup* pick_cgroup(int* id_out, int slot = -1) {
    if (slot < 0 && !graveyard_.empty() && chance(4)) {
      *id_out = -1;
      return pick(graveyard_).second.get();
    }
    if (slot < 0) slot = pick(slots());
    auto v = cgroups_of(slot);
    *id_out = pick(v);
    return cgs_[*id_out].cg;
  }
  std::string random_name() {
    static const char* const kNames[] = {"a", "b", "c", "d", "e", "f", "g"};
    if (chance(4)) {
      static const char* const kBad[] = {"", ".", "..", "x/y", "x\ny"};
      int i = static_cast<int>(rnd(6));
      return i == 5 ? std::string(300, 'n') : kBad[i];  // long names are fine, as in the kernel
    }
    return kNames[rnd(7)];
  }
  static int name_error(const std::string& n) {
    if (n.empty() || n == "." || n == ".." || n.find('/') != std::string::npos ||
        n.find('\n') != std::string::npos)
      return EINVAL;
    return 0;
  }

  // ------------------------------------------------------------ checking
  void log(std::string s) {
    log_.push_back("#" + std::to_string(step_) + " " + std::move(s));
    if (log_.size() > 60) log_.pop_front();
  }
  void dump_log() {
    std::ostringstream o;
    o << "last operations (most recent last):\n";
    for (auto& s : log_) o << "  " << s << "\n";
    ADD_FAILURE() << o.str();
  }
  // Records an outcome and checks it against the expected errno.
  bool expect_err(int got, const std::string& got_msg, int want, const std::string& what) {
    ++stats_[what.substr(0, what.find('(')) + ":" + ename(got)];
    log(what + " = " + ename(got) + (want != got ? std::string(" (want ") + ename(want) + ")" : ""));
    EXPECT_EQ(got, want) << what << ": got " << ename(got) << " (" << got_msg << "), want "
                         << ename(want);
    return got == want;
  }

  void verify() {
    Status st = engine_.check_invariants();
    ASSERT_TRUE(st.ok()) << st.message();
    for (int c = 0; c < kNrCtl; ++c) {
      st = ctl_[c]->check_counts(engine_);
      ASSERT_TRUE(st.ok()) << st.message();
    }
    verify_hierarchies();
    if (::testing::Test::HasFailure()) return;
    verify_tasks();
    verify_counters();
  }

  void verify_hierarchies() {
    auto hs = engine_.hierarchies();
    ASSERT_EQ(hs.size(), hiers_.size());
    for (Hierarchy* h : hs) {
      auto it = hiers_.find(h->id());
      ASSERT_TRUE(it != hiers_.end()) << "unexpected hierarchy " << h->id();
      EXPECT_EQ(it->second.h, h);
      EXPECT_EQ(h->name(), it->second.name);
      EXPECT_EQ(&h->root(), cgs_[it->second.root].cg);
    }
    MutexLock lock(engine_.cgroup_mutex());
    for (int c = 0; c < kNrCtl; ++c)
      EXPECT_EQ(engine_.hierarchy_of_locked(c).id(), bound_[c]) << "controller " << c;
    for (auto& [s, mh] : hiers_) {
      for (int c = 0; c < kNrCtl; ++c)
        EXPECT_EQ(mh.h->controllers().test(c), mh.ctrls.count(c) != 0) << "slot " << s;
      EXPECT_EQ(mh.h->nr_cgroups(), cgroups_in(s)) << "slot " << s;
    }
    for (auto& [id, m] : cgs_) {
      const Cgroup& cg = *m.cg;
      EXPECT_FALSE(cg.dead()) << path(id);
      EXPECT_EQ(cg.hierarchy().id(), m.slot) << path(id);
      EXPECT_EQ(cg.parent(), m.parent < 0 ? nullptr : cgs_[m.parent].cg) << path(id);
      if (m.parent >= 0) EXPECT_EQ(cg.name(), m.name) << path(id);
      const auto& kids = cg.children();
      EXPECT_EQ(kids.size(), m.children.size()) << path(id);
      for (auto& [name, child] : m.children) {
        auto k = kids.find(name);
        EXPECT_TRUE(k != kids.end() && k->second == cgs_[child].cg) << path(id) << " child " << name;
      }
    }
    for (auto& [slot, ptr] : graveyard_) EXPECT_TRUE(ptr->dead());
  }

  void verify_tasks() {
    EXPECT_EQ(engine_.nr_tasks(), tasks_.size());
    std::map<int, std::vector<Pid>> want_tids;  // model cgroup -> tids
    for (auto& [tid, t] : tasks_) {
      for (auto& [s, mh] : hiers_) {
        want_tids[t.cg[s]].push_back(tid);
        auto r = engine_.task_cgroup(tid, *mh.h);
        ASSERT_TRUE(r.ok()) << "task_cgroup(" << tid << "): " << r.status().message();
        EXPECT_EQ(r.value().get(), cgs_[t.cg[s]].cg)
            << "task " << tid << " in slot " << s << ": model has " << path(t.cg[s]);
      }
      auto g = engine_.tgid_of(tid);
      EXPECT_TRUE(g.ok() && g.value() == t.tgid) << "tgid_of(" << tid << ")";
    }
    for (auto& [tgid, p] : procs_) {
      auto r = engine_.threads_of(tgid);
      ASSERT_TRUE(r.ok()) << "threads_of(" << tgid << "): " << r.status().message();
      std::vector<Pid> got = r.value();
      ASSERT_EQ(got.size(), p.threads.size()) << "threads_of(" << tgid << ")";
      if (is_live(tgid)) EXPECT_EQ(got.front(), tgid) << "leader first";
      std::vector<Pid> want = p.threads;
      std::sort(got.begin(), got.end());
      std::sort(want.begin(), want.end());
      EXPECT_EQ(got, want) << "threads_of(" << tgid << ")";
      if (!is_live(tgid)) {  // zombie leader
        auto g = engine_.tgid_of(tgid);
        EXPECT_TRUE(g.ok() && g.value() == tgid) << "zombie " << tgid;
        EXPECT_EQ(engine_.task_cgroup(tgid, engine_.default_hierarchy()).err(), ESRCH)
            << "zombie " << tgid << " has a cgroup";
      }
    }
    for (auto& [id, m] : cgs_) {
      std::vector<Pid> got = engine_.cgroup_tids(*m.cg);
      std::vector<Pid> want = want_tids[id];
      std::sort(got.begin(), got.end());
      std::sort(want.begin(), want.end());
      EXPECT_EQ(got, want) << "cgroup_tids(" << path(id) << ")";
      std::vector<Pid> got_g = engine_.cgroup_tgids(*m.cg), want_g;
      for (Pid t : want) want_g.push_back(tasks_[t].tgid);
      std::sort(got_g.begin(), got_g.end());
      std::sort(want_g.begin(), want_g.end());
      EXPECT_EQ(got_g, want_g) << "cgroup_tgids(" << path(id) << ")";
    }
    // populated(): tasks here or below.
    std::map<int, bool> pop;
    for (auto& [id, tids] : want_tids)
      if (!tids.empty())
        for (int x = id; x >= 0; x = cgs_[x].parent) pop[x] = true;
    for (auto& [id, m] : cgs_)
      EXPECT_EQ(engine_.populated(*m.cg), pop[id]) << "populated(" << path(id) << ")";
    for (int i = 0; i < 3; ++i) {
      Pid p = nonexistent_id();
      EXPECT_EQ(engine_.tgid_of(p).err(), ESRCH) << "id " << p << " should name nothing";
    }

    // Live objects: nothing leaks, nothing is freed early.
    EXPECT_EQ(engine_.nr_css_sets(), cset_keys().size());
    EXPECT_EQ(engine_.nr_kept_css_sets(), kept_.size());
    ASSERT_LE(kept_.size(), 1024u) << "the model does not follow the engine's bound on kept css_sets";
    auto oc = engine_.TEST_object_counts();
    EXPECT_EQ(oc.css_sets, static_cast<int64_t>(cset_keys().size()));
    EXPECT_EQ(oc.tasks, static_cast<int64_t>(tasks_.size() + zombies().size()));
    EXPECT_EQ(oc.processes, static_cast<int64_t>(procs_.size()));
    std::set<int> mms;
    for (auto& [tgid, p] : procs_) mms.insert(p.mm);
    EXPECT_EQ(oc.mms, static_cast<int64_t>(mms.size()));
    // Address spaces: processes share one exactly when the model says so.
    std::map<int, const Mm*> mm_of_model;
    std::set<const Mm*> distinct;
    for (auto& [tgid, p] : procs_) {
      // Asked through a live thread (a zombie leader would answer too).
      auto r = engine_.mm_of(p.threads.front());
      ASSERT_TRUE(r.ok()) << "mm_of(" << p.threads.front() << "): " << r.status().message();
      const Mm* mm = r.value().get();
      EXPECT_NE(mm, nullptr);
      auto [it, fresh] = mm_of_model.emplace(p.mm, mm);
      EXPECT_EQ(it->second, mm) << "process " << tgid << " should share its address space";
      if (fresh) EXPECT_TRUE(distinct.insert(mm).second) << "process " << tgid << " shares an address space it should not";
    }
    int64_t nonroot = 0, csses = kNrCtl;
    for (auto& [id, m] : cgs_) {
      if (m.parent < 0) continue;
      ++nonroot;
      if (m.slot != 0) csses += static_cast<int64_t>(hiers_[m.slot].ctrls.size());
    }
    // Removed cgroups stay allocated while referenced: those of the
    // graveyard, and their removed ancestors (a child pins its parent).
    std::set<const Cgroup*> dead;
    for (auto& [slot, ptr] : graveyard_)
      for (const Cgroup* c = ptr.get(); c && c->dead(); c = c->parent())
        if (!c->is_root()) dead.insert(c);  // roots are not in the object count
    EXPECT_EQ(oc.cgroups, nonroot + static_cast<int64_t>(dead.size()));
    EXPECT_EQ(oc.csses, csses);
  }

  void verify_counters() {
    for (int c = 0; c < kNrCtl; ++c) {
      TestController& t = *ctl_[c];
      const Counters& e = exp_[c];
      EXPECT_EQ(t.nr_can_attach.load(), e.can_attach) << t.name();
      EXPECT_EQ(t.nr_cancel_attach.load(), e.cancel_attach) << t.name();
      EXPECT_EQ(t.nr_cancel_locked.load(), e.cancel_locked) << t.name();
      EXPECT_EQ(t.nr_attach.load(), e.attach) << t.name();
      EXPECT_EQ(t.nr_post_attach.load(), e.post_attach) << t.name();
      EXPECT_EQ(t.nr_offline.load(), e.offline) << t.name();
      EXPECT_EQ(t.nr_exit.load(), e.exit) << t.name();
    }
  }

  // ------------------------------------------------------------ knobs
  void arm_knobs() {
    for (auto& k : knob_) k = Knobs{};
    fail_cset_ = 0;
    if (chance(15)) {
      int c = static_cast<int>(rnd(kNrCtl));
      switch (rnd(7)) {
        case 0: case 1: knob_[c].veto_attach = 1; break;
        case 2: case 3: knob_[c].veto_attach_locked = 1; break;
        case 4: knob_[c].veto_fork = 1; break;
        case 5: knob_[c].fail_css_alloc = 1; break;
        default: knob_[c].fail_css_online = 1; break;
      }
      static const int kErrs[] = {EACCES, EPERM, ENOSPC, EBUSY};
      veto_errno_ = kErrs[rnd(4)];
    }
    if (chance(10)) fail_cset_ = 1 + static_cast<int>(rnd(3));
    for (int c = 0; c < kNrCtl; ++c) {
      ctl_[c]->veto_errno = veto_errno_;
      ctl_[c]->veto_attach = knob_[c].veto_attach;
      ctl_[c]->veto_attach_locked = knob_[c].veto_attach_locked;
      ctl_[c]->veto_fork = knob_[c].veto_fork;
      ctl_[c]->fail_css_alloc = knob_[c].fail_css_alloc;
      ctl_[c]->fail_css_online = knob_[c].fail_css_online;
    }
    engine_.TEST_fail_cset_alloc(fail_cset_);
  }
  // Checks that exactly the knobs the model says were consumed were, and
  // disarms everything.
  void check_and_reset_knobs() {
    for (int c = 0; c < kNrCtl; ++c) {
      TestController& t = *ctl_[c];
      EXPECT_EQ(t.veto_attach.load(), knob_[c].veto_attach) << t.name() << " veto_attach";
      EXPECT_EQ(t.veto_attach_locked.load(), knob_[c].veto_attach_locked)
          << t.name() << " veto_attach_locked";
      EXPECT_EQ(t.veto_fork.load(), knob_[c].veto_fork) << t.name() << " veto_fork";
      EXPECT_EQ(t.fail_css_alloc.load(), knob_[c].fail_css_alloc) << t.name() << " fail_css_alloc";
      EXPECT_EQ(t.fail_css_online.load(), knob_[c].fail_css_online)
          << t.name() << " fail_css_online";
      t.veto_attach = 0;
      t.veto_attach_locked = 0;
      t.veto_fork = 0;
      t.fail_css_alloc = 0;
      t.fail_css_online = 0;
    }
    engine_.TEST_fail_cset_alloc(0);
    for (auto& k : knob_) k = Knobs{};
    fail_cset_ = 0;
  }
  std::string knob_desc() const {
    std::string s;
    for (int c = 0; c < kNrCtl; ++c) {
      const Knobs& k = knob_[c];
      std::string n = c == 0 ? "alpha." : "beta.";
      if (k.veto_attach) s += " " + n + "veto_attach";
      if (k.veto_attach_locked) s += " " + n + "veto_attach_locked";
      if (k.veto_fork) s += " " + n + "veto_fork";
      if (k.fail_css_alloc) s += " " + n + "fail_css_alloc";
      if (k.fail_css_online) s += " " + n + "fail_css_online";
    }
    if (fail_cset_) s += " fail_cset_alloc=" + std::to_string(fail_cset_);
    return s.empty() ? "" : " [" + s.substr(1) + "]";
  }

  // The model of css_set creation under an injected failure: `created`
  // css_sets must be made; the fail_cset_-th creation fails.
  bool cset_alloc_fails(size_t created) {
    if (fail_cset_ <= 0) return false;
    if (static_cast<int>(created) >= fail_cset_) {
      fail_cset_ = 0;
      return true;
    }
    fail_cset_ -= static_cast<int>(created);
    return false;
  }

  // The model of one migration transaction: targets (tids, not exiting, not
  // already in `dst`) from css_sets `srcs` to cgroup `dst`. Returns the
  // expected errno and, on success, applies it to the model.
  int model_migrate(const std::vector<Pid>& targets, const std::set<Key>& srcs, int dst) {
    const int s = cgs_[dst].slot;
    const std::set<Key> existing = cset_keys();
    const std::set<Key> live_before = live_keys();
    std::set<Key> made;
    for (Key k : srcs) {
      k[s] = dst;
      if (!existing.count(k)) made.insert(k);
    }
    if (cset_alloc_fails(made.size())) return ENOMEM;
    if (targets.empty()) return 0;
    // Controllers whose css changes: those of a v1 destination hierarchy.
    std::vector<int> called;
    if (s != 0)
      for (int c : hiers_[s].ctrls) called.push_back(c);
    int err = 0;
    size_t prepared = 0;
    for (; prepared < called.size(); ++prepared) {
      int c = called[prepared];
      ++exp_[c].can_attach;
      if (knob_[c].veto_attach > 0) {
        --knob_[c].veto_attach;
        err = veto_errno_;
        break;
      }
    }
    if (!err) {
      for (size_t i = 0; i < called.size(); ++i) {
        int c = called[i];
        if (knob_[c].veto_attach_locked > 0) {
          --knob_[c].veto_attach_locked;
          err = veto_errno_;
          for (size_t j = 0; j < i; ++j) ++exp_[called[j]].cancel_locked;
          break;
        }
      }
    }
    if (err) {
      for (size_t j = 0; j < prepared; ++j) ++exp_[called[j]].cancel_attach;
      return err;
    }
    for (int c : called) {
      ++exp_[c].attach;
      ++exp_[c].post_attach;
    }
    for (Pid t : targets) tasks_[t].cg[s] = dst;
    settle_kept(live_before);
    return 0;
  }
  // Targets and sources of moving these threads to `dst`.
  void collect(const std::vector<Pid>& tids, int dst, std::vector<Pid>* targets,
               std::set<Key>* srcs) {
    const int s = cgs_[dst].slot;
    for (Pid t : tids) {
      const MTask& m = tasks_[t];
      if (m.exiting || m.cg[s] == dst) continue;
      targets->push_back(t);
      srcs->insert(m.cg);
    }
  }

  // The fork hooks: can_fork in controller order. Returns EAGAIN on a refusal.
  int model_can_fork() {
    for (int c = 0; c < kNrCtl; ++c)
      if (knob_[c].veto_fork > 0) {
        --knob_[c].veto_fork;
        return EAGAIN;
      }
    return 0;
  }

  // A thread leaves the model (exit hooks run for every controller).
  void model_exit_thread(Pid tid) {
    const std::set<Key> live_before = live_keys();
    Pid tgid = tasks_[tid].tgid;
    tasks_.erase(tid);
    for (auto& c : exp_) ++c.exit;
    auto& th = procs_[tgid].threads;
    th.erase(std::find(th.begin(), th.end(), tid));
    if (th.empty()) procs_.erase(tgid);  // the zombie leader goes with it
    settle_kept(live_before);
  }

  Pid new_task(Pid tid, Pid tgid, const Key& cg) {
    MTask t;
    t.tgid = tgid;
    t.cg = cg;
    tasks_[tid] = t;
    procs_[tgid].threads.push_back(tid);
    max_pid_ = std::max(max_pid_, tid);
    return tid;
  }

  // An explicit id for a new task, sometimes: a fresh one, a taken one, or
  // an invalid one. Sets *want_err to the error it must cause (before hooks).
  std::optional<Pid> pick_new_id(int* want_err) {
    *want_err = 0;
    if (!chance(15)) return std::nullopt;
    int r = static_cast<int>(rnd(10));
    if (r < 3 && !tasks_.empty()) {
      *want_err = EEXIST;
      return chance(70) || zombies().empty() ? pick(live_tids()) : pick(zombies());
    }
    if (r < 4) {
      *want_err = EINVAL;
      return chance(50) ? 0 : -5;
    }
    Pid p;
    do p = static_cast<Pid>(1 + rnd(static_cast<uint64_t>(max_pid_) + 50));
    while (exists(p));
    return p;
  }

  // ------------------------------------------------------------ operations
  void op_mkdir() {
    int parent;
    Cgroup* pcg = pick_cgroup(&parent);
    std::string name = random_name();
    int want = name_error(name);
    int slot = parent >= 0 ? cgs_[parent].slot : -1;
    if (!want && parent < 0) want = ENOENT;
    if (!want && cgs_[parent].children.count(name)) want = EEXIST;
    if (!want && cgroups_in(slot) >= kMaxCgroupsPerHier) return;  // keep it small
    bool allocates = !want && slot != 0;
    if (allocates) {
      std::vector<int> ctrls(hiers_[slot].ctrls.begin(), hiers_[slot].ctrls.end());
      for (int c : ctrls)
        if (!want && knob_[c].fail_css_alloc) {
          knob_[c].fail_css_alloc = 0;
          want = ENOMEM;
        }
      for (size_t i = 0; i < ctrls.size() && !want; ++i)
        if (knob_[ctrls[i]].fail_css_online) {
          knob_[ctrls[i]].fail_css_online = 0;
          want = ENOSPC;
          for (size_t j = 0; j < i; ++j) ++exp_[ctrls[j]].offline;
        }
    }
    auto r = engine_.mkdir(*pcg, name);
    std::string what = "mkdir(" + (parent >= 0 ? path(parent) : std::string("<removed>")) + ", '" +
                       (name.size() > 10 ? name.substr(0, 10) + "..." : name) + "')" + knob_desc();
    if (!expect_err(r.err(), r.status().message(), want, what) || want) return;
    Cgroup* cg = r.value().get();
    ASSERT_NE(cg, nullptr);
    add_cgroup(slot, parent, name, cg, r.value());
  }

  void do_rmdir(int id) {
    int want = 0;
    const MCgroup& m = cgs_[id];
    if (m.parent < 0 || !m.children.empty() || has_tasks(id)) want = EBUSY;
    Status st = engine_.rmdir(*m.cg);
    if (!expect_err(st.err(), st.message(), want, "rmdir(" + path(id) + ")" + knob_desc()) ||
        want)
      return;
    if (m.slot != 0)
      for (int c : hiers_[m.slot].ctrls) ++exp_[c].offline;
    MCgroup dead = std::move(cgs_[id]);
    cgs_.erase(id);
    cgs_[dead.parent].children.erase(dead.name);
    settle_kept(live_keys());  // its kept css_sets went with it
    if (graveyard_.size() < 6) graveyard_.emplace_back(dead.slot, std::move(dead.ref));
  }

  void op_rmdir() {
    if (!graveyard_.empty() && chance(5)) {
      Status st = engine_.rmdir(*pick(graveyard_).second);
      expect_err(st.err(), st.message(), ENOENT, "rmdir(<removed>)");
      return;
    }
    int id;
    pick_cgroup(&id, pick(slots()));
    // Prefer leaves, so that removals succeed often enough.
    if (!cgs_[id].children.empty() && chance(70)) {
      while (!cgs_[id].children.empty()) {
        auto it = cgs_[id].children.begin();
        std::advance(it, rnd(cgs_[id].children.size()));
        id = it->second;
      }
    }
    do_rmdir(id);
  }

  void op_rename() {
    int id;
    Cgroup* cg = pick_cgroup(&id);
    std::string name = random_name();
    int want = 0;
    if (id >= 0 && cgs_[id].parent < 0) want = EBUSY;
    else if (id < 0) want = ENOENT;
    else if ((want = name_error(name))) {
    } else if (cgs_[id].name != name && cgs_[cgs_[id].parent].children.count(name)) {
      want = EEXIST;
    }
    Status st = engine_.rename(*cg, name);
    std::string what = "rename(" + (id >= 0 ? path(id) : std::string("<removed>")) + ", '" +
                       (name.size() > 10 ? name.substr(0, 10) + "..." : name) + "')";
    if (!expect_err(st.err(), st.message(), want, what) || want) return;
    MCgroup& m = cgs_[id];
    auto& sib = cgs_[m.parent].children;
    sib.erase(m.name);
    sib[name] = id;
    m.name = name;
  }

  void op_spawn() {
    if (tasks_.size() >= kMaxTasks) return;
    int want;
    std::optional<Pid> id = pick_new_id(&want);
    if (!want) want = model_can_fork();
    SpawnOptions o;
    o.pid = id;
    auto r = engine_.spawn(o);
    std::string what = "spawn(" + (id ? std::to_string(*id) : std::string("auto")) + ")" + knob_desc();
    if (!expect_err(r.err(), r.status().message(), want, what) || want) return;
    Pid p = r.value();
    if (id) EXPECT_EQ(p, *id);
    ASSERT_FALSE(exists(p)) << "spawn returned a taken id " << p;
    log("  -> " + std::to_string(p));
    new_task(p, p, root_key());
    procs_[p].mm = next_mm_++;
  }

  void op_fork(bool thread) {
    if (tasks_.size() >= kMaxTasks) return;
    Pid parent = pick_id();
    int want = 0;
    if (!is_live(parent) || tasks_[parent].exiting) want = ESRCH;
    int id_err;
    std::optional<Pid> id = pick_new_id(&id_err);
    if (!want) want = id_err;
    if (!want) want = model_can_fork();
    bool share = !thread && chance(20);
    Result<Pid> r = thread ? engine_.clone_thread(parent, id) : [&] {
      ForkOptions o;
      o.pid = id;
      o.share_mm = share;
      return engine_.fork(parent, o);
    }();
    std::string what = std::string(thread ? "clone_thread(" : "fork(") + std::to_string(parent) +
                       (id ? ", id " + std::to_string(*id) : "") + (share ? ", share_mm" : "") +
                       ")" + knob_desc();
    if (!expect_err(r.err(), r.status().message(), want, what) || want) return;
    Pid p = r.value();
    if (id) EXPECT_EQ(p, *id);
    ASSERT_FALSE(exists(p)) << "fork returned a taken id " << p;
    log("  -> " + std::to_string(p));
    const MTask& pt = tasks_[parent];
    if (thread) {
      new_task(p, pt.tgid, pt.cg);
    } else {
      int mm = share ? procs_[pt.tgid].mm : next_mm_++;
      new_task(p, p, pt.cg);
      procs_[p].mm = mm;
    }
  }

  void op_mark_exiting() {
    Pid t = pick_id();
    int want = is_live(t) ? 0 : ESRCH;
    Status st = engine_.mark_exiting(t);
    if (!expect_err(st.err(), st.message(), want, "mark_exiting(" + std::to_string(t) + ")") ||
        want)
      return;
    tasks_[t].exiting = true;
  }

  void op_exit_thread() { do_exit_thread(pick_id()); }

  void op_exit_process() {
    Pid t = pick_id();
    int want = exists(t) ? 0 : ESRCH;
    Status st = engine_.exit_process(t);
    if (!expect_err(st.err(), st.message(), want, "exit_process(" + std::to_string(t) + ")") ||
        want)
      return;
    std::vector<Pid> th = procs_[proc_of(t)].threads;
    for (Pid x : th) model_exit_thread(x);
  }

  void op_exec() {
    Pid t = pick_id();
    int want = is_live(t) && !tasks_[t].exiting ? 0 : ESRCH;
    Status st = engine_.exec(t);
    if (!expect_err(st.err(), st.message(), want, "exec(" + std::to_string(t) + ")") || want)
      return;
    const Pid tgid = tasks_[t].tgid;
    std::vector<Pid> others = procs_[tgid].threads;
    for (Pid x : others)
      if (x != t) model_exit_thread(x);
    if (t != tgid) {  // de_thread: the thread takes the process id
      MTask m = tasks_[t];
      tasks_.erase(t);
      tasks_[tgid] = m;
      procs_[tgid].threads = {tgid};
    }
    procs_[tgid].mm = next_mm_++;
  }

  // dst: a live cgroup (model id >= 0) or a removed one (-1, ENODEV).
  int pick_dst(Cgroup** cg) {
    int id;
    *cg = pick_cgroup(&id);
    return id;
  }

  void op_migrate_thread() {
    Pid t = pick_id();
    Cgroup* cg;
    int dst = pick_dst(&cg);
    int want = 0;
    if (!exists(t)) want = ESRCH;
    else if (dst < 0) want = ENODEV;
    std::vector<Pid> targets;
    std::set<Key> srcs;
    if (!want && is_live(t)) collect({t}, dst, &targets, &srcs);
    std::string what = "migrate_thread(" + std::to_string(t) + " -> " +
                       (dst >= 0 ? path(dst) : "<removed>") + ")" + knob_desc();
    if (!want) want = model_migrate(targets, srcs, dst);
    Status st = engine_.migrate_thread(t, *cg);
    expect_err(st.err(), st.message(), want, what);
  }

  void op_migrate_process() {
    Pid t = pick_id();
    Cgroup* cg;
    int dst = pick_dst(&cg);
    int want = 0;
    if (!exists(t)) want = ESRCH;
    else if (dst < 0) want = ENODEV;
    std::vector<Pid> targets;
    std::set<Key> srcs;
    if (!want) collect(procs_[proc_of(t)].threads, dst, &targets, &srcs);
    std::string what = "migrate_process(" + std::to_string(t) + " -> " +
                       (dst >= 0 ? path(dst) : "<removed>") + ")" + knob_desc();
    if (!want) want = model_migrate(targets, srcs, dst);
    Status st = engine_.migrate_process(t, *cg);
    expect_err(st.err(), st.message(), want, what);
  }

  void op_migrate_processes() {
    std::vector<Pid> pids;
    int n = 1 + static_cast<int>(rnd(5));
    for (int i = 0; i < n; ++i) pids.push_back(pick_id());
    Cgroup* cg;
    int dst = pick_dst(&cg);
    int want = 0;
    for (Pid p : pids)
      if (!exists(p)) want = ESRCH;
    if (!want && dst < 0) want = ENODEV;
    std::vector<Pid> targets;
    std::set<Key> srcs;
    if (!want) {
      std::set<Pid> seen;
      for (Pid p : pids)
        if (seen.insert(proc_of(p)).second) collect(procs_[proc_of(p)].threads, dst, &targets, &srcs);
    }
    std::string what = "migrate_processes({";
    for (Pid p : pids) what += std::to_string(p) + ",";
    what += "} -> " + (dst >= 0 ? path(dst) : std::string("<removed>")) + ")" + knob_desc();
    if (!want) want = model_migrate(targets, srcs, dst);
    Status st = engine_.migrate_processes(pids, *cg);
    expect_err(st.err(), st.message(), want, what);
  }

  void do_transfer(int from_id, Cgroup* from, int to_id, Cgroup* to) {
    // Hierarchies: a removed cgroup's hierarchy is still alive (see the
    // graveyard note in op_destroy).
    int want = 0;
    if (&from->hierarchy() != &to->hierarchy()) want = EINVAL;
    else if (to_id < 0) want = ENODEV;
    else if (from == to) want = 0;
    std::string what = "transfer(" + (from_id >= 0 ? path(from_id) : "<removed>") + " -> " +
                       (to_id >= 0 ? path(to_id) : "<removed>") + ")" + knob_desc();
    if (!want && from != to && from_id >= 0) {
      const int s = cgs_[to_id].slot;
      std::vector<Pid> targets;
      std::set<Key> srcs;
      for (const Key& k : live_keys())  // kept css_sets have no task to move
        if (k[s] == from_id) srcs.insert(k);
      for (auto& [tid, t] : tasks_)
        if (t.cg[s] == from_id && !t.exiting) targets.push_back(tid);
      want = model_migrate(targets, srcs, to_id);
    }
    Status st = engine_.transfer(*from, *to);
    expect_err(st.err(), st.message(), want, what);
  }

  void op_transfer() {
    int from_id, to_id;
    Cgroup* from = pick_cgroup(&from_id);
    Cgroup* to;
    if (chance(85) && from_id >= 0) {
      to = pick_cgroup(&to_id, cgs_[from_id].slot);
    } else {
      to = pick_cgroup(&to_id);
    }
    do_transfer(from_id, from, to_id, to);
  }

  // Runs one extra checked step inside an operation (fresh knobs, verify).
  template <typename Fn>
  bool sub_step(Fn&& fn) {
    arm_knobs();
    fn();
    if (::testing::Test::HasFailure()) return false;
    check_and_reset_knobs();
    verify();
    return !::testing::Test::HasFailure();
  }
  void do_exit_thread(Pid t) {
    int want = is_live(t) ? 0 : ESRCH;
    Status st = engine_.exit_thread(t);
    if (!expect_err(st.err(), st.message(), want, "exit_thread(" + std::to_string(t) + ")") ||
        want)
      return;
    model_exit_thread(t);
  }


  void op_mount() {
    struct Spec {
      std::vector<std::string> ctrls;
      const char* name;
    };
    static const Spec kSpecs[] = {
        {{"alpha"}, ""},          {{"beta"}, ""},        {{"alpha", "beta"}, ""},
        {{}, "n1"},               {{}, "n2"},            {{"alpha"}, "n3"},
        {{"beta"}, "n1"},         {{"beta", "alpha"}, "n4"}, {{}, ""},
        {{"gamma"}, ""},          {{}, "bad/name"},      {{"alpha"}, "n1"},
    };
    const Spec& sp = kSpecs[rnd(std::size(kSpecs))];
    std::string name = sp.name;
    std::string what = "mount({";
    for (auto& c : sp.ctrls) what += c + ",";
    what += "}, '" + name + "')";

    int want = 0;
    int existing = -1;
    std::set<int> wanted;
    bool name_ok = std::all_of(name.begin(), name.end(), [](char c) {
      return isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
    });
    if (!name.empty() && !name_ok) want = EINVAL;
    for (auto& c : sp.ctrls) {
      if (c == "alpha") wanted.insert(0);
      else if (c == "beta") wanted.insert(1);
      else if (!want) want = EINVAL;
    }
    if (!want && wanted.empty() && name.empty()) want = EINVAL;
    if (!want) {
      for (auto& [s, h] : hiers_) {
        if (s == 0) continue;
        if (!name.empty()) {
          if (h.name != name) continue;
          if (!wanted.empty() && wanted != h.ctrls) want = EBUSY;
          else existing = s;
          break;
        }
        if (!wanted.empty() && wanted == h.ctrls) {
          existing = s;
          break;
        }
      }
    }
    if (!want && existing < 0)
      for (int c : wanted)
        if (bound_[c] != 0) want = EBUSY;
    int slot = -1;
    if (!want && existing < 0) {
      if (hiers_.size() >= kMaxSlots) return;
      slot = 1;
      while (hiers_.count(slot)) ++slot;
      kept_.clear();  // re-homing starts by reclaiming the kept css_sets, even if it fails
      if (cset_alloc_fails(live_keys().size())) want = ENOMEM;  // every css_set in use is re-homed
    }
    what += knob_desc();
    auto r = engine_.mount(sp.ctrls, name);
    if (!expect_err(r.err(), r.status().message(), want, what) || want) return;
    Hierarchy* h = r.value();
    if (existing >= 0) {
      EXPECT_EQ(h, hiers_[existing].h) << "mount should return the existing hierarchy";
      return;
    }
    ASSERT_EQ(h->id(), slot);
    log("  -> slot " + std::to_string(slot));
    MHier mh;
    mh.h = h;
    mh.name = name;
    mh.ctrls = wanted;
    mh.root = add_cgroup(slot, -1, "", &h->root(), CgroupPtr());
    for (int c : wanted) {
      hiers_[0].ctrls.erase(c);
      bound_[c] = slot;
    }
    hiers_[slot] = mh;
    for (auto& [tid, t] : tasks_) t.cg[slot] = mh.root;
    kept_.clear();  // re-homing reclaims every kept css_set and keeps no source
  }

  void op_destroy() {
    std::vector<int> v1;
    for (auto& [s, h] : hiers_)
      if (s != 0) v1.push_back(s);
    if (v1.empty() && !chance(3)) return op_mount();
    int slot = v1.empty() || chance(3) ? 0 : pick(v1);
    if (slot != 0 && !cgs_[hiers_[slot].root].children.empty() && chance(70)) {
      // Empty the hierarchy first: let its exiting tasks below the root
      // finish (transfer leaves them behind), then bottom-up move each
      // cgroup's tasks to its parent and remove it. Each of these is a
      // checked step of its own.
      std::vector<Pid> ex;
      for (auto& [tid, t] : tasks_)
        if (t.exiting && t.cg[slot] != hiers_[slot].root) ex.push_back(tid);
      for (Pid t : ex)
        if (!sub_step([&] { do_exit_thread(t); })) return;
      std::vector<int> order;
      std::vector<int> stack{hiers_[slot].root};
      while (!stack.empty()) {
        int x = stack.back();
        stack.pop_back();
        order.push_back(x);
        for (auto& [n, c] : cgs_[x].children) stack.push_back(c);
      }
      for (auto it = order.rbegin(); it != order.rend(); ++it) {
        if (cgs_[*it].parent < 0) continue;
        int parent = cgs_[*it].parent;
        if (!sub_step([&] { do_transfer(*it, cgs_[*it].cg, parent, cgs_[parent].cg); })) return;
        if (!sub_step([&] { do_rmdir(*it); })) return;
      }
      arm_knobs();
    }
    int want = 0;
    if (slot == 0) want = EINVAL;
    else if (!cgs_[hiers_[slot].root].children.empty()) want = EBUSY;
    else if (kept_.clear(), cset_alloc_fails(live_keys().size())) want = ENOMEM;  // as mount
    Status st = engine_.destroy_hierarchy(*hiers_[slot].h);
    if (!expect_err(st.err(), st.message(), want,
                    "destroy_hierarchy(slot " + std::to_string(slot) + ")" + knob_desc()) ||
        want)
      return;
    for (int c : hiers_[slot].ctrls) {
      hiers_[0].ctrls.insert(c);
      bound_[c] = 0;
    }
    cgs_.erase(hiers_[slot].root);
    hiers_.erase(slot);
    for (auto& [tid, t] : tasks_) t.cg[slot] = -1;
    kept_.clear();  // as for mount
  }

  void random_step() {
    enum Op {
      kMkdir, kRmdir, kRename, kSpawn, kFork, kClone, kMark, kExitThread, kExitProcess, kExec,
      kMigThread, kMigProcess, kMigProcesses, kTransfer, kMount, kDestroy, kNrOps
    };
    static const int kWeights[kNrOps] = {9, 6, 3, 4, 10, 8, 3, 6, 3, 3, 12, 12, 5, 6, 2, 1};
    int w[kNrOps];
    std::copy(std::begin(kWeights), std::end(kWeights), w);
    if (tasks_.size() < 10) w[kSpawn] += 20, w[kFork] += 20;
    if (tasks_.size() > kMaxTasks - 20) w[kExitThread] += 20, w[kExitProcess] += 20;
    int total = 0;
    for (int x : w) total += x;
    int r = static_cast<int>(rnd(total));
    int op = 0;
    while (r >= w[op]) r -= w[op++];

    arm_knobs();
    switch (op) {
      case kMkdir: op_mkdir(); break;
      case kRmdir: op_rmdir(); break;
      case kRename: op_rename(); break;
      case kSpawn: op_spawn(); break;
      case kFork: op_fork(false); break;
      case kClone: op_fork(true); break;
      case kMark: op_mark_exiting(); break;
      case kExitThread: op_exit_thread(); break;
      case kExitProcess: op_exit_process(); break;
      case kExec: op_exec(); break;
      case kMigThread: op_migrate_thread(); break;
      case kMigProcess: op_migrate_process(); break;
      case kMigProcesses: op_migrate_processes(); break;
      case kTransfer: op_transfer(); break;
      case kMount: op_mount(); break;
      case kDestroy: op_destroy(); break;
    }
    if (::testing::Test::HasFailure()) return;
    check_and_reset_knobs();
    verify();
    max_tasks_ = std::max(max_tasks_, tasks_.size());
  }

  Engine engine_;  // first: outlives the CgroupPtrs of the model below
  std::mt19937_64 rng_;
  TestController* ctl_[kNrCtl] = {};
  int64_t step_ = 0;
  std::deque<std::string> log_;

  // The model.
  std::map<int, MCgroup> cgs_;  // live cgroups, roots included
  int next_cg_id_ = 0;
  std::map<int, MHier> hiers_;  // by slot (HierarchyId)
  std::array<int, kNrCtl> bound_{};
  std::map<Pid, MTask> tasks_;  // live threads
  std::map<Pid, MProc> procs_;  // by tgid; a tgid without a live task is a zombie leader
  std::vector<std::pair<int, CgroupPtr>> graveyard_;  // removed cgroups (slot, ref)
  Pid max_pid_ = 1;
  int next_mm_ = 1;
  Counters exp_[kNrCtl];
  Knobs knob_[kNrCtl];
  int veto_errno_ = EACCES;
  int fail_cset_ = 0;
  std::set<Key> kept_;  // keys of the css_sets kept without tasks
  std::map<std::string, int64_t> stats_;
  size_t max_tasks_ = 0;
};

// ------------------------------------------------------------ the tests

int64_t total_ops() {
  if (const char* e = std::getenv("CGCORE_RANDOM_OPS")) {
    long long n = std::atoll(e);
    if (n > 0) return n;
  }
  return 100000;
}

std::vector<uint64_t> seeds() {
  if (const char* e = std::getenv("CGCORE_RANDOM_SEED")) return {std::strtoull(e, nullptr, 0)};
  return {1, 2, 3, 4, 5, 6, 7, 8, 0x5eed, 0xc0ffee};
}

class RandomOps : public ::testing::TestWithParam<uint64_t> {};

TEST_P(RandomOps, MatchesModel) {
  const uint64_t seed = GetParam();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (rerun with CGCORE_RANDOM_SEED=" +
               std::to_string(seed) + ")");
  const int64_t n = std::max<int64_t>(1, total_ops() / static_cast<int64_t>(seeds().size()));
  Runner runner(seed);
  runner.run(static_cast<int>(n));
  EXPECT_EQ(runner.nr_ops_done(), n);
  if (std::getenv("CGCORE_RANDOM_STATS")) std::printf("seed %llu: %s\n", static_cast<unsigned long long>(seed), runner.stats().c_str());
}

INSTANTIATE_TEST_SUITE_P(Seeds, RandomOps, ::testing::ValuesIn(seeds()));

}  // namespace
}  // namespace cgcore::testing
