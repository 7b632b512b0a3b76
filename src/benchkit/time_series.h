// Per-second samples of a run: one column of integers per field, indexed by the second since
// the run started (index 0 is [0 s, 1 s)).
//
// Every field is summable across worker processes, so merge() adds column by column, second by
// second: gauges such as connections_open add up to the total the server saw, and per-second
// counts such as ops add up to the total rate. A worker fills its own series once a second from
// its local counters; the hot path never touches this class.
//
// Threads: not synchronised; one per thread or process, merged at the end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace tcpms::bench {

// Field names the bench and the report agree on. Others are allowed and shown in the JSON.
inline constexpr std::string_view kSeriesConnectionsOpen = "connections_open";  // gauge
inline constexpr std::string_view kSeriesOps = "ops";                           // per second
inline constexpr std::string_view kSeriesErrors = "errors";                     // per second
inline constexpr std::string_view kSeriesBytesSent = "bytes_sent";              // per second
inline constexpr std::string_view kSeriesBytesReceived = "bytes_received";      // per second

class TimeSeries {
 public:
  // Sets or adds to `field` at `second`, growing the column with zeros as needed.
  void set(std::string_view field, std::size_t second, std::int64_t value);
  void add(std::string_view field, std::size_t second, std::int64_t delta);

  // 0 for an unknown field or a second past the end.
  std::int64_t at(std::string_view field, std::size_t second) const;
  // The whole column (empty for an unknown field). Columns may differ in length.
  std::span<const std::int64_t> column(std::string_view field) const;
  std::vector<std::string> fields() const;
  // Length of the longest column: how many seconds the run covered.
  std::size_t seconds() const;
  bool empty() const { return columns_.empty(); }

  // Adds `other` column by column and second by second.
  void merge(const TimeSeries& other);

  friend bool operator==(const TimeSeries&, const TimeSeries&) = default;

 private:
  std::vector<std::int64_t>& column_for(std::string_view field, std::size_t second);

  std::map<std::string, std::vector<std::int64_t>, std::less<>> columns_;
};

// JSON: {"interval_ms":1000,"fields":{"ops":[...],"connections_open":[...]}}.
void to_json(nlohmann::json& j, const TimeSeries& s);
void from_json(const nlohmann::json& j, TimeSeries& s);

}  // namespace tcpms::bench
