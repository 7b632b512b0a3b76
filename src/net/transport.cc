// The transport layer: what runs between a socket and its Handler for connections accepted on
// (or made for) a listener with a PROXY header, TLS or WebSocket. Order on the wire, and so
// here: PROXY header (raw bytes) -> TLS (records) -> WebSocket (HTTP Upgrade, then frames) ->
// the handler's bytes. See docs/architecture.md, "Transports".
//
// Memory, the engine's rule applied to transports: an idle connection holds no buffer. TLS
// reads its ciphertext from the loop's read buffer through the engine's own BIO (no memory
// BIO per connection), decrypts into a per-loop buffer and writes records straight to the
// socket or the connection's output queue; SSL_MODE_RELEASE_BUFFERS returns OpenSSL's record
// buffers when empty. WebSocket payloads are unmasked in place in whichever buffer holds them
// and compacted in place before the handler sees them. Only an incomplete PROXY header, HTTP
// request, frame header or control frame is ever copied (Transport::stash), and freed as soon
// as it completes.
#include "net/transport.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include <spdlog/spdlog.h>

#include "net/loop_core.h"
#include "net/tls_context.h"
#include "proxy/proxy_header.h"
#include "tcpms/event_loop.h"
#include "tcpms/server.h"
#include "websocket/handshake.h"

namespace tcpms {
namespace net {
namespace {
// For the side that connected, a handshake that fails is a connect that failed: its handler
// (which saw no on_open) hears kConnectFailed, as for a refused TCP connect.
CloseReason handshake_failed_reason(const Transport& t, CloseReason server_side) {
  return t.config->client ? CloseReason::kConnectFailed : server_side;
}
}  // namespace
}  // namespace net

std::string_view tls_failure_name(TlsFailure f) noexcept {
  switch (f) {
    case TlsFailure::kTimeout: return "timeout";
    case TlsFailure::kEof: return "eof";
    case TlsFailure::kNotTls: return "not_tls";
    case TlsFailure::kVersion: return "version";
    case TlsFailure::kCipher: return "no_shared_cipher";
    case TlsFailure::kNoClientCert: return "no_client_cert";
    case TlsFailure::kClientCertExpired: return "client_cert_expired";
    case TlsFailure::kClientCertRevoked: return "client_cert_revoked";
    case TlsFailure::kClientCertUntrusted: return "client_cert_untrusted";
    case TlsFailure::kClientCertInvalid: return "client_cert_invalid";
    case TlsFailure::kPeerAlert: return "peer_alert";
    case TlsFailure::kOther: return "other";
    case TlsFailure::kCount: break;
  }
  return "other";
}

namespace net {

// The engine's BIO. OpenSSL reads the ciphertext the loop has just received (LoopCore::tls_in,
// a view of the loop's read buffer) and writes each record straight to the engine's write
// path: the socket if it takes it, else the connection's output queue. One BIO object per
// connection and no buffer of its own.
struct TlsBio {
  static Connection& conn(BIO* b) { return *static_cast<Connection*>(BIO_get_data(b)); }

  static int write(BIO* b, const char* data, int len) {
    BIO_clear_retry_flags(b);
    Connection& c = conn(b);
    EventLoop& loop = c.loop();
    ByteView v{reinterpret_cast<const std::byte*>(data), static_cast<size_t>(len)};
    if (TlsRecords* r = records_of(loop.handshaking_ssl(c))) count_written(*r, v.data(), v.size());
    // Never a retry: what the kernel does not take is queued, so SSL_write always completes
    // and OpenSSL's write buffer is released at once. A closing connection fails the write.
    return loop.write_raw(c, &v, 1, nullptr, loop.core_->tls_defer) ? len : -1;
  }

  static int read(BIO* b, char* out, int len) {
    BIO_clear_retry_flags(b);
    LoopCore& core = *conn(b).loop().core_;
    const size_t left = core.tls_in.size() - core.tls_in_used;
    if (left == 0) {
      BIO_set_retry_read(b);
      return -1;
    }
    const size_t n = std::min(left, static_cast<size_t>(len));
    std::memcpy(out, core.tls_in.data() + core.tls_in_used, n);
    core.tls_in_used += n;
    return static_cast<int>(n);
  }

  static long ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

  static int create(BIO* b) {
    BIO_set_init(b, 1);
    return 1;
  }

