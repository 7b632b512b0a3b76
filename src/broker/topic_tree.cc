#include "broker/topic_tree.h"

#include <algorithm>
#include <functional>

#include "broker/open_table.h"

namespace tcpms::broker {

TopicTree::TopicTree() : slots_(64, nullptr) {}

TopicTree::~TopicTree() {
  for (TopicNode* n : slots_) delete n;  // every node but the root is in exactly one slot
}

size_t TopicTree::hash(const TopicNode* parent, std::string_view level) noexcept {
  size_t h = std::hash<std::string_view>{}(level);
  uintptr_t p = reinterpret_cast<uintptr_t>(parent);
  h ^= (p >> 4) * 0x9E3779B97F4A7C15ull;
  return h ^ (h >> 29);
}

TopicNode* TopicTree::child(const TopicNode* parent, std::string_view level) const noexcept {
  const size_t mask = slots_.size() - 1;
  for (size_t i = hash(parent, level) & mask;; i = (i + 1) & mask) {
    TopicNode* n = slots_[i];
    if (n == nullptr) return nullptr;
    if (n->parent_ == parent && n->level() == level) return n;
  }
}

void TopicTree::edge_insert(TopicNode* n) {
  if ((edges_ + 1) * 4 > slots_.size() * 3) edge_grow();
  const size_t mask = slots_.size() - 1;
  size_t i = hash(n->parent_, n->level()) & mask;
  while (slots_[i] != nullptr) i = (i + 1) & mask;
  slots_[i] = n;
  ++edges_;
}

void TopicTree::edge_grow() {
  std::vector<TopicNode*> old(slots_.size() * 2, nullptr);
  old.swap(slots_);
  const size_t mask = slots_.size() - 1;
  for (TopicNode* n : old) {
    if (n == nullptr) continue;
    size_t i = hash(n->parent_, n->level()) & mask;
    while (slots_[i] != nullptr) i = (i + 1) & mask;
    slots_[i] = n;
  }
}

void TopicTree::edge_erase(TopicNode* n) {
  const size_t mask = slots_.size() - 1;
  size_t i = hash(n->parent_, n->level()) & mask;
  while (slots_[i] != n) i = (i + 1) & mask;
  backward_shift_erase(slots_, i, [](const TopicNode* e) { return hash(e->parent_, e->level()); });
  --edges_;
}

TopicNode* TopicTree::walk(std::string_view filter, bool create) {
  TopicNode* n = &root_;
  size_t start = 0;
  for (;;) {
    size_t slash = filter.find('/', start);
    std::string_view level = filter.substr(start, slash == std::string_view::npos
                                                      ? std::string_view::npos
                                                      : slash - start);
    TopicNode* c = child(n, level);
    if (c == nullptr) {
      if (!create) return nullptr;
      c = new TopicNode(n, level);
      edge_insert(c);
      ++n->child_count_;
      ++nodes_;
    }
    n = c;
    if (slash == std::string_view::npos) return n;
    start = slash + 1;
  }
}

TopicNode* TopicTree::find(std::string_view filter) const {
  return const_cast<TopicTree*>(this)->walk(filter, false);
}

TopicTree::SubscribeResult TopicTree::subscribe(std::string_view filter, Session* s,
                                                mqtt::QoS qos, uint8_t options,
                                                uint32_t subscription_id) {
  SubscribeResult r;
  r.node = walk(filter, true);
  const bool flagged = options != 0 || subscription_id != 0;
  if (SubRecord* rec = s->subs.find(r.node)) {
    r.node->entries()[rec->index] = SubEntry(s, qos, flagged);  // replace [MQTT-3.8.4-3]
    rec->options = options & 0xF;
    rec->subscription_id = subscription_id & 0x0FFFFFFF;
    r.replaced = true;
    return r;
  }
  r.first_at_node = r.node->subs_.empty();
  if (r.first_at_node) summarize(r.node, +1);
  uint32_t index = r.node->subs_.push_back(SubEntry(s, qos, flagged));
  SubRecord rec;
  rec.node = r.node;
  rec.index = index;
  rec.options = options & 0xF;
  rec.subscription_id = subscription_id & 0x0FFFFFFF;
  s->subs.push_back(rec);
  ++subscriptions_;
  return r;
}

void TopicTree::remove(Session* s, SubRecord* rec, bool* last_at_node) {
  TopicNode* node = rec->node;
  const uint32_t index = rec->index;
  if (node->subs_.swap_remove(index)) {
    // The node's last entry took this one's place: point its owner at the new index.
    if (SubRecord* m = node->subs_[index].session()->subs.find(node)) m->index = index;
  }
  s->subs.erase(rec);
  --subscriptions_;
  if (node->subs_.empty()) summarize(node, -1);
  if (last_at_node) *last_at_node = node->subs_.empty();
  prune(node);
}

bool TopicTree::unsubscribe(std::string_view filter, Session* s, bool* last_at_node) {
  TopicNode* node = walk(filter, false);
  if (node == nullptr) return false;
  SubRecord* rec = s->subs.find(node);
  if (rec == nullptr) return false;
  remove(s, rec, last_at_node);
  return true;
}

void TopicTree::prune(TopicNode* n) {
  while (n != &root_ && n->subs_.empty() && n->child_count_ == 0) {
    TopicNode* parent = n->parent_;
    edge_erase(n);
    --parent->child_count_;
    --nodes_;
    delete n;
    n = parent;
  }
}

void TopicTree::summarize(const TopicNode* n, int delta) {
  // The first two levels of the node's path: walk up, keeping the last two nodes seen.
  const TopicNode* first = n;
  const TopicNode* second = nullptr;
  while (first->parent_ != &root_) {
    second = first;
    first = first->parent_;
  }
  if (delta > 0) {
    summary_.add(first->level(), second != nullptr, second ? second->level() : std::string_view());
  } else {
    summary_.remove(first->level(), second != nullptr, second ? second->level() : std::string_view());
  }
}

std::string TopicTree::filter_of(const TopicNode* node) const {
  std::vector<std::string_view> parts;
  for (const TopicNode* n = node; n != nullptr && n != &root_; n = n->parent_)
    parts.push_back(n->level());
  std::string out;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    if (it != parts.rbegin()) out += '/';
    out.append(*it);
  }
  return out;
}

}  // namespace tcpms::broker
