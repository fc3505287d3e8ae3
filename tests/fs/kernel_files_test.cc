// Control-file parsing, file by file, as the kernel answers it. One table of
// writes (text, errno, what the file reads after) observed on the host's
// Linux 6.18 with one write(2) each, replayed against cgcore's CgroupFs with
// the built-in controllers, and — when run as root on a hybrid host whose
// /sys/fs/cgroup looks like cgcore's "hybrid" layout — against the kernel's
// own files, so that "checked on the host" stays reproducible.
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "controllers/registry.h"
#include "fs/cgroupfs.h"
#include "tests/support/text.h"

namespace cgcore::fs {
namespace {

using namespace std::string_view_literals;

struct FileCase {
  const char* dir;   // the hierarchy's directory: pids, memory, cpuset, cpu, cpuacct, unified
  const char* file;  // below the test group: "pids.max", "c/cgroup.freeze"
  const char* reset;  // written first and expected to succeed (null: nothing)
  std::string_view text;
  int err;            // 0: accepted
  const char* after;  // what the file reads afterwards (null: not compared)
  // The answer assumes CPUs 0-1 and one memory node, and a kernel built
  // with NR_CPUS 256 and MAX_NUMNODES 1024 (the cpuset write limits).
  bool two_cpus = false;
};

// Writes at and past a file's write limit (kernfs: E2BIG beyond it).
std::string padded(const char* head, size_t n) { return head + std::string(n - std::strlen(head), ' '); }
const std::string kPage = padded("5", 4096), kPagePlus = padded("6", 4097);
const std::string kCpusMax = padded("0", 1636), kCpusOver = padded("0", 1637);
const std::string kMemsMax = padded("0", 6244), kMemsOver = padded("0", 6245);

// The test group's subgroups: where processes move, freeze, turn threaded.
const char* const kSubgroups[][2] = {
    {"pids", "c"}, {"unified", "c"}, {"unified", "p"}, {"unified", "t"}};

const FileCase kCases[] = {
    // pids.max: strstrip, "max", then kstrtoll and 0..PID_MAX_LIMIT.
    {"pids", "pids.max", "3", "max", 0, "max\n"},
    {"pids", "pids.max", "3", "  5  ", 0, "5\n"},
    {"pids", "pids.max", "3", "5\n", 0, "5\n"},
    {"pids", "pids.max", "3", "5\n\n", 0, "5\n"},
    {"pids", "pids.max", "3", "+5", 0, "5\n"},
    {"pids", "pids.max", "3", "-1", EINVAL, "3\n"},
    {"pids", "pids.max", "3", "-0", 0, "0\n"},
    {"pids", "pids.max", "3", "0x10", 0, "16\n"},
    {"pids", "pids.max", "3", "0X1f", 0, "31\n"},
    {"pids", "pids.max", "3", "010", 0, "8\n"},
    {"pids", "pids.max", "3", "08", EINVAL, "3\n"},
    {"pids", "pids.max", "3", "0x", EINVAL, "3\n"},
    {"pids", "pids.max", "3", "00x5", EINVAL, "3\n"},
    {"pids", "pids.max", "3", "99999999999999999999", ERANGE, "3\n"},
    {"pids", "pids.max", "3", "99999999999999999999x", ERANGE, "3\n"},
    {"pids", "pids.max", "3", "-99999999999999999999", ERANGE, "3\n"},
    {"pids", "pids.max", "3", "9223372036854775808", ERANGE, "3\n"},
    {"pids", "pids.max", "3", "9223372036854775807", EINVAL, "3\n"},
    {"pids", "pids.max", "3", "-9223372036854775808", EINVAL, "3\n"},
    {"pids", "pids.max", "3", "0xffffffffffffffffff", ERANGE, "3\n"},
    {"pids", "pids.max", "3", "5x", EINVAL, "3\n"},
    {"pids", "pids.max", "3", "", 0, "3\n"},
    {"pids", "pids.max", "3", "\n", EINVAL, "3\n"},
    {"pids", "pids.max", "3", " ", EINVAL, "3\n"},
    {"pids", "pids.max", "3", "5\xa0", 0, "5\n"},
    {"pids", "pids.max", "3", "\xa0" "5", 0, "5\n"},
    {"pids", "pids.max", "3", "\x1c" "5", EINVAL, "3\n"},
    {"pids", "pids.max", "3", "5\x85", EINVAL, "3\n"},
    {"pids", "pids.max", "3", "5\r", 0, "5\n"},
    {"pids", "pids.max", "3", "5\v\f", 0, "5\n"},
    {"pids", "pids.max", "3", "4194304", 0, "4194304\n"},
    {"pids", "pids.max", "3", "4194305", EINVAL, "3\n"},
    {"pids", "pids.max", "3", "MAX", EINVAL, "3\n"},
    {"pids", "pids.max", "3", "-+5", EINVAL, "3\n"},
    {"pids", "pids.max", "3", "+-5", EINVAL, "3\n"},
    {"pids", "pids.max", "3", "5\0"sv, 0, "5\n"},
    {"pids", "pids.max", "3", "max\0"sv, 0, "max\n"},
    {"pids", "pids.max", "3", "max\0junk"sv, 0, "max\n"},
    {"pids", "pids.max", "3", "5 \0 6"sv, 0, "5\n"},
    {"pids", "pids.max", "3", kPage, 0, "5\n"},
    {"pids", "pids.max", "3", kPagePlus, E2BIG, "3\n"},
    {"pids", "notify_on_release", "0", kPagePlus, E2BIG, "0\n"},
    {"pids", "pids.max", "3", "\0"sv, EINVAL, "3\n"},
    {"pids", "pids.max", "3", "\0" "5"sv, EINVAL, "3\n"},
    // The write_u64 files: kstrtoull on the unstripped text, non-zero sets.
    {"pids", "notify_on_release", "0", "1", 0, "1\n"},
    {"pids", "notify_on_release", "0", " 1", EINVAL, "0\n"},
    {"pids", "notify_on_release", "0", "1 ", EINVAL, "0\n"},
    {"pids", "notify_on_release", "0", "1\n", 0, "1\n"},
    {"pids", "notify_on_release", "0", "1\n\n", EINVAL, "0\n"},
    {"pids", "notify_on_release", "0", "+1", 0, "1\n"},
    {"pids", "notify_on_release", "0", "-1", EINVAL, "0\n"},
    {"pids", "notify_on_release", "0", "0x1", 0, "1\n"},
    {"pids", "notify_on_release", "0", "07", 0, "1\n"},
    {"pids", "notify_on_release", "0", "08", EINVAL, "0\n"},
    {"pids", "notify_on_release", "0", "2", 0, "1\n"},
    {"pids", "notify_on_release", "0", "18446744073709551615", 0, "1\n"},
    {"pids", "notify_on_release", "0", "4294967296", 0, "1\n"},
    {"pids", "cgroup.clone_children", "0", "4294967296", 0, "1\n"},
    {"pids", "notify_on_release", "0", "99999999999999999999", ERANGE, "0\n"},
    {"pids", "notify_on_release", "0", "99999999999999999999x", ERANGE, "0\n"},
    {"pids", "notify_on_release", "0", "1\0junk"sv, 0, "1\n"},
    {"pids", "notify_on_release", "0", "max\0"sv, EINVAL, "0\n"},
    {"pids", "notify_on_release", "0", "\0"sv, EINVAL, "0\n"},
    {"pids", "notify_on_release", "0", "\n", EINVAL, "0\n"},
    {"pids", "notify_on_release", "0", "1\xa0", EINVAL, "0\n"},
    {"pids", "notify_on_release", "0", "0x", EINVAL, "0\n"},
    {"pids", "cgroup.clone_children", "0", "1", 0, "1\n"},
    {"pids", "cgroup.clone_children", "0", " 1", EINVAL, "0\n"},
    {"pids", "cgroup.clone_children", "0", "1\n\n", EINVAL, "0\n"},
    {"pids", "cgroup.clone_children", "0", "99999999999999999999x", ERANGE, "0\n"},
    {"pids", "cgroup.clone_children", "0", "1\0junk"sv, 0, "1\n"},
    {"pids", "cgroup.clone_children", "0", "\0"sv, EINVAL, "0\n"},
    // tasks / cgroup.procs: strstrip, kstrtoint, any failure EINVAL; "0" is
    // the writer.
    {"pids", "c/tasks", nullptr, "0\0"sv, 0, nullptr},
    {"pids", "c/tasks", nullptr, "0\0junk"sv, 0, nullptr},
    {"pids", "c/tasks", nullptr, " 0 ", 0, nullptr},
    {"pids", "c/tasks", nullptr, "0\n\n", 0, nullptr},
    {"pids", "c/tasks", nullptr, "0\xa0", 0, nullptr},
    {"pids", "c/tasks", nullptr, "-0", 0, nullptr},
    {"pids", "c/tasks", nullptr, "+0", 0, nullptr},
    {"pids", "c/tasks", nullptr, "0x0", 0, nullptr},
    {"pids", "c/tasks", nullptr, "abc", EINVAL, nullptr},
    {"pids", "c/tasks", nullptr, "-1", EINVAL, nullptr},
    {"pids", "c/tasks", nullptr, "1 2", EINVAL, nullptr},
    {"pids", "c/tasks", nullptr, "99999999999999999999", EINVAL, nullptr},
    {"pids", "c/tasks", nullptr, "2147483648", EINVAL, nullptr},
    {"pids", "c/tasks", nullptr, "\0"sv, EINVAL, nullptr},
    {"pids", "c/tasks", nullptr, "\n", EINVAL, nullptr},
    {"pids", "c/tasks", nullptr, "4194305", ESRCH, nullptr},
    {"pids", "c/cgroup.procs", nullptr, "0\0junk"sv, 0, nullptr},
    {"pids", "c/cgroup.procs", nullptr, " 0 ", 0, nullptr},
    {"pids", "c/cgroup.procs", nullptr, "99999999999999999999", EINVAL, nullptr},
    {"pids", "c/cgroup.procs", nullptr, "\0"sv, EINVAL, nullptr},
    {"pids", "c/cgroup.procs", nullptr, "4194305", ESRCH, nullptr},
    // memory.limit_in_bytes: strstrip, "-1", memparse to the end, pages.
    {"memory", "memory.limit_in_bytes", "8192", "1k", 0, "0\n"},
    {"memory", "memory.limit_in_bytes", "8192", "1K", 0, "0\n"},
    {"memory", "memory.limit_in_bytes", "8192", "1kk", EINVAL, "8192\n"},
    {"memory", "memory.limit_in_bytes", "8192", "1 k", EINVAL, "8192\n"},
    {"memory", "memory.limit_in_bytes", "8192", "1k\n", 0, "0\n"},
    {"memory", "memory.limit_in_bytes", "8192", " 1k", 0, "0\n"},
    {"memory", "memory.limit_in_bytes", "8192", "-1", 0, "9223372036854771712\n"},
    {"memory", "memory.limit_in_bytes", "8192", "-1\0"sv, 0, "9223372036854771712\n"},
    {"memory", "memory.limit_in_bytes", "8192", "-2", EINVAL, "8192\n"},
    {"memory", "memory.limit_in_bytes", "8192", "max", EINVAL, "8192\n"},
    {"memory", "memory.limit_in_bytes", "8192", "+4096", EINVAL, "8192\n"},
    {"memory", "memory.limit_in_bytes", "8192", "4097", 0, "4096\n"},
    {"memory", "memory.limit_in_bytes", "8192", "0x1000", 0, "4096\n"},
    {"memory", "memory.limit_in_bytes", "8192", "010000", 0, "4096\n"},
    {"memory", "memory.limit_in_bytes", "8192", "08", EINVAL, "8192\n"},
    {"memory", "memory.limit_in_bytes", "8192", "0x", EINVAL, "8192\n"},
    {"memory", "memory.limit_in_bytes", "8192", "0xk", EINVAL, "8192\n"},
    {"memory", "memory.limit_in_bytes", "8192", "1M", 0, "1048576\n"},
    {"memory", "memory.limit_in_bytes", "8192", "1g", 0, "1073741824\n"},
    {"memory", "memory.limit_in_bytes", "8192", "1T", 0, "1099511627776\n"},
    {"memory", "memory.limit_in_bytes", "8192", "1p", 0, "1125899906842624\n"},
    {"memory", "memory.limit_in_bytes", "8192", "1E", 0, "1152921504606846976\n"},
    {"memory", "memory.limit_in_bytes", "8192", "8E", 0, "9223372036854771712\n"},
    {"memory", "memory.limit_in_bytes", "8192", "15E", 0, "9223372036854771712\n"},
    {"memory", "memory.limit_in_bytes", "8192", "16E", 0, "0\n"},
    {"memory", "memory.limit_in_bytes", "8192", "17E", 0, "1152921504606846976\n"},
    {"memory", "memory.limit_in_bytes", "8192", "16777216T", 0, "0\n"},
    {"memory", "memory.limit_in_bytes", "8192", "9223372036854775807", 0, "9223372036854771712\n"},
    {"memory", "memory.limit_in_bytes", "8192", "18446744073709551615", 0, "9223372036854771712\n"},
    {"memory", "memory.limit_in_bytes", "8192", "18446744073709551616", 0, "0\n"},
    {"memory", "memory.limit_in_bytes", "8192", "18446744073709559808", 0, "8192\n"},
    {"memory", "memory.limit_in_bytes", "8192", "36893488147419107328", 0, "4096\n"},
    {"memory", "memory.limit_in_bytes", "8192", "99999999999999999999", 0, "7766279631452237824\n"},
    {"memory", "memory.limit_in_bytes", "8192", "1kb", EINVAL, "8192\n"},
    {"memory", "memory.limit_in_bytes", "8192", "1.5k", EINVAL, "8192\n"},
    {"memory", "memory.limit_in_bytes", "8192", "", 0, "8192\n"},
    {"memory", "memory.limit_in_bytes", "8192", "\n", 0, "0\n"},
    {"memory", "memory.limit_in_bytes", "8192", "k", 0, "0\n"},
    {"memory", "memory.limit_in_bytes", "8192", "x", EINVAL, "8192\n"},
    {"memory", "memory.limit_in_bytes", "8192", "1\xa0", 0, "0\n"},
    {"memory", "memory.limit_in_bytes", "8192", "1k\0junk"sv, 0, "0\n"},
    {"memory", "memory.limit_in_bytes", "8192", "\0"sv, 0, "0\n"},
    {"memory", "memory.limit_in_bytes", "8192", "4096\n\n", 0, "4096\n"},
    {"memory", "memory.move_charge_at_immigrate", "0", "0\0x"sv, 0, "0\n"},
    {"memory", "memory.move_charge_at_immigrate", "0", "0 ", EINVAL, "0\n"},
    {"memory", "memory.move_charge_at_immigrate", "0", "\0"sv, EINVAL, "0\n"},
    // cpuset flags (write_u64) and the relax level (write_s64): no strip.
    {"cpuset", "cpuset.cpu_exclusive", "0", "1", 0, "1\n"},
    {"cpuset", "cpuset.cpu_exclusive", "0", " 1", EINVAL, "0\n"},
    {"cpuset", "cpuset.cpu_exclusive", "0", "1 ", EINVAL, "0\n"},
    {"cpuset", "cpuset.cpu_exclusive", "0", "1\n", 0, "1\n"},
    {"cpuset", "cpuset.cpu_exclusive", "0", "1\n\n", EINVAL, "0\n"},
    {"cpuset", "cpuset.cpu_exclusive", "0", "+1", 0, "1\n"},
    {"cpuset", "cpuset.cpu_exclusive", "0", "-1", EINVAL, "0\n"},
    {"cpuset", "cpuset.cpu_exclusive", "0", "0x1", 0, "1\n"},
    {"cpuset", "cpuset.cpu_exclusive", "0", "2", 0, "1\n"},
    {"cpuset", "cpuset.cpu_exclusive", "0", "99999999999999999999", ERANGE, "0\n"},
    {"cpuset", "cpuset.cpu_exclusive", "0", "99999999999999999999x", ERANGE, "0\n"},
    {"cpuset", "cpuset.cpu_exclusive", "0", "1\0junk"sv, 0, "1\n"},
    {"cpuset", "cpuset.cpu_exclusive", "0", "\0"sv, EINVAL, "0\n"},
    {"cpuset", "cpuset.cpu_exclusive", "0", "\n", EINVAL, "0\n"},
    {"cpuset", "cpuset.cpu_exclusive", "0", "1\xa0", EINVAL, "0\n"},
    {"cpuset", "cpuset.cpu_exclusive", nullptr, "0", 0, "0\n"},
    // The cpuset flags take the u64 as an int: the low 32 bits decide.
    {"cpuset", "cpuset.cpu_exclusive", "1", "4294967296", 0, "0\n"},
    {"cpuset", "cpuset.cpu_exclusive", "0", "4294967297", 0, "1\n"},
    {"cpuset", "cpuset.cpu_exclusive", "1", "8589934592", 0, "0\n"},
    {"cpuset", "cpuset.cpu_exclusive", "0", "2147483648", 0, "1\n"},
    {"cpuset", "cpuset.mem_hardwall", "1", "4294967296", 0, "0\n"},
    {"cpuset", "cpuset.mem_hardwall", "0", "4294967297", 0, "1\n"},
    {"cpuset", "cpuset.mem_hardwall", nullptr, "0", 0, "0\n"},
    {"cpuset", "cpuset.memory_migrate", "1", "4294967296", 0, "0\n"},
    {"cpuset", "cpuset.cpu_exclusive", nullptr, "0", 0, "0\n"},
    {"cpuset", "cpuset.sched_relax_domain_level", "-1", "0", 0, "0\n"},
    {"cpuset", "cpuset.sched_relax_domain_level", "-1", "1", 0, "1\n"},
    {"cpuset", "cpuset.sched_relax_domain_level", "-1", " 1", EINVAL, "-1\n"},
    {"cpuset", "cpuset.sched_relax_domain_level", "-1", "1\n", 0, "1\n"},
    {"cpuset", "cpuset.sched_relax_domain_level", "-1", "+1", 0, "1\n"},
    {"cpuset", "cpuset.sched_relax_domain_level", "-1", "-2", EINVAL, "-1\n"},
    {"cpuset", "cpuset.sched_relax_domain_level", "0", "-0", 0, "0\n"},
    {"cpuset", "cpuset.sched_relax_domain_level", "-1", "0x1", 0, "1\n"},
    {"cpuset", "cpuset.sched_relax_domain_level", "-1", "99999999999999999999", ERANGE, "-1\n"},
    {"cpuset", "cpuset.sched_relax_domain_level", "-1", "9223372036854775808", ERANGE, "-1\n"},
    {"cpuset", "cpuset.sched_relax_domain_level", "-1", "-9223372036854775808", EINVAL, "-1\n"},
    {"cpuset", "cpuset.sched_relax_domain_level", "-1", "-9223372036854775809", ERANGE, "-1\n"},
    {"cpuset", "cpuset.sched_relax_domain_level", "-1", "100", EINVAL, "-1\n"},
    {"cpuset", "cpuset.sched_relax_domain_level", "-1", "1\0x"sv, 0, "1\n"},
    {"cpuset", "cpuset.sched_relax_domain_level", "-1", "\n", EINVAL, "-1\n"},
    // cpuset.cpus: strstrip, then the kernel's list syntax (white space and
    // ',' separate regions; a '\n' ends the list).
    {"cpuset", "cpuset.cpus", "1", "0", 0, "0\n", true},
    {"cpuset", "cpuset.cpus", "1", "0-1", 0, "0-1\n", true},
    {"cpuset", "cpuset.cpus", "1", "1,0", 0, "0-1\n", true},
    {"cpuset", "cpuset.cpus", "1", "0 1", 0, "0-1\n", true},
    {"cpuset", "cpuset.cpus", "1", " 0-1 ", 0, "0-1\n", true},
    {"cpuset", "cpuset.cpus", "1", "0-1\n\n", 0, "0-1\n", true},
    {"cpuset", "cpuset.cpus", "1", "0\t1", 0, "0-1\n", true},
    {"cpuset", "cpuset.cpus", "1", "0\v1", 0, "0-1\n", true},
    {"cpuset", "cpuset.cpus", "1", "0\xa0" "1", 0, "0-1\n", true},
    {"cpuset", "cpuset.cpus", "1", "0\x1c" "1", EINVAL, "1\n", true},
    {"cpuset", "cpuset.cpus", "1", "0,,1", 0, "0-1\n", true},
    {"cpuset", "cpuset.cpus", "1", ",0", 0, "0\n", true},
    {"cpuset", "cpuset.cpus", "1", "0,", 0, "0\n", true},
    {"cpuset", "cpuset.cpus", "1", "0\n1", 0, "0\n", true},
    {"cpuset", "cpuset.cpus", "1", "0-", EINVAL, "1\n", true},
    {"cpuset", "cpuset.cpus", "1", "-1", EINVAL, "1\n", true},
    {"cpuset", "cpuset.cpus", "1", "1-0", EINVAL, "1\n", true},
    {"cpuset", "cpuset.cpus", "1", "0-1:1/2", 0, "0\n", true},
    {"cpuset", "cpuset.cpus", "1", "0-1:1/0", EINVAL, "1\n", true},
    {"cpuset", "cpuset.cpus", "0", "N", 0, "1\n", true},
    {"cpuset", "cpuset.cpus", "1", "0-N", 0, "0-1\n", true},
    {"cpuset", "cpuset.cpus", "1", "2", ERANGE, "1\n", true},
    {"cpuset", "cpuset.cpus", "1", "0x1", EINVAL, "1\n", true},
    {"cpuset", "cpuset.cpus", "1", "01", 0, "1\n", true},
    {"cpuset", "cpuset.cpus", "1", "+1", EINVAL, "1\n", true},
    {"cpuset", "cpuset.cpus", "1", "0 - 1", EINVAL, "1\n", true},
    {"cpuset", "cpuset.cpus", "1", "4294967295", EINVAL, "1\n", true},
    {"cpuset", "cpuset.cpus", "1", "4294967296", EOVERFLOW, "1\n", true},
    {"cpuset", "cpuset.cpus", "1", "99999999999999999999", EOVERFLOW, "1\n", true},
    {"cpuset", "cpuset.cpus", "1", "0\0junk"sv, 0, "0\n", true},
    {"cpuset", "cpuset.cpus", "1", "\0"sv, 0, "\n", true},
    {"cpuset", "cpuset.cpus", "1", "", 0, "1\n", true},
    {"cpuset", "cpuset.cpus", "1", "\n", 0, "\n", true},
    {"cpuset", "cpuset.cpus", "1", "0-4294967296", EOVERFLOW, "1\n", true},
    // One write: 100 + 6 * NR_CPUS bytes for cpuset.cpus, 100 + 6 *
    // MAX_NUMNODES for cpuset.mems (more than a page).
    {"cpuset", "cpuset.cpus", "1", kCpusMax, 0, "0\n", true},
    {"cpuset", "cpuset.cpus", "1", kCpusOver, E2BIG, "1\n", true},
    {"cpuset", "cpuset.mems", "0", kMemsMax, 0, "0\n", true},
    {"cpuset", "cpuset.mems", "0", kMemsOver, E2BIG, "0\n", true},
    // An exclusive, load-balanced cpuset cannot lose all its CPUs (the
    // deadline bandwidth its fair servers reserve); without load balancing
    // it can.
    {"cpuset", "cpuset.cpus", nullptr, "0", 0, "0\n", true},
    {"cpuset", "cpuset.cpu_exclusive", "0", "1", 0, "1\n"},
    {"cpuset", "cpuset.cpus", nullptr, "\n", EBUSY, "0\n", true},
    {"cpuset", "cpuset.sched_load_balance", "1", "0", 0, "0\n"},
    {"cpuset", "cpuset.cpus", nullptr, "\n", 0, "\n", true},
    {"cpuset", "cpuset.cpus", nullptr, "0", 0, "0\n", true},
    {"cpuset", "cpuset.sched_load_balance", nullptr, "1", 0, "1\n"},
    {"cpuset", "cpuset.cpu_exclusive", nullptr, "0", 0, "0\n"},
    // cgroup v2 core files.
    {"unified", "cgroup.max.depth", "3", "max", 0, "max\n"},
    {"unified", "cgroup.max.depth", "3", " max ", 0, "max\n"},
    {"unified", "cgroup.max.depth", "3", "max\0"sv, 0, "max\n"},
    {"unified", "cgroup.max.depth", "3", "max\0junk"sv, 0, "max\n"},
    {"unified", "cgroup.max.depth", "3", " 5 ", 0, "5\n"},
    {"unified", "cgroup.max.depth", "3", "5\n\n", 0, "5\n"},
    {"unified", "cgroup.max.depth", "3", "+5", 0, "5\n"},
    {"unified", "cgroup.max.depth", "3", "-1", ERANGE, "3\n"},
    {"unified", "cgroup.max.depth", "3", "-0", 0, "0\n"},
    {"unified", "cgroup.max.depth", "3", "0x10", 0, "16\n"},
    {"unified", "cgroup.max.depth", "3", "010", 0, "8\n"},
    {"unified", "cgroup.max.depth", "3", "08", EINVAL, "3\n"},
    {"unified", "cgroup.max.depth", "3", "2147483647", 0, "max\n"},
    {"unified", "cgroup.max.depth", "3", "2147483648", ERANGE, "3\n"},
    {"unified", "cgroup.max.depth", "3", "-2147483649", ERANGE, "3\n"},
    {"unified", "cgroup.max.depth", "3", "99999999999999999999x", ERANGE, "3\n"},
    {"unified", "cgroup.max.depth", "3", "5x", EINVAL, "3\n"},
    {"unified", "cgroup.max.depth", "3", "\n", EINVAL, "3\n"},
    {"unified", "cgroup.max.depth", "3", "\0"sv, EINVAL, "3\n"},
    {"unified", "cgroup.max.depth", "3", "5\xa0", 0, "5\n"},
    {"unified", "cgroup.max.depth", "3", "MAX", EINVAL, "3\n"},
    {"unified", "cgroup.max.descendants", "3", "max\0"sv, 0, "max\n"},
    {"unified", "cgroup.max.descendants", "3", "-1", ERANGE, "3\n"},
    {"unified", "cgroup.max.descendants", "3", " 7\n", 0, "7\n"},
    {"unified", "cgroup.max.descendants", "3", "2147483648", ERANGE, "3\n"},
    {"unified", "c/cgroup.freeze", "0", "1", 0, "1\n"},
    {"unified", "c/cgroup.freeze", "0", " 1 ", 0, "1\n"},
    {"unified", "c/cgroup.freeze", "0", "1\n\n", 0, "1\n"},
    {"unified", "c/cgroup.freeze", "0", "1\0junk"sv, 0, "1\n"},
    {"unified", "c/cgroup.freeze", "0", "2", ERANGE, "0\n"},
    {"unified", "c/cgroup.freeze", "0", "-1", ERANGE, "0\n"},
    {"unified", "c/cgroup.freeze", "0", "+1", 0, "1\n"},
    {"unified", "c/cgroup.freeze", "0", "0x1", 0, "1\n"},
    {"unified", "c/cgroup.freeze", "0", "01", 0, "1\n"},
    {"unified", "c/cgroup.freeze", "0", "99999999999999999999", ERANGE, "0\n"},
    {"unified", "c/cgroup.freeze", "0", "\n", EINVAL, "0\n"},
    {"unified", "c/cgroup.freeze", "0", "\0"sv, EINVAL, "0\n"},
    {"unified", "c/cgroup.freeze", "1", "0\xa0", 0, "0\n"},
    // c stays empty: these kills have nobody to kill.
    {"unified", "c/cgroup.kill", nullptr, "0", ERANGE, nullptr},
    {"unified", "c/cgroup.kill", nullptr, "2", ERANGE, nullptr},
    {"unified", "c/cgroup.kill", nullptr, "-1", ERANGE, nullptr},
    {"unified", "c/cgroup.kill", nullptr, " x", EINVAL, nullptr},
    {"unified", "c/cgroup.kill", nullptr, "99999999999999999999", ERANGE, nullptr},
    {"unified", "c/cgroup.kill", nullptr, "\n", EINVAL, nullptr},
    {"unified", "c/cgroup.kill", nullptr, "\0"sv, EINVAL, nullptr},
    {"unified", "c/cgroup.kill", nullptr, "1\0"sv, 0, nullptr},
    {"unified", "c/cgroup.kill", nullptr, " 1 ", 0, nullptr},
    {"unified", "c/cgroup.kill", nullptr, "0x1", 0, nullptr},
    // cgroup.subtree_control: stripped, then split at single spaces only.
    // pids, memory and cpuset are bound to v1: disabling them is a no-op,
    // enabling them ENOENT.
    {"unified", "cgroup.subtree_control", nullptr, "\n", 0, ""},
    {"unified", "cgroup.subtree_control", nullptr, "-pids", 0, ""},
    {"unified", "cgroup.subtree_control", nullptr, "+pids", ENOENT, ""},
    {"unified", "cgroup.subtree_control", nullptr, "-pids -memory", 0, ""},
    {"unified", "cgroup.subtree_control", nullptr, " -pids  -memory ", 0, ""},
    {"unified", "cgroup.subtree_control", nullptr, "-pids\t-memory", EINVAL, ""},
    {"unified", "cgroup.subtree_control", nullptr, "-pids\n-memory", EINVAL, ""},
    {"unified", "cgroup.subtree_control", nullptr, "-pids\xa0-memory", EINVAL, ""},
    {"unified", "cgroup.subtree_control", nullptr, "-pids,-memory", EINVAL, ""},
    {"unified", "cgroup.subtree_control", nullptr, "\t-pids\xa0", 0, ""},
    {"unified", "cgroup.subtree_control", nullptr, "-cpuset\n", 0, ""},
    {"unified", "cgroup.subtree_control", nullptr, "-pids\0junk"sv, 0, ""},
    {"unified", "cgroup.subtree_control", nullptr, "\0"sv, 0, ""},
    {"unified", "cgroup.subtree_control", nullptr, "pids", EINVAL, ""},
    {"unified", "cgroup.subtree_control", nullptr, "+", EINVAL, ""},
    {"unified", "cgroup.subtree_control", nullptr, "-", EINVAL, ""},
    {"unified", "cgroup.subtree_control", nullptr, "-nosuch", EINVAL, ""},
    {"unified", "p/cgroup.procs", nullptr, "0\0"sv, 0, nullptr},
    {"unified", "p/cgroup.procs", nullptr, " 0 ", 0, nullptr},
    {"unified", "p/cgroup.procs", nullptr, "0x0", 0, nullptr},
    {"unified", "p/cgroup.procs", nullptr, "-0", 0, nullptr},
    {"unified", "p/cgroup.procs", nullptr, "abc", EINVAL, nullptr},
    {"unified", "p/cgroup.procs", nullptr, "-1", EINVAL, nullptr},
    {"unified", "p/cgroup.procs", nullptr, "1 2", EINVAL, nullptr},
    {"unified", "p/cgroup.procs", nullptr, "2147483648", EINVAL, nullptr},
    {"unified", "p/cgroup.procs", nullptr, "\0"sv, EINVAL, nullptr},
    {"unified", "p/cgroup.procs", nullptr, "\n", EINVAL, nullptr},
    {"unified", "p/cgroup.procs", nullptr, "4194305", ESRCH, nullptr},
    {"unified", "t/cgroup.type", nullptr, "threaded\0x"sv, 0, "threaded\n"},
    {"unified", "t/cgroup.type", nullptr, "x", EINVAL, "threaded\n"},
    // cpu (v1): cpu.shares is write_u64 and clamps to 2..262144; the
    // bandwidth files refuse what tg_set_cfs_bandwidth refuses (quota
    // 1000 .. 2^44-1 us or negative for none, period 1000..1000000 us,
    // burst at most the quota), all with EINVAL.
    {"cpu", "cpu.shares", "1024", "2048", 0, "2048\n"},
    {"cpu", "cpu.shares", "1024", "0", 0, "2\n"},
    {"cpu", "cpu.shares", "1024", "1", 0, "2\n"},
    {"cpu", "cpu.shares", "1024", "3", 0, "3\n"},
    {"cpu", "cpu.shares", "1024", "262145", 0, "262144\n"},
    {"cpu", "cpu.shares", "1024", "18446744073709551615", 0, "262144\n"},
    {"cpu", "cpu.shares", "1024", "99999999999999999999", ERANGE, "1024\n"},
    {"cpu", "cpu.shares", "1024", " 5", EINVAL, "1024\n"},
    {"cpu", "cpu.shares", "1024", "5 ", EINVAL, "1024\n"},
    {"cpu", "cpu.shares", "1024", "5\n", 0, "5\n"},
    {"cpu", "cpu.shares", "1024", "5\n\n", EINVAL, "1024\n"},
    {"cpu", "cpu.shares", "1024", "+5", 0, "5\n"},
    {"cpu", "cpu.shares", "1024", "-5", EINVAL, "1024\n"},
    {"cpu", "cpu.shares", "1024", "0x10", 0, "16\n"},
    {"cpu", "cpu.shares", "1024", "010", 0, "8\n"},
    {"cpu", "cpu.shares", "1024", "", 0, "1024\n"},
    {"cpu", "cpu.shares", "1024", "max", EINVAL, "1024\n"},
    {"cpu", "cpu.shares", "1024", "100\0junk"sv, 0, "100\n"},
    {"cpu", "cpu.shares", "1024", "\0"sv, EINVAL, "1024\n"},
    // cpu.idle: write_s64, 0 or 1; an idle group has weight 3 and refuses
    // weight writes; leaving idle restores the default weight, not the old.
    {"cpu", "cpu.idle", "0", "1", 0, "1\n"},
    {"cpu", "cpu.idle", "0", "2", EINVAL, "0\n"},
    {"cpu", "cpu.idle", "0", "-1", EINVAL, "0\n"},
    {"cpu", "cpu.idle", "0", " 1", EINVAL, "0\n"},
    {"cpu", "cpu.idle", "0", "1\n", 0, "1\n"},
    {"cpu", "cpu.idle", "0", "0x1", 0, "1\n"},
    {"cpu", "cpu.idle", "0", "+1", 0, "1\n"},
    {"cpu", "cpu.idle", "0", "99999999999999999999", ERANGE, "0\n"},
    {"cpu", "cpu.shares", "2048", "2048", 0, "2048\n"},
    {"cpu", "cpu.idle", "0", "1", 0, "1\n"},
    {"cpu", "cpu.shares", nullptr, "", 0, "3\n"},
    {"cpu", "cpu.shares", nullptr, "500", EINVAL, "3\n"},
    {"cpu", "cpu.idle", nullptr, "0", 0, "0\n"},
    {"cpu", "cpu.shares", nullptr, "", 0, "1024\n"},
    {"cpu", "cpu.cfs_quota_us", "-1", "50000", 0, "50000\n"},
    {"cpu", "cpu.cfs_quota_us", "-1", "-2", 0, "-1\n"},
    {"cpu", "cpu.cfs_quota_us", "-1", "0", EINVAL, "-1\n"},
    {"cpu", "cpu.cfs_quota_us", "-1", "999", EINVAL, "-1\n"},
    {"cpu", "cpu.cfs_quota_us", "-1", "1000", 0, "1000\n"},
    {"cpu", "cpu.cfs_quota_us", "-1", "max", EINVAL, "-1\n"},
    {"cpu", "cpu.cfs_quota_us", "-1", " 5000", EINVAL, "-1\n"},
    {"cpu", "cpu.cfs_quota_us", "-1", "5000\n", 0, "5000\n"},
    {"cpu", "cpu.cfs_quota_us", "-1", "0x1000", 0, "4096\n"},
    {"cpu", "cpu.cfs_quota_us", "-1", "-0x1", 0, "-1\n"},
    {"cpu", "cpu.cfs_quota_us", "-1", "17592186044415", 0, "17592186044415\n"},
    {"cpu", "cpu.cfs_quota_us", "-1", "17592186044416", EINVAL, "-1\n"},
    {"cpu", "cpu.cfs_quota_us", "-1", "9223372036854775807", EINVAL, "-1\n"},
    {"cpu", "cpu.cfs_quota_us", "-1", "9223372036854775808", ERANGE, "-1\n"},
    {"cpu", "cpu.cfs_quota_us", "-1", "50000\0junk"sv, 0, "50000\n"},
    {"cpu", "cpu.cfs_quota_us", "-1", "\0"sv, EINVAL, "-1\n"},
    {"cpu", "cpu.cfs_quota_us", "-1", "", 0, "-1\n"},
    {"cpu", "cpu.cfs_quota_us", "-1", "-9223372036854775808", 0, "-1\n"},
    {"cpu", "cpu.cfs_period_us", "100000", "1000", 0, "1000\n"},
    {"cpu", "cpu.cfs_period_us", "100000", "999", EINVAL, "100000\n"},
    {"cpu", "cpu.cfs_period_us", "100000", "1000000", 0, "1000000\n"},
    {"cpu", "cpu.cfs_period_us", "100000", "1000001", EINVAL, "100000\n"},
    {"cpu", "cpu.cfs_period_us", "100000", "0", EINVAL, "100000\n"},
    {"cpu", "cpu.cfs_period_us", "100000", "-1", EINVAL, "100000\n"},
    {"cpu", "cpu.cfs_period_us", "100000", "18446744073709551615", EINVAL, "100000\n"},
    {"cpu", "cpu.cfs_period_us", "100000", "50000\n", 0, "50000\n"},
    {"cpu", "cpu.cfs_period_us", "100000", " 50000", EINVAL, "100000\n"},
    {"cpu", "cpu.cfs_period_us", "100000", "0x1000", 0, "4096\n"},
    {"cpu", "cpu.cfs_period_us", "100000", "100000", 0, "100000\n"},
    {"cpu", "cpu.cfs_burst_us", "0", "1000", 0, "1000\n"},
    {"cpu", "cpu.cfs_burst_us", "0", "-1", EINVAL, "0\n"},
    {"cpu", "cpu.cfs_burst_us", "0", "17592186044416", 0, "17592186044416\n"},
    {"cpu", "cpu.cfs_burst_us", "0", "18446744073709551615", EINVAL, "0\n"},
    {"cpu", "cpu.cfs_burst_us", "0", " 5", EINVAL, "0\n"},
    {"cpu", "cpu.cfs_burst_us", "0", "0x10", 0, "16\n"},
    {"cpu", "cpu.cfs_burst_us", "0", "0", 0, "0\n"},
    // With a quota, the burst is at most the quota; quota + burst < 2^44.
    {"cpu", "cpu.cfs_quota_us", "-1", "50000", 0, "50000\n"},
    {"cpu", "cpu.cfs_burst_us", "0", "50000", 0, "50000\n"},
    {"cpu", "cpu.cfs_burst_us", "0", "50001", EINVAL, "0\n"},
    {"cpu", "cpu.cfs_burst_us", "0", "40000", 0, "40000\n"},
    {"cpu", "cpu.cfs_quota_us", nullptr, "30000", EINVAL, "50000\n"},
    {"cpu", "cpu.cfs_quota_us", nullptr, "17592186044415", EINVAL, "50000\n"},
    {"cpu", "cpu.cfs_burst_us", "0", "0", 0, "0\n"},
    {"cpu", "cpu.cfs_quota_us", "-1", "-1", 0, "-1\n"},
    {"cpu", "cpu.stat", nullptr, "0", EINVAL, nullptr},
    {"cpu", "cpu.stat.local", nullptr, "0", EINVAL, "throttled_time 0\n"},
    // cpuacct.usage: write_u64, and only 0 (a reset).
    {"cpuacct", "cpuacct.usage", nullptr, "0", 0, "0\n"},
    {"cpuacct", "cpuacct.usage", nullptr, "1", EINVAL, "0\n"},
    {"cpuacct", "cpuacct.usage", nullptr, "0\n", 0, "0\n"},
    {"cpuacct", "cpuacct.usage", nullptr, " 0", EINVAL, "0\n"},
    {"cpuacct", "cpuacct.usage", nullptr, "-0", EINVAL, "0\n"},
    {"cpuacct", "cpuacct.usage", nullptr, "0x0", 0, "0\n"},
    {"cpuacct", "cpuacct.usage", nullptr, "", 0, "0\n"},
    {"cpuacct", "cpuacct.usage_user", nullptr, "0", EINVAL, "0\n"},
    {"cpuacct", "cpuacct.usage_sys", nullptr, "0", EINVAL, "0\n"},
    {"cpuacct", "cpuacct.stat", nullptr, "0", EINVAL, "user 0\nsystem 0\n"},
};

std::string show(std::string_view s) { return testing::show_bytes(s); }

// Where the table's writes go: paths are "<dir>/<file>" below the test
// group of each hierarchy directory.
class Backend {
 public:
  virtual ~Backend() = default;
  // 0 or the errno of one write of all of `text`.
  virtual int write(const std::string& dir, const std::string& file, std::string_view text) = 0;
  // The file's text, or "<ERRNO>".
  virtual std::string read(const std::string& dir, const std::string& file) = 0;
};

// Replays the table, expecting every answer; `name` says whose.
void replay(Backend& b, const char* name, bool two_cpus_ok) {
  int skipped = 0;
  for (const FileCase& c : kCases) {
    if (c.two_cpus && !two_cpus_ok) {
      ++skipped;
      continue;
    }
    const std::string where = std::string(c.dir) + "/" + c.file + " <- " + show(c.text);
    if (c.reset) {
      ASSERT_EQ(b.write(c.dir, c.file, c.reset), 0) << name << ": reset " << where;
    }
    const int err = b.write(c.dir, c.file, c.text);
    EXPECT_EQ(err, c.err) << name << ": " << where << " gave "
                          << (err ? errno_name(err) : "success") << ", the host "
                          << (c.err ? errno_name(c.err) : "success");
    if (c.after) EXPECT_EQ(b.read(c.dir, c.file), c.after) << name << ": " << where;
  }
  if (skipped) std::printf("%s: %d CPU-list cases skipped (they assume CPUs 0-1)\n", name, skipped);
}

// ------------------------------------------------------------ cgcore

constexpr const char* kGroup = "t";

class CgcoreBackend : public Backend {
 public:
  CgcoreBackend() {
    BuiltinOptions options;
    options.cpuset_topology = CpusetTopology::uniform(2, 1);
    options.cpuset_topology->nr_cpus_config = 256;  // the host's NR_CPUS
    Result<BuiltinControllers> c = register_builtin_controllers(engine_, options);
    EXPECT_TRUE(c.ok()) << c.status().message();
    auto f = CgroupFs::create(engine_, "hybrid");
    EXPECT_TRUE(f.ok()) << f.status().message();
    fs_ = std::move(f.value());
    writer_.pid = *engine_.spawn({});
    for (const char* dir : {"pids", "memory", "cpuset", "cpu", "cpuacct", "unified"})
      mkdir(std::string("/") + dir, kGroup);
    for (const auto& sub : kSubgroups) mkdir(std::string("/") + sub[0] + "/" + kGroup, sub[1]);
    EXPECT_EQ(write("cpuset", "cpuset.mems", "0"), 0);
    EXPECT_EQ(write("cpuset", "cpuset.cpus", "0"), 0);
  }
  int write(const std::string& dir, const std::string& file, std::string_view text) override {
    const int err = fs_->write_path(path(dir, file), text, writer_).err();
    // As on the host, the writer goes back to the roots after each move
    // (a populated p would keep t from turning threaded).
    if (file.ends_with("tasks") || file.ends_with("cgroup.procs")) {
      const std::string pid = std::to_string(writer_.pid);
      EXPECT_TRUE(fs_->write_path("/pids/cgroup.procs", pid, writer_).ok());
      EXPECT_TRUE(fs_->write_path("/unified/cgroup.procs", pid, writer_).ok());
    }
    return err;
  }
  std::string read(const std::string& dir, const std::string& file) override {
    auto r = fs_->read_path(path(dir, file), writer_);
    return r.ok() ? r.value() : "<" + std::string(errno_name(r.err())) + ">";
  }
  Engine& engine() { return engine_; }
  CgroupFs& fs() { return *fs_; }
  const Caller& writer() const { return writer_; }

