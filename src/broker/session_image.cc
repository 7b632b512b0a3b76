#include "broker/session_image.h"

#include <algorithm>

#include "store/message_record.h"
#include "store/session_record.h"
#include "store/subscription_record.h"
#include "store/wire.h"

namespace tcpms::broker {
namespace {

using State = OutMessage::State;
using store::Reader;
using store::Writer;

constexpr char kMagic[3] = {'T', 'S', 'I'};
// A ref's body id in an image: the body right behind it.
constexpr uint64_t kInlineBody = 1;

// Appends a record produced by `encode` behind its u32 length.
template <typename Encode>
void put_record(std::string& out, Encode encode) {
  const size_t at = out.size();
  Writer(out).u32(0);
  encode(out);
  const uint32_t n = static_cast<uint32_t>(out.size() - at - 4);
  for (int i = 0; i < 4; ++i) out[at + i] = static_cast<char>((n >> (8 * i)) & 0xff);
}

void put_message(std::string& out, const OutMessage& m) {
  const bool released = m.state == State::kWaitPubcomp;  // only the id matters [MQTT-4.3.3-1]
  put_record(out, [&](std::string& o) {
    store::encode_message_ref(
        store::MessageRef{released ? 0 : kInlineBody, m.qos, m.retain,
                          static_cast<store::DeliveryState>(m.state), m.packet_id, m.sub_ids},
        o);
  });
  if (released) {
    Writer(out).u32(0);
    return;
  }
  put_record(out, [&](std::string& o) {
    store::encode_message_body(store::MessageBody{m.topic, m.payload, m.props.wire, 0}, o);
  });
}

// One message: its ref and (unless released) its body. Null on success, else why not.
const char* read_message(Reader& in, OutMessage& m) {
  auto ref = store::decode_message_ref(in.str32());
  if (!in.ok()) return "truncated message";
  if (!ref.ok()) return ref.error;
  const ByteView body_bytes = in.str32();
  if (!in.ok()) return "truncated message";
  const bool released = ref.value.state == store::DeliveryState::kWaitPubcomp;
  if (ref.value.body_id != (released ? 0 : kInlineBody)) return "message names a body it does not carry";
  if (released) {
    if (!body_bytes.empty()) return "released message carries a body";
  } else {
    auto body = store::decode_message_body(body_bytes);
    if (!body.ok()) return body.error;
    if (body.value.expires_at_ms != 0) return "message in a session image carries an expiry";
    m.topic = std::move(body.value.topic);
    m.payload = std::move(body.value.payload);
    m.props.wire = std::move(body.value.properties);
  }
  m.qos = ref.value.qos;
  m.retain = ref.value.retain;
  m.state = static_cast<State>(ref.value.state);
  m.packet_id = ref.value.packet_id;
  m.sub_ids = std::move(ref.value.subscription_ids);
  return nullptr;
}

}  // namespace

void encode_session_image(const SessionImage& image, std::string& out) {
  out.append(kMagic, sizeof kMagic);
  Writer w(out);
  w.u8(kSessionImageVersion);
  put_record(out, [&](std::string& o) {
    store::encode_session_record(
        store::SessionRecord{image.version, store::kNeverExpires, 0, image.last_packet_id}, o);
  });
  w.u32(static_cast<uint32_t>(image.subscriptions.size()));
  for (const ImageSubscription& s : image.subscriptions) {
    w.str16(s.filter);
    put_record(out, [&](std::string& o) {
      store::encode_subscription_record(
          store::SubscriptionRecord{s.qos, s.options, s.subscription_id}, o);
    });
  }
  w.u32(static_cast<uint32_t>(image.inflight.size()));
  for (const OutMessage& m : image.inflight) put_message(out, m);
  w.u32(static_cast<uint32_t>(image.queued.size()));
  for (const OutMessage& m : image.queued) put_message(out, m);
  w.u32(static_cast<uint32_t>(image.incoming.size()));
  for (uint16_t id : image.incoming) w.u16(id);
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
  auto session = store::decode_session_record(in.str32());
  if (!in.ok()) return fail("truncated session image header");
  if (!session.ok()) return fail(session.error);
  if (session.value.version != mqtt::ProtocolVersion::kV31 &&
      session.value.version != mqtt::ProtocolVersion::kV311)
    return fail("session image protocol level is not 3.1 or 3.1.1");
  if (session.value.expiry_s != store::kNeverExpires || session.value.offline_since_ms != 0)
    return fail("session image with an expiry");
  r.image.version = session.value.version;
  r.image.last_packet_id = session.value.last_packet_id;

  // Each entry is at least its length prefixes: a forged count cannot reserve memory.
  uint32_t n = in.count(2 + 4);
  if (!in.ok()) return fail("truncated subscription count");
  r.image.subscriptions.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    const std::string_view filter = as_chars(in.str16());
    auto sub = store::decode_subscription_record(in.str32());
    if (!in.ok()) return fail("truncated subscription");
    if (!sub.ok()) return fail(sub.error);
    if (!store::valid_stored_filter(filter)) return fail("invalid subscription filter");
    r.image.subscriptions.push_back(
        {std::string(filter), sub.value.qos, sub.value.options, sub.value.subscription_id});
  }

  // Packet ids seen so far: a bitmap keeps duplicate checks linear on forged input.
  std::vector<bool> seen(65536, false);
  n = in.count(4 + 4);
  if (!in.ok()) return fail("truncated in-flight count");
  r.image.inflight.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    OutMessage m;
    if (const char* why = read_message(in, m)) return fail(why);
    if (m.state == State::kQueued) return fail("queued message among those in flight");
    if (seen[m.packet_id]) return fail("duplicate in-flight packet id");
    seen[m.packet_id] = true;
    r.image.inflight.push_back(std::move(m));
  }

  n = in.count(4 + 4);
  if (!in.ok()) return fail("truncated queue count");
  r.image.queued.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    OutMessage m;
    if (const char* why = read_message(in, m)) return fail(why);
    if (m.state != State::kQueued) return fail("in-flight message among the queued");
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
