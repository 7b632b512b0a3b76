#include "mqtt_storm_driver.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <queue>
#include <random>
#include <sstream>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "driver_base.h"
#include "mqtt/decoder.h"
#include "mqtt/fixed_header.h"
#include "mqtt_client_wire.h"
#include "mqtt_payload.h"
#include "tcpms/connection.h"

namespace tcpms::benchapp {
namespace {

constexpr auto kVersion = mqtt::ProtocolVersion::kV311;
constexpr uint32_t kMaxPacket = 1u << 20;
constexpr uint32_t kTickMs = 1;

enum class Phase : uint8_t {
  kIdle,     // setup: not started yet
  kWaiting,  // a (re)connect is scheduled in retries_
  kTcp,      // connect() in flight
  kConnack,  // CONNECT sent
  kSuback,   // SUBSCRIBE sent
  kUp,       // subscribed, holding
};

struct StormClient {
  uint64_t down_ns = 0;          // monotonic: when the connection dropped (outage start)
  uint32_t failed_attempts = 0;  // in a row, for the backoff
  Phase phase = Phase::kIdle;
  bool subscribed_once = false;  // setup done for this client
  bool dropped = false;          // lost its connection at least once after setup
  bool back = false;             // up again since its last drop
};

uint64_t boottime_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

class StormDriver final : public DriverBase {
 public:
  StormDriver(const DriverContext& ctx, const StormOptions& o)
      : DriverBase(ctx),
        o_(o),
        run_(static_cast<uint32_t>(ctx.options->is_worker() ? ::getppid() : ::getpid())),
        epoch_ns_(storm_epoch_ns(*ctx.options)),
        clients_(static_cast<size_t>(ctx.share.count)),
        wire_(kVersion, 0),
        jitter_(static_cast<uint32_t>(ctx.share.offset) * 2654435761u + 1),
        storm_cap_(o.storm_max_pending > 0
                       ? std::max<int64_t>(1, o.storm_max_pending / std::max(1u, ctx.options->threads))
                       : 0) {}

  void start() override {
    result_.add("clients", static_cast<int64_t>(clients_.size()));
    if (clients_.empty()) {
      finish();
      return;
    }
    start_ns_ = monotonic_ns();
    tick_timer_ = loop().run_every(kTickMs, [this] { tick(); });
    tick();
  }

  void stop() override {
    if (done()) return;
    int64_t never_subscribed = 0, never_dropped = 0, not_back = 0;
    for (const StormClient& c : clients_) {
      if (!c.subscribed_once) ++never_subscribed;
      else if (!c.dropped) ++never_dropped;
      else if (!c.back) ++not_back;
    }
    if (never_subscribed) count_failure("never_subscribed", never_subscribed);
    if (never_dropped) count_failure("never_dropped", never_dropped);
    if (not_back) count_failure("not_back", not_back);
    finish();
  }

  Action on_open(Connection& conn) override {
    StormClient& c = clients_[tag_index(conn)];
    if (c.phase != Phase::kTcp) return Action::kClose;
    c.phase = Phase::kConnack;
    live_.bump(live_.established);
    live_.bump(live_.open);
    sent(wire_.connect(conn, client_id(run_, "-", number(tag_index(conn))), 0, true));
    conn.set_timeout(ms(opt().reply_timeout_s));
    return Action::kKeep;
  }

  DataResult on_data(Connection& conn, ByteView data) override {
    size_t used = 0;
    while (used < data.size()) {
      mqtt::FrameResult f = mqtt::next_frame(data.subspan(used), kMaxPacket);
      if (f.status == mqtt::FrameStatus::kNeedMore) break;
      const Action a = f.status == mqtt::FrameStatus::kError ? attempt_failed(tag_index(conn), "malformed_packet")
                                                             : packet(conn, f);
      if (a != Action::kKeep) return {data.size(), a};
      used += f.header.packet_size();
    }
    live_.bump(live_.bytes_received, static_cast<int64_t>(used));
    return {used, Action::kKeep};
  }

  Action on_timeout(Connection& conn) override {
    const uint64_t l = tag_index(conn);
    switch (clients_[l].phase) {
      case Phase::kTcp: return attempt_failed(l, "connect_timeout");
      case Phase::kConnack: return attempt_failed(l, "connack_timeout");
      case Phase::kSuback: return attempt_failed(l, "suback_timeout");
      default: return Action::kKeep;
    }
  }

  void on_close(Connection& conn, CloseReason reason) override {
    const uint64_t l = tag_index(conn);
    StormClient& c = clients_[l];
    const Phase was = c.phase;
    if (was == Phase::kUp) live_.bump(live_.open, -1);  // attempt_failed counts the others
    // The bench's own teardown, or a close this driver decided (it has moved the client on).
    if (reason == CloseReason::kShutdown || done()) return;
    const std::string cause = close_cause(reason, conn.last_error());
    switch (was) {
      case Phase::kTcp: attempt_failed(l, cause); break;
      case Phase::kConnack: attempt_failed(l, "before_connack_" + cause); break;
      case Phase::kSuback: attempt_failed(l, "before_suback_" + cause); break;
      case Phase::kUp: dropped(l, cause); break;
      default: break;
    }
  }

