// A driver that opens a fixed set of connections (this loop's share of --connections) at the
// paced rate, then hands over to the workload once every connect has settled (opened or
// failed). Connect and echo build on it; churn, whose connections come and go, does not.
//
// Pacing: a 1 ms loop timer starts connects while started < rate x elapsed (no cap without
// --rate) and pending < max_pending; a workload whose clients log in after the connect can
// also cap connects plus logins in flight (pace_logins). Connect latency is from connect() to the completed
// handshake; failures are counted by errno name.
//
// Threads: the loop's thread only.
#pragma once

#include <cstdint>
#include <vector>

#include "driver_base.h"

namespace tcpms::benchapp {

class FleetDriver : public DriverBase {
 public:
  explicit FleetDriver(const DriverContext& ctx);

  void start() override;
  void stop() override;
  Action on_open(Connection& conn) override;
  Action on_timeout(Connection& conn) override;
  void on_close(Connection& conn, CloseReason reason) override;

 protected:
  enum class SlotState : uint8_t { kIdle, kConnecting, kOpen, kGone };
  struct Slot {
    ConnId id;
    uint64_t started_ns = 0;
    uint32_t send_seq = 0;  // messages sent (echo, ping)
    uint32_t recv_seq = 0;  // messages received and verified
    SlotState state = SlotState::kIdle;
  };

  // Every connect has settled (phase 2 begins): `open_count()` connections are up.
  virtual void on_all_settled() = 0;
  // An open connection timed out (the workload armed the timer); return what to do.
  virtual Action on_open_timeout(Connection& conn, Slot& slot) { return Action::kKeep; }
  // An open connection closed for a reason other than the bench's own teardown. The fleet
  // has already counted it (by cause) and updated the open count.
  virtual void on_lost(Slot& slot) {}
  // stop() was called: count the workload's own in-flight work as failures.
  virtual void on_stop() {}

  // Connects in flight plus clients between their connect and the end of their login (the
  // workload says when each starts and settles) at most `max` (0: logins are not counted).
  // Without it a fleet sends every login at once and the last ones wait behind all the others
  // in the server's accept queue, so their reply deadline measures the queue, not the server.
  void pace_logins(int64_t max) noexcept { max_in_flight_ = max; }
  void login_started() noexcept { ++in_login_; }
  void login_settled() noexcept { --in_login_; }

  uint32_t conn_number(uint64_t local) const noexcept { return static_cast<uint32_t>(ctx_.share.offset + local); }
  Slot& slot_of(const Connection& conn) noexcept { return slots_[tag_index(conn)]; }
  uint64_t slot_index(const Connection& conn) const noexcept { return tag_index(conn); }
  int64_t open_count() const noexcept { return open_; }
  // Finish: record the held-connection count and mark done.
  void finish();

  std::vector<Slot> slots_;
  uint64_t t0_ns_ = 0;

 private:
  void pump();
  void start_one(uint64_t local);
  void settled_one();

  uint64_t next_ = 0;       // next slot to connect
  int64_t pending_ = 0;     // connects in flight
  int64_t settled_ = 0;     // connects opened or failed
  int64_t open_ = 0;
  int64_t in_login_ = 0;       // pace_logins: opened, login not settled
  int64_t max_in_flight_ = 0;  // pace_logins: cap on pending_ + in_login_ (0: none)
  uint64_t pump_timer_ = 0;
  bool all_settled_ = false;
  bool stopping_ = false;
};

}  // namespace tcpms::benchapp
