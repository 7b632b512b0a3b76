#include "mqtt_reach_driver.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <map>
#include <unordered_map>

#include <fmt/format.h>

#include "admin_pusher.h"
#include "benchkit/proc_sampler.h"
#include "command_runner.h"
#include "fleet_driver.h"
#include "message.h"
#include "mqtt/decoder.h"
#include "mqtt/fixed_header.h"
#include "mqtt_client_wire.h"
#include "mqtt_payload.h"
#include "reach_plan.h"
#include "stream_ledger.h"
#include "tcpms/connection.h"

namespace tcpms::benchapp {
namespace {

// Connection::user_data of the loop's own connections; clients use their slot index.
constexpr uint64_t kControlTag = ~uint64_t{0} >> 1;
constexpr uint64_t kFirstPublisherTag = kControlTag - 1024;  // publisher k: kFirstPublisherTag + k
constexpr uint32_t kMaxPacket = 16u << 20;
constexpr uint32_t kTickMs = 100;
constexpr uint32_t kResubscribeEveryTicks = 20;  // 2 s
constexpr size_t kFlatOutQueueBytes = 64 * 1024;  // as fast as flow allows: keep this much unsent
constexpr uint32_t kFlatOutPerTick = 512;         // ... and at most this many per publisher per ms
// The rendezvous stages (mqtt_reach_driver.h).
constexpr std::string_view kStageReady = "ready", kStageGot = "got", kStagePushed = "pushed";
constexpr std::string_view kStageUpgraded = "upgraded", kStageStreamed = "streamed";

enum class Phase : uint8_t { kTcp, kConnack, kSuback, kReady, kFailed };

struct ReachClient {
  uint64_t sent_ns = 0;       // CONNECT or SUBSCRIBE sent: the CONNACK / SUBACK latency
  uint64_t last_send_ns = 0;  // keep-alive
  Phase phase = Phase::kTcp;
  bool got_publish = false;
  bool expects_push = false;
  bool got_push = false;
};

struct Publisher {
  ConnId id;
  Phase phase = Phase::kTcp;
  uint16_t inflight = 0;  // QoS 1: PUBLISH not yet acknowledged
  uint16_t next_packet_id = 1;
  std::unordered_map<uint16_t, uint32_t> stream_ids;  // packet id -> stream message in flight
};

uint64_t cpu_us(int pid) {
  auto u = bench::ProcSampler().read_tree(pid);
  return u ? u->cpu_user_us + u->cpu_system_us : 0;
}

class ReachDriver final : public FleetDriver {
 public:
  ReachDriver(const DriverContext& ctx, const ReachOptions& o)
      : FleetDriver(ctx),
        o_(o),
        run_(reach_run_id(*ctx.options)),
        n_(static_cast<uint64_t>(ctx.options->connections)),
        clients_(slots_.size()),
        publishers_(o.publishers),
        wire_(kVersion, std::max<size_t>(o.payload, kMessageHeaderBytes)),
        ledger_(clients_.size()) {
    const auto targets = choose_push_targets(run_, n_, o_.pushes);
    const auto first = static_cast<uint64_t>(ctx.share.offset);
    for (auto it = std::lower_bound(targets.begin(), targets.end(), first);
         it != targets.end() && *it < first + clients_.size(); ++it)
      clients_[*it - first].expects_push = true;
    pusher_loop_ = ctx.share.offset == 0 && !clients_.empty();
    if (pusher_loop_) push_targets_ = targets;
    measuring_ = pusher_loop_ && ctx.options->server_pid > 0;
    payload_.resize(std::max<size_t>(o_.payload, kMessageHeaderBytes));
    if (o_.publish_rate > 0 && n_ > 0)
      loop_rate_ = o_.publish_rate * static_cast<double>(clients_.size()) / static_cast<double>(n_);
    if (o_.stream_rate > 0 && n_ > 0)
      stream_loop_rate_ = o_.stream_rate * static_cast<double>(clients_.size()) / static_cast<double>(n_);
    sync_prefix_ = fmt::format("tb/{:x}/sync/", run_);
    if (o_.max_logins > 0 && n_ > 0)
      pace_logins(std::max<int64_t>(
          1, static_cast<int64_t>(o_.max_logins * clients_.size() / n_)));
  }

  void start() override {
    result_.add("disconnects", 0);  // present when none: a run's verdict reads it
    if (measuring_) cpu_barrier_us_ = cpu_us(opt().server_pid);
    FleetDriver::start();
    if (done() || clients_.empty()) return;
    tick_timer_ = loop().run_every(kTickMs, [this] { tick(); });
    control_ = start_connect(ctx_.share.offset, index_tag(kControlTag));
    if (!control_.valid()) {
      fail_run("control_connect");
      return;
    }
    for (uint32_t k = 0; k < publishers_.size(); ++k) {
      publishers_[k].id = start_connect(ctx_.share.offset + k, index_tag(kFirstPublisherTag + k));
      if (!publishers_[k].id.valid()) publisher_lost(k, "publisher_connect");
    }
  }

  Action on_open(Connection& conn) override {
    const uint64_t tag = tag_index(conn);
    if (tag == kControlTag) {
      control_phase_ = Phase::kConnack;
      send_connect(conn, client_id(run_, "c", ctx_.share.offset));
      conn.set_timeout(ms(opt().reply_timeout_s));
      return Action::kKeep;
    }
    if (tag >= kFirstPublisherTag) {
      const uint64_t k = tag - kFirstPublisherTag;
      publishers_[k].phase = Phase::kConnack;
      send_connect(conn, client_id(run_, fmt::format("p{}-", k), ctx_.share.offset));
      conn.set_timeout(ms(opt().reply_timeout_s));
      return Action::kKeep;
    }
    if (Action a = FleetDriver::on_open(conn); a != Action::kKeep) return a;
    const uint64_t l = slot_index(conn);
    ReachClient& c = clients_[l];
    c.phase = Phase::kConnack;
    login_started();
    c.sent_ns = monotonic_ns();
    send_connect(conn, client_id(run_, "-", conn_number(l)), !o_.persistent);
    conn.set_timeout(ms(opt().reply_timeout_s));
    return Action::kKeep;
  }

