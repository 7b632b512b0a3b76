#include "routing/frame.h"

#include <algorithm>

#include "wire/little_endian.h"

namespace tcpms::routing {
namespace {

using wire::LeReader;
using wire::LeWriter;

constexpr uint8_t kQosMask = 3;
constexpr uint8_t kRetainBit = 4;

void put_message(LeWriter& w, const MessageView& m) {
  w.u8(static_cast<uint8_t>(static_cast<uint8_t>(m.qos) | (m.retain ? kRetainBit : 0)));
  w.u32(m.expiry_left_ms);
  w.str16(m.topic);
  w.str32(m.props);
  w.bytes(m.payload);
}

bool get_message(LeReader& in, MessageView& m) {
  const uint8_t flags = in.u8();
  m.expiry_left_ms = in.u32();
  m.topic = in.text16();
  m.props = in.str32();
  m.payload = in.rest();
  if (!in.ok() || (flags & ~(kQosMask | kRetainBit)) != 0 || (flags & kQosMask) > 2) return false;
  m.qos = static_cast<mqtt::QoS>(flags & kQosMask);
  m.retain = (flags & kRetainBit) != 0;
  return !m.topic.empty();
}

struct Encoder {
  LeWriter& w;
  void operator()(const Hello& f) {
    w.u64(f.incarnation);
    w.u32(f.interest_slots);
    w.u8(f.interest_hashes);
  }
  void operator()(const Publish& f) { put_message(w, f.message); }
  void shapes(const ShapeList& l) {
    const size_t n = std::min(l.count(), kMaxShapesPerPeer);
    w.u8(static_cast<uint8_t>(n));
    w.bytes(l.bytes.first(n * 8));
  }
  void operator()(const InterestSnapshot& f) {
    w.u32(f.slots);
    w.u8(f.flags);
    shapes(f.shapes);
    w.bytes(f.bitmap);
  }
  void operator()(const InterestDelta& f) {
    w.u32(f.slots);
    w.u8(f.flags);
    shapes(f.shapes);
    w.u32(static_cast<uint32_t>(f.count()));
    w.bytes(f.changes.first(f.count() * 4));
  }
  void operator()(const ClaimRequest& f) {
    w.u64(f.request);
    w.u8(f.flags);
    w.str16(f.client_id);
  }
  void operator()(const ClaimAnswer& f) {
    w.u64(f.request);
    w.u32(f.ticket);
    w.u16(f.previous);
    w.u32(f.previous_ticket);
    w.u8(f.flags);
  }
  void operator()(const Surrender& f) {
    w.u64(f.request);
    w.u16(f.to);
    w.u32(f.ticket);
    w.u8(f.flags);
    w.str16(f.client_id);
  }
  void operator()(const SessionImage& f) {
    w.u64(f.request);
    w.u8(f.flags);
    w.str16(f.client_id);
    w.bytes(f.image);
  }
  void operator()(const Release& f) {
    w.u32(f.ticket);
    w.str16(f.client_id);
  }
  void operator()(const Register& f) {
    w.u32(f.ticket);
    w.str16(f.client_id);
  }
  void operator()(const ById& f) {
    w.u64(f.request);
    w.u16(f.reply_to);
    w.u8(static_cast<uint8_t>(f.op));
    w.u8(f.hops);
    w.str16(f.client_id);
    w.bytes(f.body);
  }
  void operator()(const Reply& f) {
    w.u64(f.request);
    w.u8(static_cast<uint8_t>(f.status));
    w.bytes(f.body);
  }
  void operator()(const Query& f) {
    w.u64(f.request);
    w.u8(static_cast<uint8_t>(f.what));
    w.bytes(f.args);
  }
  void operator()(const QueryAnswer& f) {
    w.u64(f.request);
    w.u8(f.status);
    w.bytes(f.body);
  }
  void operator()(const SharedGroup& f) {
    w.u8(f.joined ? 1 : 0);
    w.str16(f.group);
    w.str16(f.filter);
  }
  void operator()(const InterestRelay& f) {
    w.u16(f.count);
    w.bytes(f.entries);
  }
  void operator()(const SharedDeliver& f) {
    w.u8(f.hops);
    w.str16(f.group);
    w.str16(f.filter);
    put_message(w, f.message);
  }
  void operator()(const InterestMark& f) { w.u64(f.number); }
  void operator()(const InterestApplied& f) { w.u64(f.number); }
  void operator()(const DrainMark& f) { w.u32(f.epoch); }
  void operator()(const DurablePublish& f) {
    w.u64(f.request);
    w.u8(f.hops);
    w.str16(f.group);
    w.str16(f.filter);
    put_message(w, f.message);
  }
};

FrameKind kind_of(const Frame& f) {
  return static_cast<FrameKind>(f.index() + 1);  // the variant lists the kinds in order
}

template <typename T>
std::optional<Frame> done(LeReader& in, T value) {
  if (!in.ok() || in.remaining() != 0) return std::nullopt;
  return Frame(std::move(value));
}

}  // namespace

uint64_t ShapeList::at(size_t i) const noexcept {
  LeReader in(bytes.subspan(i * 8, 8));
  return in.u64();
}

uint32_t InterestDelta::at(size_t i) const noexcept {
  LeReader in(changes.subspan(i * 4, 4));
  return in.u32();
}

void encode(const Frame& f, std::string& out) {
  LeWriter w(out);
  w.u8(kFrameVersion);
  w.u8(static_cast<uint8_t>(kind_of(f)));
  std::visit(Encoder{w}, f);
}

std::string encode(const Frame& f) {
  std::string out;
  encode(f, out);
  return out;
}

std::optional<FrameKind> peek_kind(ByteView bytes) {
  if (bytes.size() < 2 || static_cast<uint8_t>(bytes[0]) != kFrameVersion) return std::nullopt;
  return static_cast<FrameKind>(bytes[1]);
}

std::optional<Frame> decode(ByteView bytes) {
  LeReader in(bytes);
  if (in.u8() != kFrameVersion) return std::nullopt;
  const auto kind = static_cast<FrameKind>(in.u8());
  if (!in.ok()) return std::nullopt;
  switch (kind) {
    case FrameKind::kHello: {
      Hello f;
      f.incarnation = in.u64();
      f.interest_slots = in.u32();
      f.interest_hashes = in.u8();
      return done(in, f);
    }
    case FrameKind::kPublish: {
      Publish f;
      if (!get_message(in, f.message)) return std::nullopt;
      return done(in, f);
    }
    case FrameKind::kInterestSnapshot: {
      InterestSnapshot f;
      f.slots = in.u32();
      f.flags = in.u8();
      f.shapes.bytes = in.bytes(size_t{in.u8()} * 8);
      if (!in.ok() || f.slots % 8 != 0 || f.slots == 0 || f.flags > kInterestOverflow ||
          f.shapes.count() > kMaxShapesPerPeer)
        return std::nullopt;
      f.bitmap = in.bytes(f.slots / 8);
      return done(in, f);
    }
    case FrameKind::kInterestDelta: {
      InterestDelta f;
      f.slots = in.u32();
      f.flags = in.u8();
      f.shapes.bytes = in.bytes(size_t{in.u8()} * 8);
      if (!in.ok() || f.shapes.count() > kMaxShapesPerPeer || f.flags > kInterestOverflow)
        return std::nullopt;
      const uint32_t n = in.count(4);
      f.changes = in.bytes(size_t{n} * 4);
      return done(in, f);
    }
    case FrameKind::kClaim: {
      ClaimRequest f;
      f.request = in.u64();
      f.flags = in.u8();
      f.client_id = in.text16();
      if ((f.flags & ~ClaimRequest::kPersistent) != 0) return std::nullopt;
      return done(in, f);
    }
    case FrameKind::kClaimAnswer: {
      ClaimAnswer f;
      f.request = in.u64();
      f.ticket = in.u32();
      f.previous = in.u16();
      f.previous_ticket = in.u32();
      f.flags = in.u8();
      if ((f.flags & ~ClaimAnswer::kImageComing) != 0) return std::nullopt;
      return done(in, f);
    }
    case FrameKind::kSurrender: {
      Surrender f;
      f.request = in.u64();
      f.to = in.u16();
      f.ticket = in.u32();
      f.flags = in.u8();
      f.client_id = in.text16();
      if ((f.flags & ~Surrender::kWantImage) != 0) return std::nullopt;
      return done(in, f);
    }
    case FrameKind::kSessionImage: {
      SessionImage f;
      f.request = in.u64();
      f.flags = in.u8();
      f.client_id = in.text16();
      f.image = in.rest();
      if ((f.flags & ~SessionImage::kHasImage) != 0) return std::nullopt;
      if (!(f.flags & SessionImage::kHasImage) && !f.image.empty()) return std::nullopt;
      return done(in, f);
    }
    case FrameKind::kRelease: {
      Release f;
      f.ticket = in.u32();
      f.client_id = in.text16();
      return done(in, f);
    }
    case FrameKind::kRegister: {
      Register f;
      f.ticket = in.u32();
      f.client_id = in.text16();
      return done(in, f);
    }
    case FrameKind::kById: {
      ById f;
      f.request = in.u64();
      f.reply_to = in.u16();
      const uint8_t op = in.u8();
      f.hops = in.u8();
      f.client_id = in.text16();
      f.body = in.rest();
      if (op < static_cast<uint8_t>(ByIdOp::kPush) || op > static_cast<uint8_t>(ByIdOp::kDropSession))
        return std::nullopt;
      f.op = static_cast<ByIdOp>(op);
      return done(in, f);
    }
    case FrameKind::kReply: {
      Reply f;
      f.request = in.u64();
      const uint8_t status = in.u8();
      f.body = in.rest();
      if (status > static_cast<uint8_t>(ReplyStatus::kFailed)) return std::nullopt;
      f.status = static_cast<ReplyStatus>(status);
      return done(in, f);
    }
    case FrameKind::kQuery: {
      Query f;
      f.request = in.u64();
      const uint8_t what = in.u8();
      f.args = in.rest();
      if (what < static_cast<uint8_t>(QueryWhat::kMetrics) || what > static_cast<uint8_t>(QueryWhat::kRetained))
        return std::nullopt;
      f.what = static_cast<QueryWhat>(what);
      return done(in, f);
    }
    case FrameKind::kQueryAnswer: {
      QueryAnswer f;
      f.request = in.u64();
      f.status = in.u8();
      f.body = in.rest();
      return done(in, f);
    }
    case FrameKind::kSharedGroup: {
      SharedGroup f;
      const uint8_t joined = in.u8();
      f.group = in.text16();
      f.filter = in.text16();
      if (joined > 1 || f.group.empty() || f.filter.empty()) return std::nullopt;
      f.joined = joined == 1;
      return done(in, f);
    }
    case FrameKind::kSharedDeliver: {
      SharedDeliver f;
      f.hops = in.u8();
      f.group = in.text16();
      f.filter = in.text16();
      if (!in.ok() || f.group.empty() || f.filter.empty() || !get_message(in, f.message))
        return std::nullopt;
      return done(in, f);
    }
    case FrameKind::kDurablePublish: {
      DurablePublish f;
      f.request = in.u64();
      f.hops = in.u8();
      f.group = in.text16();
      f.filter = in.text16();
      // A shared one names both its group and filter; a plain publish neither (nor hops).
      if (!in.ok() || f.group.empty() != f.filter.empty() || (f.group.empty() && f.hops != 0) ||
          !get_message(in, f.message))
        return std::nullopt;
      return done(in, f);
    }
    case FrameKind::kInterestMark: {
      InterestMark f;
      f.number = in.u64();
      return done(in, f);
    }
    case FrameKind::kInterestApplied: {
      InterestApplied f;
      f.number = in.u64();
      return done(in, f);
    }
    case FrameKind::kDrainMark: {
      DrainMark f;
      f.epoch = in.u32();
      return done(in, f);
    }
    case FrameKind::kInterestRelay: {
      InterestRelay f;
      f.count = in.u16();
      const ByteView start = in.rest();
      // Every entry must be whole: the for_each above reads them without checks.
      LeReader entries(start);
      for (uint16_t i = 0; i < f.count; ++i) {
        entries.u16();
        entries.str32();
      }
      if (!in.ok() || !entries.ok() || entries.remaining() != 0) return std::nullopt;
      f.entries = start;
      return Frame(f);
    }
  }
  return std::nullopt;  // a newer process's kind
}

void append_relay_entry(std::string& entries, PeerId origin, ByteView frame) {
  LeWriter w(entries);
  w.u16(origin);
  w.str32(frame);
}

MessageView view_of(const broker::Message& m, uint64_t now_ms) {
  MessageView v;
  v.qos = m.qos;
  v.retain = m.retain;
  if (m.props.expires_at_ms != 0) {
    const uint64_t left = m.props.expires_at_ms > now_ms ? m.props.expires_at_ms - now_ms : 1;
    v.expiry_left_ms = static_cast<uint32_t>(std::min<uint64_t>(left, 0xFFFFFFFFu));
  }
  v.topic = as_chars(m.topic.view());
  v.props = m.props.wire.view();
  v.payload = m.payload.view();
  return v;
}

broker::Message message_of(const MessageView& v, uint64_t now_ms) {
  broker::Message m;
  m.topic = SharedBytes::copy_of(as_bytes(v.topic));
  m.payload = SharedBytes::copy_of(v.payload);
  if (!v.props.empty()) m.props.wire = SharedBytes::copy_of(v.props);
  if (v.expiry_left_ms != 0) m.props.expires_at_ms = now_ms + v.expiry_left_ms;
  m.qos = v.qos;
  m.retain = v.retain;
  return m;
}

std::string encode_message_body(const MessageView& m) {
  std::string out;
  LeWriter w(out);
  put_message(w, m);
  return out;
}

std::optional<MessageView> decode_message_body(ByteView body) {
  LeReader in(body);
  MessageView m;
  if (!get_message(in, m) || in.remaining() != 0) return std::nullopt;
  return m;
}

}  // namespace tcpms::routing
