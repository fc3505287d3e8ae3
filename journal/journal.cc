#include "journal/journal.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <tuple>
#include <unordered_map>

namespace cgcore::journal {

namespace {

constexpr uint32_t kMaxRecord = 1 << 20;

// CRC-32 (IEEE 802.3 polynomial, reflected), table-driven.
uint32_t crc32(std::string_view data) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) c = table[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

void put32(std::string& s, uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); }
void put64(std::string& s, uint64_t v) { s.append(reinterpret_cast<const char*>(&v), 8); }
void put_str(std::string& s, std::string_view v) {
  put32(s, static_cast<uint32_t>(v.size()));
  s.append(v);
}

struct Reader {
  std::string_view in;
  bool ok = true;
  uint32_t u32() {
    uint32_t v = 0;
    if (in.size() < 4) return ok = false, 0;
    std::memcpy(&v, in.data(), 4);
    in.remove_prefix(4);
    return v;
  }
  uint64_t u64() {
    uint64_t v = 0;
    if (in.size() < 8) return ok = false, 0;
    std::memcpy(&v, in.data(), 8);
    in.remove_prefix(8);
    return v;
  }
  std::string str() {
    const uint32_t n = u32();
    if (!ok || in.size() < n) return ok = false, std::string();
    std::string v(in.substr(0, n));
    in.remove_prefix(n);
    return v;
  }
};

uint64_t boottime_ns() {
  struct timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t tick_ns() {
  static const uint64_t ns = 1000000000ull / static_cast<uint64_t>(sysconf(_SC_CLK_TCK));
  return ns;
}

bool under(std::string_view path, std::string_view dir) {
  return path == dir || (path.size() > dir.size() && path.starts_with(dir) && path[dir.size()] == '/');
}

std::string parent_of(std::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == 0 || slash == std::string_view::npos ? std::string("") : std::string(path.substr(0, slash));
}

Status write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Error(errno, std::string("journal: ") + std::strerror(errno));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

Pid tgid_of(Pid pid) {
  FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/status").c_str(), "re");
  if (!f) return 0;
  char line[256];
  Pid tgid = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, "Tgid:", 5) == 0) {
      tgid = static_cast<Pid>(std::strtol(line + 5, nullptr, 10));
      break;
    }
  std::fclose(f);
  return tgid;
}

}  // namespace

std::optional<ProcStat> proc_stat(Pid pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[1024];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  buf[n] = '\0';
  const char* p = std::strrchr(buf, ')');
  if (!p) return std::nullopt;
  // After ") ": field 3 (state) onwards.
  ProcStat st;
  int field = 3;
  for (const char* q = p + 2; *q && field <= 22; ++field) {
    char* end = nullptr;
    if (field == 3) {
      if (*q == 'Z' || *q == 'X') return std::nullopt;  // exited
      q += 2;
      continue;
    }
    const unsigned long long v = std::strtoull(q, &end, 10);
    if (field == 4) st.ppid = static_cast<Pid>(v);
    if (field == 22) st.start = v;
    q = *end ? end + 1 : end;
  }
  return st;
}

uint64_t pidfs_ino(Pid pid) {
  // PIDFD_THREAD (O_EXCL, Linux 6.9) for a thread id; a process id works
  // either way.
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, O_EXCL));
  if (fd < 0) fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return 0;
  struct stat st{};
  const int rc = ::fstat(fd, &st);
  ::close(fd);
  return rc == 0 ? static_cast<uint64_t>(st.st_ino) : 0;
}

namespace {
// Whether the task `pid` now is the one a record names.
bool same_task(Pid pid, uint64_t start, uint64_t ino) {
  std::optional<ProcStat> now = proc_stat(pid);
  if (!now || now->start != start) return false;
  if (ino == 0) return true;
  return pidfs_ino(pid) == ino;
}
}  // namespace

