// cgcorefs over FUSE-over-io_uring (fuse/uring_transport.h): the daemon
// mounted with the ring, ordinary requests (lookups, reads, writes, mkdir,
// rmdir, readdir, poll) served through it, and the fallbacks.
//
// The mounting tests skip, saying why, without root, /dev/fuse,
// fusermount3, the fuse module's enable_uring parameter (Linux < 6.14) or
// io_uring. Those that need the ring switch enable_uring on for their mount
// and put back what was there, also when they fail.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <regex>
#include <thread>

#include <gtest/gtest.h>

#include "fuse/uring_transport.h"
#include "tests/fuse/mount_harness.h"

namespace cgcore::fuse::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kParam = "/sys/module/fuse/parameters/enable_uring";

// Sets enable_uring for the scope and restores the value found.
class EnableUring {
 public:
  explicit EnableUring(bool on) {
    std::optional<std::string> v = read_file(kParam);
    if (!v || v->empty()) {
      why_ = std::string(kParam) + ": " + std::strerror(errno) +
             " (no FUSE over io_uring in this kernel: Linux 6.14+, CONFIG_FUSE_IO_URING)";
      return;
    }
    prev_ = v->substr(0, 1);
    if (int e = write_file(kParam, on ? "Y" : "N"); e != 0) {
      why_ = std::string("writing ") + kParam + ": " + std::strerror(e);
      prev_.clear();
    }
  }
  ~EnableUring() {
    if (!prev_.empty()) EXPECT_EQ(write_file(kParam, prev_), 0) << "restoring " << kParam;
  }
  EnableUring(const EnableUring&) = delete;
  EnableUring& operator=(const EnableUring&) = delete;
  // Why the parameter could not be set ("" if it was).
  const std::string& why() const { return why_; }

 private:
  std::string prev_, why_;
};

#define SKIP_UNLESS_SET(guard)                                                   \
  do {                                                                           \
    if (!(guard).why().empty()) GTEST_SKIP() << "io_uring tests skipped: " << (guard).why(); \
  } while (0)

std::string cat(const std::string& path) {
  std::optional<std::string> s = read_file(path);
  return s ? *s : std::string("error: ") + std::strerror(errno);
}

// The daemon's closing count, "N requests served through the ring, M read
// from /dev/fuse"; {-1, -1} if the log has none.
std::pair<long, long> served(const std::string& log) {
  std::smatch m;
  static const std::regex re("([0-9]+) requests served through the ring, ([0-9]+) read from /dev/fuse");
  if (!std::regex_search(log, m, re)) return {-1, -1};
  return {std::stol(m[1]), std::stol(m[2])};
}

TEST(UringTransport, ParsesTransportNames) {
  EXPECT_EQ(parse_transport("auto"), Transport::kAuto);
  EXPECT_EQ(parse_transport("uring"), Transport::kUring);
  EXPECT_EQ(parse_transport("dev"), Transport::kDev);
  EXPECT_EQ(parse_transport("io_uring"), std::nullopt);
  EXPECT_EQ(parse_transport(""), std::nullopt);
  for (Transport t : {Transport::kAuto, Transport::kUring, Transport::kDev})
    EXPECT_EQ(parse_transport(transport_name(t)), t);
}

TEST(CgcorefsUring, RingCarriesReadsWritesMkdirAndPoll) {
  SKIP_WITHOUT_FUSE();
  EnableUring on(true);
  SKIP_UNLESS_SET(on);
  if (std::string why = uring_unavailable(); !why.empty()) GTEST_SKIP() << "no FUSE over io_uring: " << why;
  Mount m({"--sim", "--sim-tasks", "3", "--layout", "v2", "--transport=uring"});
  ASSERT_TRUE(m.ok()) << m.error();

  ASSERT_EQ(mkdir(m.path("a").c_str(), 0755), 0) << std::strerror(errno);
  ASSERT_EQ(mkdir(m.path("b").c_str(), 0755), 0) << std::strerror(errno);
  EXPECT_EQ(mkdir(m.path("a").c_str(), 0755), -1);
  EXPECT_EQ(errno, EEXIST);
  std::string out;
  ASSERT_EQ(sh("ls " + m.path(""), &out), 0) << out;
  EXPECT_NE(out.find("cgroup.procs"), std::string::npos) << out;
  EXPECT_NE(out.find("a\n"), std::string::npos) << out;
  EXPECT_EQ(rmdir(m.path("b").c_str()), 0) << std::strerror(errno);

  // A bad write gets its errno through the ring, a good one moves the task.
  EXPECT_EQ(write_file(m.path("a/cgroup.procs"), "abc"), EINVAL);
  EXPECT_EQ(write_file(m.path("a/cgroup.procs"), "99999"), ESRCH);
  EXPECT_EQ(cat(m.path("a/cgroup.events")), "populated 0\nfrozen 0\n");
  ASSERT_EQ(write_file(m.path("a/cgroup.procs"), "2"), 0);
  EXPECT_EQ(cat(m.path("a/cgroup.procs")), "2\n");
  EXPECT_EQ(cat(m.path(".cgcore/2/cgroup")), "0::/a\n");

  // poll(2) through the ring; the wake-up comes as a notification on
  // /dev/fuse.
  int fd = open(m.path("a/cgroup.events").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  char buf[256];
  ssize_t n = pread(fd, buf, sizeof buf, 0);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)), "populated 1\nfrozen 0\n");
  pollfd p{fd, POLLPRI, 0};
  EXPECT_EQ(poll(&p, 1, 50), 0);
  std::atomic<int> revents{-1};
  std::thread waiter([&] {
    pollfd q{fd, POLLPRI, 0};
    int r = poll(&q, 1, 10000);
    revents = r > 0 ? q.revents : 0;
  });
  std::this_thread::sleep_for(50ms);  // let the waiter block
  EXPECT_EQ(write_file(m.path("cgroup.procs"), "2"), 0);
  waiter.join();
  EXPECT_TRUE(revents.load() & POLLPRI) << revents.load();
  n = pread(fd, buf, sizeof buf, 0);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)), "populated 0\nfrozen 0\n");
  close(fd);
  EXPECT_EQ(rmdir(m.path("a").c_str()), 0) << std::strerror(errno);

  std::optional<int> st = m.signal_and_wait(SIGTERM, 5s);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << *st << ": " << m.log();
  const std::string log = m.log();
  EXPECT_NE(log.find("transport io_uring ("), std::string::npos) << log;
  // Everything above is well over 30 requests; /dev/fuse carried INIT and
  // what the ring never carries (FORGET, INTERRUPT).
  auto [ring, dev] = served(log);
  EXPECT_GE(ring, 30) << log;
  EXPECT_GE(dev, 1) << log;
  EXPECT_LT(dev, ring) << log;
}

