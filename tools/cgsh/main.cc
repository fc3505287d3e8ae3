// cgsh [--layout hybrid|v2|SPEC] [--cpus N] [--nodes N] [SCRIPT]
//
// Runs an embedded cgcore engine with virtual tasks and reads commands from
// SCRIPT or standard input (with a prompt and line editing on a terminal).
// The language is in docs/cgsh.md; the interpreter in tools/cgsh/shell.h.
// Exit status: 0 if every assert held and no command failed outside an
// assert, 1 otherwise, 2 if the shell could not start.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#ifdef CGSH_HAVE_READLINE
#include <readline/history.h>
#include <readline/readline.h>
#endif

#include "tools/cgsh/shell.h"

int main(int argc, char** argv) {
  using cgcore::cgsh::Interpreter;
  cgcore::cgsh::Options options;
  Interpreter::Fixed fixed;
  std::string script;
  CLI::App app{"cgsh: a shell over an embedded cgroup engine with virtual tasks"};
  auto* layout = app.add_option("--layout", options.layout,
                                "hybrid | v2 | a spec such as 'cpuset,memory;pids;name=systemd' "
                                "(default: hybrid, or the script's '# layout:' line)");
  auto* cpus = app.add_option("--cpus", options.cpus, "CPUs cpuset sees (default 4)")
                   ->check(CLI::Range(1, 4096));
  auto* nodes = app.add_option("--nodes", options.nodes, "memory nodes cpuset sees (default 1)")
                    ->check(CLI::Range(1, 1024));
  app.add_option("SCRIPT", script, "script to run (default: standard input)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help: 0; a usage error: 2
  }
  fixed.layout = layout->count() > 0;
  fixed.cpus = cpus->count() > 0;
  fixed.nodes = nodes->count() > 0;

  Interpreter in(options, fixed);
  if (!script.empty()) {
    std::ifstream file(script);
    if (!file) {
      std::fprintf(stderr, "cgsh: cannot open %s\n", script.c_str());
      return 2;
    }
    std::string line;
    while (std::getline(file, line)) std::cout << in.feed(line) << std::flush;
    return in.exit_status();
  }
#ifdef CGSH_HAVE_READLINE
  if (isatty(STDIN_FILENO)) {
    while (char* raw = readline("cgsh> ")) {
      std::string line(raw);
      std::free(raw);
      if (line.find_first_not_of(" \t") != std::string::npos) add_history(line.c_str());
      if (line == "quit") break;
      std::cout << in.feed(line) << std::flush;
    }
    return in.exit_status();
  }
#endif
  const bool tty = isatty(STDIN_FILENO);
  std::string line;
  for (;;) {
    if (tty) std::cout << "cgsh> " << std::flush;
    if (!std::getline(std::cin, line)) break;
    if (tty && line == "quit") break;
    std::cout << in.feed(line) << std::flush;
  }
  return in.exit_status();
}