  DataResult on_data(Connection& conn, ByteView data) override {
    const uint64_t tag = tag_index(conn);
    size_t used = 0;
    while (used < data.size()) {
      mqtt::FrameResult f = mqtt::next_frame(data.subspan(used), kMaxPacket);
      if (f.status == mqtt::FrameStatus::kNeedMore) break;
      Action a;
      if (f.status == mqtt::FrameStatus::kError) {
        a = own_failure(tag, conn, "malformed_packet");
      } else if (tag == kControlTag) {
        a = control_packet(conn, f);
      } else if (tag >= kFirstPublisherTag) {
        a = publisher_packet(conn, tag - kFirstPublisherTag, f);
      } else {
        a = client_packet(conn, f);
      }
      if (a != Action::kKeep) return {data.size(), a};
      used += f.header.packet_size();
    }
    if (tag < kFirstPublisherTag) live_.bump(live_.bytes_received, static_cast<int64_t>(used));
    return {used, Action::kKeep};
  }

  Action on_timeout(Connection& conn) override {
    const uint64_t tag = tag_index(conn);
    if (tag == kControlTag) return fail_run("control_timeout");
    if (tag >= kFirstPublisherTag) return publisher_lost(tag - kFirstPublisherTag, "publisher_timeout");
    return FleetDriver::on_timeout(conn);
  }

  void on_close(Connection& conn, CloseReason reason) override {
    const uint64_t tag = tag_index(conn);
    const bool ours = closed_by_us(reason);
    // Closed by the server or reset, whichever connection: a client would have to reconnect.
    if (!ours && !done() && (tag >= kFirstPublisherTag || slot_index(conn) >= clients_.size() ||
                             clients_[slot_index(conn)].phase != Phase::kTcp))
      result_.add("disconnects");
    if (tag == kControlTag) {
      control_phase_ = Phase::kFailed;
      if (!ours && !done()) fail_run("control_" + close_cause(reason, conn.last_error()));
      return;
    }
    if (tag >= kFirstPublisherTag) {
      if (!ours && !done()) publisher_lost(tag - kFirstPublisherTag, "publisher_" + close_cause(reason, conn.last_error()));
      return;
    }
    const uint64_t l = slot_index(conn);
    if (l < clients_.size()) report_lost(l, reason, conn.last_error());
    FleetDriver::on_close(conn, reason);
    // A connect that failed: FleetDriver counted it; the client is settled (failed).
    if (l < clients_.size() && clients_[l].phase == Phase::kTcp) settle_client(l, false);
  }

 private:
  // --- MQTT on the wire ---------------------------------------------------------------------
  void send_connect(Connection& conn, const std::string& id, bool clean = true) {
    counted(conn, wire_.connect(conn, id, o_.keep_alive_s, clean));
  }

  void send_subscribe(Connection& conn, std::string_view filter, int qos) {
    counted(conn, wire_.subscribe(conn, filter, static_cast<mqtt::QoS>(qos)));
  }

  void send_puback(Connection& conn, uint16_t packet_id) {
    counted(conn, wire_.ack(conn, mqtt::PacketType::kPuback, packet_id));
  }

  // Bytes the clients sent (the loop's own connections' are not the workload's).
  void counted(Connection& conn, size_t n) {
    if (tag_index(conn) < kFirstPublisherTag) live_.bump(live_.bytes_sent, static_cast<int64_t>(n));
  }

  // --- stage 1: CONNECT, SUBSCRIBE ----------------------------------------------------------
  Action client_packet(Connection& conn, const mqtt::FrameResult& f) {
    const uint64_t l = slot_index(conn);
    ReachClient& c = clients_[l];
    const uint64_t now = monotonic_ns();
    switch (f.header.type) {
      case mqtt::PacketType::kConnack: {
        auto ack = mqtt::decode_connack(f.body, kVersion);
        if (c.phase != Phase::kConnack || !ack) return client_failed(l, ack ? "unexpected_connack" : "malformed_packet");
        result_.histogram("connack").record(now - c.sent_ns);
        if (std::string refused = connack_refusal(*ack); !refused.empty()) return client_failed(l, refused);
        c.phase = Phase::kSuback;
        c.sent_ns = c.last_send_ns = now;
        send_subscribe(conn, reach_topic(client_id(run_, "-", conn_number(l))), o_.qos);
        return Action::kKeep;
      }
      case mqtt::PacketType::kSuback: {
        auto ack = mqtt::decode_suback(f.body, kVersion);
        if (c.phase != Phase::kSuback || !ack) return client_failed(l, ack ? "unexpected_suback" : "malformed_packet");
        result_.histogram("suback").record(now - c.sent_ns);
        if (std::string refused = suback_refusal(*ack); !refused.empty()) return client_failed(l, refused);
        if (static_cast<uint8_t>(ack->reason_codes[0]) < o_.qos) result_.add("suback_qos_downgraded");
        conn.set_timeout(0);
        result_.add("subscribed");
        settle_client(l, true);
        return Action::kKeep;
      }
      case mqtt::PacketType::kPublish: {
        auto p = mqtt::decode_publish(f.header.flags, f.body, kVersion);
        if (!p) return client_failed(l, "malformed_packet");
        if (p->qos == mqtt::QoS::k1) send_puback(conn, p->packet_id);
        on_delivery(l, *p, now);
        return Action::kKeep;
      }
      case mqtt::PacketType::kPingresp:
        return Action::kKeep;
      case mqtt::PacketType::kDisconnect:
        return client_failed(l, "disconnected_by_server");
      default:
        return client_failed(l, "unexpected_packet");
    }
  }

