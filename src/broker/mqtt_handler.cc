#include "broker/mqtt_handler.h"

#include <algorithm>
#include <cstring>
#include <ctime>
#include <tuple>

#include <spdlog/spdlog.h>

#include "broker/pending_connect.h"
#include "tcpms/server.h"
#include "tcpms/worker_pool.h"

namespace tcpms::broker {

using mqtt::PacketType;
using mqtt::PropertyId;
using mqtt::ProtocolVersion;
using mqtt::QoS;
using mqtt::ReasonCode;

// Inbound Topic Aliases a 5.0 client may define per connection (CONNACK Topic Alias Maximum).
// The table is allocated on the first alias, 16 bytes an entry.
constexpr uint32_t kTopicAliasMaximum = 16;
// Longest single loop timer; longer session expiries and will delays re-arm until due.
constexpr uint64_t kMaxTimerMs = 1ull << 30;

// Password checks queued on the worker pool past which a CONNECT is refused at once with
// "server unavailable" (CONNACK 3) rather than waiting behind a login storm.
constexpr size_t kMaxQueuedAuthChecks = 10000;

// Everything a session handover carries between loops. If a task carrying it is dropped
// (loop stopping), the destructor takes the session out of the registry, then frees it, so
// no registry entry is left pointing at freed memory.
struct MqttHandler::Handover {
  ClientRegistry* registry = nullptr;
  std::string client_id;
  Session* session = nullptr;
  uint32_t from_loop = 0;
  uint32_t to_loop = 0;
  ConnId new_conn;
  PendingConnect* pending = nullptr;  // only compared, never dereferenced, off its loop
  bool clean = true;
  bool ends_with_connection = true;  // CleanSession 1, or 5.0 Session Expiry Interval 0
  bool present = false;
  // filter, QoS, SubRecord::options, SubRecord::subscription_id
  std::vector<std::tuple<std::string, QoS, uint8_t, uint32_t>> filters;
  bool attached = false;
  ~Handover() {
    if (session != nullptr && attached == false && moved) {
      if (registry != nullptr) registry->remove(client_id, session);
      delete session;
    }
  }
  bool moved = false;  // set once the owner has let go of the session
};

namespace {

inline ConnStateKind kind_of(void* user) { return *static_cast<const ConnStateKind*>(user); }

inline bool is_sys_topic(std::string_view t) { return t.starts_with("$SYS/") || t == "$SYS"; }

inline QoS min_qos(QoS a, QoS b) { return static_cast<uint8_t>(a) < static_cast<uint8_t>(b) ? a : b; }

mqtt::PublishResponse ack_packet(PacketType type, uint16_t packet_id) {
  mqtt::PublishResponse r;
  r.type = type;
  r.packet_id = packet_id;
  return r;
}

// A Subscription Identifier property (0x0B, Variable Byte Integer) for each id.
SharedBytes encode_sub_ids(const uint32_t* ids, size_t n) {
  std::vector<std::byte> out;
  out.reserve(n * 5);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(std::byte{0x0B});
    uint32_t v = ids[i];
    do {
      uint8_t b = v & 0x7F;
      v >>= 7;
      out.push_back(static_cast<std::byte>(v ? (b | 0x80) : b));
    } while (v != 0);
  }
  return SharedBytes::copy_of(ByteView(out.data(), out.size()));
}

// Appends one decoded property to `b` as it was (User Properties keep their order).
void copy_property(mqtt::PropertyBuilder& b, const mqtt::Property& pr) {
  switch (mqtt::property_type(static_cast<uint8_t>(pr.id))) {
    case mqtt::PropertyType::kByte:
    case mqtt::PropertyType::kTwoByte:
    case mqtt::PropertyType::kFourByte:
    case mqtt::PropertyType::kVarInt:
      b.add(pr.id, pr.number);
      break;
    case mqtt::PropertyType::kUtf8:
      b.add(pr.id, pr.text);
      break;
    case mqtt::PropertyType::kBinary:
      b.add_binary(pr.id, pr.binary);
      break;
    case mqtt::PropertyType::kUtf8Pair:
      b.add_user_property(pr.text, pr.text2);
      break;
    case mqtt::PropertyType::kInvalid:
      break;
  }
}

}  // namespace

MqttHandler::MqttHandler(Broker& broker, EventLoop& loop)
    : broker_(broker),
      loop_(loop),
      cfg_(broker.config()),
      rate_limited_(cfg_.client_messages_per_s > 0 || cfg_.client_bytes_per_s > 0) {
  tree_.set_filter_events(broker_.router().wants_filter_events());
}

MqttHandler::~MqttHandler() {
  // Offline persistent sessions still owned by this loop (connected ones were closed by the
  // loop's destructor, which ran on_close for each).
  std::vector<Session*> owned;
  broker_.registry().for_each_owned_by(loop_.index(), [&](const RegistryEntry& e) {
    owned.push_back(e.session);
  });
  for (Session* s : owned) {
    broker_.registry().remove(s->client_id(), s);
    while (!s->subs.empty()) tree_.remove(s, &s->subs[s->subs.size() - 1]);
    delete s;
  }
}

// --- engine callbacks -------------------------------------------------------------------------

Action MqttHandler::on_open(Connection& conn) {
  // Connection rates: one getpeername and a bucket in a bounded shared table; nothing is
  // kept per connection.
  if (broker_.connect_limits_enabled()) {
    sockaddr_storage peer{};
    if (conn.peer_address(peer) && !broker_.admit_connection(peer)) {
      stats_.connects_over_rate.add();
      return Action::kClose;
    }
  }
  // A CONNECT must arrive within the deadline (Mosquitto has none by default; a peer that
  // opens sockets and says nothing would hold them forever).
  conn.set_timeout(cfg_.connect_timeout_ms);
  return Action::kKeep;
}

DataResult MqttHandler::on_data(Connection& conn, ByteView data) {
  Action action = Action::kKeep;
  size_t used = process(conn, data, action);
  return {used, action};
}

size_t MqttHandler::process(Connection& c, ByteView data, Action& action) {
  size_t off = 0;
  while (off < data.size()) {
    void* user = c.user_data();
    if (user != nullptr && kind_of(user) == ConnStateKind::kPendingConnect) {
      // Reading is paused while the CONNECT is decided. What came behind it stays with the
      // engine (bounded by its input limit), which presents it again when reading resumes.
      return off;
    }
    mqtt::FrameResult f = mqtt::next_frame(data.subspan(off), cfg_.max_packet_size);
    if (f.status == mqtt::FrameStatus::kNeedMore) break;
    if (f.status == mqtt::FrameStatus::kError) {
      action = violation(c, f.error.what, f.error.code);  // 5.0: 0x81, or 0x95 too large
      return data.size();
    }
    if (rate_limited_ && f.header.type == PacketType::kPublish && user != nullptr &&
        !admit_publish(c, *static_cast<Session*>(user), f.header.packet_size())) {
      return off;  // reading paused; the rest is presented again when it resumes
    }
    off += f.header.packet_size();
    Action a = handle_packet(c, f.header, f.body);
    if (a != Action::kKeep) {
      action = a;
      return data.size();
    }
  }
  return off;
}

