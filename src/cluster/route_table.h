// RouteTable: the other nodes' topic filters, as a trie of levels whose nodes carry the set
// of cluster nodes that subscribed the filter ending there.
//
//   add(node, "a/+/c")   remove(node, "a/+/c")   replace_node(node, filters)   drop_node(node)
//   match("a/b/c") -> every node with a filter matching the topic
//
// Matching walks the topic's levels, trying at each trie node the exact level, "+" and "#":
// its cost follows the topic's depth and the wildcard branches that exist, never the number
// of filters (a broadcast per node would cost a Redis PUBLISH to nodes that drop it; a scan
// of every filter would cost O(filters) per publish). "+"/"#" at the first level do not match
// "$" topics [MQTT-4.7.2-1]. Shared subscriptions ("$share/g/f") are routed by their filter f.
//
// Nodes are small indices (node_index(name)); at most kMaxNodes names per process lifetime.
//
// Thread rules: not thread-safe; RedisRouter guards it with a reader/writer lock.
#pragma once

#include <bitset>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace tcpms::cluster {

inline constexpr size_t kMaxNodes = 256;
using NodeSet = std::bitset<kMaxNodes>;
inline constexpr uint16_t kNoNode = 0xffff;

class RouteTable {
 public:
  RouteTable();
  ~RouteTable();

  // The index of `name`, assigned on first sight; kNoNode past kMaxNodes names.
  uint16_t node_index(std::string_view name);
  uint16_t find_node(std::string_view name) const;  // kNoNode if never seen
  const std::string& node_name(uint16_t index) const { return names_[index]; }
  size_t node_names() const { return names_.size(); }

  // True if the (node, filter) pair was new / was present.
  bool add(uint16_t node, std::string_view filter);
  bool remove(uint16_t node, std::string_view filter);
  // Replaces everything `node` had (a snapshot read from Redis).
  void replace_node(uint16_t node, const std::vector<std::string>& filters);
  void drop_node(uint16_t node);

  NodeSet match(std::string_view topic) const;
  // (node, filter) pairs held, over all nodes.
  size_t route_count() const noexcept { return routes_; }
  size_t filters_of(uint16_t node) const;

 private:
  struct Trie;
  static std::string_view routing_filter(std::string_view filter);
  void match_from(const Trie& t, std::string_view rest, bool at_end, bool first, NodeSet& out) const;

  std::unique_ptr<Trie> root_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, uint16_t> index_;
  std::vector<std::unordered_set<std::string>> by_node_;  // for replace/drop
  size_t routes_ = 0;
};

}  // namespace tcpms::cluster