  static BIO_METHOD* method(LoopCore& core) {
    if (core.bio_method == nullptr) {
      core.bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tcpms");
      BIO_meth_set_write(core.bio_method, write);
      BIO_meth_set_read(core.bio_method, read);
      BIO_meth_set_ctrl(core.bio_method, ctrl);
      BIO_meth_set_create(core.bio_method, create);
    }
    return core.bio_method;
  }
};

namespace {

std::string peer_text(const Connection& c) {
  sockaddr_storage ss{};
  if (!c.peer_address(ss)) return "?";
  socklen_t len = ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  return Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&ss), len).to_string();
}

struct StashFree {
  void operator()(PendingInput* p) const noexcept { pending_free(p); }
};
using HeldStash = std::unique_ptr<PendingInput, StashFree>;

// Joins `data` to what an earlier read left in the stash. Returns the bytes to parse (the
// stash's, or `data` itself) and hands the old stash to `held`, which keeps it alive while
// the caller parses; false when the stash would pass `limit`.
bool join_stash(PendingInput*& stash, MutableByteView& data, size_t limit, HeldStash& held) {
  if (stash == nullptr) return true;
  if (!pending_append(stash, data, limit)) return false;
  data = MutableByteView(stash->data(), stash->size);
  held.reset(stash);
  stash = nullptr;
  return true;
}

// Keeps the unparsed rest for the next read.
bool keep_stash(PendingInput*& stash, ByteView rest, size_t limit, HeldStash& held) {
  if (held && rest.data() == held->data() && rest.size() == held->size) {
    stash = held.release();  // nothing was consumed: keep the joined buffer as it is
    return true;
  }
  return pending_append(stash, rest, limit);
}

TlsFailure classify(SSL* ssl, unsigned long err, std::string& detail) {
  const int reason = ERR_GET_REASON(err);
  const long verify = SSL_get_verify_result(ssl);
  detail = err ? ERR_reason_error_string(err) ? ERR_reason_error_string(err) : "?" : "";
  if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED && verify != X509_V_OK) {
    detail = X509_verify_cert_error_string(verify);
    switch (verify) {
      case X509_V_ERR_CERT_HAS_EXPIRED:
      case X509_V_ERR_CERT_NOT_YET_VALID:
        return TlsFailure::kClientCertExpired;
      case X509_V_ERR_CERT_REVOKED:
        return TlsFailure::kClientCertRevoked;
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
      case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      case X509_V_ERR_CERT_UNTRUSTED:
      case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        return TlsFailure::kClientCertUntrusted;
      default:
        return TlsFailure::kClientCertInvalid;
    }
  }
  switch (reason) {
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_LENGTH_MISMATCH:
      return TlsFailure::kNotTls;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_VERSION_TOO_HIGH:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
      return TlsFailure::kVersion;
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SUITABLE_KEY_SHARE:
    case SSL_R_NO_SHARED_GROUPS:
      return TlsFailure::kCipher;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      return TlsFailure::kNoClientCert;
    default:
      break;
  }
  if (reason >= SSL_AD_REASON_OFFSET) return TlsFailure::kPeerAlert;  // an alert from the peer
  return TlsFailure::kOther;
}

spdlog::level::level_enum level_for(TlsFailure f) {
  switch (f) {
    case TlsFailure::kTimeout:
    case TlsFailure::kEof:
      return spdlog::level::debug;  // scanners and half-open clients: noise at any volume
    case TlsFailure::kClientCertExpired:
    case TlsFailure::kClientCertRevoked:
    case TlsFailure::kClientCertUntrusted:
    case TlsFailure::kClientCertInvalid:
      return spdlog::level::warn;  // a device the operator may own was refused
    default:
      return spdlog::level::info;
  }
}

}  // namespace
}  // namespace net

using net::Stage;
using net::Transport;

std::string TransportOptions::describe() const {
  if (!name.empty()) return name;
  std::string out = websocket ? (tls ? "websocket+tls" : "websocket") : (tls ? "tls" : "tcp");
  if (proxy_protocol) out = "proxy+" + out;
  return out;
}

// --- connection life --------------------------------------------------------------------------

bool EventLoop::handler_sees(const Connection& c) const noexcept {
  return !(c.flags_ & Connection::kTransport) ||
         static_cast<const Transport*>(c.user_)->stage == Stage::kOpen;
}