bool MqttHandler::admit_publish(Connection& c, Session& s, size_t bytes) {
  using Clock = auth::TokenBucket::Clock;
  const auth::TokenBucketLimits msgs{cfg_.client_messages_per_s, cfg_.client_message_burst};
  const auth::TokenBucketLimits data{cfg_.client_bytes_per_s, cfg_.client_bytes_burst};
  const bool msgs_on = msgs.rate_per_s > 0, data_on = data.rate_per_s > 0;
  const auto now = Clock::now();
  SessionExtra& x = s.extra_ref();
  if (!x.rate) {
    x.rate = std::make_unique<ClientRate>(
        ClientRate{auth::TokenBucket(msgs.burst, now), auth::TokenBucket(data.burst, now)});
  }
  ClientRate& r = *x.rate;
  // A packet larger than the byte burst costs the whole burst (it could never pass otherwise).
  const double cost = std::min(static_cast<double>(bytes), data.burst);
  if (!msgs_on || r.messages.try_take(msgs, 1, now)) {
    if (!data_on || r.bytes.try_take(data, cost, now)) return true;
    if (msgs_on) r.messages.give_back(msgs, 1, now);
  }
  Clock::duration wait = Clock::duration::zero();
  if (msgs_on) wait = std::max(wait, r.messages.wait_for(msgs, 1, now));
  if (data_on) wait = std::max(wait, r.bytes.wait_for(data, cost, now));
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(
                std::min<Clock::duration>(wait, std::chrono::seconds(1)))
                .count();
  // Over its rate: stop reading (TCP pushes back on the client) and look again once its
  // bucket has refilled. Nothing is dropped.
  stats_.rate_limit_pauses.add();
  c.pause_reading();
  ConnId id = c.id();
  loop_.run_after(static_cast<uint32_t>(std::max<int64_t>(ms, 1)), [this, id] {
    Connection* cc = loop_.find(id);
    if (cc != nullptr && cc->user_data() != nullptr &&
        kind_of(cc->user_data()) == ConnStateKind::kSession)
      after_async(*cc, Action::kKeep);
  });
  return false;
}

Action MqttHandler::on_timeout(Connection& conn) {
  void* user = conn.user_data();
  if (user == nullptr || kind_of(user) == ConnStateKind::kPendingConnect) {
    stats_.connect_timeouts.add();
    spdlog::debug("mqtt: no CONNECT within {} ms; closing", cfg_.connect_timeout_ms);
    return Action::kClose;
  }
  // 1.5 x Keep Alive without a packet: close as if the network failed, so the will is
  // published [MQTT-3.1.2-24].
  stats_.keepalive_expired.add();
  Session& s = *static_cast<Session*>(user);
  spdlog::debug("mqtt: client {} keep-alive expired", s.client_id());
  if (s.is_v5()) {
    send_disconnect(conn, ReasonCode::kKeepAliveTimeout);  // 5.0 §3.1.2.10
    return Action::kCloseAfterFlush;
  }
  return Action::kClose;
}

Action MqttHandler::on_shutdown(Connection& conn) {
  void* user = conn.user_data();
  if (user != nullptr && kind_of(user) == ConnStateKind::kSession &&
      static_cast<Session*>(user)->is_v5())
    send_disconnect(conn, ReasonCode::kServerShuttingDown);
  return Action::kCloseAfterFlush;
}

void MqttHandler::on_writable(Connection& conn) {
  void* user = conn.user_data();
  if (user != nullptr && kind_of(user) == ConnStateKind::kSession) pump(*static_cast<Session*>(user));
}

void MqttHandler::on_close(Connection& conn, CloseReason reason) {
  void* user = conn.user_data();
  if (user == nullptr) return;
  conn.set_user_data(nullptr);
  if (kind_of(user) == ConnStateKind::kPendingConnect) {
    delete static_cast<PendingConnect*>(user);
    return;
  }
  Session& s = *static_cast<Session*>(user);
  // The will goes out on any loss but DISCONNECT [MQTT-3.1.2-8], [MQTT-3.14.4-3]; not when
  // the whole server stops.
  detach_connection(s, reason != CloseReason::kShutdown);
}

// --- input ------------------------------------------------------------------------------------

Action MqttHandler::violation(Connection& c, const char* what, ReasonCode code) {
  // A protocol violation costs only this connection [MQTT-4.8.0-1].
  stats_.protocol_violations.add();
  void* user = c.user_data();
  Session* s = (user != nullptr && kind_of(user) == ConnStateKind::kSession)
                   ? static_cast<Session*>(user)
                   : nullptr;
  std::string_view who = s != nullptr ? s->client_id() : std::string_view("(not connected)");
  spdlog::debug("mqtt: client {}: protocol violation: {} ({}); closing", who, what,
                mqtt::reason_code_name(code));
  if (s != nullptr && s->is_v5()) {
    // 5.0: say why before closing [MQTT-4.13.1-1] (never before CONNACK: s is set once
    // CONNACK went out).
    send_disconnect(c, code);
    return Action::kCloseAfterFlush;
  }
  return Action::kClose;
}

Action MqttHandler::handle_packet(Connection& c, const mqtt::FixedHeader& h, mqtt::Bytes body) {
  stats_.packets_in[static_cast<uint8_t>(h.type) & 15].add();
  void* user = c.user_data();
  if (user == nullptr) {
    if (h.type != PacketType::kConnect) return violation(c, "first packet is not CONNECT [MQTT-3.1.0-1]");
    return handle_connect(c, body);
  }
  Session& s = *static_cast<Session*>(user);
  switch (h.type) {
    case PacketType::kPublish:
      return handle_publish(c, s, h, body);
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp:
      return handle_ack(c, s, h.type, body);
    case PacketType::kSubscribe:
      return handle_subscribe(c, s, body);
    case PacketType::kUnsubscribe:
      return handle_unsubscribe(c, s, body);
    case PacketType::kPingreq:
      send_packet(c, mqtt::Pingresp{}, s.version, PacketType::kPingresp);  // [MQTT-3.12.4-1]
      return Action::kKeep;
    case PacketType::kDisconnect:
      return handle_disconnect(c, s, body);
    case PacketType::kConnect:
      return violation(c, "second CONNECT [MQTT-3.1.0-2]");
    default:
      return violation(c, "packet a client may not send");
  }
}

Action MqttHandler::handle_disconnect(Connection& c, Session& s, mqtt::Bytes body) {
  auto d = mqtt::decode_disconnect(body, s.version);
  if (!d) return violation(c, d.error().what, d.error().code);
  if (s.is_v5()) {
    if (auto e = d->properties.number(PropertyId::kSessionExpiryInterval)) {
      SessionExtra& x = s.extra_ref();
      if (x.session_expiry_s == 0 && *e != 0)
        return violation(c, "DISCONNECT sets a Session Expiry Interval after 0 [MQTT-3.14.2-2]");
      x.session_expiry_s = *e;
      s.clean = (*e == 0);  // 0: the session ends with this connection
    }
    // Only a normal disconnection discards the will; 0x04 (and any error reason) keeps it
    // [MQTT-3.14.4-3].
    if (d->reason != ReasonCode::kSuccess) return Action::kClose;
  }
  s.disconnected = true;  // discard the will [MQTT-3.14.4-3]
  s.take_will();
  return Action::kClose;
}

