// JsonLogFormatter: log.format = "json". Every line is one JSON object, for log shippers:
//   {"time":"2026-12-03T17:19:49.370Z","level":"info","msg":"..."}
// A message that starts with broker::kStructuredMark carries its own members (ClientLog's
// connect, disconnect and auth-failure lines: "msg", "client_id", "peer", ...), which are
// spliced in instead of one "msg" string.
//
// Thread rules: spdlog calls it under its sink's lock; clone() gives each sink its own.
#pragma once

#include <memory>

#include <spdlog/formatter.h>

namespace tcpms::app {

class JsonLogFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;
};

}  // namespace tcpms::app