 private:
  static std::string path(const std::string& dir, const std::string& file) {
    return "/" + dir + "/" + kGroup + "/" + file;
  }
  void mkdir(const std::string& parent, const char* name) {
    auto dir = fs_->resolve(parent);
    ASSERT_TRUE(dir.ok()) << parent;
    ASSERT_TRUE(fs_->mkdir(*dir, name, 0755, writer_).ok()) << parent << "/" << name;
  }

  Engine engine_;
  std::unique_ptr<CgroupFs> fs_;
  Caller writer_;
};

TEST(KernelFiles, CgcoreAnswersAsTheHost) {
  CgcoreBackend b;
  replay(b, "cgcore", true);
  EXPECT_TRUE(b.engine().check_invariants().ok());
}

// The whole write is reported taken, bytes after the NUL included.
TEST(KernelFiles, WriteWithANulTakesEveryByte) {
  CgcoreBackend b;
  auto ino = b.fs().resolve("/pids/t/pids.max");
  ASSERT_TRUE(ino.ok());
  auto f = b.fs().open(*ino, false, true, b.writer());
  ASSERT_TRUE(f.ok());
  Result<size_t> n = b.fs().write(**f, "max\0junk"sv);
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(n.value(), 8u);
  n = b.fs().write(**f, "7\0"sv);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n.value(), 2u);
  EXPECT_EQ(b.read("pids", "pids.max"), "7\n");
  EXPECT_EQ(b.fs().write(**f, ""sv).value(), 0u);  // zero-length: nothing happens
  EXPECT_EQ(b.read("pids", "pids.max"), "7\n");
}

// ------------------------------------------------------------ the kernel

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The test process's cgroup path in the hierarchy whose /proc/self/cgroup
// line has this controller field ("pids", "" for v2).
std::string own_cgroup(const std::string& field) {
  std::istringstream in(slurp("/proc/self/cgroup"));
  std::string line;
  while (std::getline(in, line)) {
    size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    if (line.substr(a + 1, b - a - 1) == field) return line.substr(b + 1);
  }
  return "/";
}

class HostBackend : public Backend {
 public:
  static constexpr const char* kRoot = "/sys/fs/cgroup";

