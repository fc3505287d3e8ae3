#include "fs/layout.h"

namespace cgcore::fs {

namespace {
std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t p = s.find(sep, start);
    out.push_back(s.substr(start, p == std::string_view::npos ? std::string_view::npos : p - start));
    if (p == std::string_view::npos) break;
    start = p + 1;
  }
  return out;
}
}  // namespace

Result<Layout> Layout::mount(Engine& engine, std::string_view spec) {
  Layout layout;
  layout.spec = std::string(spec);
  if (spec == "v2") {
    layout.root_hierarchy = &engine.default_hierarchy();
    layout.dirs.push_back({"", layout.root_hierarchy});
    return layout;
  }
  if (spec == "hybrid") {
    for (size_t id = 0; id < engine.nr_controllers(); ++id) {
      std::string name(engine.controller(static_cast<ControllerId>(id)).name());
      Result<Hierarchy*> h = engine.mount({name}, "");
      if (!h.ok()) return h.status();
      layout.dirs.push_back({name, h.value()});
    }
    layout.dirs.push_back({"unified", &engine.default_hierarchy()});
    return layout;
  }
  if (spec.empty()) return Status::Error(EINVAL, "empty layout");
  for (std::string_view group : split(spec, ';')) {
    std::vector<std::string> controllers;
    std::string name;
    for (std::string_view item : split(group, ',')) {
      if (item.empty()) return Status::Error(EINVAL, "empty item in layout '" + layout.spec + "'");
      if (item.starts_with("name=")) {
        if (!name.empty()) return Status::Error(EINVAL, "two names in one hierarchy");
        name = std::string(item.substr(5));
        if (name.empty()) return Status::Error(EINVAL, "empty hierarchy name");
      } else {
        if (!engine.find_controller(item))
          return Status::Error(EINVAL, "unknown controller '" + std::string(item) + "' in layout");
        controllers.emplace_back(item);
      }
    }
    std::string dir = name;
    if (dir.empty()) {
      for (const std::string& c : controllers) dir += (dir.empty() ? "" : ",") + c;
    }
    for (const LayoutDir& d : layout.dirs)
      if (d.name == dir) return Status::Error(EINVAL, "directory '" + dir + "' twice in layout");
    Result<Hierarchy*> h = engine.mount(controllers, name);
    if (!h.ok()) return h.status();
    layout.dirs.push_back({dir, h.value()});
  }
  return layout;
}

const LayoutDir* Layout::dir_of(const Hierarchy& h) const {
  for (const LayoutDir& d : dirs)
    if (d.hierarchy == &h) return &d;
  return nullptr;
}

}  // namespace cgcore::fs
