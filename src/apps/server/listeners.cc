#include "listeners.h"

#include <fmt/format.h>

#include <spdlog/spdlog.h>

#include "tcpms/loop_stats.h"

namespace tcpms::app {

bool build_listeners(const ServerOptions& opt, bool listen_explicit, std::vector<Listener>& out,
                     std::string& error) {
  out.clear();
  if (opt.listeners.empty() || listen_explicit) {
    std::string text = opt.listen.empty()
                           ? (opt.protocol == "mqtt" ? "0.0.0.0:1883" : "127.0.0.1:7000")
                           : opt.listen;
    auto at = Endpoint::parse(text, &error);
    if (!at) {
      error = "listen (--listen): " + error;
      return false;
    }
    out.push_back(Listener{*at, {}});
  }
  for (size_t i = 0; i < opt.listeners.size(); ++i) {
    const ListenerSettings& l = opt.listeners[i];
    const std::string name = fmt::format("listeners[{}] ({})", i, l.bind);
    auto at = Endpoint::parse(l.bind, &error);
    if (!at) {
      error = name + ": bind: " + error;
      return false;
    }
    Listener listener{*at, {}};
    TransportOptions& t = listener.options.transport;
    t.proxy_protocol = l.proxy_protocol;
    t.websocket = l.websocket;
    t.ws.path = l.websocket_path;
    t.ws.max_frame_bytes = l.websocket_max_frame_bytes;
    t.ws.max_request_bytes = l.websocket_max_request_bytes;
    t.handshake_timeout_ms = l.handshake_timeout_ms;
    listener.options.max_connections = l.max_connections;
    if (l.has_tls()) {
      TlsServerSettings tls = l.tls;
      // ALPN: "mqtt" on an MQTT port; a browser opening wss:// offers "http/1.1".
      tls.alpn = l.websocket ? std::vector<std::string>{"http/1.1"} : std::vector<std::string>{"mqtt"};
      t.tls = TlsContext::server(tls, error);
      if (!t.tls) {
        error = name + ": " + error;
        return false;
      }
    }
    out.push_back(std::move(listener));
  }
  return true;
}

std::string describe_listeners(const std::vector<Listener>& listeners, const Server& server) {
  std::string out;
  for (size_t i = 0; i < listeners.size(); ++i) {
    Endpoint at = listeners[i].at;
    at.set_port(server.bound_port(i));
    if (i) out += ", ";
    out += at.to_string();
    if (listeners.size() > 1 || !listeners[i].options.transport.plain())
      out += " (" + listeners[i].options.transport.describe() + ")";
  }
  return out;
}

void reload_certificates(const std::vector<Listener>& listeners) {
  for (const auto& l : listeners) {
    const auto& tls = l.options.transport.tls;
    if (!tls) continue;
    if (std::string err = tls->reload(); err.empty()) {
      spdlog::info("SIGHUP: {}: reloaded {} and {}", l.at.to_string(), tls->server_settings().cert_file,
                   tls->server_settings().key_file);
    } else {
      spdlog::error("SIGHUP: {}: {}; keeping the old certificate", l.at.to_string(), err);
    }
  }
}

void render_transport_metrics(Server& server, std::string& out) {
  uint64_t conns = 0, full = 0, resumed = 0, upgrades = 0, refused = 0, ws_errors = 0, pings = 0,
           proxy_ok = 0, proxy_bad = 0, timeouts = 0, capped = 0;
  uint64_t failures[static_cast<size_t>(TlsFailure::kCount)] = {};
  for (size_t i = 0; i < server.loop_count(); ++i) {
    const LoopStats& s = server.loop(i).stats();
    conns += s.transport_connections.get();
    full += s.tls_handshakes.get();
    resumed += s.tls_resumed.get();
    for (size_t f = 0; f < std::size(failures); ++f) failures[f] += s.tls_failures[f].get();
    upgrades += s.ws_upgrades.get();
    refused += s.ws_refused.get();
    ws_errors += s.ws_protocol_errors.get();
    pings += s.ws_pings.get();
    proxy_ok += s.proxy_headers.get();
    proxy_bad += s.proxy_refused.get();
    timeouts += s.handshake_timeouts.get();
    capped += s.listener_rejected.get();
  }
  auto family = [&](const char* name, const char* type, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  family("tcpms_transport_connections", "gauge",
         "Connections with transport state (TLS, WebSocket, PROXY header, a listener cap)");
  out += fmt::format("tcpms_transport_connections {}\n", conns);
  family("tcpms_tls_handshakes_total", "counter", "TLS handshakes completed, full or resumed");
  out += fmt::format("tcpms_tls_handshakes_total{{kind=\"full\"}} {}\n", full);
  out += fmt::format("tcpms_tls_handshakes_total{{kind=\"resumed\"}} {}\n", resumed);
  family("tcpms_tls_handshake_failures_total", "counter", "TLS handshakes that failed, by cause");
  for (size_t f = 0; f < std::size(failures); ++f) {
    out += fmt::format("tcpms_tls_handshake_failures_total{{cause=\"{}\"}} {}\n",
                       tls_failure_name(static_cast<TlsFailure>(f)), failures[f]);
  }
  family("tcpms_websocket_upgrades_total", "counter", "WebSocket handshakes completed");
  out += fmt::format("tcpms_websocket_upgrades_total {}\n", upgrades);
  family("tcpms_websocket_refused_total", "counter",
         "WebSocket Upgrade requests answered with an HTTP error (or that timed out)");
  out += fmt::format("tcpms_websocket_refused_total {}\n", refused);
  family("tcpms_websocket_protocol_errors_total", "counter",
         "WebSocket connections closed by us with a close code for a bad frame");
  out += fmt::format("tcpms_websocket_protocol_errors_total {}\n", ws_errors);
  family("tcpms_websocket_pings_total", "counter", "WebSocket pings answered");
  out += fmt::format("tcpms_websocket_pings_total {}\n", pings);
  family("tcpms_proxy_headers_total", "counter", "PROXY protocol headers accepted");
  out += fmt::format("tcpms_proxy_headers_total {}\n", proxy_ok);
  family("tcpms_proxy_refused_total", "counter",
         "Connections on a proxy_protocol listener closed for a missing or bad header");
  out += fmt::format("tcpms_proxy_refused_total {}\n", proxy_bad);
  family("tcpms_handshake_timeouts_total", "counter",
         "Connections closed because their handshakes outlasted handshake_timeout_ms");
  out += fmt::format("tcpms_handshake_timeouts_total {}\n", timeouts);
  family("tcpms_listener_rejected_total", "counter",
         "Connections closed at once for a listener's own max_connections");
  out += fmt::format("tcpms_listener_rejected_total {}\n", capped);
}

}  // namespace tcpms::app
