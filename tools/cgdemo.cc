// cgdemo: a short tour of the engine. It registers a small demonstration
// controller ("cap": refuses a migration that would put more than N tasks in
// a cgroup), mounts a v1 hierarchy beside the default one, creates cgroups,
// forks virtual tasks, and shows migration as one all-or-nothing transaction:
// a veto and an injected allocation failure leave everything where it was.
//
// Usage: cgdemo [--tasks N]   (N processes of 4 threads; default 3)
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/engine.h"
#include "core/migration.h"
#include "tools/common/cli.h"

namespace {

using namespace cgcore;

// The cap controller: each cgroup may hold at most `cap` tasks (default
// unlimited); a migration that would exceed it is vetoed with EAGAIN.
class CapCss : public Css {
 public:
  int64_t tasks = 0;     // guarded by the engine's cgroup mutex (demo: one thread)
  int64_t cap = INT64_MAX;
};

class CapController : public Controller {
 public:
  std::string_view name() const override { return "cap"; }
  Result<std::unique_ptr<Css>> css_alloc(Css*) override { return std::unique_ptr<Css>(new CapCss); }
  // Checks the caps and records the moves; attach applies them. Both run
  // under the cgroup mutex, so `moves_` belongs to one transaction.
  Status can_attach(TaskSet& tset) override {
    std::map<CapCss*, int64_t> delta;
    tset.for_each([&](Task&, CssSet* src, CssSet& dst) {
      --delta[css(*src)];
      ++delta[css(dst)];
    });
    for (auto& [c, n] : delta)
      if (n > 0 && c->tasks + n > c->cap) return Status::Error(EAGAIN, "cap: the destination is full");
    moves_.assign(delta.begin(), delta.end());
    return Status::Ok();
  }
  void cancel_attach(TaskSet&) override { moves_.clear(); }
  void attach(TaskSet&) noexcept override {
    for (auto& [c, n] : moves_) c->tasks += n;
    moves_.clear();
  }
  Status can_fork(Task&, CssSet& cset) override {
    ++css(cset)->tasks;
    return Status::Ok();
  }
  void exit(Task&, CssSet& cset) override { --css(cset)->tasks; }

 private:
  CapCss* css(CssSet& cset) { return static_cast<CapCss*>(cset.css(id())); }
  std::vector<std::pair<CapCss*, int64_t>> moves_;
};

void check(const char* what, const Status& st) {
  std::printf("  %-52s %s%s%s\n", what, st.ok() ? "ok" : errno_name(st.err()),
              st.ok() ? "" : ": ", st.ok() ? "" : st.message().c_str());
}

void show(Engine& engine, Hierarchy& h, const char* title) {
  std::printf("%s\n", title);
  MutexLock lock(engine.cgroup_mutex());
  std::vector<std::pair<const Cgroup*, int>> stack{{&h.root(), 0}};
  while (!stack.empty()) {
    auto [cg, depth] = stack.back();
    stack.pop_back();
    std::printf("  %*s%s  (%zu tasks)\n", depth * 2, "", cg->is_root() ? "/" : cg->name().c_str(),
                engine.cgroup_tids(*cg).size());
    for (auto it = cg->children().rbegin(); it != cg->children().rend(); ++it)
      stack.push_back({it->second, depth + 1});
  }
}

}  // namespace

int main(int argc, char** argv) {
  int nproc = 3;
  CLI::App app{"cgdemo: a short tour of the cgcore engine (a demonstration controller, "
               "cgroups, virtual tasks, all-or-nothing migration)",
               "cgdemo"};
  cgcore::tools::standard_options(app, "cgdemo");
  app.add_option("--tasks", nproc, "virtual processes of 4 threads each (default 3)")
      ->check(CLI::Range(1, 100000));
  if (int rc = cgcore::tools::parse(app, argc, argv); rc >= 0) return rc;
  Engine engine;
  auto* cap = new CapController;
  if (auto st = engine.register_controller(std::unique_ptr<Controller>(cap)); !st.ok()) {
    std::fprintf(stderr, "cgdemo: registering the cap controller: %s\n", st.status().message().c_str());
    return cgcore::tools::kExitFailure;
  }

  std::printf("1. A v1 hierarchy with the cap controller, beside the default one\n");
  auto v1 = engine.mount({"cap"}, "");
  check("mount cap", v1.status());
  check("mount cap again on a named hierarchy (EBUSY)", engine.mount({"cap"}, "other").status());
  Hierarchy& h = **v1;

  std::printf("2. Cgroups and tasks\n");
  auto web = engine.mkdir(h.root(), "web");
  auto db = engine.mkdir(h.root(), "db");
  check("mkdir /web", web.status());
  check("mkdir /db", db.status());
  check("mkdir /web again (EEXIST)", engine.mkdir(h.root(), "web").status());
  check("mkdir '..' (EINVAL)", engine.mkdir(h.root(), "..").status());
  std::vector<Pid> procs;
  for (int i = 0; i < nproc; ++i) {
    Pid p = *engine.spawn({});
    for (int t = 0; t < 3; ++t) (void)engine.clone_thread(p);
    procs.push_back(p);
  }
  std::printf("  spawned %d processes of 4 threads\n", nproc);
  for (Pid p : procs) check(("move process " + std::to_string(p) + " to /web").c_str(),
                            engine.migrate_process(p, **web));
  show(engine, h, "   tree:");

  std::printf("3. All or nothing: cap /db at 4 tasks and move every process at once\n");
  {
    MutexLock lock(engine.cgroup_mutex());
    static_cast<CapCss*>((*db)->css(cap->id()))->cap = 4;
  }
  check("move all processes to /db (EAGAIN: over the cap)", engine.migrate_processes(procs, **db));
  check("transfer /web -> /db (EAGAIN)", engine.transfer(**web, **db));
  show(engine, h, "   tree (unchanged):");
  check("move one process to /db (fits)", engine.migrate_process(procs[0], **db));

  std::printf("4. An allocation failure inside the transaction\n");
  auto batch = engine.mkdir(h.root(), "batch");
  check("mkdir /batch", batch.status());
  engine.TEST_fail_cset_alloc(1);
  check("move a process to /batch (injected ENOMEM)", engine.migrate_process(procs.back(), **batch));
  engine.TEST_fail_cset_alloc(0);
  show(engine, h, "   tree (unchanged):");

  std::printf("5. Removal rules\n");
  check("rmdir /web while it has tasks (EBUSY)", engine.rmdir(**web));
  check("transfer /web -> / (every task, one transaction)", engine.transfer(**web, h.root()));
  check("rmdir /web", engine.rmdir(**web));
  check("destroy the hierarchy while /db exists (EBUSY)", engine.destroy_hierarchy(h));
  check("rmdir /batch", engine.rmdir(**batch));

  Status inv = engine.check_invariants();
  std::printf("6. Invariant checker: %s\n", inv.ok() ? "all invariants hold" : inv.message().c_str());
  std::printf("   %zu tasks, %zu css_sets\n", engine.nr_tasks(), engine.nr_css_sets());
  return inv.ok() ? 0 : 1;
}
