#include "admin/admin_server.h"

#include <arpa/inet.h>

#include <httplib.h>

#include "admin/api_routes.h"
#include "admin/dashboard_html.h"
#include "admin/http_json.h"

namespace tcpms::admin {

AdminServer::AdminServer(Server& server, AdminConfig config)
    : server_(server),
      config_(std::move(config)),
      http_(std::make_unique<httplib::Server>()),
      engine_target_(server),
      stats_(server) {
  // A few threads: the admin API is for operators and dashboards, not the data path. More
  // than two because a push routed to another node waits (bounded) for its answer on its
  // thread, and health probes and /metrics must not queue behind such waits.
  http_->new_task_queue = [] { return new httplib::ThreadPool(8); };
  http_->set_payload_max_length(config_.max_body_bytes);
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

  std::vector<Route> routes = api_routes(ApiContext{
      [this]() -> PushTarget& { return *target_; }, &stats_, [this] { return ready(); }});
  routes.push_back({"/metrics", "GET", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(render_metrics(server_, sources_), "text/plain; version=0.0.4");
  }});
  routes.push_back({"/healthz", "GET", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  }});
  routes.push_back({"/readyz", "GET", [this](const httplib::Request&, httplib::Response& res) {
    bool is_ready = ready();
    res.status = is_ready ? 200 : 503;
    res.set_content(is_ready ? "ready\n" : "draining\n", "text/plain");
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

std::string AdminServer::start() {
  char host[INET6_ADDRSTRLEN] = {};
  const auto& a = config_.listen.addr;
  if (a.ss_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(a).sin6_addr, host, sizeof host);
  } else {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(a).sin_addr, host, sizeof host);
  }
  int port = config_.listen.port();
  if (port == 0) {
    port = http_->bind_to_any_port(host);
  } else if (!http_->bind_to_port(host, port)) {
    port = -1;
  }
  if (port < 0) {
    return "cannot listen on " + config_.listen.to_string() +
           " for the admin API (port in use? pick another with --admin-listen)";
  }
  port_ = static_cast<uint16_t>(port);
  thread_ = std::thread([this] { http_->listen_after_bind(); });
  return {};
}

void AdminServer::stop() {
  if (thread_.joinable()) {
    http_->stop();
    thread_.join();
  }
}

}  // namespace tcpms::admin
