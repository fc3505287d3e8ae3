// A program embedding cgcore's C++ library from an install or a subproject:
// the engine with the built-in controllers, a v1 hierarchy, a migration,
// the file layer over it, and the invariant checker. Exits 0 if all went as
// expected. Built with CMake (CMakeLists.txt here) or with
//   c++ -std=c++20 consumer.cc $(pkg-config --cflags --libs cgcore)
#include <cstdio>
#include <string>

#include <cgcore/controllers/registry.h>
#include <cgcore/core/engine.h>
#include <cgcore/fs/cgroupfs.h>
#include <cgcore/version.h>

namespace {

int failures = 0;

void expect(bool ok, const char* what, const cgcore::Status& status = {}) {
  if (ok) return;
  std::fprintf(stderr, "FAIL %s: %s %s\n", what, cgcore::errno_name(status.err()),
               status.message().c_str());
  ++failures;
}

}  // namespace

int main() {
  std::printf("cgcore %s consumer\n", CGCORE_VERSION_STRING);
  cgcore::Engine engine;
  cgcore::BuiltinOptions options;
  options.cpuset_topology = cgcore::CpusetTopology::uniform(2, 1);
  auto builtin = cgcore::register_builtin_controllers(engine, options);
  expect(builtin.ok(), "register_builtin_controllers", builtin.status());

  auto v1 = engine.mount({"pids"}, "");
  expect(v1.ok(), "mount", v1.status());
  if (!v1.ok()) return 1;
  auto web = engine.mkdir((*v1)->root(), "web");
  expect(web.ok(), "mkdir", web.status());
  auto pid = engine.spawn({});
  expect(pid.ok(), "spawn", pid.status());
  if (!web.ok() || !pid.ok()) return 1;
  cgcore::Status moved = engine.migrate_process(*pid, **web);
  expect(moved.ok(), "migrate_process", moved);

  auto fs = cgcore::fs::CgroupFs::create(engine, "pids");
  expect(fs.ok(), "CgroupFs::create", fs.status());
  if (!fs.ok()) return 1;
  cgcore::fs::Caller root;
  auto procs = (*fs)->read_path("/pids/web/cgroup.procs", root);
  expect(procs.ok() && *procs == std::to_string(*pid) + "\n", "read cgroup.procs", procs.status());

  cgcore::Status invariants = engine.check_invariants();
  expect(invariants.ok(), "check_invariants", invariants);
  std::printf(failures ? "consumer: %d failure(s)\n" : "consumer: ok\n", failures);
  return failures ? 1 : 0;
}
