#include "tcpms/server.h"

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <stdexcept>
#include <string>

#include "net/port_holder.h"
#include "net/socket.h"
#include "net/transport.h"

namespace tcpms {

Server::Server(ServerConfig config) : config_(std::move(config)) {
  if (config_.threads == 0) config_.threads = std::max(1u, std::thread::hardware_concurrency());
  if (config_.backlog <= 0) config_.backlog = net::read_somaxconn();
}

Server::~Server() {
  stop();
  wait();
  workers_.reset();  // join workers before the loops they post results to go away
  loops_.clear();
}

namespace {

std::unique_ptr<net::TransportConfig> make_transport(const TransportOptions& o, bool client) {
  auto t = std::make_unique<net::TransportConfig>();
  t->options = o;
  t->client = client;
  t->name = o.describe();
  for (const auto& p : t->options.ws.subprotocols) t->subprotocols.emplace_back(p);
  return t;
}

}  // namespace

size_t Server::listen(const Endpoint& at, HandlerFactory factory, ListenerOptions options) {
  return listen(at, add_handler(std::move(factory)), std::move(options));
}

size_t Server::listen(const Endpoint& at, uint8_t handler, ListenerOptions options) {
  ListenerSpec spec;
  spec.at = at;
  spec.handler = handler;
  spec.options = std::move(options);
  // Plain TCP without a cap of its own gets no transport at all: its connections cost
  // exactly what they did before transports existed.
  if (!spec.options.transport.plain() || spec.options.max_connections > 0) {
    spec.transport = make_transport(spec.options.transport, false);
    spec.transport->passthrough = spec.options.transport.plain();
    spec.transport->max_connections = spec.options.max_connections;
    spec.count = std::make_unique<std::atomic<int64_t>>(0);
    spec.transport->listener_count = spec.count.get();
  }
  listeners_.push_back(std::move(spec));
  return listeners_.size() - 1;
}

uint8_t Server::add_handler(HandlerFactory factory, TransportOptions outbound) {
  if (handlers_.size() >= 255) throw std::length_error("too many handlers");
  HandlerSpec spec{std::move(factory), nullptr};
  if (!outbound.plain()) spec.outbound = make_transport(outbound, true);
  handlers_.push_back(std::move(spec));
  return static_cast<uint8_t>(handlers_.size() - 1);
}

std::string Server::start() {
  if (config_.loop_index_base + config_.threads > ConnId::kMaxLoops)
    return "too many event loops (at most " + std::to_string(ConnId::kMaxLoops) + ")";
  workers_ = std::make_unique<WorkerPool>(config_.worker_threads);
  for (unsigned i = 0; i < config_.threads; ++i) {
    auto loop = std::make_unique<EventLoop>(config_.loop_index_base + i, config_.loop, this);
    loop->set_connection_cap(&conn_count_, config_.max_connections);
    loops_.push_back(std::move(loop));
  }
  listener_of_.assign(loops_.size(), {});
  // Handler indices are the same on every loop: the order they were added in.
  for (auto& loop : loops_) {
    for (size_t h = 0; h < handlers_.size(); ++h) {
      loop->add_handler(handlers_[h].factory(*loop));
      if (handlers_[h].outbound) loop->set_outbound_transport(static_cast<uint8_t>(h), handlers_[h].outbound.get());
    }
  }
  for (size_t li = 0; li < listeners_.size(); ++li) {
    Endpoint& at = listeners_[li].at;
    net::TransportConfig* transport = listeners_[li].transport.get();
    std::vector<UniqueFd>& inherited = listeners_[li].inherited;
    if (!inherited.empty()) {
      // Port 0 in the configuration: the port is the one the old process got.
      if (!at.is_unix() && at.port() == 0) at.set_port(net::local_endpoint(inherited[0].get()).port());
      if (transport) transport->listen_address = at.to_string();
    }
    if (!config_.shared_ports && inherited.empty()) {
      std::string holder;
      if (int err = net::wait_port_free(at, std::chrono::milliseconds(config_.port_wait_ms), holder);
          err != 0) {
        loops_.clear();
        return "cannot listen on " + at.to_string() + ": bind: " + net::errno_text(err) +
               (err == EADDRINUSE ? " (held by " + holder + "; pick another port with --listen)"
                                  : "");
      }
    }
    for (size_t i = 0; i < loops_.size(); ++i) {
      auto& loop = loops_[i];
      if (i < inherited.size()) {
        loop->add_listener(std::move(inherited[i]), listeners_[li].handler, transport);
        listener_of_[i].push_back(li);
        continue;
      }
      // A Unix socket name cannot be shared with SO_REUSEPORT: the first loop serves it.
      if (at.is_unix() && loop != loops_.front()) break;
      int err = 0;
      const char* what = "";
      UniqueFd fd = net::open_listener(at, config_.backlog, listeners_[li].options.defer_accept_s,
                                       err, what);
      if (!fd) {
        std::string msg = "cannot listen on " + at.to_string() + ": " + what + ": " +
                          net::errno_text(err);
        if (err == EADDRINUSE) msg += " (another process has this port; pick another with --listen)";
        if (err == EACCES) msg += " (ports below 1024 need root or CAP_NET_BIND_SERVICE)";
        loops_.clear();
        return msg;
      }
      // Port 0: the first loop's bind picked a port; the other loops join that one.
      if (at.port() == 0) at.set_port(net::local_endpoint(fd.get()).port());
      if (transport) transport->listen_address = at.to_string();
      loop->add_listener(std::move(fd), listeners_[li].handler, transport);
      listener_of_[i].push_back(li);
    }
    // More inherited sockets than loops: each still has connections queued; the loops share them.
    for (size_t i = loops_.size(); i < inherited.size(); ++i) {
      loops_[i % loops_.size()]->add_listener(std::move(inherited[i]), listeners_[li].handler, transport);
      listener_of_[i % loops_.size()].push_back(li);
    }
    inherited.clear();
  }
  // Loop threads must not take process signals: main owns them through a signalfd.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  for (size_t i = 0; i < loops_.size(); ++i) {
    threads_.emplace_back([loop = loops_[i].get(), i] {
      std::string name = "tcpms-loop-" + std::to_string(i);
      pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
      loop->run();
    });
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return {};
}

void Server::inherit_listeners(size_t listener, std::vector<UniqueFd> fds) {
  listeners_.at(listener).inherited = std::move(fds);
}

std::vector<std::pair<size_t, int>> Server::listening_descriptors() const {
  std::vector<std::pair<size_t, int>> out;
  for (size_t i = 0; i < loops_.size(); ++i) {
    std::vector<int> fds = loops_[i]->listener_fds();  // in the order add_listener saw them
    for (size_t k = 0; k < fds.size() && k < listener_of_[i].size(); ++k)
      if (fds[k] >= 0) out.emplace_back(listener_of_[i][k], fds[k]);
  }
  return out;
}

uint16_t Server::bound_port(size_t listener) const { return listeners_.at(listener).at.port(); }

EventLoop* Server::loop_of(ConnId id) {
  uint32_t l = id.loop();
  if (l < config_.loop_index_base || l - config_.loop_index_base >= loops_.size()) return nullptr;
  return loops_[l - config_.loop_index_base].get();
}

bool Server::send_to(ConnId id, ByteView data) {
  EventLoop* loop = loop_of(id);
  if (loop == nullptr) return false;
  return loop->post([loop, id, bytes = std::string(as_chars(data))] {
    loop->send_to(id, as_bytes(bytes));
  });
}

bool Server::close(ConnId id, CloseReason reason) {
  EventLoop* loop = loop_of(id);
  if (loop == nullptr) return false;
  return loop->post([loop, id, reason] { loop->close(id, reason); });
}

void Server::post_to_all(const std::function<void(EventLoop&)>& task) {
  for (auto& loop : loops_) loop->post([l = loop.get(), task] { task(*l); });
}

void Server::drain(std::chrono::milliseconds deadline) {
  for (auto& loop : loops_) loop->drain(deadline);
}

void Server::stop() {
  for (auto& loop : loops_) loop->stop();
}

void Server::wait() {
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

}  // namespace tcpms
