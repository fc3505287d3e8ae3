// Directories list in kernfs' order (fs/kernfs_order.h): the order below
// is what Linux 6.18 lists for a v1 pids cgroup (ls -U).
#include "fs/kernfs_order.h"

#include <gtest/gtest.h>

#include <string>

namespace cgcore::fs {
namespace {

struct Named {
  std::string name;
};

TEST(KernfsOrder, AV1PidsCgroupListsAsOnTheKernel) {
  std::vector<Named> e;
  for (const char* n : {"cgroup.clone_children", "cgroup.procs", "notify_on_release", "pids.current",
                        "pids.events", "pids.max", "pids.peak", "tasks"})
    e.push_back({n});
  sort_kernfs_order(e);
  std::string got;
  for (const Named& n : e) got += n.name + " ";
  EXPECT_EQ(got,
            "cgroup.procs pids.current pids.events tasks notify_on_release pids.max pids.peak "
            "cgroup.clone_children ");
}

TEST(KernfsOrder, HashesStayInTheirRange) {
  for (const char* n : {"", "a", "cgroup.events", "memory.events.local"}) {
    EXPECT_GE(kernfs_name_hash(n), 2u);
    EXPECT_LT(kernfs_name_hash(n), 0x7fffffffu);
  }
}

}  // namespace
}  // namespace cgcore::fs
