#include "host/pid_namespace.h"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "core/locking.h"

namespace cgcore::host {

namespace {

std::string ns_path(const ProcFs& proc, const std::string& who) { return proc.root() + "/" + who + "/ns/pid"; }

std::optional<NsId> ns_at(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return NsId{st.st_dev, st.st_ino};
}

// A caller's namespace other than the daemon's: `ns` at index `level` of
// every NSpid line.
class CallerNamespace final : public fs::PidNamespace {
 public:
  CallerNamespace(const ProcFs& proc, std::optional<NsId> own, std::optional<NsId> ns, size_t level)
      : proc_(proc), own_(own), ns_(ns), level_(level) {}

  Result<Pid> from_caller(Pid pid) const override {
    if (!ns_ || pid <= 0) return Status::Error(ESRCH, "no such process in the writer's pid namespace");
    std::optional<std::vector<Pid>> procs = proc_.pids();
    if (!procs) return Status::Error(ESRCH, "no such process in the writer's pid namespace");
    // Processes first, then the threads of the processes the caller sees
    // (threads share their process's namespace).
    std::vector<Pid> seen;
    for (Pid p : *procs) {
      // A process in the daemon's own namespace is in no child namespace.
      if (own_ && ns_at(ns_path(proc_, std::to_string(p))) == own_) continue;
      const std::vector<Pid> ids = proc_.nspid(p);
      if (!visible(p, ids)) continue;
      if (ids[level_] == pid) return p;
      seen.push_back(p);
    }
    for (Pid p : seen)
      for (Pid t : proc_.tids(p)) {
        if (t == p) continue;
        const std::vector<Pid> ids = proc_.nspid(t);
        if (ids.size() > level_ && ids[level_] == pid && visible(t, ids)) return t;
      }
    return Status::Error(ESRCH, "no such process in the writer's pid namespace");
  }

  void to_caller(std::span<Pid> ids) const override {
    for (Pid& id : ids) {
      if (!ns_ || id <= 0) {
        id = 0;
        continue;
      }
      const std::vector<Pid> chain = proc_.nspid(id);
      id = visible(id, chain) ? chain[level_] : 0;
    }
  }

 private:
  // Whether task `tid`, whose NSpid is `ids`, lives in the caller's
  // namespace or below it.
  bool visible(Pid tid, const std::vector<Pid>& ids) const {
    if (ids.size() <= level_ || ids.front() != tid) return false;
    const std::optional<NsId> own = ns_at(ns_path(proc_, std::to_string(tid)));
    if (!own) return false;
    if (ids.size() == level_ + 1) return own == ns_;
    {
      MutexLock l(mu_);
      if (auto it = below_.find({own->dev, own->ino}); it != below_.end()) return it->second;
    }
    const bool in = ancestor_is_caller(tid, ids.size() - 1 - level_);
    MutexLock l(mu_);
    below_[{own->dev, own->ino}] = in;
    return in;
  }

  // Whether the namespace `up` levels above task `tid`'s is the caller's.
  bool ancestor_is_caller(Pid tid, size_t up) const {
    int fd = ::open(ns_path(proc_, std::to_string(tid)).c_str(), O_RDONLY | O_CLOEXEC);
    for (size_t i = 0; fd >= 0 && i < up; ++i) {
      const int parent = ::ioctl(fd, NS_GET_PARENT);
      ::close(fd);
      fd = parent;
    }
    if (fd < 0) return false;
    struct stat st;
    const bool same = ::fstat(fd, &st) == 0 && NsId{st.st_dev, st.st_ino} == ns_;
    ::close(fd);
    return same;
  }

  const ProcFs& proc_;
  const std::optional<NsId> own_;
  const std::optional<NsId> ns_;  // none: the caller's namespace is unknown, it sees nothing
  const size_t level_;
  // Namespaces deeper than the caller's, by nsfs identity: whether they
  // lie below it. A leaf lock.
  mutable Mutex mu_;
  mutable std::map<std::pair<dev_t, ino_t>, bool> below_ CG_GUARDED_BY(mu_);
};

}  // namespace

std::optional<NsId> pid_ns_of(const ProcFs& proc, Pid tid) { return ns_at(ns_path(proc, std::to_string(tid))); }

PidNamespaces::PidNamespaces(const ProcFs& proc) : proc_(proc), own_(ns_at(ns_path(proc, "self"))) {}

std::shared_ptr<const fs::PidNamespace> PidNamespaces::of(Pid caller) const {
  if (!own_ || caller <= 0) return nullptr;
  const std::optional<NsId> ns = pid_ns_of(proc_, caller);
  if (ns == own_) return nullptr;
  const std::vector<Pid> ids = proc_.nspid(caller);
  if (!ns || ids.empty() || ids.front() != caller)
    return std::make_shared<CallerNamespace>(proc_, own_, std::nullopt, 0);
  return std::make_shared<CallerNamespace>(proc_, own_, ns, ids.size() - 1);
}

}  // namespace cgcore::host
