#include "auth/decision_cache.h"

namespace tcpms::auth {

std::optional<bool> DecisionCache::get(std::string_view key, Clock::time_point now) {
  auto it = index_.find(key);
  if (it == index_.end()) return std::nullopt;
  if (it->second->expires <= now) {
    lru_.erase(it->second);
    index_.erase(it);
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->allow;
}

void DecisionCache::put(std::string_view key, bool allow, Clock::duration ttl,
                        Clock::time_point now) {
  if (ttl <= Clock::duration::zero()) return;
  if (auto it = index_.find(key); it != index_.end()) {
    it->second->allow = allow;
    it->second->expires = now + ttl;
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  while (index_.size() >= max_entries_) {
    if (lru_.back().expires > now) ++evictions_;  // a live answer dropped for room
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
  lru_.push_front(Entry{std::string(key), allow, now + ttl});
  index_.emplace(lru_.front().key, lru_.begin());
}

void DecisionCache::clear() {
  index_.clear();
  lru_.clear();
}

}  // namespace tcpms::auth
