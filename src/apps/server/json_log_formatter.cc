#include "json_log_formatter.h"

#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "broker/client_log.h"

namespace tcpms::app {

void JsonLogFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  using namespace std::chrono;
  const auto since_epoch = msg.time.time_since_epoch();
  const std::time_t secs = duration_cast<seconds>(since_epoch).count();
  const auto ms = duration_cast<milliseconds>(since_epoch).count() % 1000;
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  auto out = std::back_inserter(dest);
  fmt::format_to(out, "{{\"time\":\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z\",\"level\":\"{}\",",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms,
                 spdlog::level::to_string_view(msg.level));
  std::string_view text(msg.payload.data(), msg.payload.size());
  if (!text.empty() && text.front() == broker::kStructuredMark) {
    text.remove_prefix(1);  // already JSON members
    dest.append(text.data(), text.data() + text.size());
  } else {
    std::string quoted = "\"msg\":" + nlohmann::json(std::string(text)).dump(
                                          -1, ' ', false, nlohmann::json::error_handler_t::replace);
    dest.append(quoted.data(), quoted.data() + quoted.size());
  }
  dest.push_back('}');
  dest.push_back('\n');
}

std::unique_ptr<spdlog::formatter> JsonLogFormatter::clone() const {
  return std::make_unique<JsonLogFormatter>();
}

}  // namespace tcpms::app
