// cgsh's commands: the table that names them, dispatch, and one handler per
// command. To add a command, declare its handler in shell.h, write it here
// and give it a row; `help` and its usage error follow from the row.
#include <algorithm>
#include <cerrno>

#include "controllers/cpu.h"
#include "controllers/memory.h"
#include "controllers/memrlimit.h"
#include "core/parse.h"
#include "tools/cgsh/shell.h"
#include "tools/cgsh/text.h"

namespace cgcore::cgsh {

std::span<const Shell::Command> Shell::commands() {
  // In help's order. min_args, max_args count the words after the name.
  constexpr bool kBindsName = true;
  static constexpr Command kCommands[] = {
      // The file system, as a shell on a real cgroupfs uses it.
      {"mkdir", "PATH", "make a cgroup (mode 0755)", 1, 1, &Shell::run_mkdir},
      {"rmdir", "PATH", "remove a cgroup", 1, 1, &Shell::run_rmdir},
      {"mv", "PATH NEWPATH", "rename a cgroup", 2, 2, &Shell::run_mv},
      {"ls", "[PATH]", "list a directory, sorted (default /)", 0, 1, &Shell::run_ls},
      {"cat", "PATH", "print a file", 1, 1, &Shell::run_cat},
      {"echo", "[-n] TEXT [> PATH]", "print TEXT, or write it to PATH (one write)", 0, kAnyNumber,
       &Shell::run_echo},
      {"chown", "UID[:GID] PATH", "change the owner (no GID: the group stays)", 2, 2,
       &Shell::run_chown},
      {"chmod", "OCTAL PATH", "change the mode", 2, 2, &Shell::run_chmod},
      // What processes do.
      {"spawn", "NAME [--uid U] [--gid G] [--suid S] [--parent $P]",
       "new process: vfork + exec from $P or init", 1, kAnyNumber, &Shell::run_spawn, kBindsName},
      {"fork", "NAME $P", "fork(2) from thread $P", 2, 2, &Shell::run_fork, kBindsName},
      {"thread", "NAME $P", "a new thread in $P's process", 2, 2, &Shell::run_thread, kBindsName},
      {"exit", "$T", "thread $T exits", 1, 1, &Shell::run_exit},
      {"kill", "$P", "the whole process of $P exits", 1, 1, &Shell::run_kill},
      {"exec", "$P", "$P execs (its other threads exit)", 1, 1, &Shell::run_exec},
      {"charge", "$P BYTES", "memory: $P faults in BYTES (K, M, G, T)", 2, 2, &Shell::run_charge},
      {"uncharge", "$P BYTES", "memory: $P frees BYTES", 2, 2, &Shell::run_uncharge},
      {"swapcharge", "$P BYTES", "memory: $P swaps out BYTES (swap only; uncharge them first)",
       2, 2, &Shell::run_swapcharge},
      {"swapuncharge", "$P BYTES", "memory: $P's swap shrinks by BYTES", 2, 2,
       &Shell::run_swapuncharge},
      {"cputime", "$T USER_US SYSTEM_US [nice]",
       "cpu: thread $T ran USER_US / SYSTEM_US microseconds (at nice > 0 with 'nice')", 3, 4,
       &Shell::run_cputime},
      {"mmap", "$P BYTES", "memrlimit: $P's address space grows", 2, 2, &Shell::run_mmap},
      {"munmap", "$P BYTES", "memrlimit: $P's address space shrinks", 2, 2, &Shell::run_munmap},
      // The engine.
      {"move", "DEST $P...", "move these processes to DEST, all or none", 2, kAnyNumber,
       &Shell::run_move},
      {"transfer", "SRC DEST", "move SRC's own tasks to DEST, all or none", 2, 2,
       &Shell::run_transfer},
      {"inject", "alloc N", "the Nth css_set allocation fails (0: none)", 2, 2, &Shell::run_inject},
      {"as", "UID[:GID] [--pid $P] COMMAND...", "run COMMAND with these fs credentials", 2,
       kAnyNumber, &Shell::run_as},
      {"cgroup", "$T", "print /proc/$T/cgroup", 1, 1, &Shell::run_cgroup},
      {"cgroups", "", "print /proc/cgroups", 0, 0, &Shell::run_cgroups},
      {"tree", "[PATH]", "the cgroups below PATH, with their tasks", 0, 1, &Shell::run_tree},
      {"check", "", "run the engine's invariant checker", 0, 0, &Shell::run_check},
      // The script.
      {"assert", "COMMAND... (== TEXT | fails ERRNO | ok)",
       "COMMAND must print TEXT / fail so / succeed", 0, kAnyNumber, &Shell::run_assert},
      {"help", "", "this list", 0, kAnyNumber, &Shell::run_help},
  };
  // Dispatch reads a NAME argument only after the arity check.
  static_assert(std::ranges::all_of(
      kCommands, [](const Command& c) { return !c.binds_name || c.min_args >= 1; }));
  return kCommands;
}

const Shell::Command* Shell::find_command(std::string_view name) {
  std::span<const Command> all = commands();
  auto it = std::find_if(all.begin(), all.end(), [&](const Command& c) { return c.name == name; });
  return it == all.end() ? nullptr : &*it;
}

std::vector<std::string> Shell::command_names() {
  std::vector<std::string> names;
  for (const Command& c : commands()) names.emplace_back(c.name);
  return names;
}

std::vector<std::string> Shell::complete_path(std::string_view prefix) {
  std::vector<std::string> out;
  if (prefix.empty() || prefix[0] != '/') return out;
  const size_t slash = prefix.rfind('/');
  const std::string dir(prefix.substr(0, slash + 1));
  const std::string_view base = prefix.substr(slash + 1);
  Result<fs::Ino> ino = fs_->resolve(dir);
  if (!ino.ok()) return out;
  Result<std::vector<fs::DirEntry>> entries = fs_->readdir(*ino, fs::Caller{});
  if (!entries.ok()) return out;
  for (const fs::DirEntry& e : *entries) {
    if (e.name == "." || e.name == ".." || e.name.compare(0, base.size(), base) != 0) continue;
    out.push_back(dir + e.name + (e.type == fs::NodeType::kDir ? "/" : ""));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> Shell::var_names() const {
  std::vector<std::string> names;
  for (const auto& [name, pid] : vars_) names.push_back(name);  // a std::map: sorted
  return names;
}

namespace {

std::string usage_line(std::string_view name, std::string_view synopsis) {
  if (synopsis.empty()) return std::string(name);
  return std::string(name) + " " + std::string(synopsis);
}

}  // namespace

Status Shell::usage(std::string_view name) {
  const Command* command = find_command(name);
  return Status::Error(EINVAL, "usage: " + usage_line(name, command ? command->synopsis : ""));
}

std::string Shell::help_text() {
  // Summaries line up in one column; a usage too long for it gets its own line.
  constexpr size_t kSummaryColumn = 36;
  std::string out;
  for (const Command& c : commands()) {
    std::string line = usage_line(c.name, c.synopsis);
    if (line.size() + 2 > kSummaryColumn) {
      out += line + "\n";
      line.clear();
    }
    line.resize(kSummaryColumn, ' ');
    out += line + std::string(c.summary) + "\n";
  }
  return out;
}

Shell::Outcome Shell::execute(Words words) {
  if (words.empty()) return {};
  for (const Word& word : words)
    if (!word.unknown.empty()) return Status::Error(EINVAL, "unknown variable $" + word.unknown);
  const std::string& name = words[0].text;
  const Command* command = find_command(name);
  if (!command) return Status::Error(EINVAL, "unknown command '" + name + "' (try help)");
  Words args = words.subspan(1);
  if (args.size() < command->min_args || args.size() > command->max_args ||
      (command->binds_name && !valid_name(args[0].text)))
    return usage(name);
  return (this->*command->run)(args);
}

// ------------------------------------------------------------ argument helpers

Result<Pid> Shell::pid_arg(const Word& w) const {
  std::optional<int64_t> v = parse_int(w.text);
  if (!v || *v < INT32_MIN || *v > INT32_MAX)
    return Status::Error(EINVAL, "expected a task id, got '" + w.text + "'");
  return static_cast<Pid>(*v);
}

Result<Shell::TaskAndBytes> Shell::task_and_bytes(Words args) const {
  Result<Pid> task = pid_arg(args[0]);
  if (!task.ok()) return task.status();
  std::optional<int64_t> bytes = parse_bytes(args[1].text);
  if (!bytes) return Status::Error(EINVAL, "bad size '" + args[1].text + "'");
  return TaskAndBytes{*task, *bytes};
}

Status Shell::bind(const std::string& name, Result<Pid> task) {
  if (!task.ok()) return task.status();
  vars_[name] = *task;
  return Status::Ok();
}

// ------------------------------------------------------------ the file system

Shell::Outcome Shell::run_mkdir(Words args) {
  if (trim(args[0].text) == "/") return Status::Error(EEXIST, "the mount root exists");
  auto parent = parent_and_name(args[0].text);
  if (!parent.ok()) return parent.status();
  return fs_->mkdir(parent->first, parent->second, 0755, caller_).status();
}

Shell::Outcome Shell::run_rmdir(Words args) {
  if (trim(args[0].text) == "/") return Status::Error(EBUSY, "the mount root");
  auto parent = parent_and_name(args[0].text);
  if (!parent.ok()) return parent.status();
  return fs_->rmdir(parent->first, parent->second, caller_);
}

Shell::Outcome Shell::run_mv(Words args) {
  auto from = parent_and_name(args[0].text);
  if (!from.ok()) return from.status();
  auto to = parent_and_name(args[1].text);
  if (!to.ok()) return to.status();
  return fs_->rename(from->first, from->second, to->first, to->second, caller_);
}

Shell::Outcome Shell::run_ls(Words args) {
  std::string path = args.empty() ? "/" : args[0].text;
  Result<fs::Ino> ino = walk(path);
  if (!ino.ok()) return ino.status();
  Result<fs::Attr> attr = fs_->getattr(*ino);
  if (!attr.ok()) return attr.status();
  if (attr->type == fs::NodeType::kFile) return Outcome::print(path + "\n");
  Result<std::vector<fs::DirEntry>> entries = fs_->readdir(*ino, caller_);
  if (!entries.ok()) return entries.status();
  std::vector<std::string> names;
  for (const fs::DirEntry& e : *entries) names.push_back(e.name);
  std::sort(names.begin(), names.end());
  std::string out;
  for (const std::string& n : names) out += n + "\n";
  return Outcome::print(std::move(out));
}

Shell::Outcome Shell::run_cat(Words args) {
  Result<std::string> text = read_file(args[0].text);
  if (!text.ok()) return text.status();
  return Outcome::print(std::move(*text));
}

Shell::Outcome Shell::run_echo(Words args) {
  bool newline = true;
  if (!args.empty() && is_op(args[0], "-n")) {
    newline = false;
    args = args.subspan(1);
  }
  // Only the last > redirects (earlier ones are text); >> is the same one write.
  size_t redirect = args.size();
  for (size_t i = 0; i < args.size(); ++i)
    if (is_op(args[i], ">") || is_op(args[i], ">>")) redirect = i;
  std::string text = join(args.first(redirect)) + (newline ? "\n" : "");
  if (redirect == args.size()) return Outcome::print(std::move(text));
  if (redirect + 2 != args.size()) return usage("echo");
  return write_file(args[redirect + 1].text, text);
}

Shell::Outcome Shell::run_chown(Words args) {
  const std::string& spec = args[0].text;
  size_t colon = spec.find(':');
  std::optional<int64_t> uid = parse_int(spec.substr(0, colon));
  std::optional<int64_t> gid;
  if (colon != std::string::npos) gid = parse_int(spec.substr(colon + 1));
  auto valid_id = [](std::optional<int64_t> id) { return id && *id >= 0 && *id <= UINT32_MAX; };
  if (!valid_id(uid) || (colon != std::string::npos && !valid_id(gid)))
    return Status::Error(EINVAL, "bad owner '" + spec + "'");
  Result<fs::Ino> ino = walk(args[1].text);
  if (!ino.ok()) return ino.status();
  if (!gid) {
    Result<fs::Attr> attr = fs_->getattr(*ino);
    if (!attr.ok()) return attr.status();
    gid = attr->gid;
  }
  return fs_->chown(*ino, static_cast<uint32_t>(*uid), static_cast<uint32_t>(*gid), caller_);
}

Shell::Outcome Shell::run_chmod(Words args) {
  const std::string& octal = args[0].text;
  uint32_t mode = 0;
  bool valid = !octal.empty() && octal.size() <= 5;
  for (char c : octal) {
    if (c < '0' || c > '7') valid = false;
    else mode = mode * 8 + static_cast<uint32_t>(c - '0');
  }
  if (!valid || mode > 07777) return Status::Error(EINVAL, "bad mode '" + octal + "' (octal only)");
  Result<fs::Ino> ino = walk(args[1].text);
  if (!ino.ok()) return ino.status();
  return fs_->chmod(*ino, mode, caller_);
}

// ------------------------------------------------------------ processes

Shell::Outcome Shell::run_spawn(Words args) {
  Pid parent = 1;
  std::optional<uint32_t> uid, gid, suid;
  for (size_t i = 1; i < args.size(); i += 2) {
    if (i + 1 >= args.size()) return usage("spawn");
    const std::string& option = args[i].text;
    std::optional<int64_t> v = parse_int(args[i + 1].text);
    if (!v || *v < 0 || *v > INT32_MAX)
      return Status::Error(EINVAL, "bad value '" + args[i + 1].text + "' for " + option);
    if (option == "--uid") uid = static_cast<uint32_t>(*v);
    else if (option == "--gid") gid = static_cast<uint32_t>(*v);
    else if (option == "--suid") suid = static_cast<uint32_t>(*v);
    else if (option == "--parent") parent = static_cast<Pid>(*v);
    else return usage("spawn");
  }
  ForkOptions fo;
  fo.share_mm = true;  // vfork + exec, as posix_spawn: nothing is copied
  if (uid || gid || suid) {
    Result<Creds> creds = engine_->creds(parent);
    if (!creds.ok()) return creds.status();
    Creds c = *creds;
    if (uid) c.uid = c.euid = c.suid = *uid;
    if (uid && !gid) c.gid = c.egid = *uid;
    if (gid) c.gid = c.egid = *gid;
    if (suid) c.suid = *suid;
    fo.creds = c;
  }
  Result<Pid> child = engine_->fork(parent, fo);
  if (!child.ok()) return child.status();
  if (Status st = engine_->exec(*child); !st.ok()) {
    (void)engine_->exit_process(*child);
    return st;
  }
  return bind(args[0].text, child);
}

Shell::Outcome Shell::run_fork(Words args) {
  Result<Pid> from = pid_arg(args[1]);
  if (!from.ok()) return from.status();
  return bind(args[0].text, engine_->fork(*from));
}

Shell::Outcome Shell::run_thread(Words args) {
  Result<Pid> from = pid_arg(args[1]);
  if (!from.ok()) return from.status();
  return bind(args[0].text, engine_->clone_thread(*from));
}

Shell::Outcome Shell::run_exit(Words args) {
  Result<Pid> tid = pid_arg(args[0]);
  if (!tid.ok()) return tid.status();
  return engine_->exit_thread(*tid);
}

Shell::Outcome Shell::run_kill(Words args) {
  Result<Pid> tid = pid_arg(args[0]);
  if (!tid.ok()) return tid.status();
  Result<Pid> tgid = engine_->tgid_of(*tid);  // kill(2) of any thread: its process
  if (!tgid.ok()) return tgid.status();
  return engine_->exit_process(*tgid);
}

Shell::Outcome Shell::run_exec(Words args) {
  Result<Pid> tid = pid_arg(args[0]);
  if (!tid.ok()) return tid.status();
  return engine_->exec(*tid);
}

Shell::Outcome Shell::run_charge(Words args) {
  Result<TaskAndBytes> a = task_and_bytes(args);
  if (!a.ok()) return a.status();
  if (!controllers_.memory) return Status::Error(ENODEV, "no memory controller");
  return controllers_.memory->charge(*engine_, a->task, a->bytes);
}

Shell::Outcome Shell::run_uncharge(Words args) {
  Result<TaskAndBytes> a = task_and_bytes(args);
  if (!a.ok()) return a.status();
  if (!controllers_.memory) return Status::Error(ENODEV, "no memory controller");
  return controllers_.memory->uncharge(*engine_, a->task, a->bytes);
}

// Swap is its own account: a script modelling a swap-out writes
// `uncharge` then `swapcharge`, as an embedder calls the two.
Shell::Outcome Shell::run_swapcharge(Words args) {
  Result<TaskAndBytes> a = task_and_bytes(args);
  if (!a.ok()) return a.status();
  if (!controllers_.memory) return Status::Error(ENODEV, "no memory controller");
  return controllers_.memory->charge_swap(*engine_, a->task, a->bytes);
}

Shell::Outcome Shell::run_swapuncharge(Words args) {
  Result<TaskAndBytes> a = task_and_bytes(args);
  if (!a.ok()) return a.status();
  if (!controllers_.memory) return Status::Error(ENODEV, "no memory controller");
  return controllers_.memory->uncharge_swap(*engine_, a->task, a->bytes);
}

// A test hook standing for the scheduler: the CPU time a virtual thread
// ran, charged as the host backend charges what real threads ran.
Shell::Outcome Shell::run_cputime(Words args) {
  Result<Pid> tid = pid_arg(args[0]);
  if (!tid.ok()) return tid.status();
  Result<uint64_t> user = cgcore::kstrtoull(args[1].text, 10);
  Result<uint64_t> system = cgcore::kstrtoull(args[2].text, 10);
  if (!user.ok() || !system.ok() || *user > UINT64_MAX / 1000 || *system > UINT64_MAX / 1000)
    return Status::Error(EINVAL, "expected microseconds of user and system time");
  const bool nice = args.size() == 4;
  if (nice && args[3].text != "nice") return Status::Error(EINVAL, "expected 'nice' or nothing");
  if (!controllers_.cpu) return Status::Error(ENODEV, "no cpu controller");
  CpuCharge c{*tid, *user * 1000, *system * 1000, nice};
  Result<size_t> n = controllers_.cpu->charge(*engine_, std::span<const CpuCharge>(&c, 1));
  if (!n.ok()) return n.status();
  if (*n == 0 && (*user || *system)) return Status::Error(ESRCH, "no such thread");
  return Status::Ok();
}

Shell::Outcome Shell::run_mmap(Words args) {
  Result<TaskAndBytes> a = task_and_bytes(args);
  if (!a.ok()) return a.status();
  if (!controllers_.memrlimit) return Status::Error(ENODEV, "no memrlimit controller");
  return controllers_.memrlimit->mmap(*engine_, a->task, a->bytes);
}

Shell::Outcome Shell::run_munmap(Words args) {
  Result<TaskAndBytes> a = task_and_bytes(args);
  if (!a.ok()) return a.status();
  if (!controllers_.memrlimit) return Status::Error(ENODEV, "no memrlimit controller");
  return controllers_.memrlimit->munmap(*engine_, a->task, a->bytes);
}

// ------------------------------------------------------------ the engine

Shell::Outcome Shell::run_move(Words args) {
  Result<CgroupPtr> dst = cgroup_at(args[0].text);
  if (!dst.ok()) return dst.status();
  std::vector<Pid> pids;
  for (const Word& w : args.subspan(1)) {
    Result<Pid> id = pid_arg(w);
    if (!id.ok()) return id.status();
    pids.push_back(*id);
  }
  return engine_->migrate_processes(pids, **dst);
}

Shell::Outcome Shell::run_transfer(Words args) {
  Result<CgroupPtr> src = cgroup_at(args[0].text);
  if (!src.ok()) return src.status();
  Result<CgroupPtr> dst = cgroup_at(args[1].text);
  if (!dst.ok()) return dst.status();
  return engine_->transfer(**src, **dst);
}

Shell::Outcome Shell::run_inject(Words args) {
  if (args[0].text != "alloc") return usage("inject");
  std::optional<int64_t> nth = parse_int(args[1].text);
  if (!nth || *nth < 0 || *nth > INT32_MAX)
    return Status::Error(EINVAL, "bad count '" + args[1].text + "'");
  engine_->TEST_fail_cset_alloc(static_cast<int>(*nth));
  return {};
}

Shell::Outcome Shell::run_as(Words args) {
  const std::string& spec = args[0].text;
  size_t colon = spec.find(':');
  std::optional<int64_t> uid = parse_int(spec.substr(0, colon));
  std::optional<int64_t> gid = uid;
  if (colon != std::string::npos) gid = parse_int(spec.substr(colon + 1));
  if (!uid || !gid || *uid < 0 || *gid < 0 || *uid > UINT32_MAX || *gid > UINT32_MAX)
    return Status::Error(EINVAL, "bad credentials '" + spec + "'");
  fs::Caller who{.uid = static_cast<uint32_t>(*uid),
                 .gid = static_cast<uint32_t>(*gid),
                 .groups = {},
                 .pid = 1};
  Words command = args.subspan(1);
  if (is_op(command[0], "--pid")) {
    if (command.size() < 3) return usage("as");
    Result<Pid> writer = pid_arg(command[1]);
    if (!writer.ok()) return writer.status();
    who.pid = *writer;
    command = command.subspan(2);
  }
  fs::Caller saved = caller_;
  caller_ = who;
  Outcome o = execute(command);
  caller_ = saved;
  return o;
}

Shell::Outcome Shell::run_cgroup(Words args) {
  Result<Pid> id = pid_arg(args[0]);
  if (!id.ok()) return id.status();
  Result<std::string> text = fs_->proc_pid_cgroup(*id);
  if (!text.ok()) return text.status();
  return Outcome::print(std::move(*text));
}

Shell::Outcome Shell::run_cgroups(Words) { return Outcome::print(fs_->proc_cgroups()); }

Shell::Outcome Shell::run_tree(Words args) {
  Outcome o;
  o.status = tree(args.empty() ? "/" : args[0].text, o.out);
  return o;
}

Shell::Outcome Shell::run_check(Words) { return engine_->check_invariants(); }

// ------------------------------------------------------------ the script

// run_line takes an assert line itself; only a command (as ... assert)
// reaches this.
Shell::Outcome Shell::run_assert(Words) { return Status::Error(EINVAL, "asserts do not nest"); }

Shell::Outcome Shell::run_help(Words) { return Outcome::print(help_text()); }

}  // namespace cgcore::cgsh
