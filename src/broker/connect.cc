// MqttHandler, CONNECT: the packet's checks, authentication on the worker pool, claiming the
// client id (a takeover on this loop, a handover from another loop, a fetch from another
// process), and CONNACK.
#include <array>
#include <ctime>

#include <spdlog/spdlog.h>

#include "broker/mqtt_handler.h"
#include "broker/pending_connect.h"
#include "mqtt/topic.h"
#include "mqtt/vbi.h"
#include "tcpms/server.h"
#include "tcpms/worker_pool.h"

namespace tcpms::broker {

using mqtt::PropertyId;
using mqtt::ProtocolVersion;
using mqtt::ReasonCode;

// Password checks queued on the worker pool past which a CONNECT is refused at once with
// "server unavailable" (CONNACK 3) rather than waiting behind a login storm.
constexpr size_t kMaxQueuedAuthChecks = 10000;

namespace {

// Bytes of a 5.0 CONNACK carrying `props` bytes of properties.
size_t connack_size(size_t props) {
  const size_t remaining = 2 + mqtt::varint_size(static_cast<uint32_t>(props)) + props;
  return 1 + mqtt::varint_size(static_cast<uint32_t>(remaining)) + remaining;
}

}  // namespace

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
  const bool v5 = is_v5(k.version);
  // The client's Maximum Packet Size: nothing we send may exceed it [MQTT-3.1.2-24], a
  // CONNACK included (0: no limit).
  const uint32_t client_max = v5 ? k.properties.number(PropertyId::kMaximumPacketSize).value_or(0) : 0;
  auto refuse = [&](uint8_t code, const char* why) {
    // A refused CONNECT gets session present 0 [MQTT-3.2.2-4] and the connection closes
    // [MQTT-3.2.2-5].
    spdlog::debug("mqtt: CONNECT from '{}' refused ({}): {}", k.client_id, code, why);
    stats_.connects_refused.add();
    send_connack(c, k.version, false, code, client_max);
    return Action::kCloseAfterFlush;
  };
  if (v5 && k.properties.find(PropertyId::kAuthenticationMethod)) {
    // No enhanced authentication here (5.0 §4.12): refuse with 0x8C [MQTT-4.12.0-1].
    spdlog::debug("mqtt: CONNECT from '{}' refused: Authentication Method not supported",
                  k.client_id);
    stats_.connects_refused.add();
    send_connack_v5(c, false, ReasonCode::kBadAuthenticationMethod, {}, client_max);
    return Action::kCloseAfterFlush;
  }
  // On a listener with tls.identity_as_username the verified client certificate says who this
  // is (Mosquitto's use_identity_as_username): its identity is the user name for the ACL and
  // no password is checked; the CONNECT's own user name is not used.
  const std::optional<std::string> cert_user = c.certificate_identity();
  if (cert_user && cert_user->empty())
    return refuse(0x05, "client certificate has no identity to use as user name");
  const std::optional<std::string_view> username =
      cert_user ? std::optional<std::string_view>(*cert_user) : k.username;
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
  if (client_max != 0 && connack_size(assigned ? 3 + client_id.size() : 0) > client_max) {
    // Not even the CONNACK without the properties we may leave out fits: we can send this
    // client nothing at all [MQTT-3.1.2-24]. Close before the id is claimed (no takeover, no
    // session), as Mosquitto does.
    spdlog::debug("mqtt: CONNECT from '{}' closed: its Maximum Packet Size ({}) is below the "
                  "smallest CONNACK", client_id, client_max);
    stats_.connects_refused.add();
    return Action::kClose;
  }
  std::unique_ptr<Will> will;
  if (k.will) {
    if (mqtt::validate_topic_name(k.will->topic, cfg_.max_topic_levels) != mqtt::TopicError::kOk)
      return refuse(0x05, "will topic over --max-topic-levels");
    if (is_sys_topic(k.will->topic) || !broker_.authorizer().can_publish({client_id, username}, k.will->topic)) {
      stats_.auth_refused.add();
      if (sockaddr_storage peer{}; broker_.client_log().enabled() && c.peer_address(peer))
        broker_.client_log().auth_failed(peer, client_id, username.value_or(""),
                                         "will topic not authorized");
      return refuse(0x05, "will topic not authorized");
    }
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
  // From here the loop owes this client work (authentication, a claim, a session): counted
  // against max_pending_logins until its CONNACK or its close.
  c.begin_login();
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
  // Kept until CONNACK for the log line; the session keeps it only if the authorizer uses it.
  if (username) p->username = std::string(*username);
  c.set_user_data(p);
  // The client sent its CONNECT in time; what follows is the server's work, each wait bounded
  // by its own timer. A fresh deadline bounds them together, without charging the client for
  // a loop that was slow to read its CONNECT (an oversubscribed box under a login storm).
  c.set_deadline(cfg_.login_timeout_ms);

  Authenticator& auth = broker_.authenticator();
  if (!auth.enabled() || cert_user) return continue_connect(c, p);

  // Hashing is slow: check on the worker pool, continue here. The connect deadline still runs.
  if (broker_.server().workers().queued() >= kMaxQueuedAuthChecks) {
    stats_.connects_refused.add();
    if (is_v5(p->version))
      send_connack_v5(c, false, ReasonCode::kServerBusy, {}, p->max_packet_size);
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
  if (k.will) info->will_topic = std::string(k.will->topic);
  if (!c.peer_address(info->peer)) info->peer.ss_family = AF_UNSPEC;
  ConnId id = c.id();
  auth.check_async(info, p->auth_cancelled, loop_, broker_.server().workers(),
                   [this, id, p, info](AuthResult result) {
    Connection* cc = loop_.find(id);
    if (cc == nullptr || cc->user_data() != p) return;  // gone meanwhile
    if (result != AuthResult::kAccept) {
      stats_.connects_refused.add();
      stats_.auth_refused.add();
      broker_.client_log().auth_failed(
          info->peer, p->client_id, info->username.value_or(""),
          info->why ? info->why
                    : (result == AuthResult::kBadUserNameOrPassword ? "bad user name or password"
                                                                     : "not authorized"));
      send_connack(*cc, p->version, false, static_cast<uint8_t>(result), p->max_packet_size);
      cc->close_after_flush();
      return;
    }
    after_async(*cc, continue_connect(*cc, p));
  });
  return Action::kKeep;
}

Action MqttHandler::continue_connect(Connection& c, PendingConnect* p) {
  Router& router = broker_.router();
  if (router.claims_client_ids() && !p->claim_done) {
    // Other processes may hold the id: claim it first, so the newest connection anywhere wins
    // [MQTT-3.1.4-2] and a persistent session comes here (session_moves.cc).
    if (!p->claim_sent) {
      p->claim_sent = true;
      p->claiming = &broker_;
      broker_.claim_started(p->client_id);
      stats_.session_fetches.add();
      c.pause_reading();
      router.claim(p->client_id, !p->clean,
                   [this, id = c.id(), p, cid = p->client_id](Router::Claim r) mutable {
                     // A failed post (loop stopping) drops the answer with the task.
                     loop_.post([this, id, p, cid = std::move(cid), r = std::move(r)]() mutable {
                       claim_done(id, p, cid, std::move(r));
                     });
                   });
    }
    return Action::kKeep;
  }
  Session* fresh = nullptr;
  auto claim = broker_.registry().claim(p->client_id, loop_.index(), c.id(), [&] {
    fresh = new Session(p->client_id);
    return fresh;
  });
  // A session here under a newer ticket: another connection claimed the id after this one.
  if (claim.kind != ClientRegistry::ClaimKind::kCreated && p->ticket != 0 &&
      claim.entry.ticket != 0 && newer_claim(claim.entry.ticket, p->ticket))
    return superseded_connect(c, p);
  switch (claim.kind) {
    case ClientRegistry::ClaimKind::kCreated:
      return attach(c, fresh, p, false);  // no stored session here [MQTT-3.2.2-3]
    case ClientRegistry::ClaimKind::kLocal: {
      Session* s = claim.entry.session;
      take_over(*s);  // the existing client, if any, is disconnected [MQTT-3.1.4-2]
      // A clean start discards the stored session [MQTT-3.1.2-6]; so does a session another
      // process held meanwhile (this one is stale: the image, if any, replaces it).
      const bool reset = p->clean || s->clean || p->elsewhere;
      if (reset) reset_session(*s);
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
    case ClientRegistry::ClaimKind::kRemote:
      return start_handover(c, p, claim.entry);
  }
  return Action::kClose;
}

Action MqttHandler::attach(Connection& c, Session* s, PendingConnect* p, bool present) {
  if (p->image) {
    // The session another process gave up for this CONNECT (it replaces any stale one here).
    if (install_image(*s, *p->image)) present = !p->clean;
    p->image.reset();
  }
  if (p->claim_done) broker_.registry().set_ticket(s->client_id(), s, p->ticket);
  p->settle_claim();
  if (s->offline) {
    s->offline = false;
    stats_.sessions_offline.sub();
  }
  offline_timers_.disarm(*s);  // back online: no expiry (a delayed will went in take_over)
  s->conn = &c;
  s->version = p->version;
  // 5.0: the session outlives the connection only with a Session Expiry Interval.
  s->clean = is_v5(p->version) ? p->session_expiry_s == 0 : p->clean;
  s->disconnected = false;
  s->set_will(std::move(p->will));
  broker_.client_log().connected(c, s->client_id(), p->version, p->keep_alive_s, present,
                                 p->username.value_or(""));
  if (broker_.authorizer().uses_username()) s->set_username(std::move(p->username));
  else s->set_username(std::nullopt);
  s->connected_since_s = static_cast<uint32_t>(::time(nullptr));
  if (is_v5(p->version) || s->extra) {
    SessionExtra& x = s->extra_ref();
    x.session_expiry_s = is_v5(p->version) ? p->session_expiry_s : 0;
    x.max_packet_size = p->max_packet_size;
    x.receive_maximum = p->receive_maximum;
    x.topic_aliases.reset();  // aliases live as long as the connection (5.0 §3.3.2.3.4)
  }
  if (store_) {
    // A persistent session is written (whole, the first time: it may have come from another
    // process); one that now ends with its connection leaves the store.
    if (s->clean)
      store_->drop_session(*s);
    else if (s->stored)
      store_->save_session(*s);
    else
      store_whole_session(*s);
  }
  const uint16_t keep_alive_s = p->keep_alive_s;
  const bool assigned_id = p->assigned_id;
  c.set_user_data(s);
  delete p;
  broker_.registry().set_conn(s->client_id(), s, c.id());
  stats_.sessions_connected.add();
  // Keep-alive on the engine's timer wheel, replacing the CONNECT deadline: every complete
  // packet pushes it [MQTT-3.1.2-24]; a partial one does not (the engine counts only input
  // the handler consumes), so a packet trickled without end cannot keep the connection.
  c.set_timeout(keep_alive_s ? static_cast<uint32_t>(keep_alive_s) * 1500u : 0u);
  send_connack_success(c, *s, present, assigned_id);
  if (s->has_queues()) {
    resend_inflight(*s);  // [MQTT-4.4.0-1]
    pump(*s);
  }
  return Action::kKeep;
}

void MqttHandler::send_connack_success(Connection& c, Session& s, bool present, bool assigned_id) {
  if (s.is_v5()) {
    // What this server supports, so the client need not guess (5.0 §3.2.2.3). Retain,
    // wildcards, shared subscriptions and QoS 2 are available: the defaults, not sent.
    props_scratch_.resize(64 + s.client_id().size());
    mqtt::PropertyBuilder b(props_scratch_);
    // Required when we assigned the id [MQTT-3.2.2-16]; handle_connect made sure it fits.
    if (assigned_id) b.add(PropertyId::kAssignedClientIdentifier, s.client_id());
    // The rest only as far as the client's Maximum Packet Size allows [MQTT-3.1.2-24], most
    // useful first: the limits it must keep to (over them it is disconnected, 0x95 / 0x93),
    // then what an absent property says safely enough (Topic Alias Maximum absent is 0, so the
    // client uses no aliases; shared subscriptions are available, the default).
    const std::pair<PropertyId, uint32_t> optional[] = {
        {PropertyId::kMaximumPacketSize,
         static_cast<uint32_t>(std::min<size_t>(cfg_.max_packet_size, mqtt::kMaxVarInt + 5))},
        {PropertyId::kReceiveMaximum, server_receive_maximum()},
        {PropertyId::kTopicAliasMaximum, kTopicAliasMaximum},
    };
    const uint32_t limit = s.max_packet_size();
    for (const auto& [id, value] : optional) {
      std::array<std::byte, 8> one;
      const size_t wire = mqtt::PropertyBuilder(one).add(id, value).size();
      if (limit == 0 || connack_size(b.size() + wire) <= limit) b.add(id, value);
    }
    send_connack_v5(c, present, ReasonCode::kSuccess, b.properties(), limit);
  } else {
    send_connack(c, s.version, present, 0x00);
  }
}

}  // namespace tcpms::broker
