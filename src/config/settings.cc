#include "config/settings.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <tuple>

#include <CLI/CLI.hpp>
#include <toml++/toml.h>

#include "config/table_array.h"

namespace tcpms::config {
namespace {

// The table a setting lives in ("mqtt" for "mqtt.max_packet_size", "" at the top level) and
// its key inside it.
std::string_view table_of(std::string_view name) {
  size_t dot = name.rfind('.');
  return dot == std::string_view::npos ? std::string_view() : name.substr(0, dot);
}
std::string_view key_of(std::string_view name) {
  size_t dot = name.rfind('.');
  return dot == std::string_view::npos ? name : name.substr(dot + 1);
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

bool valid_name(std::string_view name) {
  if (name.empty() || name.front() == '.' || name.back() == '.') return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
              (c == '.' && name[i - 1] != '.');
    if (!ok) return false;
  }
  return true;
}

// "# " + text wrapped at 96 columns.
void comment(std::string& out, std::string_view text) {
  constexpr size_t kWidth = 94;
  while (!text.empty()) {
    size_t take = text.size();
    if (take > kWidth) {
      take = text.rfind(' ', kWidth);
      if (take == std::string_view::npos || take == 0) take = kWidth;
    }
    out += "# ";
    out += text.substr(0, take);
    out += '\n';
    text.remove_prefix(std::min(text.size(), take + (take < text.size() && text[take] == ' ')));
  }
}

}  // namespace

std::string Error::to_string() const {
  std::string out;
  if (!file.empty()) {
    out = file;
    if (line) out += ":" + std::to_string(line) + ":" + std::to_string(column);
    out += ": ";
  }
  if (!setting.empty()) out += setting + ": ";
  return out + message;
}

std::string Change::to_string() const { return setting + ": " + from + " -> " + to; }

std::vector<std::string> ReloadResult::log_lines() const {
  std::vector<std::string> lines;
  for (const auto& e : errors) lines.push_back("reload failed, nothing changed: " + e.to_string());
  for (const auto& c : applied) lines.push_back("changed live: " + c.to_string());
  for (const auto& c : needs_restart) {
    lines.push_back("could not change " + c.setting + " live (" + c.from + " -> " + c.to +
                    "): restart to apply");
  }
  return lines;
}

bool read_file(const std::string& path, std::string& out, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = std::strerror(errno);
    return false;
  }
  std::ostringstream text;
  text << in.rdbuf();
  out = std::move(text).str();
  return true;
}

Settings::Settings(std::string program) : program_(std::move(program)) {}
Settings::~Settings() = default;

void Settings::insert(std::unique_ptr<SettingBase> setting) {
  const std::string& name = setting->name();
  if (!valid_name(name)) throw std::logic_error("setting name '" + name + "' is not a.b_c");
  if (by_name_.count(name)) throw std::logic_error("setting '" + name + "' declared twice");
  // A name cannot be both a value and a table ("mqtt" and "mqtt.x").
  for (const auto& other : settings_) {
    const std::string& o = other->name();
    if (o.starts_with(name + ".") || name.starts_with(o + ".")) {
      throw std::logic_error("setting '" + name + "' clashes with '" + o + "'");
    }
  }
  by_name_.emplace(name, setting.get());
  settings_.push_back(std::move(setting));
}

SettingBase* Settings::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::string Settings::suggest(std::string_view name) const {
  std::string best;
  size_t best_distance = std::max<size_t>(2, name.size() / 4) + 1;
  for (const auto& s : settings_) {
    size_t d = edit_distance(name, s->name());
    if (d < best_distance) best_distance = d, best = s->name();
  }
  if (!best.empty()) return best;
  // The right key in the wrong table ("max_packet_size" for "mqtt.max_packet_size").
  for (const auto& s : settings_) {
    if (key_of(s->name()) == key_of(name)) {
      if (!best.empty()) return {};  // ambiguous
      best = s->name();
    }
  }
  return best;
}

std::string Settings::suggest_flag(std::string_view flag) const {
  std::string best;
  size_t best_distance = std::max<size_t>(2, flag.size() / 4) + 1;
  auto consider = [&](std::string_view candidate) {
    if (!candidate.starts_with("--")) return;
    size_t d = edit_distance(flag, candidate);
    if (d < best_distance) best_distance = d, best = std::string(candidate);
  };
  for (const auto& s : settings_) {
    consider(s->flag());
    for (const auto& a : s->aliases()) consider(a.starts_with("!") ? std::string_view(a).substr(1) : a);
  }
  for (std::string_view own : {"--config", "--check-config", "--print-example-config", "--help", "--version"})
    consider(own);
  return best;
}

