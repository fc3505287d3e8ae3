// The transports section: the same cgcorefs requests over /dev/fuse and
// over FUSE-over-io_uring (cgcorefs --transport=dev|uring), two mounts side
// by side, round by round with the kernel's cgroup.procs write:
//   * a trivial-handler round trip: fsync(2) on a file of the mount, one
//     FUSE_FSYNC whose handler only replies;
//   * moving a one-thread process by a write to cgroup.procs.
// The ring needs /sys/module/fuse/parameters/enable_uring = Y: the section
// sets it for its mounts and puts the value it found back (the guard does
// so too if cgbench dies).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include "bench/cgbench/common.h"
#include "bench/cgbench/stats.h"

namespace cgbench {

namespace {

constexpr const char* kEnableUring = "/sys/module/fuse/parameters/enable_uring";

std::optional<double> med(const Samples& s) {
  return s.empty() ? std::nullopt : std::optional<double>(s.median());
}
std::optional<double> p99(const Samples& s) {
  return s.empty() ? std::nullopt : std::optional<double>(s.p99());
}

// enable_uring = Y for the scope; "" from why() if it was set.
class EnableUring {
 public:
  EnableUring() {
    std::ifstream in(kEnableUring);
    if (!in || !std::getline(in, prev_) || prev_.empty()) {
      why_ = "n/a (no " + std::string(kEnableUring) + ": kernel without FUSE over io_uring)";
      prev_.clear();
      return;
    }
    guard_restore_param(kEnableUring, prev_);
    if (!set("Y")) why_ = "n/a (cannot write " + std::string(kEnableUring) + ": " + strerror(errno) + ")";
  }
  ~EnableUring() {
    if (!prev_.empty()) set(prev_);
  }
  const std::string& why() const { return why_; }

 private:
  static bool set(const std::string& v) {
    int fd = open(kEnableUring, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool ok = write(fd, v.data(), v.size()) == static_cast<ssize_t>(v.size());
    close(fd);
    return ok;
  }
  std::string prev_, why_;
};

// One side's work: moves between a and b, and fsyncs.
struct Side {
  std::string err;
  int fd[2] = {-1, -1};
  int sync_fd = -1;
  pid_t pid = -1;
  bool in_b = false;
  Samples moves, syncs;