  // The first few clients lost to the other side, by id, phase and time: what a server's log
  // can be searched for when a run loses a handful out of a million.
  void report_lost(uint64_t l, CloseReason reason, int last_error) {
    if (closed_by_us(reason) || done() || lost_reported_ >= kLostReported) return;
    const ReachClient& c = clients_[l];
    static constexpr std::string_view kPhaseNames[] = {"tcp", "connack", "suback", "ready", "failed"};
    ++lost_reported_;
    timespec wall{};
    ::clock_gettime(CLOCK_REALTIME, &wall);
    fmt::print(stderr, "tcpms-bench: lost client {} ({}) waiting for {}, {} ms after its last "
               "request, {} ms into the run (at {}.{:03} s of the wall clock)\n",
               client_id(run_, "-", conn_number(l)), close_cause(reason, last_error),
               kPhaseNames[static_cast<size_t>(c.phase)],
               c.sent_ns ? (monotonic_ns() - c.sent_ns) / 1'000'000 : 0,
               (monotonic_ns() - started_ns_) / 1'000'000, wall.tv_sec, wall.tv_nsec / 1'000'000);
  }

  // A client failed during its handshake or broke the protocol: counted once, closed.
  Action client_failed(uint64_t l, std::string_view cause) {
    count_failure(cause);
    if (clients_[l].phase == Phase::kReady) {
      client_gone(l);
    } else {
      settle_client(l, false);
    }
    return Action::kClose;
  }

  // A subscribed client failed or its connection was lost: its messages are no longer expected
  // (the failure is counted where it was seen).
  void client_gone(uint64_t l) {
    ReachClient& c = clients_[l];
    c.phase = Phase::kFailed;
    --active_;
    if (c.got_publish) --active_got_;
    if (c.expects_push) {
      --push_active_;
      if (c.got_push) --push_active_got_;
    }
    maybe_report();
    maybe_finish();
  }

  // The control connection or a publisher broke the protocol.
  Action own_failure(uint64_t tag, Connection& conn, std::string_view cause) {
    if (tag == kControlTag) {
      fail_run(fmt::format("control_{}", cause));
    } else if (tag >= kFirstPublisherTag) {
      publisher_lost(tag - kFirstPublisherTag, fmt::format("publisher_{}", cause));
    } else {
      client_failed(slot_index(conn), cause);
    }
    return Action::kClose;
  }

  Action on_open_timeout(Connection& conn, Slot&) override {
    const uint64_t l = slot_index(conn);
    const Phase p = clients_[l].phase;
    if (p == Phase::kConnack) return client_failed(l, "connack_timeout");
    if (p == Phase::kSuback) return client_failed(l, "suback_timeout");
    return Action::kKeep;
  }

  void on_lost(Slot& slot) override {
    const uint64_t l = static_cast<uint64_t>(&slot - slots_.data());
    ReachClient& c = clients_[l];
    if (c.phase == Phase::kReady) {
      client_gone(l);  // the fleet counted the cause
    } else {
      settle_client(l, false);
    }
  }

  void settle_client(uint64_t l, bool ok) {
    ReachClient& c = clients_[l];
    if (c.phase == Phase::kReady || c.phase == Phase::kFailed) return;
    if (c.phase != Phase::kTcp) login_settled();
    c.phase = ok ? Phase::kReady : Phase::kFailed;
    ++settled_;
    if (ok) {
      ++active_;
      if (c.expects_push) ++push_active_;
    }
    check_settled();
  }

  void on_all_settled() override {
    tcp_settled_ = true;
    // Connects that failed before they were ever open are settled here.
    for (uint64_t l = 0; l < clients_.size(); ++l) {
      if (clients_[l].phase == Phase::kTcp && slots_[l].state != SlotState::kOpen &&
          slots_[l].state != SlotState::kConnecting)
        settle_client(l, false);
    }
    if (clients_.empty()) return finish();
    check_settled();
  }

  void check_settled() {
    if (!tcp_settled_ || settled_ < clients_.size() || subscribed_all_ || done()) return;
    subscribed_all_ = true;
    // One value per loop: the merged max is when the run's last client was subscribed.
    result_.histogram("time_to_subscribe").record(monotonic_ns() - t0_ns_);
    announce_ready();
  }

  // --- the rendezvous ------------------------------------------------------------------------
  Action control_packet(Connection& conn, const mqtt::FrameResult& f) {
    switch (f.header.type) {
      case mqtt::PacketType::kConnack: {
        auto ack = mqtt::decode_connack(f.body, kVersion);
        if (control_phase_ != Phase::kConnack || !ack || ack->reason != mqtt::ReasonCode::kSuccess)
          return fail_run(ack ? "control_refused" : "control_malformed_packet");
        control_phase_ = Phase::kSuback;
        send_subscribe(conn, sync_prefix_ + "#", 1);
        return Action::kKeep;
      }
      case mqtt::PacketType::kSuback:
        if (control_phase_ == Phase::kSuback) {
          auto ack = mqtt::decode_suback(f.body, kVersion);
          if (!ack || ack->reason_codes.size() != 1 || static_cast<uint8_t>(ack->reason_codes[0]) >= 0x80)
            return fail_run("control_suback_refused");
          control_phase_ = Phase::kReady;
          conn.set_timeout(0);
          announce_ready();
        }
        return Action::kKeep;
      case mqtt::PacketType::kPublish: {
        auto p = mqtt::decode_publish(f.header.flags, f.body, kVersion);
        if (!p) return fail_run("control_malformed_packet");
        if (p->qos == mqtt::QoS::k1) send_puback(conn, p->packet_id);
        on_sync(p->topic, as_chars(p->payload));
        return Action::kKeep;
      }
      case mqtt::PacketType::kPuback:
      case mqtt::PacketType::kPingresp:
        return Action::kKeep;
      default:
        return fail_run("control_unexpected_packet");
    }
  }

