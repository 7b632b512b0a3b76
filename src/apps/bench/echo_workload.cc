// echo: N connections, then --duration seconds of request/response traffic with every echoed
// byte checked.
//   closed loop (default): each connection keeps --pipeline messages in flight; a reply sends
//     the next one. Latency is reply time - send time.
//   open loop (--request-rate R): R messages per second over all connections on a fixed
//     schedule, whatever the replies do. Latency is reply time - *intended* send time, so a
//     server stall is charged to every message that should have gone out during it
//     (no coordinated omission).
// After the duration, no new messages; replies still in flight get --reply-timeout.
//
// Counters: requests_sent, ops (verified round trips), bytes_verified, connections (held at
// the end); round_trips_per_s = ops / the sending time (added by finalize). Histograms:
// connect, round_trip, time_to_establish, send_time (one value per loop).
#include <CLI/CLI.hpp>

#include "fleet_driver.h"
#include "message.h"
#include "tcpms/connection.h"
#include "workloads.h"

namespace tcpms::benchapp {
namespace {

struct EchoOptions {
  uint32_t pipeline = 1;
  double request_rate = 0;  // total over the run; 0: closed loop
  uint32_t payload = 64;
};

class EchoDriver final : public FleetDriver {
 public:
  EchoDriver(const DriverContext& ctx, const EchoOptions& o) : FleetDriver(ctx), o_(o), msg_(o.payload) {
    const int parts = std::max(ctx.options->worker_count, 1) * static_cast<int>(ctx.options->threads);
    loop_rate_ = o.request_rate / parts;
  }

  DataResult on_data(Connection& conn, ByteView data) override {
    Slot& s = slot_of(conn);
    const uint32_t conn_no = conn_number(slot_index(conn));
    const size_t p = o_.payload;
    size_t used = 0;
    const uint64_t now = monotonic_ns();
    while (data.size() - used >= p) {
      if (s.recv_seq == s.send_seq) {
        count_failure("unexpected_data");
        return {data.size(), Action::kClose};
      }
      auto sent = check_message(data.subspan(used, p), conn_no, s.recv_seq);
      if (!sent || *sent > now) {
        settle(1, "echo_mismatch");
        settle(static_cast<int64_t>(s.send_seq - s.recv_seq) - 1, "no_reply");
        s.recv_seq = s.send_seq;
        return {data.size(), Action::kClose};
      }
      ++s.recv_seq;
      used += p;
      result_.histogram("round_trip").record(now - *sent);
      result_.add(bench::kCounterOps);
      live_.bump(live_.ops);
      live_.bump(live_.bytes_received, static_cast<int64_t>(p));
      settle(1, {});
      if (sending_ && loop_rate_ <= 0) send_one(conn, s, conn_no, monotonic_ns());
    }
    if (used > 0) result_.add("bytes_verified", static_cast<int64_t>(used));
    return {used, Action::kKeep};
  }

 private:
  void on_all_settled() override {
    if (open_count() == 0) {
      finish();
      return;
    }
    sending_ = true;
    steady_start_ns_ = monotonic_ns();
    if (loop_rate_ > 0) {
      pace_timer_ = loop().run_every(1, [this] { send_due(); });
    } else {
      for (uint64_t i = 0; i < slots_.size(); ++i) {
        Slot& s = slots_[i];
        if (s.state != SlotState::kOpen) continue;
        if (Connection* c = loop().find(s.id)) {
          for (uint32_t k = 0; k < o_.pipeline; ++k) send_one(*c, s, conn_number(i), monotonic_ns());
        }
      }
    }
    end_timer_ = loop().run_after(ms(opt().duration_s), [this] { end_timer_ = 0; end_sending(); });
  }

  void send_one(Connection& c, Slot& s, uint32_t conn_no, uint64_t stamp_ns) {
    write_message(msg_, conn_no, s.send_seq, stamp_ns);
    ++s.send_seq;
    ++in_flight_;
    result_.add("requests_sent");
    live_.bump(live_.bytes_sent, static_cast<int64_t>(msg_.size()));
    c.enqueue(ByteView(msg_.data(), msg_.size()));
  }

  // Open loop: every message whose intended time has come goes out now, stamped with that
  // intended time, on the next open connection in turn.
  void send_due() {
    if (!sending_) return;
    const double elapsed_ns = static_cast<double>(monotonic_ns() - steady_start_ns_);
    const uint64_t due = static_cast<uint64_t>(elapsed_ns * loop_rate_ / 1e9) + 1;
    while (scheduled_ < due) {
      const uint64_t intended = steady_start_ns_ + static_cast<uint64_t>(static_cast<double>(scheduled_) * 1e9 / loop_rate_);
      ++scheduled_;
      Connection* c = next_open();
      if (c == nullptr) {
        count_failure("no_open_connection");
        continue;
      }
      const uint64_t i = slot_index(*c);
      send_one(*c, slots_[i], conn_number(i), intended);
    }
  }

