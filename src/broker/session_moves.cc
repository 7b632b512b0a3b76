// MqttHandler, the part that moves sessions between processes (worker processes, cluster
// nodes): a CONNECT's claim of its client id and the session that comes with it, the holder's
// side of a claim made elsewhere (it gives the session up as an image, session_image.h), a
// late image kept here, and a takeover. The protocol is in src/routing/peer_router.h and
// docs/mqtt.md, "Sessions across processes".
#include <spdlog/spdlog.h>

#include "broker/mqtt_handler.h"
#include "broker/pending_connect.h"
#include "broker/session_image.h"
#include "mqtt/topic.h"

namespace tcpms::broker {

using mqtt::QoS;
using mqtt::ReasonCode;

void MqttHandler::claim_done(ConnId conn, PendingConnect* p, const std::string& client_id,
                             Router::Claim r) {
  Connection* c = loop_.find(conn);
  if (c == nullptr || c->user_data() != p) {
    // The connection went away while its id was claimed (`p` is gone with it).
    settle_claim_without_connection(client_id, std::move(r));
    return;
  }
  if (r.timed_out && !p->clean) {
    // A persistent CONNECT whose claim went unanswered: its stored session may be on the
    // process that did not answer (a home too busy to reply in time, in a login storm on an
    // oversubscribed box). Going on would give the client an empty session and strand the
    // stored one with its queued messages; "server unavailable" makes it come back for it.
    // A clean CONNECT wants no session and goes on.
    stats_.connects_refused.add();
    stats_.claims_unanswered_refused.add();
    spdlog::info("mqtt: client '{}': refused (server unavailable) for now: its session could "
                 "not be looked for in time", client_id);
    p->settle_claim();
    send_connack(*c, p->version, false,
                 static_cast<uint8_t>(mqtt::ConnectReturnCode::kServerUnavailable),
                 p->max_packet_size);
    c->close_after_flush();
    settle_claim_without_connection(client_id, std::move(r));
    return;
  }
  p->claim_done = true;
  p->ticket = r.ticket;
  p->elsewhere = r.elsewhere;
  p->image = std::move(r.image);
  after_async(*c, continue_connect(*c, p));
}

void MqttHandler::settle_claim_without_connection(const std::string& client_id, Router::Claim r) {
  // The id is registered to this process now: a session that came is kept here, offline, so
  // nothing is lost; a session already here takes the new ticket; else the claim is released.
  if (r.image) {
    broker_.adopt_session(client_id, std::move(*r.image), r.ticket);
  } else if (r.ticket != 0) {
    auto e = broker_.registry().find(client_id);
    if (e && !r.elsewhere)
      broker_.registry().set_ticket(client_id, e->session, r.ticket);
    else
      broker_.router().release(client_id, r.ticket);
  }
}

Action MqttHandler::superseded_connect(Connection& c, PendingConnect* p) {
  // A newer connection with this client id was claimed before this one could attach: this one
  // is taken over [MQTT-3.1.4-2]. Its CONNECT was valid, so it gets its CONNACK first
  // [MQTT-3.1.4-4] (a 5.0 client then DISCONNECT 0x8E), and its will goes out as any
  // taken-over client's does, unless it has a delay: the session carries on with the newer
  // connection before the delay ends [MQTT-3.1.3-9].
  stats_.takeovers.add();
  spdlog::debug("mqtt: client '{}': a newer connection took the id before CONNACK", p->client_id);
  p->settle_claim();
  send_connack(c, p->version, false, 0x00);
  if (is_v5(p->version)) send_disconnect(c, ReasonCode::kSessionTakenOver);
  std::unique_ptr<Will> will = std::move(p->will);
  if (will && will->delay_s == 0) publish_will(std::move(will));
  return Action::kCloseAfterFlush;
}

void MqttHandler::surrender_session(const std::string& client_id, Session* s, uint32_t ticket,
                                    bool want_image,
                                    std::shared_ptr<Broker::SessionDoneOnce> done) {
  auto e = broker_.registry().find(client_id);
  if (!e) {
    (*done)(std::nullopt);
    return;
  }
  if (e->in_transit) {
    // Moving between this process's loops: ask its new loop once the move is done. A post,
    // not a timer: a task dropped at shutdown is destroyed while every loop still exists
    // (TaskQueue::close), and destroying `done` answers the asking process.
    loop_.post([this, client_id, ticket, want_image, done] {
      broker_.surrender_session(client_id, ticket, want_image, done);
    });
    return;
  }
  if (e->session != s || e->loop != loop_.index()) {
    broker_.surrender_session(client_id, ticket, want_image, std::move(done));  // moved meanwhile
    return;
  }
  if (e->ticket != ticket) {
    // Registered under another claim (a newer connection here): not the session asked for.
    (*done)(std::nullopt);
    return;
  }
  take_over(*s);  // [MQTT-3.1.4-2]
  if (want_image && !s->clean) {
    // The session carries on elsewhere (take_over dropped a will waiting for its delay).
    std::string image = encode_image(*s);
    // (The release that follows is ignored by a home that names the claimer already.)
    discard_session(s);
    stats_.sessions_exported.add();
    (*done)(std::move(image));
    return;
  }
  // A clean start elsewhere ends the session [MQTT-3.1.2-6] (a delayed will goes out now).
  discard_session(s);
  (*done)(std::nullopt);
}

void MqttHandler::adopt_session(const std::string& client_id, std::string image,
                                uint32_t ticket) {
  Session* fresh = nullptr;
  auto claim = broker_.registry().claim(client_id, loop_.index(), ConnId{}, [&] {
    fresh = new Session(client_id);
    return fresh;
  });
  if (claim.kind != ClientRegistry::ClaimKind::kCreated) {
    broker_.count_adopt_dropped();
    spdlog::warn("mqtt: late session image for '{}' dropped: the id has a session here",
                 client_id);
    if (ticket != 0) broker_.claim_answered_late(client_id, ticket);  // the session here takes it
    return;
  }
  if (!install_image(*fresh, image)) {
    broker_.registry().remove(client_id, fresh);
    delete fresh;
    if (ticket != 0) broker_.claim_answered_late(client_id, ticket);  // the home forgets it
    return;
  }
  fresh->offline = true;
  stats_.sessions_offline.add();
  arm_offline_timers(*fresh);
  if (store_) store_whole_session(*fresh);
  if (ticket != 0) {
    broker_.registry().set_ticket(client_id, fresh, ticket);  // claimed here for it
    return;
  }
  // Registered at the id's home only if nobody holds the id now (a newer session anywhere
  // wins, and this one is then given up like any stale one).
  broker_.router().enroll(client_id, 0);
}

void MqttHandler::take_over(Session& s) {
  // A new connection for the id is opening (every caller is one): a will still waiting for its
  // delay is not published [MQTT-3.1.2-8], [MQTT-3.1.3-9], whether the new connection
  // continues the session or starts a new one; a will without a delay goes out at once.
  if (s.conn == nullptr) {
    drop_delayed_will(s);
    return;
  }
  Connection* old = s.conn;
  stats_.takeovers.add();
  const bool was_clean = s.clean;
  if (s.is_v5()) send_disconnect(*old, ReasonCode::kSessionTakenOver);
  s.clean = false;  // keep the object: the caller decides
  detach_connection(s, true, "taken over by a new connection with the same client id");  // a will with a delay is parked as delayed_will, then dropped
  s.clean = was_clean;
  drop_delayed_will(s);
  // Flushed first: the old connection may have been answered in this very loop iteration,
  // and its CONNACK (every valid CONNECT gets one [MQTT-3.1.4-4]) must reach it before it is
  // disconnected, as must a 5.0 client's DISCONNECT 0x8E.
  old->close_after_flush(CloseReason::kKicked);
}

void MqttHandler::drop_delayed_will(Session& s) {
  if (!s.extra || !s.extra->delayed_will) return;
  s.extra->delayed_will.reset();
  if (store_) store_->will_deleted(s);
}

bool MqttHandler::install_image(Session& s, const std::string& bytes) {
  SessionImageResult d = decode_session_image(as_bytes(bytes), steady_ms());
  if (!d.ok()) {
    stats_.session_images_bad.add();
    spdlog::warn("mqtt: session image for '{}' refused: {}", s.client_id(), d.error);
    return false;
  }
  import_image(s, d.image);
  stats_.sessions_imported.add();
  return true;
}

std::string MqttHandler::encode_image(Session& s) {
  std::string out;
  encode_session_image(image_of(s, cfg_.max_session_image_bytes), out, steady_ms());
  return out;
}

SessionImage MqttHandler::image_of(Session& s, size_t max_bytes) {
  SessionImage img;
  img.version = s.version;
  img.session_expiry_s = s.is_v5() && s.extra ? s.extra->session_expiry_s : 0;
  for (SubRecord& r : s.subs)
    img.subscriptions.push_back({std::string(tree_.filter_of(r.node)),
                                 r.node->entries()[r.index].qos(), static_cast<uint8_t>(r.options),
                                 uint32_t{r.subscription_id}});
  if (s.extra && s.extra->shared)
    for (const SharedSub& e : *s.extra->shared)
      img.subscriptions.push_back({subscribed_filter(e), e.qos, e.options, e.subscription_id});
  if (s.has_queues()) {
    SessionQueues& q = *s.queues_;
    img.last_packet_id = q.last_packet_id();
    img.inflight = q.inflight();
    img.incoming = q.incoming();
    size_t bytes = 0;
    auto cost = [](const OutMessage& m) {
      return m.topic.size() + m.payload.size() + m.props.wire.size() + m.sub_ids.size() + 32;
    };
    for (const OutMessage& m : img.inflight) bytes += cost(m);
    size_t left_out = 0;
    for (const OutMessage& m : q.queued()) {
      bytes += cost(m);
      if (bytes > max_bytes) {
        ++left_out;  // the link between processes would refuse it whole
        continue;
      }
      img.queued.push_back(m);
    }
    if (left_out != 0) {
      stats_.queue_dropped.add(left_out);
      spdlog::warn("mqtt: session '{}' moves without {} queued messages (image over {} bytes)",
                   s.client_id(), left_out, max_bytes);
    }
  }
  return img;
}

void MqttHandler::import_image(Session& s, SessionImage& img) {
  // Whatever the store had of a session here goes; the merged session is written whole once
  // it is installed (attach, adopt_session: store_whole_session).
  if (store_) store_->drop_session(s);
  s.clean = false;
  s.version = img.version;
  s.match_epoch = 0;
  if (img.version == mqtt::ProtocolVersion::kV5) s.extra_ref().session_expiry_s = img.session_expiry_s;
  for (const ImageSubscription& sub : img.subscriptions) {
    // Checked against this process's limits too; a filter refused here is left out.
    if (mqtt::validate_topic_filter(sub.filter, cfg_.max_topic_levels) != mqtt::TopicError::kOk)
      continue;
    if (const auto shared = mqtt::parse_shared_subscription(sub.filter)) {
      add_shared(s, shared->share_name, shared->filter, sub.qos, sub.options, sub.subscription_id);
      continue;
    }
    add_subscription(s, sub.filter, sub.qos, nullptr, sub.options, sub.subscription_id);
  }
  update_subscription_count();
  if (img.inflight.empty() && img.queued.empty() && img.incoming.empty()) return;
  SessionQueues& q = s.queues();
  q.set_last_packet_id(img.last_packet_id);
  for (OutMessage& m : img.inflight)
    if (q.restore_inflight(std::move(m))) stats_.inflight_messages.add();
  for (OutMessage& m : img.queued) queue_message(s, std::move(m));  // bounded, counted
  for (uint16_t id : img.incoming)
    if (!q.incoming_seen(id)) q.incoming_add(id);
  s.trim();
}

}  // namespace tcpms::broker
