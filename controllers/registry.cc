#include "controllers/registry.h"

#include "controllers/memory.h"
#include "controllers/memrlimit.h"
#include "controllers/numtasks.h"
#include "controllers/pids.h"

namespace cgcore {

Status register_builtin_controllers(Engine& engine, const BuiltinOptions& options) {
  std::unique_ptr<Controller> all[] = {
      std::make_unique<CpusetController>(options.cpuset_topology.value_or(CpusetTopology::host())),
      std::make_unique<MemoryController>(),
      std::make_unique<PidsController>(),
      std::make_unique<NumtasksController>(),
      std::make_unique<MemrlimitController>(),
  };
  for (auto& c : all) {
    Result<ControllerId> id = engine.register_controller(std::move(c));
    if (!id.ok()) return id.status();
  }
  return Status::Ok();
}

}  // namespace cgcore