  // Empty if the host can replay the table, else why not.
  static std::string unusable() {
    if (::geteuid() != 0) return "needs root";
    for (const char* f : {"pids/tasks", "memory/memory.limit_in_bytes", "cpuset/cpuset.cpus",
                          "cpu/cpu.shares", "cpuacct/cpuacct.usage",
                          "unified/cgroup.subtree_control"}) {
      const std::string p = std::string(kRoot) + "/" + f;
      if (::access(p.c_str(), W_OK) != 0)
        return "needs the hybrid layout with pids, memory, cpuset, cpu, cpuacct on v1 and a writable " + p;
    }
    return "";
  }

  HostBackend()
      : group_("cgcore-parse-test-" + std::to_string(::getpid()) + "-" +
               std::to_string(std::chrono::steady_clock::now().time_since_epoch().count())),
        home_pids_(own_cgroup("pids")),
        home_unified_(own_cgroup("")) {
    for (const char* dir : {"pids", "memory", "cpuset", "cpu", "cpuacct", "unified"})
      make(std::string(dir));
    for (const auto& sub : kSubgroups) make(std::string(sub[0]) + "/" + sub[1]);
    EXPECT_EQ(write("cpuset", "cpuset.mems", "0"), 0);
    EXPECT_EQ(write("cpuset", "cpuset.cpus", "0"), 0);
  }
  // Also on failure: go home, then remove every directory made, deepest first.
  ~HostBackend() override {
    go_home();
    for (auto it = made_.rbegin(); it != made_.rend(); ++it)
      if (::rmdir(it->c_str()) != 0)
        std::fprintf(stderr, "kernel_files_test: cannot remove %s: %s\n", it->c_str(),
                     std::strerror(errno));
  }

