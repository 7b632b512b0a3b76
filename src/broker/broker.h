// Broker: the MQTT broker's shared context and its thread-safe control-plane entry points.
//
// Per-loop state (topic tree, sessions, counters) lives in each loop's MqttHandler; what is
// shared across loops is here: configuration, the client registry, retained messages, the
// auth hooks and the router. Usage (apps/server):
//
//   broker::Broker broker(config);               // outlives the Server
//   tcpms::Server server(server_config);
//   broker.attach(server);
//   server.listen(at, broker.handler_factory());
//   server.start();
//   broker.publish("a/b", payload, QoS::k1, false);   // from any thread
//
// Thread rules: construct, set hooks and attach() before Server::start(); afterwards every
// public method may be called from any thread except list_clients(), which waits for the
// loops and so must not be called on a loop thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "auth/login_throttle.h"
#include "auth/token_bucket.h"
#include "broker/auth.h"
#include "broker/client_registry.h"
#include "broker/config.h"
#include "broker/retained_store.h"
#include "broker/router.h"
#include "mqtt/types.h"
#include "store/recovery.h"
#include "tcpms/bytes.h"
#include "tcpms/conn_id.h"
#include "tcpms/handler.h"
#include "tcpms/server.h"

namespace tcpms::store {
class StoreWriter;
}

namespace tcpms::broker {

class MqttHandler;

enum class SendResult : uint8_t {
  kNotConnected,  // no such client here (and the router knew none elsewhere)
  kQueued,        // offline persistent session: kept for its next connection (QoS 1/2)
  kSent,          // handed to its connection's loop
  kRouted,        // the router took it to another process
  kInvalid,       // bad topic or QoS
};
const char* send_result_name(SendResult r) noexcept;

struct ClientInfo {
  std::string client_id;
  uint32_t loop = 0;
  ConnId conn;                // invalid when offline
  uint32_t subscriptions = 0;
  uint32_t connected_since_s = 0;  // unix time of the last CONNECT
  uint32_t queued = 0;
  uint32_t inflight = 0;
  bool connected = false;
};

class Broker {
 public:
  explicit Broker(BrokerConfig config);
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // Hooks; the defaults allow everything and route nowhere. Set before attach().
  void set_authenticator(std::unique_ptr<Authenticator> a) { auth_ = std::move(a); }
  void set_authorizer(std::unique_ptr<Authorizer> a) { acl_ = std::move(a); }
  void set_router(std::unique_ptr<Router> r) { router_ = std::move(r); }

  void attach(Server& server);

  // --- persistence (src/store, docs/persistence.md): after attach(), before the handlers ---
  void set_store(store::StoreWriter* writer) { store_ = writer; }
  store::StoreWriter* store() const noexcept { return store_; }
  // The visitor for store::Store::open: retained messages go into the retained store at once;
  // sessions are kept for the loop each will live on and installed by that loop's handler as
  // it is made, before any loop runs; the delayed wills of sessions that expired while the
  // server was down wait for after_recovery().
  store::RecoveryVisitor& recovery_visitor();
  std::vector<store::RecoveredSession> take_recovered(uint32_t loop_index);
  // Once the server runs: the router hears of every recovered session (held here, offline),
  // and the wills owed by expired sessions go out.
  void after_recovery();
  // One MqttHandler per loop; pass to Server::listen.
  HandlerFactory handler_factory();

  const BrokerConfig& config() const noexcept { return config_; }
  Server& server() noexcept { return *server_; }
  ClientRegistry& registry() noexcept { return registry_; }
  RetainedStore& retained() noexcept { return retained_; }
  Authenticator& authenticator() noexcept { return *auth_; }
  Authorizer& authorizer() noexcept { return *acl_; }
  Router& router() noexcept { return *router_; }
  // The handler of the loop with EventLoop::index() == `loop_index` (null if none).
  MqttHandler* handler_for(uint32_t loop_index) const noexcept;
  const std::vector<MqttHandler*>& handlers() const noexcept { return handlers_; }
  uint64_t start_time_ms() const noexcept { return start_ms_; }
  // Unique ids for clients that sent an empty one [MQTT-3.1.3-6].
  uint64_t next_client_number() noexcept { return client_numbers_.fetch_add(1) + 1; }