  // tb/<run>/sync/<stage>/<first client number of the loop>: a loop's report.
  void on_sync(std::string_view topic, std::string_view text) {
    if (!topic.starts_with(sync_prefix_) || text.empty()) return;  // empty: a report being cleared
    topic.remove_prefix(sync_prefix_.size());
    const size_t slash = topic.find('/');
    if (slash == std::string_view::npos) return;
    const std::string_view stage = topic.substr(0, slash), key = topic.substr(slash + 1);
    uint64_t first = 0;
    if (std::from_chars(key.data(), key.data() + key.size(), first).ec != std::errc{}) return;
    if (stage == kStageReady) {
      uint64_t count = 0;
      if (std::from_chars(text.data(), text.data() + text.size(), count).ec != std::errc{}) return;
      ready_[first] = count;
      if (!barrier_passed_ && !stream_started_ && announced_ && covers_all(ready_)) {
        if (o_.stream_during.empty()) {
          begin_publishing();
        } else {
          begin_streaming();
        }
      }
    } else if (stage == kStageUpgraded) {
      if (stream_started_ && !upgraded_seen_) on_upgraded();
    } else if (stage == kStageStreamed) {
      uint64_t count = 0;
      if (std::from_chars(text.data(), text.data() + text.size(), count).ec != std::errc{}) return;
      streamed_[first] = count;
      if (!barrier_passed_ && stream_reported_ && covers_all(streamed_)) begin_publishing();
    } else if (stage == kStageGot) {
      auto r = parse_report(text);
      if (!r) return;
      got_[first] = *r;
      if (!all_reported_ && reported_ && covers_all(got_)) on_all_reported();
    } else if (stage == kStagePushed) {
      // Sent only once every loop reported, whatever order this loop saw the reports in.
      if (!pushed_seen_ && reported_) {
        all_reported_ = true;
        pushed_seen_ = true;
        pushed_ns_ = monotonic_ns();
        maybe_finish();
      }
    }
  }

  bool covers_all(const std::map<uint64_t, uint64_t>& counts) const {
    uint64_t total = 0;
    for (const auto& [first, n] : counts) total += n;
    return total >= n_;
  }
  bool covers_all(const std::map<uint64_t, ReachReport>& reports) const {
    uint64_t total = 0;
    for (const auto& [first, r] : reports) total += r.clients;
    return total >= n_;
  }

  void publish_sync(std::string_view stage, const std::string& text) {
    Connection* conn = loop().find(control_);
    if (conn == nullptr) return;
    const std::string topic = fmt::format("{}{}/{}", sync_prefix_, stage, ctx_.share.offset);
    mqtt::Publish p;
    p.retain = true;
    p.qos = mqtt::QoS::k1;
    p.packet_id = control_packet_id_;
    control_packet_id_ = static_cast<uint16_t>(control_packet_id_ == 0xFFFF ? 1 : control_packet_id_ + 1);
    p.topic = topic;
    p.payload = tcpms::as_bytes(text);
    wire_.publish(*conn, p);
  }

  // Once this loop's clients are settled, its control connection subscribed and its publishers
  // connected (or failed): ready.
  void announce_ready() {
    if (announced_ || !subscribed_all_ || control_phase_ != Phase::kReady || done()) return;
    for (const Publisher& p : publishers_) {
      if (p.phase != Phase::kReady && p.phase != Phase::kFailed) return;
    }
    announced_ = true;
    wait_since_ns_ = monotonic_ns();
    publish_sync(kStageReady, std::to_string(clients_.size()));
  }

  // The run cannot go on (the control connection failed, a rendezvous timed out). Returns
  // kClose for the connection that said so.
  Action fail_run(std::string_view cause) {
    if (done()) return Action::kClose;
    count_failure(cause);
    finish_loop();
    return Action::kClose;
  }

  // The server's CPU since the current stage began, as counter `name`; a new stage begins.
  void charge_server_cpu(std::string_view name) {
    if (!measuring_) return;
    const uint64_t cpu = cpu_us(opt().server_pid);
    result_.add(name, static_cast<int64_t>(cpu - std::min(cpu, cpu_barrier_us_)));
    cpu_barrier_us_ = cpu;
  }

  // --- stage 1b: stream QoS 1 messages to the loop's own clients while a command runs --------
  void begin_streaming() {
    stream_started_ = true;
    stream_start_ns_ = last_stream_event_ns_ = last_stream_delivery_ns_ = monotonic_ns();
    result_.histogram("barrier_wait").record(stream_start_ns_ - wait_since_ns_);
    wait_since_ns_ = stream_start_ns_;  // the wait for "upgraded"
    charge_server_cpu("phase_subscribe_server_cpu_us");
    pace_timer_ = loop().run_every(1, [this] { pump_stream(); });
    if (pusher_loop_) {
      command_timer_ = loop().run_after(ms(o_.stream_after_s), [this] {
        command_timer_ = 0;
        start_command();
      });
    }
    pump_stream();
  }

  void start_command() {
    if (done()) return;
    fmt::print(stderr, "tcpms-bench: --stream-during: running `{}` after {:.1f} s of streaming\n",
               o_.stream_during, static_cast<double>(monotonic_ns() - stream_start_ns_) / 1e9);
    command_ = std::make_unique<CommandRunner>(o_.stream_during, [this](CommandOutcome out) {
      loop().post([this, out] { command_done(out); });
    });
    command_->start();
  }

  void command_done(const CommandOutcome& out) {
    if (done()) return;
    command_.reset();  // its thread is returning: the join is short
    fmt::print(stderr, "tcpms-bench: --stream-during exited {} after {:.2f} s{}{}\n", out.exit_code,
               static_cast<double>(out.wall_ns) / 1e9, out.error.empty() ? "" : ": ", out.error);
    result_.add("during_command_rc", out.exit_code);
    result_.add("during_command_ms", static_cast<int64_t>(out.wall_ns / 1'000'000));
    if (out.exit_code != 0) count_failure(fmt::format("during_command_rc_{}", out.exit_code));
    upgraded_reported_ = true;
    publish_sync(kStageUpgraded, std::to_string(out.exit_code));
  }

  // The command returned (as the loop holding client 0 reported): stream on for the tail.
  void on_upgraded() {
    upgraded_seen_ = true;
    const uint64_t now = monotonic_ns();
    result_.histogram("stream_before_upgraded").record(now - stream_start_ns_);
    tail_timer_ = loop().run_after(ms(o_.stream_tail_s), [this] {
      tail_timer_ = 0;
      stop_streaming();
    });
  }

