#include "auth/login_throttle.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <random>
#include <string>

namespace tcpms::auth {
namespace {

uint64_t fnv1a(const uint8_t* p, size_t n, uint64_t h = 1469598103934665603ull) noexcept {
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

struct KeyHash {
  size_t operator()(const ThrottleKey& k) const noexcept {
    // FNV-1a; the table is per process and bounded, so flooding one bucket chain buys an
    // attacker little (and eviction caps the total).
    uint64_t h = fnv1a(k.ip.bytes.data(), k.ip.bytes.size());
    return static_cast<size_t>(fnv1a(reinterpret_cast<const uint8_t*>(&k.user), sizeof k.user, h));
  }
};

IpKey v4_key(const in_addr& a) {
  IpKey k;
  k.bytes[10] = 0xff;
  k.bytes[11] = 0xff;
  std::memcpy(&k.bytes[12], &a, 4);
  return k;
}

IpKey v6_key(const in6_addr& a, unsigned prefix_bits) {
  IpKey k;
  std::memcpy(k.bytes.data(), &a, 16);
  // A v4-mapped address is the IPv4 host: keep all of it.
  bool mapped = std::all_of(k.bytes.begin(), k.bytes.begin() + 10, [](uint8_t b) { return b == 0; }) &&
                k.bytes[10] == 0xff && k.bytes[11] == 0xff;
  if (mapped || prefix_bits >= 128) return k;
  for (unsigned bit = prefix_bits; bit < 128; ++bit)
    k.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  return k;
}

}  // namespace

std::optional<IpKey> ip_key_from_sockaddr(const sockaddr* addr, unsigned ipv6_prefix_bits) {
  if (addr == nullptr) return std::nullopt;
  if (addr->sa_family == AF_INET) return v4_key(reinterpret_cast<const sockaddr_in*>(addr)->sin_addr);
  if (addr->sa_family == AF_INET6)
    return v6_key(reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr, ipv6_prefix_bits);
  return std::nullopt;
}

std::optional<IpKey> ip_key_from_string(std::string_view text, unsigned ipv6_prefix_bits) {
  std::string s(text);
  in_addr a4{};
  if (inet_pton(AF_INET, s.c_str(), &a4) == 1) return v4_key(a4);
  in6_addr a6{};
  if (inet_pton(AF_INET6, s.c_str(), &a6) == 1) return v6_key(a6, ipv6_prefix_bits);
  return std::nullopt;
}

// Most recently used at the front; the map points into the list.
struct LoginThrottle::Shard {
  struct Node {
    ThrottleKey key;
    TokenBucket bucket;
  };
  std::mutex mu;
  std::list<Node> lru;
  std::unordered_map<ThrottleKey, std::list<Node>::iterator, KeyHash> index;
  uint64_t refused = 0;
  uint64_t evicted_active = 0;
};

LoginThrottle::LoginThrottle(LoginThrottleConfig config) : config_(config) {
  if (config_.shards == 0) config_.shards = 1;
  per_shard_cap_ = std::max<size_t>(1, config_.max_entries / config_.shards);
  for (size_t i = 0; i < config_.shards; ++i) shards_.push_back(std::make_unique<Shard>());
}

LoginThrottle::~LoginThrottle() = default;

LoginThrottle::Shard& LoginThrottle::shard_for(const ThrottleKey& key) {
  // The top bits, so the shard choice and the map's bucket choice are not the same bits.
  return *shards_[(KeyHash{}(key) >> 32) % shards_.size()];
}

bool LoginThrottle::try_acquire(const ThrottleKey& key, Clock::time_point now) {
  Shard& s = shard_for(key);
  const TokenBucketLimits& lim = config_.limits;
  std::lock_guard lock(s.mu);
  auto it = s.index.find(key);
  if (it != s.index.end()) {
    s.lru.splice(s.lru.begin(), s.lru, it->second);
    if (it->second->bucket.try_take(lim, 1, now)) return true;
    ++s.refused;
    return false;
  }
  // Refilled buckets at the cold end say nothing any more: drop a few per call.
  for (int i = 0; i < 4 && !s.lru.empty() && s.lru.back().bucket.full(lim, now); ++i) {
    s.index.erase(s.lru.back().key);
    s.lru.pop_back();
  }
  if (s.lru.size() >= per_shard_cap_) {
    ++s.evicted_active;
    s.index.erase(s.lru.back().key);
    s.lru.pop_back();
  }
  TokenBucket bucket(lim.burst, now);
  if (!bucket.try_take(lim, 1, now)) {  // burst < 1: nobody gets in
    ++s.refused;
    return false;
  }
  s.lru.push_front(Shard::Node{key, bucket});
  s.index.emplace(key, s.lru.begin());
  return true;
}

void LoginThrottle::on_success(const ThrottleKey& key, Clock::time_point now) {
  Shard& s = shard_for(key);
  std::lock_guard lock(s.mu);
  auto it = s.index.find(key);
  if (it == s.index.end()) return;  // evicted meanwhile
  TokenBucket& b = it->second->bucket;
  b.give_back(config_.limits, 1, now);
  if (b.full(config_.limits, now)) {  // nothing to remember
    s.lru.erase(it->second);
    s.index.erase(it);
  }
}

LoginThrottle::Stats LoginThrottle::stats() const {
  Stats st;
  for (const auto& s : shards_) {
    std::lock_guard lock(s->mu);
    st.refused += s->refused;
    st.evicted_active += s->evicted_active;
    st.entries += s->lru.size();
  }
  return st;
}

namespace {
std::unique_ptr<LoginThrottle> throttle_or_null(const TokenBucketLimits& limits, size_t entries) {
  if (limits.rate_per_s <= 0) return nullptr;
  LoginThrottleConfig c;
  c.limits = limits;
  c.max_entries = entries;
  return std::make_unique<LoginThrottle>(c);
}
}  // namespace

LoginGuard::LoginGuard(LoginGuardConfig config)
    : pairs_(throttle_or_null(config.per_user_address, config.max_entries)),
      addresses_(throttle_or_null(config.per_address, config.max_entries)),
      seed_((uint64_t{std::random_device{}()} << 32) ^ std::random_device{}()) {}

uint64_t LoginGuard::user_hash(std::string_view user) const noexcept {
  // Keyed by the process's seed: two names that share a bucket cannot be chosen in advance,
  // and a collision would only make two users of one address share their failures. Never 0
  // (that is the address alone).
  uint64_t h = fnv1a(reinterpret_cast<const uint8_t*>(&seed_), sizeof seed_);
  h = fnv1a(reinterpret_cast<const uint8_t*>(user.data()), user.size(), h);
  return h == 0 ? 1 : h;
}

LoginGuard::Verdict LoginGuard::try_acquire(const IpKey& ip, std::string_view user,
                                            Clock::time_point now) {
  const ThrottleKey pair(ip, user_hash(user));
  if (pairs_ && !pairs_->try_acquire(pair, now)) return Verdict::kUserThrottled;
  if (addresses_ && !addresses_->try_acquire(ip, now)) {
    if (pairs_) pairs_->on_success(pair, now);  // not attempted: its token comes back
    return Verdict::kAddressThrottled;
  }
  return Verdict::kGo;
}

void LoginGuard::on_success(const IpKey& ip, std::string_view user, Clock::time_point now) {
  if (pairs_) pairs_->on_success(ThrottleKey(ip, user_hash(user)), now);
  if (addresses_) addresses_->on_success(ip, now);
}

LoginGuard::Stats LoginGuard::stats() const {
  Stats st;
  if (pairs_) st.per_user_address = pairs_->stats();
  if (addresses_) st.per_address = addresses_->stats();
  return st;
}

}  // namespace tcpms::auth