 private:
  uint64_t number(uint64_t local) const noexcept { return static_cast<uint64_t>(ctx_.share.offset) + local; }
  void sent(size_t n) { live_.bump(live_.bytes_sent, static_cast<int64_t>(n)); }
  bool storming() const noexcept { return first_drop_ns_ != 0; }
  uint64_t since_epoch(uint64_t boot_ns) const noexcept { return boot_ns > epoch_ns_ ? boot_ns - epoch_ns_ : 0; }

  // --- attempts -----------------------------------------------------------------------------
  void tick() {
    if (done()) return;
    const uint64_t now = monotonic_ns();
    // Setup: new clients while fewer than --max-pending attempts are in flight.
    while (next_ < clients_.size() && in_flight_ < ctx_.share.max_pending) attempt(next_++);
    // Due (re)connects: all of them at once, or as many as --storm-max-pending allows.
    while (!retries_.empty() && retries_.top().first <= now && (storm_cap_ == 0 || in_flight_ < storm_cap_)) {
      const uint64_t l = retries_.top().second;
      retries_.pop();
      if (clients_[l].phase == Phase::kWaiting) attempt(l);
    }
    if (storming() && now - first_drop_ns_ > static_cast<uint64_t>(o_.storm_timeout_s * 1e9)) stop();
  }

  void attempt(uint64_t l) {
    StormClient& c = clients_[l];
    c.phase = Phase::kTcp;
    ++in_flight_;
    result_.add(storming() ? "storm_attempts" : "setup_attempts");
    int err = 0;
    const ConnId id = try_connect(number(l), index_tag(l), err);
    if (!id.valid()) {
      attempt_failed(l, errno_cause(err));
      return;
    }
    // on_open may already have run (a loopback connect can complete at once).
    if (c.phase == Phase::kTcp) arm_timeout(id, opt().connect_timeout_s);
  }

  // This attempt failed: counted by cause, retried after the backoff. Returns kClose for the
  // callbacks that close the connection (the client has moved on, so on_close ignores it).
  Action attempt_failed(uint64_t l, std::string_view cause) {
    StormClient& c = clients_[l];
    if (c.phase == Phase::kConnack || c.phase == Phase::kSuback) live_.bump(live_.open, -1);
    if (c.phase == Phase::kTcp || c.phase == Phase::kConnack || c.phase == Phase::kSuback) --in_flight_;
    result_.add(fmt::format("{}attempt_fail.{}", c.subscribed_once ? "" : "setup_", cause));
    live_.bump(live_.errors);
    ++c.failed_attempts;
    schedule(l, backoff_ns(c.failed_attempts));
    return Action::kClose;
  }

  uint64_t backoff_ns(uint32_t failed) {
    const double d = std::min(o_.retry_max_s, o_.retry_min_s * static_cast<double>(1u << std::min(failed - 1, 20u)));
    std::uniform_real_distribution<double> half_to_full(d / 2, d);
    return static_cast<uint64_t>(half_to_full(jitter_) * 1e9);
  }

  void schedule(uint64_t l, uint64_t delay_ns) {
    clients_[l].phase = Phase::kWaiting;
    retries_.emplace(monotonic_ns() + delay_ns, l);
  }

  // --- MQTT ---------------------------------------------------------------------------------
  Action packet(Connection& conn, const mqtt::FrameResult& f) {
    const uint64_t l = tag_index(conn);
    StormClient& c = clients_[l];
    switch (f.header.type) {
      case mqtt::PacketType::kConnack: {
        auto ack = mqtt::decode_connack(f.body, kVersion);
        if (!ack) return attempt_failed(l, "malformed_packet");
        if (c.phase != Phase::kConnack) return attempt_failed(l, "unexpected_connack");
        if (std::string refused = connack_refusal(*ack); !refused.empty()) return attempt_failed(l, refused);
        c.phase = Phase::kSuback;
        sent(wire_.subscribe(conn, fmt::format("tb/{:x}/storm/{}", run_, number(l)), mqtt::QoS::k0));
        return Action::kKeep;
      }
      case mqtt::PacketType::kSuback: {
        auto ack = mqtt::decode_suback(f.body, kVersion);
        if (!ack) return attempt_failed(l, "malformed_packet");
        if (c.phase != Phase::kSuback) return attempt_failed(l, "unexpected_suback");
        if (std::string refused = suback_refusal(*ack); !refused.empty()) return attempt_failed(l, refused);
        conn.set_timeout(0);
        up(l);
        return Action::kKeep;
      }
      case mqtt::PacketType::kDisconnect:
        return c.phase == Phase::kUp ? dropped_by_us(l, "disconnect_packet") : attempt_failed(l, "disconnect_packet");
      case mqtt::PacketType::kPublish:
      case mqtt::PacketType::kPingresp:
        return Action::kKeep;  // nobody publishes to these topics; tolerate a broker's extras
      default:
        return c.phase == Phase::kUp ? dropped_by_us(l, "unexpected_packet") : attempt_failed(l, "unexpected_packet");
    }
  }

