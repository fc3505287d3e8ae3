// The core files of cgroupfs (those not owned by a controller): v1's tasks,
// cgroup.procs, notify_on_release, release_agent, cgroup.clone_children,
// cgroup.sane_behavior; v2's cgroup.* files.
#include <algorithm>
#include <climits>

#include "fs/cgroupfs.h"
#include "fs/parse.h"

namespace cgcore::fs {

namespace {

std::string lines(const std::vector<Pid>& ids) {
  std::string out;
  for (Pid id : ids) {
    out += std::to_string(id);
    out += '\n';
  }
  return out;
}

std::vector<Pid> sorted_unique(std::vector<Pid> ids) {
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

// The pid a tasks / cgroup.procs write names: one integer (base 0, as
// kstrtoint), "0" meaning the writer. EINVAL for anything else. A pid the
// engine does not know is offered to the fs's resolver (host mode looks it
// up in /proc at once). Known pids are not re-checked: that would cost two
// /proc reads per write (a mount write would take ~6x longer); the price is
// that a pid recycled in the milliseconds before its exit event arrives
// moves the old record (see docs/compatibility.md).
Result<Pid> written_pid(FileContext& ctx, std::string_view text) {
  Result<int> pid = kstrtoint(strip(text), 0);
  if (!pid.ok() || pid.value() < 0) return Status::Error(EINVAL, "expected one process id");
  Pid id = pid.value() == 0 ? ctx.caller.pid : pid.value();
  if (id <= 0) return Status::Error(ESRCH, "the writer has no process here");
  if (!ctx.engine.tgid_of(id).ok()) ctx.fs.resolve_unknown_pid(id);
  return id;
}

// v1: the writer is root, or its euid is the target's uid or suid.
Status v1_may_move(Engine& engine, Pid pid, const Caller& caller) {
  Result<Creds> creds = engine.creds(pid);
  if (!creds.ok()) return creds.status();
  if (caller.is_root() || caller.uid == creds->uid || caller.uid == creds->suid)
    return Status::Ok();
  return Status::Error(EACCES, "not allowed to move a process of another user");
}

// v2: write access to cgroup.procs of the common ancestor of the source and
// destination cgroups (the destination's was checked at open).
Status v2_may_move(FileContext& ctx, Pid pid) {
  Result<CgroupPtr> src = ctx.engine.task_cgroup(pid, ctx.cgroup.hierarchy());
  if (!src.ok()) return src.status();
  MutexLock lock(ctx.engine.cgroup_mutex());
  const Cgroup* com = src->get();
  auto is_ancestor = [](const Cgroup* a, const Cgroup* of) {
    for (const Cgroup* c = of; c; c = c->parent()) if (c == a) return true;
    return false;
  };
  while (!is_ancestor(com, &ctx.cgroup)) com = com->parent();
  if (!ctx.fs.may_access_locked(ctx.fs.file_ino(*com, "cgroup.procs"), ctx.caller, 2))
    return Status::Error(EACCES, "no write access to the common ancestor's cgroup.procs");
  return Status::Ok();
}

Result<std::string> read_tasks(FileContext& ctx) {
  return lines(sorted_unique(ctx.engine.cgroup_tids(ctx.cgroup)));
}
Result<std::string> read_procs_v1(FileContext& ctx) {
  return lines(sorted_unique(ctx.engine.cgroup_tgids(ctx.cgroup)));
}
// v2 lists in iteration order, each process once.
Result<std::string> read_procs_v2(FileContext& ctx) {
  ctx.engine.cgroup_mutex().AssertHeld();  // read handlers run under it
  if (ctx.engine.is_threaded_locked(ctx.cgroup))
    return Status::Error(EOPNOTSUPP, "the processes of a threaded cgroup belong to its thread root");
  std::vector<Pid> ids = ctx.engine.cgroup_tgids(ctx.cgroup), out;
  std::vector<Pid> seen = sorted_unique(ids);
  std::vector<bool> done(seen.size(), false);
  for (Pid id : ids) {
    size_t i = std::lower_bound(seen.begin(), seen.end(), id) - seen.begin();
    if (done[i]) continue;
    done[i] = true;
    out.push_back(id);
  }
  return lines(out);
}
Result<std::string> read_threads_v2(FileContext& ctx) {
  return lines(ctx.engine.cgroup_tids(ctx.cgroup));
}

Status write_tasks(FileContext& ctx, std::string_view text) {
  Result<Pid> pid = written_pid(ctx, text);
  if (!pid.ok()) return pid.status();
  if (Status st = v1_may_move(ctx.engine, *pid, ctx.caller); !st.ok()) return st;
  return ctx.engine.migrate_thread(*pid, ctx.cgroup);
}
Status write_procs_v1(FileContext& ctx, std::string_view text) {
  Result<Pid> pid = written_pid(ctx, text);
  if (!pid.ok()) return pid.status();
  if (Status st = v1_may_move(ctx.engine, *pid, ctx.caller); !st.ok()) return st;
  return ctx.engine.migrate_process(*pid, ctx.cgroup);
}
Status write_procs_v2(FileContext& ctx, std::string_view text) {
  Result<Pid> pid = written_pid(ctx, text);
  if (!pid.ok()) return pid.status();
  if (Status st = v2_may_move(ctx, *pid); !st.ok()) return st;
  return ctx.engine.migrate_process(*pid, ctx.cgroup);
}
Status write_threads_v2(FileContext& ctx, std::string_view text) {
  Result<Pid> pid = written_pid(ctx, text);
  if (!pid.ok()) return pid.status();
  if (Status st = v2_may_move(ctx, *pid); !st.ok()) return st;
  // A thread moves only within its threaded domain.
  Result<CgroupPtr> src = ctx.engine.task_cgroup(*pid, ctx.cgroup.hierarchy());
  if (!src.ok()) return src.status();
  {
    MutexLock lock(ctx.engine.cgroup_mutex());
    if (&ctx.engine.threaded_domain_locked(**src) != &ctx.engine.threaded_domain_locked(ctx.cgroup))
      return Status::Error(EOPNOTSUPP, "threads move only within their threaded domain");
  }
  return ctx.engine.migrate_thread(*pid, ctx.cgroup);
}

// notify_on_release / cgroup.clone_children: a u64, non-zero sets. The
// kernel's write_u64 path does not strip white space (one trailing newline
// is all kstrtoull allows).
Result<bool> written_flag(std::string_view text) {
  Result<uint64_t> v = kstrtoull(text, 0);
  if (!v.ok()) return v.status();
  return v.value() != 0;
}
Result<std::string> read_notify(FileContext& ctx) {
  return std::string(ctx.cgroup.notify_on_release() ? "1\n" : "0\n");
}
Status write_notify(FileContext& ctx, std::string_view text) {
  Result<bool> v = written_flag(text);
  if (!v.ok()) return v.status();
  ctx.cgroup.set_notify_on_release(v.value());
  return Status::Ok();
}
Result<std::string> read_clone_children(FileContext& ctx) {
  return std::string(ctx.cgroup.clone_children() ? "1\n" : "0\n");
}
Status write_clone_children(FileContext& ctx, std::string_view text) {
  Result<bool> v = written_flag(text);
  if (!v.ok()) return v.status();
  ctx.cgroup.set_clone_children(v.value());
  return Status::Ok();
}
Result<std::string> read_release_agent(FileContext& ctx) {
  ctx.engine.cgroup_mutex().AssertHeld();  // read handlers run under it
  return ctx.fs.release_agent_locked(ctx.cgroup.hierarchy().id()) + "\n";
}
Status write_release_agent(FileContext& ctx, std::string_view text) {
  if (!ctx.caller.is_root()) return Status::Error(EPERM, "only root may set the release agent");
  std::string_view agent = strip(text);
  if (agent.size() >= 4096) return Status::Error(EINVAL, "release agent path too long");
  MutexLock lock(ctx.engine.cgroup_mutex());
  ctx.fs.release_agent_locked(ctx.cgroup.hierarchy().id()) = std::string(agent);
  return Status::Ok();
}
Result<std::string> read_sane_behavior(FileContext&) { return std::string("0\n"); }

// v2 ------------------------------------------------------------------

std::string controller_names(Engine& engine, const ControllerSet& set) {
  std::string out;
  set.for_each([&](ControllerId id) {
    if (!out.empty()) out += ' ';
    out += engine.controller(id).name();
  });
  if (!out.empty()) out += '\n';
  return out;
}
Result<std::string> read_controllers(FileContext& ctx) {
  ctx.engine.cgroup_mutex().AssertHeld();  // read handlers run under it
  return controller_names(ctx.engine, ctx.engine.available_controllers_locked(ctx.cgroup));
}
Result<std::string> read_subtree_control(FileContext& ctx) {
  ctx.engine.cgroup_mutex().AssertHeld();  // read handlers run under it
  return controller_names(ctx.engine, ctx.cgroup.subtree_control());
}
// "+a -b ...": the last token for a controller wins; unknown names EINVAL.
Status write_subtree_control(FileContext& ctx, std::string_view text) {
  ControllerSet enable, disable;
  size_t pos = 0;
  while (pos < text.size()) {
    while (pos < text.size() && std::isspace(static_cast<unsigned char>(text[pos]))) ++pos;
    size_t end = pos;
    while (end < text.size() && !std::isspace(static_cast<unsigned char>(text[end]))) ++end;
    if (end == pos) break;
    std::string_view tok = text.substr(pos, end - pos);
    pos = end;
    Controller* c = tok.size() > 1 ? ctx.engine.find_controller(tok.substr(1)) : nullptr;
    if (!c || (tok[0] != '+' && tok[0] != '-'))
      return Status::Error(EINVAL, "expected +controller or -controller, got '" + std::string(tok) + "'");
    if (tok[0] == '+') {
      enable.set(c->id());
      disable.reset(c->id());
    } else {
      disable.set(c->id());
      enable.reset(c->id());
    }
  }
  return ctx.engine.set_subtree_control(ctx.cgroup, enable, disable);
}
Result<std::string> read_events(FileContext& ctx) {
  ctx.engine.cgroup_mutex().AssertHeld();  // read handlers run under it
  std::string out = "populated ";
  out += ctx.engine.populated(ctx.cgroup) ? "1" : "0";
  out += "\nfrozen ";
  out += ctx.engine.frozen_locked(ctx.cgroup) ? "1" : "0";
  out += "\n";
  return out;
}
Result<std::string> read_type(FileContext& ctx) {
  ctx.engine.cgroup_mutex().AssertHeld();  // read handlers run under it
  return std::string(ctx.engine.cgroup_type_locked(ctx.cgroup)) + "\n";
}
Status write_type(FileContext& ctx, std::string_view text) {
  if (strip(text) != "threaded") return Status::Error(EINVAL, "only \"threaded\" can be written");
  MutexLock lock(ctx.engine.cgroup_mutex());
  return ctx.engine.enable_threaded_locked(ctx.cgroup);
}
Result<std::string> limit_text(int v) {
  return v == INT_MAX ? std::string("max\n") : std::to_string(v) + "\n";
}
Result<int> written_limit(std::string_view text) {
  std::string_view t = strip(text);
  if (t == "max") return INT_MAX;
  Result<int> v = kstrtoint(t, 0);
  if (!v.ok()) return v.status();
  if (v.value() < 0) return Status::Error(ERANGE, "negative limit");
  return v.value();
}

Status write_max_depth(FileContext& ctx, std::string_view text) {
  Result<int> v = written_limit(text);
  if (!v.ok()) return v.status();
  MutexLock lock(ctx.engine.cgroup_mutex());
  return ctx.engine.set_max_depth_locked(ctx.cgroup, v.value());
}
Result<std::string> read_max_depth(FileContext& ctx) {
  ctx.engine.cgroup_mutex().AssertHeld();  // read handlers run under it
  return limit_text(ctx.cgroup.max_depth());
}
Result<std::string> read_max_descendants(FileContext& ctx) {
  ctx.engine.cgroup_mutex().AssertHeld();  // read handlers run under it
  return limit_text(ctx.cgroup.max_descendants());
}
Status write_max_descendants(FileContext& ctx, std::string_view text) {
  Result<int> v = written_limit(text);
  if (!v.ok()) return v.status();
  MutexLock lock(ctx.engine.cgroup_mutex());
  return ctx.engine.set_max_descendants_locked(ctx.cgroup, v.value());
}
Result<std::string> read_stat(FileContext& ctx) {
  ctx.engine.cgroup_mutex().AssertHeld();  // read handlers run under it
  Engine& e = ctx.engine;
  const Cgroup& cg = ctx.cgroup;
  std::vector<ControllerId> ids;
  cg.hierarchy().controllers().for_each([&](ControllerId id) { ids.push_back(id); });
  // Live csses of each controller in the subtree, this cgroup included.
  std::vector<int> live(ids.size(), 0);
  std::vector<const Cgroup*> stack{&cg};
  while (!stack.empty()) {
    const Cgroup* c = stack.back();
    stack.pop_back();
    for (size_t i = 0; i < ids.size(); ++i)
      if (c->is_root() || c->css(ids[i])) ++live[i];
    for (const auto& [n, child] : c->children()) stack.push_back(child);
  }
  std::string out = "nr_descendants " + std::to_string(cg.nr_descendants()) + "\n";
  for (size_t i = 0; i < ids.size(); ++i)
    out += "nr_subsys_" + std::string(e.controller(ids[i]).name()) + " " + std::to_string(live[i]) + "\n";
  out += "nr_dying_descendants " + std::to_string(ctx.engine.nr_dying_descendants_locked(cg)) + "\n";
  for (ControllerId id : ids)
    out += "nr_dying_subsys_" + std::string(e.controller(id).name()) + " " +
           std::to_string(ctx.engine.nr_dying_csses_locked(cg, id)) + "\n";
  return out;
}
Result<std::string> read_freeze(FileContext& ctx) {
  ctx.engine.cgroup_mutex().AssertHeld();  // read handlers run under it
  return std::string(ctx.cgroup.self_freeze() ? "1\n" : "0\n");
}
Status write_freeze(FileContext& ctx, std::string_view text) {
  Result<int> v = kstrtoint(strip(text), 0);
  if (!v.ok()) return v.status();
  if (v.value() < 0 || v.value() > 1) return Status::Error(ERANGE, "cgroup.freeze takes 0 or 1");
  MutexLock lock(ctx.engine.cgroup_mutex());
  if (ctx.cgroup.dead()) return Status::Error(ENODEV, "the cgroup was removed");
  ctx.engine.set_freeze_locked(ctx.cgroup, v.value() == 1);
  return Status::Ok();
}
Status write_kill(FileContext& ctx, std::string_view text) {
  Result<int> v = kstrtoint(strip(text), 0);
  if (!v.ok()) return v.status();
  if (v.value() != 1) return Status::Error(ERANGE, "cgroup.kill takes 1");
  std::vector<Pid> victims;
  {
    MutexLock lock(ctx.engine.cgroup_mutex());
    if (ctx.cgroup.dead()) return Status::Error(ENODEV, "the cgroup was removed");
    if (ctx.engine.is_threaded_locked(ctx.cgroup))
      return Status::Error(EOPNOTSUPP, "cgroup.kill is not supported in a threaded cgroup");
    std::vector<const Cgroup*> stack{&ctx.cgroup};
    while (!stack.empty()) {
      const Cgroup* c = stack.back();
      stack.pop_back();
      for (Pid p : ctx.engine.cgroup_tgids(*c)) victims.push_back(p);
      for (const auto& [n, child] : c->children()) stack.push_back(child);
    }
  }
  for (Pid p : sorted_unique(victims)) ctx.fs.kill(p);
  return Status::Ok();
}

FileDef core(std::string name, uint32_t mode, uint8_t versions, FileScope scope,
             Result<std::string> (*read)(FileContext&), Status (*write)(FileContext&, std::string_view)) {
  FileDef d;
  d.name = std::move(name);
  d.mode = mode;
  d.versions = versions;
  d.scope = scope;
  d.read = read;
  d.write = write;
  return d;
}

}  // namespace

std::vector<FileDef> core_file_defs() {
  using S = FileScope;
  return {
      // cgroup v1
      core("cgroup.clone_children", 0644, kV1, S::kEverywhere, read_clone_children, write_clone_children),
      core("cgroup.procs", 0644, kV1, S::kEverywhere, read_procs_v1, write_procs_v1),
      core("cgroup.sane_behavior", 0444, kV1, S::kRootOnly, read_sane_behavior, nullptr),
      core("notify_on_release", 0644, kV1, S::kEverywhere, read_notify, write_notify),
      core("release_agent", 0644, kV1, S::kRootOnly, read_release_agent, write_release_agent),
      core("tasks", 0644, kV1, S::kEverywhere, read_tasks, write_tasks),
      // cgroup v2
      core("cgroup.controllers", 0444, kV2, S::kEverywhere, read_controllers, nullptr),
      core("cgroup.events", 0444, kV2, S::kNonRoot, read_events, nullptr),
      core("cgroup.freeze", 0644, kV2, S::kNonRoot, read_freeze, write_freeze),
      core("cgroup.kill", 0200, kV2, S::kNonRoot, nullptr, write_kill),
      core("cgroup.max.depth", 0644, kV2, S::kEverywhere, read_max_depth, write_max_depth),
      core("cgroup.max.descendants", 0644, kV2, S::kEverywhere, read_max_descendants,
           write_max_descendants),
      core("cgroup.procs", 0644, kV2, S::kEverywhere, read_procs_v2, write_procs_v2),
      core("cgroup.stat", 0444, kV2, S::kEverywhere, read_stat, nullptr),
      core("cgroup.subtree_control", 0644, kV2, S::kEverywhere, read_subtree_control,
           write_subtree_control),
      core("cgroup.threads", 0644, kV2, S::kEverywhere, read_threads_v2, write_threads_v2),
      core("cgroup.type", 0644, kV2, S::kNonRoot, read_type, write_type),
  };
}

}  // namespace cgcore::fs
