// DecisionCache: allow/deny answers from an external authority (an HTTP service), kept for a
// time and bounded in number: the least recently used entry goes first when it is full, and
// an expired entry is never returned. Keys are strings the caller builds (client, user,
// action, topic; or a digest of the credentials).
//
//   if (auto d = cache.get(key, now)) use(*d);
//   else ask the service, then cache.put(key, answer, answer ? allow_ttl : deny_ttl, now);
//
// Memory: the key's bytes plus about 100 bytes an entry (list node, hash slot, expiry).
//
// Thread rules: none inside; one owner (a loop), or behind its owner's lock.
#pragma once

#include <chrono>
#include <cstddef>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace tcpms::auth {

class DecisionCache {
 public:
  using Clock = std::chrono::steady_clock;

  explicit DecisionCache(size_t max_entries) : max_entries_(max_entries ? max_entries : 1) {}

  std::optional<bool> get(std::string_view key, Clock::time_point now);
  void put(std::string_view key, bool allow, Clock::duration ttl, Clock::time_point now);
  void clear();
  size_t size() const noexcept { return index_.size(); }
  uint64_t evictions() const noexcept { return evictions_; }

 private:
  struct Entry {
    std::string key;
    bool allow = false;
    Clock::time_point expires;
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  size_t max_entries_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator, Hash, std::equal_to<>> index_;
  uint64_t evictions_ = 0;
};

}  // namespace tcpms::auth
