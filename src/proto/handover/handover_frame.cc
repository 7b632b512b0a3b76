// The upgrade handover's frames: encoding and a decoder that treats every byte as untrusted
// (the other end may be another release, or not tcpms at all).
#include "handover/handover_frame.h"

#include <cstring>
#include <type_traits>

#include "wire/little_endian.h"

namespace tcpms::net::handover {
namespace {

using wire::LeReader;
using wire::LeWriter;

// The smallest encoding of one entry, so that a forged count is refused before anything is
// reserved for it (LeReader::count).
constexpr size_t kMinListenerBytes = 4 + 2;
constexpr size_t kMinConnectionBytes = 8 + 4 + 4 + 1 + 4 + 4 + 4;

Kind kind_of(const Frame& f) noexcept {
  return std::visit(
      [](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, Hello>) return Kind::kHello;
        else if constexpr (std::is_same_v<T, Welcome>) return Kind::kWelcome;
        else if constexpr (std::is_same_v<T, Refuse>) return Kind::kRefuse;
        else if constexpr (std::is_same_v<T, Listeners>) return Kind::kListeners;
        else if constexpr (std::is_same_v<T, Taken>) return Kind::kTaken;
        else if constexpr (std::is_same_v<T, Batch>) return Kind::kBatch;
        else if constexpr (std::is_same_v<T, State>) return Kind::kState;
        else if constexpr (std::is_same_v<T, Workers>) return Kind::kWorkers;
        else return Kind::kDone;
      },
      f);
}

std::string text16(LeReader& r) { return std::string(r.text16()); }
std::string text32(LeReader& r) { return std::string(as_chars(r.str32())); }

std::string_view chars(const uint8_t* p, size_t n) { return {reinterpret_cast<const char*>(p), n}; }

// Version 6: a transport's TLS records and WebSocket framing.
void encode_framing(const TransportState& t, LeWriter& w) {
  w.u8(t.tls ? 1 : 0);
  if (t.tls) {
    const TlsState& s = *t.tls;
    w.u8(s.suite);
    w.u8(s.secret_length);
    for (const TlsDirection* d : {&s.read, &s.write}) {
      w.bytes(chars(d->secret.data(), s.secret_length));
      w.u64(d->seq);
    }
    w.str16(s.identity);
    w.str32(s.partial);
  }
  w.u8(t.websocket ? 1 : 0);
  if (t.websocket) {
    const WebSocketState& s = *t.websocket;
    w.u64(s.payload_left);
    w.bytes(chars(s.mask.data(), s.mask.size()));
    w.u8(s.mask_offset);
    w.u8(static_cast<uint8_t>((s.in_message ? 1 : 0) | (s.in_frame ? 2 : 0) | (s.masked ? 4 : 0)));
    w.str16(s.stash);
  }
}

const char* decode_framing(LeReader& r, TransportState& t) {
  const uint8_t has_tls = r.u8();
  if (has_tls > 1) return "batch: a transport's tls flag is neither 0 nor 1";
  if (has_tls == 1) {
    TlsState s;
    s.suite = r.u8();
    s.secret_length = r.u8();
    if (r.ok() && (s.suite < 1 || s.suite > 3)) return "batch: a tls state of an unknown suite";
    if (r.ok() && s.secret_length != 32 && s.secret_length != 48)
      return "batch: a tls secret neither 32 nor 48 bytes long";
    for (TlsDirection* d : {&s.read, &s.write}) {
      ByteView secret = r.bytes(s.secret_length);
      if (r.ok()) std::memcpy(d->secret.data(), secret.data(), secret.size());
      d->seq = r.u64();
    }
    s.identity = text16(r);
    s.partial = text32(r);
    if (s.partial.size() > kMaxPartialRecordBytes) return "batch: a tls record cut short is longer than a record";
    t.tls = std::move(s);
  }
  const uint8_t has_ws = r.u8();
  if (has_ws > 1) return "batch: a transport's websocket flag is neither 0 nor 1";
  if (has_ws == 1) {
    WebSocketState s;
    s.payload_left = r.u64();
    ByteView mask = r.bytes(s.mask.size());
    if (r.ok()) std::memcpy(s.mask.data(), mask.data(), mask.size());
    s.mask_offset = r.u8();
    const uint8_t flags = r.u8();
    if (r.ok() && s.mask_offset > 3) return "batch: a websocket mask offset past the mask";
    if (r.ok() && flags > 7) return "batch: unknown websocket flags";
    s.in_message = (flags & 1) != 0;
    s.in_frame = (flags & 2) != 0;
    s.masked = (flags & 4) != 0;
    s.stash = text16(r);
    if (s.stash.size() > kMaxWebSocketStashBytes)
      return "batch: a websocket frame cut short is longer than a control frame";
    t.websocket = std::move(s);
  }
  return nullptr;
}

void encode_body(const Frame& frame, LeWriter& w, uint16_t version) {
  std::visit(
      [&w, version](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, Hello>) {
          w.u16(v.lowest);
          w.u16(v.highest);
          w.u32(v.pid);
        } else if constexpr (std::is_same_v<T, Welcome>) {
          w.u16(v.version);
          w.u32(v.pid);
          w.u32(v.loops);
          w.str16(v.protocol);
        } else if constexpr (std::is_same_v<T, Refuse>) {
          w.u16(static_cast<uint16_t>(v.code));
          w.str16(v.reason);
        } else if constexpr (std::is_same_v<T, Listeners>) {
          w.u32(static_cast<uint32_t>(v.entries.size()));
          for (const auto& e : v.entries) {
            w.u32(e.index);
            w.str16(e.address);
          }
        } else if constexpr (std::is_same_v<T, Taken>) {
          w.u32(v.sequence);
          w.u32(static_cast<uint32_t>(v.taken.size()));
          for (uint8_t t : v.taken) w.u8(t);
        } else if constexpr (std::is_same_v<T, Batch>) {
          w.u32(v.sequence);
          w.u32(static_cast<uint32_t>(v.connections.size()));
          for (const auto& c : v.connections) {
            w.u64(c.old_id);
            w.u32(c.handler);
            w.u32(c.idle_timeout_ms);
            w.u8(c.flags);
            w.str32(c.unread_input);
            w.str32(c.unsent_output);
            w.str32(c.protocol_state);
            if (version < kTransportVersion) continue;
            w.u8(c.transport ? 1 : 0);
            if (!c.transport) continue;
            const TransportState& t = *c.transport;
            w.u16(t.listener);
            w.u8(t.has_peer ? 1 : 0);
            w.u16(t.peer_family);
            w.u16(t.peer_port);
            w.bytes(std::string_view(reinterpret_cast<const char*>(t.peer_addr.data()), t.peer_addr.size()));
            if (version >= kTlsWebSocketVersion) encode_framing(t, w);
          }
        } else if constexpr (std::is_same_v<T, State>) {
          w.u32(v.sequence);
          w.u32(static_cast<uint32_t>(v.items.size()));
          for (const auto& item : v.items) w.str32(item);
        } else if constexpr (std::is_same_v<T, Workers>) {
          w.u32(v.epoch);
          w.u32(static_cast<uint32_t>(v.indices.size()));
          for (uint32_t i : v.indices) w.u32(i);
        } else {
          w.u32(v.connections);
        }
      },
      frame);
}

