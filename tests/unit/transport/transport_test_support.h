// What the transport tests over real sockets share: a byte pattern that shows a lost, doubled
// or reordered byte, and waiting for a condition another thread makes true.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <thread>

namespace tcpms {

inline std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 251) & 0xff);
  return s;
}

template <typename P>
bool eventually(P pred, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return pred();
}

}  // namespace tcpms
