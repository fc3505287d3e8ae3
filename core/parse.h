// The one text parser of cgcore: numbers and white space as the kernel's
// control-file handlers read them, so that cgroupfs accepts and refuses the
// same writes with the same errnos as a real cgroupfs. Every file handler in
// fs/ and controllers/ parses through these functions; none keeps its own
// digit loop or white-space test.
//
// The rules were taken from the kernel's documented semantics and checked
// write by write against Linux 6.18's cgroup files (tests/core/parse_test.cc
// and tests/fs/kernel_files_test.cc hold the observed answers).
//
// Nothing here strips on its own: handlers strip where the kernel does
// (pids.max, cgroup.procs, memory limits...) and not where it does not (the
// u64 / s64 files such as notify_on_release).
#pragma once

#include <cstdint>
#include <string_view>

#include "core/result.h"

namespace cgcore {

// ------------------------------------------------------------ characters

// White space as the kernel's ctype table has it: ' ', '\t', '\n', '\v',
// '\f', '\r' and 0xA0 (the table is Latin-1, where 0xA0 is a no-break
// space; the host strips "5\xa0" written to pids.max). Not 0x1C-0x1F, not
// 0x85.
bool kisspace(char c);

// `s` without white space (kisspace) at either end: what the kernel's
// handlers that strip see. Never fails.
std::string_view strstrip(std::string_view s);

// A written buffer up to (not including) its first NUL, or all of it. The
// kernel hands every handler a C string, so `write(fd, "max\0junk", 8)` is
// read as "max" (and the write still reports 8 bytes). cgroupfs applies this
// once to each write before any handler runs. Never fails.
std::string_view until_nul(std::string_view s);

// ------------------------------------------------------------ integers

// Digits of `base` (2..16; letters a-f in either case) at the start of `s`,
// as many as there are. `used` counts them (0: no digit). The value wraps
// modulo 2^64 once it passes UINT64_MAX, and `overflow` then says so: callers
// that must refuse large values check it, the lenient ones (simple_strtoull)
// keep the wrapped value as the kernel does. Never fails.
struct Digits {
  uint64_t value = 0;
  size_t used = 0;
  bool overflow = false;
};
Digits parse_digits(std::string_view s, unsigned base);

// The kernel's kstrtoull: an optional '+', then digits in `base`, then at
// most one '\n', then nothing. Base 0 picks 16 for "0x"/"0X" followed by a
// hex digit, 8 for any other leading '0', else 10; base 16 also allows a
// "0x"/"0X" prefix. No white space is skipped ("␣5" fails).
// ERANGE if the digits pass UINT64_MAX, which is checked before what follows
// them ("99999999999999999999x" is ERANGE, not EINVAL). EINVAL for no digit,
// anything after the digits but one '\n', or a base that is not 0 or 2..16.
Result<uint64_t> kstrtoull(std::string_view s, unsigned base = 0);

// The kernel's kstrtoll: as kstrtoull, with an optional '-' instead of the
// '+' ("-+5", "+-5" fail). ERANGE outside [INT64_MIN, INT64_MAX] (an
// overflowing magnitude first, as kstrtoull); EINVAL as kstrtoull.
Result<int64_t> kstrtoll(std::string_view s, unsigned base = 0);

// kstrtouint / kstrtoint: as kstrtoull / kstrtoll, ERANGE outside the 32-bit
// range ("2147483648" to cgroup.max.depth is ERANGE); EINVAL as kstrtoull.
Result<uint32_t> kstrtouint(std::string_view s, unsigned base = 0);
Result<int32_t> kstrtoint(std::string_view s, unsigned base = 0);

// A number at the start of a longer text, and where it ends: `used` is the
// position of the first character not taken (0 if nothing was), so the
// caller decides what may follow.
struct Prefix {
  uint64_t value = 0;
  size_t used = 0;
};

// The kernel's simple_strtoull: base 0 or 2..16 picked as for kstrtoull
// (but no sign is accepted), then the digits, wrapping modulo 2^64 past
// UINT64_MAX (the host reads 18446744073709551616 written to
// memory.limit_in_bytes as 0). `used` covers a skipped "0x" prefix and the
// digits; no digit gives value 0 ("x" takes nothing, "0x" in base 0 takes
// the "0" alone). Never fails; a base outside 0, 2..16 takes nothing.
Prefix simple_strtoull(std::string_view s, unsigned base = 0);

// The kernel's memparse: simple_strtoull(s, 0), then at most one suffix
// K, M, G, T, P or E (either case) multiplying by 2^10 .. 2^60. The product
// wraps modulo 2^64 too ("16E" is 0, "17E" 2^60 on the host). A suffix is
// taken even without digits ("k" is 0 with `used` 1, accepted by the host's
// memory.limit_in_bytes). Never fails: the caller checks `used` against the
// length ("1kk", "1 k", "1kb" are refused by the memory files that way).
Prefix memparse(std::string_view s);

}  // namespace cgcore