std::string encode(const Record& r) {
  std::string payload;
  payload.push_back(static_cast<char>(r.type));
  put_str(payload, r.path);
  put_str(payload, r.text);
  put_str(payload, r.file);
  put32(payload, r.mode);
  put32(payload, r.uid);
  put32(payload, r.gid);
  put64(payload, static_cast<uint64_t>(r.pid));
  put64(payload, r.start);
  put64(payload, r.stamp);
  put64(payload, r.ino);
  put64(payload, r.id);
  put64(payload, r.request);
  std::string out;
  put32(out, static_cast<uint32_t>(payload.size()));
  put32(out, crc32(payload));
  out += payload;
  return out;
}

std::vector<Record> decode(std::string_view bytes, size_t* valid) {
  std::vector<Record> out;
  size_t pos = 0;
  while (bytes.size() - pos >= 8) {
    uint32_t len, crc;
    std::memcpy(&len, bytes.data() + pos, 4);
    std::memcpy(&crc, bytes.data() + pos + 4, 4);
    if (len == 0 || len > kMaxRecord || bytes.size() - pos - 8 < len) break;
    std::string_view payload = bytes.substr(pos + 8, len);
    if (crc32(payload) != crc) break;
    Reader rd{payload.substr(1)};
    Record r;
    r.type = static_cast<Record::Type>(payload[0]);
    r.path = rd.str();
    r.text = rd.str();
    r.file = rd.str();
    r.mode = rd.u32();
    r.uid = rd.u32();
    r.gid = rd.u32();
    r.pid = static_cast<Pid>(rd.u64());
    r.start = rd.u64();
    r.stamp = rd.u64();
    r.ino = rd.u64();
    r.id = rd.u64();
    r.request = rd.u64();
    if (!rd.ok) break;
    out.push_back(std::move(r));
    pos += 8 + len;
  }
  if (valid) *valid = pos;
  return out;
}

bool is_membership_file(std::string_view file) {
  return file == "cgroup.procs" || file == "tasks" || file == "cgroup.threads";
}
bool is_action_file(std::string_view file) {
  return file == "cgroup.kill" || file == "memory.force_empty" || file == "memory.reclaim";
}

std::vector<Record> compact(const std::vector<Record>& records) {
  std::vector<Record> out;
  std::vector<bool> dead;
  auto kill_if = [&](auto pred) {
    for (size_t i = 0; i < out.size(); ++i)
      if (!dead[i] && pred(out[i])) dead[i] = true;
  };
  for (const Record& r : records) {
    switch (r.type) {
      case Record::Type::kHeader:
        continue;  // the caller writes its own
      case Record::Type::kRmdir:
        kill_if([&](const Record& o) { return under(o.path, r.path); });
        continue;
      case Record::Type::kRename: {
        const std::string to = parent_of(r.path) + "/" + r.text;
        for (size_t i = 0; i < out.size(); ++i)
          if (!dead[i] && under(out[i].path, r.path)) out[i].path = to + out[i].path.substr(r.path.size());
        continue;
      }
      case Record::Type::kChmod:
      case Record::Type::kChown:
        kill_if([&](const Record& o) { return o.type == r.type && o.path == r.path; });
        break;
      case Record::Type::kWrite:
        if (is_membership_file(r.file) || is_action_file(r.file)) continue;
        // subtree_control's writes are changes (+x -y), not values: all kept.
        if (r.file != "cgroup.subtree_control")
          kill_if([&](const Record& o) { return o.type == Record::Type::kWrite && o.path == r.path; });
        break;
      case Record::Type::kMkdir:
        break;
    }
    out.push_back(r);
    dead.push_back(false);
  }
  std::vector<Record> kept;
  for (size_t i = 0; i < out.size(); ++i)
    if (!dead[i]) kept.push_back(std::move(out[i]));
  return kept;
}

// ------------------------------------------------------------ Journal

