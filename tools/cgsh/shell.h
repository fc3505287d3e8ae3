// cgsh: a shell over an embedded cgcore engine with virtual tasks. Its
// commands mirror a shell session on a real cgroupfs (mkdir, cat, echo ... >)
// plus commands that stand for what processes do (spawn, fork, thread, exit,
// exec, charge, mmap) and for engine-level actions (move, transfer, inject,
// check). See docs/cgsh.md for the language and its semantics decisions.
//
// Two layers:
//   Shell        one engine + cgroupfs + init process; runs one line at a
//                time and returns what it prints.
//   Interpreter  feeds lines to a Shell, reading the option directives of
//                the leading comment block (# layout: v2) before it creates
//                the Shell; tracks the exit status.
//
// The commands are rows of one table (Shell::commands, commands.cc): name,
// synopsis, help line, arity and handler. Dispatch, usage errors and `help`
// all come from it. shell.cc reads lines (words, asserts, output); vfs.cc is
// the VFS side of the file commands.
//
// Thread-safety: neither class is thread-safe; one caller at a time.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/engine.h"
#include "controllers/registry.h"
#include "fs/cgroupfs.h"

namespace cgcore::cgsh {

struct Options {
  // "hybrid" | "v2" | a spec such as "cpuset,memory;pids;name=systemd".
  std::string layout = "hybrid";
  // cpuset's machine: `cpus` CPUs and `nodes` memory nodes, all online (a
  // fixed topology, so that output does not depend on the host).
  uint32_t cpus = 4;
  uint32_t nodes = 1;
};

// One word of a command line after quoting and $NAME expansion.
struct Word {
  std::string text;
  bool quoted = false;  // any part was quoted or escaped (so ">" is not an operator)
  std::string unknown;  // a $NAME in it that names nothing (the command fails)
};

class Shell {
 public:
  // Registers the builtin controllers, mounts `layout` and spawns init
  // (pid 1). EINVAL for a bad layout or topology.
  static Result<std::unique_ptr<Shell>> create(const Options& options);
  ~Shell();
  Shell(const Shell&) = delete;
  Shell& operator=(const Shell&) = delete;

  // Runs one line (`lineno` is used in assertion messages) and returns what
  // it prints: the command's output, `error: ENAME: message` if it failed,
  // `assertion failed: line N: ...` if an assertion did not hold.
  std::string run_line(std::string_view line, int lineno);
  // Whether a command failed outside an assert, or an assert did not hold.
  bool failed() const { return failed_; }

  Engine& engine() { return *engine_; }
  fs::CgroupFs& fs() { return *fs_; }
  // The id a $NAME names (nullopt if unset).
  std::optional<Pid> var(const std::string& name) const;

  // For line editing (readline completion in main.cc):
  // the command names of the table, in help's order;
  static std::vector<std::string> command_names();
  // the paths that complete `prefix` (an absolute path, maybe partial),
  // sorted, directories ending in '/'; empty when its directory does not
  // resolve. Uses the fs as root, whatever `as` says.
  std::vector<std::string> complete_path(std::string_view prefix);
  // the names $NAME may use now, sorted.
  std::vector<std::string> var_names() const;

 private:
  using Words = std::span<const Word>;

  // What a command produced. A bare Status is a command that printed
  // nothing.
  struct Outcome {
    Outcome() = default;
    Outcome(Status st) : status(std::move(st)) {}  // NOLINT: implicit by design
    Outcome(Status st, std::string text) : status(std::move(st)), out(std::move(text)) {}
    static Outcome print(std::string text) { return {Status::Ok(), std::move(text)}; }
    Status status;
    std::string out;
  };

  // One row of the command table (commands.cc). Dispatch checks the arity
  // (and `binds_name`) before calling `run`, and answers a mismatch with the
  // usage error built from `synopsis`; `help` prints the rows.
  struct Command {
    std::string_view name;
    std::string_view synopsis;  // the arguments, as help and usage errors show them
    std::string_view summary;   // help's one line
    size_t min_args = 0;
    size_t max_args = 0;  // kAnyNumber: no upper bound
    Outcome (Shell::*run)(Words args) = nullptr;  // args: the words after the name
    bool binds_name = false;  // the first argument is a NAME for the new task
  };
  static constexpr size_t kAnyNumber = SIZE_MAX;
  static std::span<const Command> commands();
  static const Command* find_command(std::string_view name);
  // EINVAL "usage: NAME SYNOPSIS", from the table's row for `name`.
  static Status usage(std::string_view name);
  static std::string help_text();

