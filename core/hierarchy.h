// Hierarchy: a tree of cgroups with a set of bound controllers (the kernel's
// cgroup_root). The default hierarchy (id 0, cgroup v2) always exists and
// holds every controller not bound to a v1 hierarchy.
//
// Thread-safety: id(), is_default(), name() and root() are immutable;
// controllers() and nr_cgroups() are guarded by the engine's cgroup mutex.
#pragma once

#include <memory>
#include <string>

#include "core/cgroup.h"
#include "core/types.h"

namespace cgcore {

class Engine;

class Hierarchy {
 public:
  Hierarchy(const Hierarchy&) = delete;
  Hierarchy& operator=(const Hierarchy&) = delete;
  ~Hierarchy();

  HierarchyId id() const { return id_; }
  bool is_default() const { return id_ == kDefaultHierarchy; }
  // The v1 "name=" option; empty if none. Immutable.
  const std::string& name() const { return name_; }
  Cgroup& root() const { return *root_; }

  // Guarded by the cgroup mutex.
  const ControllerSet& controllers() const;
  // Number of cgroups, root included. Guarded by the cgroup mutex.
  int nr_cgroups() const;

 private:
  friend class Engine;
  friend class InvariantChecker;
  friend class MigrationContext;

  Hierarchy(Engine* engine, HierarchyId id, std::string name, uint64_t root_id,
            size_t nr_controllers);

  Engine* const engine_;
  const HierarchyId id_;
  const std::string name_;
  Cgroup* root_;  // holds the root's base reference until the hierarchy is retired

  // Guarded by cgroup_mutex.
  ControllerSet controllers_;
  int nr_cgroups_ = 1;
};

}  // namespace cgcore
