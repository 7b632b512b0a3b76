#include "benchkit/time_series.h"

#include <algorithm>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace tcpms::bench {

std::vector<std::int64_t>& TimeSeries::column_for(std::string_view field, std::size_t second) {
  auto it = columns_.find(field);
  if (it == columns_.end()) it = columns_.try_emplace(std::string(field)).first;
  if (it->second.size() <= second) it->second.resize(second + 1, 0);
  return it->second;
}

void TimeSeries::set(std::string_view field, std::size_t second, std::int64_t value) {
  column_for(field, second)[second] = value;
}

void TimeSeries::add(std::string_view field, std::size_t second, std::int64_t delta) {
  column_for(field, second)[second] += delta;
}

std::int64_t TimeSeries::at(std::string_view field, std::size_t second) const {
  const auto col = column(field);
  return second < col.size() ? col[second] : 0;
}

std::span<const std::int64_t> TimeSeries::column(std::string_view field) const {
  const auto it = columns_.find(field);
  if (it == columns_.end()) return {};
  return it->second;
}

std::vector<std::string> TimeSeries::fields() const {
  std::vector<std::string> out;
  out.reserve(columns_.size());
  for (const auto& [name, col] : columns_) out.push_back(name);
  return out;
}

std::size_t TimeSeries::seconds() const {
  std::size_t n = 0;
  for (const auto& [name, col] : columns_) n = std::max(n, col.size());
  return n;
}

void TimeSeries::merge(const TimeSeries& other) {
  for (const auto& [name, col] : other.columns_) {
    if (col.empty()) continue;  // set()/add() never leave a column empty
    auto& mine = column_for(name, col.size() - 1);
    for (std::size_t i = 0; i < col.size(); ++i) mine[i] += col[i];
  }
}

void to_json(nlohmann::json& j, const TimeSeries& s) {
  nlohmann::json fields = nlohmann::json::object();
  for (const auto& name : s.fields()) {
    const auto col = s.column(name);
    fields[name] = std::vector<std::int64_t>(col.begin(), col.end());
  }
  j = nlohmann::json{{"interval_ms", 1000}, {"fields", std::move(fields)}};
}

void from_json(const nlohmann::json& j, TimeSeries& s) {
  if (j.value("interval_ms", 1000) != 1000) {
    throw std::invalid_argument("time series JSON: only 1000 ms intervals are supported");
  }
  TimeSeries out;
  for (const auto& [name, values] : j.at("fields").items()) {
    const auto col = values.get<std::vector<std::int64_t>>();
    for (std::size_t i = 0; i < col.size(); ++i) out.set(name, i, col[i]);
  }
  s = std::move(out);
}

}  // namespace tcpms::bench