const char* decode_into(Kind kind, uint16_t version, LeReader& r, Frame& out) {
  switch (kind) {
    case Kind::kHello: {
      Hello h;
      h.lowest = r.u16();
      h.highest = r.u16();
      h.pid = r.u32();
      if (r.ok() && h.lowest > h.highest) return "hello: lowest version above highest";
      out = h;
      return nullptr;
    }
    case Kind::kWelcome: {
      Welcome w;
      w.version = r.u16();
      w.pid = r.u32();
      w.loops = r.u32();
      w.protocol = text16(r);
      out = std::move(w);
      return nullptr;
    }
    case Kind::kRefuse: {
      Refuse f;
      f.code = static_cast<RefuseCode>(r.u16());
      f.reason = text16(r);
      out = std::move(f);
      return nullptr;
    }
    case Kind::kListeners: {
      Listeners l;
      uint32_t n = r.count(kMinListenerBytes);
      l.entries.reserve(n);
      for (uint32_t i = 0; i < n && r.ok(); ++i) {
        ListenerEntry e;
        e.index = r.u32();
        e.address = text16(r);
        l.entries.push_back(std::move(e));
      }
      out = std::move(l);
      return nullptr;
    }
    case Kind::kTaken: {
      Taken t;
      t.sequence = r.u32();
      uint32_t n = r.count(1);
      t.taken.reserve(n);
      for (uint32_t i = 0; i < n && r.ok(); ++i) {
        uint8_t v = r.u8();
        if (v > 1) return "taken: an entry is neither 0 nor 1";
        t.taken.push_back(v);
      }
      out = std::move(t);
      return nullptr;
    }
    case Kind::kBatch: {
      Batch b;
      b.sequence = r.u32();
      uint32_t n = r.count(kMinConnectionBytes);
      b.connections.reserve(n);
      for (uint32_t i = 0; i < n && r.ok(); ++i) {
        ConnectionState c;
        c.old_id = r.u64();
        c.handler = r.u32();
        c.idle_timeout_ms = r.u32();
        c.flags = r.u8();
        c.unread_input = text32(r);
        c.unsent_output = text32(r);
        c.protocol_state = text32(r);
        if (version >= kTransportVersion) {
          const uint8_t has = r.u8();
          if (has > 1) return "batch: a connection's transport is neither absent nor present";
          if (has == 1) {
            TransportState t;
            t.listener = r.u16();
            const uint8_t peer = r.u8();
            if (peer > 1) return "batch: a transport's peer flag is neither 0 nor 1";
            t.has_peer = peer == 1;
            t.peer_family = r.u16();
            t.peer_port = r.u16();
            ByteView addr = r.bytes(t.peer_addr.size());
            if (r.ok()) std::memcpy(t.peer_addr.data(), addr.data(), addr.size());
            if (version >= kTlsWebSocketVersion) {
              if (const char* e = decode_framing(r, t)) return e;
            }
            c.transport = std::move(t);
          }
        }
        b.connections.push_back(std::move(c));
      }
      out = std::move(b);
      return nullptr;
    }
    case Kind::kDone: {
      Done d;
      d.connections = r.u32();
      out = d;
      return nullptr;
    }
    case Kind::kState: {
      State st;
      st.sequence = r.u32();
      const uint32_t n = r.count(4);
      st.items.reserve(n);
      for (uint32_t i = 0; i < n && r.ok(); ++i) st.items.emplace_back(as_chars(r.str32()));
      out = std::move(st);
      return nullptr;
    }
    case Kind::kWorkers: {
      Workers wk;
      wk.epoch = r.u32();
      const uint32_t n = r.count(4);
      wk.indices.reserve(n);
      for (uint32_t i = 0; i < n && r.ok(); ++i) wk.indices.push_back(r.u32());
      out = std::move(wk);
      return nullptr;
    }
  }
  return "unknown frame kind";
}

}  // namespace

