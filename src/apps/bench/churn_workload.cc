// churn: connect, one round trip, close; again and again for --duration seconds (or until
// --connections cycles), with --concurrency cycles in flight (closed loop) or, with --rate,
// new connections started on a fixed schedule (at most --max-pending in flight).
//
// A listen queue that overflows drops SYNs, and the client's SYN retry comes one second
// later: connects_ge_1s counts connects that took >= 1 s, and the parent reports the kernel's
// ListenOverflows/ListenDrops deltas (kernel.listen_overflows, kernel.listen_drops).
//
// The bench closes first, so TIME_WAIT stays on its side; on loopback net.ipv4.tcp_tw_reuse=2
// (the default) lets new connects reuse those ports.
//
// Counters: attempted, established, ops (completed cycles), connects_ge_1s, connects_per_s
// (finalize). Histograms: connect, round_trip, cycle (connect start to verified reply).
#include <CLI/CLI.hpp>

#include "driver_base.h"
#include "message.h"
#include "tcpms/connection.h"
#include "workloads.h"

namespace tcpms::benchapp {
namespace {

struct ChurnOptions {
  int64_t concurrency = 100;
  uint32_t payload = 16;
};

class ChurnDriver final : public DriverBase {
 public:
  ChurnDriver(const DriverContext& ctx, const ChurnOptions& o) : DriverBase(ctx), o_(o), msg_(o.payload) {
    slots_.resize(static_cast<size_t>(std::max<int64_t>(ctx.share.max_pending, 1)));
    for (size_t i = slots_.size(); i-- > 0;) free_.push_back(static_cast<uint32_t>(i));
  }

  void start() override {
    t0_ns_ = monotonic_ns();
    starting_ = true;
    pump_timer_ = loop().run_every(1, [this] { pump(); });
    end_timer_ = loop().run_after(ms(opt().duration_s), [this] { end_timer_ = 0; stop_starting(); });
    pump();
  }

  void stop() override {
    if (done()) return;
    stop_starting();
    if (in_use() > 0) count_failure("stopped_in_flight", static_cast<int64_t>(in_use()));
    finish();
  }