Result<std::unique_ptr<Journal>> Journal::open(const std::string& dir, LogFn log) {
  // mkdir -p, private.
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    const std::string part = dir.substr(0, pos);
    if (::mkdir(part.c_str(), 0700) != 0 && errno != EEXIST)
      return Status::Error(errno, dir + ": " + std::strerror(errno));
  }
  std::unique_ptr<Journal> j(new Journal(dir, std::move(log)));
  const std::string path = dir + "/journal";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno != ENOENT) return Status::Error(errno, path + ": " + std::strerror(errno));
  if (fd >= 0) {
    std::string bytes;
    char buf[1 << 16];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) bytes.append(buf, static_cast<size_t>(n));
    ::close(fd);
    size_t valid = 0;
    j->loaded_ = decode(bytes, &valid);
    j->torn_ = valid != bytes.size();
    if (j->loaded_.empty() || j->loaded_[0].type != Record::Type::kHeader) j->loaded_.clear();
    for (const Record& r : j->loaded_)
      if (r.request) j->applied_.insert(r.request);
  }
  return j;
}

Journal::~Journal() { stop(); }

std::string Journal::recorded_layout() const { return loaded_.empty() ? "" : loaded_[0].path; }

RestoreStats Journal::restore(fs::CgroupFs& fs) {
  RestoreStats stats;
  stats.torn = torn_;
  const fs::Caller admin;
  // A membership record resolved to the directory it named then.
  struct Placement {
    uint64_t stamp;
    fs::Ino dir;
  };
  // By hierarchy (the path's first component, "" for a v2 root) and
  // identity (pid, start).
  struct Identity {
    Pid pid;
    uint64_t start, ino;
    bool operator<(const Identity& o) const {
      return std::tie(pid, start, ino) < std::tie(o.pid, o.start, o.ino);
    }
  };
  std::map<std::pair<std::string, Identity>, std::vector<Placement>> placements;
  auto hierarchy_key = [&](std::string_view path) -> std::string {
    if (fs.layout().root_hierarchy) return "";
    const size_t end = path.find('/', 1);
    return std::string(path.substr(1, end == std::string_view::npos ? end : end - 1));
  };
  auto fail = [&](const Record& r, const Status& st) {
    if (++stats.failed <= 5) log_("journal: replaying " + r.path + ": " + st.message());
  };
  for (size_t i = 1; i < loaded_.size(); ++i) {
    const Record& r = loaded_[i];
    const std::string parent = parent_of(r.path);
    const std::string name = r.path.substr(r.path.rfind('/') + 1);
    Status st;
    switch (r.type) {
      case Record::Type::kHeader:
        continue;
      case Record::Type::kMkdir: {
        Result<fs::Ino> dir = fs.resolve(parent.empty() ? "/" : parent);
        if (!dir.ok()) {
          st = dir.status();
          break;
        }
        if (r.id) fs.advance_cgroup_ids(r.id);
        fs::Caller creator{.uid = r.uid, .gid = r.gid};
        Result<fs::Attr> made = fs.mkdir(*dir, name, r.mode, creator);
        // The creator's supplementary groups are not recorded: made by the
        // mounter's authority then given to the creator.
        if (!made.ok() && made.err() == EACCES) {
          if (r.id) fs.advance_cgroup_ids(r.id);
          made = fs.mkdir(*dir, name, r.mode, admin);
          if (made.ok()) st = fs.chown(made->ino, r.uid, r.gid, admin);
        }
        if (!made.ok()) st = made.status();
        break;
      }
      case Record::Type::kRmdir: {
        Result<fs::Ino> dir = fs.resolve(parent.empty() ? "/" : parent);
        st = dir.ok() ? fs.rmdir(*dir, name, admin) : dir.status();
        break;
      }
      case Record::Type::kRename: {
        Result<fs::Ino> dir = fs.resolve(parent.empty() ? "/" : parent);
        st = dir.ok() ? fs.rename(*dir, name, *dir, r.text, admin) : dir.status();
        break;
      }
      case Record::Type::kChmod:
      case Record::Type::kChown: {
        Result<fs::Ino> ino = fs.resolve(r.path);
        if (!ino.ok()) st = ino.status();
        else if (r.type == Record::Type::kChmod) st = fs.chmod(*ino, r.mode, admin);
        else st = fs.chown(*ino, r.uid, r.gid, admin);
        break;
      }
      case Record::Type::kWrite: {
        if (is_action_file(r.file)) continue;
        if (is_membership_file(r.file)) {
          Result<fs::Ino> dir = fs.resolve(parent.empty() ? "/" : parent);
          if (!dir.ok()) {
            st = dir.status();
            break;
          }
          placements[{hierarchy_key(r.path), Identity{r.pid, r.start, r.ino}}].push_back({r.stamp, *dir});
          continue;
        }
        st = fs.write_path(r.path, r.text, admin);
        break;
      }
    }
    ++stats.records;
    if (!st.ok()) fail(r, st);
  }

  // The live processes, from /proc.
  std::unordered_map<Pid, ProcStat> live;
  if (DIR* d = ::opendir("/proc")) {
    while (struct dirent* e = ::readdir(d)) {
      char* end = nullptr;
      const long pid = std::strtol(e->d_name, &end, 10);
      if (pid <= 0 || *end) continue;
      if (std::optional<ProcStat> st = proc_stat(static_cast<Pid>(pid))) live[static_cast<Pid>(pid)] = *st;
    }
    ::closedir(d);
  }
  // Records of identities that no longer exist (exited, or the pid now
  // someone else's) place nothing. A record naming a thread places its
  // process.
  std::map<std::pair<std::string, Pid>, std::vector<Placement>> by_process;
  for (auto& [key, list] : placements) {
    const auto& [hier, id] = key;
    if (!same_task(id.pid, id.start, id.ino)) {
      ++stats.gone;
      continue;
    }
    const Pid tgid = tgid_of(id.pid);
    if (tgid <= 0 || !live.count(tgid)) continue;
    auto& v = by_process[{hier, tgid}];
    v.insert(v.end(), list.begin(), list.end());
  }
  for (auto& [key, v] : by_process)
    std::stable_sort(v.begin(), v.end(), [](const Placement& a, const Placement& b) { return a.stamp < b.stamp; });
  std::vector<std::string> hierarchies;
  for (const auto& [key, v] : by_process)
    if (hierarchies.empty() || hierarchies.back() != key.first) hierarchies.push_back(key.first);

  // Where `pid` was at boot time `t` (ns) in `hier`: its last record up to
  // t, else its parent's as of its own start (a fork inherits), else the
  // root (0). A record in the same clock tick as a fork counts as before
  // it: start times have a tick's resolution, and a process that moves
  // itself and forks at once is the common case.
  std::function<fs::Ino(const std::string&, Pid, uint64_t, int)> where =
      [&](const std::string& hier, Pid pid, uint64_t t, int depth) -> fs::Ino {
    auto it = live.find(pid);
    if (it == live.end() || depth > 4096) return 0;
    if (auto p = by_process.find({hier, pid}); p != by_process.end()) {
      fs::Ino found = 0;
      for (const Placement& pl : p->second)
        if (pl.stamp <= t) found = pl.dir;
      if (found) return found;
    }
    const ProcStat& self = it->second;
    auto parent = live.find(self.ppid);
    if (self.ppid <= 0 || parent == live.end() || parent->second.start > self.start) return 0;
    return where(hier, self.ppid, (self.start + 1) * tick_ns() - 1, depth + 1);
  };

  // Parents before children, so that a fork during the placement follows.
  std::vector<std::pair<uint64_t, Pid>> order;
  for (const auto& [pid, st] : live)
    if (tgid_of(pid) == pid) order.push_back({st.start, pid});
  std::sort(order.begin(), order.end());
  const uint64_t now = boottime_ns();
  for (const std::string& hier : hierarchies) {
    for (const auto& [start, pid] : order) {
      const fs::Ino dir = where(hier, pid, now, 0);
      if (dir == 0) continue;
      Result<fs::Attr> procs = fs.lookup(dir, "cgroup.procs");
      if (!procs.ok()) continue;
      Result<std::unique_ptr<fs::OpenFile>> f = fs.open(procs->ino, false, true, admin);
      if (!f.ok()) continue;
      if (Result<size_t> n = fs.write(**f, std::to_string(pid)); n.ok()) ++stats.placed;
    }
  }
  return stats;
}

