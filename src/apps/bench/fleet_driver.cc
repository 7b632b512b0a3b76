#include "fleet_driver.h"

#include <cmath>

#include "tcpms/connection.h"

namespace tcpms::benchapp {

FleetDriver::FleetDriver(const DriverContext& ctx) : DriverBase(ctx) {
  slots_.resize(static_cast<size_t>(ctx.share.count));
}

void FleetDriver::start() {
  t0_ns_ = monotonic_ns();
  pump_timer_ = loop().run_every(1, [this] { pump(); });
  pump();
}

void FleetDriver::pump() {
  if (all_settled_ || stopping_) return;
  const uint64_t total = slots_.size();
  uint64_t allowed = total;
  if (ctx_.share.rate > 0) {
    const double elapsed_s = static_cast<double>(monotonic_ns() - t0_ns_) / 1e9;
    allowed = std::min<uint64_t>(total, static_cast<uint64_t>(elapsed_s * ctx_.share.rate) + 1);
  }
  while (next_ < allowed && pending_ < ctx_.share.max_pending && !stopping_ &&
         (max_in_flight_ == 0 || pending_ + in_login_ < max_in_flight_))
    start_one(next_++);
  if (settled_ == static_cast<int64_t>(total)) settled_one();  // nothing to connect at all
}

void FleetDriver::start_one(uint64_t local) {
  Slot& s = slots_[local];
  s.state = SlotState::kConnecting;
  s.started_ns = monotonic_ns();
  ++pending_;
  result_.add("attempted");
  ConnId id = start_connect(ctx_.share.offset + local, index_tag(local));
  if (!id.valid()) {
    s.state = SlotState::kGone;
    --pending_;
    ++settled_;
    settled_one();
    return;
  }
  s.id = id;
  // on_open may already have run (a loopback connect can complete at once).
  if (s.state == SlotState::kConnecting) arm_timeout(id, opt().connect_timeout_s);
}

void FleetDriver::settled_one() {
  if (all_settled_ || settled_ < static_cast<int64_t>(slots_.size())) return;
  all_settled_ = true;
  loop().cancel_timer(pump_timer_);
  // One value per loop: the max over the merged run is when its last connect settled.
  result_.histogram("time_to_establish").record(monotonic_ns() - t0_ns_);
  on_all_settled();
}

Action FleetDriver::on_open(Connection& conn) {
  Slot& s = slot_of(conn);
  if (s.state != SlotState::kConnecting) return Action::kClose;
  s.state = SlotState::kOpen;
  conn.set_timeout(0);
  result_.histogram("connect").record(monotonic_ns() - s.started_ns);
  result_.add("established");
  live_.bump(live_.established);
  live_.bump(live_.open);
  ++open_;
  --pending_;
  ++settled_;
  settled_one();
  return Action::kKeep;
}

Action FleetDriver::on_timeout(Connection& conn) {
  Slot& s = slot_of(conn);
  if (s.state == SlotState::kConnecting) {
    count_failure("connect_timeout");
    s.state = SlotState::kGone;
    --pending_;
    ++settled_;
    settled_one();
    return Action::kClose;
  }
  if (s.state == SlotState::kOpen) return on_open_timeout(conn, s);
  return Action::kClose;
}

void FleetDriver::on_close(Connection& conn, CloseReason reason) {
  Slot& s = slot_of(conn);
  const SlotState was = s.state;
  s.state = SlotState::kGone;
  if (was == SlotState::kOpen) {
    --open_;
    live_.bump(live_.open, -1);
  }
  if (closed_by_us(reason)) return;  // no failure, or counted where it was decided
  if (was == SlotState::kConnecting) {
    count_failure(close_cause(reason, conn.last_error()));
    --pending_;
    ++settled_;
    settled_one();
  } else if (was == SlotState::kOpen) {
    count_failure(close_cause(reason, conn.last_error()));
    if (!done()) on_lost(s);
  }
}

void FleetDriver::stop() {
  if (done()) return;
  stopping_ = true;
  loop().cancel_timer(pump_timer_);
  if (!all_settled_) {
    if (pending_ > 0) count_failure("stopped_while_connecting", pending_);
    const int64_t never = static_cast<int64_t>(slots_.size() - next_);
    if (never > 0) result_.add("not_started", never);
  }
  on_stop();
  finish();
}

void FleetDriver::finish() {
  if (done()) return;
  result_.add(bench::kCounterConnections, open_);
  mark_done();
}

}  // namespace tcpms::benchapp
