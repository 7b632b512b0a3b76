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
  auto sum = [&](auto field) {
    uint64_t total = 0;
    for (size_t i = 0; i < server.loop_count(); ++i) total += field(server.loop(i).stats()).get();
    return total;
  };
  auto family = [&](const char* name, const char* type, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  struct Scalar {
    const char* name;
    const char* type;
    const char* help;
    const Counter& (*field)(const LoopStats&);
  };
  static constexpr Scalar kScalars[] = {
      {"tcpms_transport_connections", "gauge",
       "Connections with transport state (TLS, WebSocket, PROXY header, a listener cap)",
       [](const LoopStats& s) -> const Counter& { return s.transport_connections; }},
      {"tcpms_websocket_upgrades_total", "counter", "WebSocket handshakes completed",
       [](const LoopStats& s) -> const Counter& { return s.ws_upgrades; }},
      {"tcpms_websocket_refused_total", "counter",
       "WebSocket Upgrade requests answered with an HTTP error (or that timed out)",
       [](const LoopStats& s) -> const Counter& { return s.ws_refused; }},
      {"tcpms_websocket_protocol_errors_total", "counter",
       "WebSocket connections closed by us with a close code for a bad frame",
       [](const LoopStats& s) -> const Counter& { return s.ws_protocol_errors; }},
      {"tcpms_websocket_pings_total", "counter", "WebSocket pings answered",
       [](const LoopStats& s) -> const Counter& { return s.ws_pings; }},
      {"tcpms_proxy_headers_total", "counter", "PROXY protocol headers accepted",
       [](const LoopStats& s) -> const Counter& { return s.proxy_headers; }},
      {"tcpms_proxy_refused_total", "counter",
       "Connections on a proxy_protocol listener closed for a missing or bad header",
       [](const LoopStats& s) -> const Counter& { return s.proxy_refused; }},
      {"tcpms_tls_openssl_connections", "gauge",
       "TLS connections holding OpenSSL's per-connection state (~14 KB): handshakes in "
       "progress, TLS 1.2, and TLS 1.3 with tls.own_record_layer = false",
       [](const LoopStats& s) -> const Counter& { return s.tls_openssl_connections; }},
      {"tcpms_tls_key_updates_total", "counter", "TLS 1.3 KeyUpdate messages received",
       [](const LoopStats& s) -> const Counter& { return s.tls_key_updates; }},
      {"tcpms_tls_record_errors_total", "counter",
       "TLS connections closed after the handshake for a bad record or a fatal alert",
       [](const LoopStats& s) -> const Counter& { return s.tls_record_errors; }},
      {"tcpms_handshake_timeouts_total", "counter",
       "Connections closed because their handshakes outlasted handshake_timeout_ms",
       [](const LoopStats& s) -> const Counter& { return s.handshake_timeouts; }},
      {"tcpms_listener_rejected_total", "counter",
       "Connections closed at once for a listener's own max_connections",
       [](const LoopStats& s) -> const Counter& { return s.listener_rejected; }},
  };
  for (const Scalar& m : kScalars) {
    family(m.name, m.type, m.help);
    out += fmt::format("{} {}\n", m.name, sum(m.field));
  }
  family("tcpms_tls_handshakes_total", "counter", "TLS handshakes completed, full or resumed");
  out += fmt::format("tcpms_tls_handshakes_total{{kind=\"full\"}} {}\n",
                     sum([](const LoopStats& s) -> const Counter& { return s.tls_handshakes; }));
  out += fmt::format("tcpms_tls_handshakes_total{{kind=\"resumed\"}} {}\n",
                     sum([](const LoopStats& s) -> const Counter& { return s.tls_resumed; }));
  family("tcpms_tls_handshake_failures_total", "counter", "TLS handshakes that failed, by cause");
  for (size_t f = 0; f < static_cast<size_t>(TlsFailure::kCount); ++f) {
    out += fmt::format("tcpms_tls_handshake_failures_total{{cause=\"{}\"}} {}\n",
                       tls_failure_name(static_cast<TlsFailure>(f)),
                       sum([f](const LoopStats& s) -> const Counter& { return s.tls_failures[f]; }));
  }
}

}  // namespace tcpms::app