bool EventLoop::start_transport(Connection& c, const net::TransportConfig& cfg) {
  auto* t = new Transport;
  t->user = c.user_;
  t->config = &cfg;
  c.user_ = t;
  c.flags_ |= Connection::kTransport;
  stats_.transport_connections.add();
  if (cfg.listener_count) t->flags |= Transport::kCounted;  // counted in handle_accept
  if (cfg.passthrough) return true;
  const TransportOptions& o = cfg.options;
  t->stage = o.proxy_protocol ? Stage::kProxyHeader
             : o.tls          ? Stage::kTls
             : o.websocket    ? Stage::kWebSocket
                              : Stage::kOpen;
  if (o.tls) {
    SSL* ssl = o.tls->impl().new_ssl();
    if (ssl == nullptr) {
      spdlog::error("loop {}: tls: cannot make a connection: {}", index_, take_ssl_errors());
      return false;
    }
    t->ssl_ = ssl;
    stats_.tls_openssl_connections.add();
    BIO* bio = BIO_new(net::TlsBio::method(*core_));
    if (bio == nullptr) return false;
    BIO_set_data(bio, &c);
    SSL_set_bio(ssl, bio, bio);
    if (cfg.client) {
      SSL_set_connect_state(ssl);
    } else {
      SSL_set_accept_state(ssl);
      // Where the traffic keys go, to leave OpenSSL once the handshake is done
      // (transport_tls13.cc). Freed with the SSL if it never does.
      if (o.tls->server_settings().own_record_layer) SSL_set_app_data(ssl, new net::TlsRecords);
    }
  }
  // One deadline for all handshakes together: a peer that trickles bytes cannot hold a
  // descriptor longer than this.
  if (t->stage != Stage::kOpen) set_conn_timeout(c, o.handshake_timeout_ms, true);
  return true;
}

void EventLoop::free_transport(Connection& c) {
  auto* t = static_cast<Transport*>(c.user_);
  if ((t->flags & Transport::kCounted) && t->config->listener_count)
    t->config->listener_count->fetch_sub(1, std::memory_order_relaxed);
  if (t->records() != nullptr) {
    net::TlsRecordsPtr(t->records_).reset();  // kOwnRecords: the transport owned it
  } else {
    free_ssl(*t);
  }
  net::pending_free(t->stash);
  c.user_ = t->user;
  c.flags_ &= static_cast<uint16_t>(~Connection::kTransport);
  delete t;
  stats_.transport_connections.sub();
}

void EventLoop::open_for_handler(Connection& c) {
  // The handshake deadline gives way to the connection's ordinary one.
  set_conn_timeout(c, config_.idle_timeout_ms, false);
  apply(c, handlers_[c.handler_]->on_open(c), CloseReason::kProtocol);
}

void EventLoop::transport_connected(Connection& c) {
  Transport& t = *static_cast<Transport*>(c.user_);
  if (t.tls()) {
    tls_input(c, {});  // writes the ClientHello
  } else if (t.stage == Stage::kWebSocket) {
    plaintext_input(c, {});  // writes the Upgrade request
  } else {
    open_for_handler(c);
  }
}

void EventLoop::transport_timeout(Connection& c) {
  Transport& t = *static_cast<Transport*>(c.user_);
  stats_.handshake_timeouts.add();
  if (t.stage == Stage::kTls) {
    stats_.tls_failures[static_cast<size_t>(TlsFailure::kTimeout)].add();
  } else if (t.stage == Stage::kProxyHeader) {
    stats_.proxy_refused.add();
  } else {
    stats_.ws_refused.add();
  }
  spdlog::debug("loop {}: {} handshake with {} timed out", index_, t.config->name, net::peer_text(c));
  c.last_error_ = ETIMEDOUT;
  schedule_close(c, net::handshake_failed_reason(t, CloseReason::kIdleTimeout));
}

void EventLoop::transport_eof(Connection& c) {
  Transport& t = *static_cast<Transport*>(c.user_);
  if (t.stage == Stage::kTls) {
    stats_.tls_failures[static_cast<size_t>(TlsFailure::kEof)].add();
  } else if (t.stage == Stage::kProxyHeader) {
    stats_.proxy_refused.add();
  }
  spdlog::debug("loop {}: {} peer {} closed during the handshake", index_, t.config->name,
                net::peer_text(c));
  c.flags_ |= Connection::kPeerShutdown;
  c.last_error_ = ECONNRESET;
  schedule_close(c, net::handshake_failed_reason(t, CloseReason::kPeerClosed));
}

// Before a close after flush: a WebSocket Close frame and TLS close_notify go out ahead of the
// FIN, so the peer learns the connection ended on purpose and not by a cut.
void EventLoop::transport_goodbye(Connection& c) {
  Transport& t = *static_cast<Transport*>(c.user_);
  if (t.config->passthrough) return;
  if (t.config->options.websocket && t.stage == Stage::kOpen && !(t.flags & Transport::kCloseSent))
    send_ws_close(c, draining() ? ws::CloseCode::kGoingAway : ws::CloseCode::kNormal, {});
  if (!t.tls() || !(t.flags & Transport::kHandshakeDone) || (t.flags & Transport::kTlsCloseSent)) return;
  t.flags |= Transport::kTlsCloseSent;
  if (t.records()) {
    const std::byte close_notify[2] = {std::byte{1}, std::byte{0}};  // warning, close_notify
    records_seal(c, static_cast<uint8_t>(tls13::ContentType::kAlert), ByteView(close_notify, 2), false);
    return;
  }
  core_->tls_in = {};
  core_->tls_in_used = 0;
  core_->tls_defer = false;
  SSL_shutdown(t.ssl());  // writes close_notify through the BIO; does not wait for the peer's
  ERR_clear_error();
}