Action MqttHandler::handle_connect(Connection& c, mqtt::Bytes body) {
  auto d = mqtt::decode_connect(body);
  if (!d) {
    if (d.error().code == mqtt::ReasonCode::kUnsupportedProtocolVersion) {
      // Answer CONNACK 0x01 and close [MQTT-3.1.2-2]; a 5.0 peer gets its own form.
      auto v = mqtt::peek_connect_version(body).value_or(ProtocolVersion::kV311);
      send_connack(c, v, false, is_v5(v) ? 0x84 : 0x01);
      stats_.protocol_violations.add();
      return Action::kCloseAfterFlush;
    }
    // Malformed CONNECT: close without CONNACK [MQTT-3.1.4-1].
    return violation(c, d.error().what);
  }
  const mqtt::Connect& k = *d;
  auto refuse = [&](uint8_t code, const char* why) {
    // A refused CONNECT gets session present 0 [MQTT-3.2.2-4] and the connection closes
    // [MQTT-3.2.2-5].
    spdlog::debug("mqtt: CONNECT from '{}' refused ({}): {}", k.client_id, code, why);
    stats_.connects_refused.add();
    send_connack(c, k.version, false, code);
    return Action::kCloseAfterFlush;
  };
  const bool v5 = is_v5(k.version);
  if (v5 && k.properties.find(PropertyId::kAuthenticationMethod)) {
    // No enhanced authentication here (5.0 §4.12): refuse with 0x8C [MQTT-4.12.0-1].
    spdlog::debug("mqtt: CONNECT from '{}' refused: Authentication Method not supported",
                  k.client_id);
    stats_.connects_refused.add();
    send_connack_v5(c, false, ReasonCode::kBadAuthenticationMethod);
    return Action::kCloseAfterFlush;
  }
  std::string client_id(k.client_id);
  bool assigned = false;
  if (client_id.empty()) {
    // 3.1.1: a zero-byte id needs CleanSession 1 [MQTT-3.1.3-7], [MQTT-3.1.3-8]; 3.1 requires
    // an id. 5.0 allows it with either Clean Start [MQTT-3.1.3-6].
    if ((!v5 && !k.clean_start) || k.version == ProtocolVersion::kV31 ||
        !cfg_.allow_zero_length_client_id)
      return refuse(0x02, "empty client id");
    client_id = cfg_.client_id_prefix + std::to_string(broker_.next_client_number());  // [MQTT-3.1.3-6]
    assigned = true;
  }
  if (client_id.size() > cfg_.max_client_id_len)
    return refuse(0x02, "client id longer than --max-client-id-len [MQTT-3.1.3-9]");
  std::unique_ptr<Will> will;
  if (k.will) {
    if (mqtt::validate_topic_name(k.will->topic, cfg_.max_topic_levels) != mqtt::TopicError::kOk)
      return refuse(0x05, "will topic over --max-topic-levels");
    std::optional<std::string_view> user;
    if (k.username) user = *k.username;
    if (is_sys_topic(k.will->topic) || !broker_.authorizer().can_publish({client_id, user}, k.will->topic))
      return refuse(0x05, "will topic not authorized");
    will = std::make_unique<Will>();
    will->topic = SharedBytes::copy_of(as_bytes(k.will->topic));
    will->payload = SharedBytes::copy_of(k.will->payload);
    will->qos = k.will->qos;
    will->retain = k.will->retain;
    if (v5 && !k.will->properties.empty()) {
      will->props = message_props(k.will->properties, 0).wire;
      will->expiry_s = k.will->properties.number(PropertyId::kMessageExpiryInterval).value_or(0);
      will->delay_s = k.will->properties.number(PropertyId::kWillDelayInterval).value_or(0);
    }
  }
  auto* p = new PendingConnect;
  p->version = k.version;
  p->clean = k.clean_start;
  p->keep_alive_s = k.keep_alive_s;
  p->client_id = std::move(client_id);
  p->will = std::move(will);
  p->assigned_id = assigned;
  if (v5) {
    // Topic Alias Maximum: we send no aliases. Request Problem / Response Information: we send
    // no Reason String and no Response Information. User Properties: accepted, not used.
    p->session_expiry_s = k.properties.number(PropertyId::kSessionExpiryInterval).value_or(0);
    p->max_packet_size = k.properties.number(PropertyId::kMaximumPacketSize).value_or(0);
    p->receive_maximum = static_cast<uint16_t>(
        k.properties.number(PropertyId::kReceiveMaximum).value_or(65535));
  }
  if (k.username && broker_.authorizer().uses_username()) p->username = std::string(*k.username);
  c.set_user_data(p);

  Authenticator& auth = broker_.authenticator();
  if (!auth.enabled()) return continue_connect(c, p);

  // Hashing is slow: check on the worker pool, continue here. The connect deadline still runs.
  if (broker_.server().workers().queued() >= kMaxQueuedAuthChecks) {
    stats_.connects_refused.add();
    if (is_v5(p->version))
      send_connack_v5(c, false, ReasonCode::kServerBusy);
    else
      send_connack(c, p->version, false, 0x03);  // server unavailable [MQTT-3.2.2.3]
    return Action::kCloseAfterFlush;
  }
  c.pause_reading();
  p->auth_cancelled = std::make_shared<std::atomic<bool>>(false);
  auto info = std::make_shared<ConnectInfo>();
  info->client_id = p->client_id;
  if (k.username) info->username = std::string(*k.username);
  if (k.password) info->password = std::string(as_chars(*k.password));
  info->version = k.version;
  if (!c.peer_address(info->peer)) info->peer.ss_family = AF_UNSPEC;
  auto result = std::make_shared<AuthResult>(AuthResult::kAccept);
  ConnId id = c.id();
  broker_.server().workers().offload(
      loop_,
      [info, result, &auth, cancelled = p->auth_cancelled] {
        if (!cancelled->load(std::memory_order_relaxed)) *result = auth.check(*info);
      },
      [this, id, p, result] {
        Connection* cc = loop_.find(id);
        if (cc == nullptr || cc->user_data() != p) return;  // gone meanwhile
        if (*result != AuthResult::kAccept) {
          spdlog::debug("mqtt: CONNECT from '{}' refused by the authenticator", p->client_id);
          stats_.connects_refused.add();
          send_connack(*cc, p->version, false, static_cast<uint8_t>(*result));
          cc->close_after_flush();
          return;
        }
        after_async(*cc, continue_connect(*cc, p));
      });
  return Action::kKeep;
}

Action MqttHandler::continue_connect(Connection& c, PendingConnect* p) {
  Session* fresh = nullptr;
  auto claim = broker_.registry().claim(p->client_id, loop_.index(), c.id(), [&] {
    fresh = new Session(p->client_id);
    return fresh;
  });
  switch (claim.kind) {
    case ClientRegistry::ClaimKind::kCreated:
      // Another process may hold the session (worker processes, cluster nodes).
      if (!p->clean && broker_.router().shares_sessions()) return fetch_session(c, fresh, p);
      return attach(c, fresh, p, false);  // no stored session [MQTT-3.2.2-3]
    case ClientRegistry::ClaimKind::kLocal: {
      Session* s = claim.entry.session;
      if (s->conn != nullptr) {
        // Session takeover: the existing client is disconnected [MQTT-3.1.4-2].
        Connection* old = s->conn;
        const bool was_clean = s->clean;
        const bool old_v5 = s->is_v5();
        stats_.takeovers.add();
        if (old_v5) send_disconnect(*old, ReasonCode::kSessionTakenOver);
        detach_connection(*s, true);  // frees a clean session
        if (old_v5)
          old->close_after_flush();  // the DISCONNECT 0x8E goes out first
        else
          old->close(CloseReason::kKicked);
        if (was_clean) return continue_connect(c, p);  // claim again for a fresh one
      }
      const bool reset = p->clean || s->clean;  // [MQTT-3.1.2-6]
      if (reset) {
        reset_session(*s);
        // The stored session ends here (a new one starts with this connection).
        broker_.router().on_session_ended(s->client_id());
      }
      return attach(c, s, p, !reset);  // [MQTT-3.2.2-2]
    }
    case ClientRegistry::ClaimKind::kBusy: {
      // The session is moving between loops: ask again in a moment.
      c.pause_reading();
      ConnId id = c.id();
      loop_.run_after(5, [this, id, p] {
        Connection* cc = loop_.find(id);
        if (cc != nullptr && cc->user_data() == p) after_async(*cc, continue_connect(*cc, p));
      });
      return Action::kKeep;
    }
    case ClientRegistry::ClaimKind::kRemote: {
      MqttHandler* owner = broker_.handler_for(claim.entry.loop);
      if (owner == nullptr) return violation(c, "registry names an unknown loop");
      c.pause_reading();
      auto h = std::make_shared<Handover>();
      h->registry = &broker_.registry();
      h->client_id = p->client_id;
      h->session = claim.entry.session;
      h->from_loop = claim.entry.loop;
      h->to_loop = loop_.index();
      h->new_conn = c.id();
      h->pending = p;
      h->clean = p->clean;
      h->ends_with_connection = is_v5(p->version) ? p->session_expiry_s == 0 : p->clean;
      owner->loop().post([owner, h] { owner->handover_request(h); });
      return Action::kKeep;
    }
  }
  return Action::kClose;
}

