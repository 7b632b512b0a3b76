#include "admin/admin_server.h"

#include <arpa/inet.h>

#include <httplib.h>

namespace tcpms::admin {

AdminServer::AdminServer(Server& server, AdminConfig config)
    : server_(server), config_(std::move(config)), http_(std::make_unique<httplib::Server>()) {
  // Two threads: the admin API is for operators and dashboards, not the data path.
  http_->new_task_queue = [] { return new httplib::ThreadPool(2); };
  http_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (config_.bearer_token.empty() || req.path == "/healthz")
      return httplib::Server::HandlerResponse::Unhandled;
    if (req.get_header_value("Authorization") == "Bearer " + config_.bearer_token)
      return httplib::Server::HandlerResponse::Unhandled;
    res.status = 401;
    res.set_header("WWW-Authenticate", "Bearer");
    res.set_content("{\"error\":\"missing or wrong bearer token\"}\n", "application/json");
    return httplib::Server::HandlerResponse::Handled;
  });
  http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(render_metrics(server_, sources_), "text/plain; version=0.0.4");
  });
  http_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  http_->Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    bool ready = ready_.load() && server_.loop_count() > 0 && !server_.loop(0).draining();
    res.status = ready ? 200 : 503;
    res.set_content(ready ? "ready\n" : "draining\n", "text/plain");
  });
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
