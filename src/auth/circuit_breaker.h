// CircuitBreaker: stops asking a service that keeps failing. Closed, every request goes; after
// `failure_threshold` failures in a row it opens, and requests are refused at once (the caller
// applies its fallback) for `open_for`; then it lets one trial request through (half-open):
// its success closes the breaker, its failure opens it again for another `open_for`.
//
//   if (!breaker.allow(now)) -> fallback now, no request
//   ok ? breaker.on_success() : breaker.on_failure(now);
//
// Thread rules: every method is thread-safe (one mutex; requests take it twice).
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

namespace tcpms::auth {

class CircuitBreaker {
 public:
  using Clock = std::chrono::steady_clock;
  enum class State : uint8_t { kClosed, kOpen, kHalfOpen };

  CircuitBreaker(uint32_t failure_threshold, Clock::duration open_for)
      : threshold_(failure_threshold ? failure_threshold : 1), open_for_(open_for) {}

  // True: make the request (and report how it went). False: the service is taken to be down.
  bool allow(Clock::time_point now);
  void on_success();
  void on_failure(Clock::time_point now);

  State state() const;
  uint64_t opened_total() const;  // times it opened

 private:
  const uint32_t threshold_;
  const Clock::duration open_for_;
  mutable std::mutex mu_;
  State state_ = State::kClosed;
  uint32_t failures_ = 0;  // in a row
  Clock::time_point reopen_at_{};
  bool trial_in_flight_ = false;
  uint64_t opened_ = 0;
};

}  // namespace tcpms::auth