  int write(const std::string& dir, const std::string& file, std::string_view text) override {
    const std::string p = path(dir, file);
    int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    int err = 0;
    if (::write(fd, text.data(), text.size()) < 0) err = errno;
    ::close(fd);
    if (file.ends_with("tasks") || file.ends_with("cgroup.procs")) go_home();
    return err;
  }
  std::string read(const std::string& dir, const std::string& file) override {
    const std::string p = path(dir, file);
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "<" + std::string(errno_name(errno)) + ">";
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    const int err = n < 0 ? errno : 0;
    ::close(fd);
    return err ? "<" + std::string(errno_name(err)) + ">" : out;
  }

  // Whether the host's cpuset sees exactly CPUs 0-1 and node 0.
  static bool two_cpus() {
    return slurp(std::string(kRoot) + "/cpuset/cpuset.cpus") == "0-1\n" &&
           slurp(std::string(kRoot) + "/cpuset/cpuset.mems") == "0\n" &&
           slurp("/sys/devices/system/cpu/possible") == "0-1\n" &&
           slurp("/sys/devices/system/cpu/kernel_max") == "255\n";
  }

 private:
  std::string path(const std::string& dir, const std::string& file) const {
    return std::string(kRoot) + "/" + dir + "/" + group_ + "/" + file;
  }
  void make(const std::string& rel) {
    size_t slash = rel.find('/');
    std::string p = std::string(kRoot) + "/" + rel.substr(0, slash) + "/" + group_;
    if (slash != std::string::npos) p += rel.substr(slash);
    if (::mkdir(p.c_str(), 0755) == 0) {
      made_.push_back(p);
    } else {
      ADD_FAILURE() << "mkdir " << p << ": " << std::strerror(errno);
    }
  }
  // Moves the test process back where it started (the "0" writes move it).
  void go_home() {
    const std::string pid = std::to_string(::getpid());
    for (const auto& [dir, home] : {std::pair<std::string, std::string>{"pids", home_pids_},
                                    {"unified", home_unified_}}) {
      const std::string p = std::string(kRoot) + "/" + dir + home + "/cgroup.procs";
      int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) continue;
      if (::write(fd, pid.data(), pid.size()) < 0)
        std::fprintf(stderr, "kernel_files_test: cannot return to %s: %s\n", p.c_str(),
                     std::strerror(errno));
      ::close(fd);
    }
  }

