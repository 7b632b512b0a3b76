// TopicTree: one loop's subscriptions, as a tree of topic levels (3.1.1 §4.7).
//
// Wildcard rules, as matched here:
//   "sport/tennis/#" matches "sport/tennis" and "sport/tennis/player1/ranking" [MQTT-4.7.1-2]
//   "sport/+/player1" matches "sport/tennis/player1", not "sport/player1"     [MQTT-4.7.1-3]
//   "+" and "#" at the first level do not match topics starting with "$"      [MQTT-4.7.2-1]
//
// Costs: a publish looks up at most three children per topic level (the level, "+", "#"), so
// matching is O(levels) plus the subscribers it finds, whatever the number of filters.
// Subscribe and unsubscribe are O(levels) plus O(this client's subscriptions), however many
// clients share the filter: a node's entries are an array with swap-remove, and each session
// keeps the index of its entry (SubRecord).
//
// Memory: children are not stored per node. One open-addressing table for the whole tree maps
// (parent, level) to a child (8 bytes a slot), and a node holds its level inline (SmallString),
// its parent, counts, and its first subscriber inline. A subscriber entry is one word: the
// session pointer with the granted QoS in its two low bits.
//
// Thread rules: one tree per loop, used only on that loop's thread (no locks).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "broker/inline_vector.h"
#include "broker/session.h"
#include "broker/small_string.h"
#include "broker/topic_summary.h"
#include "mqtt/types.h"

namespace tcpms::broker {

// A subscriber entry: Session* | has-options bit | granted QoS.
class SubEntry {
 public:
  SubEntry() noexcept = default;
  SubEntry(Session* s, mqtt::QoS q, bool has_options = false) noexcept
      : bits_(reinterpret_cast<uintptr_t>(s) | static_cast<uintptr_t>(q) |
              (has_options ? uintptr_t{4} : 0)) {}
  Session* session() const noexcept { return reinterpret_cast<Session*>(bits_ & ~uintptr_t{7}); }
  mqtt::QoS qos() const noexcept { return static_cast<mqtt::QoS>(bits_ & 3); }
  // The session's SubRecord for this node carries 5.0 options (No Local, Retain As Published)
  // or a Subscription Identifier.
  bool has_options() const noexcept { return (bits_ & 4) != 0; }

 private:
  uintptr_t bits_ = 0;
};
static_assert(alignof(Session) >= 8);

class TopicNode {
 public:
  TopicNode(TopicNode* parent, std::string_view level) : parent_(parent), level_(level) {}
  TopicNode(const TopicNode&) = delete;
  TopicNode& operator=(const TopicNode&) = delete;

  TopicNode* parent() const noexcept { return parent_; }
  std::string_view level() const noexcept { return level_.view(); }
  uint32_t child_count() const noexcept { return child_count_; }
  uint32_t sub_count() const noexcept { return subs_.size(); }
  SubEntry* entries() noexcept { return subs_.data(); }
  const SubEntry* entries() const noexcept { return subs_.data(); }

 private:
  friend class TopicTree;
  TopicNode* parent_;
  SmallString level_;
  uint32_t child_count_ = 0;
  InlineVector<SubEntry> subs_;
};

class TopicTree {
 public:
  TopicTree();
  ~TopicTree();
  TopicTree(const TopicTree&) = delete;
  TopicTree& operator=(const TopicTree&) = delete;

  struct SubscribeResult {
    TopicNode* node = nullptr;
    bool replaced = false;     // the session already had this filter: QoS updated [MQTT-3.8.4-3]
    bool first_at_node = false;  // the filter had no subscriber on this loop before
  };
  // `filter` must be valid (mqtt::validate_topic_filter). `options`, `subscription_id`: as
  // in SubRecord.
  SubscribeResult subscribe(std::string_view filter, Session* s, mqtt::QoS qos,
                            uint8_t options = 0, uint32_t subscription_id = 0);
  // Returns false if the session had no such subscription. `last_at_node` tells whether the
  // filter lost its last subscriber on this loop.
  bool unsubscribe(std::string_view filter, Session* s, bool* last_at_node = nullptr);
  // Removes one of the session's subscriptions by record (session teardown, handover).
  void remove(Session* s, SubRecord* rec, bool* last_at_node = nullptr);
  // Removes all of a session's subscriptions; calls on_last(filter) for filters left empty.
  template <typename OnLast>
  void remove_all(Session* s, OnLast&& on_last) {
    while (!s->subs.empty()) {
      SubRecord* rec = &s->subs[s->subs.size() - 1];
      bool last = false;
      std::string f = on_last_needs_filter_ ? filter_of(rec->node) : std::string();
      remove(s, rec, &last);
      if (last) on_last(std::string_view(f));
    }
  }
  void set_filter_events(bool on) noexcept { on_last_needs_filter_ = on; }