void MqttHandler::handover_request(std::shared_ptr<Handover> h) {
  MqttHandler* target = broker_.handler_for(h->to_loop);
  Session* s = h->session;
  if (target == nullptr) return;
  if (!broker_.registry().begin_handover(h->client_id, s, loop_.index(), h->to_loop, h->new_conn)) {
    // The entry changed meanwhile (the session closed, or moved): the new loop starts over.
    target->loop().post([target, h] { target->handover_retry(h->new_conn, h->pending); });
    return;
  }
  take_over(*s);  // [MQTT-3.1.4-2]; keeps the object: the registry entry is keyed by its id
  if (s->offline) {
    s->offline = false;
    stats_.sessions_offline.sub();
  }
  h->present = !(h->clean || s->clean);
  if (h->present) {
    for (SubRecord& r : s->subs)
      h->filters.emplace_back(tree_.filter_of(r.node), r.node->entries()[r.index].qos(),
                              static_cast<uint8_t>(r.options), uint32_t{r.subscription_id});
    if (s->has_queues()) {
      stats_.queued_messages.sub(static_cast<int64_t>(s->queues_->queued_count()));
      stats_.inflight_messages.sub(static_cast<int64_t>(s->queues_->inflight_count()));
    }
    remove_subscriptions(*s);
  } else {
    reset_session(*s);
    // The router heard "kept" when it went offline (or just now, detached as persistent).
    broker_.router().on_session_ended(s->client_id());
  }
  h->moved = true;
  target->loop().post([target, h] { target->handover_attach(h); });
}

void MqttHandler::handover_attach(std::shared_ptr<Handover> h) {
  Session* s = h->session;
  h->attached = true;
  s->match_epoch = 0;  // epochs are per loop
  for (auto& [filter, qos, options, sub_id] : h->filters)
    add_subscription(*s, filter, qos, nullptr, options, sub_id);
  update_subscription_count();
  if (s->has_queues()) {
    stats_.queued_messages.add(static_cast<int64_t>(s->queues_->queued_count()));
    stats_.inflight_messages.add(static_cast<int64_t>(s->queues_->inflight_count()));
  }
  broker_.registry().finish_handover(h->client_id, s);
  Connection* c = loop_.find(h->new_conn);
  if (c != nullptr && c->user_data() == h->pending) {
    after_async(*c, attach(*c, s, h->pending, h->present));
    return;
  }
  // The new connection went away while its session travelled.
  if (h->clean || h->ends_with_connection) {
    discard_session(s);
  } else {
    s->offline = true;
    stats_.sessions_offline.add();
    broker_.registry().set_conn(s->client_id(), s, ConnId{});
    schedule_offline_timers(*s);  // 5.0: it expires from here (the old loop's timers are stale)
  }
}

void MqttHandler::handover_retry(ConnId conn, PendingConnect* p) {
  Connection* c = loop_.find(conn);
  if (c != nullptr && c->user_data() == p) after_async(*c, continue_connect(*c, p));
}

Action MqttHandler::attach(Connection& c, Session* s, PendingConnect* p, bool present) {
  if (s->offline) {
    s->offline = false;
    stats_.sessions_offline.sub();
  }
  // A will still delayed from the last connection: dropped if the session continues
  // [MQTT-3.1.3-9]; if a new one starts, the old one has ended, so the will goes out now.
  if (s->extra && s->extra->delayed_will) {
    if (present)
      s->extra->delayed_will.reset();
    else
      flush_delayed_will(*s);
  }
  s->conn = &c;
  s->version = p->version;
  // 5.0: the session outlives the connection only with a Session Expiry Interval.
  s->clean = is_v5(p->version) ? p->session_expiry_s == 0 : p->clean;
  s->disconnected = false;
  s->set_will(std::move(p->will));
  s->set_username(std::move(p->username));
  s->connected_since_s = static_cast<uint32_t>(::time(nullptr));
  if (is_v5(p->version) || s->extra) {
    SessionExtra& x = s->extra_ref();
    x.session_expiry_s = is_v5(p->version) ? p->session_expiry_s : 0;
    x.max_packet_size = p->max_packet_size;
    x.receive_maximum = p->receive_maximum;
    x.topic_aliases.clear();  // aliases live as long as the connection (5.0 §3.3.2.3.4)
    x.topic_aliases.shrink_to_fit();
    x.offline_generation = 0;  // timers set while offline are stale now
  }
  const uint16_t keep_alive_s = p->keep_alive_s;
  const bool assigned_id = p->assigned_id;
  c.set_user_data(s);
  delete p;
  broker_.registry().set_conn(s->client_id(), s, c.id());
  broker_.router().on_client_connected(s->client_id());
  stats_.sessions_connected.add();
  // Keep-alive on the engine's timer wheel; every read pushes the deadline [MQTT-3.1.2-24].
  c.set_timeout(keep_alive_s ? static_cast<uint32_t>(keep_alive_s) * 1500u : 0u);
  if (s->is_v5()) {
    // What this server supports, so the client need not guess (5.0 §3.2.2.3). Retain,
    // wildcards and QoS 2 are available: the defaults, not sent.
    props_scratch_.resize(64 + s->client_id().size());
    mqtt::PropertyBuilder b(props_scratch_);
    if (assigned_id) b.add(PropertyId::kAssignedClientIdentifier, s->client_id());  // [MQTT-3.2.2-16]
    b.add(PropertyId::kReceiveMaximum, static_cast<uint32_t>(server_receive_maximum()));
    b.add(PropertyId::kMaximumPacketSize,
          static_cast<uint32_t>(std::min<size_t>(cfg_.max_packet_size, mqtt::kMaxVarInt + 5)));
    b.add(PropertyId::kTopicAliasMaximum, kTopicAliasMaximum);
    b.add(PropertyId::kSharedSubscriptionAvailable, 0);
    send_connack_v5(c, present, ReasonCode::kSuccess, b.properties());
  } else {
    send_connack(c, s->version, present, 0x00);
  }
  if (s->has_queues()) {
    resend_inflight(*s);  // [MQTT-4.4.0-1]
    pump(*s);
  }
  return Action::kKeep;
}

void MqttHandler::after_async(Connection& c, Action a) {
  if (a == Action::kClose) {
    c.close(CloseReason::kProtocol);
    return;
  }
  if (a == Action::kCloseAfterFlush) {
    c.close_after_flush();
    return;
  }
  void* user = c.user_data();
  if (user != nullptr && kind_of(user) == ConnStateKind::kPendingConnect) return;  // still waiting
  // Packets that arrived behind the CONNECT are presented again by the engine.
  c.resume_reading();
}

