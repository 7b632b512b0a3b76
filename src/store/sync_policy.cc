#include "store/sync_policy.h"

#include <algorithm>
#include <charconv>

namespace tcpms::store {

namespace {
constexpr uint32_t kMaxIntervalMs = 60'000;
constexpr uint32_t kBatchWindowMs = 5;
}  // namespace

uint32_t SyncPolicy::commit_window_ms() const noexcept {
  switch (mode) {
    case SyncMode::kEveryMessage:
      return 0;
    case SyncMode::kInterval:
      return std::min(interval_ms, kBatchWindowMs);
    case SyncMode::kOff:
      return kBatchWindowMs;
  }
  return 0;
}

std::optional<SyncPolicy> parse_sync_policy(std::string_view text, std::string& error) {
  if (text == "every-message") return SyncPolicy{SyncMode::kEveryMessage, 0};
  if (text == "off") return SyncPolicy{SyncMode::kOff, 0};
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  const std::string_view unit(end, text.data() + text.size() - end);
  if (ec == std::errc() && end != text.data() && (unit == "ms" || unit == "s")) {
    const uint64_t ms = unit == "s" ? n * 1000 : n;
    if (ms >= 1 && ms <= kMaxIntervalMs) return SyncPolicy{SyncMode::kInterval, static_cast<uint32_t>(ms)};
  }
  error = "must be every-message, off, or an interval from 1ms to 60s (e.g. 50ms), got '" +
          std::string(text) + "'";
  return std::nullopt;
}

std::string to_string(const SyncPolicy& p) {
  switch (p.mode) {
    case SyncMode::kEveryMessage:
      return "every-message";
    case SyncMode::kOff:
      return "off";
    case SyncMode::kInterval:
      return std::to_string(p.interval_ms) + "ms";
  }
  return "?";
}

}  // namespace tcpms::store
