#include "fs/parse.h"

#include <cctype>
#include <limits>

namespace cgcore::fs {

std::string_view strip(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

namespace {

int digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return 99;
}

// Parses an unsigned magnitude: base detection, digits, one optional
// trailing newline.
Result<uint64_t> parse_magnitude(std::string_view s, int base) {
  if (base == 0) {
    if (s.size() >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && s.size() > 2 &&
        digit_value(s[2]) < 16) {
      base = 16;
      s.remove_prefix(2);
    } else if (s.size() >= 1 && s[0] == '0') {
      base = 8;
    } else {
      base = 10;
    }
  } else if (base == 16 && s.size() >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
  }
  uint64_t v = 0;
  size_t i = 0;
  bool overflow = false;
  for (; i < s.size(); ++i) {
    int d = digit_value(s[i]);
    if (d >= base) break;
    if (v > (std::numeric_limits<uint64_t>::max() - d) / base) overflow = true;
    v = v * base + d;
  }
  if (i == 0) return Status::Error(EINVAL, "not a number");
  if (i < s.size() && !(i + 1 == s.size() && s[i] == '\n'))
    return Status::Error(EINVAL, "trailing characters after the number");
  if (overflow) return Status::Error(ERANGE, "number out of range");
  return v;
}

}  // namespace

Result<uint64_t> kstrtoull(std::string_view s, int base) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  return parse_magnitude(s, base);
}

Result<int64_t> kstrtoll(std::string_view s, int base) {
  bool neg = !s.empty() && s[0] == '-';
  if (neg) s.remove_prefix(1);
  else if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  Result<uint64_t> m = parse_magnitude(s, base);
  if (!m.ok()) return m.status();
  uint64_t v = m.value();
  if (neg) {
    if (v > uint64_t{1} << 63) return Status::Error(ERANGE, "number out of range");
    return static_cast<int64_t>(0 - v);
  }
  if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    return Status::Error(ERANGE, "number out of range");
  return static_cast<int64_t>(v);
}

Result<int> kstrtoint(std::string_view s, int base) {
  Result<int64_t> v = kstrtoll(s, base);
  if (!v.ok()) return v.status();
  if (v.value() < std::numeric_limits<int>::min() || v.value() > std::numeric_limits<int>::max())
    return Status::Error(ERANGE, "number out of range");
  return static_cast<int>(v.value());
}

MemParsed memparse(std::string_view s) {
  // simple_strtoull with base 0: as many digits as fit, no error.
  size_t i = 0;
  int base = 10;
  if (s.size() >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && s.size() > 2 &&
      digit_value(s[2]) < 16) {
    base = 16;
    i = 2;
  } else if (!s.empty() && s[0] == '0') {
    base = 8;
  }
  uint64_t v = 0;
  size_t start = i;
  for (; i < s.size(); ++i) {
    int d = digit_value(s[i]);
    if (d >= base) break;
    v = v * base + d;
  }
  if (i == start && base != 8) return {0, 0};
  if (i < s.size()) {
    int shift = 0;
    switch (s[i]) {
      case 'E': case 'e': shift += 10; [[fallthrough]];
      case 'P': case 'p': shift += 10; [[fallthrough]];
      case 'T': case 't': shift += 10; [[fallthrough]];
      case 'G': case 'g': shift += 10; [[fallthrough]];
      case 'M': case 'm': shift += 10; [[fallthrough]];
      case 'K': case 'k': shift += 10; ++i; break;
      default: break;
    }
    v <<= shift;
  }
  return {v, i};
}

}  // namespace cgcore::fs
