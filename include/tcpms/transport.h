// How a listener's (or an outbound connection's) bytes are carried: plain TCP, or any of a
// PROXY protocol header, TLS and WebSocket, in that order on the wire. The engine runs them
// below the Handler: a handler sees on_open only once every handshake completed, then plain
// protocol bytes through on_data, and sends plain bytes. A plain TCP connection pays nothing
// for any of this (docs/architecture.md, "Transports").
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tcpms/tls.h"

namespace tcpms {

struct WebSocketOptions {
  std::string path = "/mqtt";
  std::vector<std::string> subprotocols = {"mqtt"};  // best first (client: the one offered)
  uint64_t max_frame_bytes = 0;     // larger data frames: Close 1009 (0: no limit)
  size_t max_request_bytes = 8192;  // the HTTP Upgrade request: larger gets 431
  std::string host;                 // client side: the Host header
};

struct TransportOptions {
  bool proxy_protocol = false;       // listeners only: the connection starts with a PROXY header
  std::shared_ptr<TlsContext> tls;   // null: no TLS
  bool websocket = false;
  WebSocketOptions ws;
  uint32_t handshake_timeout_ms = 10000;  // PROXY header, TLS and Upgrade together
  // A name for logs and metrics ("mqtt+tls"); empty: made from the above.
  std::string name;

  bool plain() const noexcept { return !proxy_protocol && !tls && !websocket; }
  std::string describe() const;  // "tcp", "tls", "websocket+tls", "proxy+tcp", ...
};

struct ListenerOptions {
  TransportOptions transport;
  // Connections on this listener in this process; more are accepted and closed at once,
  // counted (0: only the server-wide cap).
  int64_t max_connections = 0;
  // TCP only (Linux TCP_DEFER_ACCEPT): the kernel hands a connection to accept() once its
  // first bytes arrived, or after about this many seconds of silence (0: at once). For
  // protocols whose client speaks first: a connection costs the server nothing until it
  // speaks, and a deadline started at accept measures the client from its first byte.
  uint32_t defer_accept_s = 0;
};

}  // namespace tcpms
