// cgbench's "journal" section: what journaling the state costs on a
// cgroup.procs write and on mkdir+rmdir through the mount (two mounts side
// by side, one with --no-state), and how long a restart takes — the server
// killed, the next one restoring N cgroups and P processes placed in them,
// until the mount answers again. Host mode only (--sim keeps no state).
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "bench/cgbench/common.h"
#include "bench/cgbench/host.h"
#include "bench/cgbench/mount.h"
#include "bench/cgbench/report.h"
#include "bench/cgbench/stats.h"

namespace cgbench {

namespace {

bool write_text(const std::string& path, const std::string& text) {
  FILE* f = fopen(path.c_str(), "we");
  if (!f) return false;
  const bool ok = fputs(text.c_str(), f) >= 0;
  return fclose(f) == 0 && ok;
}

// A child that only waits (dies with cgbench).
pid_t idle_child() {
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);
    for (;;) pause();
  }
  return pid;
}

struct Costs {
  Samples procs, mkdir;
  std::string err;
};

// cgroup.procs writes (a child moved between two cgroups) and mkdir+rmdir.
void measure(CgcorefsMount& m, pid_t child, int ops, Costs& c) {
  const std::string base = m.pids_dir() + "/cgbench." + std::to_string(getpid());
  const std::string a = base + "/a", b = base + "/b", x = base + "/x";
  if ((!make_dir(base) && errno != EEXIST) || (!make_dir(a) && errno != EEXIST) ||
      (!make_dir(b) && errno != EEXIST)) {
    c.err = "mkdir " + base + ": " + strerror(errno);
    return;
  }
  const std::string pid = std::to_string(child);
  for (int i = 0; i < ops; ++i) {
    const int64_t t0 = now_ns();
    const bool ok = write_text((i % 2 ? a : b) + "/cgroup.procs", pid);
    const int64_t t1 = now_ns();
    if (!ok) {
      c.err = std::string("cgroup.procs: ") + strerror(errno);
      return;
    }
    c.procs.add(static_cast<double>(t1 - t0));
  }
  for (int i = 0; i < ops; ++i) {
    const int64_t t0 = now_ns();
    const bool ok = make_dir(x) && rmdir(x.c_str()) == 0;
    const int64_t t1 = now_ns();
    if (!ok) {
      c.err = std::string("mkdir/rmdir: ") + strerror(errno);
      return;
    }
    c.mkdir.add(static_cast<double>(t1 - t0));
  }
}

}  // namespace

std::vector<Row> bench_journal(const Config& cfg) {
  std::vector<Row> rows;
  const std::string binary = cfg.self_dir + "/cgcorefs";
  CgcorefsMount on, off;
  std::string why_on, why_off;
  const bool ok_on = on.start(binary, &why_on), ok_off = ok_on && off.start(binary, &why_off, {"--no-state"});
  if (!ok_on || !ok_off || on.sim() || off.sim()) {
    const std::string why = !ok_on ? why_on : !ok_off ? why_off : "n/a (host mode needed: --sim keeps no state)";
    rows.push_back(value_row("journal_procs_write_mount", std::nullopt, "ns", why));
    return rows;
  }
  const pid_t child = idle_child();
  guard_track(child);
  const int rounds = cfg.quick ? 4 : 20, ops = cfg.quick ? 25 : 50;
  Costs con, coff;
  // Interleaved, so that a burst of load elsewhere hits both alike.
  for (int r = 0; r < rounds && con.err.empty() && coff.err.empty(); ++r) {
    measure(on, child, ops, con);
    measure(off, child, ops, coff);
  }
  auto pair = [&](const std::string& name, const Samples& a, const Samples& b, const std::string& err) {
    if (!err.empty()) {
      rows.push_back(value_row(name + "_journal_on", std::nullopt, "ns", "error: " + err));
      return;
    }
    rows.push_back(value_row(name + "_journal_on", a.median(), "ns", "through the mount, journal appended"));
    rows.push_back(value_row(name + "_journal_off", b.median(), "ns", "through the mount, --no-state"));
    rows.push_back(value_row(name + "_journal_cost", a.median() / b.median(), "x", "on / off (medians)"));
  };
  pair("procs_write_mount", con.procs, coff.procs, con.err + coff.err);
  pair("mkdir_rmdir_mount", con.mkdir, coff.mkdir, con.err + coff.err);
  off.stop();

  // Restart: N cgroups, P processes spread over them.
  const int ncg = cfg.quick ? 500 : 10000, nproc = cfg.quick ? 200 : 10000;
  const std::string base = on.pids_dir() + "/cgbench.r" + std::to_string(getpid());
  std::vector<pid_t> kids;
  std::string err;
  if (!make_dir(base)) err = "mkdir " + base + ": " + strerror(errno);
  for (int i = 0; err.empty() && i < ncg; ++i)
    if (!make_dir(base + "/" + std::to_string(i))) err = std::string("mkdir: ") + strerror(errno);
  for (int i = 0; err.empty() && i < nproc; ++i) {
    const pid_t k = idle_child();
    if (k < 0) {
      err = std::string("fork: ") + strerror(errno);
      break;
    }
    kids.push_back(k);
    if (!write_text(base + "/" + std::to_string(i % ncg) + "/cgroup.procs", std::to_string(k)))
      err = std::string("cgroup.procs: ") + strerror(errno);
  }
  if (err.empty()) {
    const pid_t old = on.server_pid();
    const int64_t t0 = now_ns();
    kill(old, SIGKILL);
    // Answered by the next server once it has restored everything.
    bool back = false;
    while (!back && now_ns() - t0 < 60'000'000'000LL) {
      const pid_t now = on.server_pid();
      back = now > 0 && now != old;
      if (!back) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const int64_t t1 = now_ns();
    const std::string last = base + "/" + std::to_string((nproc - 1) % ncg) + "/cgroup.procs";
    FILE* f = fopen(last.c_str(), "re");
    bool placed = false;
    if (f) {
      long p;
      while (fscanf(f, "%ld", &p) == 1) placed |= p == kids.back();
      fclose(f);
    }
    rows.push_back(value_row("restart_" + std::to_string(ncg) + "cgroups_" + std::to_string(nproc) + "procs",
                             back ? std::optional<double>((t1 - t0) / 1e6) : std::nullopt, "ms",
                             back ? std::string("server killed until the next one serves") +
                                        (placed ? "" : "; WARNING: the last process was not restored")
                                  : "no new server within 60 s"));
  } else {
    rows.push_back(value_row("restart_mount", std::nullopt, "ms", "error: " + err));
  }
  for (pid_t k : kids) kill(k, SIGKILL);
  for (pid_t k : kids) waitpid(k, nullptr, 0);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  guard_untrack(child);
  on.stop();
  return rows;
}

}  // namespace cgbench
