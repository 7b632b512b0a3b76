// LoginThrottle: a token bucket per key, in a bounded table; LoginGuard: the failed-login
// throttle built from two of them (below).
//
// Each login attempt takes a token before the (slow) password check; a success gives it back,
// a failure keeps it. So an address may fail `burst` times, then once per 1/rate seconds,
// and parallel attempts cannot overdraw (checking first and charging after the hash would let
// N concurrent CONNECTs through on one token). A refused attempt costs no hashing at all.
//
//   if (!throttle.try_acquire(key, now)) -> CONNACK 5 (not authorized), no hashing
//   verdict = db->verify(user, pass)      (worker thread)
//   if (verdict == kOk) throttle.on_success(key, now)
//
// Memory is bounded: at most max_entries addresses. Buckets that have refilled carry no
// information and are dropped first (and on success); when the table is full of active
// buckets, the least recently used one is evicted and counted (stats().evicted_active), since
// an attacker with many addresses can push others out.
// IPv6 addresses are keyed by their /64 (configurable): one host usually owns a whole /64.
// A key is an address, optionally with a user (ThrottleKey::user, a keyed hash of the name).
//
// Thread rules: every method is thread-safe (the table is sharded, a mutex per shard).
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "auth/token_bucket.h"

namespace tcpms::auth {

// An address as 16 bytes (IPv4 as ::ffff:a.b.c.d), host bits beyond the prefix cleared.
struct IpKey {
  std::array<uint8_t, 16> bytes{};
  bool operator==(const IpKey&) const = default;
};

// An address, or an (address, user) pair: `user` is 0 for the address alone, else a hash of
// the user name (LoginGuard's, keyed per process so that nobody can pick colliding names).
struct ThrottleKey {
  IpKey ip;
  uint64_t user = 0;
  ThrottleKey() = default;
  ThrottleKey(const IpKey& a, uint64_t u = 0) : ip(a), user(u) {}  // NOLINT: an address is a key
  bool operator==(const ThrottleKey&) const = default;
};

// nullopt for anything but AF_INET/AF_INET6.
std::optional<IpKey> ip_key_from_sockaddr(const sockaddr* addr, unsigned ipv6_prefix_bits = 64);
// "192.0.2.1" or "2001:db8::1"; nullopt if it is neither.
std::optional<IpKey> ip_key_from_string(std::string_view text, unsigned ipv6_prefix_bits = 64);

struct LoginThrottleConfig {
  TokenBucketLimits limits{0.2, 10};  // 10 failures, then one per 5 s
  size_t max_entries = 65536;         // about 100 bytes each
  size_t shards = 16;
};

class LoginThrottle {
 public:
  using Clock = TokenBucket::Clock;

  explicit LoginThrottle(LoginThrottleConfig config);
  ~LoginThrottle();

  // True: go ahead and check the password (one token taken). False: refuse without hashing.
  bool try_acquire(const ThrottleKey& key, Clock::time_point now);
  // The attempt succeeded (or was not made after all): its token comes back.
  void on_success(const ThrottleKey& key, Clock::time_point now);

  struct Stats {
    uint64_t refused = 0;          // try_acquire() said no
    uint64_t evicted_active = 0;   // a bucket still short of tokens was dropped for room
    size_t entries = 0;
  };
  Stats stats() const;

 private:
  struct Shard;
  Shard& shard_for(const ThrottleKey& key);

  LoginThrottleConfig config_;
  size_t per_shard_cap_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

// LoginGuard: failed logins limited per (user, address), with a looser cap per address, as
// the anchors do (fail2ban-style per-account lockout plus a per-source ceiling): wrong guesses
// at one user's password from an address do not lock the other users of that address out
// (everyone behind a NAT or a balancer shares one), while guessing many users' passwords
// from one address still runs into the address's cap.
//
//   switch (guard.try_acquire(ip, user, now)) { case kGo: ... verify ... }
//   if (ok) guard.on_success(ip, user, now);
//
// Each attempt takes a token from both buckets (or from neither); a success returns both.
// A rate of 0 turns that bucket off.
struct LoginGuardConfig {
  TokenBucketLimits per_user_address{0.2, 10};  // 10 failures, then one per 5 s
  TokenBucketLimits per_address{1.0, 100};      // 100 failures, then one per second
  size_t max_entries = 65536;                   // per table
};

class LoginGuard {
 public:
  using Clock = TokenBucket::Clock;
  enum class Verdict : uint8_t { kGo, kUserThrottled, kAddressThrottled };

  explicit LoginGuard(LoginGuardConfig config);
  Verdict try_acquire(const IpKey& ip, std::string_view user, Clock::time_point now);
  void on_success(const IpKey& ip, std::string_view user, Clock::time_point now);
  struct Stats {
    LoginThrottle::Stats per_user_address, per_address;
  };
  Stats stats() const;

 private:
  uint64_t user_hash(std::string_view user) const noexcept;
  std::unique_ptr<LoginThrottle> pairs_;      // null when off
  std::unique_ptr<LoginThrottle> addresses_;  // null when off
  uint64_t seed_;
};

}  // namespace tcpms::auth