// An immediate close the handler or the engine decided: a WebSocket peer still hears why
// (a browser would otherwise see 1006, "abnormal"), in one direct write of at most 127 bytes
// ahead of the close. Not for I/O errors and full sockets, where nothing more can be sent.
void EventLoop::transport_abort(Connection& c, CloseReason reason) {
  Transport& t = *static_cast<Transport*>(c.user_);
  if (!t.config->options.websocket || t.stage != Stage::kOpen || (t.flags & Transport::kCloseSent))
    return;
  ws::CloseCode code;
  switch (reason) {
    // The handler closed (kClose): after an MQTT DISCONNECT, by far the most common case, or
    // on a violation, which MQTT 5.0 explains in its own DISCONNECT packet just before. The
    // engine cannot tell the two apart, so it says "normal" rather than blame the peer.
    case CloseReason::kProtocol: code = ws::CloseCode::kNormal; break;
    case CloseReason::kInputOverflow: code = ws::CloseCode::kMessageTooBig; break;
    case CloseReason::kShutdown: code = ws::CloseCode::kGoingAway; break;
    case CloseReason::kIdleTimeout:
    case CloseReason::kKicked: code = ws::CloseCode::kPolicyViolation; break;
    default: return;
  }
  send_ws_close(c, code, {});
}

bool EventLoop::send_ws_control(Connection& c, ws::Opcode opcode, ByteView payload) {
  Transport& t = *static_cast<Transport*>(c.user_);
  std::byte frame[ws::kMaxControlFrameBytes];
  // A client masks every frame (RFC 6455 section 5.3); the key need not be secret here, the
  // load generator being the only client this engine is.
  const uint8_t mask[4] = {0x3c, 0x91, 0x0e, 0x7b};
  const size_t n = std::min(payload.size(), ws::kMaxControlPayload);
  const size_t h = ws::encode_header(frame, opcode, true, n, t.config->client ? mask : nullptr);
  if (n != 0) std::memcpy(frame + h, payload.data(), n);  // an empty view may have no data()
  if (t.config->client) ws::apply_mask(frame + h, n, mask, 0);
  return send_transport_bytes(c, ByteView(frame, h + n));
}

bool EventLoop::send_ws_close(Connection& c, ws::CloseCode code, std::string_view reason) {
  static_cast<Transport*>(c.user_)->flags |= Transport::kCloseSent;
  std::byte payload[ws::kMaxControlPayload];
  return send_ws_control(c, ws::Opcode::kClose, ByteView(payload, ws::encode_close(payload, code, reason)));
}

// --- input ------------------------------------------------------------------------------------

void EventLoop::transport_input(Connection& c, MutableByteView data) {
  Transport& t = *static_cast<Transport*>(c.user_);
  if (t.config->passthrough) {
    deliver(c, data);
    return;
  }
  net::HeldStash held;
  if (t.stage == Stage::kProxyHeader) {
    if (!net::join_stash(t.stash, data, proxy::kMaxHeaderBytes, held)) {
      stats_.proxy_refused.add();
      schedule_close(c, CloseReason::kProtocol);
      return;
    }
    proxy::Result r = proxy::parse(data);
    if (r.status == proxy::Status::kNeedMore) {
      net::keep_stash(t.stash, data, proxy::kMaxHeaderBytes, held);
      return;
    }
    if (r.status == proxy::Status::kError) {
      stats_.proxy_refused.add();
      spdlog::info("loop {}: {} connection from {} on {} refused: {}", index_, t.config->name,
                   net::peer_text(c), t.config->listen_address, r.error);
      schedule_close(c, CloseReason::kProtocol);
      return;
    }
    stats_.proxy_headers.add();
    const sockaddr_storage& src = r.header.source;
    if (r.header.has_addresses) {
      t.flags |= Transport::kHasPeer;
      t.peer_family = src.ss_family;
      if (src.ss_family == AF_INET) {
        auto* a = reinterpret_cast<const sockaddr_in*>(&src);
        t.peer_port = a->sin_port;
        std::memcpy(t.peer_addr.data(), &a->sin_addr, 4);
      } else {
        auto* a = reinterpret_cast<const sockaddr_in6*>(&src);
        t.peer_port = a->sin6_port;
        std::memcpy(t.peer_addr.data(), &a->sin6_addr, 16);
      }
    }
    data = data.subspan(r.header.size);
    const TransportOptions& o = t.config->options;
    t.stage = o.tls ? Stage::kTls : o.websocket ? Stage::kWebSocket : Stage::kOpen;
    if (t.stage == Stage::kOpen) open_for_handler(c);
    if (data.empty() || !c.open()) return;
  }
  if (t.tls()) {
    tls_input(c, data);
    return;
  }
  plaintext_input(c, data);
}

