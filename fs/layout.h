// Layout: which hierarchies a mount shows, and under which directory names.
//
//   "hybrid"  one v1 hierarchy per registered controller, each in a top
//             directory named after it, plus "unified" for the default (v2)
//             hierarchy — like a systemd host's /sys/fs/cgroup;
//   "v2"      the default hierarchy at the top, holding every controller;
//   a spec    such as "cpuset,memory;pids;name=systemd": each ';'-separated
//             group is one v1 hierarchy (controllers joined by ',', and an
//             optional "name=NAME"); its directory is NAME if named, else
//             the controllers joined by ','. No default hierarchy is shown.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/engine.h"

namespace cgcore::fs {

struct LayoutDir {
  std::string name;  // empty: the hierarchy is the mount root (v2)
  Hierarchy* hierarchy;
};

struct Layout {
  std::string spec;
  std::vector<LayoutDir> dirs;
  // The hierarchy at the mount root (v2 layout), or null (a directory of
  // hierarchies).
  Hierarchy* root_hierarchy = nullptr;

  // Mounts the hierarchies `spec` asks for on `engine`. EINVAL for a bad
  // spec; the engine's mount errors (EBUSY if a controller is taken).
  static Result<Layout> mount(Engine& engine, std::string_view spec);
  // The directory name of a hierarchy, or null if the layout does not show
  // it.
  const LayoutDir* dir_of(const Hierarchy& h) const;
};

}  // namespace cgcore::fs