std::vector<Record> Journal::snapshot(uint64_t stamp) {
  std::vector<Record> out;
  const fs::Caller admin;
  // Every cgroup below each hierarchy root, by path.
  std::vector<std::pair<std::string, fs::Ino>> stack{{"", fs::kRootIno}};
  while (!stack.empty()) {
    auto [path, ino] = stack.back();
    stack.pop_back();
    Result<std::vector<fs::DirEntry>> entries = fs_->readdir(ino, admin);
    if (!entries.ok()) continue;
    bool is_cgroup = false;
    for (const fs::DirEntry& e : *entries) {
      if (e.type == fs::NodeType::kDir) stack.push_back({path + "/" + e.name, e.ino});
      else if (e.name == "cgroup.procs") is_cgroup = true;
    }
    if (!is_cgroup) continue;
    // A hierarchy root: its members are where a restore leaves them anyway.
    const bool root = fs_->layout().root_hierarchy ? path.empty()
                                                    : path.find('/', 1) == std::string::npos;
    if (root) continue;
    Result<std::string> procs = fs_->read_path(path + "/cgroup.procs", admin);
    if (!procs.ok()) continue;
    size_t pos = 0;
    while (pos < procs->size()) {
      size_t nl = procs->find('\n', pos);
      if (nl == std::string::npos) nl = procs->size();
      const Pid pid = static_cast<Pid>(std::strtol(procs->c_str() + pos, nullptr, 10));
      pos = nl + 1;
      if (pid <= 0) continue;
      std::optional<ProcStat> st = proc_stat(pid);
      if (!st) continue;
      Record r;
      r.type = Record::Type::kWrite;
      r.path = path + "/cgroup.procs";
      r.file = "cgroup.procs";
      r.text = std::to_string(pid);
      r.pid = pid;
      r.start = st->start;
      r.stamp = stamp;
      r.ino = pidfs_ino(pid);
      out.push_back(std::move(r));
    }
  }
  return out;
}