bool EventLoop::tls_input(Connection& c, MutableByteView raw) {
  Transport& t = *static_cast<Transport*>(c.user_);
  if (t.records()) {
    records_input(c, raw);
    return c.open();
  }
  core_->tls_in = raw;
  core_->tls_in_used = 0;
  while (c.open()) {
    ERR_clear_error();
    SSL* ssl = t.ssl();
    if (!(t.flags & Transport::kHandshakeDone)) {
      net::TlsRecords* records = net::records_of(ssl);
      if (records) records->records_written = 0;  // what this call writes: see take_over
      const int r = SSL_do_handshake(ssl);
      if (r != 1) {
        const int err = SSL_get_error(ssl, r);
        if (err != SSL_ERROR_WANT_READ) tls_failed(c, err, false);
        break;
      }
      t.flags |= Transport::kHandshakeDone;
      core_->churn_since_trim += net::LoopCore::kHandshakeChurn;
      if (SSL_session_reused(ssl)) stats_.tls_resumed.add();
      else stats_.tls_handshakes.add();
      // A TLS 1.3 server connection keeps only its keys from here (transport_tls13.cc); the
      // rest of this read is its first records.
      const bool own_records = records != nullptr && leave_openssl(c);
      const size_t used = core_->tls_in_used;
      if (own_records) {
        core_->tls_in = {};
        core_->tls_in_used = 0;
      }
      if (t.config->options.websocket) {
        t.stage = Stage::kWebSocket;
        if (t.config->client) plaintext_input(c, {});  // the Upgrade request
      } else {
        t.stage = Stage::kOpen;
        open_for_handler(c);
      }
      if (own_records) {
        if (c.open() && used < raw.size()) records_input(c, raw.subspan(used));
        ERR_clear_error();
        return c.open();
      }
      continue;
    }
    if (t.flags & Transport::kCloseReceived) break;  // nothing counts after close_notify
    if (!core_->plain_buffer) core_->plain_buffer.reset(new std::byte[kReadBufferBytes]);
    const int n = SSL_read(ssl, core_->plain_buffer.get(), static_cast<int>(kReadBufferBytes));
    if (n > 0) {
      plaintext_input(c, MutableByteView(core_->plain_buffer.get(), static_cast<size_t>(n)));
      continue;
    }
    const int err = SSL_get_error(ssl, n);
    if (err == SSL_ERROR_WANT_READ) break;
    if (err == SSL_ERROR_ZERO_RETURN) {  // close_notify: the TLS form of a FIN
      t.flags |= Transport::kCloseReceived;
      apply(c, handlers_[c.handler_]->on_peer_shutdown(c), CloseReason::kPeerClosed);
      break;
    }
    spdlog::debug("loop {}: tls: closing {}: {}", index_, net::peer_text(c), take_ssl_errors());
    c.last_error_ = EPROTO;
    schedule_close(c, CloseReason::kProtocol);
    break;
  }
  core_->tls_in = {};
  core_->tls_in_used = 0;
  ERR_clear_error();
  return c.open();
}

void EventLoop::tls_failed(Connection& c, int ssl_error, bool) {
  Transport& t = *static_cast<Transport*>(c.user_);
  core_->churn_since_trim += net::LoopCore::kHandshakeChurn;
  const unsigned long err = ERR_peek_last_error();
  std::string detail;
  TlsFailure cause = net::classify(t.ssl(), err, detail);
  if (err == 0 && (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN)) {
    cause = TlsFailure::kEof;
  }
  stats_.tls_failures[static_cast<size_t>(cause)].add();
  spdlog::log(net::level_for(cause), "loop {}: tls handshake from {} on {} failed: {}{}{}", index_,
              net::peer_text(c), t.config->listen_address, tls_failure_name(cause),
              detail.empty() ? "" : " (", detail.empty() ? "" : detail + ")");
  ERR_clear_error();
  c.last_error_ = EPROTO;
  // The alert OpenSSL wrote (if any) is already on its way; nothing else is.
  schedule_close(c, net::handshake_failed_reason(t, CloseReason::kProtocol));
}

namespace {
// A client's Sec-WebSocket-Key: 16 bytes made from the loop's seed and the connection id,
// in base64. Recomputed to check the answer, so nothing is stored per connection.
std::string client_key(uint64_t seed, ConnId id) {
  unsigned char raw[16];
  uint64_t a = seed ^ (id.value * 0x9E3779B97F4A7C15ull), b = (seed >> 7) + id.value;
  std::memcpy(raw, &a, 8);
  std::memcpy(raw + 8, &b, 8);
  unsigned char text[25];
  EVP_EncodeBlock(text, raw, 16);
  return std::string(reinterpret_cast<char*>(text), 24);
}
}  // namespace

