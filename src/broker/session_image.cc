#include "broker/session_image.h"

#include <algorithm>

#include "mqtt/properties.h"
#include "mqtt/topic.h"
#include "wire/little_endian.h"

namespace tcpms::broker {
namespace {

using State = OutMessage::State;
using wire::LeReader;
using wire::LeWriter;

constexpr char kMagic[3] = {'T', 'S', 'I'};
// Subscription Identifier properties of one subscriber: a few 5-byte entries at most.
constexpr size_t kMaxSubIdsBytes = 1024;
constexpr uint32_t kMaxSubscriptionId = 268'435'455;  // 28 bits (SubRecord)

bool valid_topic(ByteView t) {
  return !t.empty() && mqtt::validate_topic_name(as_chars(t)) == mqtt::TopicError::kOk;
}

void put_message(LeWriter& w, const OutMessage& m, uint64_t now_ms) {
  w.str16(m.topic.view());
  w.str32(m.payload.view());
  w.str32(m.props.wire.view());
  uint64_t left = 0;
  if (m.props.expires_at_ms != 0)
    left = m.props.expires_at_ms > now_ms ? m.props.expires_at_ms - now_ms : 1;  // due: 1 ms
  w.u32(static_cast<uint32_t>(std::min<uint64_t>(left, 0xFFFFFFFFu)));
  w.str16(m.sub_ids.view());
}

// Reads what put_message wrote (version 2) or topic and payload only (version 1).
const char* get_message(LeReader& in, OutMessage& m, uint8_t version, uint64_t now_ms) {
  ByteView topic = in.str16();
  ByteView payload = in.str32();
  ByteView props, sub_ids;
  uint32_t left = 0;
  if (version >= 2) {
    props = in.str32();
    left = in.u32();
    sub_ids = in.str16();
  }
  if (!in.ok()) return "truncated message";
  if (!valid_topic(topic)) return "invalid message topic";
  if (sub_ids.size() > kMaxSubIdsBytes) return "subscription identifiers too long";
  if (!props.empty() &&
      !mqtt::decode_property_list(props, mqtt::PropertyContext::kPublish).ok())
    return "invalid message properties";
  m.topic = SharedBytes::copy_of(topic);
  m.payload = SharedBytes::copy_of(payload);
  if (!props.empty()) m.props.wire = SharedBytes::copy_of(props);
  if (left != 0) m.props.expires_at_ms = now_ms + left;
  if (!sub_ids.empty()) m.sub_ids = SharedBytes::copy_of(sub_ids);
  return nullptr;
}

}  // namespace

void encode_session_image(const SessionImage& image, std::string& out, uint64_t now_ms) {
  LeWriter w(out);
  w.bytes(std::string_view(kMagic, sizeof kMagic));
  w.u8(kSessionImageVersion);
  w.u8(static_cast<uint8_t>(image.version));
  w.u16(image.last_packet_id);
  w.u32(image.session_expiry_s);

  w.u32(static_cast<uint32_t>(image.subscriptions.size()));
  for (const ImageSubscription& s : image.subscriptions) {
    w.str16(s.filter);
    w.u8(static_cast<uint8_t>(s.qos));
    w.u8(s.options);
    w.u32(s.subscription_id);
  }
  w.u32(static_cast<uint32_t>(image.inflight.size()));
  for (const OutMessage& m : image.inflight) {
    w.u8(static_cast<uint8_t>(m.state));
    w.u8(static_cast<uint8_t>(m.qos));
    w.u8(m.retain ? 1 : 0);
    w.u16(m.packet_id);
    // Only the id matters once PUBREC came [MQTT-4.3.3-1].
    if (m.state != State::kWaitPubcomp) put_message(w, m, now_ms);
  }
  w.u32(static_cast<uint32_t>(image.queued.size()));
  for (const OutMessage& m : image.queued) {
    w.u8(static_cast<uint8_t>(m.qos));
    w.u8(m.retain ? 1 : 0);
    put_message(w, m, now_ms);
  }
  w.u32(static_cast<uint32_t>(image.incoming.size()));
  for (uint16_t id : image.incoming) w.u16(id);
}

SessionImageResult decode_session_image(ByteView bytes, uint64_t now_ms) {
  SessionImageResult r;
  auto fail = [&r](const char* why) {
    r.image = SessionImage{};
    r.error = why;
    return std::move(r);
  };
  LeReader in(bytes);
  ByteView magic = in.bytes(sizeof kMagic);
  if (!in.ok() || !std::equal(magic.begin(), magic.end(), as_bytes({kMagic, sizeof kMagic}).begin()))
    return fail("not a session image");
  const uint8_t version = in.u8();
  if (!in.ok()) return fail("truncated session image header");
  if (version != 1 && version != 2) return fail("unknown session image version");
  const uint8_t level = in.u8();
  r.image.last_packet_id = in.u16();
  if (version >= 2) r.image.session_expiry_s = in.u32();
  if (!in.ok()) return fail("truncated session image header");
  const bool v5_allowed = version >= 2;
  if (level != static_cast<uint8_t>(mqtt::ProtocolVersion::kV31) &&
      level != static_cast<uint8_t>(mqtt::ProtocolVersion::kV311) &&
      !(v5_allowed && level == static_cast<uint8_t>(mqtt::ProtocolVersion::kV5)))
    return fail("session image protocol level is not 3.1, 3.1.1 or 5.0");
  r.image.version = static_cast<mqtt::ProtocolVersion>(level);
  if (r.image.version != mqtt::ProtocolVersion::kV5 && r.image.session_expiry_s != 0)
    return fail("session expiry in a 3.x session image");

  uint32_t n = in.count(version >= 2 ? 8 : 3);
  if (!in.ok()) return fail("truncated subscription count");
  r.image.subscriptions.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    ImageSubscription sub;
    std::string_view filter = in.text16();
    uint8_t qos = in.u8();
    if (version >= 2) {
      sub.options = in.u8();
      sub.subscription_id = in.u32();
    }
    if (!in.ok()) return fail("truncated subscription");
    if (qos > 2) return fail("subscription QoS over 2");
    if (sub.options > 3) return fail("unknown subscription options");
    if (sub.subscription_id > kMaxSubscriptionId) return fail("subscription identifier too large");
    if (filter.empty() || mqtt::validate_topic_filter(filter) != mqtt::TopicError::kOk)
      return fail("invalid subscription filter");
    sub.filter = std::string(filter);
    sub.qos = static_cast<mqtt::QoS>(qos);
    r.image.subscriptions.push_back(std::move(sub));
  }

