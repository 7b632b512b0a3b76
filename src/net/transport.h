// The per-connection state of a connection that has a transport (PROXY header, TLS,
// WebSocket, or a per-listener connection cap), and the per-listener configuration it
// points to. Plain connections have none of this: their Connection::user_ is the handler's
// pointer. With Connection::kTransport set, user_ points to a Transport instead, whose first
// field is the handler's pointer (TransportBase, include/tcpms/connection.h).
//
// The pipeline itself is EventLoop code (transport.cc): raw bytes -> PROXY header -> TLS ->
// WebSocket upgrade and frames -> Handler::on_data; Handler output -> WebSocket frame -> TLS
// -> the engine's direct write or output queue.
#pragma once

#include <openssl/ssl.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "net/pending_input.h"
#include "net/tls_records.h"
#include "tcpms/connection.h"
#include "tcpms/transport.h"
#include "websocket/frame.h"

namespace tcpms::net {

// What every connection of one listener (or one outbound kind) shares. Immutable once the
// server started, except the TLS context's own swap on reload.
struct TransportConfig {
  TransportOptions options;
  bool client = false;
  std::vector<std::string_view> subprotocols;  // views of options.ws.subprotocols
  std::string name;                            // options.describe() or options.name
  std::string listen_address;                  // for log lines
  std::atomic<int64_t>* listener_count = nullptr;  // per-listener cap (shared by the loops)
  int64_t max_connections = 0;
  bool passthrough = false;  // only a cap: no handshake, no framing
};

enum class Stage : uint8_t { kProxyHeader, kTls, kWebSocket, kOpen };

struct Transport : TransportBase {
  enum Flags : uint8_t {
    kHandshakeDone = 1 << 0,   // TLS handshake finished
    kCloseSent = 1 << 1,       // WebSocket Close or TLS close_notify written
    kCloseReceived = 1 << 2,   // WebSocket Close or TLS close_notify read: no more input
    kHasPeer = 1 << 3,         // `peer` holds the PROXY header's source address
    kCounted = 1 << 4,         // holds a unit of the listener's cap
    kOwnRecords = 1 << 5,      // TLS records sealed and opened here; OpenSSL's SSL is gone
    kTlsCloseSent = 1 << 6,    // close_notify or a fatal alert written
  };

  const TransportConfig* config = nullptr;
  // TLS: OpenSSL's connection during the handshake, and after it when the records cannot
  // leave OpenSSL (TLS 1.2, another suite, the connecting side); once a TLS 1.3 server
  // handshake is done, only the keys (kOwnRecords). One pointer either way.
  union {
    SSL* ssl_ = nullptr;
    TlsRecords* records_;
  };
  // Bytes of an incomplete PROXY header, HTTP request or response, WebSocket frame header or
  // control frame; null otherwise (so null while idle).
  PendingInput* stash = nullptr;
  ws::ReceiverState ws;  // 16 bytes of plain data
  Stage stage = Stage::kOpen;
  uint8_t flags = 0;
  // The client's address from a PROXY header: family, port (network order), address bytes.
  uint16_t peer_family = 0;
  uint16_t peer_port = 0;
  std::array<uint8_t, 16> peer_addr{};

  bool tls() const noexcept { return ssl_ != nullptr; }
  SSL* ssl() const noexcept { return (flags & kOwnRecords) ? nullptr : ssl_; }
  TlsRecords* records() const noexcept { return (flags & kOwnRecords) ? records_ : nullptr; }
};
// What a connection with a transport pays on top of its Connection (besides, for TLS, the
// SSL during the handshake and a TlsRecords after it): one 80-byte malloc chunk.
static_assert(sizeof(Transport) <= 72, "Transport grew: docs/transports.md lists its cost");


}  // namespace tcpms::net
