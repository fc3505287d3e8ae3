// The supervised rows: what supervision (seccomp user notification, through
// cgexec) costs a process, side by side with the same process unsupervised,
// in one run: fork + exit + wait, mmap + munmap of 1 MiB (and the same
// under a bare seccomp listener that only lets each call continue: the
// floor of any supervisor), and cgexec's start-up against a plain fork +
// exec of the same program.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/cgbench/common.h"
#include "bench/cgbench/stats.h"

namespace cgbench {

namespace {

// Runs argv, returns its stdout (empty on failure).
std::string run(const std::vector<std::string>& argv) {
  int fds[2];
  if (pipe(fds) != 0) return "";
  const pid_t p = fork();
  if (p == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    std::vector<char*> a;
    for (const std::string& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execv(a[0], a.data());
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[256];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(p, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? out : "";
}

std::optional<double> number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  return end != s.c_str() ? std::optional<double>(v) : std::nullopt;
}

// Two commands that each print a mean in ns, alternating round by round so
// that each pair sees the same machine; the medians (nullopt where every
// run failed).
std::pair<std::optional<double>, std::optional<double>> pair_ns(const std::vector<std::string>& a,
                                                                const std::vector<std::string>& b, int rounds) {
  std::vector<double> va, vb;
  for (int r = 0; r < rounds; ++r) {
    if (std::optional<double> x = number(run(a))) va.push_back(*x);
    if (std::optional<double> x = number(run(b))) vb.push_back(*x);
  }
  auto median = [](std::vector<double> v) -> std::optional<double> {
    if (v.empty()) return std::nullopt;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  return {median(va), median(vb)};
}

// `ops OP N` supervised and plain.
std::pair<std::optional<double>, std::optional<double>> op_ns(const std::vector<std::string>& sup,
                                                              const std::string& ops, const std::string& op,
                                                              int n, int rounds) {
  std::vector<std::string> a = sup;
  a.insert(a.end(), {ops, op, std::to_string(n)});
  return pair_ns(a, {ops, op, std::to_string(n)}, rounds);
}

Row ratio_row(const std::string& name, std::optional<double> supervised, std::optional<double> plain,
              const std::string& why) {
  if (!supervised || !plain) return value_row(name, std::nullopt, "x", why);
  Row r = value_row(name, *supervised / *plain, "x",
                    "supervised " + std::to_string(static_cast<int64_t>(*supervised)) + " ns, plain " +
                        std::to_string(static_cast<int64_t>(*plain)) + " ns");
  return r;
}

}  // namespace

std::vector<Row> bench_supervised(const Config& cfg, CgcorefsMount& m, const std::string& mount_why) {
  std::vector<Row> rows;
  const std::string cgexec = cfg.self_dir + "/cgexec", ops = cfg.self_dir + "/cgbench-ops";
  std::string why;
  if (!m.ok()) why = "n/a (" + mount_why + ")";
  else if (m.sim()) why = "n/a (the mount runs --sim: no supervision of real processes)";
  else if (access(cgexec.c_str(), X_OK) != 0 || access(ops.c_str(), X_OK) != 0)
    why = "n/a (cgexec or cgbench-ops not built)";
  const std::vector<std::string> sup = {cgexec, "-m", m.dir(), "-g", "*:/", "--"};
  const int rounds = cfg.quick ? 3 : 7;
  const int forks = cfg.quick ? 200 : 2000, maps = cfg.quick ? 2000 : 20000;
  if (!why.empty()) {
    rows.push_back(value_row("fork_exit_supervised_vs_plain", std::nullopt, "x", why));
    rows.push_back(value_row("mmap_supervised_vs_plain", std::nullopt, "x", why));
    rows.push_back(value_row("mmap_bare_notification_vs_plain", std::nullopt, "x", why));
    rows.push_back(value_row("cgexec_startup_vs_exec", std::nullopt, "x", why));
    return rows;
  }
  auto [fs, fp] = op_ns(sup, ops, "fork_exit", forks, rounds);
  rows.push_back(ratio_row("fork_exit_supervised_vs_plain", fs, fp, "failed"));
  auto [ms, mp] = op_ns(sup, ops, "mmap", maps, rounds);
  rows.push_back(ratio_row("mmap_supervised_vs_plain", ms, mp, "failed"));
  // The mechanism's floor: the same mapping loop answered by a bare
  // listener that does nothing but let each call continue.
  auto [bs, bp] = pair_ns({ops, "mmap_notified", std::to_string(maps)}, {ops, "mmap", std::to_string(maps)}, rounds);
  rows.push_back(ratio_row("mmap_bare_notification_vs_plain", bs, bp, "failed"));
  // Start-up: `cgexec ... ops fork_exit 1` against `ops fork_exit 1`.
  auto startup = [&](const std::vector<std::string>& prefix) -> std::optional<double> {
    std::vector<double> v;
    for (int r = 0; r < rounds * 3; ++r) {
      std::vector<std::string> argv = prefix;
      argv.insert(argv.end(), {ops, "fork_exit", "1"});
      const int64_t t0 = now_ns();
      if (run(argv).empty()) continue;
      v.push_back(static_cast<double>(now_ns() - t0));
    }
    if (v.empty()) return std::nullopt;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  rows.push_back(ratio_row("cgexec_startup_vs_exec", startup(sup), startup({}), "failed"));
  return rows;
}

}  // namespace cgbench
