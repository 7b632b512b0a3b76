#include "benchkit/time_series.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace tcpms::bench {
namespace {

TEST(TimeSeries, SetAndAddGrowColumnsWithZeros) {
  TimeSeries s;
  EXPECT_TRUE(s.empty());
  s.set(kSeriesConnectionsOpen, 2, 500);
  s.add(kSeriesOps, 0, 10);
  s.add(kSeriesOps, 0, 5);
  EXPECT_EQ(s.at(kSeriesConnectionsOpen, 0), 0);
  EXPECT_EQ(s.at(kSeriesConnectionsOpen, 2), 500);
  EXPECT_EQ(s.at(kSeriesOps, 0), 15);
  EXPECT_EQ(s.at(kSeriesOps, 99), 0);
  EXPECT_EQ(s.at("unknown", 0), 0);
  EXPECT_TRUE(s.column("unknown").empty());
  EXPECT_EQ(s.seconds(), 3u);
  EXPECT_EQ(s.fields(), (std::vector<std::string>{"connections_open", "ops"}));
}

TEST(TimeSeries, MergeSumsBySecondIndex) {
  TimeSeries a, b;
  for (std::size_t t = 0; t < 3; ++t) a.set(kSeriesConnectionsOpen, t, 100 * (t + 1));
  for (std::size_t t = 0; t < 5; ++t) b.set(kSeriesConnectionsOpen, t, 10);
  b.set(kSeriesErrors, 1, 4);
  a.merge(b);
  const auto col = a.column(kSeriesConnectionsOpen);
  EXPECT_EQ(std::vector<std::int64_t>(col.begin(), col.end()),
            (std::vector<std::int64_t>{110, 210, 310, 10, 10}));
  EXPECT_EQ(a.at(kSeriesErrors, 1), 4);
  EXPECT_EQ(a.seconds(), 5u);
}

TEST(TimeSeries, JsonRoundTrip) {
  TimeSeries s;
  s.set(kSeriesOps, 0, 1);
  s.set(kSeriesOps, 3, -2);
  s.set("custom", 1, 1'000'000'000'000);
  const nlohmann::json j = s;
  EXPECT_EQ(j.at("interval_ms"), 1000);
  EXPECT_EQ(j.at("fields").at("ops"), nlohmann::json({1, 0, 0, -2}));
  EXPECT_EQ(nlohmann::json::parse(j.dump()).get<TimeSeries>(), s);
  EXPECT_EQ(nlohmann::json(TimeSeries{}).get<TimeSeries>(), TimeSeries{});
}

}  // namespace
}  // namespace tcpms::bench
