// The controllers cgcore ships, registered in one call.
#pragma once

#include "core/engine.h"

namespace cgcore {

// Registers every shipped controller with `engine` (before any cgroup
// exists), in a fixed order. Errors as Engine::register_controller.
Status register_builtin_controllers(Engine& engine);

}  // namespace cgcore