void EventLoop::plaintext_input(Connection& c, MutableByteView data) {
  Transport& t = *static_cast<Transport*>(c.user_);
  if (t.stage != Stage::kWebSocket) {
    if (t.config->options.websocket) websocket_input(c, data);
    else app_input(c, data);
    return;
  }
  const WebSocketOptions& wo = t.config->options.ws;
  char out[ws::kMaxResponseBytes + 512];
  if (t.config->client) {
    if (core_->ws_key_seed == 0) core_->ws_key_seed = now_ms_ * 0x2545F4914F6CDD1Dull | 1;
    const std::string key = client_key(core_->ws_key_seed, c.id());
    if (data.empty() && t.stash == nullptr) {  // connected: send the request
      size_t n = ws::write_request(out, sizeof out, wo.host.empty() ? "localhost" : wo.host, wo.path,
                                   key, wo.subprotocols.empty() ? "" : wo.subprotocols.front());
      send_transport_bytes(c, as_bytes(std::string_view(out, n)));
      return;
    }
    net::HeldStash held;
    if (!net::join_stash(t.stash, data, wo.max_request_bytes, held)) {
      schedule_close(c, CloseReason::kProtocol);
      return;
    }
    ws::ResponseResult r = ws::parse_response(data, key, wo.max_request_bytes);
    if (r.status == ws::Status::kNeedMore) {
      net::keep_stash(t.stash, data, wo.max_request_bytes, held);
      return;
    }
    if (r.status == ws::Status::kError) {
      stats_.ws_refused.add();
      spdlog::debug("loop {}: websocket upgrade refused by the server: {} (HTTP {})", index_, r.what,
                    r.http_status);
      c.last_error_ = EPROTO;
      schedule_close(c, CloseReason::kConnectFailed);
      return;
    }
    stats_.ws_upgrades.add();
    t.stage = Stage::kOpen;
    open_for_handler(c);
    if (c.open() && data.size() > r.size) websocket_input(c, data.subspan(r.size));
    return;
  }
  net::HeldStash held;
  if (!net::join_stash(t.stash, data, wo.max_request_bytes, held)) {
    // Cannot happen with the parser's own limit below; be safe anyway.
    schedule_close(c, CloseReason::kProtocol);
    return;
  }
  ws::ServerPolicy policy;
  policy.path = wo.path;
  policy.subprotocols = t.config->subprotocols;
  policy.max_request_bytes = wo.max_request_bytes;
  ws::UpgradeResult u = ws::parse_upgrade(data, policy);
  if (u.status == ws::Status::kNeedMore) {
    net::keep_stash(t.stash, data, wo.max_request_bytes, held);
    return;
  }
  if (u.status == ws::Status::kError) {
    stats_.ws_refused.add();
    spdlog::info("loop {}: {} upgrade from {} on {} refused: HTTP {} {}", index_, t.config->name,
                 net::peer_text(c), t.config->listen_address, u.http_status, u.what);
    size_t n = ws::write_refusal(out, u.http_status, u.what);
    send_transport_bytes(c, as_bytes(std::string_view(out, n)));
    apply(c, Action::kCloseAfterFlush, CloseReason::kProtocol);
    return;
  }
  size_t n = ws::write_accept(out, u.key, u.subprotocol);
  if (!send_transport_bytes(c, as_bytes(std::string_view(out, n)))) return;
  stats_.ws_upgrades.add();
  t.stage = Stage::kOpen;
  open_for_handler(c);
  if (c.open() && data.size() > u.size) websocket_input(c, data.subspan(u.size));
}