  // Paced: every message whose time has come goes out now, stamped with its intended time.
  // Else each publisher keeps --inflight unacknowledged (and at most kFlatOutQueueBytes unsent).
  void pump_stream() {
    if (!stream_started_ || stream_publishing_done_ || done()) return;
    const uint64_t now = monotonic_ns();
    uint64_t due = ~uint64_t{0};
    if (stream_loop_rate_ > 0)
      due = static_cast<uint64_t>(static_cast<double>(now - stream_start_ns_) * stream_loop_rate_ / 1e9) + 1;
    uint32_t budget = kFlatOutPerTick * static_cast<uint32_t>(publishers_.size());
    while (ledger_.sent_count() < due && budget > 0) {
      Publisher* p = next_publisher(stream_loop_rate_ > 0);
      if (p == nullptr) return;
      uint64_t l = ledger_.next_client();
      for (uint64_t tries = 1; clients_[l].phase != Phase::kReady && tries < clients_.size(); ++tries)
        l = ledger_.next_client();
      if (clients_[l].phase != Phase::kReady) return;  // every client is gone
      const uint64_t stamp = stream_loop_rate_ > 0
          ? stream_start_ns_ + static_cast<uint64_t>(static_cast<double>(ledger_.sent_count()) * 1e9 / stream_loop_rate_)
          : now;
      const uint32_t m = ledger_.sent(l);
      p->stream_ids[publish(*p, l, kReachStreamSeq + m, mqtt::QoS::k1, stamp)] = m;
      --budget;
    }
  }

  void stop_streaming() {
    if (stream_publishing_done_ || done()) return;
    stream_publishing_done_ = true;
    stream_stop_ns_ = monotonic_ns();
    loop().cancel_timer(pace_timer_);
    pace_timer_ = 0;
    maybe_stream_report();
  }

  // The stream ends for this loop once every message it sent is acknowledged and every
  // acknowledged one delivered, or nothing (PUBACK or delivery) came for --drain seconds:
  // then what is still missing is counted.
  void maybe_stream_report() {
    if (!stream_publishing_done_ || stream_reported_ || done()) return;
    if (ledger_.unacked() > 0 || ledger_.acked_undelivered() > 0) {
      const uint64_t quiet_since = std::max(last_stream_event_ns_, stream_stop_ns_);
      if (static_cast<double>(monotonic_ns() - quiet_since) / 1e9 < o_.drain_s) return;
    }
    stream_reported_ = true;
    wait_since_ns_ = monotonic_ns();
    result_.add("stream_published", static_cast<int64_t>(ledger_.sent_count()));
    result_.add("stream_acked", static_cast<int64_t>(ledger_.acked_count()));
    result_.add("stream_delivered", static_cast<int64_t>(ledger_.delivered_count()));
    result_.add("stream_lost", static_cast<int64_t>(ledger_.acked_undelivered()));
    result_.add("stream_unacked", static_cast<int64_t>(ledger_.unacked()));
    result_.add("stream_duplicates", static_cast<int64_t>(ledger_.duplicates()));
    // QoS 1 allows a duplicate; a message acknowledged and never delivered is a loss, and one
    // never acknowledged means the broker (or a publisher's connection) dropped it.
    if (ledger_.acked_undelivered() > 0) count_failure("stream_lost", static_cast<int64_t>(ledger_.acked_undelivered()));
    if (ledger_.unacked() > 0) count_failure("stream_unacked", static_cast<int64_t>(ledger_.unacked()));
    result_.histogram("stream_time").record(stream_stop_ns_ - stream_start_ns_);
    // What was never acknowledged no longer holds a publisher's window (nor its packet id).
    for (Publisher& p : publishers_) {
      p.inflight = static_cast<uint16_t>(p.inflight - std::min<size_t>(p.inflight, p.stream_ids.size()));
      p.stream_ids.clear();
    }
    publish_sync(kStageStreamed, std::to_string(clients_.size()));
  }

  void on_stream_delivery(uint64_t l, uint32_t seq, uint64_t stamp, uint64_t now) {
    last_stream_event_ns_ = now;
    switch (ledger_.delivered(seq - kReachStreamSeq, l)) {
      case StreamLedger::Delivery::kFirst:
        result_.histogram("stream_delivery").record(now - stamp);
        // The longest this loop went without a stream delivery while it streamed: a stall
        // every client of the loop saw.
        if (!stream_publishing_done_) result_.histogram("stream_loop_gap").record(now - last_stream_delivery_ns_);
        last_stream_delivery_ns_ = now;
        break;
      case StreamLedger::Delivery::kDuplicate:
        break;  // counted by the ledger
      case StreamLedger::Delivery::kUnknown:
      case StreamLedger::Delivery::kWrongClient:
        count_failure("stream_wrong_message");
        break;
    }
    maybe_stream_report();
  }

  // --- stage 2: publish one message to every client -------------------------------------------
  void begin_publishing() {
    barrier_passed_ = true;
    barrier_ns_ = monotonic_ns();
    result_.histogram("barrier_wait").record(barrier_ns_ - wait_since_ns_);
    charge_server_cpu(stream_started_ ? "phase_stream_server_cpu_us" : "phase_subscribe_server_cpu_us");
    last_delivery_ns_ = barrier_ns_;
    pace_timer_ = loop().run_every(1, [this] { pump_publishes(); });
    pump_publishes();
  }

  // The next publisher free to send, round robin. `paced`: the pace bounds what it queues;
  // else at most kFlatOutQueueBytes wait unsent on it.
  Publisher* next_publisher(bool paced) {
    for (size_t tries = 0; tries < publishers_.size(); ++tries) {
      Publisher& p = publishers_[rr_];
      rr_ = (rr_ + 1) % publishers_.size();
      if (p.phase != Phase::kReady || (o_.qos > 0 && p.inflight >= o_.inflight)) continue;
      Connection* conn = loop().find(p.id);
      if (conn != nullptr && (paced || conn->pending_output_bytes() < kFlatOutQueueBytes)) return &p;
    }
    return nullptr;
  }

  bool any_publisher() const {
    return std::any_of(publishers_.begin(), publishers_.end(), [](const Publisher& p) { return p.phase == Phase::kReady; });
  }