Action MqttHandler::handle_publish(Connection& c, Session& s, const mqtt::FixedHeader& h,
                                   mqtt::Bytes body) {
  auto d = mqtt::decode_publish(h.flags, body, s.version);
  if (!d) return violation(c, d.error().what, d.error().code);
  const mqtt::Publish& p = *d;
  stats_.messages_in.add();
  stats_.bytes_payload_in.add(p.payload.size());
  std::string_view topic = p.topic;
  SharedBytes topic_bytes;
  MessageProps props;
  if (s.is_v5() && !p.properties.empty()) {
    if (p.properties.find(PropertyId::kSubscriptionIdentifier))
      return violation(c, "PUBLISH from a client carries a Subscription Identifier [MQTT-3.3.4-6]");
    if (auto alias = p.properties.number(PropertyId::kTopicAlias)) {
      // Inbound aliases, per connection, up to the Topic Alias Maximum we announced.
      if (*alias == 0 || *alias > kTopicAliasMaximum)
        return violation(c, "Topic Alias over our Topic Alias Maximum [MQTT-3.3.2-9]",
                         ReasonCode::kTopicAliasInvalid);
      std::vector<SharedBytes>& aliases = s.extra_ref().topic_aliases;
      if (aliases.size() < *alias) aliases.resize(kTopicAliasMaximum);
      SharedBytes& slot = aliases[*alias - 1];
      if (topic.empty()) {
        if (slot.empty()) return violation(c, "Topic Alias not defined on this connection");
        topic_bytes = slot;
      } else {
        if (mqtt::validate_topic_name(topic, cfg_.max_topic_levels) != mqtt::TopicError::kOk)
          return violation(c, "topic over --max-topic-levels", ReasonCode::kTopicNameInvalid);
        topic_bytes = SharedBytes::copy_of(as_bytes(topic));
        slot = topic_bytes;  // (re)defines the alias [MQTT-3.3.2-11]
      }
      topic = as_chars(topic_bytes.view());
    }
    props = message_props(p.properties, steady_ms());
  }
  if (mqtt::validate_topic_name(topic, cfg_.max_topic_levels) != mqtt::TopicError::kOk) {
    // 3.1.1 has no negative PUBACK: refusing a publish means closing the connection.
    stats_.refused_publishes.add();
    spdlog::debug("mqtt: client {}: topic over --max-topic-levels; closing", s.client_id());
    if (s.is_v5()) return violation(c, "topic over --max-topic-levels", ReasonCode::kTopicNameInvalid);
    return Action::kClose;
  }
  // Clients may not publish into the broker's own statistics. A refused publish is dropped
  // and counted; 3.1.1 has no negative PUBACK, so there its QoS 1/2 handshakes still complete
  // [MQTT-3.3.5-2]; 5.0 acknowledges with 0x87 Not authorized.
  bool accept = true;
  if (is_sys_topic(topic)) {
    accept = false;
    stats_.sys_publish_denied.add();
  } else if (!broker_.authorizer().can_publish({s.client_id(), s.username()}, topic)) {
    accept = false;
    stats_.acl_publish_denied.add();
  }
  const ReasonCode rc = accept ? ReasonCode::kSuccess : ReasonCode::kNotAuthorized;

  if (p.qos == QoS::k2) {
    SessionQueues& q = s.queues();
    if (q.incoming_seen(p.packet_id)) {
      // A resent PUBLISH whose PUBREL has not come yet: acknowledge, do not deliver twice
      // [MQTT-4.3.3-2].
      send_ack(c, s, PacketType::kPubrec, p.packet_id);
      return Action::kKeep;
    }
    if (accept || !s.is_v5()) {  // a 5.0 PUBREC >= 0x80 ends the exchange: no PUBREL comes
      if (s.is_v5() && q.incoming_count() >= server_receive_maximum())
        return violation(c, "more QoS 2 publishes unreleased than our Receive Maximum",
                         ReasonCode::kReceiveMaximumExceeded);  // 5.0 §3.3.4
      q.incoming_add(p.packet_id);
    }
    s.trim();
  }
  if (accept) {
    if (topic_bytes.empty()) topic_bytes = SharedBytes::copy_of(as_bytes(topic));
    route(topic_bytes, SharedBytes::copy_of(p.payload), p.qos, p.retain, false, props, &s);
  }
  if (p.qos == QoS::k1) {
    send_ack(c, s, PacketType::kPuback, p.packet_id, rc);  // [MQTT-4.3.2-2]
  } else if (p.qos == QoS::k2) {
    send_ack(c, s, PacketType::kPubrec, p.packet_id, rc);  // [MQTT-4.3.3-2]
  }
  return Action::kKeep;
}

Action MqttHandler::handle_ack(Connection& c, Session& s, PacketType type, mqtt::Bytes body) {
  auto d = mqtt::decode_publish_response(type, body, s.version);
  if (!d) return violation(c, d.error().what, d.error().code);
  const uint16_t id = d->packet_id;
  switch (type) {
    case PacketType::kPuback:
      if (s.has_queues() && s.queues_->on_puback(id)) {
        stats_.inflight_messages.sub();
        pump(s);
      }
      break;
    case PacketType::kPubrec:
      if (s.has_queues() && s.queues_->on_pubrec(id)) {
        if (mqtt::to_byte(d->reason) >= 0x80) {
          // 5.0: a failed PUBREC ends the exchange; no PUBREL (4.3.3).
          s.queues_->on_pubcomp(id);
          stats_.inflight_messages.sub();
          pump(s);
          break;
        }
        send_ack(c, s, PacketType::kPubrel, id);  // [MQTT-4.3.3-1]
      } else if (s.is_v5() && mqtt::to_byte(d->reason) < 0x80) {
        send_ack(c, s, PacketType::kPubrel, id, ReasonCode::kPacketIdentifierNotFound);
      }
      break;
    case PacketType::kPubrel: {
      const bool known = s.has_queues() && s.queues_->incoming_release(id);
      // PUBCOMP even for an id we do not know: the sender only needs to stop resending
      // (5.0 says so with 0x92).
      send_ack(c, s, PacketType::kPubcomp, id,
               known ? ReasonCode::kSuccess : ReasonCode::kPacketIdentifierNotFound);
      s.trim();
      break;
    }
    case PacketType::kPubcomp:
      if (s.has_queues() && s.queues_->on_pubcomp(id)) {
        stats_.inflight_messages.sub();
        pump(s);
      }
      break;
    default:
      break;
  }
  return Action::kKeep;
}

Action MqttHandler::handle_subscribe(Connection& c, Session& s, mqtt::Bytes body) {
  auto d = mqtt::decode_subscribe(body, s.version);
  if (!d) return violation(c, d.error().what, d.error().code);
  // 5.0 Subscription Identifier: kept with each subscription this SUBSCRIBE makes or
  // replaces, sent back in matching PUBLISH (5.0 §3.8.2.1.2, §3.3.4).
  const uint32_t sub_id =
      s.is_v5() ? d->properties.number(PropertyId::kSubscriptionIdentifier).value_or(0) : 0;
  const SharedBytes sub_id_props = sub_id != 0 ? encode_sub_ids(&sub_id, 1) : SharedBytes();
  // 5.0 reason codes throughout; the 3.1.1 encoder turns every failure into 0x80.
  std::vector<std::byte> codes;
  struct Granted {
    size_t first, count;
    QoS qos;
  };
  std::vector<Granted> granted;
  retained_scratch_.clear();
  for (const mqtt::Subscription& sub : d->subscriptions) {
    const std::string_view filter = sub.filter;
    QoS qos = min_qos(sub.options.max_qos, QoS::k2);
    if (mqtt::is_shared_subscription(filter)) {
      codes.push_back(std::byte{mqtt::to_byte(ReasonCode::kSharedSubscriptionsNotSupported)});
      continue;
    }
    if (mqtt::validate_topic_filter(filter, cfg_.max_topic_levels) != mqtt::TopicError::kOk) {
      codes.push_back(std::byte{mqtt::to_byte(ReasonCode::kTopicFilterInvalid)});  // [MQTT-3.8.4-5]
      continue;
    }
    if (!broker_.authorizer().can_subscribe({s.client_id(), s.username()}, filter)) {
      stats_.acl_subscribe_denied.add();
      codes.push_back(std::byte{mqtt::to_byte(ReasonCode::kNotAuthorized)});
      continue;
    }
    if (cfg_.max_subscriptions_per_client != 0 &&
        s.subs.size() >= cfg_.max_subscriptions_per_client && !subscribed_to(s, filter)) {
      stats_.subscriptions_over_limit.add();
      codes.push_back(std::byte{mqtt::to_byte(ReasonCode::kQuotaExceeded)});
      continue;
    }
    uint8_t options = 0;
    if (s.is_v5()) {
      if (sub.options.no_local) options |= kSubNoLocal;
      if (sub.options.retain_as_published) options |= kSubRetainAsPublished;
    }
    bool replaced = false;
    add_subscription(s, filter, qos, &replaced, options, sub_id);
    codes.push_back(static_cast<std::byte>(qos));
    // Retained messages matching the filter go out after the SUBACK [MQTT-3.3.1-6]; on a
    // replaced subscription too [MQTT-3.8.4-3], unless 5.0 Retain Handling says otherwise:
    // 1 only for a new subscription [MQTT-3.3.1-10], 2 never [MQTT-3.3.1-11].
    const auto rh = sub.options.retain_handling;
    if (rh == mqtt::RetainHandling::kDoNotSend ||
        (rh == mqtt::RetainHandling::kSendIfNew && replaced))
      continue;
    size_t before = retained_scratch_.size();
    broker_.retained().match(filter, retained_scratch_);
    if (retained_scratch_.size() > before) granted.push_back({before, retained_scratch_.size() - before, qos});
  }
  update_subscription_count();
  mqtt::Suback ack;
  ack.packet_id = d->packet_id;  // [MQTT-3.8.4-2]
  ack.reason_codes = mqtt::Bytes(codes.data(), codes.size());
  send_packet(c, ack, s.version, PacketType::kSuback);
  std::vector<RetainedMessage> retained;
  retained.swap(retained_scratch_);
  for (const Granted& g : granted) {
    for (size_t i = g.first; i < g.first + g.count; ++i) {
      const RetainedMessage& m = retained[i];
      // RETAIN 1 [MQTT-3.3.1-8]; with this subscription's identifier.
      deliver(s, m.topic, m.payload, min_qos(m.qos, g.qos), true, m.props, sub_id_props);
    }
  }
  retained.clear();
  retained_scratch_.swap(retained);
  return Action::kKeep;
}