  Action on_open(Connection& conn) override {
    Slot& s = slots_[tag_index(conn)];
    if (s.state != State::kConnecting) return Action::kClose;
    const uint64_t now = monotonic_ns();
    const uint64_t took = now - s.started_ns;
    result_.histogram("connect").record(took);
    if (took >= 1'000'000'000u) result_.add("connects_ge_1s");
    result_.add("established");
    live_.bump(live_.established);
    live_.bump(live_.open);
    s.state = State::kAwaiting;
    s.opened = true;
    write_message(msg_, s.conn_no, 0, now);
    conn.set_timeout(ms(opt().reply_timeout_s));
    conn.send(ByteView(msg_.data(), msg_.size()));
    live_.bump(live_.bytes_sent, static_cast<int64_t>(msg_.size()));
    return Action::kKeep;
  }

  DataResult on_data(Connection& conn, ByteView data) override {
    Slot& s = slots_[tag_index(conn)];
    if (data.size() < msg_.size()) return {0, Action::kKeep};
    auto sent = s.state == State::kAwaiting ? check_message(data.first(msg_.size()), s.conn_no, 0) : std::nullopt;
    s.state = State::kDone;
    if (!sent) {
      count_failure("echo_mismatch");
      return {data.size(), Action::kClose};
    }
    const uint64_t now = monotonic_ns();
    result_.histogram("round_trip").record(now - *sent);
    result_.histogram("cycle").record(now - s.started_ns);
    result_.add(bench::kCounterOps);
    live_.bump(live_.ops);
    live_.bump(live_.bytes_received, static_cast<int64_t>(msg_.size()));
    return {data.size(), Action::kClose};
  }

  Action on_timeout(Connection& conn) override {
    Slot& s = slots_[tag_index(conn)];
    if (s.state == State::kConnecting) count_failure("connect_timeout");
    if (s.state == State::kAwaiting) count_failure("reply_timeout");
    s.state = State::kDone;
    return Action::kClose;
  }

  void on_close(Connection& conn, CloseReason reason) override {
    const uint32_t i = static_cast<uint32_t>(tag_index(conn));
    Slot& s = slots_[i];
    if (s.opened) live_.bump(live_.open, -1);
    // Timeouts, mismatches and the bench's own closes were counted where they were decided.
    const bool counted = closed_by_us(reason);
    if (!counted && (s.state == State::kConnecting || s.state == State::kAwaiting))
      count_failure(close_cause(reason, conn.last_error()));
    release(i);
    if (starting_ && ctx_.share.rate <= 0) pump();  // closed loop: the next cycle starts now
  }

 private:
  enum class State : uint8_t { kFree, kConnecting, kAwaiting, kDone };
  struct Slot {
    uint64_t started_ns = 0;
    uint32_t conn_no = 0;
    State state = State::kFree;
    bool opened = false;
  };

  size_t in_use() const noexcept { return slots_.size() - free_.size(); }

  void pump() {
    if (!starting_) return;
    const Share& sh = ctx_.share;
    uint64_t allowed = sh.unlimited ? UINT64_MAX : static_cast<uint64_t>(sh.count);
    if (sh.rate > 0) {
      const double elapsed_s = static_cast<double>(monotonic_ns() - t0_ns_) / 1e9;
      allowed = std::min<uint64_t>(allowed, static_cast<uint64_t>(elapsed_s * sh.rate) + 1);
    }
    while (started_ < allowed && !free_.empty()) start_cycle();
    if (!sh.unlimited && started_ >= static_cast<uint64_t>(sh.count)) stop_starting();
  }

  void start_cycle() {
    const uint32_t i = free_.back();
    free_.pop_back();
    Slot& s = slots_[i];
    s.state = State::kConnecting;
    s.opened = false;
    s.started_ns = monotonic_ns();
    s.conn_no = static_cast<uint32_t>(ctx_.share.offset + started_);
    ++started_;
    result_.add("attempted");
    ConnId id = start_connect(ctx_.share.offset + started_ - 1, index_tag(i));
    if (!id.valid()) {
      release(i);
      return;
    }
    if (s.state == State::kConnecting) arm_timeout(id, opt().connect_timeout_s);
  }

  void release(uint32_t i) {
    if (slots_[i].state == State::kFree) return;
    slots_[i].state = State::kFree;
    free_.push_back(i);
    if (!starting_ && in_use() == 0) finish();
  }

  void stop_starting() {
    if (!starting_) return;
    starting_ = false;
    loop().cancel_timer(pump_timer_);
    if (end_timer_) loop().cancel_timer(end_timer_);
    end_timer_ = 0;
    if (in_use() == 0) finish();
  }

  void finish() {
    if (done()) return;
    result_.add(bench::kCounterConnections, 0);
    result_.add("connects_ge_1s", 0);  // present even when none: the listen-queue signal
    // One value per loop: the max over the merged run is the churn phase's length.
    result_.histogram("churn_time").record(monotonic_ns() - t0_ns_);
    mark_done();
  }

  ChurnOptions o_;
  std::vector<std::byte> msg_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
  uint64_t t0_ns_ = 0;
  uint64_t started_ = 0;
  uint64_t pump_timer_ = 0, end_timer_ = 0;
  bool starting_ = false;
};

class ChurnWorkload final : public Workload {
 public:
  std::string_view name() const override { return "churn"; }
  std::string_view description() const override {
    return "Connect, one round trip, close; C concurrent or at --rate new connections per second";
  }
  void add_options(CLI::App& cmd) override {
    cmd.add_option("--concurrency,-c", o_.concurrency, "Cycles in flight at once (closed loop)")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    cmd.add_option("--payload", o_.payload, "Round-trip message size in bytes")
        ->check(CLI::Range(static_cast<uint32_t>(kMessageHeaderBytes), 1u << 20))
        ->capture_default_str();
  }
  nlohmann::json parameters() const override {
    return {{"concurrency", o_.concurrency}, {"payload_bytes", o_.payload}};
  }
  int64_t default_connections() const override { return 0; }
  int64_t peak_connections(const CommonOptions& c) const override {
    return c.rate > 0 ? c.max_pending : o_.concurrency;
  }
  Share whole_share(const CommonOptions& c) const override {
    Share s;
    s.count = c.connections;
    s.unlimited = c.connections == 0;
    s.rate = c.rate;
    s.max_pending = c.rate > 0 ? c.max_pending : o_.concurrency;
    return s;
  }
  std::unique_ptr<LoopDriver> make_driver(const DriverContext& ctx) override {
    return std::make_unique<ChurnDriver>(ctx, o_);
  }
  void finalize(bench::RunResult& r, const CommonOptions& c) const override {
    add_per_second(r, "churn_time", "established", "connects_per_s");
    add_per_second(r, "churn_time", bench::kCounterOps, "cycles_per_s");
  }

 private:
  ChurnOptions o_;
};

}  // namespace

std::unique_ptr<Workload> make_churn_workload() { return std::make_unique<ChurnWorkload>(); }

}  // namespace tcpms::benchapp
