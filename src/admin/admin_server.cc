#include "admin/admin_server.h"

#include <fmt/format.h>

#include "admin/api_routes.h"
#include "admin/dashboard_html.h"
#include "admin/front_door.h"
#include "admin/http_dispatcher.h"
#include "admin/http_json.h"

namespace tcpms::admin {

AdminServer::AdminServer(Server& server, AdminConfig config)
    : server_(server),
      config_(std::move(config)),
      http_(std::make_unique<HttpDispatcher>()),
      engine_target_(server),
      stats_(server) {
  config_.limits.framer.max_body_bytes = config_.max_body_bytes;
  http_->set_payload_max_length(config_.max_body_bytes);
  // What cpp-httplib announces in Keep-Alive headers; AdminConnections enforces it.
  http_->set_keep_alive_max_count(config_.limits.max_requests_per_connection);
  http_->set_keep_alive_timeout(std::max<uint32_t>(1, config_.limits.request_timeout_ms / 1000));
  http_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    // The dashboard page holds no data (it asks /api/v1/stats with the token), and health
    // checkers rarely carry secrets.
    if (config_.bearer_token.empty() || req.path == "/healthz" || req.path == "/")
      return httplib::Server::HandlerResponse::Unhandled;
    if (same_secret(req.get_header_value("Authorization"), "Bearer " + config_.bearer_token))
      return httplib::Server::HandlerResponse::Unhandled;
    res.set_header("WWW-Authenticate", "Bearer");
    reply_error(res, 401, "missing or wrong bearer token");
    return httplib::Server::HandlerResponse::Handled;
  });
  // Statuses cpp-httplib produces by itself (no route: 404, body too large: 413, ...) get the
  // same JSON shape as ours; answers that already have a body are left alone.
  http_->set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    if (res.status == 404) {
      reply_error(res, 404, "no such endpoint: " + req.path);
    } else if (res.status == 413) {
      reply_error(res, 413, "request body larger than " + std::to_string(config_.max_body_bytes) +
                                " bytes");
    } else {
      reply_error(res, res.status, "HTTP " + std::to_string(res.status));
    }
    return httplib::Server::HandlerResponse::Handled;
  }));
  http_->set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "internal error";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what += std::string(": ") + e.what();
        } catch (...) {
        }
        reply_error(res, 500, what);
      });

  std::vector<Route> routes =
      config_.front_door
          ? config_.front_door->api_routes()
          : api_routes(ApiContext{[this]() -> PushTarget& { return *target_; }, &stats_,
                                  [this] { return ready(); }});
  routes.push_back({"/metrics", "GET", [this](const httplib::Request&, httplib::Response& res) {
    std::string text = config_.front_door ? config_.front_door->metrics()
                                          : render_metrics(server_, sources_);
    render_admin_metrics(text);
    res.set_content(text, "text/plain; version=0.0.4");
  }});
  routes.push_back({"/healthz", "GET", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  }});
  routes.push_back({"/readyz", "GET", [this](const httplib::Request&, httplib::Response& res) {
    std::string why = "draining\n";
    bool is_ready = ready() && (!config_.front_door || config_.front_door->ready(&why));
    res.status = is_ready ? 200 : 503;
    res.set_content(is_ready ? "ready\n" : why, "text/plain");
  }});
  routes.push_back({"/", "GET", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(kDashboardHtml.data(), kDashboardHtml.size(), "text/html; charset=utf-8");
    res.set_header("Cache-Control", "no-cache");
  }});
  install_routes(*http_, routes);
}

bool AdminServer::ready() const {
  return ready_.load() && server_.loop_count() > 0 && !server_.loop(0).draining();
}

AdminServer::~AdminServer() { stop(); }

std::string AdminServer::answer_in_process(std::string_view request) {
  bool close = true;
  return http_->answer(request, "", 0, close);
}

std::string AdminServer::start() {
  ServerConfig sc;
  sc.threads = 1;  // admin connections are few; the routes' waiting happens on the workers
  sc.worker_threads = config_.worker_threads;
  // AdminConnections makes room under its own caps by evicting idle sockets; this is only
  // the backstop past which the engine accepts and closes at once.
  sc.max_connections = config_.limits.max_connections + 64;
  // Never share the port with another process (SO_REUSEPORT), but for the supervisor's
  // reservation of it.
  sc.shared_ports = config_.shared_port;
  sc.port_wait_ms = config_.port_wait_ms;
  sc.loop.output_high_water_bytes = 4 << 20;
  sc.loop.output_low_water_bytes = 1 << 20;
  engine_ = std::make_unique<Server>(sc);
  engine_->listen(config_.listen, [this](EventLoop& loop) {
    return std::make_unique<AdminConnections>(loop, engine_->workers(), *http_, config_.limits,
                                              admin_stats_,
                                              /*readyz_on_loop=*/config_.front_door == nullptr);
  });
  if (std::string err = engine_->start(); !err.empty()) {
    engine_.reset();
    // The engine names the main listener's flag; this one is --admin-listen.
    if (size_t at = err.find("--listen"); at != std::string::npos) err.replace(at, 8, "--admin-listen");
    return "admin API: " + err;
  }
  port_ = engine_->bound_port(0);
  return {};
}

void AdminServer::stop() {
  if (!engine_) return;
  engine_->stop();
  engine_->wait();
  engine_.reset();
}

void AdminServer::render_admin_metrics(std::string& out) const {
  const AdminStats& s = admin_stats_;
  auto one = [&](const char* name, const char* type, const char* help, const Counter& c) {
    fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name,
                   type, name, c.get());
  };
  one("tcpms_admin_connections", "gauge", "Open connections to the admin API.", s.connections);
  one("tcpms_admin_requests_total", "counter", "Admin API requests answered.", s.requests);
  one("tcpms_admin_request_timeouts_total", "counter",
      "Admin connections closed because a request was not complete in time.", s.timeouts);
  one("tcpms_admin_connections_evicted_total", "counter",
      "Idle admin connections closed to make room for a newer one (per-source or total cap).",
      s.evicted);
  one("tcpms_admin_connections_refused_total", "counter",
      "Admin connections closed at once: every slot had a request in progress.", s.refused);
  one("tcpms_admin_busy_total", "counter",
      "Admin requests answered 503 because too many were waiting for a worker.", s.busy);
  one("tcpms_admin_bad_requests_total", "counter",
      "Admin requests refused before routing (head or body too large, bad framing).",
      s.rejected_framing);
}

}  // namespace tcpms::admin
