#include "controllers/registry.h"

#include "controllers/cpu.h"
#include "controllers/cpuacct.h"
#include "controllers/memory.h"
#include "controllers/memrlimit.h"
#include "controllers/numtasks.h"
#include "controllers/pids.h"

namespace cgcore {

namespace {

// Registers `controller` and returns it, borrowed from the engine.
template <typename T>
Result<T*> add(Engine& engine, std::unique_ptr<T> controller) {
  T* borrowed = controller.get();
  Result<ControllerId> id = engine.register_controller(std::move(controller));
  if (!id.ok()) return id.status();
  return borrowed;
}

}  // namespace

Result<BuiltinControllers> register_builtin_controllers(Engine& engine, BuiltinOptions options) {
  BuiltinControllers out;
  auto cpuset = add(engine, std::make_unique<CpusetController>(
                                options.cpuset_topology.value_or(CpusetTopology::host()),
                                CpusetController::Sinks{.affinity = std::move(options.affinity_sink)}));
  if (!cpuset.ok()) return cpuset.status();
  out.cpuset = *cpuset;
  auto acct_owned = std::make_unique<CpuacctController>();
  auto cpu = add(engine, std::make_unique<CpuController>(std::move(options.nice_sink), acct_owned.get()));
  if (!cpu.ok()) return cpu.status();
  out.cpu = *cpu;
  auto cpuacct = add(engine, std::move(acct_owned));
  if (!cpuacct.ok()) return cpuacct.status();
  out.cpuacct = *cpuacct;
  auto memory = add(engine, std::make_unique<MemoryController>());
  if (!memory.ok()) return memory.status();
  out.memory = *memory;
  auto pids = add(engine, std::make_unique<PidsController>());
  if (!pids.ok()) return pids.status();
  out.pids = *pids;
  auto numtasks = add(engine, std::make_unique<NumtasksController>());
  if (!numtasks.ok()) return numtasks.status();
  out.numtasks = *numtasks;
  auto memrlimit = add(engine, std::make_unique<MemrlimitController>());
  if (!memrlimit.ok()) return memrlimit.status();
  out.memrlimit = *memrlimit;
  return out;
}

}  // namespace cgcore