  Shell() = default;
  // Looks the command up in the table and runs it (commands.cc).
  Outcome execute(Words words);
  // An `assert` line: runs the command and checks the expectation.
  Outcome run_assert_line(std::string_view line, int lineno);
  // Delivers pending release agent runs, appending what they print to `o`.
  void deliver_releases(Outcome& o);

  // Tokenizes `line` (quotes, escapes, $NAME, # comments). With
  // `stop_at_eq`, stops after the first unquoted "==" word and stores the
  // offset just past it in *rest.
  Result<std::vector<Word>> tokenize(std::string_view line, bool stop_at_eq, size_t* rest) const;
  // Expands $NAME and \n \t \\ \$ in an assert's expected TEXT.
  Result<std::string> expand_text(std::string_view text) const;

  // The commands, in the table's order (commands.cc).
  Outcome run_mkdir(Words args);
  Outcome run_rmdir(Words args);
  Outcome run_mv(Words args);
  Outcome run_ls(Words args);
  Outcome run_cat(Words args);
  Outcome run_echo(Words args);
  Outcome run_chown(Words args);
  Outcome run_chmod(Words args);
  Outcome run_spawn(Words args);
  Outcome run_fork(Words args);
  Outcome run_thread(Words args);
  Outcome run_exit(Words args);
  Outcome run_kill(Words args);
  Outcome run_exec(Words args);
  Outcome run_charge(Words args);
  Outcome run_uncharge(Words args);
  Outcome run_swapcharge(Words args);
  Outcome run_swapuncharge(Words args);
  Outcome run_cputime(Words args);
  Outcome run_mmap(Words args);
  Outcome run_munmap(Words args);
  Outcome run_move(Words args);
  Outcome run_transfer(Words args);
  Outcome run_inject(Words args);
  Outcome run_as(Words args);
  Outcome run_cgroup(Words args);
  Outcome run_cgroups(Words args);
  Outcome run_tree(Words args);
  Outcome run_check(Words args);
  Outcome run_assert(Words args);
  Outcome run_help(Words args);

  // Argument parsing shared by the commands (commands.cc).
  Result<Pid> pid_arg(const Word& w) const;
  struct TaskAndBytes {
    Pid task;
    int64_t bytes;
  };
  Result<TaskAndBytes> task_and_bytes(Words args) const;  // $P BYTES
  // Binds `name` to the task just created, if it was.
  Status bind(const std::string& name, Result<Pid> task);

  // What the VFS does for a shell on cgroupfs (vfs.cc): path walk with
  // search permission, whole-file read and one-write, and so on.
  Result<fs::Ino> walk(std::string_view path);
  bool permits(const fs::Attr& attr, uint32_t mask) const;
  Result<std::string> read_file(std::string_view path);
  Status write_file(std::string_view path, std::string_view data);
  Result<CgroupPtr> cgroup_at(std::string_view path);
  Result<std::pair<fs::Ino, std::string>> parent_and_name(std::string_view path);
  Status tree(std::string_view path, std::string& out);
  Status tree_node(fs::Ino ino, const std::string& label, int depth, std::string& out);

  std::unique_ptr<Engine> engine_;
  std::unique_ptr<fs::CgroupFs> fs_;
  BuiltinControllers controllers_;  // borrowed from engine_
  fs::Caller caller_;  // whose credentials fs commands use (see `as`)
  std::map<std::string, Pid> vars_;
  size_t releases_printed_ = 0;  // release agent runs printed so far
  bool failed_ = false;
};

// Feeds lines to a Shell made on the first command line. Leading comment
// lines may hold directives — `# layout: SPEC`, `# cpus: N`, `# nodes: N` —
// which apply unless the same option was given on the command line
// (`fixed`).
class Interpreter {
 public:
  struct Fixed {
    bool layout = false, cpus = false, nodes = false;
  };
  Interpreter(Options options, Fixed fixed) : options_(std::move(options)), fixed_(fixed) {}

  // Runs one line and returns what it prints.
  std::string feed(std::string_view line);
  // 0 if every assert held and no command failed outside an assert; 1 if
  // not; 2 if the shell could not be created (bad layout or directive).
  int exit_status() const;
  // Null until the first command line.
  Shell* shell() { return shell_.get(); }

 private:
  Options options_;
  Fixed fixed_;
  std::unique_ptr<Shell> shell_;
  int lineno_ = 0;
  bool fatal_ = false;
};

// Runs a whole script; returns its output and sets *status to the exit
// status.
std::string run_script(std::string_view text, const Options& options, int* status,
                       Interpreter::Fixed fixed = {});

}  // namespace cgcore::cgsh
