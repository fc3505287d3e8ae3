#include "controllers/registry.h"

namespace cgcore {

Status register_builtin_controllers(Engine& engine) {
  // Filled in as the controllers land (issue 3).
  (void)engine;
  return Status::Ok();
}

}  // namespace cgcore
