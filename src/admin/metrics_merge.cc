#include "admin/metrics_merge.h"

#include <charconv>
#include <cmath>
#include <map>
#include <unordered_map>

#include <fmt/format.h>

namespace tcpms::admin {
namespace {

struct Family {
  std::string help, type;  // the whole "# HELP ..." and "# TYPE ..." lines
  bool per_worker = false;
  // Summed samples by "name{labels}", in first-seen order; or the samples passed on as-is.
  std::vector<std::string> order;
  std::unordered_map<std::string, double> sums;
  std::vector<std::string> lines;
};

bool starts_with_any(std::string_view name, const std::vector<std::string>& prefixes) {
  for (const auto& p : prefixes)
    if (name.starts_with(p)) return true;
  return false;
}

// "tcpms_x_total{a=\"b\"}" -> "tcpms_x_total"
std::string_view metric_name(std::string_view key) { return key.substr(0, key.find('{')); }

// A sample's family: the name itself, or the name without a histogram/summary suffix when
// that family was declared.
std::string family_of(std::string_view name, const std::map<std::string, Family, std::less<>>& families) {
  if (families.count(name)) return std::string(name);
  for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
    if (name.ends_with(suffix)) {
      std::string_view base = name.substr(0, name.size() - suffix.size());
      if (families.count(base)) return std::string(base);
    }
  }
  return std::string(name);
}

std::string with_worker_label(std::string_view key, unsigned worker) {
  const size_t brace = key.find('{');
  if (brace == std::string_view::npos) return fmt::format("{}{{worker=\"{}\"}}", key, worker);
  return fmt::format("{}{{worker=\"{}\",{}", key.substr(0, brace), worker, key.substr(brace + 1));
}

std::string format_value(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{}", v);
}

}  // namespace

std::string merge_metrics(const std::vector<std::string>& texts, const MetricsMergeRules& rules) {
  std::map<std::string, Family, std::less<>> families;
  std::vector<std::string> order;  // family names, first seen first
  auto family = [&](const std::string& name) -> Family& {
    auto [it, fresh] = families.try_emplace(name);
    if (fresh) {
      order.push_back(name);
      it->second.per_worker = starts_with_any(name, rules.per_worker);
    }
    return it->second;
  };
  for (unsigned worker = 0; worker < texts.size(); ++worker) {
    std::string_view text = texts[worker];
    while (!text.empty()) {
      const size_t eol = text.find('\n');
      std::string_view line = text.substr(0, eol);
      text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
      if (line.empty()) continue;
      if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) {
        std::string_view rest = line.substr(7);
        std::string name(rest.substr(0, rest.find(' ')));
        if (starts_with_any(name, rules.skip)) continue;
        Family& f = family(name);
        std::string& slot = line[2] == 'H' ? f.help : f.type;
        if (slot.empty()) slot = std::string(line);
        continue;
      }
      if (line.starts_with('#')) continue;
      // "name{labels} value": the value is after the last space (label values may hold spaces).
      const size_t space = line.rfind(' ');
      if (space == std::string_view::npos) continue;
      std::string_view key = line.substr(0, space), value_text = line.substr(space + 1);
      std::string name = family_of(metric_name(key), families);
      if (starts_with_any(name, rules.skip)) continue;
      Family& f = family(name);
      if (key.find("loop=\"") != std::string_view::npos) {
        f.lines.emplace_back(line);
      } else if (f.per_worker) {
        f.lines.push_back(with_worker_label(key, worker) + " " + std::string(value_text));
      } else {
        double v = 0;
        auto [p, ec] = std::from_chars(value_text.data(), value_text.data() + value_text.size(), v);
        if (ec != std::errc()) {
          f.lines.emplace_back(line);  // NaN, +Inf: nothing to add up
          continue;
        }
        auto [it, fresh] = f.sums.try_emplace(std::string(key), 0.0);
        if (fresh) f.order.emplace_back(key);
        it->second += v;
      }
    }
  }
  std::string out;
  out.reserve(16384);
  for (const std::string& name : order) {
    const Family& f = families.at(name);
    if (!f.help.empty()) (out += f.help) += '\n';
    if (!f.type.empty()) (out += f.type) += '\n';
    for (const std::string& key : f.order) fmt::format_to(std::back_inserter(out), "{} {}\n", key, format_value(f.sums.at(key)));
    for (const std::string& line : f.lines) (out += line) += '\n';
  }
  return out;
}

}  // namespace tcpms::admin