  // Calls visit(Session*, QoS) for every subscription matching `topic` (a valid topic name);
  // or visit(Session*, QoS, const SubRecord*), the record only for entries with 5.0 options
  // or a Subscription Identifier.
  // A session with several matching filters is visited once per filter.
  template <typename Visit>
  void match(std::string_view topic, Visit&& visit) {
    levels_.clear();
    size_t start = 0;
    for (;;) {
      size_t slash = topic.find('/', start);
      if (slash == std::string_view::npos) {
        levels_.push_back(topic.substr(start));
        break;
      }
      levels_.push_back(topic.substr(start, slash - start));
      start = slash + 1;
    }
    const bool dollar = !topic.empty() && topic.front() == '$';
    match_from(&root_, 0, dollar, visit);
  }

  // Calls visit(filter) for every filter with at least one subscriber on this loop.
  template <typename Visit>
  void for_each_filter(Visit&& visit) const {
    for (const TopicNode* n : slots_)
      if (n != nullptr && n->sub_count() != 0) visit(std::string_view(filter_of(n)));
  }
  // The filter a node stands for ("a/+/c"), rebuilt from its path.
  std::string filter_of(const TopicNode* node) const;
  TopicNode* find(std::string_view filter) const;
  size_t subscription_count() const noexcept { return subscriptions_; }
  // What other loops read to skip this one (topic_summary.h). Any thread.
  const TopicSummary& summary() const noexcept { return summary_; }
  size_t node_count() const noexcept { return nodes_; }

 private:
  template <typename Visit>
  void visit_all(const TopicNode* n, Visit& visit) {
    const SubEntry* e = n->entries();
    for (uint32_t i = 0; i < n->subs_.size(); ++i) {
      if constexpr (std::is_invocable_v<Visit&, Session*, mqtt::QoS, const SubRecord*>) {
        Session* s = e[i].session();
        visit(s, e[i].qos(), e[i].has_options() ? s->subs.find(n) : nullptr);
      } else {
        visit(e[i].session(), e[i].qos());
      }
    }
  }
  template <typename Visit>
  void match_from(const TopicNode* n, size_t i, bool dollar, Visit& visit) {
    const bool at_root = (n == &root_);
    if (!(at_root && dollar) && n->child_count_ != 0) {
      // "#" matches this level and everything below, including the parent itself
      // ("sport/#" matches "sport") [MQTT-4.7.1-2].
      if (const TopicNode* hash = child(n, "#")) visit_all(hash, visit);
    }
    if (i == levels_.size()) {
      visit_all(n, visit);
      return;
    }
    if (n->child_count_ == 0) return;
    if (!(at_root && dollar)) {
      if (const TopicNode* plus = child(n, "+")) match_from(plus, i + 1, dollar, visit);
    }
    if (const TopicNode* exact = child(n, levels_[i])) match_from(exact, i + 1, dollar, visit);
  }

  // --- edge table: (parent, level) -> child, open addressing with linear probing -----------
  static size_t hash(const TopicNode* parent, std::string_view level) noexcept;
  TopicNode* child(const TopicNode* parent, std::string_view level) const noexcept;
  void edge_insert(TopicNode* n);
  void edge_erase(TopicNode* n);
  void edge_grow();
  void prune(TopicNode* n);
  // Adds (+1) or removes (-1) a filter node in the summary, by its first two levels.
  void summarize(const TopicNode* n, int delta);
  TopicNode* walk(std::string_view filter, bool create);

  TopicNode root_{nullptr, ""};
  TopicSummary summary_;
  std::vector<TopicNode*> slots_;
  size_t edges_ = 0;
  size_t nodes_ = 0;
  size_t subscriptions_ = 0;
  bool on_last_needs_filter_ = false;
  std::vector<std::string_view> levels_;  // scratch for match()
};

}  // namespace tcpms::broker
