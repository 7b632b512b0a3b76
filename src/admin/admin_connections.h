// AdminConnections: the admin API's connections, on the admin server's own event loop (one
// loop, plus a worker pool for the routes). The loop reads each request until it is complete
// in memory (http_framer.h) and only then gives it to a worker, so a slow or silent client
// holds a small buffer, never a thread; health probes keep answering however many such
// clients there are. What bounds them:
//
// - a request must be complete within `request_timeout_ms` of the connection's opening or of
//   the previous answer (slowloris: one header byte every 2 s is closed, counted);
// - at most `max_connections_per_source` connections from one address and `max_connections`
//   in all: a new connection past either makes room by closing the oldest connection (of
//   that address, else of anyone) that is still waiting for its request, so a flood of idle
//   sockets cannot keep a new probe out; when every connection has a request being answered
//   the new one is closed;
// - at most `max_queued_requests` requests waiting for or running on a worker; more get 503
//   at once. /healthz and /readyz never wait for a worker: they are answered on the loop
//   (but for a front door's /readyz, which asks the worker processes: `readyz_on_loop` false).
// - one request per connection at a time (pipelined ones wait in its buffer), and the body
//   limit is checked as the bytes arrive (chunked bodies too), before they are kept.
//
// Thread rules: an engine Handler, so every method runs on the admin loop's thread; answer()
// runs on worker threads through WorkerPool::offload.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <string>
#include <unordered_map>

#include "admin/http_framer.h"
#include "tcpms/event_loop.h"
#include "tcpms/handler.h"
#include "tcpms/loop_stats.h"
#include "tcpms/worker_pool.h"

namespace tcpms::admin {

class HttpDispatcher;

struct ConnectionLimits {
  uint32_t request_timeout_ms = 10000;
  uint32_t max_connections = 256;
  uint32_t max_connections_per_source = 32;
  uint32_t max_queued_requests = 64;
  uint32_t max_requests_per_connection = 1000;
  FramerLimits framer;
};

// Written by the admin loop only (single-writer counters), read by /metrics.
struct AdminStats {
  Counter connections;         // gauge
  Counter requests;            // answered, worker or loop
  Counter timeouts;            // closed: request not complete in time
  Counter evicted;             // closed to make room for a newer connection
  Counter refused;             // closed at once: full of connections with answers pending
  Counter busy;                // 503: too many requests queued for workers
  Counter rejected_framing;    // 400/413/431/501 before routing
};

class AdminConnections final : public Handler {
 public:
  AdminConnections(EventLoop& loop, WorkerPool& workers, HttpDispatcher& dispatcher,
                   const ConnectionLimits& limits, AdminStats& stats, bool readyz_on_loop = true);
  ~AdminConnections() override;

  Action on_open(Connection& c) override;
  DataResult on_data(Connection& c, ByteView data) override;
  Action on_timeout(Connection& c) override { return Action::kClose; }
  void on_close(Connection& c, CloseReason reason) override;

 private:
  struct State;
  // Frames and answers what `s` holds, until it needs more bytes or waits for a worker.
  Action process(Connection& c, State& s);
  Action dispatch(Connection& c, State& s, std::string request);
  void answered(ConnId id, std::string response, bool close);
  void arm_deadline(Connection& c, State& s);
  // Closes the oldest connection of `list` that waits for its request; false if none does.
  bool evict_oldest(std::list<ConnId>& list);
  void forget(State& s);

  EventLoop& loop_;
  WorkerPool& workers_;
  HttpDispatcher& dispatcher_;
  const ConnectionLimits limits_;
  AdminStats& stats_;
  const bool readyz_on_loop_;
  uint32_t queued_ = 0;  // requests with a worker
  std::list<ConnId> all_;  // oldest first
  std::unordered_map<std::string, std::list<ConnId>> by_source_;
};

}  // namespace tcpms::admin
