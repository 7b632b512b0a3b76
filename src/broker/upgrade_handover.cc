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
}  // namespace

void MqttHandler::hold_input_for_handover(bool hold) {
  held_for_handover_ = hold;
  if (hold) return;
  // Rolled back: what the held connections sent meanwhile is read now.
  for (ConnId id : held_conns_) {
    Connection* c = loop_.find(id);
    if (c == nullptr || c->pending_input_bytes() == 0) continue;
    c->pause_reading();
    c->resume_reading();  // presents the kept bytes again
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
  // stays; so does a session whose state is in the persistent store (not handed over).
  if (kind_of(user) != ConnStateKind::kSession || store_) return false;
  Session& s = *static_cast<Session*>(user);
  if (s.disconnected) return false;  // DISCONNECT received: closing
  img.connected = true;
  img.client_id = std::string(s.client_id());
  img.clean = s.clean;
  img.connected_since_s = s.connected_since_s;
  if (s.extra) {
    const SessionExtra& x = *s.extra;
    img.max_packet_size = x.max_packet_size;
    img.receive_maximum = x.receive_maximum;
    img.username = x.username;
    if (x.will) {
      const Will& w = *x.will;
      img.will = WillImage{w.qos, w.retain, copy(w.topic), copy(w.payload), copy(w.props),
                           w.expiry_s, w.delay_s};
    }
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
  if (img.will) {
    auto w = std::make_unique<Will>();
    w->topic = SharedBytes::copy_of(as_bytes(img.will->topic));
    w->payload = SharedBytes::copy_of(as_bytes(img.will->payload));
    w->qos = img.will->qos;
    w->retain = img.will->retain;
    if (!img.will->props.empty()) w->props = SharedBytes::copy_of(as_bytes(img.will->props));
    w->expiry_s = img.will->expiry_s;
    w->delay_s = img.will->delay_s;
    s.set_will(std::move(w));
  }
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
  // process's tree and registry.
  s->take_will();
  if (s->extra) s->extra->delayed_will.reset();
  s->conn = nullptr;
  stats_.sessions_connected.sub();
  stats_.sessions_exported.add();
  discard_session(s);
}

}  // namespace tcpms::broker