  void up(uint64_t l) {
    StormClient& c = clients_[l];
    c.phase = Phase::kUp;
    c.failed_attempts = 0;
    --in_flight_;
    if (!c.subscribed_once) {
      c.subscribed_once = true;
      result_.add("subscribed");
      if (++subscribed_ == clients_.size()) all_subscribed();
      return;
    }
    if (!c.dropped || c.back) return;
    c.back = true;
    const uint64_t now = monotonic_ns();
    result_.add("back");
    result_.add(bench::kCounterOps);
    live_.bump(live_.ops);
    result_.histogram("outage").record(now - c.down_ns);
    result_.histogram("storm_back_at").record(since_epoch(boottime_ns()));
    ++back_;
    maybe_finish();
  }

  // An up client lost its connection: count the drop, reconnect at once.
  void dropped(uint64_t l, std::string_view cause) {
    StormClient& c = clients_[l];
    if (!c.subscribed_once) return;
    const uint64_t now = monotonic_ns();
    if (!storming()) first_drop_ns_ = now;
    result_.add(fmt::format("drop.{}", cause));
    if (!c.dropped) {
      c.dropped = true;
      ++dropped_;
      result_.histogram("storm_drop_at").record(since_epoch(boottime_ns()));
    } else if (c.back) {
      --back_;
      result_.add("dropped_again");
    }
    if (c.back || c.down_ns == 0) c.down_ns = now;
    c.back = false;
    schedule(l, 0);
  }

  // The server sent an up client something it must not: treated as a drop, closed by us.
  Action dropped_by_us(uint64_t l, std::string_view cause) {
    live_.bump(live_.open, -1);
    dropped(l, cause);
    return Action::kClose;
  }

  void all_subscribed() {
    result_.histogram("time_to_subscribe").record(monotonic_ns() - start_ns_);
    if (o_.ready_file.empty()) return;
    // Written then renamed: the script summing these files never reads half of one.
    const std::string path = fmt::format("{}.{}", o_.ready_file, ctx_.share.offset);
    const std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << clients_.size() << '\n';
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) count_failure("ready_file");
  }

  void maybe_finish() {
    if (dropped_ == clients_.size() && back_ == clients_.size()) {
      result_.histogram("time_to_all_back_in_loop").record(monotonic_ns() - first_drop_ns_);
      finish();
    }
  }

  void finish() {
    if (done()) return;
    loop().cancel_timer(tick_timer_);
    result_.add(bench::kCounterConnections,
                std::count_if(clients_.begin(), clients_.end(), [](const StormClient& c) { return c.phase == Phase::kUp; }));
    mark_done();
  }

  const StormOptions o_;
  const uint32_t run_;
  const uint64_t epoch_ns_;
  uint64_t start_ns_ = 0;
  std::vector<StormClient> clients_;
  MqttClientWire wire_;
  std::minstd_rand jitter_;
  const int64_t storm_cap_;   // this loop's share of --storm-max-pending (0: no cap)
  // (due monotonic ns, client): reconnects and retries, soonest first.
  using Due = std::pair<uint64_t, uint64_t>;
  std::priority_queue<Due, std::vector<Due>, std::greater<>> retries_;
  uint64_t next_ = 0;         // setup: next client to start
  int64_t in_flight_ = 0;     // attempts between connect() and SUBACK
  uint64_t subscribed_ = 0;   // clients through setup
  uint64_t dropped_ = 0;      // clients that lost their connection at least once
  uint64_t back_ = 0;         // of those, up again
  uint64_t first_drop_ns_ = 0;
  uint64_t tick_timer_ = 0;
};

}  // namespace

uint64_t storm_epoch_ns(const CommonOptions& c) {
  // /proc/<pid>/stat field 22: start time in clock ticks since boot (CLOCK_BOOTTIME).
  const int pid = c.is_worker() ? ::getppid() : ::getpid();
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(stat.substr(paren + 2));
  std::string field;
  for (int k = 3; k <= 22 && fields >> field; ++k) {
    if (k == 22) return std::stoull(field) * (1'000'000'000ull / static_cast<uint64_t>(::sysconf(_SC_CLK_TCK)));
  }
  return 0;
}

std::unique_ptr<LoopDriver> make_storm_driver(const DriverContext& ctx, const StormOptions& o) {
  return std::make_unique<StormDriver>(ctx, o);
}

}  // namespace tcpms::benchapp