  void setup_moves(const std::string& dir, pid_t p) {
    pid = p;
    if ((!make_dir(dir + "/a") && errno != EEXIST) || (!make_dir(dir + "/b") && errno != EEXIST)) {
      err = "mkdir " + dir + ": " + strerror(errno);
      return;
    }
    fd[0] = open_wo(dir + "/a/cgroup.procs");
    fd[1] = open_wo(dir + "/b/cgroup.procs");
    if (fd[0] < 0 || fd[1] < 0 || !write_pid(fd[0], pid))
      err = "cannot move " + std::to_string(pid) + " into " + dir + "/a: " + strerror(errno);
  }
  void setup_sync(const std::string& file) {
    sync_fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (sync_fd < 0) err = "open " + file + ": " + strerror(errno);
  }
  void run_moves(int n) {
    if (!err.empty() || fd[0] < 0) return;
    for (int i = 0; i < n; ++i) {
      const int64_t t0 = now_ns();
      const bool w = write_pid(fd[in_b ? 0 : 1], pid);
      const int64_t t1 = now_ns();
      if (!w) {
        err = std::string("write to cgroup.procs failed: ") + strerror(errno);
        return;
      }
      in_b = !in_b;
      if (i > 0) moves.add(static_cast<double>(t1 - t0));  // the first pays the idle spell
    }
  }
  void run_syncs(int n) {
    if (!err.empty() || sync_fd < 0) return;
    for (int i = 0; i < n; ++i) {
      const int64_t t0 = now_ns();
      const int rc = fsync(sync_fd);
      const int64_t t1 = now_ns();
      if (rc != 0) {
        err = std::string("fsync failed: ") + strerror(errno);
        return;
      }
      syncs.add(static_cast<double>(t1 - t0));
    }
  }
  ~Side() {
    for (int f : {fd[0], fd[1], sync_fd})
      if (f >= 0) close(f);
  }
};

}  // namespace

std::vector<Row> bench_transports(const Config& cfg, KernelCgroups& k) {
  const int rounds = cfg.quick ? 8 : 40;
  const int ops = 25;
  std::vector<Row> rows;

  EnableUring enable;
  CgcorefsMount dev, ring;
  std::string dev_why = "n/a (--no-mount)", ring_why = dev_why;
  if (!cfg.no_mount) {
    const std::string bin = cfg.self_dir + "/cgcorefs";
    dev.set_extra_args({"--transport=dev"});
    if (!dev.start(bin, &dev_why)) dev_why = "/dev/fuse mount: " + dev_why;
    if (!enable.why().empty()) {
      ring_why = enable.why();
    } else {
      ring.set_extra_args({"--transport=uring"});
      if (!ring.start(bin, &ring_why)) ring_why = "io_uring mount: " + ring_why;
    }
  }

  pid_t sleeper = -1;
  if (k.v1.ok() || (dev.ok() && !dev.sim()) || (ring.ok() && !ring.sim())) sleeper = fork_sleeper();
  Side kv1, sd, sr;
  if (k.v1.ok()) {
    make_dir(k.v1.dir + "/transports");
    kv1.setup_moves(k.v1.dir + "/transports", sleeper);
  }
  auto prep = [&](CgcorefsMount& m, Side& s) {
    if (!m.ok()) return;
    make_dir(m.pids_dir() + "/transports");
    s.setup_moves(m.pids_dir() + "/transports", m.sim() ? 2 : sleeper);
    if (s.err.empty()) s.setup_sync(m.pids_dir() + "/cgroup.procs");
  };
  prep(dev, sd);
  prep(ring, sr);

  for (int r = 0; r < rounds; ++r) {
    kv1.run_moves(ops);
    sd.run_moves(ops);
    sr.run_moves(ops);
    sd.run_syncs(ops);
    sr.run_syncs(ops);
  }
  kill_child(sleeper);

  auto note = [](const CgcorefsMount& m, const Side& s, const std::string& why, const std::string& what) {
    if (!m.ok()) return why;
    std::string n = what + " (" + m.mode() + ")";
    if (!s.err.empty()) n += "; " + s.err;
    return n;
  };
  const std::string knote = k.v1.ok() ? "" : "; kernel: " + k.v1.why_not;
  rows.push_back(value_row("fuse_roundtrip_dev", med(sd.syncs), "ns",
                           note(dev, sd, dev_why, "fsync(2) on a mount file, /dev/fuse")));
  rows.push_back(value_row("fuse_roundtrip_uring", med(sr.syncs), "ns",
                           note(ring, sr, ring_why, "fsync(2) on a mount file, io_uring")));
  std::optional<double> speedup;
  if (!sd.syncs.empty() && !sr.syncs.empty()) speedup = sd.syncs.median() / sr.syncs.median();
  rows.push_back(value_row("fuse_roundtrip_dev_vs_uring", speedup, "x",
                           "/dev/fuse time / io_uring time (higher: the ring faster)"));
  rows.push_back(time_row("move_1thread_mount_dev", med(sd.moves), med(kv1.moves), "ns",
                          note(dev, sd, dev_why, "cgroup.procs write, /dev/fuse") + knote));
  rows.push_back(time_row("move_1thread_mount_dev_p99", p99(sd.moves), p99(kv1.moves), "ns", ""));
  rows.push_back(time_row("move_1thread_mount_uring", med(sr.moves), med(kv1.moves), "ns",
                          note(ring, sr, ring_why, "cgroup.procs write, io_uring") + knote));
  rows.push_back(time_row("move_1thread_mount_uring_p99", p99(sr.moves), p99(kv1.moves), "ns", ""));
  return rows;
}

}  // namespace cgbench
