// MqttHandler, the part that moves persistent sessions between processes (worker processes,
// cluster nodes): a CONNECT that asks the others for its session (Router::fetch_session), and
// the holder's side, which takes the client over and gives the session up as an image
// (session_image.h). The rest of the handler is mqtt_handler.cc; the protocol is in
// docs/mqtt.md, "Sessions across processes".
#include <spdlog/spdlog.h>

#include "broker/mqtt_handler.h"
#include "broker/pending_connect.h"
#include "broker/session_image.h"
#include "mqtt/topic.h"

namespace tcpms::broker {

using mqtt::QoS;
using mqtt::ReasonCode;


Action MqttHandler::fetch_session(Connection& c, Session* fresh, PendingConnect* p) {
  // Until the answer comes, a second CONNECT for the id meets kBusy and retries, and the
  // session is neither exported nor handed to another loop.
  broker_.registry().set_fetching(p->client_id, fresh, true);
  fresh->clean = false;  // CleanSession 0: a push meanwhile is kept for the connection
  stats_.session_fetches.add();
  c.pause_reading();
  // The answer comes on any thread; the connection may be gone by then (checked on the loop).
  broker_.router().fetch_session(
      p->client_id, [this, id = c.id(), p, fresh, cid = p->client_id](
                        std::optional<std::string> image) mutable {
        // A failed post (loop stopping) drops the image with the task; the handler's
        // destructor frees the fresh session, still registered to this loop.
        loop_.post([this, id, p, fresh, cid = std::move(cid), image = std::move(image)]() mutable {
          fetch_done(cid, id, p, fresh, std::move(image));
        });
      });
  return Action::kKeep;
}

void MqttHandler::fetch_done(const std::string& client_id, ConnId conn, PendingConnect* p,
                             Session* s, std::optional<std::string> image) {
  auto e = broker_.registry().find(client_id);
  if (!e || e->session != s || !e->fetching) return;  // not ours any more (cannot happen)
  broker_.registry().set_fetching(client_id, s, false);
  bool present = false;
  if (image) {
    SessionImageResult d = decode_session_image(as_bytes(*image));
    if (d.ok()) {
      import_image(*s, d.image);
      stats_.sessions_imported.add();
      present = true;
    } else {
      stats_.session_images_bad.add();
      spdlog::warn("mqtt: session image for '{}' refused: {}", client_id, d.error);
    }
  }
  Connection* c = loop_.find(conn);
  if (c != nullptr && c->user_data() == p) {
    after_async(*c, attach(*c, s, p, present));  // session present [MQTT-3.2.2-2]
    return;
  }
  // The connection went away while we asked. A session that came is kept (nothing lost); a
  // fresh one has nothing worth keeping.
  if (present) {
    s->clean = false;
    s->offline = true;
    stats_.sessions_offline.add();
    broker_.registry().set_conn(client_id, s, ConnId{});
    broker_.router().on_client_disconnected(client_id, true);
    if (store_) store_whole_session(*s);
  } else {
    discard_session(s);
  }
}

void MqttHandler::export_session(const std::string& client_id, Session* s,
                                 std::shared_ptr<Broker::SessionDoneOnce> done) {
  auto e = broker_.registry().find(client_id);
  if (!e) {
    (*done)(std::nullopt);
    return;
  }
  if (e->in_transit) {
    // Moving between this process's loops: ask its new loop once the move is done.
    // A post, not a timer: a task dropped at shutdown is destroyed while every loop still
    // exists (TaskQueue::close), and destroying `done` answers the asking process.
    loop_.post([this, client_id, done] { broker_.export_session(client_id, done); });
    return;
  }
  // A CONNECT here is itself asking for it (two connects racing): nothing to give yet.
  if (e->fetching) {
    (*done)(std::nullopt);
    return;
  }
  if (e->session != s || e->loop != loop_.index()) {
    broker_.export_session(client_id, std::move(done));  // replaced or moved meanwhile
    return;
  }
  take_over(*s);  // [MQTT-3.1.4-2]
  // 5.0 sessions do not cross processes (session images carry 3.x state only, docs/mqtt.md):
  // the client starts over where it reconnected, as for a clean session.
  if (s->clean || s->is_v5()) {
    end_session(s);  // a clean session ends with its connection [MQTT-3.1.2-6]
    (*done)(std::nullopt);
    return;
  }
  std::string image = encode_image(*s);
  end_session(s);  // subscriptions out of the tree (filter events), counters, registry
  stats_.sessions_exported.add();
  (*done)(std::move(image));
}

void MqttHandler::adopt_session(const std::string& client_id, std::string image) {
  SessionImageResult d = decode_session_image(as_bytes(image));
  if (!d.ok()) {
    stats_.session_images_bad.add();
    spdlog::warn("mqtt: late session image for '{}' refused: {}", client_id, d.error);
    return;
  }
  Session* fresh = nullptr;
  auto claim = broker_.registry().claim(client_id, loop_.index(), ConnId{}, [&] {
    fresh = new Session(client_id);
    return fresh;
  });
  if (claim.kind != ClientRegistry::ClaimKind::kCreated) {
    broker_.count_adopt_dropped();
    spdlog::warn("mqtt: late session image for '{}' dropped: the id has a session here",
                 client_id);
    return;
  }
  import_image(*fresh, d.image);
  stats_.sessions_imported.add();
  fresh->offline = true;
  stats_.sessions_offline.add();
  broker_.router().on_client_disconnected(client_id, true);  // kept here, offline
  if (store_) store_whole_session(*fresh);
}

void MqttHandler::drop_session(const std::string& client_id, Session* s) {
  auto e = broker_.registry().find(client_id);
  if (!e || e->session != s || e->fetching) return;  // gone, replaced, or a CONNECT here asks
  if (e->in_transit || e->loop != loop_.index()) {
    loop_.run_after(5, [this, client_id] { broker_.drop_session(client_id); });
    return;
  }
  take_over(*s);  // [MQTT-3.1.4-2]
  end_session(s);  // discarded even if persistent: the client started over elsewhere [MQTT-3.1.2-6]
}

void MqttHandler::take_over(Session& s) {
  if (s.conn == nullptr) return;
  Connection* old = s.conn;
  stats_.takeovers.add();
  const bool was_clean = s.clean;
  const bool old_v5 = s.is_v5();
  if (old_v5) send_disconnect(*old, ReasonCode::kSessionTakenOver);
  s.clean = false;  // keep the object: the caller decides
  detach_connection(s, true);
  s.clean = was_clean;
  if (old_v5)
    old->close_after_flush();
  else
    old->close(CloseReason::kKicked);
}

void MqttHandler::end_session(Session* s) {
  std::string id(s->client_id());
  discard_session(s);
  broker_.router().on_session_ended(id);
}

std::string MqttHandler::encode_image(Session& s) {
  SessionImage img;
  img.version = s.version;
  for (SubRecord& r : s.subs)
    img.subscriptions.push_back({std::string(tree_.filter_of(r.node)),
                                 r.node->entries()[r.index].qos(), static_cast<uint8_t>(r.options),
                                 r.subscription_id});
  if (s.has_queues()) {
    SessionQueues& q = *s.queues_;
    img.last_packet_id = q.last_packet_id();
    img.inflight = q.inflight();
    img.incoming = q.incoming();
    size_t bytes = 0;
    for (const OutMessage& m : img.inflight) bytes += m.topic.size() + m.payload.size() + 16;
    size_t left_out = 0;
    for (const OutMessage& m : q.queued()) {
      bytes += m.topic.size() + m.payload.size() + 16;
      if (bytes > cfg_.max_session_image_bytes) {
        ++left_out;  // the link between processes would refuse it whole
        continue;
      }
      img.queued.push_back(m);
    }
    if (left_out != 0) {
      stats_.queue_dropped.add(left_out);
      spdlog::warn("mqtt: session '{}' moves without {} queued messages (image over {} bytes)",
                   s.client_id(), left_out, cfg_.max_session_image_bytes);
    }
  }
  std::string out;
  encode_session_image(img, out);
  return out;
}

void MqttHandler::import_image(Session& s, SessionImage& img) {
  s.clean = false;
  s.version = img.version;
  s.match_epoch = 0;
  for (const ImageSubscription& sub : img.subscriptions) {
    // Checked against this process's limits too; a filter refused here is left out.
    if (mqtt::validate_topic_filter(sub.filter, cfg_.max_topic_levels) != mqtt::TopicError::kOk ||
        mqtt::is_shared_subscription(sub.filter))
      continue;
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
