// libFuzzer target for the MQTT codec: treats the input as a byte stream of packets, the way
// the broker sees a connection, and checks the codec's promises on everything that decodes.
//
// Input layout: byte 0 picks the starting protocol level (3, 4 or 5) and the max packet size;
// the rest is the stream. A CONNECT that decodes switches the level, as a broker would.
//
// Invariants checked (a violation aborts, which libFuzzer reports as a crash):
//  - framing: no reads outside the input (ASan); a complete header's prefix is kNeedMore;
//  - every decoded packet re-encodes (encoded_size != 0, encode writes exactly that);
//  - re-encoded bytes decode again and re-encode to the same bytes (idempotence);
//  - packets whose wire form is canonical re-encode to the exact input bytes (PUBLISH always);
//  - views stay inside the input; property/entry iteration terminates;
//  - topic rules agree: a valid Topic Name is a valid filter that matches itself.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "mqtt/codec.h"

namespace {

using namespace tcpms::mqtt;

void check(bool ok) {
  if (!ok) std::abort();
}

bool inside(Bytes outer, Bytes inner) {
  return inner.empty() || (inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size());
}

// Touches every view a packet exposes, so ASan checks them, and checks topic invariants.
void walk(const Packet& p, Bytes frame) {
  auto walk_props = [&](const Properties& props) {
    check(inside(frame, props.wire()));
    for (const Property& prop : props) check(inside(frame, as_bytes(prop.text)) && inside(frame, prop.binary));
  };
  if (const auto* pub = std::get_if<Publish>(&p)) {
    walk_props(pub->properties);
    check(inside(frame, pub->payload) && inside(frame, as_bytes(pub->topic)));
    if (!pub->topic.empty()) {
      check(validate_topic_name(pub->topic) == TopicError::kOk);
      check(validate_topic_filter(pub->topic) == TopicError::kOk || is_shared_subscription(pub->topic));
      check(topic_matches(pub->topic, pub->topic));
      check(topic_matches("#", pub->topic) == (pub->topic.front() != '$'));
    }
  } else if (const auto* sub = std::get_if<Subscribe>(&p)) {
    walk_props(sub->properties);
    for (const Subscription& s : sub->subscriptions) {
      check(inside(frame, as_bytes(s.filter)));
      if (validate_topic_filter(s.filter) == TopicError::kOk && !is_shared_subscription(s.filter)) {
        (void)topic_matches(s.filter, "a/b/$c");
        (void)topic_matches(s.filter, s.filter);
      }
    }
  } else if (const auto* unsub = std::get_if<Unsubscribe>(&p)) {
    walk_props(unsub->properties);
    for (std::string_view f : unsub->filters) check(inside(frame, as_bytes(f)));
  } else if (const auto* c = std::get_if<Connect>(&p)) {
    walk_props(c->properties);
    if (c->will) walk_props(c->will->properties);
  } else if (const auto* ca = std::get_if<Connack>(&p)) {
    walk_props(ca->properties);
  } else if (const auto* r = std::get_if<PublishResponse>(&p)) {
    walk_props(r->properties);
  } else if (const auto* d = std::get_if<Disconnect>(&p)) {
    walk_props(d->properties);
  } else if (const auto* a = std::get_if<Auth>(&p)) {
    walk_props(a->properties);
  }
}

// 5.0 lets these packets omit a Success reason or empty properties in several ways; we encode
// the shortest, so only idempotence holds. 3.1 CONNECT may omit a flagged password; a 3.1
// CONNACK's first byte is reserved: read as nothing, written as 0.
bool must_be_byte_identical(const Packet& p, PacketType type, ProtocolVersion v) {
  if (const auto* c = std::get_if<Connect>(&p)) return c->version != ProtocolVersion::kV31;
  if (type == PacketType::kConnack && v == ProtocolVersion::kV31) return false;
  if (!is_v5(v)) return true;
  switch (type) {
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp:
    case PacketType::kDisconnect:
    case PacketType::kAuth: return false;
    default: return true;
  }
}

ProtocolVersion version_for(const Packet& p, ProtocolVersion v) {
  if (const auto* c = std::get_if<Connect>(&p)) return c->version;
  return v;
}

void round_trip(const Packet& p, const FixedHeader& h, Bytes frame, ProtocolVersion v) {
  const std::size_t size = encoded_size(p, v);
  check(size != 0);
  std::vector<std::byte> out(size);
  check(encode(p, v, out) == size);
  check(encode(p, v, std::span<std::byte>(out.data(), size - 1)) == 0);  // never overruns

  if (const auto* pub = std::get_if<Publish>(&p)) {
    // Header-only + payload must equal the full encoding (the writev fan-out path).
    const std::size_t hs = publish_header_size(*pub, v);
    check(hs != 0 && hs + pub->payload.size() == size);
    std::vector<std::byte> hdr(hs);
    check(encode_publish_header(*pub, v, hdr) == hs);
    check(std::memcmp(hdr.data(), out.data(), hs) == 0);
  }
  if (must_be_byte_identical(p, h.type, v)) {
    check(size == frame.size() && std::memcmp(out.data(), frame.data(), size) == 0);
  }

  const FrameResult again = next_frame(out, 0);
  check(again.status == FrameStatus::kComplete && again.header.packet_size() == size);
  const Decoded<Packet> d2 = decode_packet(again.header, again.body, v);
  check(d2.ok());
  const std::size_t size2 = encoded_size(d2.value(), v);
  check(size2 == size);
  std::vector<std::byte> out2(size2);
  check(encode(d2.value(), v, out2) == size2);
  check(out2 == out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  static constexpr ProtocolVersion kVersions[] = {ProtocolVersion::kV31, ProtocolVersion::kV311,
                                                  ProtocolVersion::kV5};
  ProtocolVersion v = kVersions[(data[0] & 0x03) % 3];
  const std::uint32_t max_packet_size = (data[0] & 0x04) ? 64 : 0;
  Bytes rest(reinterpret_cast<const std::byte*>(data + 1), size - 1);

  while (!rest.empty()) {
    const FrameResult f = next_frame(rest, max_packet_size);
    if (f.status != FrameStatus::kComplete) {
      check(f.status == FrameStatus::kNeedMore || f.error.code != ReasonCode::kSuccess);
      break;
    }
    const FixedHeader& h = f.header;
    check(h.packet_size() <= rest.size() && f.body.size() == h.remaining_length);
    check(max_packet_size == 0 || h.packet_size() <= max_packet_size);
    check(decode_fixed_header(rest.first(h.header_size - 1), max_packet_size).status == FrameStatus::kNeedMore);

    const Bytes frame = rest.first(h.packet_size());
    const Decoded<Packet> d = decode_packet(h, f.body, v);
    if (!d.ok()) {
      check(d.error().code != ReasonCode::kSuccess && d.error().what != nullptr);
      if (h.type != PacketType::kConnect) break;  // a broker closes here
      rest = rest.subspan(h.packet_size());
      continue;  // fuzz more CONNECT variants in one input
    }
    if (const auto* c = std::get_if<Connect>(&d.value())) {
      check(peek_connect_version(f.body) == c->version);
    }
    walk(d.value(), frame);
    const ProtocolVersion ev = version_for(d.value(), v);
    round_trip(d.value(), h, frame, ev);
    v = ev;
    rest = rest.subspan(h.packet_size());
  }
  return 0;
}
