#include "tools/cgctl/cgdir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace cgcore::cgctl {
namespace {

bool exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// Entries of `dir` that are real directories (or, with `files`, regular
// files), sorted; dot entries left out.
std::vector<std::string> entries(const std::string& dir, bool files) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name.empty() || name[0] == '.') continue;
    struct stat st{};
    // lstat: a symbolic link is neither (the kernel's cpu -> cpu,cpuacct
    // would list a hierarchy twice).
    if (lstat((dir + "/" + name).c_str(), &st) != 0) continue;
    if (files ? S_ISREG(st.st_mode) : S_ISDIR(st.st_mode)) out.push_back(name);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::vector<Hierarchy> find_hierarchies(const std::string& mount, std::string* error) {
  std::vector<Hierarchy> out;
  struct stat st{};
  if (stat(mount.c_str(), &st) != 0) {
    *error = mount + ": " + std::strerror(errno);
    return out;
  }
  if (!S_ISDIR(st.st_mode)) {
    *error = mount + ": not a directory";
    return out;
  }
  if (exists(mount + "/cgroup.procs")) {
    out.push_back({"", mount, exists(mount + "/cgroup.controllers")});
    return out;
  }
  for (const std::string& name : entries(mount, false)) {
    std::string dir = mount + "/" + name;
    if (exists(dir + "/cgroup.procs")) out.push_back({name, dir, exists(dir + "/cgroup.controllers")});
  }
  if (out.empty()) *error = mount + ": no cgroup hierarchy there (no cgroup.procs in it or in its subdirectories)";
  return out;
}

std::optional<std::string> read_file(const std::string& path, int* err) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (err) *err = errno;
    return std::nullopt;
  }
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      if (err) *err = errno;
      close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

int write_file(const std::string& path, const std::string& data) {
  // O_TRUNC as the shell's `>` does: cgroupfs ignores it, a plain file (a
  // fabricated tree) needs it.
  int fd = open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n;
  do n = write(fd, data.data(), data.size());
  while (n < 0 && errno == EINTR);
  int e = n < 0 ? errno : (static_cast<size_t>(n) != data.size() ? EIO : 0);
  if (close(fd) != 0 && e == 0) e = errno;
  return e;
}

std::vector<std::string> child_cgroups(const std::string& dir) { return entries(dir, false); }

std::vector<std::string> files_of(const std::string& dir) { return entries(dir, true); }

std::vector<long> read_pids(const std::string& path) {
  std::vector<long> out;
  std::optional<std::string> text = read_file(path);
  if (!text) return out;
  const char* p = text->c_str();
  while (*p) {
    char* end = nullptr;
    long v = std::strtol(p, &end, 10);
    if (end == p) {
      ++p;
      continue;
    }
    out.push_back(v);
    p = end;
  }
  return out;
}

std::string command_line(const std::string& proc_root, long pid) {
  const std::string base = proc_root + "/" + std::to_string(pid);
  std::optional<std::string> raw = read_file(base + "/cmdline");
  if (!raw) return "";
  while (!raw->empty() && raw->back() == '\0') raw->pop_back();
  if (raw->empty()) {
    std::optional<std::string> comm = read_file(base + "/comm");
    return comm ? "[" + chomp(*comm) + "]" : "";
  }
  std::replace(raw->begin(), raw->end(), '\0', ' ');
  return *raw;
}

std::string chomp(std::string text) {
  if (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

}  // namespace cgcore::cgctl
