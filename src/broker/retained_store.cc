#include "broker/retained_store.h"

namespace tcpms::broker {
namespace {

std::vector<std::string_view> split_levels(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, slash - start));
    start = slash + 1;
  }
}

}  // namespace

RetainedStore::RetainedStore() = default;
RetainedStore::~RetainedStore() = default;

void RetainedStore::set(const SharedBytes& topic, const SharedBytes& payload, mqtt::QoS qos,
                        const MessageProps& props) {
  auto levels = split_levels(as_chars(topic.view()));
  std::lock_guard lock(mu_);
  if (payload.empty()) {
    // Clear: walk down remembering the path, then prune empty nodes bottom-up.
    std::vector<Node*> path{&root_};
    for (auto level : levels) {
      auto it = path.back()->children.find(level);
      if (it == path.back()->children.end()) return;
      path.push_back(it->second.get());
    }
    Node* n = path.back();
    if (!n->has_msg) return;
    bytes_ -= n->msg.payload.size();
    n->msg = RetainedMessage{};
    n->has_msg = false;
    --count_;
    for (size_t i = path.size() - 1; i > 0; --i) {
      Node* cur = path[i];
      if (cur->has_msg || !cur->children.empty()) break;
      path[i - 1]->children.erase(std::string(levels[i - 1]));
    }
    return;
  }
  Node* n = &root_;
  for (auto level : levels) {
    auto it = n->children.find(level);
    if (it == n->children.end())
      it = n->children.emplace(std::string(level), std::make_unique<Node>()).first;
    n = it->second.get();
  }
  if (n->has_msg) {
    bytes_ -= n->msg.payload.size();
  } else {
    ++count_;
  }
  n->msg = RetainedMessage{topic, payload, props, qos, true};
  n->has_msg = true;
  bytes_ += payload.size();
}

void RetainedStore::collect_all(const Node& n, std::vector<RetainedMessage>& out) const {
  if (n.has_msg) out.push_back(n.msg);
  for (const auto& [_, c] : n.children) collect_all(*c, out);
}

void RetainedStore::match_from(const Node& n, const std::vector<std::string_view>& levels,
                               size_t i, std::vector<RetainedMessage>& out) const {
  if (i == levels.size()) {
    if (n.has_msg) out.push_back(n.msg);
    return;
  }
  const std::string_view level = levels[i];
  const bool root = (&n == &root_);
  if (level == "#") {
    // "a/#" matches "a" itself and everything below it [MQTT-4.7.1-2].
    if (!root && n.has_msg) out.push_back(n.msg);
    for (const auto& [name, c] : n.children) {
      if (root && !name.empty() && name.front() == '$') continue;  // [MQTT-4.7.2-1]
      collect_all(*c, out);
    }
    return;
  }
  if (level == "+") {
    for (const auto& [name, c] : n.children) {
      if (root && !name.empty() && name.front() == '$') continue;  // [MQTT-4.7.2-1]
      match_from(*c, levels, i + 1, out);
    }
    return;
  }
  auto it = n.children.find(level);
  if (it != n.children.end()) match_from(*it->second, levels, i + 1, out);
}

void RetainedStore::match(std::string_view filter, std::vector<RetainedMessage>& out) const {
  auto levels = split_levels(filter);
  std::lock_guard lock(mu_);
  match_from(root_, levels, 0, out);
}

void RetainedStore::all(std::vector<RetainedMessage>& out) const {
  std::lock_guard lock(mu_);
  collect_all(root_, out);
}

size_t RetainedStore::size() const {
  std::lock_guard lock(mu_);
  return count_;
}

size_t RetainedStore::payload_bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

}  // namespace tcpms::broker
