#include "benchkit/svg_chart.h"

#include <gtest/gtest.h>

#include "benchkit/html.h"

namespace tcpms::bench {
namespace {

TEST(Html, EscapesMarkupAndQuotes) {
  EXPECT_EQ(html_escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
  EXPECT_EQ(html_escape("plain text 123"), "plain text 123");
}

TEST(SvgChart, LinearTicksAreRoundAndCoverTheRange) {
  const auto ticks = nice_ticks(0, 937, false);
  ASSERT_GE(ticks.size(), 3u);
  EXPECT_EQ(ticks.front(), 0);
  EXPECT_GE(ticks.back(), 937);
  EXPECT_EQ(ticks[1] - ticks[0], 200);
  EXPECT_EQ(nice_ticks(5, 5, false).front(), 5);  // a flat series still gets an axis
}

TEST(SvgChart, LogTicksArePowersOfTen) {
  EXPECT_EQ(nice_ticks(30, 20'000, true), (std::vector<double>{10, 100, 1000, 10'000, 100'000}));
  EXPECT_EQ(nice_ticks(30, 80, true), (std::vector<double>{10, 20, 50, 100}));
}

TEST(SvgChart, RendersLinesLegendAndEscapedText) {
  LineChart chart{"A <title>", ChartAxis{"x", false, {}, nullptr},
                  ChartAxis{"latency", true, {}, nullptr}, {}};
  chart.series.push_back({"first & best", {{0, 10}, {1, 100}, {2, 1000}}});
  chart.series.push_back({"second", {{0, 0}, {1, 50}}});  // y = 0 is dropped on a log axis
  const auto svg = render_svg(chart);
  EXPECT_TRUE(svg.starts_with("<svg"));
  EXPECT_NE(svg.find("A &lt;title&gt;"), std::string::npos);
  EXPECT_NE(svg.find("first &amp; best"), std::string::npos);
  EXPECT_EQ(svg.find("<title>"), svg.find("<title>A"));  // only the escaped one
  EXPECT_EQ(svg.find("xmlns"), std::string::npos);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_EQ(svg.find("inf"), std::string::npos);
  std::size_t lines = 0;
  for (auto p = svg.find("<polyline"); p != std::string::npos; p = svg.find("<polyline", p + 1)) ++lines;
  EXPECT_EQ(lines, 2u);
}

TEST(SvgChart, EmptyChartSaysNoData) {
  LineChart chart{"Nothing", {}, {}, {}};
  chart.series.push_back({"none", {}});
  EXPECT_NE(render_svg(chart).find("no data"), std::string::npos);
}

}  // namespace
}  // namespace tcpms::bench
