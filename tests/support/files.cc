#include "tests/support/files.h"

#include "core/parse.h"

namespace cgcore::testing {
namespace {

struct Found {
  const ControlFileSpec* spec = nullptr;
  Css* css = nullptr;
};

Result<Found> find(Engine& engine, Cgroup& cgroup, std::string_view name) {
  engine.cgroup_mutex().AssertHeld();
  for (size_t id = 0; id < engine.nr_controllers(); ++id) {
    Controller& c = engine.controller(static_cast<ControllerId>(id));
    for (const ControlFileSpec& spec : c.files()) {
      std::string full = spec.name.starts_with('!')
                             ? std::string(spec.name.substr(1))
                             : std::string(c.name()) + "." + std::string(spec.name);
      if (full != name) continue;
      const Hierarchy& h = cgroup.hierarchy();
      if (&engine.hierarchy_of_locked(c.id()) != &h) continue;
      if (!(spec.versions & (h.is_default() ? kV2 : kV1))) continue;
      if (spec.scope == FileScope::kRootOnly && !cgroup.is_root()) continue;
      if (spec.scope == FileScope::kNonRoot && cgroup.is_root()) continue;
      Css* css = cgroup.is_root() ? &engine.root_css(c.id()) : cgroup.css(c.id());
      if (!css) continue;  // v2: not enabled here
      return Found{&spec, css};
    }
  }
  return Status::Error(ENOENT, "no file '" + std::string(name) + "' here");
}

}  // namespace

Result<std::string> read_file(Engine& engine, Cgroup& cgroup, std::string_view name) {
  MutexLock lock(engine.cgroup_mutex());
  Result<Found> f = find(engine, cgroup, name);
  if (!f.ok()) return f.status();
  if (!f->spec->read) return Status::Error(EINVAL, "not readable");
  return f->spec->read(engine, *f->css);
}

Status write_file(Engine& engine, Cgroup& cgroup, std::string_view name, std::string_view text) {
  MutexLock lock(engine.cgroup_mutex());
  Result<Found> f = find(engine, cgroup, name);
  if (!f.ok()) return f.status();
  if (!f->spec->write) return Status::Error(EINVAL, "not writable");
  // As CgroupFs::write: a zero-length write changes nothing, a NUL ends the text.
  if (text.empty()) return Status::Ok();
  return f->spec->write(engine, *f->css, until_nul(text));
}

}  // namespace cgcore::testing
