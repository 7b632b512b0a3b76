// The TLS 1.3 record layer after the handshake, for connections the engine accepted: once
// OpenSSL has finished a TLS 1.3 handshake, the connection keeps only its traffic keys
// (TlsRecords, tls_records.h) and the `SSL` (about 14 KB) is freed; records are then opened in
// place in whichever buffer holds them and sealed into one per-loop buffer, with the AEAD of a
// per-loop tls13::Aead. The framing is src/proto/tls13 (pure, fuzzed).
//
// What the peer may still send besides application data: a KeyUpdate (our read key changes;
// asked, ours changes too), close_notify (the TLS form of a FIN), another alert (the end). All
// else is a protocol error, answered with a fatal alert. Connections OpenSSL keeps (TLS 1.2,
// other suites, the connecting side) never come here.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "net/loop_core.h"
#include "net/tls_context.h"
#include "net/transport.h"
#include "tcpms/event_loop.h"

namespace tcpms {

using net::Transport;
namespace tls = tls13;

namespace {

tls::Aead& aead_of(net::LoopCore& core) {
  if (!core.aead) core.aead = std::make_unique<tls::Aead>();
  return *core.aead;
}

std::byte* record_buffer(net::LoopCore& core) {
  if (!core.record_out) core.record_out.reset(new std::byte[tls::kMaxRecordBytes]);
  return core.record_out.get();
}

}  // namespace

void EventLoop::free_ssl(Transport& t) {
  SSL* ssl = t.ssl();
  if (ssl == nullptr) return;
  net::detach_records(ssl).reset();  // a handshake that did not finish
  SSL_free(ssl);  // frees its BIO too
  t.ssl_ = nullptr;
  stats_.tls_openssl_connections.sub();
}

bool EventLoop::leave_openssl(Connection& c) {
  Transport& t = *static_cast<Transport*>(c.user_);
  SSL* ssl = t.ssl();
  net::TlsRecords* r = ssl ? net::records_of(ssl) : nullptr;
  if (r == nullptr) return false;
  if (!net::take_over(ssl, *r)) {  // TLS 1.2 or another suite: OpenSSL keeps it, keys unneeded
    net::detach_records(ssl).reset();
    return false;
  }
  const TlsServerSettings& s = t.config->options.tls->server_settings();
  if (s.identity_as_username && !tcpms::certificate_identity(ssl, s.identity_field, r->identity))
    r->identity.clear();
  net::TlsRecordsPtr owned = net::detach_records(ssl);
  free_ssl(t);
  t.records_ = owned.release();  // the transport's now (kOwnRecords)
  t.flags |= Transport::kOwnRecords;
  return true;
}

// Opens every whole record in `in`, in place; a record cut at the end waits in r.partial,
// which takes from the next read only the bytes the record lacks.
void EventLoop::records_input(Connection& c, MutableByteView in) {
  Transport& t = *static_cast<Transport*>(c.user_);
  net::TlsRecords& r = *t.records();
  if (t.flags & Transport::kCloseReceived) return;  // nothing counts after close_notify
  if (r.partial != nullptr) {
    auto take = [&](size_t want) {
      const size_t n = std::min(want, in.size());
      net::pending_append(r.partial, in.first(n), tls::kMaxRecordBytes);
      in = in.subspan(n);
    };
    if (r.partial->size < tls::kHeaderBytes) take(tls::kHeaderBytes - r.partial->size);
    const tls::Header h = tls::parse_header(ByteView(r.partial->data(), r.partial->size));
    if (h.status == tls::Header::kNeedMore) return;
    if (h.status == tls::Header::kError) {
      records_fail(c, static_cast<uint8_t>(h.alert), "bad record header");
      return;
    }
    take(h.record_bytes - r.partial->size);
    if (r.partial->size < h.record_bytes) return;
    net::PendingInput* whole = r.partial;
    r.partial = nullptr;
    const bool go_on = records_open(c, MutableByteView(whole->data(), whole->size));
    net::pending_free(whole);
    if (!go_on) return;
  }
  size_t off = 0;
  while (off < in.size() && c.open()) {
    const tls::Header h = tls::parse_header(in.subspan(off));
    if (h.status == tls::Header::kNeedMore || h.record_bytes > in.size() - off) break;
    if (h.status == tls::Header::kError) {
      records_fail(c, static_cast<uint8_t>(h.alert), "bad record header");
      return;
    }
    if (!records_open(c, in.subspan(off, h.record_bytes))) return;
    off += h.record_bytes;
  }
  if (off < in.size() && c.open() && !(t.flags & Transport::kCloseReceived))
    net::pending_append(r.partial, in.subspan(off), tls::kMaxRecordBytes);
}

// One whole record. False when the connection reads no further (closed, closing, or the
// peer's close_notify).
bool EventLoop::records_open(Connection& c, MutableByteView record) {
  Transport& t = *static_cast<Transport*>(c.user_);
  net::TlsRecords& r = *t.records();
  const tls::Aead::Opened o = aead_of(*core_).open(r.suite, r.read, record);
  if (!o.ok) {
    records_fail(c, static_cast<uint8_t>(tls::AlertCode::kBadRecordMac), "record failed authentication");
    return false;
  }
  const tls::Inner in = tls::split_inner(o.plaintext);
  if (!in.ok) {
    records_fail(c, static_cast<uint8_t>(tls::AlertCode::kUnexpectedMessage), "record without content type");
    return false;
  }
  switch (in.type) {
    case tls::ContentType::kApplicationData:
      if (!in.content.empty()) plaintext_input(c, in.content);
      return c.open() && !(t.flags & Transport::kCloseReceived);
    case tls::ContentType::kAlert: {
      if (in.content.size() != 2) {
        records_fail(c, static_cast<uint8_t>(tls::AlertCode::kDecodeError), "malformed alert");
        return false;
      }
      const auto code = static_cast<tls::AlertCode>(in.content[1]);
      if (code == tls::AlertCode::kUserCanceled) return true;  // close_notify follows
      t.flags |= Transport::kCloseReceived;
      if (code == tls::AlertCode::kCloseNotify) {
        apply(c, handlers_[c.handler_]->on_peer_shutdown(c), CloseReason::kPeerClosed);
        return false;
      }
      // Any other alert is fatal (section 6.2): no answer, no close_notify.
      stats_.tls_record_errors.add();
      t.flags |= Transport::kTlsCloseSent;
      spdlog::debug("loop {}: tls: peer sent alert {}", index_, static_cast<int>(code));
      c.last_error_ = EPROTO;
      schedule_close(c, CloseReason::kProtocol);
      return false;
    }
    case tls::ContentType::kHandshake: {
      const tls::PostHandshake p = tls::parse_post_handshake(in.content);
      if (!p.ok) {
        records_fail(c, static_cast<uint8_t>(p.alert), "unexpected handshake message");
        return false;
      }
      if (p.key_update) {
        stats_.tls_key_updates.add();
        tls::update(r.suite, r.read);
        if (p.update_requested) {
          // Answered under the old key, then ours changes (section 4.6.3).
          std::byte msg[tls::kKeyUpdateBytes];
          tls::encode_key_update(msg, false);
          if (!records_seal(c, static_cast<uint8_t>(tls::ContentType::kHandshake), ByteView(msg, sizeof msg), false))
            return false;
          tls::update(r.suite, r.write);
        }
      }
      return true;
    }
    default:
      records_fail(c, static_cast<uint8_t>(tls::AlertCode::kUnexpectedMessage), "unexpected record type");
      return false;
  }
}

// Seals the pieces into records of up to 2^14 bytes, each gathered in the loop's one record
// buffer and handed to the engine's write path (which copies what the socket does not take).
bool EventLoop::records_write(Connection& c, const ByteView* pieces, size_t count, bool defer) {
  Transport& t = *static_cast<Transport*>(c.user_);
  net::TlsRecords& r = *t.records();
  std::byte* out = record_buffer(*core_);
  std::byte* plain = out + tls::kHeaderBytes;
  size_t have = 0;
  auto flush = [&]() {
    if (r.write.seq >= tls::kRecordsPerKey) {
      // Well before AES-GCM's limit: tell the peer, then change our key.
      std::byte msg[tls::kKeyUpdateBytes];
      tls::encode_key_update(msg, false);
      std::byte rec[tls::kKeyUpdateBytes + tls::kSealOverhead];
      const size_t m = aead_of(*core_).seal(r.suite, r.write, tls::ContentType::kHandshake,
                                            ByteView(msg, sizeof msg), rec);
      ByteView v(rec, m);
      if (m == 0 || !write_raw(c, &v, 1, nullptr, defer)) return false;
      tls::update(r.suite, r.write);
    }
    const size_t n = aead_of(*core_).seal(r.suite, r.write, tls::ContentType::kApplicationData,
                                          ByteView(plain, have), out);
    have = 0;
    ByteView v(out, n);
    return n != 0 && write_raw(c, &v, 1, nullptr, defer);
  };
  for (size_t i = 0; i < count; ++i) {
    ByteView piece = pieces[i];
    while (!piece.empty()) {
      const size_t n = std::min(piece.size(), tls::kMaxPlaintext - have);
      std::memcpy(plain + have, piece.data(), n);
      have += n;
      piece = piece.subspan(n);
      if (have == tls::kMaxPlaintext && !flush()) return false;
    }
  }
  if (have != 0 && !flush()) return false;
  return c.open();
}

// One record of `type` (an alert, a KeyUpdate), sealed and written.
bool EventLoop::records_seal(Connection& c, uint8_t type, ByteView content, bool defer) {
  Transport& t = *static_cast<Transport*>(c.user_);
  net::TlsRecords& r = *t.records();
  std::byte rec[64];
  if (content.size() + tls::kSealOverhead > sizeof rec) return false;
  const size_t n = aead_of(*core_).seal(r.suite, r.write, static_cast<tls::ContentType>(type), content, rec);
  ByteView v(rec, n);
  return n != 0 && write_raw(c, &v, 1, nullptr, defer);
}

// A protocol error after the handshake: a fatal alert, then the connection closes.
void EventLoop::records_fail(Connection& c, uint8_t alert, const char* what) {
  Transport& t = *static_cast<Transport*>(c.user_);
  stats_.tls_record_errors.add();
  spdlog::debug("loop {}: tls: closing connection {}: {} (alert {})", index_, c.id().value, what, alert);
  t.flags |= Transport::kCloseReceived;
  if (!(t.flags & Transport::kTlsCloseSent)) {
    const std::byte msg[2] = {std::byte{2}, std::byte{alert}};  // fatal
    records_seal(c, static_cast<uint8_t>(tls::ContentType::kAlert), ByteView(msg, 2), false);
    t.flags |= Transport::kTlsCloseSent;
  }
  c.last_error_ = EPROTO;
  if (c.open()) apply(c, Action::kCloseAfterFlush, CloseReason::kProtocol);
}

}  // namespace tcpms
