// TableArray<Item>: a setting whose value is an array of TOML tables ([[listeners]]), each
// element an Item with settings of its own. The element's settings are declared once, by a
// function that binds them to an Item the way a program binds its top-level settings, so
// validation, error positions and the example file come from the same declarations.
//
//   struct Listener { std::string bind; bool websocket = false; };
//   settings.add_table_array<Listener>("listeners", opt.listeners, "More addresses to listen on",
//       [](Settings& s, Listener& l) {
//         s.add("bind", l.bind, "HOST:PORT").check(non_empty);
//         s.add("websocket", l.websocket, "MQTT over WebSocket");
//       });
//
// File only (no flag), never live: a change is reported as needing a restart.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "config/settings.h"

namespace tcpms::config {

class TableArrayBase : public SettingBase {
 public:
  bool is_table_array() const noexcept override { return true; }
  bool is_bool() const noexcept override { return false; }
  bool is_list() const noexcept override { return false; }
  std::string type_name() const override { return "array of tables"; }
  // Stages every element of `node` (which must be an array of tables); errors are located in
  // `file` and named "<prefix><name>[N].<key>".
  virtual std::vector<Error> stage_elements(const toml::node& node, const std::string& file,
                                            const std::string& prefix) = 0;
  // One element's keys at their defaults, commented out (the example file).
  virtual std::string example_element() const = 0;

 protected:
  using SettingBase::SettingBase;
};

template <typename Item>
class TableArray final : public TableArrayBase {
 public:
  using Declare = std::function<void(Settings&, Item&)>;

  TableArray(std::string name, std::vector<Item>& target, std::string help, Declare declare)
      : TableArrayBase(std::move(name), std::move(help)), target_(&target), declare_(std::move(declare)) {
    default_text_ = "[]";
  }

  std::string value_text() const override { return render(*target_); }

  std::vector<Error> stage_elements(const toml::node& node, const std::string& file,
                                    const std::string& prefix) override {
    const toml::array* arr = node.as_array();
    if (arr == nullptr || !arr->is_array_of_tables()) {
      return {Error{file, static_cast<uint32_t>(node.source().begin.line),
                    static_cast<uint32_t>(node.source().begin.column), prefix + name(),
                    "expected [[" + name() + "]] tables"}};
    }
    std::vector<Item> items;
    std::vector<Error> errors;
    for (size_t i = 0; i < arr->size(); ++i) {
      Item item{};
      Settings element(name());
      declare_(element, item);
      auto errs = element.load_table(*arr->get(i)->as_table(), file,
                                     prefix + name() + "[" + std::to_string(i) + "].");
      errors.insert(errors.end(), errs.begin(), errs.end());
      items.push_back(std::move(item));
    }
    if (errors.empty()) staged_ = std::move(items);
    return errors;
  }

  std::string example_element() const override {
    Item item{};
    Settings element(name());
    declare_(element, item);
    return element.example_entries();
  }

 private:
  std::string render(const std::vector<Item>& items) const {
    Item fresh{};
    Settings defaults(name());
    declare_(defaults, fresh);
    std::string out = "[";
    for (size_t i = 0; i < items.size(); ++i) {
      Item copy = items[i];
      Settings element(name());
      declare_(element, copy);
      out += (i ? ", " : "") + element.effective_inline(defaults);
    }
    return out + "]";
  }

  std::string stage_text(const std::vector<std::string>&) override {
    return "[[" + name() + "]] tables can only be given in the config file";
  }
  std::string stage_toml(const toml::node&) override { return "internal: staged by Settings"; }
  void stage_default() override {
    staged_ = std::vector<Item>{};
  }
  bool staged_differs() const override { return staged_ && render(*staged_) != render(*target_); }
  std::string staged_text() const override { return staged_ ? render(*staged_) : value_text(); }
  void commit() override {
    if (!staged_) return;
    previous_ = *target_;
    *target_ = *staged_;
  }
  void run_hook() override {}
  void rollback() override {
    if (previous_) *target_ = *previous_;
    previous_.reset();
  }

  std::vector<Item>* target_;
  Declare declare_;
  std::optional<std::vector<Item>> staged_, previous_;
};

template <typename Item>
TableArray<Item>& Settings::add_table_array(std::string name, std::vector<Item>& target,
                                            std::string help,
                                            std::function<void(Settings&, Item&)> declare) {
  auto s = std::make_unique<TableArray<Item>>(std::move(name), target, std::move(help),
                                              std::move(declare));
  TableArray<Item>& ref = *s;
  insert(std::move(s));
  return ref;
}

}  // namespace tcpms::config
