#include "fs/backend.h"

namespace cgcore::fs {

std::shared_ptr<const PidNamespace> Backend::pid_namespace(const Caller&) { return nullptr; }

void Backend::add_new_threads(Pid) {}

std::optional<TaskIdentity> Backend::identity(Pid) { return std::nullopt; }

void Backend::settle_exits(std::span<const Pid>) {}

Result<Backend::EventFds> Backend::take_event_fds(const Caller&, int efd, int) {
  return Status::Error(EBADF, "no descriptor " + std::to_string(efd) + " exists for virtual tasks");
}

void VirtualBackend::kill_processes(std::span<const Pid> tgids) {
  // A process that exited meanwhile is simply gone: ESRCH is not an error.
  for (Pid p : tgids) (void)engine_.exit_process(p);
}

void VirtualBackend::release(const std::string& agent, const std::string& cgroup_path) {
  if (on_release_) {
    on_release_(agent, cgroup_path);
    return;
  }
  MutexLock lock(mu_);
  released_.emplace_back(agent, cgroup_path);
}

std::vector<std::pair<std::string, std::string>> VirtualBackend::released() const {
  MutexLock lock(mu_);
  return released_;
}

}  // namespace cgcore::fs
