// Text helpers for test failure messages.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace cgcore::testing {

// A written text as a quoted C string, bytes outside printable ASCII (and
// the backslash) as \xNN, so that NULs, 0xA0 and newlines show in messages.
inline std::string show_bytes(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return "\"" + out + "\"";
}

}  // namespace cgcore::testing
