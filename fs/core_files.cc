// The core files of cgroupfs (those not owned by a controller): v1's tasks,
// cgroup.procs, notify_on_release, release_agent, cgroup.clone_children,
// cgroup.sane_behavior; v2's cgroup.* files.
#include <algorithm>
#include <climits>

#include "controllers/cpu.h"
#include "core/parse.h"
#include "fs/cgroupfs.h"

namespace cgcore::fs {

namespace {

// Tasks a backend created before it knew their ids (provisional ids, a fork
// still in flight) count in their cgroups but are listed by no file.
std::vector<Pid> listed(std::vector<Pid> ids) {
  std::erase_if(ids, is_provisional_id);
  return ids;
}

std::vector<Pid> sorted_unique(std::vector<Pid> ids) {
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

// The writer may move a process (v1): root, or its euid is the target's
// uid or suid.
Status v1_may_move(const Caller& caller, const MoveTarget& target) {
  if (caller.is_root() || caller.uid == target.creds.uid || caller.uid == target.creds.suid)
    return Status::Ok();
  return Status::Error(EACCES, "not allowed to move a process of another user");
}

// The writer may move a process (v2): write access to cgroup.procs of the
// common ancestor of the source and the destination (the destination's was
// checked at open), as the kernel's delegation rule asks.
Status v2_may_move(FileContext& ctx, const MoveTarget& target) {
  auto is_ancestor = [](const Cgroup* a, const Cgroup* of) {
    for (const Cgroup* c = of; c; c = c->parent())
      if (c == a) return true;
    return false;
  };
  ctx.fs.assert_held();  // the engine runs move checks under it
  const Cgroup* com = &target.src;
  while (!is_ancestor(com, &ctx.cgroup)) com = com->parent();
  if (!ctx.fs.may_access_locked(ctx.fs.file_ino(*com, "cgroup.procs"), ctx.caller, 2))
    return Status::Error(EACCES, "no write access to the common ancestor's cgroup.procs");
  return Status::Ok();
}

// The pid a handler acts on: resolved in the writer's namespace before the
// lock (CgroupFs::write).
Result<Pid> written_pid(FileContext& ctx, std::string_view) { return ctx.pid; }

// The v1 lists are sorted, each id once, by the fs after translation.
Result<std::vector<Pid>> read_tasks(FileContext& ctx) {
  return listed(ctx.engine.cgroup_tids(ctx.cgroup));
}
Result<std::vector<Pid>> read_procs_v1(FileContext& ctx) {
  return listed(ctx.engine.cgroup_tgids(ctx.cgroup));
}
// v2 lists in iteration order, each process once.
Result<std::vector<Pid>> read_procs_v2(FileContext& ctx) {
  ctx.engine.cgroup_mutex().AssertHeld();
  if (ctx.engine.is_threaded_locked(ctx.cgroup))
    return Status::Error(EOPNOTSUPP, "the processes of a threaded cgroup belong to its thread root");
  std::vector<Pid> ids = listed(ctx.engine.cgroup_tgids(ctx.cgroup)), out;
  std::vector<Pid> seen = sorted_unique(ids);
  std::vector<bool> done(seen.size(), false);
  for (Pid id : ids) {
    size_t i = std::lower_bound(seen.begin(), seen.end(), id) - seen.begin();
    if (done[i]) continue;
    done[i] = true;
    out.push_back(id);
  }
  return out;
}
Result<std::vector<Pid>> read_threads_v2(FileContext& ctx) {
  return listed(ctx.engine.cgroup_tids(ctx.cgroup));
}

// The pid files check the writer's right and move in one hold of the cgroup
// mutex (the handler's), with the target's threadgroup locked: nothing the
// check looked at can change before the move commits.
Status write_tasks(FileContext& ctx, std::string_view text) {
  ctx.engine.cgroup_mutex().AssertHeld();
  Result<Pid> pid = written_pid(ctx, text);
  if (!pid.ok()) return pid.status();
  auto check = [&](const MoveTarget& t) { return v1_may_move(ctx.caller, t); };
  return ctx.engine.migrate_thread_locked(*pid, ctx.cgroup, check);
}
Status write_procs_v1(FileContext& ctx, std::string_view text) {
  ctx.engine.cgroup_mutex().AssertHeld();
  Result<Pid> pid = written_pid(ctx, text);
  if (!pid.ok()) return pid.status();
  auto check = [&](const MoveTarget& t) { return v1_may_move(ctx.caller, t); };
  return ctx.engine.migrate_process_locked(*pid, ctx.cgroup, check);
}
Status write_procs_v2(FileContext& ctx, std::string_view text) {
  ctx.engine.cgroup_mutex().AssertHeld();
  Result<Pid> pid = written_pid(ctx, text);
  if (!pid.ok()) return pid.status();
  auto check = [&](const MoveTarget& t) { return v2_may_move(ctx, t); };
  return ctx.engine.migrate_process_locked(*pid, ctx.cgroup, check);
}
Status write_threads_v2(FileContext& ctx, std::string_view text) {
  ctx.engine.cgroup_mutex().AssertHeld();
  Result<Pid> pid = written_pid(ctx, text);
  if (!pid.ok()) return pid.status();
  auto check = [&](const MoveTarget& t) -> Status {
    ctx.engine.cgroup_mutex().AssertHeld();  // the engine calls checks under it
    if (Status st = v2_may_move(ctx, t); !st.ok()) return st;
    // A thread moves only within its threaded domain.
    if (&ctx.engine.threaded_domain_locked(t.src) != &ctx.engine.threaded_domain_locked(ctx.cgroup))
      return Status::Error(EOPNOTSUPP, "threads move only within their threaded domain");
    return Status::Ok();
  };
  return ctx.engine.migrate_thread_locked(*pid, ctx.cgroup, check);
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
  ctx.engine.cgroup_mutex().AssertHeld();
  ctx.fs.assert_held();
  return ctx.fs.release_agent_locked(ctx.cgroup.hierarchy().id()) + "\n";
}
Status write_release_agent(FileContext& ctx, std::string_view text) {
  if (!ctx.caller.is_root()) return Status::Error(EPERM, "only root may set the release agent");
  std::string_view agent = strstrip(text);
  if (agent.size() >= 4096) return Status::Error(EINVAL, "release agent path too long");
  ctx.fs.assert_held();
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
  ctx.engine.cgroup_mutex().AssertHeld();
  return controller_names(ctx.engine, ctx.engine.available_controllers_locked(ctx.cgroup));
}
Result<std::string> read_subtree_control(FileContext& ctx) {
  ctx.engine.cgroup_mutex().AssertHeld();
  return controller_names(ctx.engine, ctx.cgroup.subtree_control());
}
// "+a -b ...": the last token for a controller wins; unknown names EINVAL.
// The text is stripped, then split at single spaces only (empty tokens
// skipped): a tab or newline between tokens makes one bad token, EINVAL on
// the host ("-pids\t-memory").
Status write_subtree_control(FileContext& ctx, std::string_view text) {
  ControllerSet enable, disable;
  std::string_view rest = strstrip(text);
  while (!rest.empty()) {
    const size_t end = std::min(rest.find(' '), rest.size());
    std::string_view tok = rest.substr(0, end);
    rest.remove_prefix(std::min(end + 1, rest.size()));
    if (tok.empty()) continue;
    Controller* c = tok.size() > 1 ? ctx.engine.find_controller(tok.substr(1)) : nullptr;
    // A v1-only controller is an unknown name here, as in the kernel.
    if (c && !c->on_v2()) c = nullptr;
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
  ctx.engine.cgroup_mutex().AssertHeld();
  return ctx.engine.set_subtree_control_locked(ctx.cgroup, enable, disable);
}
Result<std::string> read_events(FileContext& ctx) {
  ctx.engine.cgroup_mutex().AssertHeld();
  std::string out = "populated ";
  out += ctx.engine.populated(ctx.cgroup) ? "1" : "0";
  out += "\nfrozen ";
  out += ctx.engine.frozen_locked(ctx.cgroup) ? "1" : "0";
  out += "\n";
  return out;
}
Result<std::string> read_type(FileContext& ctx) {
  ctx.engine.cgroup_mutex().AssertHeld();
  return std::string(ctx.engine.cgroup_type_locked(ctx.cgroup)) + "\n";
}
Status write_type(FileContext& ctx, std::string_view text) {
  if (strstrip(text) != "threaded") return Status::Error(EINVAL, "only \"threaded\" can be written");
  ctx.engine.cgroup_mutex().AssertHeld();
  return ctx.engine.enable_threaded_locked(ctx.cgroup);
}
Result<std::string> limit_text(int v) {
  return v == INT_MAX ? std::string("max\n") : std::to_string(v) + "\n";
}
Result<int> written_limit(std::string_view text) {
  std::string_view t = strstrip(text);
  if (t == "max") return INT_MAX;
  Result<int> v = kstrtoint(t, 0);
  if (!v.ok()) return v.status();
  if (v.value() < 0) return Status::Error(ERANGE, "negative limit");
  return v.value();
}

Status write_max_depth(FileContext& ctx, std::string_view text) {
  Result<int> v = written_limit(text);
  if (!v.ok()) return v.status();
  ctx.engine.cgroup_mutex().AssertHeld();
  return ctx.engine.set_max_depth_locked(ctx.cgroup, v.value());
}
Result<std::string> read_max_depth(FileContext& ctx) {
  ctx.engine.cgroup_mutex().AssertHeld();
  return limit_text(ctx.cgroup.max_depth());
}
Result<std::string> read_max_descendants(FileContext& ctx) {
  ctx.engine.cgroup_mutex().AssertHeld();
  return limit_text(ctx.cgroup.max_descendants());
}
Status write_max_descendants(FileContext& ctx, std::string_view text) {
  Result<int> v = written_limit(text);
  if (!v.ok()) return v.status();
  ctx.engine.cgroup_mutex().AssertHeld();
  return ctx.engine.set_max_descendants_locked(ctx.cgroup, v.value());
}
// cpu.stat / cpu.stat.local: cgroup v2 core files (usage in every cgroup),
// with the cpu controller's lines where it is enabled.
const CpuController* cpu_controller(Engine& engine) {
  return dynamic_cast<const CpuController*>(engine.find_controller("cpu"));
}
Result<std::string> read_cpu_stat(FileContext& ctx) {
  ctx.engine.cgroup_mutex().AssertHeld();
  return format_v2_cpu_stat(ctx.engine, ctx.cgroup, cpu_controller(ctx.engine));
}
Result<std::string> read_cpu_stat_local(FileContext& ctx) {
  ctx.engine.cgroup_mutex().AssertHeld();
  return format_v2_cpu_stat_local(ctx.engine, ctx.cgroup, cpu_controller(ctx.engine));
}
Result<std::string> read_stat(FileContext& ctx) {
  ctx.engine.cgroup_mutex().AssertHeld();
  Engine& e = ctx.engine;
  const Cgroup& cg = ctx.cgroup;
  std::vector<ControllerId> ids;
  // A v1-only controller bound to the default hierarchy is not shown, as
  // the kernel skips the controllers cgroup v2 does not have.
  cg.hierarchy().controllers().for_each([&](ControllerId id) {
    if (e.controller(id).on_v2()) ids.push_back(id);
  });
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
  ctx.engine.cgroup_mutex().AssertHeld();
  return std::string(ctx.cgroup.self_freeze() ? "1\n" : "0\n");
}
Status write_freeze(FileContext& ctx, std::string_view text) {
  Result<int> v = kstrtoint(strstrip(text), 0);
  if (!v.ok()) return v.status();
  if (v.value() < 0 || v.value() > 1) return Status::Error(ERANGE, "cgroup.freeze takes 0 or 1");
  ctx.engine.cgroup_mutex().AssertHeld();
  if (ctx.cgroup.dead()) return Status::Error(ENODEV, "the cgroup was removed");
  const bool self_before = ctx.cgroup.self_freeze();
  const bool frozen_before = ctx.engine.frozen_locked(ctx.cgroup);
  ctx.engine.set_freeze_locked(ctx.cgroup, v.value() == 1);
  // A change of cgroup.freeze that changes no effective state (an ancestor
  // is frozen) still notifies this cgroup's cgroup.events, as the kernel
  // does, so that a waiter learns there is nothing to wait for. Writing
  // the value it has notifies nothing.
  if (self_before != (v.value() == 1) && frozen_before == ctx.engine.frozen_locked(ctx.cgroup))
    ctx.fs.events().notify(ctx.fs.file_ino(ctx.cgroup, "cgroup.events"));
  return Status::Ok();
}
// cgroup.stat.local: the time this cgroup spent frozen (asked to be, by
// itself or an ancestor, reached or not), in microseconds.
Result<std::string> read_stat_local(FileContext& ctx) {
  ctx.fs.assert_held();
  return "frozen_usec " + std::to_string(ctx.fs.frozen_usec_locked(ctx.cgroup)) + "\n";
}
Status write_kill(FileContext& ctx, std::string_view text) {
  Result<int> v = kstrtoint(strstrip(text), 0);
  if (!v.ok()) return v.status();
  if (v.value() != 1) return Status::Error(ERANGE, "cgroup.kill takes 1");
  ctx.engine.cgroup_mutex().AssertHeld();
  if (ctx.cgroup.dead()) return Status::Error(ENODEV, "the cgroup was removed");
  if (ctx.engine.is_threaded_locked(ctx.cgroup))
    return Status::Error(EOPNOTSUPP, "cgroup.kill is not supported in a threaded cgroup");
  std::vector<Pid> victims;
  std::vector<const Cgroup*> stack{&ctx.cgroup};
  while (!stack.empty()) {
    const Cgroup* c = stack.back();
    stack.pop_back();
    for (Pid p : ctx.engine.cgroup_tgids(*c)) victims.push_back(p);
    for (const auto& [n, child] : c->children()) stack.push_back(child);
  }
  // The signals go out once the cgroup mutex is dropped.
  ctx.kill_after_unlock = sorted_unique(std::move(victims));
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

// release_agent takes a path of at most PATH_MAX - 1 bytes in one write.
FileDef release_agent_file() {
  FileDef d = core("release_agent", 0644, kV1, FileScope::kRootOnly, read_release_agent,
                   write_release_agent);
  d.max_write = 4095;
  return d;
}

// tasks, cgroup.procs, cgroup.threads: pids written and listed.
FileDef pid_file(std::string name, uint8_t versions, Result<std::vector<Pid>> (*read)(FileContext&),
                 Status (*write)(FileContext&, std::string_view)) {
  FileDef d = core(std::move(name), 0644, versions, FileScope::kEverywhere, nullptr, write);
  d.names_pid = true;
  d.moves_process = d.name == "cgroup.procs";
  d.read_pids = read;
  d.sorted_pids = versions == kV1;
  return d;
}

}  // namespace

// Known pids are not re-checked against the world: that would cost two /proc
// reads per write (a mount write ~6x slower); the price is that a pid
// recycled in the milliseconds before its exit event arrives moves the old
// record (docs/compatibility.md).
Result<Pid> parse_written_pid(std::string_view text, const Caller& caller) {
  Result<int> pid = kstrtoint(strstrip(text), 0);
  if (!pid.ok() || pid.value() < 0) return Status::Error(EINVAL, "expected one process id");
  const Pid id = pid.value() == 0 ? caller.pid : pid.value();
  if (id <= 0) return Status::Error(ESRCH, "the writer has no process here");
  if (is_provisional_id(id)) return Status::Error(ESRCH, "no such process");
  return id;
}

Result<Pid> resolve_written_pid(std::string_view text, const Caller& caller, const PidNamespace* ns) {
  Result<Pid> pid = parse_written_pid(text, caller);
  if (!pid.ok() || !ns) return pid;
  // "0" gave the writer's own id, which is the backend's already; any
  // other number is the writer namespace's name of a task.
  if (kstrtoint(strstrip(until_nul(text)), 0).value() == 0) return pid;
  return ns->from_caller(*pid);
}

std::vector<FileDef> core_file_defs() {
  using S = FileScope;
  return {
      // cgroup v1
      core("cgroup.clone_children", 0644, kV1, S::kEverywhere, read_clone_children, write_clone_children),
      pid_file("cgroup.procs", kV1, read_procs_v1, write_procs_v1),
      core("cgroup.sane_behavior", 0444, kV1, S::kRootOnly, read_sane_behavior, nullptr),
      core("notify_on_release", 0644, kV1, S::kEverywhere, read_notify, write_notify),
      release_agent_file(),
      pid_file("tasks", kV1, read_tasks, write_tasks),
      // cgroup v2
      core("cgroup.controllers", 0444, kV2, S::kEverywhere, read_controllers, nullptr),
      core("cgroup.events", 0444, kV2, S::kNonRoot, read_events, nullptr),
      core("cgroup.freeze", 0644, kV2, S::kNonRoot, read_freeze, write_freeze),
      core("cgroup.kill", 0200, kV2, S::kNonRoot, nullptr, write_kill),
      core("cgroup.max.depth", 0644, kV2, S::kEverywhere, read_max_depth, write_max_depth),
      core("cgroup.max.descendants", 0644, kV2, S::kEverywhere, read_max_descendants,
           write_max_descendants),
      pid_file("cgroup.procs", kV2, read_procs_v2, write_procs_v2),
      core("cgroup.stat", 0444, kV2, S::kEverywhere, read_stat, nullptr),
      core("cgroup.stat.local", 0444, kV2, S::kNonRoot, read_stat_local, nullptr),
      core("cgroup.subtree_control", 0644, kV2, S::kEverywhere, read_subtree_control,
           write_subtree_control),
      pid_file("cgroup.threads", kV2, read_threads_v2, write_threads_v2),
      core("cgroup.type", 0644, kV2, S::kNonRoot, read_type, write_type),
      core("cpu.stat", 0444, kV2, S::kEverywhere, read_cpu_stat, nullptr),
      core("cpu.stat.local", 0444, kV2, S::kEverywhere, read_cpu_stat_local, nullptr),
  };
}

namespace {
// The kernel's simple_strtoul in base 10: the leading decimal digits (none:
// 0), stopping at the first other character.
int leading_decimal(std::string_view s, size_t* used) {
  uint64_t v = 0;
  size_t i = 0;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i)
    v = v > uint64_t{INT_MAX} ? v : v * 10 + static_cast<uint64_t>(s[i] - '0');
  *used = i;
  return v > uint64_t{INT_MAX} ? -1 : static_cast<int>(v);
}
}  // namespace

Result<EventControlLine> parse_event_control(std::string_view text) {
  std::string_view s = strstrip(text);
  EventControlLine line;
  size_t used = 0;
  line.efd = leading_decimal(s, &used);
  if (used >= s.size() || s[used] != ' ')
    return Status::Error(EINVAL, "expected \"EVENT_FD CONTROL_FD [ARGS]\"");
  s.remove_prefix(used + 1);
  line.cfd = leading_decimal(s, &used);
  if (used < s.size() && s[used] != ' ')
    return Status::Error(EINVAL, "expected \"EVENT_FD CONTROL_FD [ARGS]\"");
  line.args = used < s.size() ? s.substr(used + 1) : std::string_view();
  return line;
}

}  // namespace cgcore::fs