  // Paced: every message whose time has come goes out now, stamped with its intended time.
  // As fast as flow allows: each publisher keeps up to kFlatOutQueueBytes unsent (and at QoS 1
  // --inflight unacknowledged).
  void pump_publishes() {
    if (!barrier_passed_ || publishing_done_ || done()) return;
    const uint64_t now = monotonic_ns();
    uint64_t due = clients_.size();
    if (loop_rate_ > 0) due = static_cast<uint64_t>(static_cast<double>(now - barrier_ns_) * loop_rate_ / 1e9) + 1;
    uint32_t budget = kFlatOutPerTick * static_cast<uint32_t>(publishers_.size());
    while (next_client_ < clients_.size() && next_client_ < due && budget > 0) {
      if (clients_[next_client_].phase != Phase::kReady) {
        ++next_client_;
        continue;
      }
      Publisher* p = next_publisher(loop_rate_ > 0);
      if (p == nullptr) break;
      const uint64_t stamp = loop_rate_ > 0
          ? barrier_ns_ + static_cast<uint64_t>(static_cast<double>(next_client_) * 1e9 / loop_rate_)
          : now;
      publish(*p, next_client_++, kReachPublishSeq, static_cast<mqtt::QoS>(o_.qos), stamp);
      result_.add("published");
      --budget;
    }
    if (next_client_ < clients_.size() && !any_publisher()) {
      // Every publisher is gone: the rest cannot be sent.
      for (; next_client_ < clients_.size(); ++next_client_) {
        if (clients_[next_client_].phase == Phase::kReady) count_failure("not_published_no_publisher");
      }
    }
    if (next_client_ >= clients_.size()) {
      publishing_done_ = true;
      publish_end_ns_ = monotonic_ns();
      result_.histogram("publish_time").record(publish_end_ns_ - barrier_ns_);
      loop().cancel_timer(pace_timer_);
      pace_timer_ = 0;
      maybe_report();
    }
  }

  // One message (payload sequence `seq`) to local client l's topic; returns its packet id
  // (0 at QoS 0).
  uint16_t publish(Publisher& pub, uint64_t l, uint32_t seq, mqtt::QoS qos, uint64_t stamp_ns) {
    const uint64_t i = conn_number(l);
    write_bench_payload(payload_, BenchPayload{static_cast<uint32_t>(i), seq, stamp_ns});
    const std::string topic = reach_topic(client_id(run_, "-", i));
    mqtt::Publish p;
    p.qos = qos;
    p.topic = topic;
    p.payload = payload_;
    if (qos != mqtt::QoS::k0) {
      p.packet_id = pub.next_packet_id;
      pub.next_packet_id = static_cast<uint16_t>(pub.next_packet_id == 0xFFFF ? 1 : pub.next_packet_id + 1);
      ++pub.inflight;
    }
    if (Connection* conn = loop().find(pub.id)) wire_.publish(*conn, p);
    return p.packet_id;
  }

  Action publisher_packet(Connection& conn, uint64_t k, const mqtt::FrameResult& f) {
    Publisher& p = publishers_[k];
    switch (f.header.type) {
      case mqtt::PacketType::kConnack: {
        auto ack = mqtt::decode_connack(f.body, kVersion);
        if (p.phase != Phase::kConnack || !ack || ack->reason != mqtt::ReasonCode::kSuccess)
          return publisher_lost(k, ack ? "publisher_refused" : "publisher_malformed_packet");
        p.phase = Phase::kReady;
        conn.set_timeout(0);
        announce_ready();
        return Action::kKeep;
      }
      case mqtt::PacketType::kPuback: {
        auto ack = mqtt::decode_publish_response(f.header.type, f.body, kVersion);
        if (!ack || p.inflight == 0) return publisher_lost(k, "publisher_unexpected_puback");
        --p.inflight;
        if (auto it = p.stream_ids.find(ack->packet_id); it != p.stream_ids.end()) {
          if (!ledger_.acked(it->second)) count_failure("stream_unexpected_puback");
          p.stream_ids.erase(it);
          last_stream_event_ns_ = monotonic_ns();
          if (stream_publishing_done_) {
            maybe_stream_report();
          } else if (stream_loop_rate_ <= 0) {
            pump_stream();
          }
          return Action::kKeep;
        }
        if (loop_rate_ <= 0) pump_publishes();
        return Action::kKeep;
      }
      case mqtt::PacketType::kPingresp:
        return Action::kKeep;
      default:
        return publisher_lost(k, "publisher_unexpected_packet");
    }
  }

  // A publisher failed: the others take its work. Returns kClose for its connection.
  Action publisher_lost(uint64_t k, std::string_view cause) {
    Publisher& p = publishers_[k];
    if (p.phase == Phase::kFailed || done()) {
      p.phase = Phase::kFailed;
      return Action::kClose;
    }
    p.phase = Phase::kFailed;
    count_failure(cause);
    // Stream messages it sent and never saw acknowledged stay unacknowledged in the ledger.
    const int64_t unacked = p.inflight - static_cast<int64_t>(p.stream_ids.size());
    if (unacked > 0) count_failure("no_puback", unacked);
    p.inflight = 0;
    p.stream_ids.clear();
    announce_ready();
    if (barrier_passed_) pump_publishes();
    if (stream_publishing_done_) maybe_stream_report();
    return Action::kClose;
  }

  // A client's message, from either stage: checked whole, counted once.
  void on_delivery(uint64_t l, const mqtt::Publish& p, uint64_t now) {
    ReachClient& c = clients_[l];
    if (done() || c.phase != Phase::kReady) return;  // late, after this loop reported; or closing
    const uint64_t i = conn_number(l);
    auto bp = read_bench_payload(p.payload);
    if (!bp || p.payload.size() != payload_.size()) return count_failure("payload_mismatch");
    if (bp->publisher != static_cast<uint32_t>(i)) return count_failure("wrong_client");
    if (bp->stamp > now) return count_failure("stamp_in_future");
    const std::string id = client_id(run_, "-", i);
    if (bp->seq == kReachPublishSeq) {
      if (!barrier_passed_) return count_failure("publish_before_barrier");
      if (p.topic != reach_topic(id)) return count_failure("wrong_topic");
      if (c.got_publish) return count_failure("duplicate_publish");
      c.got_publish = true;
      ++delivered_;
      ++active_got_;
      result_.histogram("delivery").record(now - bp->stamp);
      result_.add(bench::kCounterOps);
      live_.bump(live_.ops);
      last_delivery_ns_ = now;
      maybe_report();
    } else if (bp->seq >= kReachStreamSeq) {
      if (p.topic != reach_topic(id)) return count_failure("wrong_topic");
      on_stream_delivery(l, bp->seq, bp->stamp, now);
    } else if (bp->seq == kReachPushSeq) {
      if (p.topic != reach_push_topic(id)) return count_failure("wrong_push_topic");
      if (!c.expects_push) return count_failure("unexpected_push");
      if (c.got_push) return count_failure("duplicate_push");
      c.got_push = true;
      ++pushes_got_;
      ++push_active_got_;
      result_.histogram("push_delivery").record(now - bp->stamp);
      result_.add("pushes_delivered");
      last_push_ns_ = now;
      maybe_finish();
    } else {
      count_failure("payload_mismatch");
    }
  }

