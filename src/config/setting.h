// Setting<T>: one declared setting (name, type, default, help, validation, live or not), bound
// to a variable the program owns. Settings (settings.h) holds them and fills them from the
// defaults, a TOML file and the command line, in that order.
//
// Values move through a staging slot: a file or flag value is parsed and validated into
// `staged_` first, and only copied into the bound variable (commit) once every setting parsed,
// so a bad file changes nothing.
//
// Thread rules: single-threaded; declare, load and reload on one thread (main). Live-apply
// hooks run on the thread that calls Settings::reload.
#pragma once

#include <charconv>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace toml {
inline namespace v3 {
class node;
}
}  // namespace toml

namespace CLI {
class Option;
}

namespace tcpms::config {

// Where a setting's current value came from.
enum class Source : uint8_t { kDefault, kFile, kFlag };
std::string_view source_name(Source s) noexcept;

namespace detail {
// Value codecs, one overload set per supported type. Each returns an empty string or the
// reason the input is not a value of that type.
std::string from_text(std::string_view text, bool& out);
std::string from_text(std::string_view text, int64_t& out);
std::string from_text(std::string_view text, uint64_t& out);
std::string from_text(std::string_view text, double& out);
std::string from_text(std::string_view text, std::string& out);
std::string from_toml(const toml::node& node, bool& out);
std::string from_toml(const toml::node& node, int64_t& out);
std::string from_toml(const toml::node& node, uint64_t& out);
std::string from_toml(const toml::node& node, double& out);
std::string from_toml(const toml::node& node, std::string& out);
std::string from_toml(const toml::node& node, std::vector<std::string>& out);
// TOML literals: 42, true, "text" (escaped), ["a", "b"].
std::string to_toml(bool v);
std::string to_toml(int64_t v);
std::string to_toml(uint64_t v);
std::string to_toml(double v);
std::string to_toml(const std::string& v);
std::string to_toml(const std::vector<std::string>& v);

// Integers of any width are parsed as the 64-bit type of their signedness, then range-checked.
template <typename T>
using Wide = std::conditional_t<std::is_same_v<T, bool> || !std::is_integral_v<T>, T,
                                std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>>;

template <typename T>
std::string narrow(const Wide<T>& wide, T& out) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if (wide < static_cast<Wide<T>>(std::numeric_limits<T>::min()) ||
        wide > static_cast<Wide<T>>(std::numeric_limits<T>::max())) {
      return "out of range for this setting (" + std::to_string(std::numeric_limits<T>::min()) +
             ".." + std::to_string(std::numeric_limits<T>::max()) + ")";
    }
  }
  out = static_cast<T>(wide);
  return {};
}

template <typename T>
std::string type_name() {
  if constexpr (std::is_same_v<T, bool>) return "boolean";
  else if constexpr (std::is_integral_v<T>) return "integer";
  else if constexpr (std::is_floating_point_v<T>) return "number";
  else if constexpr (std::is_same_v<T, std::string>) return "string";
  else return "list of strings";
}
}  // namespace detail

class SettingBase {
 public:
  virtual ~SettingBase() = default;
  const std::string& name() const noexcept { return name_; }
  const std::string& help() const noexcept { return help_; }
  // The command-line flag: "--" + name with '.' and '_' turned into '-'.
  const std::string& flag() const noexcept { return flag_; }
  const std::vector<std::string>& aliases() const noexcept { return aliases_; }
  bool live() const noexcept { return live_; }
  Source source() const noexcept { return source_; }
  // "file:line" when the value came from a file.
  const std::string& origin() const noexcept { return origin_; }
  const std::string& default_text() const noexcept { return default_text_; }
  // Extra words for the help and the example file: "16..268435460", "one of: a, b".
  const std::string& constraint() const noexcept { return constraint_; }
  virtual std::string type_name() const = 0;
  virtual std::string value_text() const = 0;  // current value as a TOML literal
  virtual bool is_bool() const noexcept = 0;
  virtual bool is_list() const noexcept = 0;
  // An array of tables ([[listeners]]): no flag, staged from the file by Settings itself
  // (table_array.h).
  virtual bool is_table_array() const noexcept { return false; }

 protected:
  SettingBase(std::string name, std::string help);

  std::string name_, help_, flag_, default_text_, constraint_, origin_;
  std::vector<std::string> aliases_;
  bool live_ = false;
  Source source_ = Source::kDefault;

 private:
  friend class Settings;
  // Staging protocol used by Settings (each returns an error or "").
  virtual std::string stage_text(const std::vector<std::string>& values) = 0;
  virtual std::string stage_toml(const toml::node& node) = 0;
  virtual void stage_default() = 0;
  virtual bool staged_differs() const = 0;
  virtual std::string staged_text() const = 0;
  virtual void commit() = 0;   // bound variable = staged value
  virtual void run_hook() = 0;  // the live() apply function, if any
  virtual void rollback() = 0;  // undo the last commit

