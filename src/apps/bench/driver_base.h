// What every workload's LoopDriver needs: connecting to the planned (source, target) pair,
// failure counting by cause, a clock, and the result/live-counter bookkeeping.
//
// Threads: the loop's thread only (like any Handler).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "workload.h"

namespace tcpms::benchapp {

// "ECONNREFUSED" for 111; "errno_N" for an unknown number.
std::string errno_cause(int err);
// The failure cause for a connection that closed for `reason` (with `last_error` from the
// engine): the errno name when there is one, else "closed_by_server", "output_overflow"...
std::string close_cause(CloseReason reason, int last_error);
// A close the bench made itself: its own teardown (Server::stop), a close the workload asked
// for (kProtocol), a timeout counted where it was decided. Anything else was the other side's
// doing (or the network's): a lost client.
inline bool closed_by_us(CloseReason reason) noexcept {
  return reason == CloseReason::kShutdown || reason == CloseReason::kProtocol ||
         reason == CloseReason::kIdleTimeout;
}

// CLOCK_MONOTONIC in nanoseconds: the same clock in every process of the run.
uint64_t monotonic_ns() noexcept;

class DriverBase : public LoopDriver {
 public:
  explicit DriverBase(const DriverContext& ctx) : ctx_(ctx), live_(*ctx.live) {}
  bench::RunResult take_result() override;

 protected:
  EventLoop& loop() const noexcept { return *ctx_.loop; }
  const CommonOptions& opt() const noexcept { return *ctx_.options; }
  static uint32_t ms(double seconds) noexcept { return static_cast<uint32_t>(seconds * 1000.0 + 0.5); }

  // Starts connect number `index` (global over the run, chooses the pair). on_open may run
  // before this returns. Returns an invalid id when the connect failed at once (the failure is
  // counted by errno).
  ConnId start_connect(uint64_t index, void* user_data);
  // The same without counting a failure: `err` says why the id is invalid (a driver that
  // retries counts its attempts its own way).
  ConnId try_connect(uint64_t index, void* user_data, int& err);
  // The connection timer as a deadline (connect, reply); on_timeout fires when it passes.
  void arm_timeout(ConnId id, double seconds);
  void count_failure(std::string_view cause, int64_t n = 1);
  void mark_done();
  bool done() const noexcept { return done_; }

  DriverContext ctx_;
  LiveCounters& live_;
  bench::RunResult result_;

 private:
  bool done_ = false;
};

// The per-connection index a driver keeps in Connection::user_data (no allocation).
inline void* index_tag(uint64_t i) noexcept { return reinterpret_cast<void*>(static_cast<uintptr_t>(i)); }
inline uint64_t tag_index(const Connection& c) noexcept { return reinterpret_cast<uintptr_t>(c.user_data()); }

}  // namespace tcpms::benchapp
