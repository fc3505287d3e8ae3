// InvariantChecker: validates every structural invariant of an engine.
//
// It checks that each live task is in exactly one css_set and on its list
// and on its process's thread list; that each css_set's reference count
// equals its tasks (plus the engine's root pin), that it is hashed once under
// its key, links exactly the cgroups of the live hierarchies and holds the
// effective css of each controller; that cgroups' populated counters,
// descendant counts and css sets are right; that every css's reference count
// equals its holders; and that no css_set, css, task, process or address
// space is alive that nothing reaches (leaks).
//
// Locking: takes every engine lock (the global threadgroup lock exclusive),
// so it sees a quiescent engine. The leak counts are exact only when no other
// thread is inside the engine (a lookup in flight pins a task).
#pragma once

#include <string>

#include "core/result.h"

namespace cgcore {

class Engine;

class InvariantChecker {
 public:
  explicit InvariantChecker(const Engine& engine) : engine_(engine) {}
  // Ok, or EIO with a description of the first violation found.
  Status check();

 private:
  bool fail(std::string what);
  bool check_tasks_and_csets();
  bool check_cgroups();
  bool check_css_refs();

  const Engine& engine_;
  std::string error_;
};

}  // namespace cgcore