  // Command-line storage, filled by CLI11.
  // Set by add_flags; read once after parsing (capture_flags) and never again, since the
  // CLI::App that owns the option may be gone by a SIGHUP reload.
  CLI::Option* option_ = nullptr;
  bool flag_given_ = false;
  std::string flag_text_;                // scalars
  std::vector<std::string> flag_values_; // lists
  bool flag_bool_ = false;
  Source staged_source_ = Source::kDefault;
  std::string staged_origin_;
};

template <typename T>
class Setting final : public SettingBase {
 public:
  Setting(std::string name, T& target, std::string help)
      : SettingBase(std::move(name), std::move(help)), target_(&target), default_(target) {
    default_text_ = detail::to_toml(widen(default_));
  }

  // Inclusive bounds (numbers only).
  Setting& range(T lo, T hi) {
    static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>, "range() needs a number");
    constraint_ = detail::to_toml(widen(lo)) + ".." + detail::to_toml(widen(hi));
    checks_.push_back([lo, hi, c = constraint_](const T& v) -> std::string {
      if (v < lo || v > hi) return "must be in " + c + ", got " + detail::to_toml(widen(v));
      return {};
    });
    return *this;
  }
  // The value must be one of `allowed` (strings and numbers).
  Setting& one_of(std::vector<T> allowed) {
    std::string list;
    for (const T& a : allowed) list += (list.empty() ? "" : ", ") + detail::to_toml(widen(a));
    constraint_ = "one of " + list;
    checks_.push_back([allowed = std::move(allowed), list](const T& v) -> std::string {
      for (const T& a : allowed) {
        if (a == v) return {};
      }
      return "must be one of " + list + ", got " + detail::to_toml(widen(v));
    });
    return *this;
  }
  // Any other rule: returns "" when `v` is fine, else why not ("wants NAME:PASSWORD").
  Setting& check(std::function<std::string(const T&)> rule) {
    checks_.push_back(std::move(rule));
    return *this;
  }
  // May change on SIGHUP (Settings::reload). `apply` runs after the bound variable changed;
  // without it the program reads the variable itself.
  Setting& live(std::function<void(const T&)> apply = {}) {
    live_ = true;
    apply_ = std::move(apply);
    return *this;
  }
  // An extra flag spelling (e.g. an old name kept for scripts): "--max-packet-size".
  Setting& alias(std::string flag) {
    aliases_.push_back(std::move(flag));
    return *this;
  }
  // Words for help and the example file when the checks are custom ("NAME:PASSWORD").
  Setting& describe(std::string constraint) {
    constraint_ = std::move(constraint);
    return *this;
  }

  std::string type_name() const override { return detail::type_name<T>(); }
  std::string value_text() const override { return detail::to_toml(widen(*target_)); }
  bool is_bool() const noexcept override { return std::is_same_v<T, bool>; }
  bool is_list() const noexcept override { return std::is_same_v<T, std::vector<std::string>>; }
  const T& default_value() const noexcept { return default_; }

 private:
  static detail::Wide<T> widen(const T& v) { return static_cast<detail::Wide<T>>(v); }

  std::string validate(const T& v) const {
    for (const auto& c : checks_) {
      if (std::string err = c(v); !err.empty()) return err;
    }
    return {};
  }
  std::string accept(detail::Wide<T> wide) {
    T v{};
    if (std::string err = detail::narrow<T>(wide, v); !err.empty()) return err;
    if (std::string err = validate(v); !err.empty()) return err;
    staged_ = std::move(v);
    return {};
  }
  std::string stage_text(const std::vector<std::string>& values) override {
    if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      return accept(values);
    } else {
      detail::Wide<T> wide{};
      if (std::string err = detail::from_text(values.empty() ? "" : values.back(), wide);
          !err.empty()) {
        return err;
      }
      return accept(std::move(wide));
    }
  }
  std::string stage_toml(const toml::node& node) override {
    detail::Wide<T> wide{};
    if (std::string err = detail::from_toml(node, wide); !err.empty()) return err;
    return accept(std::move(wide));
  }
  void stage_default() override { staged_ = default_; }
  bool staged_differs() const override { return staged_ && !(*staged_ == *target_); }
  std::string staged_text() const override {
    return staged_ ? detail::to_toml(widen(*staged_)) : value_text();
  }
  void commit() override {
    if (!staged_) return;
    previous_ = *target_;
    *target_ = *staged_;
  }
  void run_hook() override {
    if (apply_) apply_(*target_);
  }
  void rollback() override {
    if (previous_) *target_ = *previous_;
    previous_.reset();
  }

  T* target_;
  T default_;
  std::optional<T> staged_, previous_;
  std::vector<std::function<std::string(const T&)>> checks_;
  std::function<void(const T&)> apply_;
};

}  // namespace tcpms::config