Status Journal::start(fs::CgroupFs& fs, const std::string& layout) {
  fs_ = &fs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Record h;
    h.type = Record::Type::kHeader;
    h.path = layout;
    records_ = {h};
    for (size_t i = 1; i < loaded_.size(); ++i) records_.push_back(loaded_[i]);
  }
  if (Status st = compact_to_disk(); !st.ok()) return st;
  fs.set_change_log(this);
  compactor_ = std::thread([this] { compactor_main(); });
  return Status::Ok();
}

void Journal::stop() {
  if (fs_) fs_->set_change_log(nullptr);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (compactor_.joinable()) compactor_.join();
  fs_ = nullptr;  // the fs may go now; a second stop (the destructor's) leaves it alone
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void Journal::record(const fs::Change& c) {
  Record r;
  switch (c.kind) {
    case fs::Change::Kind::kMkdir: r.type = Record::Type::kMkdir; break;
    case fs::Change::Kind::kRmdir: r.type = Record::Type::kRmdir; break;
    case fs::Change::Kind::kRename: r.type = Record::Type::kRename; break;
    case fs::Change::Kind::kChmod: r.type = Record::Type::kChmod; break;
    case fs::Change::Kind::kChown: r.type = Record::Type::kChown; break;
    case fs::Change::Kind::kWrite: r.type = Record::Type::kWrite; break;
  }
  if (r.type == Record::Type::kWrite && is_action_file(c.file)) return;
  r.path = c.path;
  r.text = c.text;
  r.file = c.file;
  r.mode = c.mode;
  r.uid = c.uid;
  r.gid = c.gid;
  r.id = c.id;
  r.request = fs::current_request;
  if (r.type == Record::Type::kWrite && is_membership_file(c.file)) {
    r.pid = c.pid;
    r.stamp = boottime_ns();
    if (c.identity) {
      // The identity of the task the fs moved, as the backend knew it: no
      // /proc read (two lookups would cost more than the rest of the write).
      r.start = c.identity->start;
      r.ino = c.identity->ino;
    } else {
      std::optional<ProcStat> st = proc_stat(c.pid);
      if (!st) return;  // gone already: nothing to place
      r.start = st->start;
      r.ino = pidfs_ino(c.pid);
    }
  }
  const std::string bytes = encode(r);
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ < 0) return;
  if (Status st = write_all(fd_, bytes); !st.ok()) log_(st.message());
  bytes_ += bytes.size();
  records_.push_back(std::move(r));
  appended_.fetch_add(1);
  // Compaction once the file has doubled since the last one (and holds
  // more than a little).
  if (bytes_ > 64 * 1024 && bytes_ > 2 * compacted_bytes_) cv_.notify_all();
}

