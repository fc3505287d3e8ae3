#include "host/procfs.h"

#include <sys/syscall.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace cgcore::host {

namespace {

// Reads a whole (small) file; nullopt if it cannot be opened or read.
std::optional<std::string> slurp(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

template <typename T>
bool to_num(std::string_view s, T& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

// The numeric entries of a directory; nullopt if it cannot be opened.
std::optional<std::vector<Pid>> numeric_entries(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return std::nullopt;
  std::vector<Pid> out;
  while (dirent* e = ::readdir(d)) {
    Pid id;
    if (to_num(std::string_view(e->d_name), id) && id > 0) out.push_back(id);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::string_view next_field(std::string_view& rest) {
  size_t b = rest.find_first_not_of(" \t");
  if (b == std::string_view::npos) {
    rest = {};
    return {};
  }
  rest.remove_prefix(b);
  size_t e = rest.find_first_of(" \t");
  std::string_view f = rest.substr(0, e);
  rest.remove_prefix(e == std::string_view::npos ? rest.size() : e);
  return f;
}

uint64_t clock_ns(clockid_t id) {
  timespec ts{};
  ::clock_gettime(id, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// This process's time-namespace offsets (CONFIG_TIME_NS), in ns.
struct TimensOffsets {
  int64_t monotonic = 0;
  int64_t boottime = 0;
};
const TimensOffsets& timens_offsets() {
  static const TimensOffsets offsets = [] {
    TimensOffsets o;
    std::optional<std::string> text = slurp("/proc/self/timens_offsets");
    if (!text) return o;
    std::string_view rest = *text;
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
      std::string_view name = next_field(line);
      int64_t sec = 0, nsec = 0;
      if (!to_num(next_field(line), sec) || !to_num(next_field(line), nsec)) continue;
      const int64_t v = sec * 1000000000ll + nsec;
      if (name == "monotonic") o.monotonic = v;
      if (name == "boottime") o.boottime = v;
    }
    return o;
  }();
  return offsets;
}

}  // namespace

std::optional<ThreadStat> parse_stat(std::string_view text) {
  // "pid (comm) state ppid ..." — comm may hold spaces and parentheses, so
  // the fields start after the last ')'.
  size_t close = text.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  std::string_view rest = text.substr(close + 1);
  ThreadStat st;
  // Field 3 is the first after the comm.
  for (int field = 3; field <= 22; ++field) {
    std::string_view f = next_field(rest);
    if (f.empty()) return std::nullopt;
    switch (field) {
      case 3:
        st.state = f[0];
        break;
      case 4:
        if (!to_num(f, st.ppid)) return std::nullopt;
        break;
      case 9:
        if (!to_num(f, st.flags)) return std::nullopt;
        break;
      case 14:
        if (!to_num(f, st.utime)) return std::nullopt;
        break;
      case 15:
        if (!to_num(f, st.stime)) return std::nullopt;
        break;
      case 19:
        if (!to_num(f, st.nice)) return std::nullopt;
        break;
      case 22:
        if (!to_num(f, st.start)) return std::nullopt;
        break;
      default:
        break;
    }
  }
  return st;
}

std::optional<ProcStatus> parse_status(std::string_view text) {
  ProcStatus st;
  bool have_tgid = false, have_uid = false;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = line.substr(0, colon);
    std::string_view rest = line.substr(colon + 1);
    if (key == "Tgid") {
      have_tgid = to_num(next_field(rest), st.tgid);
    } else if (key == "PPid") {
      (void)to_num(next_field(rest), st.ppid);
    } else if (key == "Uid") {
      have_uid = to_num(next_field(rest), st.creds.uid) &&
                 to_num(next_field(rest), st.creds.euid) &&
                 to_num(next_field(rest), st.creds.suid);
    } else if (key == "Gid") {
      (void)(to_num(next_field(rest), st.creds.gid) && to_num(next_field(rest), st.creds.egid));
    } else if (key == "RssAnon" || key == "VmSize" || key == "VmSwap") {
      int64_t kb;
      int64_t& field = key == "RssAnon" ? st.rss_anon : key == "VmSize" ? st.vm_size : st.vm_swap;
      if (to_num(next_field(rest), kb)) field = kb * 1024;
    }
  }
  if (!have_tgid || !have_uid) return std::nullopt;
  return st;
}

ProcFs::ProcFs(std::string root) : root_(std::move(root)) {}

std::optional<ThreadStat> ProcFs::stat(Pid tid) const {
  std::optional<std::string> text = slurp(root_ + "/" + std::to_string(tid) + "/stat");
  return text ? parse_stat(*text) : std::nullopt;
}

std::optional<ThreadStat> ProcFs::thread_stat(Pid tgid, Pid tid) const {
  std::optional<std::string> text =
      slurp(root_ + "/" + std::to_string(tgid) + "/task/" + std::to_string(tid) + "/stat");
  return text ? parse_stat(*text) : std::nullopt;
}

std::optional<uint64_t> ProcFs::thread_runtime_ns(Pid tgid, Pid tid) const {
  std::optional<std::string> text =
      slurp(root_ + "/" + std::to_string(tgid) + "/task/" + std::to_string(tid) + "/schedstat");
  if (!text) return std::nullopt;
  std::string_view rest = *text;
  uint64_t ns;
  if (!to_num(next_field(rest), ns)) return std::nullopt;
  return ns;
}

std::optional<ProcStatus> ProcFs::status(Pid tid) const {
  std::optional<std::string> text = slurp(root_ + "/" + std::to_string(tid) + "/status");
  return text ? parse_status(*text) : std::nullopt;
}

std::optional<std::vector<Pid>> ProcFs::pids() const { return numeric_entries(root_); }

std::vector<Pid> ProcFs::tids(Pid tgid) const {
  return numeric_entries(root_ + "/" + std::to_string(tgid) + "/task").value_or(std::vector<Pid>{});
}

std::vector<Pid> ProcFs::children(Pid tgid) const {
  std::vector<Pid> out;
  for (Pid tid : tids(tgid)) {
    std::optional<std::string> text =
        slurp(root_ + "/" + std::to_string(tgid) + "/task/" + std::to_string(tid) + "/children");
    if (!text) continue;
    std::string_view rest(*text);
    while (!rest.empty()) {
      const size_t sp = rest.find(' ');
      Pid id;
      if (to_num(rest.substr(0, sp), id) && id > 0) out.push_back(id);
      if (sp == std::string_view::npos) break;
      rest.remove_prefix(sp + 1);
    }
  }
  return out;
}

bool ProcFs::in_fork_call(Pid tgid, Pid tid) const {
  std::optional<std::string> text =
      slurp(root_ + "/" + std::to_string(tgid) + "/task/" + std::to_string(tid) + "/syscall");
  if (!text) return false;
  // "NR ARGS... SP PC" while in a call, "running" or "-1 ..." otherwise.
  std::string_view v(*text);
  Pid nr;
  if (!to_num(v.substr(0, v.find(' ')), nr)) return false;
  return nr == SYS_clone || nr == SYS_clone3 || nr == SYS_fork || nr == SYS_vfork;
}

std::optional<ProcSnap> ProcFs::process(Pid tgid) const {
  std::optional<ThreadStat> leader = thread_stat(tgid, tgid);
  if (!leader) return std::nullopt;
  std::optional<ProcStatus> st = status(tgid);
  // A thread id is not a process: its status names another thread group.
  if (!st || st->tgid != tgid) return std::nullopt;
  ProcSnap p;
  p.tgid = tgid;
  p.ppid = leader->ppid;
  p.start = leader->start;
  p.flags = leader->flags;
  p.creds = st->creds;
  p.leader_dead = leader->dead();
  if (!p.leader_dead) p.threads.emplace_back(tgid, leader->start);
  for (Pid tid : tids(tgid)) {
    if (tid == tgid) continue;
    std::optional<ThreadStat> t = thread_stat(tgid, tid);
    if (t && !t->dead()) p.threads.emplace_back(tid, t->start);
  }
  if (p.threads.empty()) return std::nullopt;
  return p;
}

std::vector<Pid> parse_nspid(std::string_view text) {
  std::vector<Pid> out;
  size_t at = text.starts_with("NSpid:") ? 0 : text.find("\nNSpid:");
  if (at == std::string_view::npos) return out;
  std::string_view line = text.substr(at + (at == 0 ? 6 : 7));
  line = line.substr(0, line.find('\n'));
  for (std::string_view f = next_field(line); !f.empty(); f = next_field(line)) {
    Pid id;
    if (!to_num(f, id)) return {};
    out.push_back(id);
  }
  return out;
}

std::vector<Pid> ProcFs::nspid(Pid tid) const {
  std::optional<std::string> text = slurp(root_ + "/" + std::to_string(tid) + "/status");
  return text ? parse_nspid(*text) : std::vector<Pid>{};
}

bool in_initial_pid_namespace() {
  std::optional<std::string> text = slurp("/proc/self/status");
  if (!text) return true;
  size_t at = text->find("\nNSpid:");
  if (at == std::string::npos) return true;
  std::string_view line = std::string_view(*text).substr(at + 7);
  line = line.substr(0, line.find('\n'));
  int fields = 0;
  while (!next_field(line).empty()) ++fields;
  return fields <= 1;
}

uint64_t event_clock_ns() {
  return clock_ns(CLOCK_MONOTONIC) - static_cast<uint64_t>(timens_offsets().monotonic);
}

uint64_t tick_ns() {
  static const uint64_t ns = [] {
    long hz = ::sysconf(_SC_CLK_TCK);
    return 1000000000ull / static_cast<uint64_t>(hz > 0 ? hz : 100);
  }();
  return ns;
}

uint64_t start_to_event_clock_ns(uint64_t start_ticks) {
  // /proc shows start_boottime (+ this namespace's boottime offset), which
  // runs ahead of the event clock by the time spent suspended; the offset
  // is taken now, so it is at least what it was when the task started.
  const uint64_t boot_now = clock_ns(CLOCK_BOOTTIME);
  const uint64_t mono_now = event_clock_ns();
  const uint64_t ahead = boot_now > mono_now ? boot_now - mono_now : 0;
  const uint64_t start_ns = start_ticks * tick_ns();
  return start_ns > ahead ? start_ns - ahead : 0;
}

uint64_t ProcFs::pidfs_ino(Pid pid) const {
  if (!is_host() || pid <= 0) return 0;
  // PIDFD_THREAD (O_EXCL) names a thread id too; a process id works either way.
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, O_EXCL));
  if (fd < 0) fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return 0;
  struct stat st{};
  const int rc = ::fstat(fd, &st);
  ::close(fd);
  return rc == 0 ? static_cast<uint64_t>(st.st_ino) : 0;
}

}  // namespace cgcore::host
