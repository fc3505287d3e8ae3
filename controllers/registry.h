// The controllers cgcore ships, registered in one call.
#pragma once

#include <optional>

#include "controllers/cpuset.h"
#include "core/engine.h"

namespace cgcore {

struct BuiltinOptions {
  // The machine cpuset sees; default: the host's CPUs and nodes.
  std::optional<CpusetTopology> cpuset_topology;
};

// Registers cpuset, memory, pids, numtasks and memrlimit, in that order,
// with `engine` (before any cgroup exists). Errors as
// Engine::register_controller.
Status register_builtin_controllers(Engine& engine, const BuiltinOptions& options = {});

}  // namespace cgcore
