#include "config/setting.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include <toml++/toml.h>

namespace tcpms::config {

std::string_view source_name(Source s) noexcept {
  switch (s) {
    case Source::kDefault: return "default";
    case Source::kFile: return "file";
    case Source::kFlag: return "flag";
  }
  return "?";
}

SettingBase::SettingBase(std::string name, std::string help)
    : name_(std::move(name)), help_(std::move(help)) {
  flag_ = "--";
  for (char c : name_) flag_ += (c == '.' || c == '_') ? '-' : c;
}

namespace detail {
namespace {

std::string toml_type(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date or time";
  }
}

std::string expected(const char* what, const toml::node& node) {
  return std::string("expected ") + what + ", got " + toml_type(node);
}

template <typename Int>
std::string parse_int(std::string_view text, Int& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (text.empty() || ec == std::errc::invalid_argument || end != text.data() + text.size()) {
    return "expected an integer, got '" + std::string(text) + "'";
  }
  if (ec == std::errc::result_out_of_range) return "'" + std::string(text) + "' is out of range";
  return {};
}

}  // namespace

std::string from_text(std::string_view text, bool& out) {
  for (auto t : {"true", "1", "yes", "on"}) {
    if (text == t) return out = true, std::string();
  }
  for (auto f : {"false", "0", "no", "off"}) {
    if (text == f) return out = false, std::string();
  }
  return "expected true or false, got '" + std::string(text) + "'";
}
std::string from_text(std::string_view text, int64_t& out) { return parse_int(text, out); }
std::string from_text(std::string_view text, uint64_t& out) {
  if (!text.empty() && text.front() == '-') return "must not be negative, got " + std::string(text);
  return parse_int(text, out);
}
std::string from_text(std::string_view text, double& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
    return "expected a number, got '" + std::string(text) + "'";
  }
  return {};
}
std::string from_text(std::string_view text, std::string& out) {
  out = text;
  return {};
}

std::string from_toml(const toml::node& node, bool& out) {
  if (auto v = node.value_exact<bool>()) return out = *v, std::string();
  return expected("true or false", node);
}
std::string from_toml(const toml::node& node, int64_t& out) {
  if (auto v = node.value_exact<int64_t>()) return out = *v, std::string();
  return expected("an integer", node);
}
std::string from_toml(const toml::node& node, uint64_t& out) {
  auto v = node.value_exact<int64_t>();
  if (!v) return expected("an integer", node);
  if (*v < 0) return "must not be negative, got " + std::to_string(*v);
  out = static_cast<uint64_t>(*v);
  return {};
}
std::string from_toml(const toml::node& node, double& out) {
  if (auto v = node.value_exact<double>()) return out = *v, std::string();
  if (auto v = node.value_exact<int64_t>()) return out = static_cast<double>(*v), std::string();
  return expected("a number", node);
}
std::string from_toml(const toml::node& node, std::string& out) {
  if (auto v = node.value_exact<std::string>()) return out = std::move(*v), std::string();
  return expected("a string", node);
}
std::string from_toml(const toml::node& node, std::vector<std::string>& out) {
  const toml::array* arr = node.as_array();
  if (!arr) return expected("an array of strings", node);
  out.clear();
  for (const toml::node& item : *arr) {
    auto v = item.value_exact<std::string>();
    if (!v) return "item " + std::to_string(out.size() + 1) + ": " + expected("a string", item);
    out.push_back(std::move(*v));
  }
  return {};
}

std::string to_toml(bool v) { return v ? "true" : "false"; }
std::string to_toml(int64_t v) { return std::to_string(v); }
std::string to_toml(uint64_t v) { return std::to_string(v); }
std::string to_toml(double v) {
  // The shortest form that reads back as the same double: 0.2, not 0.20000000000000001.
  char buf[64];
  for (int precision = 15; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s = buf;
  // A TOML float needs a '.' or an exponent; "3" would read back as an integer.
  if (std::isfinite(v) && s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}
std::string to_toml(const std::string& v) {
  std::string out = "\"";
  for (char c : v) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}
std::string to_toml(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + to_toml(v[i]);
  return out + "]";
}

}  // namespace detail
}  // namespace tcpms::config
