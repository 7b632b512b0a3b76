// MqttHandler, the upgrade handover (SIGUSR2, docs/upgrade.md): a connection and its session
// leave for the process replacing this one with their TCP socket (export_state, then
// on_handed_over here) and arrive there (import_state). The bytes are a ConnectionImage
// (connection_image.h), which carries the session as a SessionImage, the same image a session
// moving between worker processes travels as.
//
// While the connections move, no loop of this process reads anything (hold_input): a client
// still here could otherwise publish to a subscriber already gone to the new process, and a
// message delivered to a parked connection after its state was exported would be lost. The
// bytes a held connection sends meanwhile stay unread with the engine and travel with it (or
// are read here once the handover is rolled back).
#include <spdlog/spdlog.h>

#include "broker/connection_image.h"
#include "broker/mqtt_handler.h"
#include "broker/pending_connect.h"

namespace tcpms::broker {

namespace {

std::string copy(const SharedBytes& b) { return std::string(as_chars(b.view())); }
SharedBytes shared(const std::string& s) { return SharedBytes::copy_of(as_bytes(s)); }

WillImage image_of_will(const Will& w) {
  return WillImage{w.qos, w.retain, copy(w.topic), copy(w.payload), copy(w.props), w.expiry_s,
                   w.delay_s};
}

std::unique_ptr<Will> will_of_image(const WillImage& i) {
  auto w = std::make_unique<Will>();
  w->topic = shared(i.topic);
  w->payload = shared(i.payload);
  w->qos = i.qos;
  w->retain = i.retain;
  if (!i.props.empty()) w->props = shared(i.props);
  w->expiry_s = i.expiry_s;
  w->delay_s = i.delay_s;
  return w;
}

}  // namespace

void MqttHandler::hold_input_for_handover(bool hold) {
  held_for_handover_ = hold;
  if (hold) return;
  run_offline_timers();  // those that came due while held
  // Rolled back: what the held connections sent meanwhile is read now, and a FIN behind it.
  for (ConnId id : held_conns_) {
    Connection* c = loop_.find(id);
    if (c == nullptr) continue;
    c->pause_reading();
    c->resume_reading();  // presents the kept bytes again, then reads on
  }
  held_conns_.clear();
}

bool MqttHandler::export_state(Connection& c, std::string& state) {
  ConnectionImage img;
  void* user = c.user_data();
  if (user == nullptr) {  // no CONNECT yet: the new process reads it
    encode_connection_image(img, state, steady_ms());
    return true;
  }
  // A CONNECT being decided (authentication, a claim, a session coming from another loop)
  // stays.
  if (kind_of(user) != ConnStateKind::kSession) return false;
  Session& s = *static_cast<Session*>(user);
  if (s.disconnected) return false;  // DISCONNECT received: closing
  // An acknowledgement still waiting for the store (every-message sync) cannot travel: it
  // stays, and is closed; the client sends that message again on reconnecting. (The old
  // process lets its store catch up before the first connection moves, so this is rare.)
  if (gate_ && gate_->holds(c.id())) return false;
  img.connected = true;
  img.client_id = std::string(s.client_id());
  img.clean = s.clean;
  img.connected_since_s = s.connected_since_s;
  if (s.extra) {
    const SessionExtra& x = *s.extra;
    img.max_packet_size = x.max_packet_size;
    img.receive_maximum = x.receive_maximum;
    img.username = x.username;
    if (x.will) img.will = image_of_will(*x.will);
    if (x.topic_aliases)
      for (const SharedBytes& t : *x.topic_aliases) img.topic_aliases.push_back(copy(t));
  }
  // Every queued message travels: the socket does not wait on the size of the image.
  img.session = image_of(s, SIZE_MAX);
  encode_connection_image(img, state, steady_ms());
  return true;
}

bool MqttHandler::import_state(Connection& c, ByteView state) {
  ConnectionImageResult d = decode_connection_image(state, steady_ms());
  if (!d.ok()) {
    stats_.session_images_bad.add();
    spdlog::warn("upgrade: a handed-over MQTT connection refused: {}", d.error);
    return false;
  }
  ConnectionImage& img = d.image;
  if (!img.connected) return true;  // its CONNECT comes next, as on any new connection
  Session* fresh = nullptr;
  auto claim = broker_.registry().claim(img.client_id, loop_.index(), c.id(), [&] {
    fresh = new Session(img.client_id);
    return fresh;
  });
  if (claim.kind != ClientRegistry::ClaimKind::kCreated) {
    spdlog::warn("upgrade: client '{}' handed over twice; the second connection stays with the "
                 "old process", img.client_id);
    return false;
  }
  Session& s = *fresh;
  import_image(s, img.session);  // subscriptions, windows, queues, 5.0 session expiry
  stats_.sessions_imported.add();
  s.clean = img.clean;
  s.disconnected = false;
  s.connected_since_s = img.connected_since_s;
  if (img.will) s.set_will(will_of_image(*img.will));
  s.set_username(std::move(img.username));
  if (s.is_v5() || s.extra) {
    SessionExtra& x = s.extra_ref();
    x.max_packet_size = img.max_packet_size;
    x.receive_maximum = img.receive_maximum;
    uint16_t defined = 0;
    for (size_t i = 0; i < img.topic_aliases.size() && i < kTopicAliasMaximum; ++i) {
      if (img.topic_aliases[i].empty()) continue;
      if (!x.topic_aliases) x.topic_aliases = std::make_unique<std::array<SharedBytes, kTopicAliasMaximum>>();
      (*x.topic_aliases)[i] = SharedBytes::copy_of(as_bytes(img.topic_aliases[i]));
      ++defined;
    }
    x.topic_alias_count = defined;
  }
  s.conn = &c;
  c.set_user_data(&s);
  broker_.registry().set_conn(s.client_id(), &s, c.id());
  stats_.sessions_connected.add();
  if (store_ && !s.clean) store_whole_session(s);  // queued until the store is taken over
  // Nothing is sent here: the old process's unsent output goes first (EventLoop::adopt_handed),
  // and the messages in flight were sent already; their acknowledgements arrive here. Queued
  // ones go as the window opens, on the next acknowledgement.
  return true;
}

void MqttHandler::on_handed_over(Connection& c) {
  void* user = c.user_data();
  if (!close_notes_.empty()) close_notes_.erase(c.id().value);
  if (user == nullptr) return;
  c.set_user_data(nullptr);
  if (kind_of(user) == ConnStateKind::kPendingConnect) {
    delete static_cast<PendingConnect*>(user);
    return;
  }
  Session* s = static_cast<Session*>(user);
  // It lives on in the new process: no will, no delayed will here, only out of this
  // process's tree and registry; its rows stay in the store until the new process replaces
  // them all (store.h), so a crash meanwhile leaves it there.
  s->stored = false;
  s->take_will();
  if (s->extra) s->extra->delayed_will.reset();
  s->conn = nullptr;
  stats_.sessions_connected.sub();
  stats_.sessions_exported.add();
  discard_session(s);
}

void MqttHandler::close_what_cannot_move() {
  std::vector<Connection*> staying;
  loop_.for_each_connection([&](Connection& c) {
    if (!c.parked() && &loop_.handler(c.handler_index()) == this) staying.push_back(&c);
  });
  for (Connection* c : staying) {
    void* user = c->user_data();
    if (user != nullptr && kind_of(user) == ConnStateKind::kSession) {
      Session& s = *static_cast<Session*>(user);
      if (s.is_v5()) send_disconnect(*c, mqtt::ReasonCode::kServerShuttingDown);
      // No will, as when the whole server stops: the client comes back to the new process,
      // and its session (persistent) is there, offline, with what was queued for it.
      detach_connection(s, false, "server upgrade: this connection cannot move");
    }
    // Nothing it sent since input was held was read: nothing of it was acknowledged, so the
    // client sends it again after reconnecting.
    c->close_after_flush(CloseReason::kShutdown);
  }
}

void MqttHandler::export_offline_sessions(std::vector<std::string>& items) {
  std::vector<Session*> here;
  broker_.registry().for_each_owned_by(loop_.index(), [&](const RegistryEntry& e) {
    if (e.session != nullptr && !e.in_transit) here.push_back(e.session);
  });
  const uint64_t now = steady_ms();
  for (Session* s : here) {
    if (!s->offline) continue;  // connected ones moved (or stayed) with their connection
    OfflineSessionImage img;
    img.client_id = std::string(s->client_id());
    if (s->extra && s->is_v5()) {
      const SessionExtra& x = *s->extra;
      // Time left, not deadlines: each process has its own steady clock. Due: 1 ms.
      if (x.expires_at_ms != 0) img.expires_in_ms = x.expires_at_ms > now ? x.expires_at_ms - now : 1;
      if (x.delayed_will) {
        img.delayed_will = image_of_will(*x.delayed_will);
        if (x.will_at_ms != 0) img.will_in_ms = x.will_at_ms > now ? x.will_at_ms - now : 1;
      }
    }
    img.session = image_of(*s, SIZE_MAX);
    std::string item;
    encode_offline_item(img, item, now);
    items.push_back(std::move(item));
  }
}

bool MqttHandler::import_offline_session(ByteView item) {
  OfflineItemResult d = decode_offline_item(item, steady_ms());
  if (!d.ok()) {
    stats_.session_images_bad.add();
    spdlog::warn("upgrade: an offline session refused: {}", d.error);
    return false;
  }
  OfflineSessionImage& img = d.image;
  Session* fresh = nullptr;
  auto claim = broker_.registry().claim(img.client_id, loop_.index(), ConnId{}, [&] {
    fresh = new Session(img.client_id);
    return fresh;
  });
  if (claim.kind != ClientRegistry::ClaimKind::kCreated) {
    spdlog::warn("upgrade: offline session '{}' refused: the id has a session here", img.client_id);
    return false;
  }
  Session& s = *fresh;
  import_image(s, img.session);
  stats_.sessions_imported.add();
  s.offline = true;
  stats_.sessions_offline.add();
  if (s.is_v5()) {
    SessionExtra& x = s.extra_ref();
    const uint64_t now = steady_ms();
    x.expires_at_ms = img.expires_in_ms != 0 ? now + img.expires_in_ms : 0;
    if (img.delayed_will) {
      x.delayed_will = will_of_image(*img.delayed_will);
      x.will_at_ms = img.will_in_ms != 0 ? now + img.will_in_ms : 0;
    }
    offline_timers_.arm(s);
    arm_offline_loop_timer();
  }
  if (store_) {
    store_whole_session(s);
    if (s.extra && s.extra->delayed_will) store_->will_saved(s, *s.extra->delayed_will, s.extra->will_at_ms);
  }
  return true;
}

void export_retained(const Broker& broker, std::vector<std::string>& items) {
  const uint64_t now = steady_ms();
  broker.for_each_retained([&](const Message& m) {
    if (is_sys_topic(as_chars(m.topic.view()))) return;
    RetainedImage img{copy(m.topic), copy(m.payload), copy(m.props.wire), m.qos, 0};
    if (m.props.expires_at_ms != 0)
      img.expiry_left_ms = static_cast<uint32_t>(std::min<uint64_t>(
          m.props.expires_at_ms > now ? m.props.expires_at_ms - now : 1, 0xFFFFFFFFu));
    std::string item;
    encode_retained_item(img, item);
    items.push_back(std::move(item));
  });
}

bool MqttHandler::import_retained(ByteView item) {
  RetainedItemResult d = decode_retained_item(item);
  if (!d.ok()) {
    spdlog::warn("upgrade: a retained message refused: {}", d.error);
    return false;
  }
  MessageProps props;
  if (!d.image.props.empty()) props.wire = shared(d.image.props);
  if (d.image.expiry_left_ms != 0) props.expires_at_ms = steady_ms() + d.image.expiry_left_ms;
  const Message m{shared(d.image.topic), shared(d.image.payload), std::move(props), d.image.qos, true};
  broker_.retained().set(m);
  if (store_) store_->retained_set(m);
  return true;
}

}  // namespace tcpms::broker
