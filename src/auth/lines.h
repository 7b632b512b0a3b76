// Line splitting shared by the password and ACL parsers (internal to tcpms_auth).
// Thread rules: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace tcpms::auth::detail {

// Calls fn(line_number, line) for each line (1-based; '\n' and a trailing '\r' removed);
// stops early and returns false when fn returns false.
template <class Fn>
bool for_each_line(std::string_view text, Fn&& fn) {
  size_t number = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!fn(++number, line)) return false;
  }
  return true;
}

inline std::string_view trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

inline std::string located(std::string_view source, size_t line, std::string_view why) {
  return std::string(source) + ":" + std::to_string(line) + ": " + std::string(why);
}

}  // namespace tcpms::auth::detail