TEST(CgcorefsUring, DaemonFileNamesTheTransport) {
  SKIP_WITHOUT_FUSE();
  EnableUring on(true);
  SKIP_UNLESS_SET(on);
  if (std::string why = uring_unavailable(); !why.empty()) GTEST_SKIP() << "no FUSE over io_uring: " << why;
  {
    Mount m({"--layout", "v2", "--transport=uring"});  // host mode: .cgcore/daemon exists
    ASSERT_TRUE(m.ok()) << m.error();
    const std::string text = cat(m.path(".cgcore/daemon"));
    EXPECT_NE(text.find("\ntransport io_uring ("), std::string::npos) << text;
    EXPECT_NE(text.find("socket "), std::string::npos) << text;
  }
  Mount m({"--layout", "v2", "--transport=dev"});
  ASSERT_TRUE(m.ok()) << m.error();
  const std::string text = cat(m.path(".cgcore/daemon"));
  EXPECT_NE(text.find("\ntransport /dev/fuse (--transport=dev)\n"), std::string::npos) << text;
}

TEST(CgcorefsUring, UringTransportFailsWhereTheKernelDoesNotOfferIt) {
  SKIP_WITHOUT_FUSE();
  EnableUring off(false);
  SKIP_UNLESS_SET(off);
  char tmpl[] = "/tmp/cgcorefs-uring.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  std::string out;
  const int rc = sh(std::string(CGCOREFS_BINARY) + " --foreground --sim --transport=uring " + dir, &out);
  // Never mounted: nothing to unmount, and the directory is still ours.
  std::string mounted;
  sh("grep -c ' " + dir + " ' /proc/self/mountinfo", &mounted);
  EXPECT_EQ(mounted, "0\n");
  rmdir(dir.c_str());
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("--transport=uring: "), std::string::npos) << out;
  EXPECT_NE(out.find("enable_uring is N"), std::string::npos) << out;
}

// auto: the keeper's connection, which only /dev/fuse can serve across
// server restarts, even where the kernel offers the ring.
TEST(CgcorefsUring, AutoServesTheKeepersConnectionThroughDevFuse) {
  SKIP_WITHOUT_FUSE();
  EnableUring on(true);
  SKIP_UNLESS_SET(on);
  Mount m({"--sim", "--layout", "v2"});  // --transport=auto is the default
  ASSERT_TRUE(m.ok()) << m.error();
  ASSERT_EQ(mkdir(m.path("a").c_str(), 0755), 0) << std::strerror(errno);
  ASSERT_EQ(write_file(m.path("a/cgroup.procs"), "1"), 0);
  EXPECT_EQ(cat(m.path("a/cgroup.procs")), "1\n");
  std::optional<int> st = m.signal_and_wait(SIGTERM, 5s);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << *st;
  const std::string log = m.log();
  EXPECT_NE(log.find("transport /dev/fuse (a keeper's connection"), std::string::npos) << log;
  EXPECT_EQ(served(log).first, -1) << log;  // no ring was set up to count
}

TEST(CgcorefsUring, DevTransportIgnoresAnOfferedRing) {
  SKIP_WITHOUT_FUSE();
  EnableUring on(true);
  SKIP_UNLESS_SET(on);
  Mount m({"--sim", "--layout", "v2", "--transport=dev"});
  ASSERT_TRUE(m.ok()) << m.error();
  EXPECT_EQ(cat(m.path("cgroup.procs")), "1\n");
  std::optional<int> st = m.signal_and_wait(SIGTERM, 5s);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << *st;
  EXPECT_NE(m.log().find("transport /dev/fuse (--transport=dev)"), std::string::npos) << m.log();
}

}  // namespace
}  // namespace cgcore::fuse::testing