void EventLoop::websocket_input(Connection& c, MutableByteView in) {
  Transport& t = *static_cast<Transport*>(c.user_);
  const bool expect_masked = !t.config->client;
  const uint64_t max_frame = t.config->options.ws.max_frame_bytes;
  if (t.flags & Transport::kCloseReceived) return;  // after a Close nothing counts
  // Finish a frame header or control frame an earlier read cut, with as few new bytes as it
  // can need (a header is at most 14 bytes, a control frame 139).
  if (t.stash != nullptr) {
    const size_t had = t.stash->size;
    const size_t add = std::min(in.size(), ws::kMaxControlFrameBytes - had);
    net::pending_append(t.stash, in.first(add), ws::kMaxControlFrameBytes);
    net::HeldStash held(t.stash);
    t.stash = nullptr;
    ws::Step s = ws::receive(t.ws, MutableByteView(held->data(), held->size), expect_masked, max_frame);
    if (s.kind == ws::Step::kNeedMore) {
      t.stash = held.release();  // everything new went in: still short
      return;
    }
    if (s.kind == ws::Step::kError) {
      websocket_fail(c, static_cast<int>(s.error), s.what);
      return;
    }
    if (s.kind == ws::Step::kData) app_input(c, s.payload);
    else if (!websocket_control(c, s.opcode, s.payload)) return;
    in = in.subspan(s.consumed - had);
  }
  size_t out = 0;  // message bytes compacted at the front of `in`
  size_t off = 0;
  while (off < in.size() && c.open()) {
    ws::Step s = ws::receive(t.ws, in.subspan(off), expect_masked, max_frame);
    if (s.kind == ws::Step::kNeedMore) {
      net::pending_append(t.stash, in.subspan(off), ws::kMaxControlFrameBytes);
      break;
    }
    if (s.kind == ws::Step::kError) {
      if (out) app_input(c, in.first(out));
      websocket_fail(c, static_cast<int>(s.error), s.what);
      return;
    }
    off += s.consumed;
    if (s.kind == ws::Step::kData) {
      if (s.payload.data() != in.data() + out) std::memmove(in.data() + out, s.payload.data(), s.payload.size());
      out += s.payload.size();
      continue;
    }
    // Message bytes before a control frame reach the handler before it acts on the frame.
    if (out) {
      app_input(c, in.first(out));
      out = 0;
    }
    if (!websocket_control(c, s.opcode, s.payload)) return;
  }
  if (out && c.open()) app_input(c, in.first(out));
}

bool EventLoop::websocket_control(Connection& c, ws::Opcode opcode, MutableByteView payload) {
  Transport& t = *static_cast<Transport*>(c.user_);
  switch (opcode) {
    case ws::Opcode::kPing:
      stats_.ws_pings.add();
      if (!(t.flags & Transport::kCloseSent)) send_ws_control(c, ws::Opcode::kPong, payload);
      return c.open();
    case ws::Opcode::kPong:
      return true;
    case ws::Opcode::kClose: {
      ws::CloseResult r = ws::decode_close(payload);
      if (!r.ok) {
        websocket_fail(c, static_cast<int>(r.error), r.what);
        return false;
      }
      t.flags |= Transport::kCloseReceived;
      if (!(t.flags & Transport::kCloseSent)) {
        // Echo the peer's code (section 5.5.1), then close once it is sent.
        t.flags |= Transport::kCloseSent;
        send_ws_control(c, ws::Opcode::kClose, ByteView(payload.data(), r.close.has_code ? 2 : 0));
      }
      apply(c, handlers_[c.handler_]->on_peer_shutdown(c), CloseReason::kPeerClosed);
      apply(c, Action::kCloseAfterFlush, CloseReason::kPeerClosed);
      return false;
    }
    default:
      return true;
  }
}

void EventLoop::websocket_fail(Connection& c, int code, const char* what) {
  Transport& t = *static_cast<Transport*>(c.user_);
  stats_.ws_protocol_errors.add();
  spdlog::info("loop {}: websocket: closing {} with {}: {}", index_, net::peer_text(c), code, what);
  t.flags |= Transport::kCloseReceived;
  if (!(t.flags & Transport::kCloseSent)) send_ws_close(c, static_cast<ws::CloseCode>(code), what);
  apply(c, Action::kCloseAfterFlush, CloseReason::kProtocol);
}

// The handler's bytes. While reading is paused (a rate limit, backpressure, a decision
// pending) a transport may still decode what one read brought; it is held with the
// connection's pending input, exactly as the engine holds plain input, and presented again
// when reading resumes.
void EventLoop::app_input(Connection& c, ByteView data) {
  if (data.empty() || !c.open()) return;
  if (c.flags_ & (Connection::kReadPausedByUser | Connection::kReadPausedByOutput |
                  Connection::kFlushThenClose | Connection::kLingering)) {
    if (c.flags_ & (Connection::kFlushThenClose | Connection::kLingering)) return;
    Handler& h = *handlers_[c.handler_];
    const size_t limit = (h.input_limit_bytes() ? h.input_limit_bytes() : config_.input_limit_bytes) +
                         kReadBufferBytes;
    const bool had = c.in_ != nullptr;
    if (!net::pending_append(c.in_, data, limit)) {
      schedule_close(c, CloseReason::kInputOverflow);
      return;
    }
    stats_.pending_input_bytes.add(data.size());
    if (!had) stats_.conns_with_input.add();
    return;
  }
  deliver(c, data);
}

// --- output -----------------------------------------------------------------------------------

bool EventLoop::send_transport_bytes(Connection& c, ByteView bytes) {
  Transport& t = *static_cast<Transport*>(c.user_);
  if (t.tls()) return tls_write(c, &bytes, 1, false);
  return write_raw(c, &bytes, 1, nullptr, false);
}

