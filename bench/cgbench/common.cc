#include "bench/cgbench/common.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "controllers/registry.h"

namespace cgbench {

using namespace cgcore;

bool Config::wants(const std::string& section) const {
  return only.empty() || std::find(only.begin(), only.end(), section) != only.end();
}

void must(const Status& st, const std::string& what) {
  if (!st.ok())
    throw BenchError(what + ": " + errno_name(st.err()) + " " + st.message());
}

EngineBed::EngineBed(bool with_v1) {
  must(register_builtin_controllers(engine), "register controllers");
  if (with_v1) {
    v1 = must(engine.mount({"pids"}, ""), "mount pids");
    a1 = must(engine.mkdir(v1->root(), "a"), "mkdir a1");
    b1 = must(engine.mkdir(v1->root(), "b"), "mkdir b1");
  }
  a2 = must(engine.mkdir(v2root(), "a"), "mkdir a2");
  b2 = must(engine.mkdir(v2root(), "b"), "mkdir b2");
}

void EngineBed::enable_v2(const std::vector<std::string>& names) {
  ControllerSet set;
  for (const std::string& n : names) {
    Controller* c = engine.find_controller(n);
    if (!c) throw BenchError("no controller " + n);
    set.set(c->id());
  }
  must(engine.set_subtree_control(v2root(), set, ControllerSet()), "subtree_control");
}

Pid EngineBed::make_process(int threads) {
  Pid p = must(engine.spawn({}), "spawn");
  for (int i = 1; i < threads; ++i) must(engine.clone_thread(p), "clone_thread");
  if (a1) must(engine.migrate_process(p, *a1), "move to a1");
  must(engine.migrate_process(p, *a2), "move to a2");
  return p;
}

long rss_bytes() {
  FILE* f = fopen("/proc/self/statm", "r");
  if (!f) return -1;
  long size = 0, resident = 0;
  int n = fscanf(f, "%ld %ld", &size, &resident);
  fclose(f);
  if (n != 2) return -1;
  return resident * sysconf(_SC_PAGESIZE);
}

std::vector<Row> run_in_child(const std::string& section,
                              const std::function<std::vector<Row>()>& fn) {
  fflush(stdout);
  fflush(stderr);
  int p[2];
  if (pipe(p) != 0) return {value_row(section + "_error", std::nullopt, "", "pipe failed")};
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    guard_forget_in_child();
    int rc = 0;
    std::string out;
    try {
      out = serialize(fn());
    } catch (const std::exception& e) {
      out = serialize({value_row(section + "_error", std::nullopt, "", std::string("error: ") + e.what())});
      rc = 1;
    }
    size_t off = 0;
    while (off < out.size()) {
      ssize_t n = write(p[1], out.data() + off, out.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    close(p[1]);
    _exit(rc);
  }
  close(p[1]);
  if (pid < 0) {
    close(p[0]);
    return {value_row(section + "_error", std::nullopt, "", "fork failed")};
  }
  guard_track(pid);
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = read(p[0], buf, sizeof buf);
    if (n > 0) text.append(buf, static_cast<size_t>(n));
    else if (n < 0 && errno == EINTR) continue;
    else break;
  }
  close(p[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  guard_untrack(pid);
  std::vector<Row> rows = deserialize(text);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    bool has_error = false;
    for (const Row& r : rows) has_error |= r.name == section + "_error";
    if (!has_error) {
      std::string why = WIFSIGNALED(status) ? std::string("killed by signal ") +
                                                  strsignal(WTERMSIG(status))
                                            : "exit status " + std::to_string(WEXITSTATUS(status));
      rows.push_back(value_row(section + "_error", std::nullopt, "", "error: child " + why));
    }
  }
  return rows;
}

}  // namespace cgbench
