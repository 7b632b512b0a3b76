// The server's listeners: `listen` (the one-listener shorthand) and the [[listeners]] tables,
// turned into engine listeners with their transports; their TLS certificates re-read on
// SIGHUP; their transport counters on /metrics.
#pragma once

#include <string>
#include <vector>

#include "server_options.h"
#include "tcpms/endpoint.h"
#include "tcpms/server.h"
#include "tcpms/transport.h"

namespace tcpms::app {

struct Listener {
  Endpoint at;
  ListenerOptions options;
};

// `listen` comes first when there are no [[listeners]] tables or when it was set explicitly;
// then each table. TLS contexts are loaded here, before worker processes fork, so that every
// worker accepts the same session tickets. False and `error` (naming the table) on failure.
bool build_listeners(const ServerOptions& opt, bool listen_explicit, std::vector<Listener>& out,
                     std::string& error);

// "127.0.0.1:1883" for one plain listener, else "127.0.0.1:1883 (tcp), 0.0.0.0:8883 (tls)"
// with the ports the server actually bound.
std::string describe_listeners(const std::vector<Listener>& listeners, const Server& server);

// SIGHUP: re-reads every TLS listener's certificate chain, key, CA and CRL; logs each result.
void reload_certificates(const std::vector<Listener>& listeners);

// Transport counters of every loop in Prometheus text (TLS handshakes and failures by cause,
// WebSocket upgrades and errors, PROXY headers, handshake timeouts, listener caps).
void render_transport_metrics(Server& server, std::string& out);

}  // namespace tcpms::app