bool EventLoop::transport_output(Connection& c, const ByteView* parts, size_t count,
                                 const SharedBytes* body, bool defer) {
  Transport& t = *static_cast<Transport*>(c.user_);
  if (t.config->passthrough) return write_raw(c, parts, count, body, defer);
  if (t.stage != Stage::kOpen || (t.flags & Transport::kCloseSent)) return false;
  size_t total = body ? body->size() : 0;
  for (size_t i = 0; i < count; ++i) total += parts[i].size();
  if (total == 0) return true;
  constexpr size_t kMaxPieces = 16;
  ByteView pieces[kMaxPieces + 2];
  std::vector<ByteView> many;
  ByteView* p = pieces;
  if (count + 2 > kMaxPieces + 2) {
    many.resize(count + 2);
    p = many.data();
  }
  size_t n = 0;
  std::byte header[ws::kMaxHeaderBytes];
  std::vector<std::byte> masked;
  if (t.config->options.websocket) {
    if (t.config->client) {
      // Clients mask every byte they send (section 5.3): one copy, then one frame.
      uint8_t mask[4];
      const uint64_t m = core_->ws_key_seed * 0x9E3779B97F4A7C15ull + stats_.bytes_out.get();
      std::memcpy(mask, &m, 4);
      const size_t h = ws::encode_header(header, ws::Opcode::kBinary, true, total, mask);
      masked.resize(total);
      size_t at = 0;
      for (size_t i = 0; i < count; ++i) {
        if (parts[i].empty()) continue;
        std::memcpy(masked.data() + at, parts[i].data(), parts[i].size());
        at += parts[i].size();
      }
      if (body && !body->empty()) std::memcpy(masked.data() + at, body->view().data(), body->size());
      ws::apply_mask(masked.data(), total, mask, 0);
      ByteView framed[2] = {ByteView(header, h), ByteView(masked)};
      if (t.tls()) return tls_write(c, framed, 2, defer);
      return write_raw(c, framed, 2, nullptr, defer);
    }
    p[n++] = ByteView(header, ws::encode_header(header, ws::Opcode::kBinary, true, total, nullptr));
  }
  for (size_t i = 0; i < count; ++i) p[n++] = parts[i];
  if (!t.tls()) return write_raw(c, p, n, body, defer);  // the payload still goes by reference
  if (body && !body->empty()) p[n++] = body->view();
  return tls_write(c, p, n, defer);
}

bool EventLoop::tls_write(Connection& c, const ByteView* pieces, size_t count, bool defer) {
  Transport& t = *static_cast<Transport*>(c.user_);
  if (!(t.flags & Transport::kHandshakeDone) || (t.flags & Transport::kTlsCloseSent)) return false;
  if (t.records()) return records_write(c, pieces, count, defer);
  SSL* ssl = t.ssl();
  constexpr size_t kCoalesce = 16 * 1024;  // one TLS record's worth of plaintext
  size_t total = 0;
  for (size_t i = 0; i < count; ++i) total += pieces[i].size();
  core_->tls_defer = defer;
  ERR_clear_error();
  bool ok = true;
  if (count > 1 && total <= kCoalesce) {
    // A header and its payload in one record: one seal, one write, 22 bytes of overhead.
    if (!core_->scratch_out) core_->scratch_out.reset(new std::byte[kCoalesce]);
    size_t at = 0;
    for (size_t i = 0; i < count; ++i) {
      if (pieces[i].empty()) continue;
      std::memcpy(core_->scratch_out.get() + at, pieces[i].data(), pieces[i].size());
      at += pieces[i].size();
    }
    size_t written = 0;
    ok = SSL_write_ex(ssl, core_->scratch_out.get(), total, &written) == 1;
  } else {
    for (size_t i = 0; i < count && ok; ++i) {
      if (pieces[i].empty()) continue;
      size_t written = 0;
      ok = SSL_write_ex(ssl, pieces[i].data(), pieces[i].size(), &written) == 1;
    }
  }
  core_->tls_defer = false;
  if (!ok) {
    ERR_clear_error();
    if (c.open()) {
      c.last_error_ = EPROTO;
      schedule_close(c, CloseReason::kIoError);
    }
    return false;
  }
  return c.open();
}

}  // namespace tcpms

namespace tcpms {

SSL* EventLoop::handshaking_ssl(const Connection& c) const noexcept {
  const auto& t = *static_cast<const Transport*>(c.user_);
  return (t.flags & Transport::kHandshakeDone) ? nullptr : t.ssl();
}

bool EventLoop::handler_knows(const Connection& c) const noexcept {
  return handler_sees(c) || static_cast<const Transport*>(c.user_)->config->client;
}

}  // namespace tcpms