  Connection* next_open() {
    for (size_t tries = 0; tries < slots_.size(); ++tries) {
      Slot& s = slots_[rr_];
      rr_ = (rr_ + 1) % slots_.size();
      if (s.state == SlotState::kOpen) {
        if (Connection* c = loop().find(s.id)) return c;
      }
    }
    return nullptr;
  }

  // One value per loop: how long it sent. The merged max divides ops into round_trips_per_s,
  // which stays right when --max-time or a signal cuts the run short.
  void record_send_time() {
    if (steady_start_ns_ != 0 && sending_) result_.histogram("send_time").record(monotonic_ns() - steady_start_ns_);
  }

  void end_sending() {
    record_send_time();
    sending_ = false;
    if (pace_timer_) loop().cancel_timer(pace_timer_);
    pace_timer_ = 0;
    if (in_flight_ == 0) {
      finish();
      return;
    }
    drain_timer_ = loop().run_after(ms(opt().reply_timeout_s), [this] {
      drain_timer_ = 0;
      if (in_flight_ > 0) count_failure("no_reply", in_flight_);
      in_flight_ = 0;
      finish();
    });
  }

  // `n` messages are no longer in flight; `cause` non-empty counts them as failures.
  void settle(int64_t n, std::string_view cause) {
    if (n <= 0) return;
    if (!cause.empty()) count_failure(cause, n);
    in_flight_ -= n;
    if (!sending_ && in_flight_ == 0 && !done() && steady_start_ns_ != 0) {
      if (drain_timer_) loop().cancel_timer(drain_timer_);
      drain_timer_ = 0;
      finish();
    }
  }

  void on_lost(Slot& s) override {
    settle(static_cast<int64_t>(s.send_seq - s.recv_seq), "no_reply");
    s.recv_seq = s.send_seq;
  }

  void on_stop() override {
    record_send_time();
    sending_ = false;
    for (uint64_t* t : {&pace_timer_, &end_timer_, &drain_timer_}) {
      if (*t) loop().cancel_timer(*t);
      *t = 0;
    }
    if (in_flight_ > 0) count_failure("stopped_before_reply", in_flight_);
    in_flight_ = 0;
  }

  EchoOptions o_;
  std::vector<std::byte> msg_;
  double loop_rate_ = 0;
  bool sending_ = false;
  uint64_t steady_start_ns_ = 0;
  uint64_t scheduled_ = 0;
  int64_t in_flight_ = 0;
  size_t rr_ = 0;
  uint64_t pace_timer_ = 0, end_timer_ = 0, drain_timer_ = 0;
};

class EchoWorkload final : public Workload {
 public:
  std::string_view name() const override { return "echo"; }
  std::string_view description() const override {
    return "Round trips on N connections: closed loop (--pipeline) or open loop (--request-rate)";
  }
  void add_options(CLI::App& cmd) override {
    cmd.add_option("--pipeline,-k", o_.pipeline, "Closed loop: messages in flight per connection")
        ->check(CLI::Range(1u, 1u << 16))
        ->capture_default_str();
    cmd.add_option("--request-rate", o_.request_rate,
                   "Open loop: messages per second over all connections (latency from the "
                   "intended send time)")
        ->check(CLI::NonNegativeNumber);
    cmd.add_option("--payload", o_.payload, "Message size in bytes (16-byte header + pattern)")
        ->check(CLI::Range(static_cast<uint32_t>(kMessageHeaderBytes), 1u << 20))
        ->capture_default_str();
  }
  nlohmann::json parameters() const override {
    return {{"pipeline", o_.pipeline}, {"request_rate", o_.request_rate}, {"payload_bytes", o_.payload},
            {"mode", o_.request_rate > 0 ? "open_loop" : "closed_loop"}};
  }
  int64_t peak_connections(const CommonOptions& c) const override { return c.connections; }
  std::unique_ptr<LoopDriver> make_driver(const DriverContext& ctx) override {
    return std::make_unique<EchoDriver>(ctx, o_);
  }
  void finalize(bench::RunResult& r, const CommonOptions& c) const override {
    finalize_connect_rate(r);
    add_per_second(r, "send_time", bench::kCounterOps, "round_trips_per_s");
  }

 private:
  EchoOptions o_;
};

}  // namespace

std::unique_ptr<Workload> make_echo_workload() { return std::make_unique<EchoWorkload>(); }

}  // namespace tcpms::benchapp
