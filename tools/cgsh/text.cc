#include "tools/cgsh/text.h"

#include "core/parse.h"

#include <algorithm>
#include <cctype>

namespace cgcore::cgsh {

bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

bool valid_name(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), is_name_char);
}

std::string_view trim(std::string_view s) { return strstrip(s); }

std::optional<int64_t> parse_int(std::string_view s) {
  // Plain decimal digits with an optional '-': no '+', no newline (which the
  // kernel's rules would allow but a shell word never means).
  if (s.empty() || s[0] == '+' || s.back() == '\n') return std::nullopt;
  Result<int64_t> v = kstrtoll(s, 10);
  if (!v.ok()) return std::nullopt;
  return v.value();
}

std::optional<int64_t> parse_bytes(std::string_view s) {
  int64_t mult = 1;
  if (!s.empty()) {
    switch (s.back()) {
      case 'k': case 'K': mult = int64_t{1} << 10; break;
      case 'm': case 'M': mult = int64_t{1} << 20; break;
      case 'g': case 'G': mult = int64_t{1} << 30; break;
      case 't': case 'T': mult = int64_t{1} << 40; break;
      default: break;
    }
    if (mult != 1) s.remove_suffix(1);
  }
  std::optional<int64_t> v = parse_int(s);
  if (!v || *v > INT64_MAX / mult || *v < INT64_MIN / mult) return std::nullopt;
  return *v * mult;
}

bool is_op(const Word& w, std::string_view op) { return !w.quoted && w.text == op; }

std::string join(std::span<const Word> words, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i) out += sep;
    out += words[i].text;
  }
  return out;
}

std::string printed(std::string out) {
  if (!out.empty() && out.back() != '\n') out += '\n';
  return out;
}

}  // namespace cgcore::cgsh