  // Packet ids seen so far: a bitmap keeps duplicate checks linear on forged input.
  std::vector<bool> seen(65536, false);
  n = in.count(5);
  if (!in.ok()) return fail("truncated in-flight count");
  r.image.inflight.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    OutMessage m;
    const uint8_t state = in.u8(), qos = in.u8(), retain = in.u8();
    m.packet_id = in.u16();
    if (!in.ok()) return fail("truncated in-flight message");
    if (m.packet_id == 0) return fail("in-flight packet id 0");
    // The state must be one that awaits an acknowledgement, and match the QoS.
    if (state == static_cast<uint8_t>(State::kWaitPuback)) {
      if (qos != 1) return fail("in-flight state does not match its QoS");
    } else if (state == static_cast<uint8_t>(State::kWaitPubrec) ||
               state == static_cast<uint8_t>(State::kWaitPubcomp)) {
      if (qos != 2) return fail("in-flight state does not match its QoS");
    } else {
      return fail("unknown in-flight state");
    }
    if (retain > 1) return fail("bad retain flag");
    m.state = static_cast<State>(state);
    m.qos = static_cast<mqtt::QoS>(qos);
    m.retain = retain != 0;
    if (seen[m.packet_id]) return fail("duplicate in-flight packet id");
    seen[m.packet_id] = true;
    if (m.state != State::kWaitPubcomp) {
      if (const char* e = get_message(in, m, version, now_ms)) return fail(e);
    }
    r.image.inflight.push_back(std::move(m));
  }

  n = in.count(8);
  if (!in.ok()) return fail("truncated queue count");
  r.image.queued.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    OutMessage m;
    const uint8_t qos = in.u8(), retain = in.u8();
    if (!in.ok()) return fail("truncated queued message");
    if (qos != 1 && qos != 2) return fail("queued message QoS not 1 or 2");
    if (retain > 1) return fail("bad retain flag");
    m.qos = static_cast<mqtt::QoS>(qos);
    m.retain = retain != 0;
    m.state = State::kQueued;
    if (const char* e = get_message(in, m, version, now_ms)) return fail(e);
    r.image.queued.push_back(std::move(m));
  }

  std::vector<bool> seen_in(65536, false);
  n = in.count(2);
  if (!in.ok()) return fail("truncated inbound id count");
  r.image.incoming.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    uint16_t id = in.u16();
    if (!in.ok()) return fail("truncated inbound id");
    if (id == 0) return fail("inbound packet id 0");
    if (seen_in[id]) return fail("duplicate inbound packet id");
    seen_in[id] = true;
    r.image.incoming.push_back(id);
  }
  if (in.remaining() != 0) return fail("trailing bytes after session image");
  return r;
}

}  // namespace tcpms::broker