  std::string group_, home_pids_, home_unified_;
  std::vector<std::string> made_;
};

TEST(KernelFiles, HostAnswersAsRecorded) {
  if (std::string why = HostBackend::unusable(); !why.empty())
    GTEST_SKIP() << "replaying the table on the kernel's own files " << why;
  HostBackend b;
  replay(b, "host", HostBackend::two_cpus());
}

// rename(2) of a cgroup directory, as root and as a user who owns nothing:
// the VFS's checks (ENOENT, then EACCES without write access to both
// directories) come before cgroupfs' own answers (v2 EPERM, v1 EIO across
// parents, ENOTDIR for a file). Paths are below a test group G of the
// hierarchy directory; "x" and "y" are cgroups, "x/c" one below x.
struct RenameCase {
  const char* dir;
  const char* from;
  const char* to;
  bool as_user;
  int err;
};
const RenameCase kRenames[] = {
    {"unified", "x", "z", true, EACCES},
    {"unified", "cgroup.procs", "z", true, EACCES},
    {"unified", "nosuch", "z", true, ENOENT},
    {"unified", "x", "z", false, EPERM},
    {"unified", "cgroup.procs", "z", false, EPERM},
    {"pids", "x", "z", true, EACCES},
    {"pids", "x/c", "z", true, EACCES},
    {"pids", "tasks", "z", true, EACCES},
    {"pids", "x/c", "z", false, EIO},
    {"pids", "tasks", "z", false, ENOTDIR},
    {"pids", "x", "y", false, EEXIST},
};
constexpr uint32_t kNobody = 65534;

