// Line charts as inline SVG, for the self-contained HTML report: no script, no font or file to
// fetch, so the page renders the same offline in any browser.
//
// Threads: pure functions.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace tcpms::bench {

struct ChartSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y), x rising
};

struct ChartAxis {
  std::string label;
  bool log10 = false;                        // logarithmic scale; values <= 0 are dropped
  std::vector<double> ticks;                 // empty: chosen automatically
  std::function<std::string(double)> format; // tick text; empty: a short number
};

struct LineChart {
  std::string title;
  ChartAxis x;
  ChartAxis y;
  std::vector<ChartSeries> series;
  int width_px = 760;
  int height_px = 300;
};

// An <svg> element with axes, grid, tick labels, one polyline per series and a legend. All
// text is HTML-escaped. There is no xmlns attribute: inline SVG in HTML needs none, and the
// page then contains no URL at all.
std::string render_svg(const LineChart& chart);

// Round tick values covering [lo, hi]: 1-2-5 steps on a linear axis, powers of ten (with 2 and
// 5 when the range is under two decades) on a log axis.
std::vector<double> nice_ticks(double lo, double hi, bool log10);

}  // namespace tcpms::bench