// --- loading ----------------------------------------------------------------------------------

std::vector<Error> Settings::stage_file(std::string_view toml_text, const std::string& name) {
  toml::table root;
  try {
    root = toml::parse(toml_text, name);
  } catch (const toml::parse_error& e) {
    const auto& at = e.source().begin;
    return {Error{name, static_cast<uint32_t>(at.line), static_cast<uint32_t>(at.column), {},
                  std::string(e.description())}};
  }
  return stage_table(root, name, {});
}

std::vector<Error> Settings::stage_table(const toml::table& root, const std::string& name,
                                         const std::string& error_prefix) {
  std::vector<Error> errors;
  auto error_at = [&](const toml::source_region& where, std::string setting, std::string msg) {
    errors.push_back(Error{name, static_cast<uint32_t>(where.begin.line),
                           static_cast<uint32_t>(where.begin.column), error_prefix + setting,
                           std::move(msg)});
  };
  std::function<void(const toml::table&, const std::string&)> walk =
      [&](const toml::table& table, const std::string& prefix) {
        for (const auto& [key, node] : table) {
          std::string full = prefix.empty() ? std::string(key.str())
                                            : prefix + "." + std::string(key.str());
          if (SettingBase* s = find(full)) {
            if (s->is_table_array()) {
              auto more = static_cast<TableArrayBase*>(s)->stage_elements(node, name, error_prefix);
              errors.insert(errors.end(), more.begin(), more.end());
              if (more.empty()) {
                s->staged_source_ = Source::kFile;
                s->staged_origin_ = name + ":" + std::to_string(node.source().begin.line);
              }
              continue;
            }
            if (std::string err = s->stage_toml(node); !err.empty()) {
              error_at(node.source(), full, err);
            } else {
              s->staged_source_ = Source::kFile;
              s->staged_origin_ = name + ":" + std::to_string(node.source().begin.line);
            }
            continue;
          }
          bool has_children = std::any_of(settings_.begin(), settings_.end(), [&](const auto& s) {
            return s->name().starts_with(full + ".");
          });
          if (has_children && node.is_table()) {
            walk(*node.as_table(), full);
            continue;
          }
          std::string msg = node.is_table() && !has_children ? "unknown table" : "unknown setting";
          if (std::string near = suggest(full); !near.empty()) {
            msg += " (did you mean " + near + "?)";
          }
          error_at(key.source(), full, msg);
        }
      };
  walk(root, "");
  // Tables iterate in key order; report in file order.
  std::stable_sort(errors.begin(), errors.end(), [](const Error& a, const Error& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  return errors;
}

std::vector<Error> Settings::stage(const std::string_view* toml_text, const std::string& name) {
  for (auto& s : settings_) {
    s->stage_default();
    s->staged_source_ = Source::kDefault;
    s->staged_origin_.clear();
  }
  std::vector<Error> errors;
  if (toml_text) errors = stage_file(*toml_text, name);
  for (auto& s : settings_) {
    if (s->option_ != nullptr) {
      s->flag_given_ = s->option_->count() > 0;
      s->option_ = nullptr;
    }
    if (!s->flag_given_) continue;
    std::vector<std::string> values;
    if (s->is_bool()) {
      values.push_back(s->flag_bool_ ? "true" : "false");
    } else if (s->is_list()) {
      values = s->flag_values_;
    } else {
      values.push_back(s->flag_text_);
    }
    if (std::string err = s->stage_text(values); !err.empty()) {
      errors.push_back(Error{{}, 0, 0, s->name(), s->flag() + ": " + err});
    } else {
      s->staged_source_ = Source::kFlag;
      s->staged_origin_ = s->flag();
    }
  }
  return errors;
}

std::vector<Error> Settings::load_table(const toml::table& table, const std::string& file,
                                        const std::string& prefix) {
  for (auto& s : settings_) {
    s->stage_default();
    s->staged_source_ = Source::kDefault;
  }
  std::vector<Error> errors = stage_table(table, file, prefix);
  if (!errors.empty()) return errors;
  for (auto& s : settings_) {
    s->commit();
    s->source_ = s->staged_source_;
  }
  for (auto& e : run_rules()) {
    e.file = file;
    e.line = static_cast<uint32_t>(table.source().begin.line);
    e.column = static_cast<uint32_t>(table.source().begin.column);
    e.message = prefix.substr(0, prefix.size() - 1) + ": " + e.message;
    errors.push_back(std::move(e));
  }
  return errors;
}

std::vector<Error> Settings::run_rules() const {
  std::vector<Error> errors;
  for (const auto& rule : rules_) {
    if (std::string err = rule(); !err.empty()) errors.push_back(Error{{}, 0, 0, {}, err});
  }
  return errors;
}

std::vector<Error> Settings::load() {
  if (config_path_.empty()) return load_text({}, {});
  std::string text, error;
  if (!read_file(config_path_, text, error)) {
    return {Error{config_path_, 0, 0, {}, "cannot read the config file: " + error}};
  }
  return load_text(text, config_path_);
}

std::vector<Error> Settings::load_text(std::string_view toml_text, const std::string& name) {
  std::vector<Error> errors = stage(name.empty() ? nullptr : &toml_text, name);
  if (!errors.empty()) return errors;
  for (auto& s : settings_) {
    s->commit();
    s->source_ = s->staged_source_;
    s->origin_ = s->staged_origin_;
  }
  return run_rules();
}

ReloadResult Settings::reload() {
  if (config_path_.empty()) {
    return ReloadResult{{Error{{}, 0, 0, {}, "no config file to re-read (start with --config FILE)"}},
                        {}, {}};
  }
  std::string text, error;
  if (!read_file(config_path_, text, error)) {
    return ReloadResult{{Error{config_path_, 0, 0, {}, "cannot read the config file: " + error}},
                        {}, {}};
  }
  return reload_text(text, config_path_);
}

ReloadResult Settings::reload_text(std::string_view toml_text, const std::string& name) {
  ReloadResult result;
  result.errors = stage(&toml_text, name);
  if (!result.errors.empty()) return result;
  std::vector<SettingBase*> committed;
  for (auto& s : settings_) {
    if (!s->staged_differs()) {
      s->source_ = s->staged_source_;  // same value, perhaps now written in the file
      s->origin_ = s->staged_origin_;
      continue;
    }
    Change change{s->name(), s->value_text(), s->staged_text()};
    if (s->live()) {
      s->commit();
      committed.push_back(s.get());
      result.applied.push_back(std::move(change));
    } else {
      result.needs_restart.push_back(std::move(change));
    }
  }
  // Rules see the values that would be in effect; if one fails, undo before any hook ran.
  if (auto errors = run_rules(); !errors.empty()) {
    for (SettingBase* s : committed) s->rollback();
    return ReloadResult{std::move(errors), {}, {}};
  }
  for (SettingBase* s : committed) {
    s->source_ = s->staged_source_;
    s->origin_ = s->staged_origin_;
    s->run_hook();
  }
  return result;
}

// --- the command line -------------------------------------------------------------------------

void Settings::add_flags(CLI::App& app) {
  app.add_option("--config", config_path_,
                 "TOML file with settings (see --print-example-config); flags override it")
      ->type_name("FILE");
  app.add_flag("--check-config", check_config_,
               "Validate the settings, print them with where each came from, and exit "
               "(0: valid, 64: not)");
  app.add_flag("--print-example-config", print_example_,
               "Print a TOML file documenting every setting at its default, and exit");
  for (auto& s : settings_) {
    if (s->is_table_array()) continue;  // file only: [[name]] tables have no flag spelling
    std::string names = s->flag();
    for (const auto& a : s->aliases()) {
      if (a != s->flag()) names += "," + a;
    }
    std::string help = s->help() + " [" + s->name() + (s->live() ? "; live" : "") + "]";
    std::string_view table = table_of(s->name());
    std::string group = table.empty() ? "Settings" : "Settings [" + std::string(table) + "]";
    CLI::Option* opt = nullptr;
    if (s->is_bool()) {
      opt = app.add_flag(names, s->flag_bool_, help);
    } else if (s->is_list()) {
      opt = app.add_option(names, s->flag_values_, help)->type_name("TEXT ...");
    } else {
      std::string type = s->type_name() == "integer" ? "INT" : s->type_name() == "number"
                                                                   ? "NUMBER"
                                                                   : "TEXT";
      opt = app.add_option(names, s->flag_text_, help)->type_name(type);
    }
    opt->group(group);
    if (!s->is_list()) opt->default_str(s->default_text());
    s->option_ = opt;
  }
}

int Settings::parse_command_line(CLI::App& app, int argc, const char* const* argv,
                                 std::ostream& out, std::ostream& err) {
  add_flags(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e, out, err);
    // An unknown flag: name the closest one, as the file's unknown keys do.
    if (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr) {
      for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (!arg.starts_with("--")) continue;
        arg = arg.substr(0, arg.find('='));
        if (app.get_option_no_throw(std::string(arg)) != nullptr) continue;
        if (std::string near = suggest_flag(arg); !near.empty())
          err << program_ << ": " << arg << ": unknown flag (did you mean " << near << "?)\n";
      }
    }
    return rc == 0 ? 0 : kExitUsage;
  }
  if (print_example_) {
    out << example();
    return 0;
  }
  std::vector<Error> errors = load();
  if (!errors.empty()) {
    for (const auto& e : errors) err << program_ << ": " << e.to_string() << '\n';
    return kExitUsage;
  }
  if (check_config_) {
    out << effective();
    return 0;
  }
  return -1;
}

