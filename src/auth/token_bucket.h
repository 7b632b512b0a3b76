// TokenBucket: `rate_per_s` tokens per second up to `burst`; an action costs tokens or waits.
// Used for failed logins per source address (LoginThrottle), and meant for per-client message
// and byte rates and per-source connection rates.
//
// The limits live outside the bucket (TokenBucketLimits, usually one per listener or config),
// so a bucket is 16 bytes: a million clients with a bucket each cost 16 MB, not 32.
// Time comes in as an argument (steady_clock), which keeps it testable and lets a loop pass
// the time it already read for its batch.
// Thread rules: none inside; a bucket belongs to one thread or sits behind its owner's lock.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace tcpms::auth {

struct TokenBucketLimits {
  double rate_per_s = 1.0;  // refill rate; 0 never refills
  double burst = 1.0;       // capacity; 0 refuses everything
};

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  // Starts with `initial` tokens (usually limits.burst: a newcomer has its whole burst).
  TokenBucket(double initial, Clock::time_point now) noexcept : tokens_(initial), last_ns_(ns(now)) {}

  // Takes `n` tokens if there are that many; otherwise takes nothing.
  bool try_take(const TokenBucketLimits& lim, double n, Clock::time_point now) noexcept {
    refill(lim, now);
    if (tokens_ < n) return false;
    tokens_ -= n;
    return true;
  }
  // Returns tokens (e.g. a refund for an attempt that turned out fine), capped at the burst.
  void give_back(const TokenBucketLimits& lim, double n, Clock::time_point now) noexcept {
    refill(lim, now);
    tokens_ = std::min(lim.burst, tokens_ + n);
  }
  double available(const TokenBucketLimits& lim, Clock::time_point now) noexcept {
    refill(lim, now);
    return tokens_;
  }
  bool full(const TokenBucketLimits& lim, Clock::time_point now) noexcept {
    return available(lim, now) >= lim.burst;
  }
  // How long until `n` tokens are there (zero if they are now; Clock::duration::max() if never).
  Clock::duration wait_for(const TokenBucketLimits& lim, double n, Clock::time_point now) noexcept {
    double missing = n - available(lim, now);
    if (missing <= 0) return Clock::duration::zero();
    if (lim.rate_per_s <= 0 || n > lim.burst) return Clock::duration::max();
    return std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(missing / lim.rate_per_s));
  }

 private:
  static int64_t ns(Clock::time_point t) noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  }
  void refill(const TokenBucketLimits& lim, Clock::time_point now) noexcept {
    int64_t t = ns(now);
    if (t <= last_ns_) return;  // same instant, or a caller's older timestamp: no refill
    double earned = static_cast<double>(t - last_ns_) * 1e-9 * lim.rate_per_s;
    tokens_ = std::min(lim.burst, tokens_ + earned);
    last_ns_ = t;
  }

  double tokens_;
  int64_t last_ns_;
};

}  // namespace tcpms::auth
