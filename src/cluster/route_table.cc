#include "cluster/route_table.h"

#include "mqtt/topic.h"

namespace tcpms::cluster {

struct RouteTable::Trie {
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::unique_ptr<Trie>, Hash, std::equal_to<>> children;
  NodeSet nodes;  // nodes whose filter ends at this level

  bool empty() const { return children.empty() && nodes.none(); }
};

namespace {

// Splits off the first level of `s`: returns it and leaves the rest (after the '/') in `s`;
// `last` tells whether there was no '/'.
std::string_view next_level(std::string_view& s, bool& last) {
  size_t slash = s.find('/');
  std::string_view level = s.substr(0, slash);
  last = slash == std::string_view::npos;
  s = last ? std::string_view{} : s.substr(slash + 1);
  return level;
}

}  // namespace

RouteTable::RouteTable() : root_(std::make_unique<Trie>()) {}
RouteTable::~RouteTable() = default;

uint16_t RouteTable::node_index(std::string_view name) {
  if (auto it = index_.find(std::string(name)); it != index_.end()) return it->second;
  if (names_.size() >= kMaxNodes) return kNoNode;
  auto i = static_cast<uint16_t>(names_.size());
  names_.emplace_back(name);
  index_.emplace(std::string(name), i);
  by_node_.emplace_back();
  return i;
}

uint16_t RouteTable::find_node(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? kNoNode : it->second;
}

std::string_view RouteTable::routing_filter(std::string_view filter) {
  if (auto shared = mqtt::parse_shared_subscription(filter)) return shared->filter;
  return filter;
}

bool RouteTable::add(uint16_t node, std::string_view filter) {
  if (node >= names_.size()) return false;
  if (!by_node_[node].emplace(filter).second) return false;
  std::string_view rest = routing_filter(filter);
  Trie* t = root_.get();
  for (bool last = false; !last;) {
    std::string_view level = next_level(rest, last);
    auto it = t->children.find(level);
    if (it == t->children.end()) it = t->children.emplace(std::string(level), std::make_unique<Trie>()).first;
    t = it->second.get();
  }
  // Two shared groups on one filter land on the same trie node: count by the by_node_ set.
  if (!t->nodes.test(node)) t->nodes.set(node);
  ++routes_;
  return true;
}

bool RouteTable::remove(uint16_t node, std::string_view filter) {
  if (node >= names_.size()) return false;
  auto& mine = by_node_[node];
  auto it = mine.find(std::string(filter));
  if (it == mine.end()) return false;
  const std::string_view routed = routing_filter(filter);
  // Another of this node's filters may route to the same trie node ("$share/a/x" and "x").
  bool still = false;
  for (const auto& f : mine) {
    if (&f != &*it && routing_filter(f) == routed) {
      still = true;
      break;
    }
  }
  mine.erase(it);
  --routes_;
  if (still) return true;
  // Walk down remembering the path, clear the bit, prune empty trie nodes bottom-up.
  std::vector<std::pair<Trie*, std::string_view>> path;
  std::string_view rest = routed;
  Trie* t = root_.get();
  for (bool last = false; !last;) {
    std::string_view level = next_level(rest, last);
    auto c = t->children.find(level);
    if (c == t->children.end()) return true;
    path.emplace_back(t, level);
    t = c->second.get();
  }
  t->nodes.reset(node);
  for (size_t i = path.size(); i-- > 0;) {
    auto [parent, level] = path[i];
    auto c = parent->children.find(level);
    if (!c->second->empty()) break;
    parent->children.erase(c);
  }
  return true;
}

void RouteTable::replace_node(uint16_t node, const std::vector<std::string>& filters) {
  drop_node(node);
  for (const auto& f : filters) add(node, f);
}

void RouteTable::drop_node(uint16_t node) {
  if (node >= names_.size()) return;
  std::vector<std::string> had(by_node_[node].begin(), by_node_[node].end());
  for (const auto& f : had) remove(node, f);
}

size_t RouteTable::filters_of(uint16_t node) const {
  return node < by_node_.size() ? by_node_[node].size() : 0;
}

NodeSet RouteTable::match(std::string_view topic) const {
  NodeSet out;
  if (routes_ == 0) return out;
  match_from(*root_, topic, false, true, out);
  return out;
}

// `rest` is what is left of the topic; `at_end` is true once every level was consumed.
void RouteTable::match_from(const Trie& t, std::string_view rest, bool at_end, bool first,
                            NodeSet& out) const {
  const bool dollar = first && !rest.empty() && rest.front() == '$';
  // "#" matches this level and everything below, including the parent ("a/#" matches "a").
  if (!dollar) {
    if (auto h = t.children.find(std::string_view("#")); h != t.children.end()) out |= h->second->nodes;
  }
  if (at_end) {
    out |= t.nodes;
    return;
  }
  bool last = false;
  std::string_view level = next_level(rest, last);
  if (auto c = t.children.find(level); c != t.children.end()) match_from(*c->second, rest, last, false, out);
  if (!dollar) {
    if (auto p = t.children.find(std::string_view("+")); p != t.children.end())
      match_from(*p->second, rest, last, false, out);
  }
}

}  // namespace tcpms::cluster
