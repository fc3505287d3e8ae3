#include "journal/stopped.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>

namespace cgcore::journal {

StoppedRecord::~StoppedRecord() {
  if (fd_ >= 0) ::close(fd_);
}

std::vector<std::pair<Pid, uint64_t>> StoppedRecord::load() const {
  std::map<std::pair<Pid, uint64_t>, bool> state;
  if (FILE* f = std::fopen(path_.c_str(), "re")) {
    char op;
    long pid;
    unsigned long long start;
    while (std::fscanf(f, " %c %ld %llu", &op, &pid, &start) == 3)
      state[{static_cast<Pid>(pid), start}] = op == '+';
    std::fclose(f);
  }
  std::vector<std::pair<Pid, uint64_t>> out;
  for (const auto& [id, stopped] : state)
    if (stopped) out.push_back(id);
  return out;
}

Status StoppedRecord::rewrite(const std::vector<std::pair<Pid, uint64_t>>& stopped) {
  const std::string tmp = path_ + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Error(errno, tmp + ": " + std::strerror(errno));
  std::string text;
  for (const auto& [pid, start] : stopped) text += "+ " + std::to_string(pid) + " " + std::to_string(start) + "\n";
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path_.c_str()) != 0)
    return Status::Error(errno ? errno : EIO, path_ + ": " + std::strerror(errno));
  const int afd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (afd < 0) return Status::Error(errno, path_ + ": " + std::strerror(errno));
  if (fd_ >= 0) ::close(fd_);
  fd_ = afd;
  return Status::Ok();
}

void StoppedRecord::note(Pid pid, uint64_t start, bool stopped) {
  if (fd_ < 0) return;
  char line[64];
  const int n = std::snprintf(line, sizeof line, "%c %d %llu\n", stopped ? '+' : '-', static_cast<int>(pid),
                              static_cast<unsigned long long>(start));
  if (::write(fd_, line, static_cast<size_t>(n)) < 0) {}
}

}  // namespace cgcore::journal
