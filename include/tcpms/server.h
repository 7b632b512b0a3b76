// Server: N event loops on N threads, each with its own SO_REUSEPORT listener per listening
// address, plus a worker pool. The usual way to run tcpms:
//
//   tcpms::Server server(config);
//   server.listen(*tcpms::Endpoint::parse("127.0.0.1:7000"), [](tcpms::EventLoop&) {
//     return std::make_unique<MyHandler>();
//   });
//   if (auto err = server.start(); !err.empty()) { ... }
//   ... server.drain(5s); server.wait();
//
// Thread rules: configure (listen) before start(); after start every method is safe from any
// thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tcpms/endpoint.h"
#include "tcpms/event_loop.h"
#include "tcpms/handler.h"
#include "tcpms/transport.h"
#include "tcpms/worker_pool.h"

namespace tcpms {

struct ServerConfig {
  unsigned threads = 0;          // event loops; 0: one per CPU
  int64_t max_connections = 0;   // process-wide cap; 0: unlimited (over it: accept, close, count)
  int backlog = 0;               // listen backlog; 0: net.core.somaxconn
  unsigned worker_threads = 2;   // blocking-work pool
  uint32_t loop_index_base = 0;  // first loop index (worker processes use disjoint ranges)
  // False: refuse a port another process already listens on (SO_REUSEPORT would otherwise
  // share it silently). True for worker processes, which share their supervisor's ports.
  bool shared_ports = false;
  // Unshared ports: how long to wait for a port held by processes that are exiting (a server
  // killed with -9 still closing its sockets) before giving up. A live holder fails at once.
  uint32_t port_wait_ms = 0;
  LoopConfig loop;
};

namespace net {
struct TransportConfig;
}

class Server {
 public:
  explicit Server(ServerConfig config);
  ~Server();  // stops and joins if still running
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Adds a listening address served by handlers from `factory` (one handler per loop), with
  // its transport (TLS, WebSocket, PROXY header) and limits. Returns the listener's index.
  size_t listen(const Endpoint& at, HandlerFactory factory, ListenerOptions options = {});
  // Another listening address for a handler already added (several listeners, one protocol
  // state per loop: an MQTT broker on 1883, 8883 and 8084).
  size_t listen(const Endpoint& at, uint8_t handler, ListenerOptions options = {});
  // A handler on every loop; listeners or outbound connections use it by the returned index
  // (the same on every loop). Outbound connections made for it go through `outbound`
  // (tcpms-bench: TLS, WebSocket).
  uint8_t add_handler(HandlerFactory factory, TransportOptions outbound = {});
  // The handler index of a listener.
  uint8_t listener_handler(size_t listener) const { return listeners_.at(listener).handler; }
  const ListenerOptions& listener_options(size_t listener) const {
    return listeners_.at(listener).options;
  }
  size_t listener_count() const noexcept { return listeners_.size(); }

  // The upgrade handover (docs/upgrade.md): listening sockets of the process this one
  // replaces, for `listener`. start() gives them to the loops instead of binding (a loop
  // left without one binds its own SO_REUSEPORT socket on the same port; extra ones go to
  // the loops in turn), so connections waiting in their accept queues are not lost.
  void inherit_listeners(size_t listener, std::vector<UniqueFd> fds);
  // Every loop's listening descriptor (borrowed), with its listener index: what a handover
  // passes on. Call while the loops do not accept (EventLoop::set_accepting).
  std::vector<std::pair<size_t, int>> listening_descriptors() const;

  // Creates the loops, binds every listener on every loop, starts the threads. Returns an
  // empty string on success, else a message naming the address, the failing call and why.
  std::string start();

  // The port a listener got (useful after binding port 0).
  uint16_t bound_port(size_t listener) const;
  const Endpoint& listen_address(size_t listener) const { return listeners_.at(listener).at; }

  size_t loop_count() const noexcept { return loops_.size(); }
  EventLoop& loop(size_t i) { return *loops_.at(i); }
  // The loop owning `id`, or null if the id names no loop of this server.
  EventLoop* loop_of(ConnId id);
  WorkerPool& workers() { return *workers_; }
  int64_t connection_count() const noexcept { return conn_count_.load(std::memory_order_relaxed); }
  const ServerConfig& config() const noexcept { return config_; }

  // Any thread: queue `data` (copied) for the connection; false if no such loop.
  bool send_to(ConnId id, ByteView data);
  bool close(ConnId id, CloseReason reason = CloseReason::kKicked);
  void post_to_all(const std::function<void(EventLoop&)>& task);

  // Stop accepting, let handlers finish, close what is left at the deadline.
  void drain(std::chrono::milliseconds deadline);
  void stop();  // stop the loops now
  void wait();  // join loop threads

 private:
  struct ListenerSpec {
    Endpoint at;
    uint8_t handler = 0;
    ListenerOptions options;
    std::unique_ptr<net::TransportConfig> transport;  // null: plain TCP and no cap
    std::unique_ptr<std::atomic<int64_t>> count;
    std::vector<UniqueFd> inherited;  // from the process this one replaces
  };
  struct HandlerSpec {
    HandlerFactory factory;
    std::unique_ptr<net::TransportConfig> outbound;
  };

  ServerConfig config_;
  std::vector<ListenerSpec> listeners_;
  std::vector<HandlerSpec> handlers_;
  std::vector<std::unique_ptr<EventLoop>> loops_;
  std::vector<std::vector<size_t>> listener_of_;  // per loop: its listeners' indices, in order
  std::vector<std::thread> threads_;
  std::unique_ptr<WorkerPool> workers_;
  std::atomic<int64_t> conn_count_{0};
};

}  // namespace tcpms
