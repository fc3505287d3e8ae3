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

 private:
  // What a command produced.
  struct Outcome {
    Status status;
    std::string out;
  };

  Shell() = default;
  Outcome execute(std::span<const Word> words);
  Outcome run_assert(std::string_view line, int lineno);

  // Tokenizes `line` (quotes, escapes, $NAME, # comments). With
  // `stop_at_eq`, stops after the first unquoted "==" word and stores the
  // offset just past it in *rest.
  Result<std::vector<Word>> tokenize(std::string_view line, bool stop_at_eq, size_t* rest) const;
  // Expands $NAME and \n \t \\ \$ in an assert's expected TEXT.
  Result<std::string> expand_text(std::string_view text) const;

  // Command helpers.
  Result<Pid> pid_arg(const Word& w) const;
  // Path walk with search permission; whole-file read and one-write.
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
  fs::Caller caller_;  // whose credentials fs commands use (see `as`)
  std::map<std::string, Pid> vars_;
  std::vector<std::string> releases_;  // release agent runs not yet printed
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
