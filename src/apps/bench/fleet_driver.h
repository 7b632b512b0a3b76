// A driver that opens a fixed set of connections (this loop's share of --connections) at the
// paced rate, then hands over to the workload once every connect has settled (opened or
// failed). Connect and echo build on it; churn, whose connections come and go, does not.
//
// Pacing: a 1 ms loop timer starts connects while started < rate x elapsed (no cap without
// --rate) and pending < max_pending. Connect latency is from connect() to the completed
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
  uint64_t pump_timer_ = 0;
  bool all_settled_ = false;
  bool stopping_ = false;
};

}  // namespace tcpms::benchapp
