#include "mqtt_driver.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "benchkit/proc_sampler.h"
#include "message.h"
#include "mqtt_client_wire.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/fixed_header.h"
#include "mqtt_payload.h"
#include "tcpms/connection.h"
#include "workloads.h"

namespace tcpms::benchapp {
namespace {

constexpr uint64_t kControlTag = ~uint64_t{0} >> 1;  // Connection::user_data of a control connection
constexpr uint32_t kMaxPacket = 16u << 20;
constexpr uint32_t kTickMs = 100;
constexpr size_t kFlatOutQueueBytes = 64 * 1024;   // QoS 0 flat out: keep this much unsent
constexpr uint32_t kFlatOutPerTick = 512;          // ... and at most this many per publisher per ms
constexpr uint16_t kMaxOpenLoopInflight = 60000;   // QoS 1 packet ids in use per publisher

std::string_view as_text(ByteView b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

enum class Phase : uint8_t { kTcp, kConnack, kSuback, kReady, kFailed };

struct Client {
  uint64_t sent_ns = 0;       // CONNECT or SUBSCRIBE sent: the CONNACK / SUBACK latency
  uint64_t last_send_ns = 0;  // keep-alive
  uint32_t seq = 0;           // publisher: data messages sent
  uint16_t next_packet_id = 1;
  uint16_t inflight = 0;      // publisher, QoS 1/2: PUBLISH not yet acknowledged (PUBACK/PUBCOMP)
  uint32_t ends_seen = 0;     // subscriber: end markers received
  Phase phase = Phase::kTcp;
  bool subscriber = false;
  bool publisher = false;
  bool paused = false;        // --slow-subscribers
};

class MqttDriver final : public FleetDriver {
 public:
  MqttDriver(const DriverContext& ctx, const MqttOptions& o, const MqttLayout& layout)
      : FleetDriver(ctx),
        o_(o),
        lay_(layout),
        version_(o.version),
        clients_(slots_.size()),
        wire_(o.version, std::max<size_t>(o.payload, kMessageHeaderBytes)) {
    const uint32_t sources = lay_.sources_per_subscriber();
    for (uint64_t l = 0; l < clients_.size(); ++l) {
      const uint64_t i = conn_number(l);
      clients_[l].subscriber = lay_.subscribes(i);
      clients_[l].publisher = lay_.publishes(i);
      if (clients_[l].publisher) ++local_publishers_;
      if (clients_[l].subscriber && lay_.kind == MqttKind::kP2p) topics_.push_back(lay_.subscribe_topic(i));
      if (clients_[l].subscriber && static_cast<int64_t>(i) < o_.slow_subscribers) clients_[l].paused = true;
    }
    if (lay_.kind == MqttKind::kFanout) fanout_topic_ = lay_.subscribe_topic(0);
    next_seq_.assign(clients_.size() * sources, 0);
    payload_.resize(std::max<size_t>(o_.payload, kMessageHeaderBytes));
    if (lay_.publishers > 0 && o_.publish_rate > 0)
      loop_rate_ = o_.publish_rate * static_cast<double>(local_publishers_) / static_cast<double>(lay_.publishers);
    measuring_ = ctx.share.offset == 0 && ctx.share.count > 0 && ctx.options->server_pid > 0;
  }

  void start() override {
    FleetDriver::start();
    if (done()) return;
    tick_timer_ = loop().run_every(kTickMs, [this] { tick(); });
    if (lay_.kind != MqttKind::kConn && !slots_.empty()) {
      control_ = start_connect(ctx_.share.offset, index_tag(kControlTag));
      if (!control_.valid()) fail_run("control_connect");
    }
  }

  Action on_open(Connection& conn) override {
    if (tag_index(conn) == kControlTag) {
      send_connect(conn, client_id(lay_.run, "c", ctx_.share.offset), true);
      conn.set_timeout(ms(opt().reply_timeout_s));
      control_phase_ = Phase::kConnack;
      return Action::kKeep;
    }
    Action a = FleetDriver::on_open(conn);
    if (a != Action::kKeep) return a;
    const uint64_t l = slot_index(conn);
    Client& c = clients_[l];
    c.phase = Phase::kConnack;
    c.sent_ns = monotonic_ns();
    send_connect(conn, client_id(lay_.run, "-", conn_number(l)), !o_.persistent);
    conn.set_timeout(ms(opt().reply_timeout_s));
    return Action::kKeep;
  }

  DataResult on_data(Connection& conn, ByteView data) override {
    const bool control = tag_index(conn) == kControlTag;
    size_t used = 0;
    while (used < data.size()) {
      mqtt::FrameResult f = mqtt::next_frame(data.subspan(used), kMaxPacket);
      if (f.status == mqtt::FrameStatus::kNeedMore) break;
      if (f.status == mqtt::FrameStatus::kError) {
        protocol_failure(conn, control, "malformed_packet");
        return {data.size(), Action::kClose};
      }
      const Action a = control ? control_packet(conn, f) : client_packet(conn, f);
      used += f.header.packet_size();
      if (a != Action::kKeep) return {data.size(), a};
    }
    if (!control) live_.bump(live_.bytes_received, static_cast<int64_t>(used));
    return {used, Action::kKeep};
  }

  Action on_timeout(Connection& conn) override {
    if (tag_index(conn) == kControlTag) {
      fail_run("control_timeout");
      return Action::kClose;
    }
    return FleetDriver::on_timeout(conn);
  }

  void on_close(Connection& conn, CloseReason reason) override {
    if (tag_index(conn) == kControlTag) {
      const bool ours = closed_by_us(reason);
      control_phase_ = Phase::kFailed;
      if (!ours && !done()) fail_run("control_" + close_cause(reason, conn.last_error()));
      return;
    }
    const uint64_t l = slot_index(conn);
    FleetDriver::on_close(conn, reason);
    // A connect that failed: FleetDriver counted it; the client is settled (failed).
    if (l < clients_.size() && clients_[l].phase == Phase::kTcp) settle_client(l, false);
  }

 private:
  // --- phase 1: CONNECT, SUBSCRIBE ----------------------------------------------------------
  void send_connect(Connection& conn, const std::string& id, bool clean) {
    counted(conn, wire_.connect(conn, id, o_.keep_alive_s, clean, o_.username, o_.password));
  }

  void send_ack(Connection& conn, mqtt::PacketType type, uint16_t packet_id) {
    counted(conn, wire_.ack(conn, type, packet_id));
  }

  // 5.0: how many QoS 1/2 publishes the broker takes unacknowledged from one client
  // (CONNACK Receive Maximum [MQTT-3.3.4-7]); a publisher never has more in flight.
  void note_receive_maximum(const mqtt::Connack& ack) {
    if (version_ != mqtt::ProtocolVersion::kV5) return;
    const auto rm = ack.properties.number(mqtt::PropertyId::kReceiveMaximum).value_or(65535);
    server_receive_max_ = static_cast<uint16_t>(std::min<uint32_t>(server_receive_max_, std::max<uint32_t>(rm, 1)));
  }
  uint16_t window_limit() const noexcept {
    return std::min<uint16_t>(kMaxOpenLoopInflight, server_receive_max_);
  }

  void send_subscribe(Connection& conn, std::string_view topic, mqtt::QoS qos) {
    counted(conn, wire_.subscribe(conn, topic, qos));
  }

  // Bytes a client sent (the control connection's are not the workload's).
  void counted(Connection& conn, size_t n) {
    if (tag_index(conn) != kControlTag) live_.bump(live_.bytes_sent, static_cast<int64_t>(n));
  }

  Action client_packet(Connection& conn, const mqtt::FrameResult& f) {
    const uint64_t l = slot_index(conn);
    Client& c = clients_[l];
    const uint64_t now = monotonic_ns();
    switch (f.header.type) {
      case mqtt::PacketType::kConnack: {
        auto ack = mqtt::decode_connack(f.body, version_);
        if (c.phase != Phase::kConnack || !ack) return client_failed(l, ack ? "unexpected_connack" : "malformed_packet");
        result_.histogram("connack").record(now - c.sent_ns);
        note_receive_maximum(*ack);
        if (std::string refused = connack_refusal(*ack); !refused.empty()) return client_failed(l, refused);
        c.last_send_ns = now;
        if (!c.subscriber) {
          conn.set_timeout(0);
          settle_client(l, true);
          return Action::kKeep;
        }
        c.phase = Phase::kSuback;
        c.sent_ns = now;
        const std::string topic = lay_.subscribe_topic(conn_number(l));
        send_subscribe(conn, topic, static_cast<mqtt::QoS>(o_.qos));
        return Action::kKeep;
      }
      case mqtt::PacketType::kSuback: {
        auto ack = mqtt::decode_suback(f.body, version_);
        if (c.phase != Phase::kSuback || !ack) return client_failed(l, ack ? "unexpected_suback" : "malformed_packet");
        result_.histogram("suback").record(now - c.sent_ns);
        if (std::string refused = suback_refusal(*ack); !refused.empty()) return client_failed(l, refused);
        if (static_cast<uint8_t>(ack->reason_codes[0]) < o_.qos) result_.add("suback_qos_downgraded");
        conn.set_timeout(0);
        result_.add("subscribed");
        if (lay_.kind == MqttKind::kConn) {
          result_.add(bench::kCounterOps);
          live_.bump(live_.ops);
        }
        settle_client(l, true);
        return Action::kKeep;
      }
      case mqtt::PacketType::kPublish: {
        auto p = mqtt::decode_publish(f.header.flags, f.body, version_);
        if (!p) return client_failed(l, "malformed_packet");
        return on_delivery(conn, l, *p, now);
      }
      case mqtt::PacketType::kPubrec: {
        // QoS 2, publisher: PUBREC, then our PUBREL; the exchange ends with PUBCOMP.
        auto ack = mqtt::decode_publish_response(f.header.type, f.body, version_);
        if (!ack || !c.publisher || c.inflight == 0 || o_.qos != 2) return client_failed(l, "unexpected_pubrec");
        if (mqtt::to_byte(ack->reason) >= 0x80) {
          count_failure(fmt::format("pubrec_refused_{:#04x}", mqtt::to_byte(ack->reason)));
          return publish_acknowledged(conn, c, now);
        }
        send_ack(conn, mqtt::PacketType::kPubrel, ack->packet_id);
        return Action::kKeep;
      }
      case mqtt::PacketType::kPubrel: {
        // QoS 2, subscriber: the broker releases what it sent; PUBCOMP ends it.
        auto ack = mqtt::decode_publish_response(f.header.type, f.body, version_);
        if (!ack || !c.subscriber) return client_failed(l, "unexpected_pubrel");
        send_ack(conn, mqtt::PacketType::kPubcomp, ack->packet_id);
        return Action::kKeep;
      }
      case mqtt::PacketType::kDisconnect: {
        auto d = mqtt::decode_disconnect(f.body, version_);
        return client_failed(l, d ? fmt::format("disconnect_{:#04x}", mqtt::to_byte(d->reason)) : "malformed_packet");
      }
      case mqtt::PacketType::kPubcomp:
      case mqtt::PacketType::kPuback: {
        auto ack = mqtt::decode_publish_response(f.header.type, f.body, version_);
        const bool expected = f.header.type == (o_.qos == 2 ? mqtt::PacketType::kPubcomp : mqtt::PacketType::kPuback);
        if (!ack || !c.publisher || c.inflight == 0 || !expected)
          return client_failed(l, f.header.type == mqtt::PacketType::kPuback ? "unexpected_puback" : "unexpected_pubcomp");
        if (mqtt::to_byte(ack->reason) >= 0x80)
          count_failure(fmt::format("puback_refused_{:#04x}", mqtt::to_byte(ack->reason)));
        return publish_acknowledged(conn, c, now);
      }
      case mqtt::PacketType::kPingresp:
        return Action::kKeep;
      default:
        return client_failed(l, "unexpected_packet");
    }
  }

  // A QoS 1/2 publish finished its handshake: the publisher may send the next one.
  Action publish_acknowledged(Connection& conn, Client& c, uint64_t now) {
    --c.inflight;
    --inflight_total_;
    if (sending_ && loop_rate_ <= 0) {
      if (now >= publish_end_ns_) {
        end_publishing();
      } else {
        publish(conn, slot_index(conn), now);
      }
    }
    maybe_finish();
    return Action::kKeep;
  }

  // A client failed during its handshake or broke the protocol: counted once, closed.
  Action client_failed(uint64_t l, std::string_view cause) {
    count_failure(cause);
    settle_client(l, false);
    return Action::kClose;
  }

  void protocol_failure(Connection& conn, bool control, std::string_view cause) {
    if (control) {
      fail_run(fmt::format("control_{}", cause));
      return;
    }
    client_failed(slot_index(conn), cause);
  }

  Action on_open_timeout(Connection& conn, Slot& slot) override {
    const uint64_t l = slot_index(conn);
    const Phase p = clients_[l].phase;
    if (p == Phase::kConnack) return client_failed(l, "connack_timeout");
    if (p == Phase::kSuback) return client_failed(l, "suback_timeout");
    return Action::kKeep;
  }

  void on_lost(Slot& slot) override {
    const uint64_t l = static_cast<uint64_t>(&slot - slots_.data());
    Client& c = clients_[l];
    if (c.phase == Phase::kConnack || c.phase == Phase::kSuback || c.phase == Phase::kTcp) {
      settle_client(l, false);
    } else if (c.publisher && c.inflight > 0) {
      inflight_total_ -= c.inflight;
      count_failure("no_puback", c.inflight);
      c.inflight = 0;
    }
    if (c.phase == Phase::kReady) {
      c.phase = Phase::kFailed;
      if (c.subscriber) remaining_ends_ -= static_cast<int64_t>(lay_.sources_per_subscriber()) - c.ends_seen;
    }
    maybe_finish();
  }

  void settle_client(uint64_t l, bool ok) {
    Client& c = clients_[l];
    if (c.phase == Phase::kReady || c.phase == Phase::kFailed) return;
    c.phase = ok ? Phase::kReady : Phase::kFailed;
    ++settled_;
    if (ok && c.subscriber) ++local_subscribed_;
    if (ok && c.paused) {
      if (Connection* conn = loop().find(slots_[l].id)) conn->pause_reading();
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
    check_settled();
  }

  void check_settled() {
    if (!tcp_settled_ || settled_ < clients_.size() || phase2_ || done()) return;
    phase2_ = true;
    for (const Client& c : clients_) {
      if (c.subscriber && c.phase == Phase::kReady) remaining_ends_ += lay_.sources_per_subscriber();
    }
    // One value per loop: the merged max is when the run's last client was subscribed.
    result_.histogram("time_to_subscribe").record(monotonic_ns() - t0_ns_);
    if (lay_.kind == MqttKind::kConn) {
      hold_timer_ = loop().run_after(ms(o_.hold_s), [this] {
        hold_timer_ = 0;
        finish_loop();
      });
      return;
    }
    if (clients_.empty()) return finish_loop();
    announce();
  }

  // --- the barrier ----------------------------------------------------------------------------
  Action control_packet(Connection& conn, const mqtt::FrameResult& f) {
    switch (f.header.type) {
      case mqtt::PacketType::kConnack: {
        auto ack = mqtt::decode_connack(f.body, version_);
        if (!ack || ack->reason != mqtt::ReasonCode::kSuccess) {
          fail_run(ack ? fmt::format("control_connack_rc_{}", static_cast<int>(mqtt::to_connect_return_code(ack->reason)))
                       : "control_malformed_packet");
          return Action::kClose;
        }
        control_phase_ = Phase::kSuback;
        send_subscribe(conn, lay_.ready_prefix() + "+", mqtt::QoS::k0);
        return Action::kKeep;
      }
      case mqtt::PacketType::kSuback:
        if (control_phase_ == Phase::kSuback) {
          control_phase_ = Phase::kReady;
          conn.set_timeout(0);
          announce();
        }
        return Action::kKeep;
      case mqtt::PacketType::kPublish: {
        auto p = mqtt::decode_publish(f.header.flags, f.body, version_);
        if (!p || !p->topic.starts_with(lay_.ready_prefix())) return Action::kKeep;
        uint64_t first = 0, count = 0;
        std::string_view key = p->topic.substr(lay_.ready_prefix().size());
        std::string_view text = as_text(p->payload);
        if (std::from_chars(key.data(), key.data() + key.size(), first).ec != std::errc{}) return Action::kKeep;
        if (text.empty()) return Action::kKeep;  // a retained message being cleared
        if (std::from_chars(text.data(), text.data() + text.size(), count).ec != std::errc{}) return Action::kKeep;
        ready_[first] = count;
        uint64_t total = 0;
        for (const auto& [k, v] : ready_) total += v;
        if (total >= lay_.clients && !barrier_passed_ && announced_) begin_publishing();
        return Action::kKeep;
      }
      default:
        return Action::kKeep;
    }
  }

  void announce() {
    if (announced_ || !phase2_ || control_phase_ != Phase::kReady || done()) return;
    announced_ = true;
    announced_ns_ = monotonic_ns();
    publish_ready(fmt::format("{}", clients_.size()));
  }

  void publish_ready(const std::string& text) {
    Connection* conn = loop().find(control_);
    if (conn == nullptr) return;
    const std::string topic = lay_.ready_prefix() + std::to_string(ctx_.share.offset);
    mqtt::Publish p;
    p.retain = true;
    p.topic = topic;
    p.payload = ByteView(reinterpret_cast<const std::byte*>(text.data()), text.size());
    wire_.publish(*conn, p);
  }

  // The run cannot go on (the control connection failed, the barrier never passed).
  void fail_run(std::string_view cause) {
    if (done()) return;
    count_failure(cause);
    finish_loop();
  }

  // --- phase 2: publish, deliver -------------------------------------------------------------
  void begin_publishing() {
    barrier_passed_ = true;
    barrier_ns_ = monotonic_ns();
    result_.histogram("barrier_wait").record(barrier_ns_ - announced_ns_);
    if (measuring_) {
      if (auto u = bench::ProcSampler().read_tree(opt().server_pid)) cpu_before_us_ = u->cpu_user_us + u->cpu_system_us;
    }
    publish_end_ns_ = barrier_ns_ + static_cast<uint64_t>(opt().duration_s * 1e9);
    last_delivery_ns_ = barrier_ns_;
    if (local_publishers_ == 0) return;
    sending_ = true;
    if (loop_rate_ > 0 || o_.qos == 0) {
      pace_timer_ = loop().run_every(1, [this] { pace(); });
      pace();
    } else {
      for (uint64_t l = 0; l < clients_.size(); ++l) {
        if (!publisher_ready(l)) continue;
        Connection* conn = loop().find(slots_[l].id);
        for (uint32_t k = 0; conn && k < std::min<uint32_t>(o_.inflight, window_limit()); ++k)
          publish(*conn, l, monotonic_ns());
      }
    }
  }

  bool publisher_ready(uint64_t l) const noexcept {
    return clients_[l].publisher && clients_[l].phase == Phase::kReady && slots_[l].state == SlotState::kOpen;
  }

  void publish(Connection& conn, uint64_t l, uint64_t stamp_ns, bool end = false) {
    Client& c = clients_[l];
    const uint64_t i = conn_number(l);
    BenchPayload bp{lay_.publisher_number(i), end ? kEndSeq : c.seq, end ? c.seq : stamp_ns};
    write_bench_payload(payload_, bp);
    mqtt::Publish p;
    p.qos = static_cast<mqtt::QoS>(o_.qos);
    const std::string& topic = lay_.kind == MqttKind::kFanout ? fanout_topic_ : publish_topic_of(i);
    p.topic = topic;
    if (o_.qos > 0) {
      p.packet_id = c.next_packet_id;
      c.next_packet_id = static_cast<uint16_t>(c.next_packet_id == 0xFFFF ? 1 : c.next_packet_id + 1);
      ++c.inflight;
      ++inflight_total_;
    }
    p.payload = payload_;
    counted(conn, wire_.publish(conn, p));
    c.last_send_ns = monotonic_ns();
    if (!end) {
      ++c.seq;
      result_.add("published");
    }
  }

  const std::string& publish_topic_of(uint64_t i) {
    // p2p: the target's subscribe topic; built once per publisher.
    auto [it, fresh] = publish_topics_.try_emplace(i);
    if (fresh) it->second = lay_.publish_topic(i);
    return it->second;
  }

  // Open loop: every message whose time has come goes out now, stamped with its intended time,
  // from the next ready publisher in turn. Flat out at QoS 0: fill each publisher's socket.
  void pace() {
    if (!sending_) return;
    const uint64_t now = monotonic_ns();
    if (now >= publish_end_ns_) {
      end_publishing();
      return;
    }
    if (loop_rate_ > 0) {
      const double elapsed_ns = static_cast<double>(now - barrier_ns_);
      const uint64_t due = static_cast<uint64_t>(elapsed_ns * loop_rate_ / 1e9) + 1;
      while (scheduled_ < due) {
        const uint64_t intended = barrier_ns_ + static_cast<uint64_t>(static_cast<double>(scheduled_) * 1e9 / loop_rate_);
        ++scheduled_;
        Connection* conn = next_publisher();
        if (conn == nullptr) {
          count_failure("no_open_publisher");
          continue;
        }
        const uint64_t l = slot_index(*conn);
        if (clients_[l].inflight >= window_limit()) {
          count_failure("publisher_window_full");
          continue;
        }
        publish(*conn, l, intended);
      }
      return;
    }
    for (uint64_t l = 0; l < clients_.size(); ++l) {
      if (!publisher_ready(l)) continue;
      Connection* conn = loop().find(slots_[l].id);
      for (uint32_t k = 0; conn && k < kFlatOutPerTick && conn->pending_output_bytes() < kFlatOutQueueBytes; ++k)
        publish(*conn, l, monotonic_ns());
    }
  }

  Connection* next_publisher() {
    for (size_t tries = 0; tries < clients_.size(); ++tries) {
      const uint64_t l = rr_;
      rr_ = (rr_ + 1) % clients_.size();
      if (publisher_ready(l)) {
        if (Connection* c = loop().find(slots_[l].id)) return c;
      }
    }
    return nullptr;
  }

  void end_publishing() {
    if (!sending_) return;
    sending_ = false;
    if (pace_timer_) loop().cancel_timer(pace_timer_);
    pace_timer_ = 0;
    result_.histogram("publish_time").record(monotonic_ns() - barrier_ns_);
    for (uint64_t l = 0; l < clients_.size(); ++l) {
      if (!publisher_ready(l)) continue;
      if (Connection* conn = loop().find(slots_[l].id)) {
        publish(*conn, l, 0, true);
        result_.add("end_markers_sent");
      }
    }
    publish_done_ns_ = monotonic_ns();
    maybe_finish();
  }

  Action on_delivery(Connection& conn, uint64_t l, const mqtt::Publish& p, uint64_t now) {
    Client& c = clients_[l];
    if (!c.subscriber || c.phase != Phase::kReady || lay_.kind == MqttKind::kConn)
      return client_failed(l, "unexpected_publish");
    if (p.qos == mqtt::QoS::k1) send_ack(conn, mqtt::PacketType::kPuback, p.packet_id);
    if (p.qos == mqtt::QoS::k2) send_ack(conn, mqtt::PacketType::kPubrec, p.packet_id);
    if (done()) return Action::kKeep;  // late, after this loop reported
    const uint64_t i = conn_number(l);
    const std::string& want = lay_.kind == MqttKind::kFanout ? fanout_topic_ : topics_[subscriber_rank(l)];
    if (p.topic != want) {
      count_failure("wrong_topic");
      return Action::kKeep;
    }
    auto bp = read_bench_payload(p.payload);
    if (!bp || p.payload.size() != payload_.size()) {
      count_failure("payload_mismatch");
      return Action::kKeep;
    }
    uint32_t source = 0;
    if (lay_.kind == MqttKind::kFanout) {
      if (bp->publisher >= lay_.publishers) {
        count_failure("wrong_publisher");
        return Action::kKeep;
      }
      source = bp->publisher;
    } else if (bp->publisher != p2p_source(i, lay_.clients)) {
      count_failure("wrong_publisher");
      return Action::kKeep;
    }
    uint32_t& next = next_seq_[l * lay_.sources_per_subscriber() + source];
    if (bp->is_end()) {
      ++c.ends_seen;
      --remaining_ends_;
      result_.add("end_markers_received");
      if (bp->stamp > next) result_.add("lost_at_end", static_cast<int64_t>(bp->stamp - next));
      maybe_finish();
      return Action::kKeep;
    }
    if (bp->stamp > now) {
      count_failure("stamp_in_future");
      return Action::kKeep;
    }
    uint32_t gap = 0;
    const SeqVerdict v = check_sequence(next, bp->seq, gap);
    if (v == SeqVerdict::kDuplicate) {
      result_.add("duplicates");
      return Action::kKeep;
    }
    if (v == SeqVerdict::kAfterGap) result_.add("lost_in_gaps", gap);
    result_.histogram("delivery").record(now - bp->stamp);
    result_.add(bench::kCounterOps);
    live_.bump(live_.ops);
    last_delivery_ns_ = now;
    return Action::kKeep;
  }

  // p2p keeps one topic string per local subscriber, in slot order (every p2p client subscribes).
  static uint64_t subscriber_rank(uint64_t l) noexcept { return l; }

  // --- the end -------------------------------------------------------------------------------
  void tick() {
    if (done()) return;
    const uint64_t now = monotonic_ns();
    ++ticks_;
    if (o_.keep_alive_s > 0 && ticks_ % (1000 / kTickMs) == 0) ping_idle(now);
    if (lay_.kind == MqttKind::kConn) return;
    if (announced_ && !barrier_passed_) {
      if (ticks_ % (1000 / kTickMs) == 0) {
        // Asking again returns every retained ready message: covers a broker that let one slip
        // between storing it and matching the new subscription.
        if (Connection* conn = loop().find(control_)) send_subscribe(*conn, lay_.ready_prefix() + "+", mqtt::QoS::k0);
      }
      const double waited_s = static_cast<double>(now - announced_ns_) / 1e9;
      if (waited_s > opt().connect_timeout_s + opt().reply_timeout_s + opt().duration_s) fail_run("barrier_timeout");
      return;
    }
    if (sending_ && now >= publish_end_ns_) end_publishing();
    if (!resumed_ && now >= publish_end_ns_) resume_slow_subscribers();
    maybe_finish();
  }

  void ping_idle(uint64_t now) {
    const uint64_t every_ns = static_cast<uint64_t>(o_.keep_alive_s) * 500'000'000u;
    for (uint64_t l = 0; l < clients_.size(); ++l) {
      Client& c = clients_[l];
      if (c.phase != Phase::kReady || now - c.last_send_ns < every_ns) continue;
      if (Connection* conn = loop().find(slots_[l].id)) {
        counted(*conn, wire_.pingreq(*conn));
        c.last_send_ns = now;
      }
    }
    if (Connection* conn = loop().find(control_); conn != nullptr && o_.keep_alive_s > 0) {
      // The control connection connected with the same keep-alive.
      if (now - control_ping_ns_ >= every_ns) {
        wire_.pingreq(*conn);
        control_ping_ns_ = now;
      }
    }
  }

  // The slow subscribers read again once publishing is over, and take what the broker kept.
  void resume_slow_subscribers() {
    resumed_ = true;
    for (uint64_t l = 0; l < clients_.size(); ++l) {
      if (!clients_[l].paused) continue;
      clients_[l].paused = false;
      if (Connection* conn = loop().find(slots_[l].id)) conn->resume_reading();
    }
  }

  void maybe_finish() {
    if (done() || !barrier_passed_ || sending_) return;
    const uint64_t now = monotonic_ns();
    const bool acked = inflight_total_ == 0;
    const bool all_ends = remaining_ends_ <= 0;
    const uint64_t quiet_since = std::max({last_delivery_ns_, publish_end_ns_, publish_done_ns_});
    const bool quiet = now > quiet_since && static_cast<double>(now - quiet_since) / 1e9 >= o_.drain_s;
    if (acked && all_ends) return finish_loop();
    if (quiet) {
      if (!acked) count_failure("no_puback", inflight_total_);
      if (!all_ends) result_.add("end_markers_missing", remaining_ends_);
      inflight_total_ = 0;
      finish_loop();
    }
  }

  void finish_loop() {
    if (done()) return;
    for (uint64_t* t : {&tick_timer_, &pace_timer_, &hold_timer_}) {
      if (*t) loop().cancel_timer(*t);
      *t = 0;
    }
    if (sending_) {
      sending_ = false;
      result_.histogram("publish_time").record(monotonic_ns() - barrier_ns_);
    }
    if (barrier_passed_) {
      result_.histogram("deliver_time").record(std::max(last_delivery_ns_, barrier_ns_) - barrier_ns_);
      if (measuring_ && cpu_before_us_ > 0) {
        if (auto u = bench::ProcSampler().read_tree(opt().server_pid)) {
          result_.add("phase_server_cpu_us", static_cast<int64_t>(u->cpu_user_us + u->cpu_system_us - cpu_before_us_));
          result_.add("phase_ms", static_cast<int64_t>((monotonic_ns() - barrier_ns_) / 1'000'000));
        }
      }
    }
    if (announced_) publish_ready("");  // clears the retained message
    if (!resumed_) resume_slow_subscribers();
    result_.add("subscribers_ready", static_cast<int64_t>(local_subscribed_));
    finish();
  }

  void on_stop() override {
    for (uint64_t* t : {&tick_timer_, &pace_timer_, &hold_timer_}) {
      if (*t) loop().cancel_timer(*t);
      *t = 0;
    }
    if (inflight_total_ > 0) count_failure("stopped_before_puback", inflight_total_);
    inflight_total_ = 0;
    if (sending_) result_.histogram("publish_time").record(monotonic_ns() - barrier_ns_);
    sending_ = false;
    result_.add("subscribers_ready", static_cast<int64_t>(local_subscribed_));
  }

  MqttOptions o_;
  MqttLayout lay_;
  const mqtt::ProtocolVersion version_;
  uint16_t server_receive_max_ = 65535;  // 5.0: the least Receive Maximum a CONNACK announced
  std::vector<Client> clients_;
  std::vector<uint32_t> next_seq_;  // [local subscriber][source]: next sequence expected
  std::vector<std::string> topics_;  // p2p: each local client's own topic
  std::map<uint64_t, std::string> publish_topics_;
  std::string fanout_topic_;
  std::vector<std::byte> payload_;
  MqttClientWire wire_;
  uint64_t local_publishers_ = 0;
  uint64_t settled_ = 0;
  uint64_t local_subscribed_ = 0;
  int64_t remaining_ends_ = 0;  // end markers this loop's subscribers still expect
  bool resumed_ = false;
  bool tcp_settled_ = false, phase2_ = false;

  ConnId control_;
  Phase control_phase_ = Phase::kTcp;
  std::map<uint64_t, uint64_t> ready_;  // first client number of a loop -> its settled clients
  bool announced_ = false, barrier_passed_ = false;
  uint64_t announced_ns_ = 0, barrier_ns_ = 0, publish_end_ns_ = 0, publish_done_ns_ = 0;
  uint64_t last_delivery_ns_ = 0, control_ping_ns_ = 0;

  double loop_rate_ = 0;
  bool sending_ = false;
  uint64_t scheduled_ = 0;
  size_t rr_ = 0;
  int64_t inflight_total_ = 0;
  uint64_t ticks_ = 0;
  uint64_t tick_timer_ = 0, pace_timer_ = 0, hold_timer_ = 0;
  bool measuring_ = false;
  uint64_t cpu_before_us_ = 0;
};

}  // namespace

std::string MqttLayout::subscribe_topic(uint64_t i) const {
  switch (kind) {
    case MqttKind::kConn:
      return fmt::format("bench/{}/cmd", i);
    case MqttKind::kFanout:
      return fmt::format("tb/{:x}/fanout", run);
    case MqttKind::kP2p:
      return fmt::format("tb/{:x}/p2p/{}", run, i);
  }
  return {};
}

std::string MqttLayout::publish_topic(uint64_t i) const {
  return kind == MqttKind::kP2p ? subscribe_topic(p2p_target(i, clients)) : subscribe_topic(0);
}

std::string MqttLayout::ready_prefix() const { return fmt::format("tb/{:x}/ready/", run); }

void MqttWorkload::add_options(CLI::App& cmd) {
  cmd.add_option("--keep-alive", o_.keep_alive_s,
                 "Keep-alive in CONNECT, seconds (0: none); a PINGREQ goes out every half of it")
      ->capture_default_str();
  cmd.add_option("--qos", o_.qos, "QoS of SUBSCRIBE and PUBLISH (2: the full PUBREC/PUBREL/PUBCOMP exchange)")
      ->check(CLI::Range(0, 2))
      ->capture_default_str();
  cmd.add_option_function<std::string>(
         "--mqtt-version",
         [this](const std::string& v) {
           o_.version = v == "5" || v == "5.0" ? mqtt::ProtocolVersion::kV5 : mqtt::ProtocolVersion::kV311;
         },
         "MQTT version the clients speak: 3.1.1 or 5 (default 3.1.1)")
      ->check(CLI::IsMember({"3.1.1", "5", "5.0"}));
  cmd.add_option("--username", o_.username, "User name in every CONNECT (also the control connections')");
  cmd.add_option("--password", o_.password, "Password in every CONNECT");
  cmd.add_flag("--persistent-sessions", o_.persistent,
               "CONNECT with CleanSession 0: the server keeps every client's session (and, with "
               "persistence.dir, writes it to disk)");
  if (!publishing()) {
    cmd.add_option("--hold", o_.hold_s, "Seconds to hold the clients once all are subscribed")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    return;
  }
  cmd.add_option("--publish-rate", o_.publish_rate,
                 "PUBLISH per second over all publishers, open loop (latency from the intended "
                 "send time); 0: as fast as possible")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--payload", o_.payload, "PUBLISH payload bytes (16-byte header + pattern)")
      ->check(CLI::Range(static_cast<uint32_t>(kMessageHeaderBytes), 1u << 20))
      ->capture_default_str();
  cmd.add_option("--inflight", o_.inflight, "QoS 1 as fast as possible: unacknowledged PUBLISH per publisher")
      ->check(CLI::Range(1u, 1000u))
      ->capture_default_str();
  cmd.add_option("--drain", o_.drain_s, "After publishing, stop waiting once nothing arrived for this long (s)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--slow-subscribers", o_.slow_subscribers,
                 "The first K subscribers stop reading while publishing (a slow consumer)")
      ->check(CLI::NonNegativeNumber);
}

nlohmann::json MqttWorkload::parameters() const {
  nlohmann::json j{{"keep_alive_s", o_.keep_alive_s},
                   {"qos", o_.qos},
                   {"protocol", o_.version == mqtt::ProtocolVersion::kV5 ? "mqtt-5.0" : "mqtt-3.1.1"}};
  if (!o_.username.empty()) j["username"] = o_.username;
  j["persistent_sessions"] = o_.persistent;
  if (!publishing()) {
    j["hold_s"] = o_.hold_s;
    return j;
  }
  j["publish_rate"] = o_.publish_rate;
  j["mode"] = o_.publish_rate > 0 ? "open_loop" : "as_fast_as_possible";
  j["payload_bytes"] = o_.payload;
  j["inflight"] = o_.inflight;
  j["drain_s"] = o_.drain_s;
  j["slow_subscribers"] = o_.slow_subscribers;
  if (kind_ == MqttKind::kFanout) {
    j["subscribers"] = o_.subscribers;
    j["publishers"] = o_.publishers;
  }
  return j;
}

uint32_t MqttWorkload::run_id(const CommonOptions& c) {
  return static_cast<uint32_t>(c.is_worker() ? ::getppid() : ::getpid());
}

MqttLayout MqttWorkload::layout(const CommonOptions& c) const {
  MqttLayout l;
  l.kind = kind_;
  l.clients = static_cast<uint64_t>(c.connections);
  if (kind_ == MqttKind::kFanout) {
    l.subscribers = static_cast<uint64_t>(o_.subscribers);
    l.publishers = static_cast<uint64_t>(o_.publishers);
  } else if (kind_ == MqttKind::kP2p) {
    l.publishers = l.clients;
  }
  l.run = run_id(c);
  return l;
}

std::unique_ptr<LoopDriver> MqttWorkload::make_driver(const DriverContext& ctx) {
  return std::make_unique<MqttDriver>(ctx, o_, layout(*ctx.options));
}

void MqttWorkload::finalize(bench::RunResult& r, const CommonOptions& c) const {
  finalize_connect_rate(r);
  add_per_second(r, "time_to_subscribe", "subscribed", "subscribes_per_s");
  if (!publishing()) return;
  const MqttLayout lay = layout(c);
  const int64_t published = r.counter("published");
  const int64_t subscribed = r.counter("subscribed");
  const int64_t expected = lay.kind == MqttKind::kFanout ? published * subscribed : published;
  const int64_t delivered = r.counter(bench::kCounterOps);
  r.counters["deliveries"] = delivered;
  r.counters["expected_deliveries"] = expected;
  r.counters["lost"] = std::max<int64_t>(0, expected - delivered);
  add_per_second(r, "publish_time", "published", "publishes_per_s");
  add_per_second(r, "deliver_time", bench::kCounterOps, "deliveries_per_s");
  if (r.counter("phase_server_cpu_us") > 0 && delivered > 0) {
    r.counters["phase_server_cpu_ns_per_delivery"] = static_cast<int64_t>(
        static_cast<double>(r.counter("phase_server_cpu_us")) * 1000.0 / static_cast<double>(delivered) + 0.5);
  }
}

}  // namespace tcpms::benchapp
