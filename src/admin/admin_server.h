// AdminServer: the HTTP control plane. Its connections live on an event loop of its own (a
// second tcpms::Server with one loop and a worker pool), which reads each request completely
// before a worker runs its route (admin_connections.h: timeouts, per-source caps, eviction of
// idle sockets), so slow clients cannot starve health probes. Routing and responses are
// cpp-httplib's (http_dispatcher.h). It reads the protocol loops' counters directly (atomics)
// and reaches their connections only through their task queues.
//
// Routes: /metrics, /healthz, /readyz, the API under /api/v1/ (api_routes.h, answered by a
// PushTarget, or by a FrontDoor for a server of several worker processes), and the dashboard
// at /. Errors are JSON {"error": "..."} (docs/control-plane.md).
// The listener never shares its port: a second server asking for a port in use fails to start.
//
// Thread rules: construct, set_push_target, add_metrics_source and start on one thread
// (main), before start(); set_ready and stop from any thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "admin/admin_connections.h"
#include "admin/engine_push_target.h"
#include "admin/metrics.h"
#include "admin/push_target.h"
#include "admin/stats.h"
#include "tcpms/endpoint.h"
#include "tcpms/server.h"

namespace tcpms::admin {

class FrontDoor;
class HttpDispatcher;

struct AdminConfig {
  Endpoint listen;
  std::string bearer_token;  // required on every request except /healthz and / when non-empty
  size_t max_body_bytes = 1 << 20;  // larger request bodies get 413 (chunked ones too)
  ConnectionLimits limits;          // slow clients, caps per source (admin_connections.h)
  unsigned worker_threads = 8;      // routes that wait for loops or other nodes run here
  // With worker processes: this server answers for all of them through `front_door` (it must
  // outlive the server), /readyz included, which then waits for the workers' answers on a
  // worker thread instead of being answered on the loop.
  FrontDoor* front_door = nullptr;
  // The port is shared (SO_REUSEPORT) with the supervisor's reservation, which keeps it while
  // the worker serving it restarts; the supervisor checked before forking that nobody else had it.
  bool shared_port = false;
  uint32_t port_wait_ms = 0;  // ServerConfig::port_wait_ms, for an unshared port
};

class AdminServer {
 public:
  AdminServer(Server& server, AdminConfig config);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  HttpDispatcher& http() { return *http_; }
  // Answers one whole request as if it had come on the listener (whether or not this server
  // listens): how worker 0's front door asks its own process. Any thread but the loops'.
  std::string answer_in_process(std::string_view request);
  void add_metrics_source(MetricsSource source) { sources_.push_back(std::move(source)); }
  // The protocol's answer to the push API (the MQTT broker's); it must outlive this server.
  // Until set, an EnginePushTarget serves raw sends, kicks and listings by connection id.
  void set_push_target(PushTarget* target) { target_ = target ? target : &engine_target_; }
  PushTarget& push_target() { return *target_; }
  void set_ready(bool ready) { ready_.store(ready); }
  bool ready() const;

  // Binds and starts serving; returns an empty string or a message saying why not.
  std::string start();
  void stop();  // closes the listener and every admin connection; idempotent
  uint16_t port() const noexcept { return port_; }

 private:
  void render_admin_metrics(std::string& out) const;

  Server& server_;
  AdminConfig config_;
  std::unique_ptr<HttpDispatcher> http_;
  AdminStats admin_stats_;
  std::unique_ptr<Server> engine_;  // the admin API's own loop and workers
  std::vector<MetricsSource> sources_;
  EnginePushTarget engine_target_;
  PushTarget* target_ = &engine_target_;
  StatsSampler stats_;
  std::atomic<bool> ready_{true};
  uint16_t port_ = 0;
};

}  // namespace tcpms::admin
