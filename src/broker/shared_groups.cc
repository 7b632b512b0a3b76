#include "broker/shared_groups.h"

#include <algorithm>

#include "mqtt/topic.h"

namespace tcpms::broker {

SharedGroups::Group* SharedGroups::find(std::string_view share, std::string_view filter) {
  auto it = by_name_.find(std::make_pair(std::string(share), std::string(filter)));
  return it == by_name_.end() ? nullptr : it->second.get();
}

SharedGroups::Group& SharedGroups::get(std::string_view share, std::string_view filter) {
  if (Group* g = find(share, filter)) return *g;
  auto g = std::make_unique<Group>();
  g->id = next_id_++;
  g->share = std::string(share);
  g->filter = std::string(filter);
  Group& ref = *g;
  by_id_[ref.id] = &ref;
  by_name_.emplace(std::make_pair(ref.share, ref.filter), std::move(g));
  groups_count_.store(by_name_.size(), std::memory_order_relaxed);
  return ref;
}

void SharedGroups::drop_if_empty(Group& g) {
  if (!g.members.empty() || !g.peers.empty()) return;
  by_id_.erase(g.id);
  by_name_.erase(std::make_pair(g.share, g.filter));  // frees g
  groups_count_.store(by_name_.size(), std::memory_order_relaxed);
}

SharedGroups::Joined SharedGroups::join(std::string_view share, std::string_view filter,
                                        const Member& m) {
  std::lock_guard lock(mu_);
  Group& g = get(share, filter);
  Joined j;
  j.group = g.id;
  for (Member& e : g.members) {
    if (e.session == m.session) {
      e = m;
      j.replaced = true;
      return j;
    }
  }
  g.members.push_back(m);
  j.first_here = g.members.size() == 1;
  return j;
}

bool SharedGroups::leave(uint32_t group, const Session* s, bool* last_here) {
  std::lock_guard lock(mu_);
  auto it = by_id_.find(group);
  if (it == by_id_.end()) return false;
  Group& g = *it->second;
  auto m = std::find_if(g.members.begin(), g.members.end(),
                        [s](const Member& e) { return e.session == s; });
  if (m == g.members.end()) return false;
  *m = g.members.back();
  g.members.pop_back();
  if (last_here) *last_here = g.members.empty();
  drop_if_empty(g);
  return true;
}

bool SharedGroups::is_member(uint32_t group, const Session* s) const {
  std::lock_guard lock(mu_);
  auto it = by_id_.find(group);
  if (it == by_id_.end()) return false;
  for (const Member& e : it->second->members)
    if (e.session == s) return true;
  return false;
}

bool SharedGroups::describe(uint32_t group, std::string& share, std::string& filter) const {
  std::lock_guard lock(mu_);
  auto it = by_id_.find(group);
  if (it == by_id_.end()) return false;
  share = it->second->share;
  filter = it->second->filter;
  return true;
}

size_t SharedGroups::members_here(uint32_t group) const {
  std::lock_guard lock(mu_);
  auto it = by_id_.find(group);
  return it == by_id_.end() ? 0 : it->second->members.size();
}

size_t SharedGroups::peers_of(std::string_view share, std::string_view filter) const {
  std::lock_guard lock(mu_);
  auto it = by_name_.find(std::make_pair(std::string(share), std::string(filter)));
  return it == by_name_.end() ? 0 : it->second->peers.size();
}

void SharedGroups::set_remote(uint16_t peer, std::string_view share, std::string_view filter,
                              bool has) {
  std::lock_guard lock(mu_);
  if (has) {
    Group& g = get(share, filter);
    auto at = std::lower_bound(g.peers.begin(), g.peers.end(), peer);
    if (at == g.peers.end() || *at != peer) g.peers.insert(at, peer);
    return;
  }
  Group* g = find(share, filter);
  if (g == nullptr) return;
  auto at = std::lower_bound(g->peers.begin(), g->peers.end(), peer);
  if (at != g->peers.end() && *at == peer) g->peers.erase(at);
  drop_if_empty(*g);
}

std::vector<std::pair<std::string, std::string>> SharedGroups::remote_groups(uint16_t peer) const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [key, g] : by_name_)
    if (std::binary_search(g->peers.begin(), g->peers.end(), peer)) out.push_back(key);
  return out;
}

void SharedGroups::forget_peer(uint16_t peer) {
  std::lock_guard lock(mu_);
  std::vector<Group*> emptied;
  for (auto& [key, g] : by_name_) {
    auto at = std::lower_bound(g->peers.begin(), g->peers.end(), peer);
    if (at != g->peers.end() && *at == peer) g->peers.erase(at);
    if (g->members.empty() && g->peers.empty()) emptied.push_back(g.get());
  }
  for (Group* g : emptied) drop_if_empty(*g);
}

std::vector<std::pair<std::string, std::string>> SharedGroups::local_groups() const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [key, g] : by_name_)
    if (!g->members.empty()) out.emplace_back(g->share, g->filter);
  return out;
}

void SharedGroups::choose(std::string_view topic, std::vector<Choice>& out) {
  std::lock_guard lock(mu_);
  for (auto& [key, gp] : by_name_) {
    Group& g = *gp;
    const size_t n = g.members.size() + g.peers.size();
    if (n == 0 || !mqtt::topic_matches(g.filter, topic)) continue;
    const size_t k = g.next++ % n;
    Choice c;
    c.group = g.id;
    if (k < g.members.size()) {
      c.member = g.members[k];
    } else {
      c.peer = g.peers[k - g.members.size()];
      c.share = g.share;
      c.filter = g.filter;
    }
    out.push_back(std::move(c));
  }
}

std::optional<SharedGroups::Choice> SharedGroups::next(uint32_t group, const Session* exclude,
                                                       uint32_t tried) {
  std::lock_guard lock(mu_);
  auto it = by_id_.find(group);
  if (it == by_id_.end()) return std::nullopt;
  Group& g = *it->second;
  Choice c;
  c.group = g.id;
  const size_t others = g.members.size() -
                        (std::any_of(g.members.begin(), g.members.end(),
                                     [exclude](const Member& e) { return e.session == exclude; })
                             ? 1
                             : 0);
  if (tried < others) {
    // The next member here in round-robin order that is not `exclude`.
    for (size_t i = 0; i < g.members.size(); ++i) {
      const Member& m = g.members[(g.next + i) % g.members.size()];
      if (m.session == exclude) continue;
      g.next = (g.next + i + 1) % g.members.size();
      c.member = m;
      return c;
    }
  }
  if (g.peers.empty()) return std::nullopt;
  c.peer = g.peers[g.next++ % g.peers.size()];
  c.share = g.share;
  c.filter = g.filter;
  return c;
}

std::optional<SharedGroups::Member> SharedGroups::pick_here(std::string_view share,
                                                            std::string_view filter,
                                                            uint32_t& group, uint16_t exclude_peer,
                                                            uint16_t& other_peer) {
  std::lock_guard lock(mu_);
  other_peer = kLocalPeer;
  Group* g = find(share, filter);
  if (g == nullptr) return std::nullopt;
  group = g->id;
  if (g->members.empty()) {
    for (uint16_t p : g->peers)
      if (p != exclude_peer) {
        other_peer = p;
        break;
      }
    return std::nullopt;
  }
  return g->members[g->next++ % g->members.size()];
}

}  // namespace tcpms::broker
