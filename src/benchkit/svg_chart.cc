#include "benchkit/svg_chart.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "benchkit/html.h"

namespace tcpms::bench {

namespace {

// Plot margins; the right one leaves room for a last x tick label such as "99.9999%".
constexpr double kLeftPx = 72, kRightPx = 40, kTopPx = 28, kBottomPx = 46;
constexpr std::array<const char*, 6> kColors = {"#1f77b4", "#d62728", "#2ca02c",
                                                "#ff7f0e", "#9467bd", "#8c564b"};

std::string short_number(double v) {
  const double a = std::fabs(v);
  if (a >= 1e9) return fmt::format("{:g}G", v / 1e9);
  if (a >= 1e6) return fmt::format("{:g}M", v / 1e6);
  if (a >= 1e3) return fmt::format("{:g}k", v / 1e3);
  return fmt::format("{:g}", v);
}

// Maps data values on one axis to pixels, in log space when the axis is logarithmic.
struct Scale {
  bool log10 = false;
  double lo = 0, hi = 1;        // in axis space (log10 of the value on a log axis)
  double px_lo = 0, px_hi = 1;  // pixels for lo and hi

  double axis(double v) const { return log10 ? std::log10(v) : v; }
  double px(double v) const { return px_lo + (axis(v) - lo) / (hi - lo) * (px_hi - px_lo); }
};

// Picks ticks, then makes the scale span exactly from the first tick to the last.
Scale make_scale(const ChartAxis& axis, double data_lo, double data_hi, double px_lo,
                 double px_hi, std::vector<double>& ticks) {
  ticks = axis.ticks;
  if (ticks.empty()) ticks = nice_ticks(data_lo, data_hi, axis.log10);
  std::sort(ticks.begin(), ticks.end());
  Scale s{axis.log10, 0, 1, px_lo, px_hi};
  const double tick_lo = ticks.front(), tick_hi = ticks.back();
  s.lo = s.axis(std::min(tick_lo, data_lo));
  s.hi = s.axis(std::max(tick_hi, data_hi));
  if (!(s.hi > s.lo)) s.hi = s.lo + 1;
  return s;
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, bool log10) {
  std::vector<double> ticks;
  if (log10) {
    lo = std::max(lo, std::numeric_limits<double>::min());
    hi = std::max(hi, lo);
    const int e0 = static_cast<int>(std::floor(std::log10(lo)));
    int e1 = static_cast<int>(std::ceil(std::log10(hi)));
    if (e1 <= e0) e1 = e0 + 1;
    const bool fine = e1 - e0 < 2;
    for (int e = e0; e <= e1; ++e) {
      const double decade = std::pow(10.0, e);
      ticks.push_back(decade);
      if (fine && e < e1) {
        ticks.push_back(2 * decade);
        ticks.push_back(5 * decade);
      }
    }
    return ticks;
  }
  if (!(hi > lo)) hi = lo + 1;
  const double raw_step = (hi - lo) / 5;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw_step)));
  const double norm = raw_step / magnitude;
  const double step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * magnitude;
  const double first = std::floor(lo / step), last = std::ceil(hi / step);
  for (double k = first; k <= last + 0.5; ++k) ticks.push_back(k * step);
  return ticks;
}

std::string render_svg(const LineChart& chart) {
  const double width = chart.width_px, height = chart.height_px;
  std::string svg = fmt::format(
      "<svg class=\"chart\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" role=\"img\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n"
      "<title>{2}</title>\n"
      "<text x=\"{3}\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{2}</text>\n",
      chart.width_px, chart.height_px, html_escape(chart.title), kLeftPx);

  // Points usable on these axes (a log axis drops values <= 0).
  std::vector<std::vector<std::pair<double, double>>> series;
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  for (const auto& s : chart.series) {
    auto& points = series.emplace_back();
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      if ((chart.x.log10 && x <= 0) || (chart.y.log10 && y <= 0)) continue;
      points.emplace_back(x, y);
      x_lo = std::min(x_lo, x), x_hi = std::max(x_hi, x);
      y_lo = std::min(y_lo, y), y_hi = std::max(y_hi, y);
    }
  }
  const double plot_left = kLeftPx, plot_right = width - kRightPx;
  const double plot_top = kTopPx, plot_bottom = height - kBottomPx;
  if (x_lo > x_hi) {
    svg += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#666\">no data</text>\n</svg>\n",
                       plot_left + 10, (plot_top + plot_bottom) / 2);
    return svg;
  }
  if (!chart.y.log10) y_lo = std::min(y_lo, 0.0);  // linear values read best from zero

  std::vector<double> x_ticks, y_ticks;
  const Scale xs = make_scale(chart.x, x_lo, x_hi, plot_left, plot_right, x_ticks);
  const Scale ys = make_scale(chart.y, y_lo, y_hi, plot_bottom, plot_top, y_ticks);
  const auto x_text = [&](double v) { return chart.x.format ? chart.x.format(v) : short_number(v); };
  const auto y_text = [&](double v) { return chart.y.format ? chart.y.format(v) : short_number(v); };

  svg += "<g stroke=\"#ddd\">\n";
  for (const double t : x_ticks) {
    svg += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\"/>\n", xs.px(t),
                       plot_top, plot_bottom);
  }
  for (const double t : y_ticks) {
    svg += fmt::format("<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\"/>\n", plot_left,
                       ys.px(t), plot_right);
  }
  svg += "</g>\n";
  svg += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>\n",
      plot_left, plot_top, plot_right - plot_left, plot_bottom - plot_top);
  for (const double t : x_ticks) {
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", xs.px(t),
                       plot_bottom + 14, html_escape(x_text(t)));
  }
  for (const double t : y_ticks) {
    svg += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n",
                       plot_left - 4, ys.px(t) + 4, html_escape(y_text(t)));
  }
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                     (plot_left + plot_right) / 2, height - 8, html_escape(chart.x.label));
  svg += fmt::format(
      "<text transform=\"translate(14 {}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
      (plot_top + plot_bottom) / 2, html_escape(chart.y.label));

  for (std::size_t i = 0; i < series.size(); ++i) {
    const char* color = kColors[i % kColors.size()];
    std::string points;
    for (const auto& [x, y] : series[i]) {
      points += fmt::format("{:.1f},{:.1f} ", xs.px(x), ys.px(y));
    }
    svg += fmt::format(
        "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.6\" points=\"{}\"/>\n", color,
        points);
    // Legend, top left inside the plot.
    const double ly = plot_top + 14 + 14 * static_cast<double>(i);
    svg += fmt::format(
        "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"{3}\" stroke-width=\"3\"/>"
        "<text x=\"{4}\" y=\"{5}\">{6}</text>\n",
        plot_left + 8, ly, plot_left + 24, color, plot_left + 28, ly + 4,
        html_escape(chart.series[i].name));
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace tcpms::bench
