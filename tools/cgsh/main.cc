// cgsh [--layout hybrid|v2|SPEC] [--cpus N] [--nodes N] [SCRIPT]
//
// Runs an embedded cgcore engine with virtual tasks and reads commands from
// SCRIPT or standard input (with a prompt and line editing on a terminal).
// The language is in docs/cgsh.md; the interpreter in tools/cgsh/shell.h.
// Exit status: 0 if every assert held and no command failed outside an
// assert, 1 otherwise, 2 if the shell could not start.
//
// On a terminal (readline): Tab completes command names, cgroup paths and
// file names (through the shell's own fs) and $NAMEs; Ctrl-C cancels the line being
// typed, not the session; history is kept in $CGSH_HISTORY, else
// ~/.cgsh_history.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#ifdef CGSH_HAVE_READLINE
#include <readline/history.h>
#include <readline/readline.h>
#endif

#include "tools/cgsh/shell.h"
#include "tools/common/cli.h"

namespace {

using cgcore::cgsh::Interpreter;
using cgcore::cgsh::Shell;

// Writes what a line printed: its `error: ` and `assertion failed: ` lines
// (fixed prefixes, docs/cgsh.md "Output") to stderr, the rest to stdout,
// in order.
void emit(const std::string& text) {
  for (size_t p = 0; p < text.size();) {
    size_t e = text.find('\n', p);
    e = e == std::string::npos ? text.size() : e + 1;
    std::string_view line(text.data() + p, e - p);
    const bool err = line.starts_with("error: ") || line.starts_with("assertion failed: ");
    if (err) {
      std::cout << std::flush;
      std::cerr << line << std::flush;
    } else {
      std::cout << line;
    }
    p = e;
  }
  std::cout << std::flush;
}

#ifdef CGSH_HAVE_READLINE

// ------------------------------------------------------------ completion

Interpreter* g_interpreter = nullptr;
// Before the first command the interpreter has no shell yet (the leading
// comment block may still set options); completion then looks at a fresh
// shell of the same options, which is exactly what the first command will
// see.
std::unique_ptr<Shell> g_preview;
std::vector<std::string> g_matches;

Shell* completion_shell() {
  if (g_interpreter->shell()) return g_interpreter->shell();
  return g_preview.get();
}

char* next_match(const char*, int state) {
  static size_t i;
  if (state == 0) i = 0;
  return i < g_matches.size() ? strdup(g_matches[i++].c_str()) : nullptr;
}

char** complete(const char* text, int start, int) {
  rl_attempted_completion_over = 1;  // never readline's own file names
  g_matches.clear();
  const std::string word(text);
  // The first word of the line: a command.
  std::string before(rl_line_buffer, static_cast<size_t>(start));
  if (before.find_first_not_of(" \t") == std::string::npos) {
    for (const std::string& name : Shell::command_names())
      if (name.compare(0, word.size(), word) == 0) g_matches.push_back(name);
  } else if (Shell* sh = completion_shell(); sh && !word.empty() && word[0] == '$') {
    for (const std::string& name : sh->var_names())
      if (("$" + name).compare(0, word.size(), word) == 0) g_matches.push_back("$" + name);
  } else if (sh && !word.empty() && word[0] == '/') {
    g_matches = sh->complete_path(word);
    // A directory goes on ("/pids/" then Tab again); a file ends the word.
    if (g_matches.size() == 1 && g_matches[0].back() == '/') rl_completion_append_character = '\0';
  }
  return rl_completion_matches(text, next_match);
}

// --------------------------------------------------------------- history

std::string history_path() {
  if (const char* p = std::getenv("CGSH_HISTORY"); p && *p) return p;
  if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.cgsh_history";
  return "";
}

// ------------------------------------------------------- the line loop

volatile sig_atomic_t g_interrupted = 0;
bool g_done = false;
std::string g_history;

void on_line(char* raw) {
  if (!raw) {  // Ctrl-D
    std::cout << "\n";
    g_done = true;
    return;
  }
  std::string line(raw);
  std::free(raw);
  if (line.find_first_not_of(" \t") != std::string::npos) {
    add_history(line.c_str());
    // Appended at once, so that a session that ends badly keeps its lines.
    if (!g_history.empty()) append_history(1, g_history.c_str());
  }
  if (line == "quit") {
    g_done = true;
    return;
  }
  emit(g_interpreter->feed(line));
}

// readline's callback interface, so that SIGINT only sets a flag and the
// loop cancels the line in a safe place (readline's own handler would keep
// the half-typed line).
int interactive(Interpreter& in, const cgcore::cgsh::Options& options) {
  g_interpreter = &in;
  if (auto sh = Shell::create(options); sh.ok()) g_preview = std::move(sh.value());
  rl_readline_name = "cgsh";
  rl_attempted_completion_function = complete;
  rl_completer_word_break_characters = const_cast<char*>(" \t\n\"'<>=;|&");
  rl_catch_signals = 0;
  g_history = history_path();
  if (!g_history.empty()) {
    // append_history needs the file to exist.
    int fd = open(g_history.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) close(fd);
    read_history(g_history.c_str());
  }
  struct sigaction sa{};
  sa.sa_handler = [](int) { g_interrupted = 1; };
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: poll returns EINTR
  sigaction(SIGINT, &sa, nullptr);

  rl_callback_handler_install("cgsh> ", on_line);
  while (!g_done) {
    if (g_interrupted) {
      g_interrupted = 0;
      // Drop the line being typed and start a fresh prompt. The handler
      // comes off first: reinstalling it redisplays whatever line is left.
      rl_callback_sigcleanup();
      rl_free_line_state();
      rl_callback_handler_remove();
      rl_replace_line("", 1);
      rl_point = rl_end = rl_mark = 0;
      std::cout << "^C\n" << std::flush;
      rl_callback_handler_install("cgsh> ", on_line);
      continue;
    }
    pollfd pfd{STDIN_FILENO, POLLIN, 0};
    int n = poll(&pfd, 1, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    rl_callback_read_char();
  }
  rl_callback_handler_remove();
  if (!g_history.empty()) history_truncate_file(g_history.c_str(), 1000);
  return in.exit_status();
}

#endif  // CGSH_HAVE_READLINE

}  // namespace

int main(int argc, char** argv) {
  cgcore::cgsh::Options options;
  Interpreter::Fixed fixed;
  std::string script;
  CLI::App app{"cgsh: a shell over an embedded cgroup engine with virtual tasks (docs/cgsh.md)",
               "cgsh"};
  cgcore::tools::standard_options(
      app, "cgsh",
      "Commands come from SCRIPT, or standard input; on a terminal with line editing: Tab\n"
      "completes commands, cgroup paths and files, Ctrl-C cancels the line, Ctrl-D or quit\n"
      "ends, history is kept in $CGSH_HISTORY (default ~/.cgsh_history). Failed commands\n"
      "print 'error: ENAME: message' on stderr. Exit status 1 also when a command failed\n"
      "outside an assert or an assert did not hold.");
  auto* layout = app.add_option("--layout", options.layout,
                                "hybrid | v2 | a spec such as 'cpuset,memory;pids;name=systemd' "
                                "(default: hybrid, or the script's '# layout:' line)")
                     ->type_name("LAYOUT");
  auto* cpus = app.add_option("--cpus", options.cpus, "CPUs cpuset sees (default 4)")
                   ->type_name("N")
                   ->check(CLI::Range(1, 4096));
  auto* nodes = app.add_option("--nodes", options.nodes, "memory nodes cpuset sees (default 1)")
                    ->type_name("N")
                    ->check(CLI::Range(1, 1024));
  app.add_option("SCRIPT", script, "script to run (default: standard input)");
  if (int rc = cgcore::tools::parse(app, argc, argv); rc >= 0) return rc;
  fixed.layout = layout->count() > 0;
  fixed.cpus = cpus->count() > 0;
  fixed.nodes = nodes->count() > 0;
  // Options given on the command line are final (a script's directives do
  // not override them): check them now rather than at the first command.
  if (fixed.layout || fixed.cpus || fixed.nodes) {
    if (auto sh = Shell::create(options); !sh.ok()) {
      std::fprintf(stderr, "cgsh: %s: %s\n", fixed.layout ? "--layout" : "--cpus/--nodes",
                   sh.status().message().c_str());
      return cgcore::tools::kExitUsage;
    }
  }

  Interpreter in(options, fixed);
  if (!script.empty()) {
    std::ifstream file(script);
    if (!file) {
      std::fprintf(stderr, "cgsh: cannot open %s: %s\n", script.c_str(), std::strerror(errno));
      return cgcore::tools::kExitUsage;
    }
    std::string line;
    while (std::getline(file, line)) emit(in.feed(line));
    return in.exit_status();
  }
#ifdef CGSH_HAVE_READLINE
  if (isatty(STDIN_FILENO)) return interactive(in, options);
#endif
  const bool tty = isatty(STDIN_FILENO);
  std::string line;
  for (;;) {
    if (tty) std::cout << "cgsh> " << std::flush;
    if (!std::getline(std::cin, line)) break;
    if (tty && line == "quit") break;
    emit(in.feed(line));
  }
  return in.exit_status();
}