size_t descriptors_of(const Frame& frame) noexcept {
  if (auto* l = std::get_if<Listeners>(&frame)) return l->entries.size();
  if (auto* b = std::get_if<Batch>(&frame)) return b->connections.size();
  if (auto* w = std::get_if<Workers>(&frame)) return w->indices.size();
  return 0;
}

void encode(const Frame& frame, std::string& out, uint16_t version) {
  const size_t at = out.size();
  LeWriter w(out);
  w.u32(0);  // the length, filled in below
  const Kind kind = kind_of(frame);
  const bool fixed = kind == Kind::kHello || kind == Kind::kRefuse;  // readable by any release
  w.u8(static_cast<uint8_t>(fixed ? 1 : version));
  w.u8(static_cast<uint8_t>(kind));
  encode_body(frame, w, fixed ? 1 : version);
  const uint32_t body = static_cast<uint32_t>(out.size() - at - kLengthBytes);
  for (size_t i = 0; i < kLengthBytes; ++i) out[at + i] = static_cast<char>((body >> (8 * i)) & 0xff);
}

LengthResult decode_length(ByteView first_bytes) {
  LeReader r(first_bytes);
  LengthResult res;
  res.body_bytes = r.u32();
  if (!r.ok()) res.error = "frame length cut short";
  else if (res.body_bytes < 2) res.error = "frame shorter than its version and kind";
  else if (res.body_bytes > kMaxFrameBytes) res.error = "frame longer than the handover allows";
  return res;
}

DecodeResult decode_body(ByteView body) {
  DecodeResult res;
  LeReader r(body);
  const uint8_t version = r.u8();
  const uint8_t kind = r.u8();
  if (!r.ok()) {
    res.error = "frame shorter than its version and kind";
    return res;
  }
  res.version = version;
  if (version < kLowestVersion || version > kHighestVersion) {
    res.error = "frame of a handover version this build does not speak";
    return res;
  }
  if (kind < static_cast<uint8_t>(Kind::kHello) || kind > static_cast<uint8_t>(Kind::kWorkers)) {
    res.error = "unknown frame kind";
    return res;
  }
  // Hello and Refuse are version 1 in every release (encode writes them so), so that any two
  // releases can say which versions they speak; another version there is no frame we send.
  if ((kind == static_cast<uint8_t>(Kind::kHello) || kind == static_cast<uint8_t>(Kind::kRefuse)) &&
      version != 1) {
    res.error = "Hello or Refuse in a version other than 1";
    return res;
  }
  if (kind == static_cast<uint8_t>(Kind::kState) && version < 2) {
    res.error = "frame kind State in handover version 1";
    return res;
  }
  if (kind == static_cast<uint8_t>(Kind::kWorkers) && version < 3) {
    res.error = "frame kind Workers before handover version 3";
    return res;
  }
  if (const char* e = decode_into(static_cast<Kind>(kind), version, r, res.frame)) {
    res.error = e;
    return res;
  }
  if (!r.ok()) res.error = "frame cut short";
  else if (r.remaining() != 0) res.error = "bytes left over after the frame";
  return res;
}

uint16_t negotiate(const Hello& hello) noexcept {
  const uint16_t top = hello.highest < kHighestVersion ? hello.highest : kHighestVersion;
  const uint16_t bottom = hello.lowest > kLowestVersion ? hello.lowest : kLowestVersion;
  return top >= bottom ? top : 0;
}

}  // namespace tcpms::net::handover