bool MqttHandler::subscribed_to(Session& s, std::string_view filter) const {
  for (const SubRecord& r : s.subs)
    if (tree_.filter_of(r.node) == filter) return true;
  return false;
}

Action MqttHandler::handle_unsubscribe(Connection& c, Session& s, mqtt::Bytes body) {
  auto d = mqtt::decode_unsubscribe(body, s.version);
  if (!d) return violation(c, d.error().what, d.error().code);
  std::vector<std::byte> codes;  // 5.0 only: one per filter
  for (std::string_view filter : d->filters) {
    bool last = false;
    if (tree_.unsubscribe(filter, &s, &last)) {
      stats_.subscriptions.sub();
      if (last && broker_.router().wants_filter_events()) broker_.filter_removed(filter);
      if (s.is_v5()) codes.push_back(std::byte{0x00});
    } else if (s.is_v5()) {
      codes.push_back(std::byte{mqtt::to_byte(ReasonCode::kNoSubscriptionExisted)});
    }
  }
  update_subscription_count();
  mqtt::Unsuback ack;
  ack.packet_id = d->packet_id;
  ack.reason_codes = mqtt::Bytes(codes.data(), codes.size());
  // UNSUBACK even when nothing matched [MQTT-3.10.4-4], [MQTT-3.10.4-5].
  send_packet(c, ack, s.version, PacketType::kUnsuback);
  return Action::kKeep;
}

// --- output -----------------------------------------------------------------------------------

template <typename Packet>
void MqttHandler::send_packet(Connection& c, const Packet& p, ProtocolVersion v, PacketType t) {
  size_t n = mqtt::encoded_size(p, v);
  if (n == 0) return;
  scratch_.resize(std::max(scratch_.size(), n));
  n = mqtt::encode(p, v, mqtt::OutBytes(scratch_.data(), n));
  // enqueue: everything for this client in one loop iteration leaves in one write.
  c.enqueue(ByteView(scratch_.data(), n));
  stats_.packets_out[static_cast<uint8_t>(t) & 15].add();
}

void MqttHandler::send_connack(Connection& c, ProtocolVersion v, bool present, uint8_t code) {
  const ReasonCode reason =
      mqtt::from_connect_return_code(static_cast<mqtt::ConnectReturnCode>(code));
  if (is_v5(v)) {
    send_connack_v5(c, present, reason);
    return;
  }
  mqtt::Connack ack;
  ack.session_present = present && code == 0;
  ack.reason = reason;
  send_packet(c, ack, v, PacketType::kConnack);
}

void MqttHandler::send_connack_v5(Connection& c, bool present, ReasonCode code,
                                  mqtt::Properties props) {
  mqtt::Connack ack;
  ack.session_present = present && code == ReasonCode::kSuccess;  // [MQTT-3.2.2-6]
  ack.reason = code;
  ack.properties = props;
  send_packet(c, ack, ProtocolVersion::kV5, PacketType::kConnack);
}

void MqttHandler::send_disconnect(Connection& c, ReasonCode code) {
  mqtt::Disconnect d;
  d.reason = code;
  send_packet(c, d, ProtocolVersion::kV5, PacketType::kDisconnect);
}

void MqttHandler::send_ack(Connection& c, Session& s, PacketType t, uint16_t id, ReasonCode code) {
  mqtt::PublishResponse r = ack_packet(t, id);
  r.reason = code;  // dropped by the 3.1.1 encoder
  send_packet(c, r, s.version, t);
}

size_t MqttHandler::window(const Session& s) const noexcept {
  // A 5.0 client's Receive Maximum caps our in-flight window [MQTT-3.3.4-9].
  const size_t client = s.extra ? s.extra->receive_maximum : 65535;
  return std::min<size_t>(cfg_.max_inflight, client);
}

bool MqttHandler::deliverable(Session& s, const OutMessage& m) {
  if (m.props.expires_at_ms != 0 && m.props.expires_at_ms <= steady_ms())
    return false;  // expired before onward delivery started [MQTT-3.3.2-5]
  if (s.max_packet_size() == 0) return true;
  // Sized as it would go out (packet id 1 stands for the one start() assigns).
  mqtt::Publish p;
  p.qos = m.qos;
  p.topic = as_chars(m.topic.view());
  p.packet_id = m.qos == QoS::k0 ? 0 : 1;
  p.payload = m.payload.view();
  size_t props = m.props.wire.size() + m.sub_ids.size() + (m.props.expires_at_ms != 0 ? 5 : 0);
  props_scratch_.resize(props);  // only the size matters for publish_header_size
  p.properties = mqtt::Properties(mqtt::Bytes(props_scratch_.data(), props));
  const size_t n = mqtt::publish_header_size(p, s.version);
  return n != 0 && n + m.payload.size() <= s.max_packet_size();  // [MQTT-3.1.2-25]
}

bool MqttHandler::send_publish(Connection& c, Session& s, const SharedBytes& topic,
                               const SharedBytes& payload, QoS qos, bool retain, bool dup,
                               uint16_t packet_id, const MessageProps& props,
                               const SharedBytes& sub_ids, bool resend) {
  mqtt::Publish p;
  p.dup = dup;
  p.qos = qos;
  p.retain = retain;
  p.topic = as_chars(topic.view());
  p.packet_id = packet_id;
  p.payload = payload.view();
  uint32_t expiry_s = 0;
  if (props.expires_at_ms != 0) {
    expiry_s = expiry_left_s(props.expires_at_ms, steady_ms());
    if (expiry_s == 0) {
      if (!resend) return false;  // [MQTT-3.3.2-5]
      expiry_s = 1;  // already in flight: finish its handshake
    }
  }
  if (s.is_v5() && (expiry_s != 0 || !props.wire.empty() || !sub_ids.empty())) {
    // Message Expiry Interval as left now [MQTT-3.3.2-6], this subscriber's Subscription
    // Identifiers [MQTT-3.3.4-3], then the shared properties as the publisher sent them.
    props_scratch_.resize(5 + sub_ids.size() + props.wire.size());
    size_t used = 0;
    if (expiry_s != 0) {
      props_scratch_[0] = std::byte{0x02};
      for (int i = 0; i < 4; ++i)
        props_scratch_[1 + i] = static_cast<std::byte>(expiry_s >> (24 - 8 * i));
      used = 5;
    }
    if (!sub_ids.empty()) {
      std::memcpy(props_scratch_.data() + used, sub_ids.view().data(), sub_ids.size());
      used += sub_ids.size();
    }
    if (!props.wire.empty()) std::memcpy(props_scratch_.data() + used, props.wire.view().data(),
                  props.wire.size());
    used += props.wire.size();
    p.properties = mqtt::Properties(mqtt::Bytes(props_scratch_.data(), used));
  }
  size_t n = mqtt::publish_header_size(p, s.version);
  if (n == 0) return false;
  if (s.max_packet_size() != 0 && n + payload.size() > s.max_packet_size())
    return false;  // [MQTT-3.1.2-25]
  scratch_.resize(std::max(scratch_.size(), n));
  n = mqtt::encode_publish_header(p, s.version, mqtt::OutBytes(scratch_.data(), n));
  // The header is copied into the output queue; the payload is kept by reference.
  c.enqueue_shared(ByteView(scratch_.data(), n), payload);
  stats_.packets_out[static_cast<uint8_t>(PacketType::kPublish)].add();
  stats_.messages_out.add();
  return true;
}

