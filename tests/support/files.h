// Control-file access for controller tests, the way the file layer serves
// them: find the controller whose prefix the name carries, check the file
// appears on this cgroup (hierarchy kind, root or not, controller active),
// take the cgroup mutex and call the handler with the cgroup's css (a write
// as CgroupFs::write hands it on: nothing for a zero-length write, the text up
// to its first NUL otherwise).
#pragma once

#include <string>
#include <string_view>

#include "core/engine.h"

namespace cgcore::testing {

// ENOENT if the file does not exist on `cgroup`; EINVAL if it is not
// readable / writable; else the handler's result.
Result<std::string> read_file(Engine& engine, Cgroup& cgroup, std::string_view name);
Status write_file(Engine& engine, Cgroup& cgroup, std::string_view name, std::string_view text);

}  // namespace cgcore::testing
