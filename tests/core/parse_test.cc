// core/parse: the kernel's number and white-space rules. Every expected
// value below was checked on the host (Linux 6.18, one write(2) per case)
// through a control file that reads the text with the function under test:
//   kstrtoull  notify_on_release, cgroup.clone_children, cpuset flags (no strip)
//   kstrtoll   pids.max (after strip), cpuset.sched_relax_domain_level (no strip)
//   kstrtoint  cgroup.max.depth, cgroup.freeze, cgroup.procs (after strip)
//   memparse   memory.limit_in_bytes (after strip; read back page-rounded)
//   kisspace   pids.max with every byte before and after "5"
// Where a file's own range check hides the parsed value (e.g. pids.max
// refuses INT64_MAX with EINVAL), the errno shows that parsing succeeded;
// tests/fs/kernel_files_test.cc replays the file-level answers against
// cgcore and, when run as root, against the kernel itself.
#include "core/parse.h"
#include "tests/support/text.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>

namespace cgcore {
namespace {

std::string show(std::string_view s) { return testing::show_bytes(s); }

template <typename T>
struct IntCase {
  std::string_view text;
  unsigned base;
  int err;  // 0: parses to `value`
  T value;
};

template <typename T, typename F>
void run(const IntCase<T>* begin, const IntCase<T>* end, F parse) {
  for (const IntCase<T>* c = begin; c != end; ++c) {
    Result<T> r = parse(c->text, c->base);
    EXPECT_EQ(r.err(), c->err) << show(c->text) << " base " << c->base << ": "
                               << r.status().message();
    if (c->err == 0 && r.ok()) {
      EXPECT_EQ(r.value(), c->value) << show(c->text) << " base " << c->base;
    }
    if (!r.ok()) EXPECT_FALSE(r.status().message().empty()) << show(c->text);
  }
}

constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();
constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kI64Min = std::numeric_limits<int64_t>::min();

const IntCase<uint64_t> kStrtoullCases[] = {
    {"1", 0, 0, 1},
    {"0", 0, 0, 0},
    {"1\n", 0, 0, 1},
    {"+1", 0, 0, 1},
    {"0x1", 0, 0, 1},
    {"0x10", 0, 0, 16},
    {"0X1f", 0, 0, 31},
    {"07", 0, 0, 7},
    {"010", 0, 0, 8},
    {"00000000000000000000000000005", 0, 0, 5},
    {"18446744073709551615", 0, 0, kU64Max},
    {"0xffffffffffffffff", 0, 0, kU64Max},
    // Not stripped: the write_u64 files refuse any blank but one '\n'.
    {" 1", 0, EINVAL, 0},
    {"1 ", 0, EINVAL, 0},
    {"1\n\n", 0, EINVAL, 0},
    {"\n", 0, EINVAL, 0},
    {"1\xa0", 0, EINVAL, 0},
    {"\xa0" "1", 0, EINVAL, 0},
    {"", 0, EINVAL, 0},
    // Signs and prefixes.
    {"-1", 0, EINVAL, 0},
    {"-0", 0, EINVAL, 0},
    {"++1", 0, EINVAL, 0},
    {"+", 0, EINVAL, 0},
    {"08", 0, EINVAL, 0},
    {"0x", 0, EINVAL, 0},
    {"0x\n", 0, EINVAL, 0},
    {"0xg", 0, EINVAL, 0},
    {"00x5", 0, EINVAL, 0},
    {"max", 0, EINVAL, 0},
    {"5x", 0, EINVAL, 0},
    {"1_0", 0, EINVAL, 0},
    // Overflow is reported before what follows the digits.
    {"18446744073709551616", 0, ERANGE, 0},
    {"99999999999999999999", 0, ERANGE, 0},
    {"99999999999999999999x", 0, ERANGE, 0},
    {"99999999999999999999\n\n", 0, ERANGE, 0},
    {"0xffffffffffffffffff", 0, ERANGE, 0},
    // Explicit bases (the documented kstrtoull contract).
    {"ff", 16, 0, 255},
    {"0xff", 16, 0, 255},
    {"0XFF\n", 16, 0, 255},
    {"0x", 16, EINVAL, 0},
    {"10", 8, 0, 8},
    {"19", 8, EINVAL, 0},
    {"010", 10, 0, 10},
    {"0x10", 10, EINVAL, 0},
    {"101", 2, 0, 5},
    {"5", 1, EINVAL, 0},
    {"5", 17, EINVAL, 0},
};

TEST(Parse, Kstrtoull) {
  run(std::begin(kStrtoullCases), std::end(kStrtoullCases),
      [](std::string_view s, unsigned b) { return kstrtoull(s, b); });
}

const IntCase<int64_t> kStrtollCases[] = {
    {"5", 0, 0, 5},
    {"5\n", 0, 0, 5},
    {"+5", 0, 0, 5},
    {"-1", 0, 0, -1},
    {"-0", 0, 0, 0},
    {"-0x5", 0, 0, -5},
    {"0x10", 0, 0, 16},
    {"010", 0, 0, 8},
    {"9223372036854775807", 0, 0, kI64Max},
    {"-9223372036854775808", 0, 0, kI64Min},
    {"9223372036854775808", 0, ERANGE, 0},
    {"-9223372036854775809", 0, ERANGE, 0},
    {"18446744073709551615", 0, ERANGE, 0},
    {"-99999999999999999999", 0, ERANGE, 0},
    {"99999999999999999999x", 0, ERANGE, 0},
    {"-", 0, EINVAL, 0},
    {"+", 0, EINVAL, 0},
    {"-+5", 0, EINVAL, 0},
    {"+-5", 0, EINVAL, 0},
    {"--5", 0, EINVAL, 0},
    {" 1", 0, EINVAL, 0},
    {"5\n\n", 0, EINVAL, 0},
    {"5 6", 0, EINVAL, 0},
    {"08", 0, EINVAL, 0},
    {"", 0, EINVAL, 0},
    {"-ff", 16, 0, -255},
};

TEST(Parse, Kstrtoll) {
  run(std::begin(kStrtollCases), std::end(kStrtollCases),
      [](std::string_view s, unsigned b) { return kstrtoll(s, b); });
}

const IntCase<int32_t> kStrtointCases[] = {
    {"5", 0, 0, 5},
    {"+5", 0, 0, 5},
    {"-0", 0, 0, 0},
    {"0x10", 0, 0, 16},
    {"2147483647", 0, 0, std::numeric_limits<int32_t>::max()},
    {"-2147483648", 0, 0, std::numeric_limits<int32_t>::min()},
    {"2147483648", 0, ERANGE, 0},
    {"-2147483649", 0, ERANGE, 0},
    {"99999999999999999999", 0, ERANGE, 0},
    {"99999999999999999999x", 0, ERANGE, 0},
    {"5x", 0, EINVAL, 0},
    {"\n", 0, EINVAL, 0},
    {"", 0, EINVAL, 0},
};

TEST(Parse, Kstrtoint) {
  run(std::begin(kStrtointCases), std::end(kStrtointCases),
      [](std::string_view s, unsigned b) { return kstrtoint(s, b); });
}

const IntCase<uint32_t> kStrtouintCases[] = {
    {"4294967295", 0, 0, std::numeric_limits<uint32_t>::max()},
    {"+0x10", 0, 0, 16},
    {"4294967296", 0, ERANGE, 0},
    {"99999999999999999999x", 0, ERANGE, 0},
    {"-1", 0, EINVAL, 0},
    {"1 ", 0, EINVAL, 0},
};

TEST(Parse, Kstrtouint) {
  run(std::begin(kStrtouintCases), std::end(kStrtouintCases),
      [](std::string_view s, unsigned b) { return kstrtouint(s, b); });
}

struct PrefixCase {
  std::string_view text;
  uint64_t value;
  size_t used;
};

// The host's memory.limit_in_bytes accepted the text exactly when `used`
// is its length, and read back value / 4096 * 4096 (capped at the page
// counter's maximum, 9223372036854771712).
const PrefixCase kMemparseCases[] = {
    {"1k", 1024, 2},
    {"1K", 1024, 2},
    {"1M", 1 << 20, 2},
    {"1g", uint64_t{1} << 30, 2},
    {"1T", uint64_t{1} << 40, 2},
    {"1p", uint64_t{1} << 50, 2},
    {"1E", uint64_t{1} << 60, 2},
    {"1e", uint64_t{1} << 60, 2},
    {"7E", uint64_t{7} << 60, 2},
    {"4096", 4096, 4},
    {"0x1000", 4096, 6},
    {"010000", 4096, 6},
    {"", 0, 0},
    {"k", 0, 1},                              // accepted: 0
    {"1kk", 1024, 2},                         // EINVAL
    {"1kb", 1024, 2},                         // EINVAL
    {"1 k", 1, 1},                            // EINVAL
    {"1.5k", 1, 1},                           // EINVAL
    {"1x", 1, 1},                             // EINVAL
    {"x", 0, 0},                              // EINVAL
    {"+4096", 0, 0},                          // EINVAL: no sign
    {"-1", 0, 0},                             // EINVAL (v1's "-1" is a word)
    {"08", 0, 1},                             // EINVAL
    {"0x", 0, 1},                             // EINVAL: octal 0, then "x"
    {"0xk", 0, 1},                            // EINVAL
    {"0x1k", 1024, 4},
    // Wrapping modulo 2^64, in the digits and in the suffix.
    {"18446744073709551615", kU64Max, 20},    // read back capped
    {"18446744073709551616", 0, 20},          // read back 0
    {"18446744073709559808", 8192, 20},       // read back 8192
    {"36893488147419107328", 4096, 20},       // 2^65 + 4096: read back 4096
    {"99999999999999999999", 7766279631452241919u, 20},  // read back ...237824
    {"15E", uint64_t{15} << 60, 3},           // read back capped
    {"16E", 0, 3},                            // read back 0
    {"17E", uint64_t{1} << 60, 3},            // read back 1E
    {"16777216T", 0, 9},                      // 2^64: read back 0
};

TEST(Parse, Memparse) {
  for (const PrefixCase& c : kMemparseCases) {
    Prefix p = memparse(c.text);
    EXPECT_EQ(p.value, c.value) << show(c.text);
    EXPECT_EQ(p.used, c.used) << show(c.text);
  }
}

TEST(Parse, SimpleStrtoull) {
  const struct {
    std::string_view text;
    unsigned base;
    uint64_t value;
    size_t used;
  } cases[] = {
      {"12abc", 10, 12, 2}, {"12abc", 16, 0x12abc, 5}, {"0X1F", 0, 31, 4}, {"0x", 16, 0, 2},
      {"0x", 0, 0, 1},      {"777", 8, 511, 3},        {"x", 0, 0, 0},     {"5", 99, 0, 0},
      {"-5", 0, 0, 0},
  };
  for (const auto& c : cases) {
    Prefix p = simple_strtoull(c.text, c.base);
    EXPECT_EQ(p.value, c.value) << show(c.text) << " base " << c.base;
    EXPECT_EQ(p.used, c.used) << show(c.text) << " base " << c.base;
  }
}

TEST(Parse, ParseDigits) {
  Digits d = parse_digits("123abc", 10);
  EXPECT_EQ(d.value, 123u);
  EXPECT_EQ(d.used, 3u);
  EXPECT_FALSE(d.overflow);
  d = parse_digits("18446744073709551615", 10);
  EXPECT_EQ(d.value, kU64Max);
  EXPECT_FALSE(d.overflow);
  d = parse_digits("18446744073709551616", 10);
  EXPECT_EQ(d.value, 0u);  // wrapped
  EXPECT_EQ(d.used, 20u);
  EXPECT_TRUE(d.overflow);
  d = parse_digits("fFg", 16);
  EXPECT_EQ(d.value, 255u);
  EXPECT_EQ(d.used, 2u);
  EXPECT_EQ(parse_digits("g", 16).used, 0u);
  EXPECT_EQ(parse_digits("1", 1).used, 0u);
  EXPECT_EQ(parse_digits("", 10).used, 0u);
}

// Host: of all 255 non-NUL bytes, pids.max accepted "5" followed (or
// preceded) by exactly these, besides digits (and a leading '+').
TEST(Parse, KernelWhiteSpaceSet) {
  std::string spaces;
  for (int c = 0; c < 256; ++c)
    if (kisspace(static_cast<char>(c))) spaces += static_cast<char>(c);
  EXPECT_EQ(spaces, std::string("\t\n\v\f\r \xa0"));
}

TEST(Parse, Strstrip) {
  const struct {
    std::string_view text, stripped;
  } cases[] = {
      {"  5  ", "5"},
      {"\t9\n\n", "9"},
      {"\xa0" "5\xa0", "5"},
      {"\x1c" "5", "\x1c" "5"},  // not white space: pids.max EINVAL
      {"5\x85", "5\x85"},        // nor 0x85
      {"a b", "a b"},
      {" \n\v\f\r\t", ""},
      {"", ""},
  };
  for (const auto& c : cases) EXPECT_EQ(strstrip(c.text), c.stripped) << show(c.text);
}

TEST(Parse, UntilNul) {
  EXPECT_EQ(until_nul(std::string_view("max\0junk", 8)), "max");
  EXPECT_EQ(until_nul(std::string_view("5 \0 6", 5)), "5 ");
  EXPECT_EQ(until_nul(std::string_view("\0", 1)), "");
  EXPECT_EQ(until_nul(std::string_view("\0" "5", 2)), "");
  EXPECT_EQ(until_nul("abc"), "abc");
  EXPECT_EQ(until_nul(""), "");
}

}  // namespace
}  // namespace cgcore
