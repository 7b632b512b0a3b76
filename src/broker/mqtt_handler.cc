// MqttHandler: engine callbacks, packet dispatch, protocol violations and DISCONNECT. The
// other concerns of the handler are in the files mqtt_handler.h lists.
#include "broker/mqtt_handler.h"

#include <spdlog/spdlog.h>

#include "broker/pending_connect.h"

namespace tcpms::broker {

using mqtt::PacketType;
using mqtt::PropertyId;
using mqtt::ReasonCode;

MqttHandler::MqttHandler(Broker& broker, EventLoop& loop)
    : broker_(broker),
      loop_(loop),
      cfg_(broker.config()),
      rate_limited_(cfg_.client_messages_per_s > 0 || cfg_.client_bytes_per_s > 0),
      pos_(broker.loop_position(loop.index())) {
  tree_.set_filter_events(broker_.router().wants_filter_events());
  if (store::StoreWriter* w = broker_.store()) {
    store_ = std::make_unique<SessionStore>(*w);
    if (store_->strict()) {
      gate_ = std::make_unique<DurableGate>(loop_, broker_);
      // Called on the store thread after a commit this loop waits for.
      store_listener_ = w->add_listener([this](uint64_t durable) {
        loop_.post([this, durable] { on_durable(durable); });
      });
    }
    // The sessions read back for this loop, before it runs (so before any CONNECT).
    std::vector<store::RecoveredSession> mine = broker_.take_recovered(loop_.index());
    install_recovered(mine);
  }
}

MqttHandler::~MqttHandler() {
  // Offline persistent sessions still owned by this loop (connected ones were closed by the
  // loop's destructor, which ran on_close for each).
  std::vector<Session*> owned;
  broker_.registry().for_each_owned_by(loop_.index(), [&](const RegistryEntry& e) {
    owned.push_back(e.session);
  });
  for (Session* s : owned) {
    if (s->extra && s->extra->shared)
      for (const SharedSub& sub : *s->extra->shared) broker_.shared().leave(sub.group, s, nullptr);
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
  // A CONNECT must arrive within the deadline counted from accept, and be answered within as
  // much again from its arrival (handle_connect re-arms it)
  // (Mosquitto has none by default; a peer that opens sockets and says nothing, or sends its
  // CONNECT a byte at a time, would hold them forever). A fixed deadline: bytes do not push it.
  conn.set_deadline(cfg_.connect_timeout_ms);
  return Action::kKeep;
}

DataResult MqttHandler::on_data(Connection& conn, ByteView data) {
  if (held_for_handover_) {
    // The upgrade handover: nothing is read while connections move (upgrade_handover.cc).
    held_conns_.push_back(conn.id());
    return {0, Action::kKeep};
  }
  Action action = Action::kKeep;
  size_t used = process(conn, data, action);
  return {used, action};
}

Action MqttHandler::on_peer_shutdown(Connection& conn) {
  if (held_for_handover_) {
    // What the client sent before its FIN (a DISCONNECT, say) is held unread: the FIN is
    // decided once that is read, here after a rollback or in the new process (which reads
    // the FIN again), so a will goes out exactly when the client left without DISCONNECT.
    held_conns_.push_back(conn.id());
    return Action::kKeep;
  }
  return Action::kCloseAfterFlush;
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
    if (f.header.type == PacketType::kPublish && user != nullptr &&
        (!links_admit_publish(c) ||
         (rate_limited_ && !admit_publish(c, *static_cast<Session*>(user), f.header.packet_size())))) {
      return off;  // reading paused; the rest is presented again when it resumes
    }
    const size_t start = off;
    off += f.header.packet_size();
    Action a = handle_packet(c, f.header, f.body);
    if (a != Action::kKeep) {
      action = a;
      return data.size();
    }
    if (replay_packet_) {
      // Its authorization is being fetched: the engine keeps it (reading is paused) and
      // presents it again once the answer is in.
      replay_packet_ = false;
      return start;
    }
    if (stop_after_packet_) {
      stop_after_packet_ = false;
      return off;
    }
  }
  return off;
}

Action MqttHandler::on_timeout(Connection& conn) {
  void* user = conn.user_data();
  if (user == nullptr) {
    // Its CONNECT may be in the socket already, unread only because this loop is behind (a
    // login storm on an oversubscribed box: epoll hands out a batch at a time, and timers run
    // between batches). Then the client was in time; read it first. A peer trickling a byte
    // at a time is read as it sends, so a deadline finds nothing waiting and cuts it.
    if (conn.unread_bytes() > 0) {
      conn.set_deadline(cfg_.connect_timeout_ms);
      return Action::kKeep;
    }
    stats_.connect_timeouts.add();
    spdlog::debug("mqtt: no CONNECT within {} ms; closing", cfg_.connect_timeout_ms);
    return Action::kClose;
  }
  if (kind_of(user) == ConnStateKind::kPendingConnect) {
    // The server's own work did not finish in time (the client did its part): worth a line.
    stats_.login_timeouts.add();
    const auto& p = *static_cast<PendingConnect*>(user);
    const std::string_view waiting =
        p.auth_cancelled && !p.claim_sent ? "its authentication"
        : p.claim_sent && !p.claim_done   ? "the claim of its id (router)"
        : p.claim_done                    ? "its session (claimed, not yet attached)"
                                          : "this loop";
    note_login_timeout(p.client_id, waiting);
    return Action::kClose;
  }
  // 1.5 x Keep Alive without a packet: close as if the network failed, so the will is
  // published [MQTT-3.1.2-24].
  stats_.keepalive_expired.add();
  Session& s = *static_cast<Session*>(user);
  spdlog::debug("mqtt: client {} keep-alive expired", s.client_id());
  note_close(conn, "keep-alive timeout (nothing from the client for 1.5 x its Keep Alive)");
  if (s.is_v5()) {
    send_disconnect(conn, ReasonCode::kKeepAliveTimeout);  // 5.0 §3.1.2.10
    return Action::kCloseAfterFlush;
  }
  return Action::kClose;
}

// A login storm can time out thousands at once: the first, then one line per 10 s at most.
void MqttHandler::note_login_timeout(std::string_view client_id, std::string_view waiting) {
  ++login_timeouts_unlogged_;
  const uint64_t now = loop_.now_ms();
  if (last_login_timeout_log_ms_ != 0 && now - last_login_timeout_log_ms_ < 10000) return;
  last_login_timeout_log_ms_ = now;
  spdlog::warn("mqtt: loop {}: {} CONNECT(s) not answered within {} ms of their arrival, closed; "
               "the last, of client '{}', was waiting for {}",
               loop_.index(), std::exchange(login_timeouts_unlogged_, 0), cfg_.login_timeout_ms,
               client_id, waiting);
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
  if (user == nullptr) {
    if (!close_notes_.empty()) close_notes_.erase(conn.id().value);
    return;
  }
  if (kind_of(user) == ConnStateKind::kPendingConnect) {
    conn.set_user_data(nullptr);
    if (!close_notes_.empty()) close_notes_.erase(conn.id().value);
    delete static_cast<PendingConnect*>(user);
    return;
  }
  Session& s = *static_cast<Session*>(user);
  // The will goes out on any loss but DISCONNECT [MQTT-3.1.2-8], [MQTT-3.14.4-3]; not when
  // the whole server stops.
  detach_connection(s, reason != CloseReason::kShutdown, close_reason_text(conn, s, reason));
}

void MqttHandler::note_close(Connection& c, const char* why) {
  if (broker_.client_log().enabled()) close_notes_[c.id().value] = why;
}

std::string_view MqttHandler::close_reason_text(Connection& c, Session& s, CloseReason reason) {
  if (!close_notes_.empty()) {
    if (auto it = close_notes_.find(c.id().value); it != close_notes_.end()) {
      close_text_ = it->second;
      close_notes_.erase(it);
      return close_text_;
    }
  }
  if (s.disconnected) return "client sent DISCONNECT";
  switch (reason) {
    case CloseReason::kPeerClosed: return "connection closed by the client without DISCONNECT";
    case CloseReason::kPeerReset: return "connection reset by the client";
    case CloseReason::kIoError: return "socket error";
    case CloseReason::kIdleTimeout: return "keep-alive timeout";
    case CloseReason::kProtocol: return "closed by the broker";
    case CloseReason::kOutputOverflow: return "output over its hard limit (the client does not read)";
    case CloseReason::kInputOverflow: return "a partial packet over the input limit";
    case CloseReason::kKicked: return "kicked by the admin API";
    case CloseReason::kShutdown: return "server shutting down";
    default: break;
  }
  return close_reason_name(reason);
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
  if (s != nullptr) note_close(c, what);
  if (s != nullptr && s->is_v5()) {
    // 5.0: say why before closing [MQTT-4.13.1-1] (never before CONNACK: s is set once
    // CONNACK went out).
    send_disconnect(c, code);
    return Action::kCloseAfterFlush;
  }
  return Action::kClose;
}

Action MqttHandler::handle_packet(Connection& c, const mqtt::FixedHeader& h, mqtt::Bytes body) {
  stats_.packets_in[static_cast<uint8_t>(h.type) & 15].add();  // a replayed packet twice
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
    if (d->reason != ReasonCode::kSuccess) {
      note_close(c, "client sent DISCONNECT with a reason code (will published)");
      return Action::kClose;
    }
  }
  s.disconnected = true;  // discard the will [MQTT-3.14.4-3]
  s.take_will();
  return Action::kClose;
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

}  // namespace tcpms::broker
