// The controllers cgcore ships, registered in one call.
#pragma once

#include <functional>
#include <optional>

#include "controllers/cpuset.h"
#include "core/engine.h"

namespace cgcore {

class MemoryController;
class PidsController;
class NumtasksController;
class MemrlimitController;
class CpuController;
class CpuacctController;

struct BuiltinOptions {
  // The machine cpuset sees; default: the host's CPUs and nodes.
  std::optional<CpusetTopology> cpuset_topology;
  // Where cpuset sends each task's new effective sets (see
  // CpusetController::AffinitySink); default: nowhere (virtual tasks).
  CpusetController::AffinitySink affinity_sink;
  // Where cpu sends each task's nice level when its cgroup's weight
  // changes for it (see CpuController::NiceSink); default: nowhere.
  std::function<void(Pid tid, int nice)> nice_sink;
};

// The registered controllers, typed. The engine owns them; the pointers stay
// valid for the engine's lifetime.
struct BuiltinControllers {
  CpusetController* cpuset = nullptr;
  MemoryController* memory = nullptr;
  PidsController* pids = nullptr;
  NumtasksController* numtasks = nullptr;
  MemrlimitController* memrlimit = nullptr;
  CpuController* cpu = nullptr;
  CpuacctController* cpuacct = nullptr;
};

// Registers cpuset, cpu, cpuacct, memory, pids, numtasks and memrlimit, in
// that order, with `engine` (before any cgroup exists). The order is the
// kernel's subsystem order, cgcore's own controllers last: controller ids
// decide the order of /proc/cgroups, cgroup.controllers and the hybrid
// layout's hierarchy ids, and which controller's refusal a migration
// reports. cpu is given cpuacct, so that charged CPU time reaches both. Errors as
// Engine::register_controller (nothing is usable then: register on a fresh
// engine).
Result<BuiltinControllers> register_builtin_controllers(Engine& engine,
                                                        BuiltinOptions options = {});

}  // namespace cgcore