void MqttHandler::deliver(Session& s, const SharedBytes& topic, const SharedBytes& payload,
                          QoS qos, bool retain, const MessageProps& props,
                          const SharedBytes& sub_ids) {
  if (s.conn == nullptr) {
    // Offline persistent session: QoS 1/2 wait for the next connection [MQTT-3.1.2-5]; QoS 0
    // is not kept (the spec allows either; Mosquitto's default does the same).
    if (qos != QoS::k0 && !s.clean)
      queue_message(s, OutMessage{topic, payload, 0, qos, {}, retain, props, sub_ids});
    return;
  }
  Connection& c = *s.conn;
  const bool backlogged = c.pending_output_bytes() > cfg_.max_queued_bytes;
  if (qos == QoS::k0) {
    if (backlogged) {
      stats_.qos0_dropped_slow.add();  // a slow consumer loses QoS 0, nobody else notices
      return;
    }
    send_publish(c, s, topic, payload, QoS::k0, retain, false, 0, props, sub_ids);
    return;
  }
  SessionQueues& q = s.queues();
  if (backlogged || q.has_queued() || !q.window_has_room(window(s))) {
    queue_message(s, OutMessage{topic, payload, 0, qos, {}, retain, props, sub_ids});
    return;
  }
  OutMessage out{topic, payload, 0, qos, {}, retain, props, sub_ids};
  if (!deliverable(s, out)) {
    s.trim();
    return;  // expired, or too big for this client: dropped for it alone
  }
  OutMessage& m = q.start(std::move(out));
  stats_.inflight_messages.add();
  send_publish(c, s, m.topic, m.payload, m.qos, m.retain, false, m.packet_id, m.props, m.sub_ids);
}

void MqttHandler::queue_message(Session& s, OutMessage m) {
  if (s.queues().enqueue(std::move(m), cfg_.max_queued_messages, cfg_.max_session_bytes)) {
    stats_.queued_messages.add();
  } else {
    stats_.queue_dropped.add();  // bounded per client: the newest message is dropped
    s.trim();
  }
}

void MqttHandler::pump(Session& s) {
  if (s.conn == nullptr || !s.has_queues()) return;
  SessionQueues& q = *s.queues_;
  Connection& c = *s.conn;
  while (q.has_queued() && q.window_has_room(window(s)) &&
         c.pending_output_bytes() <= cfg_.max_queued_bytes && c.open()) {
    OutMessage next = q.pop_queued();
    stats_.queued_messages.sub();
    if (!deliverable(s, next)) continue;  // expired while it waited [MQTT-3.3.2-5]
    OutMessage& m = q.start(std::move(next));
    stats_.inflight_messages.add();
    send_publish(c, s, m.topic, m.payload, m.qos, m.retain, false, m.packet_id, m.props,
                 m.sub_ids);
  }
  s.trim();
}

void MqttHandler::resend_inflight(Session& s) {
  std::vector<uint16_t> unsendable;
  for (OutMessage& m : s.queues_->inflight()) {
    if (m.state == OutMessage::State::kWaitPubcomp) {
      send_packet(*s.conn, ack_packet(PacketType::kPubrel, m.packet_id), s.version,
                  PacketType::kPubrel);
    } else if (!send_publish(*s.conn, s, m.topic, m.payload, m.qos, m.retain, true,
                             m.packet_id, m.props, m.sub_ids, true)) {
      // Same packet id, DUP set [MQTT-4.4.0-1], [MQTT-3.3.1-1]; refused only when the new
      // connection's Maximum Packet Size is below it [MQTT-3.1.2-25]: then it can never be
      // acknowledged, and would hold a window slot for the rest of the session.
      unsendable.push_back(m.packet_id);
    }
  }
  for (uint16_t id : unsendable) {
    if (s.queues_->abandon(id)) {
      stats_.inflight_messages.sub();
      stats_.queue_dropped.add();
    }
  }
}

// --- routing ----------------------------------------------------------------------------------

void MqttHandler::route(const SharedBytes& topic, const SharedBytes& payload, QoS qos,
                        bool retain, bool from_remote, const MessageProps& props,
                        const Session* origin) {
  if (retain) broker_.retained().set(topic, payload, qos, props);  // [MQTT-3.3.1-5], [MQTT-3.3.1-10]
  // Existing subscribers get RETAIN 0 [MQTT-3.3.1-9] (unless Retain As Published).
  deliver_local(topic, payload, qos, retain, props, origin);
  for (MqttHandler* other : broker_.handlers()) {
    if (other == this || !other->may_match(as_chars(topic.view()))) continue;
    // One task per loop, whatever the number of its subscribers.
    if (other->loop().post([other, topic, payload, qos, retain, props, origin] {
          other->deliver_local(topic, payload, qos, retain, props, origin);
        }))
      stats_.cross_loop_posts.add();
  }
  // Other processes and nodes get topic, payload, QoS and retain only (docs/mqtt.md).
  if (!from_remote) broker_.router().on_local_publish(topic, payload, qos, retain);
}

void MqttHandler::deliver_local(const SharedBytes& topic, const SharedBytes& payload, QoS qos,
                                bool retain, const MessageProps& props, const Session* origin) {
  if (tree_.subscription_count() == 0) return;
  if (++epoch_ == 0) epoch_ = 1;
  matches_.clear();
  match_ids_.clear();
  tree_.match(as_chars(topic.view()), [&, this](Session* s, QoS granted, const SubRecord* rec) {
    bool keep_retain = false;
    if (rec != nullptr) {
      // No Local: not back to the publishing client [MQTT-3.8.3-3].
      if ((rec->options & kSubNoLocal) && s == origin) return;
      keep_retain = retain && (rec->options & kSubRetainAsPublished);  // [MQTT-3.3.1-13]
    }
    if (s->match_epoch == epoch_) {
      Match& m = matches_[s->match_index];
      if (static_cast<uint8_t>(granted) > static_cast<uint8_t>(m.qos)) m.qos = granted;
      m.retain = m.retain || keep_retain;
    } else {
      s->match_epoch = epoch_;
      s->match_index = static_cast<uint32_t>(matches_.size());
      matches_.push_back(Match{s, granted, keep_retain});
    }
    // One copy carries the ids of every matching subscription that has one [MQTT-3.3.4-4].
    if (rec != nullptr && rec->subscription_id != 0)
      match_ids_.emplace_back(s->match_index, rec->subscription_id);
  });
  if (match_ids_.empty()) {
    for (const Match& m : matches_)
      deliver(*m.s, topic, payload, min_qos(qos, m.qos), m.retain, props);
    return;
  }
  std::sort(match_ids_.begin(), match_ids_.end());
  size_t k = 0;
  std::vector<uint32_t> ids;
  for (uint32_t i = 0; i < matches_.size(); ++i) {
    const Match& m = matches_[i];
    ids.clear();
    for (; k < match_ids_.size() && match_ids_[k].first == i; ++k) ids.push_back(match_ids_[k].second);
    deliver(*m.s, topic, payload, min_qos(qos, m.qos), m.retain, props,
            ids.empty() ? SharedBytes() : encode_sub_ids(ids.data(), ids.size()));
  }
}

SendResult MqttHandler::push_to_client(std::string_view client_id, Session* s,
                                       const SharedBytes& topic, const SharedBytes& payload,
                                       QoS qos) {
  if (!broker_.registry().owns(client_id, s, loop_.index())) {
    // A CONNECT here is fetching the client's session from another process: the fresh
    // session takes the message (queued ahead of what the image brings) rather than losing it.
    auto e = broker_.registry().find(client_id);
    if (!e || e->session != s || e->loop != loop_.index() || !e->fetching)
      return SendResult::kNotConnected;
  }
  const bool connected = s->conn != nullptr;
  deliver(*s, topic, payload, qos, false);
  return connected ? SendResult::kSent : SendResult::kQueued;
}

void MqttHandler::kick(std::string_view client_id, Session* s) {
  if (!broker_.registry().owns(client_id, s, loop_.index()) || s->conn == nullptr) return;
  if (s->is_v5()) {
    send_disconnect(*s->conn, ReasonCode::kAdministrativeAction);
    s->conn->close_after_flush();
    return;
  }
  s->conn->close(CloseReason::kKicked);
}