  // --- control plane: any thread -----------------------------------------------------------
  // Publishes as a client would (retained, QoS per subscription), from one of the loops.
  bool publish(std::string_view topic, ByteView payload, mqtt::QoS qos, bool retain);
  // Pushes to one client over its existing connection, subscribed or not. When the answer is
  // kRouted, `routed` (if set) runs once, on any thread, with what the router learnt.
  SendResult send_to_client(std::string_view client_id, std::string_view topic, ByteView payload,
                            mqtt::QoS qos, Router::PushDone routed = {});
  bool kick(std::string_view client_id);
  std::vector<ClientInfo> list_clients(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // --- persistent sessions across processes (the other side of Router::fetch_session) -----
  // Wraps a SessionDone so it runs exactly once: explicitly, or with nullopt when the last
  // holder lets go of it unanswered (a task dropped because its loop stopped).
  class SessionDoneOnce {
   public:
    explicit SessionDoneOnce(Router::SessionDone done) : done_(std::move(done)) {}
    ~SessionDoneOnce() { (*this)(std::nullopt); }
    SessionDoneOnce(const SessionDoneOnce&) = delete;
    SessionDoneOnce& operator=(const SessionDoneOnce&) = delete;
    void operator()(std::optional<std::string> image) {
      if (!done_) return;
      Router::SessionDone d = std::move(done_);
      done_ = nullptr;
      d(std::move(image));
    }

   private:
    Router::SessionDone done_;
  };
  // Gives up `client_id`'s session for another process: closes its connection here if any
  // (takeover [MQTT-3.1.4-2]; the will goes out), removes the session and calls `done` with
  // its image (session_image.h), or with nullopt if there is none or it is a clean session.
  // `done` runs exactly once, on a loop thread or the caller's.
  void export_session(std::string_view client_id, Router::SessionDone done);
  // An image that arrived after its fetch gave up: kept as an offline session if the id has
  // none here now; otherwise dropped and counted. False when dropped.
  bool adopt_session(std::string_view client_id, std::string image);
  // The client connected elsewhere with a session of its own: closes it here and discards
  // its session, persistent or not [MQTT-3.1.2-6].
  void drop_session(std::string_view client_id);
  // export_session once the wrapper exists (a retry, or an entry that moved meanwhile).
  void export_session(std::string_view client_id, std::shared_ptr<SessionDoneOnce> done);
  uint64_t sessions_adopt_dropped() const noexcept {
    return adopt_dropped_.load(std::memory_order_relaxed);
  }
  // Counted by the loop that found the id taken (any thread).
  void count_adopt_dropped() noexcept { adopt_dropped_.fetch_add(1, std::memory_order_relaxed); }

  // A publish that came from another process (router): delivered locally, not routed again.
  void deliver_remote(const SharedBytes& topic, const SharedBytes& payload, mqtt::QoS qos,
                      bool retain);

  // New-connection rates (mqtt.connects_per_s*): false means close it at once. Any loop.
  bool connect_limits_enabled() const noexcept { return source_rate_ || total_rate_on_; }
  bool admit_connection(const sockaddr_storage& peer);

  // Prometheus families for /metrics (admin::MetricsSource).
  void render_metrics(std::string& out) const;

  // --- process-wide filter accounting for Router::on_filter_added/removed (loop threads) ---
  void filter_added(std::string_view filter);
  void filter_removed(std::string_view filter);

 private:
  BrokerConfig config_;
  Server* server_ = nullptr;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<Authorizer> acl_;
  std::unique_ptr<Router> router_;
  ClientRegistry registry_;
  RetainedStore retained_;
  std::vector<MqttHandler*> handlers_;  // by loop position; filled in Server::start
  uint32_t loop_base_ = 0;
  uint64_t start_ms_ = 0;
  std::atomic<uint64_t> client_numbers_{0};
  std::atomic<uint64_t> adopt_dropped_{0};  // late session images dropped: the id had one
  std::atomic<uint32_t> next_loop_{0};
  // Per-source connection rate: a bounded, sharded table of buckets (shared by the loops, so
  // a source spread over loops is limited as one); overall rate: one bucket under a lock.
  std::unique_ptr<auth::LoginThrottle> source_rate_;
  bool total_rate_on_ = false;
  std::mutex total_rate_mu_;
  auth::TokenBucket total_rate_{0, {}};
  store::StoreWriter* store_ = nullptr;
  class Recovery;
  std::unique_ptr<Recovery> recovery_;
  std::mutex filters_mu_;
  std::unordered_map<std::string, uint32_t> filter_loops_;  // filter -> loops subscribed
};

}  // namespace tcpms::broker