void Journal::compact_now() { (void)compact_to_disk(); }

Status Journal::compact_to_disk() {
  std::lock_guard<std::mutex> one(compact_mu_);
  std::vector<Record> prefix;
  size_t mark;
  const uint64_t stamp = boottime_ns();
  {
    std::lock_guard<std::mutex> lock(mu_);
    prefix = records_;
    mark = records_.size();
  }
  std::vector<Record> out;
  out.push_back(prefix.empty() ? Record{} : prefix[0]);
  for (Record& r : compact(prefix)) out.push_back(std::move(r));
  // The memberships now, taken with no journal lock (the fs takes the
  // cgroup mutex, under which record() takes ours).
  std::vector<Record> members = fs_ ? snapshot(stamp) : std::vector<Record>{};
  std::string bytes;
  for (const Record& r : out) bytes += encode(r);
  const std::string path = dir_ + "/journal", tmp = dir_ + "/journal.tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Error(errno, tmp + ": " + std::strerror(errno));
  if (Status st = write_all(fd, bytes); !st.ok()) {
    ::close(fd);
    return st;
  }
  std::lock_guard<std::mutex> lock(mu_);
  // What was appended meanwhile follows, then the snapshot: restore orders
  // memberships by their stamps, not by their place in the file.
  std::string tail;
  std::vector<Record> records = std::move(out);
  for (size_t i = mark; i < records_.size(); ++i) {
    tail += encode(records_[i]);
    records.push_back(records_[i]);
  }
  for (Record& r : members) {
    tail += encode(r);
    records.push_back(std::move(r));
  }
  if (Status st = write_all(fd, tail); !st.ok()) {
    ::close(fd);
    return st;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::close(fd);
    return Status::Error(e, path + ": " + std::strerror(e));
  }
  const int afd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  ::close(fd);
  if (afd < 0) return Status::Error(errno, path + ": " + std::strerror(errno));
  if (fd_ >= 0) ::close(fd_);
  fd_ = afd;
  records_ = std::move(records);
  bytes_ = compacted_bytes_ = bytes.size() + tail.size();
  return Status::Ok();
}

void Journal::compactor_main() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || (bytes_ > 64 * 1024 && bytes_ > 2 * compacted_bytes_); });
    if (stopping_) return;
    lock.unlock();
    if (Status st = compact_to_disk(); !st.ok()) log_("journal: compaction: " + st.message());
    lock.lock();
  }
}

}  // namespace cgcore::journal
