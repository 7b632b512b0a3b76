// AdminServer: the HTTP control plane (cpp-httplib) on its own thread. It reads loop
// counters directly (atomics) and reaches connections only through the loops' task queues.
// Protocols register their routes and metric sources before start().
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "admin/metrics.h"
#include "tcpms/endpoint.h"
#include "tcpms/server.h"

namespace httplib {
class Server;
}

namespace tcpms::admin {

struct AdminConfig {
  Endpoint listen;
  std::string bearer_token;  // required on every request except /healthz when non-empty
};

class AdminServer {
 public:
  AdminServer(Server& server, AdminConfig config);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  httplib::Server& http() { return *http_; }
  void add_metrics_source(MetricsSource source) { sources_.push_back(std::move(source)); }
  void set_ready(bool ready) { ready_.store(ready); }

  // Binds and starts serving; returns an empty string or a message saying why not.
  std::string start();
  void stop();
  uint16_t port() const noexcept { return port_; }

 private:
  Server& server_;
  AdminConfig config_;
  std::unique_ptr<httplib::Server> http_;
  std::vector<MetricsSource> sources_;
  std::atomic<bool> ready_{true};
  std::thread thread_;
  uint16_t port_ = 0;
};

}  // namespace tcpms::admin
