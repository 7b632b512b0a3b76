#include "auth/circuit_breaker.h"

namespace tcpms::auth {

bool CircuitBreaker::allow(Clock::time_point now) {
  std::lock_guard lock(mu_);
  switch (state_) {
    case State::kClosed:
      return true;
    case State::kOpen:
      if (now < reopen_at_) return false;
      state_ = State::kHalfOpen;
      trial_in_flight_ = true;
      return true;
    case State::kHalfOpen:
      // One trial at a time; everyone else keeps the fallback until it answers.
      if (trial_in_flight_) return false;
      trial_in_flight_ = true;
      return true;
  }
  return true;
}

void CircuitBreaker::on_success() {
  std::lock_guard lock(mu_);
  state_ = State::kClosed;
  failures_ = 0;
  trial_in_flight_ = false;
}

void CircuitBreaker::on_failure(Clock::time_point now) {
  std::lock_guard lock(mu_);
  trial_in_flight_ = false;
  if (state_ == State::kHalfOpen || ++failures_ >= threshold_) {
    if (state_ != State::kOpen) ++opened_;
    state_ = State::kOpen;
    reopen_at_ = now + open_for_;
    failures_ = 0;
  }
}

CircuitBreaker::State CircuitBreaker::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

uint64_t CircuitBreaker::opened_total() const {
  std::lock_guard lock(mu_);
  return opened_;
}

}  // namespace tcpms::auth