  // Stage 2 ends for this loop when every subscribed client has its message, or nothing came
  // for --drain seconds after publishing ended.
  void maybe_report() {
    if (reported_ || !publishing_done_ || done()) return;
    const uint64_t waiting = active_ - active_got_;
    if (waiting > 0) {
      const uint64_t now = monotonic_ns();
      const uint64_t quiet_since = std::max(last_delivery_ns_, publish_end_ns_);
      if (static_cast<double>(now - quiet_since) / 1e9 < o_.drain_s) return;
      count_failure("missing_publish", static_cast<int64_t>(waiting));
    }
    reported_ = true;
    wait_since_ns_ = monotonic_ns();
    result_.add("publish_expected", static_cast<int64_t>(delivered_ + waiting));
    result_.histogram("deliver_time").record(last_delivery_ns_ - barrier_ns_);
    publish_sync(kStageGot, format_report({clients_.size(), delivered_, barrier_ns_, last_delivery_ns_}));
  }

  // --- stage 3: push by client id through the admin API ---------------------------------------
  void on_all_reported() {
    all_reported_ = true;
    wait_since_ns_ = monotonic_ns();
    if (!pusher_loop_) return;
    uint64_t first = ~uint64_t{0}, last = 0;
    for (const auto& [k, r] : got_) {
      first = std::min(first, r.first_publish_ns);
      last = std::max(last, r.last_delivery_ns);
    }
    result_.add("time_to_deliver_all_us", static_cast<int64_t>((std::max(last, first) - first) / 1000));
    if (measuring_) {
      cpu_reported_us_ = cpu_us(opt().server_pid);
      result_.add("phase_publish_server_cpu_us", static_cast<int64_t>(cpu_reported_us_ - std::min(cpu_reported_us_, cpu_barrier_us_)));
    }
    push_start_ns_ = monotonic_ns();
    if (push_targets_.empty() || o_.admin.empty()) return pushes_done();
    AdminPusher::Options po;
    split_host_port(o_.admin, po.host, po.port);  // checked by the workload's validate()
    po.token = o_.admin_token;
    po.concurrency = o_.push_concurrency;
    po.qos = o_.qos;
    po.timeout_s = opt().reply_timeout_s;
    std::vector<PushJob> jobs;
    jobs.reserve(push_targets_.size());
    for (uint64_t i : push_targets_) {
      std::string id = client_id(run_, "-", i);
      jobs.push_back({i, id, reach_push_topic(id)});
    }
    const size_t size = payload_.size();
    auto payload = [size](uint64_t i) {
      std::vector<std::byte> b(size);
      write_bench_payload(b, BenchPayload{static_cast<uint32_t>(i), kReachPushSeq, monotonic_ns()});
      return b;
    };
    result_.add("push_requests", static_cast<int64_t>(jobs.size()));
    pusher_ = std::make_unique<AdminPusher>(std::move(po), std::move(jobs), payload,
                                            [this] { loop().post([this] { pushes_done(); }); });
    pusher_->start();
  }

  void pushes_done() {
    if (done()) return;
    if (pusher_) {
      pusher_->join();
      PushOutcome out = pusher_->take_outcome();
      pusher_.reset();
      for (const auto& [status, n] : out.statuses) {
        result_.add(fmt::format("push_http_{}", status), n);
        if (status != 200) count_failure(fmt::format("push_http_{}", status), n);
      }
      for (const auto& [error, n] : out.errors) count_failure(fmt::format("push_error_{}", error), n);
      result_.histogram("push_http").merge(out.round_trip);
    }
    result_.add("push_time_us", static_cast<int64_t>((monotonic_ns() - push_start_ns_) / 1000));
    if (measuring_) {
      const uint64_t cpu = cpu_us(opt().server_pid);
      result_.add("phase_push_server_cpu_us", static_cast<int64_t>(cpu - std::min(cpu, cpu_reported_us_)));
    }
    publish_sync(kStagePushed, std::to_string(push_targets_.size()));
  }

  // This loop is done once "pushed" came and every client that expects a push has it, or
  // nothing came for --drain seconds since.
  void maybe_finish() {
    if (!pushed_seen_ || done()) return;
    const uint64_t waiting = push_active_ - push_active_got_;
    if (waiting > 0) {
      const uint64_t quiet_since = std::max(pushed_ns_, last_push_ns_);
      if (static_cast<double>(monotonic_ns() - quiet_since) / 1e9 < o_.drain_s) return;
      count_failure("missing_push", static_cast<int64_t>(waiting));
    }
    result_.add("pushes_expected", static_cast<int64_t>(pushes_got_ + waiting));
    finish_loop();
  }

