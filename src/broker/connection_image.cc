#include "broker/connection_image.h"

#include <algorithm>

#include "mqtt/properties.h"
#include "mqtt/topic.h"
#include "wire/little_endian.h"

namespace tcpms::broker {
namespace {

using wire::LeReader;
using wire::LeWriter;

constexpr char kMagic[3] = {'T', 'C', 'I'};
constexpr uint8_t kClean = 1, kUsername = 2, kWill = 4, kWillRetain = 8;

bool valid_topic(std::string_view t) {
  return !t.empty() && mqtt::validate_topic_name(t) == mqtt::TopicError::kOk;
}

// A will: u8 qos, str16 topic, str32 payload, str32 properties, u32 expiry s, u32 delay s
// (its retain flag travels beside it).
void put_will(LeWriter& w, const WillImage& will) {
  w.u8(static_cast<uint8_t>(will.qos));
  w.str16(will.topic);
  w.str32(will.payload);
  w.str32(will.props);
  w.u32(will.expiry_s);
  w.u32(will.delay_s);
}

const char* get_will(LeReader& in, WillImage& w) {
  const uint8_t qos = in.u8();
  std::string_view topic = in.text16();
  ByteView payload = in.str32(), props = in.str32();
  w.expiry_s = in.u32();
  w.delay_s = in.u32();
  if (!in.ok()) return "truncated will";
  if (qos > 2) return "will QoS over 2";
  if (!valid_topic(topic)) return "invalid will topic";
  if (!props.empty() && !mqtt::decode_property_list(props, mqtt::PropertyContext::kPublish).ok())
    return "invalid will properties";
  w.qos = static_cast<mqtt::QoS>(qos);
  w.topic = std::string(topic);
  w.payload = std::string(as_chars(payload));
  w.props = std::string(as_chars(props));
  return nullptr;
}

bool has_magic(LeReader& in) {
  ByteView magic = in.bytes(sizeof kMagic);
  return in.ok() && std::equal(magic.begin(), magic.end(), as_bytes({kMagic, sizeof kMagic}).begin());
}

}  // namespace

void encode_connection_image(const ConnectionImage& image, std::string& out, uint64_t now_ms) {
  LeWriter w(out);
  w.bytes(std::string_view(kMagic, sizeof kMagic));
  w.u8(kConnectionImageVersion);
  w.u8(image.connected ? 1 : 0);
  if (!image.connected) return;
  w.str16(image.client_id);
  uint8_t flags = 0;
  if (image.clean) flags |= kClean;
  if (image.username) flags |= kUsername;
  if (image.will) flags |= kWill;
  if (image.will && image.will->retain) flags |= kWillRetain;
  w.u8(flags);
  w.u32(image.connected_since_s);
  w.u32(image.max_packet_size);
  w.u16(image.receive_maximum);
  if (image.username) w.str16(*image.username);
  if (image.will) put_will(w, *image.will);
  w.u8(static_cast<uint8_t>(std::min(image.topic_aliases.size(), kMaxImageTopicAliases)));
  for (size_t i = 0; i < image.topic_aliases.size() && i < kMaxImageTopicAliases; ++i)
    w.str16(image.topic_aliases[i]);
  std::string session;
  encode_session_image(image.session, session, now_ms);
  w.str32(session);
}

ConnectionImageResult decode_connection_image(ByteView bytes, uint64_t now_ms) {
  ConnectionImageResult r;
  auto fail = [&r](const char* why) {
    r.image = ConnectionImage{};
    r.error = why;
    return std::move(r);
  };
  LeReader in(bytes);
  if (!has_magic(in)) return fail("not a connection image");
  const uint8_t version = in.u8();
  const uint8_t connected = in.u8();
  if (!in.ok()) return fail("truncated connection image header");
  if (version != kConnectionImageVersion) return fail("unknown connection image version");
  if (connected > 1) return fail("bad connected flag");
  if (connected == 0) {
    if (in.remaining() != 0) return fail("trailing bytes after connection image");
    return r;
  }
  ConnectionImage& img = r.image;
  img.connected = true;
  std::string_view id = in.text16();
  const uint8_t flags = in.u8();
  img.connected_since_s = in.u32();
  img.max_packet_size = in.u32();
  img.receive_maximum = in.u16();
  if (!in.ok()) return fail("truncated connection image");
  if (id.empty()) return fail("empty client id");
  if (flags & ~(kClean | kUsername | kWill | kWillRetain)) return fail("unknown connection flags");
  if ((flags & kWillRetain) && !(flags & kWill)) return fail("will retain without a will");
  if (img.receive_maximum == 0) return fail("receive maximum 0");
  img.client_id = std::string(id);
  img.clean = (flags & kClean) != 0;
  if (flags & kUsername) {
    std::string_view name = in.text16();
    if (!in.ok()) return fail("truncated user name");
    img.username = std::string(name);
  }
  if (flags & kWill) {
    WillImage w;
    if (const char* e = get_will(in, w)) return fail(e);
    w.retain = (flags & kWillRetain) != 0;
    img.will = std::move(w);
  }
  const uint8_t aliases = in.u8();
  if (!in.ok()) return fail("truncated topic aliases");
  if (aliases > kMaxImageTopicAliases) return fail("too many topic aliases");
  for (uint8_t i = 0; i < aliases; ++i) {
    std::string_view topic = in.text16();
    if (!in.ok()) return fail("truncated topic alias");
    if (!topic.empty() && !valid_topic(topic)) return fail("invalid topic alias topic");
    img.topic_aliases.emplace_back(topic);
  }
  ByteView session = in.str32();
  if (!in.ok()) return fail("truncated session image");
  if (in.remaining() != 0) return fail("trailing bytes after connection image");
  SessionImageResult s = decode_session_image(session, now_ms);
  if (!s.ok()) return fail(s.error);
  img.session = std::move(s.image);
  if (img.session.version != mqtt::ProtocolVersion::kV5 &&
      (img.max_packet_size != 0 || !img.topic_aliases.empty() ||
       (img.will && (!img.will->props.empty() || img.will->expiry_s || img.will->delay_s))))
    return fail("5.0 state in a 3.x connection image");
  return r;
}

void encode_retained_item(const RetainedImage& image, std::string& out) {
  LeWriter w(out);
  w.u8(static_cast<uint8_t>(kRetainedItem));
  w.u8(kUpgradeItemVersion);
  w.str16(image.topic);
  w.str32(image.payload);
  w.str32(image.props);
  w.u8(static_cast<uint8_t>(image.qos));
  w.u32(image.expiry_left_ms);
}

RetainedItemResult decode_retained_item(ByteView bytes) {
  RetainedItemResult r;
  auto fail = [&r](const char* why) {
    r.image = RetainedImage{};
    r.error = why;
    return std::move(r);
  };
  LeReader in(bytes);
  const uint8_t kind = in.u8(), version = in.u8();
  std::string_view topic = in.text16();
  ByteView payload = in.str32(), props = in.str32();
  const uint8_t qos = in.u8();
  r.image.expiry_left_ms = in.u32();
  if (!in.ok()) return fail("truncated retained message");
  if (kind != kRetainedItem) return fail("not a retained message");
  if (version != kUpgradeItemVersion) return fail("unknown retained message version");
  if (in.remaining() != 0) return fail("trailing bytes after retained message");
  if (!valid_topic(topic)) return fail("invalid retained topic");
  if (qos > 2) return fail("retained QoS over 2");
  if (!props.empty() && !mqtt::decode_property_list(props, mqtt::PropertyContext::kPublish).ok())
    return fail("invalid retained message properties");
  r.image.topic = std::string(topic);
  r.image.payload = std::string(as_chars(payload));
  r.image.props = std::string(as_chars(props));
  r.image.qos = static_cast<mqtt::QoS>(qos);
  return r;
}

void encode_offline_item(const OfflineSessionImage& image, std::string& out, uint64_t now_ms) {
  LeWriter w(out);
  w.u8(static_cast<uint8_t>(kOfflineSessionItem));
  w.u8(kUpgradeItemVersion);
  w.str16(image.client_id);
  w.u64(image.expires_in_ms);
  w.u8(image.delayed_will ? (image.delayed_will->retain ? 3 : 1) : 0);
  if (image.delayed_will) put_will(w, *image.delayed_will);
  w.u64(image.will_in_ms);
  std::string session;
  encode_session_image(image.session, session, now_ms);
  w.str32(session);
}

OfflineItemResult decode_offline_item(ByteView bytes, uint64_t now_ms) {
  OfflineItemResult r;
  auto fail = [&r](const char* why) {
    r.image = OfflineSessionImage{};
    r.error = why;
    return std::move(r);
  };
  LeReader in(bytes);
  const uint8_t kind = in.u8(), version = in.u8();
  std::string_view id = in.text16();
  r.image.expires_in_ms = in.u64();
  const uint8_t will = in.u8();
  if (!in.ok()) return fail("truncated offline session");
  if (kind != kOfflineSessionItem) return fail("not an offline session");
  if (version != kUpgradeItemVersion) return fail("unknown offline session version");
  if (id.empty()) return fail("empty client id");
  if (will > 3 || will == 2) return fail("bad delayed will flag");
  r.image.client_id = std::string(id);
  if (will != 0) {
    WillImage w;
    if (const char* e = get_will(in, w)) return fail(e);
    w.retain = will == 3;
    r.image.delayed_will = std::move(w);
  }
  r.image.will_in_ms = in.u64();
  ByteView session = in.str32();
  if (!in.ok()) return fail("truncated offline session");
  if (in.remaining() != 0) return fail("trailing bytes after offline session");
  SessionImageResult s = decode_session_image(session, now_ms);
  if (!s.ok()) return fail(s.error);
  r.image.session = std::move(s.image);
  if (r.image.session.version != mqtt::ProtocolVersion::kV5 &&
      (r.image.delayed_will || r.image.expires_in_ms != 0))
    return fail("5.0 state in a 3.x offline session");
  return r;
}

}  // namespace tcpms::broker
