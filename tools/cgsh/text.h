// Word and number parsing shared by cgsh's line reader (shell.cc) and its
// commands (commands.cc).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "tools/cgsh/shell.h"

namespace cgcore::cgsh {

bool is_name_char(char c);
// A $NAME's name: [A-Za-z_][A-Za-z0-9_]*.
bool valid_name(std::string_view s);
std::string_view trim(std::string_view s);
// A decimal integer, optionally negative, nothing else.
std::optional<int64_t> parse_int(std::string_view s);
// BYTES: a decimal number with an optional K, M, G or T suffix (powers of
// 1024, either case), optionally negative (the controllers refuse it).
std::optional<int64_t> parse_bytes(std::string_view s);
// Whether `w` is the operator `op`: quoting makes it plain text.
bool is_op(const Word& w, std::string_view op);
std::string join(std::span<const Word> words, std::string_view sep = " ");
// What a command prints, ending in a newline unless empty.
std::string printed(std::string out);

}  // namespace cgcore::cgsh
