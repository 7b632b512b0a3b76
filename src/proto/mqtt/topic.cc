#include "mqtt/topic.h"

#include <algorithm>

namespace tcpms::mqtt {
namespace {

constexpr std::size_t kMaxTopicBytes = 65535;

TopicError check_common(std::string_view s) noexcept {
  if (s.empty()) return TopicError::kEmpty;
  if (s.size() > kMaxTopicBytes) return TopicError::kTooLong;
  return TopicError::kOk;
}

TopicError check_levels(std::uint32_t separators, std::uint32_t max_levels) noexcept {
  return (max_levels != 0 && separators + 1 > max_levels) ? TopicError::kTooManyLevels
                                                          : TopicError::kOk;
}

// The filter rules without the $share handling.
TopicError validate_plain_filter(std::string_view f, std::uint32_t max_levels) noexcept {
  if (auto e = check_common(f); e != TopicError::kOk) return e;
  std::uint32_t separators = 0;
  for (std::size_t i = 0; i < f.size(); ++i) {
    const char c = f[i];
    const bool level_start = i == 0 || f[i - 1] == '/';
    const bool level_end = i + 1 == f.size() || f[i + 1] == '/';
    if (c == '/') {
      ++separators;
    } else if (c == '#') {
      if (!level_start || i + 1 != f.size()) return TopicError::kMisplacedMultiLevel;
    } else if (c == '+') {
      if (!level_start || !level_end) return TopicError::kMisplacedSingleLevel;
    } else if (c == '\0') {
      return TopicError::kNullCharacter;
    }
  }
  return check_levels(separators, max_levels);
}

}  // namespace

const char* topic_error_name(TopicError e) noexcept {
  switch (e) {
    case TopicError::kOk: return "ok";
    case TopicError::kEmpty: return "empty topic";
    case TopicError::kTooLong: return "topic longer than 65535 bytes";
    case TopicError::kNullCharacter: return "topic contains U+0000";
    case TopicError::kWildcardInName: return "topic name contains a wildcard";
    case TopicError::kMisplacedMultiLevel: return "'#' is not the whole last level";
    case TopicError::kMisplacedSingleLevel: return "'+' is not a whole level";
    case TopicError::kTooManyLevels: return "too many topic levels";
    case TopicError::kBadSharedSubscription: return "malformed $share subscription";
  }
  return "unknown";
}

TopicError validate_topic_name(std::string_view name, std::uint32_t max_levels) noexcept {
  if (auto e = check_common(name); e != TopicError::kOk) return e;
  std::uint32_t separators = 0;
  for (const char c : name) {
    if (c == '/') {
      ++separators;
    } else if (c == '+' || c == '#') {
      return TopicError::kWildcardInName;
    } else if (c == '\0') {
      return TopicError::kNullCharacter;
    }
  }
  return check_levels(separators, max_levels);
}

TopicError validate_topic_filter(std::string_view filter, std::uint32_t max_levels) noexcept {
  if (filter.size() > kMaxTopicBytes) return TopicError::kTooLong;
  if (is_shared_subscription(filter)) {
    const auto shared = parse_shared_subscription(filter);
    if (!shared) return TopicError::kBadSharedSubscription;
    return validate_plain_filter(shared->filter, max_levels);
  }
  return validate_plain_filter(filter, max_levels);
}

std::optional<SharedSubscription> parse_shared_subscription(std::string_view filter) noexcept {
  if (!is_shared_subscription(filter)) return std::nullopt;
  const std::string_view rest = filter.substr(kSharePrefix.size());
  const std::size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return std::nullopt;  // [MQTT-4.8.2-2]
  const std::string_view share = rest.substr(0, slash);
  // [MQTT-4.8.2-1]: at least one character, no "/", "+" or "#".
  if (share.empty() || share.find_first_of("+#") != std::string_view::npos) return std::nullopt;
  const std::string_view inner = rest.substr(slash + 1);
  if (inner.empty()) return std::nullopt;  // [MQTT-4.8.2-2]: a Topic Filter must follow
  return SharedSubscription{share, inner};
}

bool topic_matches(std::string_view filter, std::string_view name) noexcept {
  // [MQTT-4.7.2-1]: a filter starting with a wildcard does not match a "$" topic.
  if (!name.empty() && name.front() == '$' && !filter.empty() &&
      (filter.front() == '+' || filter.front() == '#')) {
    return false;
  }
  std::size_t f = 0, n = 0;
  while (true) {
    // Here both cursors sit at the start of a level.
    const std::size_t f_end = std::min(filter.find('/', f), filter.size());
    const std::string_view f_level = filter.substr(f, f_end - f);
    if (f_level == "#") return true;  // matches this level and everything below, or nothing
    const std::size_t n_end = std::min(name.find('/', n), name.size());
    if (f_level != "+" && f_level != name.substr(n, n_end - n)) return false;
    const bool f_last = f_end == filter.size();
    const bool n_last = n_end == name.size();
    if (n_last) {
      // "a/#" also matches "a": the parent level [MQTT-4.7.1-2 non-normative text].
      return f_last || filter.substr(f_end) == "/#";
    }
    if (f_last) return false;
    f = f_end + 1;
    n = n_end + 1;
  }
}

}  // namespace tcpms::mqtt