void MqttHandler::collect_clients(std::vector<ClientInfo>& out) {
  std::vector<Session*> owned;
  broker_.registry().for_each_owned_by(loop_.index(),
                                       [&](const RegistryEntry& e) { owned.push_back(e.session); });
  for (Session* s : owned) {
    ClientInfo ci;
    ci.client_id = std::string(s->client_id());
    ci.loop = loop_.index();
    ci.connected = s->conn != nullptr;
    if (s->conn) ci.conn = s->conn->id();
    ci.subscriptions = s->subs.size();
    ci.connected_since_s = s->connected_since_s;
    if (s->has_queues()) {
      ci.queued = static_cast<uint32_t>(s->queues_->queued_count());
      ci.inflight = static_cast<uint32_t>(s->queues_->inflight_count());
    }
    out.push_back(std::move(ci));
  }
}

// --- sessions ---------------------------------------------------------------------------------

void MqttHandler::publish_will(std::unique_ptr<Will> will) {
  if (!will) return;
  MessageProps props;
  props.wire = will->props;
  // The will's Message Expiry Interval starts when it is published.
  if (will->expiry_s != 0) props.expires_at_ms = steady_ms() + uint64_t{will->expiry_s} * 1000;
  route(will->topic, will->payload, will->qos, will->retain, false, props);
}

void MqttHandler::flush_delayed_will(Session& s) {
  if (s.extra && s.extra->delayed_will) publish_will(std::move(s.extra->delayed_will));
}

MessageProps MqttHandler::message_props(mqtt::Properties in, uint64_t now_ms) {
  MessageProps out;
  props_scratch_.resize(in.wire_size());
  mqtt::PropertyBuilder b(props_scratch_);
  for (const mqtt::Property& pr : in) {
    switch (pr.id) {
      case PropertyId::kMessageExpiryInterval:
        // 0 is taken as "no expiry", as Mosquitto does.
        if (pr.number != 0) out.expires_at_ms = now_ms + uint64_t{pr.number} * 1000;
        break;
      case PropertyId::kTopicAlias:              // per connection
      case PropertyId::kSubscriptionIdentifier:  // per subscription
      case PropertyId::kWillDelayInterval:       // the server's business
        break;
      default:
        copy_property(b, pr);  // forwarded unaltered [MQTT-3.3.2-18], [MQTT-3.3.2-20], ...
    }
  }
  if (b.ok() && b.size() != 0)
    out.wire = SharedBytes::copy_of(ByteView(props_scratch_.data(), b.size()));
  return out;
}

void MqttHandler::schedule_offline_timers(Session& s) {
  if (!s.extra || !s.is_v5()) return;
  SessionExtra& x = *s.extra;
  // Unique across loops (a session may move between them), so a stale timer never matches.
  x.offline_generation = (next_generation_++ << 16) | (loop_.index() & 0xFFFF);
  const uint64_t gen = x.offline_generation;
  const uint64_t now = steady_ms();
  auto arm = [&](uint64_t delay_ms, bool expiry) {
    const uint64_t due = now + delay_ms;
    std::string id(s.client_id());
    Session* sp = &s;
    loop_.run_after(static_cast<uint32_t>(std::min(delay_ms, kMaxTimerMs)),
                    [this, id = std::move(id), sp, gen, due, expiry] {
                      offline_timer(id, sp, gen, expiry ? due : due | (uint64_t{1} << 63));
                    });
  };
  // 0xFFFFFFFF: the session does not expire (5.0 §3.1.2.11.2).
  const bool expires = x.session_expiry_s != 0xFFFFFFFFu;
  const uint64_t expiry_ms = uint64_t{x.session_expiry_s} * 1000;
  if (expires) arm(expiry_ms, true);
  // The will waits for its delay or the session's end, whichever comes first [MQTT-3.1.3-9].
  if (x.delayed_will && (!expires || uint64_t{x.delayed_will->delay_s} * 1000 < expiry_ms))
    arm(uint64_t{x.delayed_will->delay_s} * 1000, false);
}

void MqttHandler::offline_timer(const std::string& client_id, Session* s, uint64_t gen,
                                uint64_t due_tagged) {
  const bool expiry = (due_tagged >> 63) == 0;
  const uint64_t due = due_tagged & ~(uint64_t{1} << 63);
  // The session may be gone, moved, or back online: then this timer is stale.
  if (!broker_.registry().owns(client_id, s, loop_.index())) return;
  if (!s->offline || !s->extra || s->extra->offline_generation != gen) return;
  const uint64_t now = steady_ms();
  if (now < due) {  // longer than one loop timer: re-arm for the rest
    loop_.run_after(static_cast<uint32_t>(std::min(due - now, kMaxTimerMs)),
                    [this, client_id, s, gen, due_tagged] {
                      offline_timer(client_id, s, gen, due_tagged);
                    });
    return;
  }
  if (expiry) {
    spdlog::debug("mqtt: session '{}' expired", client_id);
    end_session(s);  // the delayed will goes out with it (discard_session)
  } else {
    flush_delayed_will(*s);
  }
}

void MqttHandler::detach_connection(Session& s, bool publish) {
  if (s.conn != nullptr) {
    s.conn->set_user_data(nullptr);
    s.conn = nullptr;
    stats_.sessions_connected.sub();
    broker_.router().on_client_disconnected(s.client_id(), !s.clean);
  }
  std::unique_ptr<Will> will = s.take_will();
  if (s.disconnected || !publish) will.reset();
  if (s.clean) {
    discard_session(&s);  // a clean session lasts as long as its connection [MQTT-3.1.2-6]
  } else {
    s.offline = true;
    stats_.sessions_offline.add();
    broker_.registry().set_conn(s.client_id(), &s, ConnId{});
    if (s.extra) {
      s.extra->topic_aliases.clear();
      s.extra->topic_aliases.shrink_to_fit();
    }
    // 5.0: a will with a delay waits while the session lives [MQTT-3.1.3-9].
    if (will && will->delay_s != 0) s.extra_ref().delayed_will = std::move(will);
    schedule_offline_timers(s);
  }
  // After the session is settled, so the will cannot come back to it.
  publish_will(std::move(will));
}

void MqttHandler::remove_subscriptions(Session& s) {
  const bool events = broker_.router().wants_filter_events();
  const uint32_t n = s.subs.size();
  tree_.remove_all(&s, [&](std::string_view filter) {
    if (events) broker_.filter_removed(filter);
  });
  stats_.subscriptions.sub(n);
  update_subscription_count();
}

void MqttHandler::add_subscription(Session& s, std::string_view filter, QoS qos, bool* replaced,
                                   uint8_t options, uint32_t subscription_id) {
  auto r = tree_.subscribe(filter, &s, qos, options, subscription_id);
  if (replaced) *replaced = r.replaced;
  if (!r.replaced) stats_.subscriptions.add();
  if (r.first_at_node && broker_.router().wants_filter_events()) broker_.filter_added(filter);
}

void MqttHandler::reset_session(Session& s) {
  remove_subscriptions(s);
  if (s.has_queues()) {
    stats_.queued_messages.sub(static_cast<int64_t>(s.queues_->queued_count()));
    stats_.inflight_messages.sub(static_cast<int64_t>(s.queues_->inflight_count()));
    s.queues_.reset();
  }
}

void MqttHandler::discard_session(Session* s) {
  reset_session(*s);
  if (s->offline) {
    s->offline = false;
    stats_.sessions_offline.sub();
  }
  // A will still waiting for its delay goes out when the session ends [MQTT-3.1.3-9].
  std::unique_ptr<Will> will = s->extra ? std::move(s->extra->delayed_will) : nullptr;
  broker_.registry().remove(s->client_id(), s);
  delete s;
  publish_will(std::move(will));
}

void MqttHandler::update_subscription_count() {
  subscription_count_.store(tree_.subscription_count(), std::memory_order_relaxed);
}

}  // namespace tcpms::broker