// --- output -----------------------------------------------------------------------------------

std::string Settings::effective() const {
  std::string out = "# " + program_ + ": effective settings (" +
                    (config_path_.empty() ? std::string("no config file") : config_path_) +
                    "); the comment says where each value came from\n";
  size_t width = 0;
  for (const auto& s : settings_) width = std::max(width, s->name().size() + 3 + s->value_text().size());
  for (const auto& s : settings_) {
    std::string line = s->name() + " = " + s->value_text();
    line.resize(std::max(line.size(), width), ' ');
    line += "  # ";
    line += source_name(s->source());
    if (s->source() != Source::kDefault) line += " " + s->origin();
    out += line + "\n";
  }
  return out;
}

std::string Settings::effective_inline(const Settings& defaults) const {
  std::string out = "{";
  bool first = true;
  for (const auto& s : settings_) {
    const SettingBase* d = defaults.find(s->name());
    if (d != nullptr && s->value_text() == d->value_text()) continue;
    out += (first ? "" : ", ") + s->name() + " = " + s->value_text();
    first = false;
  }
  return out + "}";
}

std::string Settings::example() const {
  std::string out;
  comment(out, program_ + " configuration: every setting, commented out at its default. Load "
                          "it with --config FILE; a flag given on the command line wins over "
                          "the file.");
  comment(out, "Generated by `" + program_ + " --print-example-config`; do not edit by hand.");
  comment(out, "Settings marked \"live\" take a new value on SIGHUP (kill -HUP <pid>); the "
               "others need a restart, and a reload says so in the log.");
  std::vector<std::string_view> tables;
  for (const auto& s : settings_) {
    if (s->is_table_array()) continue;
    std::string_view t = table_of(s->name());
    if (std::find(tables.begin(), tables.end(), t) == tables.end()) tables.push_back(t);
  }
  // Top-level keys must come before the first [table] header.
  std::stable_partition(tables.begin(), tables.end(), [](std::string_view t) { return t.empty(); });
  for (std::string_view table : tables) {
    if (!table.empty()) out += "\n[" + std::string(table) + "]\n";
    for (const auto& s : settings_) {
      if (s->is_table_array() || table_of(s->name()) != table) continue;
      out += '\n';
      comment(out, s->help());
      std::string facts = s->type_name();
      if (!s->constraint().empty()) facts += ", " + s->constraint();
      facts += "; flag " + s->flag() + "; " + (s->live() ? "live" : "needs a restart");
      comment(out, facts);
      out += "#" + std::string(key_of(s->name())) + " = " + s->default_text() + "\n";
    }
  }
  // Arrays of tables come last: a [[name]] header opens a table that would swallow any plain
  // key written after it.
  for (const auto& s : settings_) {
    if (!s->is_table_array()) continue;
    out += '\n';
    comment(out, s->help());
    comment(out, "Repeat the [[" + s->name() + "]] table once per element; file only (no flag); "
                 "needs a restart. Each element's keys:");
    out += "#[[" + s->name() + "]]\n";
    out += static_cast<const TableArrayBase*>(s.get())->example_element();
  }
  return out;
}

std::string Settings::example_entries() const {
  std::string out;
  for (const auto& s : settings_) {
    out += "#\n";
    std::string text;
    comment(text, s->help());
    std::string facts = s->type_name();
    if (!s->constraint().empty()) facts += ", " + s->constraint();
    comment(text, facts);
    for (size_t at = 0; at < text.size();) {  // "#   " indent inside the element
      size_t eol = text.find('\n', at);
      out += "#  " + text.substr(at + 1, eol - at - 1) + "\n";
      at = eol + 1;
    }
    out += "#" + s->name() + " = " + s->default_text() + "\n";
  }
  return out;
}

}  // namespace tcpms::config
