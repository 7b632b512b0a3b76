// Settings: every setting of a program, each declared once, bound to a variable and filled
// from (in rising priority) its default, a TOML file (--config FILE) and its command-line
// flag. The same declarations give --help, --check-config, --print-example-config and the
// SIGHUP reload, so none of them can drift from the others.
//
//   ServerOptions opt;                       // defaults live in the struct
//   config::Settings settings("tcpms-server");
//   settings.add("listen", opt.listen, "HOST:PORT to accept clients on");
//   settings.add("log.level", opt.log_level, "Log level")
//       .one_of({"trace", "debug", "info", "warn", "error", "critical", "off"})
//       .live([](const std::string& l) { spdlog::set_level(spdlog::level::from_str(l)); });
//   settings.add("mqtt.max_packet_size", opt.mqtt.max_packet_size, "Largest MQTT packet")
//       .range(16u, 268435460u).live();
//   CLI::App app{"tcpms-server"};
//   if (int rc = settings.parse_command_line(app, argc, argv); rc >= 0) return rc;
//   ...
//   on SIGHUP: auto r = settings.reload(); for (auto& line : r.log_lines()) log(line);
//
// A name is dotted: "mqtt.max_packet_size" is key max_packet_size of table [mqtt] in the
// file, and flag --mqtt-max-packet-size on the command line.
//
// Thread rules: one thread (main) declares, parses and reloads.
#pragma once

#include <iostream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/setting.h"

namespace CLI {
class App;
}
namespace toml {
inline namespace v3 {
class table;
}
}  // namespace toml

namespace tcpms::config {

template <typename Item>
class TableArray;

// Exit codes of parse_command_line (sysexits.h): usage errors, including a bad config file.
inline constexpr int kExitUsage = 64;

struct Error {
  std::string file;  // empty when the error is not in a file (a flag, a cross-setting rule)
  uint32_t line = 0;
  uint32_t column = 0;
  std::string setting;  // empty when the file itself is unreadable or not TOML
  std::string message;
  // "tcpms.toml:12:1: mqtt.max_packet_size: must be in 16..268435460, got 5"
  std::string to_string() const;
};

struct Change {
  std::string setting;
  std::string from, to;  // TOML literals
  std::string to_string() const;  // "mqtt.max_inflight: 20 -> 50"
};

struct ReloadResult {
  std::vector<Error> errors;         // when non-empty nothing changed
  std::vector<Change> applied;       // live settings, now in effect
  std::vector<Change> needs_restart; // changed in the file, still at the old value
  bool ok() const noexcept { return errors.empty(); }
  // One line per error or change, ready to log: "changed live: ...", "could not change X live
  // (A -> B): restart to apply", or the error.
  std::vector<std::string> log_lines() const;
};

class Settings {
 public:
  explicit Settings(std::string program);
  ~Settings();
  Settings(const Settings&) = delete;
  Settings& operator=(const Settings&) = delete;

  // Declares a setting bound to `target`, whose current value is the default. Names are
  // lower-case words joined by '_' and '.'; declaring one twice throws std::logic_error.
  // Supported types: bool, integers, double, std::string, std::vector<std::string>.
  template <typename T>
  Setting<T>& add(std::string name, T& target, std::string help) {
    auto s = std::make_unique<Setting<T>>(std::move(name), target, std::move(help));
    Setting<T>& ref = *s;
    insert(std::move(s));
    return ref;
  }
  // An array of tables ([[name]]) whose elements have settings of their own, declared by
  // `declare` on an Item (config/table_array.h, which defines this).
  template <typename Item>
  TableArray<Item>& add_table_array(std::string name, std::vector<Item>& target, std::string help,
                                    std::function<void(Settings&, Item&)> declare);

  // A rule over several settings, run on the bound values after every load and reload:
  // returns "" or the problem ("output.hard_limit must be at least output.high_water").
  void add_rule(std::function<std::string()> rule) { rules_.push_back(std::move(rule)); }

  // --- the command line ---------------------------------------------------------------------
  // Adds every setting's flag plus --config, --check-config and --print-example-config to `app`
  // (in a group per table: "mqtt.* settings"), parses, loads the file, applies the flags.
  // Returns -1 to go on, else an exit code: 0 after --help/--version/--check-config/
  // --print-example-config, kExitUsage (64) after a usage or configuration error (printed to
  // `err` with the file, line and setting).
  int parse_command_line(CLI::App& app, int argc, const char* const* argv,
                         std::ostream& out = std::cout, std::ostream& err = std::cerr);
  // The two halves of parse_command_line, for programs that parse themselves.
  void add_flags(CLI::App& app);
  std::vector<Error> load();  // defaults, then config_path() if set, then given flags

  // --- files --------------------------------------------------------------------------------
  void set_config_path(std::string path) { config_path_ = std::move(path); }
  const std::string& config_path() const noexcept { return config_path_; }
  // As load(), with the file's text given (tests; `name` is used in messages).
  std::vector<Error> load_text(std::string_view toml, const std::string& name);
  // Re-reads config_path() (SIGHUP). Flags given at start still win over the file. Live
  // settings that changed are applied (their hooks run); others are reported, unchanged.
  ReloadResult reload();
  ReloadResult reload_text(std::string_view toml, const std::string& name);

  // --- output -------------------------------------------------------------------------------
  // Effective settings as TOML with where each value came from (--check-config).
  std::string effective() const;
  // The settings whose values differ from `defaults`' (the same declarations bound to a
  // default element) as one TOML inline table ({bind = "x"}).
  std::string effective_inline(const Settings& defaults) const;
  // Every setting, commented out at its default, with help, flag, constraint and whether it
  // changes live: the example tcpms.toml (--print-example-config).
  std::string example() const;
  // The settings as commented-out dotted keys ("#tls.cert_file = \"\""), for the elements of
  // an array of tables, whose keys cannot use [table] headers.
  std::string example_entries() const;

  // Stages, commits and checks one element of an array of tables (table_array.h): no flags,
  // errors located in `file` and named `prefix` + setting.
  std::vector<Error> load_table(const toml::table& table, const std::string& file,
                                const std::string& prefix);

  SettingBase* find(std::string_view name) const;
  template <typename Item>
  friend class TableArray;
  const std::vector<std::unique_ptr<SettingBase>>& all() const noexcept { return settings_; }
  // The declared name closest to `name` if it is a likely typo, else "".
  std::string suggest(std::string_view name) const;
  // The same for a command-line flag ("--max-inflght" -> "--max-inflight").
  std::string suggest_flag(std::string_view flag) const;

 private:
  void insert(std::unique_ptr<SettingBase> setting);
  // Stages defaults, then the file (if `toml` is set), then flags; returns the errors.
  std::vector<Error> stage(const std::string_view* toml, const std::string& name);
  std::vector<Error> stage_file(std::string_view toml, const std::string& name);
  std::vector<Error> stage_table(const toml::table& root, const std::string& name,
                                 const std::string& prefix);
  std::vector<Error> run_rules() const;
  ReloadResult reload_staged(std::vector<Error> errors);

  std::string program_;
  std::string config_path_;
  bool check_config_ = false;
  bool print_example_ = false;
  std::vector<std::unique_ptr<SettingBase>> settings_;
  std::map<std::string, SettingBase*, std::less<>> by_name_;
  std::vector<std::function<std::string()>> rules_;
};

// Reads a whole file; false and `error` (strerror) if it cannot.
bool read_file(const std::string& path, std::string& out, std::string& error);

}  // namespace tcpms::config
