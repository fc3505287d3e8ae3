#include "core/parse.h"

#include <limits>

namespace cgcore {

namespace {

// The value of a digit in bases up to 16, or 16 for anything else. Only
// ASCII letters count: the kernel folds case by setting bit 0x20, which maps
// nothing but 'A'-'F' onto 'a'-'f'.
unsigned digit_value(char c) {
  if (c >= '0' && c <= '9') return static_cast<unsigned>(c - '0');
  if (c >= 'a' && c <= 'f') return static_cast<unsigned>(c - 'a' + 10);
  if (c >= 'A' && c <= 'F') return static_cast<unsigned>(c - 'A' + 10);
  return 16;
}

bool valid_base(unsigned base) { return base == 0 || (base >= 2 && base <= 16); }

bool is_hex_prefix(std::string_view s) {
  return s.size() >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
}

// Resolves base 0 and drops the "0x" prefix where the base allows one.
// Base 0 becomes 16 only when a hex digit follows the "0x": "0x" alone and
// "0xg" are octal zero followed by junk.
std::string_view fix_radix(std::string_view s, unsigned& base) {
  if (base == 0) {
    if (!s.empty() && s[0] == '0')
      base = is_hex_prefix(s) && s.size() > 2 && digit_value(s[2]) < 16 ? 16 : 8;
    else
      base = 10;
  }
  if (base == 16 && is_hex_prefix(s)) s.remove_prefix(2);
  return s;
}

// kstrtoull without the sign: the part kstrtoll shares.
Result<uint64_t> unsigned_body(std::string_view s, unsigned base) {
  if (!valid_base(base)) return Status::Error(EINVAL, "unsupported number base");
  s = fix_radix(s, base);
  const Digits d = parse_digits(s, base);
  if (d.overflow) return Status::Error(ERANGE, "number out of range");
  if (d.used == 0) return Status::Error(EINVAL, "not a number");
  s.remove_prefix(d.used);
  if (!s.empty() && s[0] == '\n') s.remove_prefix(1);
  if (!s.empty()) return Status::Error(EINVAL, "trailing characters after the number");
  return d.value;
}

}  // namespace

bool kisspace(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  return u == ' ' || (u >= '\t' && u <= '\r') || u == 0xa0;
}

std::string_view strstrip(std::string_view s) {
  while (!s.empty() && kisspace(s.front())) s.remove_prefix(1);
  while (!s.empty() && kisspace(s.back())) s.remove_suffix(1);
  return s;
}

std::string_view until_nul(std::string_view s) {
  const size_t n = s.find('\0');
  return n == std::string_view::npos ? s : s.substr(0, n);
}

Digits parse_digits(std::string_view s, unsigned base) {
  Digits d;
  if (base < 2 || base > 16) return d;
  for (char c : s) {
    const unsigned v = digit_value(c);
    if (v >= base) break;
    if (d.value > (std::numeric_limits<uint64_t>::max() - v) / base) d.overflow = true;
    d.value = d.value * base + v;  // unsigned: wraps past 2^64 - 1
    ++d.used;
  }
  return d;
}

Result<uint64_t> kstrtoull(std::string_view s, unsigned base) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  return unsigned_body(s, base);
}

Result<int64_t> kstrtoll(std::string_view s, unsigned base) {
  if (!s.empty() && s[0] == '-') {
    Result<uint64_t> m = unsigned_body(s.substr(1), base);
    if (!m.ok()) return m.status();
    constexpr uint64_t kMinMagnitude = uint64_t{1} << 63;  // |INT64_MIN|
    if (*m > kMinMagnitude) return Status::Error(ERANGE, "number out of range");
    return static_cast<int64_t>(0 - *m);  // two's complement, defined in C++20
  }
  Result<uint64_t> m = kstrtoull(s, base);
  if (!m.ok()) return m.status();
  if (*m > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    return Status::Error(ERANGE, "number out of range");
  return static_cast<int64_t>(*m);
}

Result<uint32_t> kstrtouint(std::string_view s, unsigned base) {
  Result<uint64_t> v = kstrtoull(s, base);
  if (!v.ok()) return v.status();
  if (*v > std::numeric_limits<uint32_t>::max()) return Status::Error(ERANGE, "number out of range");
  return static_cast<uint32_t>(*v);
}

Result<int32_t> kstrtoint(std::string_view s, unsigned base) {
  Result<int64_t> v = kstrtoll(s, base);
  if (!v.ok()) return v.status();
  if (*v < std::numeric_limits<int32_t>::min() || *v > std::numeric_limits<int32_t>::max())
    return Status::Error(ERANGE, "number out of range");
  return static_cast<int32_t>(*v);
}

Prefix simple_strtoull(std::string_view s, unsigned base) {
  if (!valid_base(base)) return {};
  const std::string_view body = fix_radix(s, base);
  const size_t prefix = s.size() - body.size();
  const Digits d = parse_digits(body, base);
  return {d.value, prefix + d.used};
}

Prefix memparse(std::string_view s) {
  Prefix p = simple_strtoull(s, 0);
  if (p.used < s.size()) {
    const char c = s[p.used];
    unsigned shift = 0;
    switch (c) {
      case 'K': case 'k': shift = 10; break;
      case 'M': case 'm': shift = 20; break;
      case 'G': case 'g': shift = 30; break;
      case 'T': case 't': shift = 40; break;
      case 'P': case 'p': shift = 50; break;
      case 'E': case 'e': shift = 60; break;
      default: break;
    }
    if (shift) {
      p.value <<= shift;  // unsigned: the high bits fall off, as on the host
      ++p.used;
    }
  }
  return p;
}

}  // namespace cgcore
