// connect: open N connections at --rate (or as fast as --max-pending allows), hold them for
// --hold seconds, then (--ping) send one message on every connection and check its echo.
//
// Counters: attempted, established, connections (open at the end), pings_ok; ops counts
// established connections, so the server's CPU per op is its cost per connection.
// Histograms: connect (handshake latency), ping (round trip), time_to_establish (one value
// per event loop: the max is the time until the run's last connect settled).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "fleet_driver.h"
#include "message.h"
#include "tcpms/connection.h"
#include "workloads.h"

namespace tcpms::benchapp {
namespace {

struct ConnectOptions {
  double hold_s = 0;
  bool ping = false;
};

class ConnectDriver final : public FleetDriver {
 public:
  ConnectDriver(const DriverContext& ctx, const ConnectOptions& o) : FleetDriver(ctx), o_(o) {}

  DataResult on_data(Connection& conn, ByteView data) override {
    Slot& s = slot_of(conn);
    if (!pinging_ || s.send_seq == s.recv_seq) {
      count_failure("unexpected_data");
      return {data.size(), Action::kClose};
    }
    if (data.size() < kMessageHeaderBytes) return {0, Action::kKeep};
    live_.bump(live_.bytes_received, kMessageHeaderBytes);
    auto sent = check_message(data.first(kMessageHeaderBytes), conn_number(slot_index(conn)), 0);
    ++s.recv_seq;
    conn.set_timeout(0);
    if (!sent) {
      count_failure("echo_mismatch");
      reply_settled();
      return {data.size(), Action::kClose};
    }
    result_.histogram("ping").record(monotonic_ns() - *sent);
    result_.add("pings_ok");
    reply_settled();
    return {kMessageHeaderBytes, Action::kKeep};
  }

 private:
  void on_all_settled() override {
    hold_timer_ = loop().run_after(ms(o_.hold_s), [this] { hold_timer_ = 0; begin_ping(); });
  }

  void begin_ping() {
    if (done()) return;
    if (!o_.ping) {
      finish();
      return;
    }
    pinging_ = true;
    std::byte msg[kMessageHeaderBytes];
    for (uint64_t i = 0; i < slots_.size(); ++i) {
      Slot& s = slots_[i];
      if (s.state != SlotState::kOpen) continue;
      Connection* c = loop().find(s.id);
      if (c == nullptr) continue;
      write_message(msg, conn_number(i), 0, monotonic_ns());
      ++s.send_seq;
      ++awaiting_;
      c->set_timeout(ms(opt().reply_timeout_s));
      c->send(ByteView(msg, sizeof msg));
      live_.bump(live_.bytes_sent, sizeof msg);
    }
    if (awaiting_ == 0) finish();
  }

  Action on_open_timeout(Connection& conn, Slot& s) override {
    if (s.send_seq == s.recv_seq) return Action::kKeep;
    count_failure("ping_timeout");
    ++s.recv_seq;
    reply_settled();
    return Action::kClose;
  }

  void on_lost(Slot& s) override {
    if (pinging_ && s.send_seq != s.recv_seq) {
      ++s.recv_seq;
      reply_settled();
    }
  }

  void on_stop() override {
    if (hold_timer_) loop().cancel_timer(hold_timer_);
    if (awaiting_ > 0) count_failure("stopped_before_reply", awaiting_);
  }

  void reply_settled() {
    if (--awaiting_ == 0) finish();
  }

  ConnectOptions o_;
  uint64_t hold_timer_ = 0;
  int64_t awaiting_ = 0;
  bool pinging_ = false;
};

class ConnectWorkload final : public Workload {
 public:
  std::string_view name() const override { return "connect"; }
  std::string_view description() const override {
    return "Open N connections at a rate, hold them, optionally ping every one";
  }
  void add_options(CLI::App& cmd) override {
    cmd.add_option("--hold", o_.hold_s, "Seconds to hold the connections once all are up")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    cmd.add_flag("--ping", o_.ping, "After the hold, one round trip on every connection");
  }
  nlohmann::json parameters() const override { return {{"hold_s", o_.hold_s}, {"ping", o_.ping}}; }
  int64_t peak_connections(const CommonOptions& c) const override { return c.connections; }
  std::unique_ptr<LoopDriver> make_driver(const DriverContext& ctx) override {
    return std::make_unique<ConnectDriver>(ctx, o_);
  }
  void finalize(bench::RunResult& r, const CommonOptions& c) const override {
    // An op of this workload is an established connection: the server's CPU per op is then
    // its cost per connection.
    r.counters[std::string(bench::kCounterOps)] = r.counter("established");
    finalize_connect_rate(r);
  }

 private:
  ConnectOptions o_;
};

}  // namespace

bool add_per_second(bench::RunResult& r, std::string_view span_histogram, std::string_view counter,
                    std::string_view rate_name) {
  auto it = r.histograms.find(span_histogram);
  if (it == r.histograms.end() || it->second.max() == 0) return false;
  const double seconds = static_cast<double>(it->second.max()) / 1e9;
  r.counters[std::string(rate_name)] =
      static_cast<int64_t>(static_cast<double>(r.counter(counter)) / seconds + 0.5);
  return true;
}

void finalize_connect_rate(bench::RunResult& r) {
  if (!add_per_second(r, "time_to_establish", "established", "connects_per_s")) return;
  r.counters["time_to_establish_ms"] =
      static_cast<int64_t>(static_cast<double>(r.histograms.at("time_to_establish").max()) / 1e6 + 0.5);
}

std::unique_ptr<Workload> make_connect_workload() { return std::make_unique<ConnectWorkload>(); }

}  // namespace tcpms::benchapp
