#include "broker/session_image.h"

#include <algorithm>

#include "mqtt/topic.h"

namespace tcpms::broker {
namespace {

using State = OutMessage::State;

constexpr char kMagic[3] = {'T', 'S', 'I'};

void put_u8(std::string& out, uint8_t v) { out.push_back(static_cast<char>(v)); }
void put_u16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>(v >> 8));
}
void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_topic(std::string& out, const SharedBytes& topic) {
  put_u16(out, static_cast<uint16_t>(topic.size()));
  out.append(as_chars(topic.view()));
}
void put_payload(std::string& out, const SharedBytes& payload) {
  put_u32(out, static_cast<uint32_t>(payload.size()));
  out.append(as_chars(payload.view()));
}

// Every read is checked against what is left; a failed read leaves `ok_` false for good, so
// the decoder can read a whole entry and check once.
class Reader {
 public:
  explicit Reader(ByteView in) : in_(in) {}
  bool ok() const noexcept { return ok_; }
  size_t remaining() const noexcept { return in_.size() - pos_; }
  uint8_t u8() { return take(1) ? static_cast<uint8_t>(in_[pos_ - 1]) : 0; }
  uint16_t u16() {
    if (!take(2)) return 0;
    return static_cast<uint16_t>(static_cast<unsigned>(in_[pos_ - 2]) |
                                 static_cast<unsigned>(in_[pos_ - 1]) << 8);
  }
  uint32_t u32() {
    if (!take(4)) return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(in_[pos_ - 4 + i]) << (8 * i);
    return v;
  }
  ByteView bytes(size_t n) {
    if (!take(n)) return {};
    return in_.subspan(pos_ - n, n);
  }
  // A count of entries, each at least `min_entry_bytes` long: refused when the input cannot
  // hold that many, so a forged count never makes the decoder reserve memory it lacks.
  uint32_t count(size_t min_entry_bytes) {
    uint32_t n = u32();
    if (ok_ && static_cast<uint64_t>(n) * min_entry_bytes > remaining()) ok_ = false;
    return ok_ ? n : 0;
  }

 private:
  bool take(size_t n) {
    if (!ok_ || remaining() < n) {
      ok_ = false;
      return false;
    }
    pos_ += n;
    return true;
  }
  ByteView in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

bool valid_topic(ByteView t) {
  return !t.empty() && mqtt::validate_topic_name(as_chars(t)) == mqtt::TopicError::kOk;
}

}  // namespace

void encode_session_image(const SessionImage& image, std::string& out) {
  out.append(kMagic, sizeof kMagic);
  put_u8(out, kSessionImageVersion);
  put_u8(out, static_cast<uint8_t>(image.version));
  put_u16(out, image.last_packet_id);

  put_u32(out, static_cast<uint32_t>(image.subscriptions.size()));
  for (const ImageSubscription& s : image.subscriptions) {
    put_u16(out, static_cast<uint16_t>(s.filter.size()));
    out.append(s.filter);
    put_u8(out, static_cast<uint8_t>(s.qos));
  }
  put_u32(out, static_cast<uint32_t>(image.inflight.size()));
  for (const OutMessage& m : image.inflight) {
    put_u8(out, static_cast<uint8_t>(m.state));
    put_u8(out, static_cast<uint8_t>(m.qos));
    put_u8(out, m.retain ? 1 : 0);
    put_u16(out, m.packet_id);
    if (m.state != State::kWaitPubcomp) {  // only the id matters once PUBREC came [MQTT-4.3.3-1]
      put_topic(out, m.topic);
      put_payload(out, m.payload);
    }
  }
  put_u32(out, static_cast<uint32_t>(image.queued.size()));
  for (const OutMessage& m : image.queued) {
    put_u8(out, static_cast<uint8_t>(m.qos));
    put_u8(out, m.retain ? 1 : 0);
    put_topic(out, m.topic);
    put_payload(out, m.payload);
  }
  put_u32(out, static_cast<uint32_t>(image.incoming.size()));
  for (uint16_t id : image.incoming) put_u16(out, id);
}

SessionImageResult decode_session_image(ByteView bytes) {
  SessionImageResult r;
  auto fail = [&r](const char* why) {
    r.image = SessionImage{};
    r.error = why;
    return std::move(r);
  };
  Reader in(bytes);
  ByteView magic = in.bytes(sizeof kMagic);
  if (!in.ok() || !std::equal(magic.begin(), magic.end(), as_bytes({kMagic, sizeof kMagic}).begin()))
    return fail("not a session image");
  const uint8_t version = in.u8();
  if (!in.ok()) return fail("truncated session image header");
  if (version != kSessionImageVersion) return fail("unknown session image version");
  const uint8_t level = in.u8();
  r.image.last_packet_id = in.u16();
  if (!in.ok()) return fail("truncated session image header");
  if (level != static_cast<uint8_t>(mqtt::ProtocolVersion::kV31) &&
      level != static_cast<uint8_t>(mqtt::ProtocolVersion::kV311))
    return fail("session image protocol level is not 3.1 or 3.1.1");
  r.image.version = static_cast<mqtt::ProtocolVersion>(level);

  uint32_t n = in.count(3);
  if (!in.ok()) return fail("truncated subscription count");
  r.image.subscriptions.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    ByteView f = in.bytes(in.u16());
    uint8_t qos = in.u8();
    if (!in.ok()) return fail("truncated subscription");
    if (qos > 2) return fail("subscription QoS over 2");
    std::string_view filter = as_chars(f);
    if (filter.empty() || mqtt::validate_topic_filter(filter) != mqtt::TopicError::kOk)
      return fail("invalid subscription filter");
    r.image.subscriptions.push_back({std::string(filter), static_cast<mqtt::QoS>(qos)});
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
      ByteView topic = in.bytes(in.u16());
      ByteView payload = in.bytes(in.u32());
      if (!in.ok()) return fail("truncated in-flight message");
      if (!valid_topic(topic)) return fail("invalid in-flight topic");
      m.topic = SharedBytes::copy_of(topic);
      m.payload = SharedBytes::copy_of(payload);
    }
    r.image.inflight.push_back(std::move(m));
  }

  n = in.count(8);
  if (!in.ok()) return fail("truncated queue count");
  r.image.queued.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    OutMessage m;
    const uint8_t qos = in.u8(), retain = in.u8();
    ByteView topic = in.bytes(in.u16());
    ByteView payload = in.bytes(in.u32());
    if (!in.ok()) return fail("truncated queued message");
    if (qos != 1 && qos != 2) return fail("queued message QoS not 1 or 2");
    if (retain > 1) return fail("bad retain flag");
    if (!valid_topic(topic)) return fail("invalid queued topic");
    m.qos = static_cast<mqtt::QoS>(qos);
    m.retain = retain != 0;
    m.state = State::kQueued;
    m.topic = SharedBytes::copy_of(topic);
    m.payload = SharedBytes::copy_of(payload);
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
