// AdminServer: the HTTP control plane (cpp-httplib) on its own thread. It reads loop
// counters directly (atomics) and reaches connections only through the loops' task queues.
//
// Routes: /metrics, /healthz, /readyz, the push API under /api/v1/ (answered by a PushTarget),
// /api/v1/stats and the dashboard at /. Errors are JSON {"error": "..."} with 400 (bad JSON,
// bad fields), 401 (token), 404, 405, 413 (body over max_body_bytes).
//
// Thread rules: construct, set_push_target, add_metrics_source and start on one thread
// (main), before start(); set_ready and stop from any thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "admin/engine_push_target.h"
#include "admin/metrics.h"
#include "admin/push_target.h"
#include "admin/stats.h"
#include "tcpms/endpoint.h"
#include "tcpms/server.h"

namespace httplib {
class Server;
}

namespace tcpms::admin {

struct AdminConfig {
  Endpoint listen;
  std::string bearer_token;  // required on every request except /healthz and / when non-empty
  size_t max_body_bytes = 1 << 20;  // larger request bodies get 413
};

class AdminServer {
 public:
  AdminServer(Server& server, AdminConfig config);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  httplib::Server& http() { return *http_; }
  void add_metrics_source(MetricsSource source) { sources_.push_back(std::move(source)); }
  // The protocol's answer to the push API (the MQTT broker's); it must outlive this server.
  // Until set, an EnginePushTarget serves raw sends, kicks and listings by connection id.
  void set_push_target(PushTarget* target) { target_ = target ? target : &engine_target_; }
  PushTarget& push_target() { return *target_; }
  void set_ready(bool ready) { ready_.store(ready); }
  bool ready() const;

  // Binds and starts serving; returns an empty string or a message saying why not.
  std::string start();
  void stop();
  uint16_t port() const noexcept { return port_; }

 private:
  Server& server_;
  AdminConfig config_;
  std::unique_ptr<httplib::Server> http_;
  std::vector<MetricsSource> sources_;
  EnginePushTarget engine_target_;
  PushTarget* target_ = &engine_target_;
  StatsSampler stats_;
  std::atomic<bool> ready_{true};
  std::thread thread_;
  uint16_t port_ = 0;
};

}  // namespace tcpms::admin
