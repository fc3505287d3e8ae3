// Text parsing with the kernel's rules for control files (kstrto*, strstrip,
// memparse), so that the same inputs are accepted and refused with the same
// errnos as on a real cgroupfs.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/result.h"

namespace cgcore::fs {

// Strips leading and trailing white space (the kernel's strstrip).
std::string_view strip(std::string_view s);

// The kernel's kstrtoll / kstrtoull: optional sign ('-' only for signed),
// base 0 means "0x" hex, leading "0" octal, else decimal; one trailing
// newline allowed; nothing else. EINVAL for a bad format, ERANGE on
// overflow. (No white space is stripped: callers strip where the kernel
// does.)
Result<int64_t> kstrtoll(std::string_view s, int base = 0);
Result<uint64_t> kstrtoull(std::string_view s, int base = 0);
// kstrtoint: as kstrtoll, ERANGE outside int.
Result<int> kstrtoint(std::string_view s, int base = 0);

// The kernel's memparse: a number (base 0) with an optional K/M/G/T/P/E
// suffix (either case), multiplied by 1024 per step. Returns the value and
// how many characters were used.
struct MemParsed {
  uint64_t value;
  size_t used;
};
MemParsed memparse(std::string_view s);

}  // namespace cgcore::fs