  void tick() {
    if (done()) return;
    const uint64_t now = monotonic_ns();
    ++ticks_;
    if (o_.keep_alive_s > 0 && ticks_ % (1000 / kTickMs) == 0) ping_idle(now);
    const bool waiting = (announced_ && !stream_started_ && !barrier_passed_) ||
                         (stream_reported_ && !barrier_passed_) || (reported_ && !all_reported_) ||
                         (all_reported_ && !pushed_seen_ && !pusher_);
    // The wait for "upgraded" lasts as long as the command does: only --max-time bounds it.
    const bool awaiting_command = stream_started_ && !upgraded_seen_;
    if (waiting || awaiting_command) {
      // Asking again returns every retained report: covers one that slipped past.
      if (ticks_ % kResubscribeEveryTicks == 0) {
        if (Connection* conn = loop().find(control_)) send_subscribe(*conn, sync_prefix_ + "#", 1);
      }
    }
    if (waiting) {
      if (static_cast<double>(now - wait_since_ns_) / 1e9 > o_.sync_timeout_s) {
        fail_run(!stream_started_ && !barrier_passed_ ? "sync_timeout_ready"
                 : !barrier_passed_                   ? "sync_timeout_streamed"
                 : !all_reported_                     ? "sync_timeout_got"
                                                      : "sync_timeout_pushed");
        return;
      }
    }
    maybe_stream_report();
    maybe_report();
    maybe_finish();
  }

  void ping_idle(uint64_t now) {
    const uint64_t every_ns = static_cast<uint64_t>(o_.keep_alive_s) * 500'000'000u;
    auto ping = [&](ConnId id) {
      if (Connection* conn = loop().find(id)) counted(*conn, wire_.pingreq(*conn));
    };
    for (uint64_t l = 0; l < clients_.size(); ++l) {
      ReachClient& c = clients_[l];
      if (c.phase != Phase::kReady || now - c.last_send_ns < every_ns) continue;
      ping(slots_[l].id);
      c.last_send_ns = now;
    }
    // The loop's own connections send rarely: a ping each time.
    if (now - own_ping_ns_ >= every_ns) {
      ping(control_);
      for (const Publisher& p : publishers_) ping(p.id);
      own_ping_ns_ = now;
    }
  }

  void finish_loop() {
    if (done()) return;
    stop_timers();
    if (pusher_) pusher_->cancel();  // joined when the driver goes
    // Clear this loop's retained reports (the other loops have seen them: they are past them).
    if (announced_) publish_sync(kStageReady, "");
    if (reported_) publish_sync(kStageGot, "");
    if (pusher_loop_ && all_reported_) publish_sync(kStagePushed, "");
    if (upgraded_reported_) publish_sync(kStageUpgraded, "");
    if (stream_reported_) publish_sync(kStageStreamed, "");
    command_.reset();
    finish();
  }

  void on_stop() override {
    stop_timers();
    if (pusher_) pusher_->cancel();
    command_.reset();  // SIGTERM to a command still running
  }

  void stop_timers() {
    for (uint64_t* t : {&tick_timer_, &pace_timer_, &command_timer_, &tail_timer_}) {
      if (*t) loop().cancel_timer(*t);
      *t = 0;
    }
  }

  static constexpr mqtt::ProtocolVersion kVersion = mqtt::ProtocolVersion::kV311;

  const ReachOptions o_;
  const uint32_t run_;
  const uint64_t n_;  // clients in the whole run
  std::vector<ReachClient> clients_;
  std::vector<Publisher> publishers_;
  std::vector<std::byte> payload_;
  MqttClientWire wire_;
  std::string sync_prefix_;
  double loop_rate_ = 0;
  bool pusher_loop_ = false, measuring_ = false;

  uint64_t settled_ = 0;
  // Subscribed clients still connected, and how many of them got their published message;
  // the same for those that expect a push.
  uint64_t active_ = 0, active_got_ = 0, push_active_ = 0, push_active_got_ = 0;
  bool tcp_settled_ = false, subscribed_all_ = false;

  ConnId control_;
  Phase control_phase_ = Phase::kTcp;
  uint16_t control_packet_id_ = 1;
  std::map<uint64_t, uint64_t> ready_;    // first client number of a loop -> its clients
  std::map<uint64_t, ReachReport> got_;   // first client number of a loop -> its report
  bool announced_ = false, barrier_passed_ = false, reported_ = false, all_reported_ = false;
  bool pushed_seen_ = false;
  uint64_t wait_since_ns_ = 0;  // the current rendezvous wait began

  uint64_t barrier_ns_ = 0, publish_end_ns_ = 0, last_delivery_ns_ = 0;
  uint64_t next_client_ = 0;  // next local client to publish to
  size_t rr_ = 0;
  bool publishing_done_ = false;
  uint64_t delivered_ = 0;

  // The stream stage.
  StreamLedger ledger_;
  double stream_loop_rate_ = 0;
  std::unique_ptr<CommandRunner> command_;  // the loop holding client 0, while it runs
  std::map<uint64_t, uint64_t> streamed_;   // first client number of a loop -> its clients
  bool stream_started_ = false, stream_publishing_done_ = false, stream_reported_ = false;
  bool upgraded_seen_ = false, upgraded_reported_ = false;
  uint64_t stream_start_ns_ = 0, stream_stop_ns_ = 0;
  uint64_t last_stream_event_ns_ = 0;     // a stream PUBACK or delivery
  uint64_t last_stream_delivery_ns_ = 0;

  std::vector<uint64_t> push_targets_;  // the pusher loop only
  std::unique_ptr<AdminPusher> pusher_;
  uint64_t push_start_ns_ = 0, pushed_ns_ = 0, last_push_ns_ = 0;
  uint64_t pushes_got_ = 0;

  // Server CPU at the start of the current stage (subscribe, stream, publish), and at "got".
  uint64_t cpu_barrier_us_ = 0, cpu_reported_us_ = 0;
  uint64_t started_ns_ = monotonic_ns();
  static constexpr uint32_t kLostReported = 5;  // per bench loop
  uint32_t lost_reported_ = 0;
  uint64_t ticks_ = 0, own_ping_ns_ = 0;
  uint64_t tick_timer_ = 0, pace_timer_ = 0, command_timer_ = 0, tail_timer_ = 0;
};

}  // namespace

uint32_t reach_run_id(const CommonOptions& c) {
  return static_cast<uint32_t>(c.is_worker() ? ::getppid() : ::getpid());
}

std::unique_ptr<LoopDriver> make_reach_driver(const DriverContext& ctx, const ReachOptions& o) {
  return std::make_unique<ReachDriver>(ctx, o);
}

}  // namespace tcpms::benchapp