TEST(KernelFiles, RenameAnswersAsTheHost) {
  // cgcore.
  Engine engine;
  ASSERT_TRUE(register_builtin_controllers(engine).ok());
  auto f = CgroupFs::create(engine, "hybrid");
  ASSERT_TRUE(f.ok());
  CgroupFs& fs = *f.value();
  for (const char* d : {"pids", "unified"})
    for (const char* sub : {"", "/x", "/x/c", "/y"}) {
      const std::string path = std::string("/") + d + "/G" + sub;
      const size_t slash = path.rfind('/');
      ASSERT_TRUE(fs.mkdir(*fs.resolve(path.substr(0, slash)), path.substr(slash + 1), 0755, Caller{}).ok()) << path;
    }
  Caller user;
  user.uid = user.gid = kNobody;
  auto cg_rename = [&](const RenameCase& c) {
    const std::string from = std::string("/") + c.dir + "/G/" + c.from;
    const std::string to = std::string("/") + c.dir + "/G/" + c.to;
    const size_t a = from.rfind('/'), b = to.rfind('/');
    return fs.rename(*fs.resolve(from.substr(0, a)), from.substr(a + 1), *fs.resolve(to.substr(0, b)),
                     to.substr(b + 1), c.as_user ? user : Caller{})
        .err();
  };
  for (const RenameCase& c : kRenames)
    EXPECT_EQ(cg_rename(c), c.err) << "cgcore: " << c.dir << " " << c.from << " -> " << c.to
                                   << (c.as_user ? " as a user" : " as root");

  // The kernel.
  if (std::string why = HostBackend::unusable(); !why.empty())
    GTEST_SKIP() << "replaying the renames on the kernel's own files " << why;
  const std::string group = "cgcore-rename-test-" + std::to_string(::getpid());
  std::vector<std::string> made;
  for (const char* d : {"pids", "unified"})
    for (const char* sub : {"", "/x", "/x/c", "/y"}) {
      const std::string p = std::string(HostBackend::kRoot) + "/" + d + "/" + group + sub;
      if (::mkdir(p.c_str(), 0755) == 0) made.push_back(p);
      else ADD_FAILURE() << "mkdir " << p << ": " << std::strerror(errno);
    }
  for (const RenameCase& c : kRenames) {
    const std::string base = std::string(HostBackend::kRoot) + "/" + c.dir + "/" + group + "/";
    const std::string from = base + c.from, to = base + c.to;
    int err = 0;
    if (c.as_user) {
      // In a child: the test process keeps its root credentials.
      const pid_t pid = ::fork();
      if (pid == 0) {
        if (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
            ::setresuid(kNobody, kNobody, kNobody) != 0)
          ::_exit(255);
        ::_exit(::rename(from.c_str(), to.c_str()) == 0 ? 0 : errno);
      }
      int status = 0;
      ::waitpid(pid, &status, 0);
      err = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    } else {
      err = ::rename(from.c_str(), to.c_str()) == 0 ? 0 : errno;
    }
    EXPECT_EQ(err, c.err) << "host: " << c.dir << " " << c.from << " -> " << c.to
                          << (c.as_user ? " as a user" : " as root");
    if (err == 0) (void)::rename(to.c_str(), from.c_str());
  }
  for (auto it = made.rbegin(); it != made.rend(); ++it)
    if (::rmdir(it->c_str()) != 0)
      std::fprintf(stderr, "kernel_files_test: cannot remove %s: %s\n", it->c_str(), std::strerror(errno));
}

}  // namespace
}  // namespace cgcore::fs
