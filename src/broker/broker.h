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
// public method may be called from any thread, except those that wait for the loops
// (list_clients, describe_clients, delete_session, find_subscriptions, publish_counted),
// which must not be called on a loop thread.
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
#include "broker/client_log.h"
#include "broker/client_registry.h"
#include "broker/config.h"
#include "broker/retained_store.h"
#include "broker/router.h"
#include "broker/shared_groups.h"
#include "broker/topic_taps.h"
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
  kRouted,        // the router took it to another process (the answer comes to `routed`)
  kInvalid,       // bad topic or QoS
};
const char* send_result_name(SendResult r) noexcept;

// One subscription as the control plane shows it.
struct SubscriptionInfo {
  std::string client_id;
  std::string filter;
  mqtt::QoS qos = mqtt::QoS::k0;
  bool no_local = false;             // 5.0 options
  bool retain_as_published = false;
  uint32_t subscription_id = 0;      // 0: none
};

struct ClientInfo {
  std::string client_id;
  uint32_t loop = 0;
  ConnId conn;                // invalid when offline
  uint32_t subscriptions = 0;
  uint32_t connected_since_s = 0;  // unix time of the last CONNECT
  uint32_t queued = 0;
  uint32_t inflight = 0;
  bool connected = false;
  mqtt::ProtocolVersion version = mqtt::ProtocolVersion::kV311;
  bool persistent = false;          // the session outlives its connection
  // Filled by describe_clients only (a syscall or a walk per client):
  bool described = false;
  std::string peer;                 // "host:port" of the connection; "" when offline
  uint16_t keep_alive_s = 0;        // as the client asked (the broker allows 1.5 x)
  std::optional<std::string> username;  // kept only when the authorizer uses names
  uint32_t session_expiry_s = 0;    // 5.0
  bool has_will = false;
  uint64_t pending_output_bytes = 0;
  std::vector<SubscriptionInfo> subscription_list;  // with_subscriptions
  std::string transport;            // "tcp", "tls", "websocket+tls", ... ("" when offline)
};

// Every loop's counters summed (relaxed reads): for $SYS/ and the admin API's stats.
struct BrokerTotals {
  int64_t sessions_connected = 0, sessions_offline = 0, subscriptions = 0;
  int64_t messages_in = 0, messages_out = 0;
  int64_t dropped = 0;  // QoS 0 to slow consumers plus full session queues
  int64_t queued = 0, inflight = 0;
  int64_t connects_refused = 0, auth_refused = 0, protocol_violations = 0;
};

enum class SessionDeleteResult : uint8_t { kDeleted, kConnected, kNotFound, kUnavailable };

// A control-plane publish, as the API reports it: whether it was taken, and how many sessions
// in this process it reached (on every loop; other processes and nodes are not counted).
struct PublishOutcome {
  bool accepted = false;
  uint64_t receivers = 0;
  bool counted = false;  // every loop answered within the wait
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
  // Entry points the admin API (and, with worker processes, its front door) calls. Those that
  // wait for loops must not be called on a loop thread; each says so.
  //
  // Publishes as a client would (retained, QoS per subscription), from one of the loops.
  // $SYS/ is the broker's: refused, as for clients.
  bool publish(std::string_view topic, ByteView payload, mqtt::QoS qos, bool retain);
  // Pushes to one client over its existing connection, subscribed or not, wherever it is. When
  // the answer is kRouted, `routed` (if set) runs once, on any thread, with what the router
  // learnt.
  SendResult send_to_client(std::string_view client_id, std::string_view topic, ByteView payload,
                            mqtt::QoS qos, Router::PushDone routed = {});
  // Disconnects a client, here or (through the router) in another process. True if it was
  // here or the request was routed; `routed` as above.
  bool kick(std::string_view client_id, Router::PushDone routed = {});
  // The same, waiting (up to `timeout`; not on a loop thread) to count the sessions of this
  // process it reached.
  PublishOutcome publish_counted(std::string_view topic, ByteView payload, mqtt::QoS qos,
                                 bool retain, std::chrono::milliseconds timeout);
  // Every session of this process, connected or not, without the per-client details (waits
  // for every loop: not on a loop thread).
  std::vector<ClientInfo> list_clients(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // The details of these clients (peer, keep-alive, ...; subscriptions if asked), from their
  // loops; ids not here are left out. Not on a loop thread.
  std::vector<ClientInfo> describe_clients(const std::vector<std::string>& client_ids,
                                           bool with_subscriptions,
                                           std::chrono::milliseconds timeout = std::chrono::seconds(2));
  // Deletes an offline session (its subscriptions and queued messages); a connected client's
  // session is not deleted (kick it first). Not on a loop thread.
  SessionDeleteResult delete_session(std::string_view client_id,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(2));
  // Subscriptions whose filter is exactly `filter` (match_topic false), or that match the
  // topic name `filter` (true); at most `limit`, from every loop. Not on a loop thread.
  std::vector<SubscriptionInfo> find_subscriptions(std::string_view filter, bool match_topic,
                                                   size_t limit,
                                                   std::chrono::milliseconds timeout = std::chrono::seconds(2));
  // Retained messages (RetainedStore); a delete removes the message here only, without
  // publishing anything ($SYS/ is refused: the broker's).
  std::vector<RetainedMessage> retained_matching(std::string_view filter) const;
  std::optional<RetainedMessage> retained_get(std::string_view topic) const;
  bool retained_delete(std::string_view topic);
  // The topic viewer's taps (topic_taps.h).
  TopicTaps& taps() noexcept { return taps_; }
  ClientLog& client_log() noexcept { return client_log_; }

  // --- the router's entry points: any thread -----------------------------------------------
  // A publish that came from another process: delivered locally, not routed again. With a
  // `wait` (a DurablePublish: wait.peer asked), the router answers once the deliveries here are
  // durable (Router::durable_done).
  void deliver_remote(Message m, DurableWait wait = {});
  // One answer for loop `loop`'s held acknowledgement `token` (Router::on_local_publish_held,
  // a shared delivery elsewhere): `ok` durable there (through store op `seq` of this process's
  // store, 0 for another process's), else not known to be.
  void durable_answered(uint32_t loop, uint64_t token, bool ok, uint64_t seq = 0);
  // Push and kick for a client of this process only (kNotConnected / false if none).
  SendResult send_to_local_client(std::string_view client_id, const Message& m);
  bool kick_local(std::string_view client_id);

  using SessionDone = std::function<void(std::optional<std::string> image)>;
  // Runs a SessionDone exactly once: explicitly, or with nullopt when the last holder lets go
  // of it unanswered (a task dropped because its loop stopped).
  class SessionDoneOnce {
   public:
    explicit SessionDoneOnce(SessionDone done) : done_(std::move(done)) {}
    ~SessionDoneOnce() { (*this)(std::nullopt); }
    SessionDoneOnce(const SessionDoneOnce&) = delete;
    SessionDoneOnce& operator=(const SessionDoneOnce&) = delete;
    void operator()(std::optional<std::string> image) {
      if (!done_) return;
      SessionDone d = std::move(done_);
      done_ = nullptr;
      d(std::move(image));
    }

   private:
    SessionDone done_;
  };
  // The client id was claimed by another process (Router::claim). If the session here is the
  // one registered under `ticket`: its connection closes (takeover [MQTT-3.1.4-2], the will
  // goes out), and the session leaves: as its image (session_image.h) when `want_image` and it
  // is persistent, else discarded [MQTT-3.1.2-6]. `done` runs exactly once, on a loop thread
  // or the caller's, with the image or nullopt. A session under another ticket (newer) is
  // left alone.
  void surrender_session(std::string_view client_id, uint32_t ticket, bool want_image,
                         SessionDone done);
  void surrender_session(std::string_view client_id, uint32_t ticket, bool want_image,
                         std::shared_ptr<SessionDoneOnce> done);
  // A CONNECT here claims `client_id` with the router / its outcome is in the registry. A
  // request to give the id's session up that arrives in between (the home answered the claim
  // and then told this process to give the session up to a newer claim, before the answer was
  // applied on its loop) waits for it, instead of finding no session.
  void claim_started(std::string_view client_id);
  void claim_settled(std::string_view client_id);
  // An image that arrived after its claim gave up: kept as an offline session if the id has
  // none here now (and the router is told); otherwise dropped and counted. False when dropped.
  // `ticket`: the claim it came with, if this process claimed the id for it (else it is
  // enrolled with the router, which keeps it only if nobody else holds the id).
  bool adopt_session(std::string_view client_id, std::string image, uint32_t ticket = 0);
  // The id's home answered a claim of this process after the claim had stopped waiting: the
  // home now records this process as the id's holder under `ticket`. The id's session here
  // takes the ticket (unless it has a newer one), so that the next claim's request to give it
  // up names it; a CONNECT of the id between its claim and its session gives it the ticket
  // when it settles; with no session here the home is told to forget the id. Runs on the loop
  // that adopts the id's late images, after any image posted there before it.
  void claim_answered_late(std::string_view client_id, uint32_t ticket);
  uint64_t sessions_adopt_dropped() const noexcept {
    return adopt_dropped_.load(std::memory_order_relaxed);
  }
  // Counted by the loop that found the id taken (any thread).
  void count_adopt_dropped() noexcept { adopt_dropped_.fetch_add(1, std::memory_order_relaxed); }
  // Calls visit(client id, ticket) for every session in this process (under the registry's
  // locks: keep it short).
  void for_each_session(const std::function<void(std::string_view, uint32_t)>& visit) const;
  // The router's ticket for the session `client_id` holds here (an upgraded cluster node's
  // sessions get back the tickets their homes know them by).
  void set_ticket(std::string_view client_id, uint32_t ticket);
  // Every loop walks its topic tree: on_filter(filter) for each filter with a subscriber
  // there, then on_done(loop position), each on that loop's thread.
  void walk_filters(std::function<void(std::string_view)> on_filter,
                    std::function<void(uint32_t)> on_done);
  // Shared subscriptions of this process and which peers have members (shared_groups.h).
  SharedGroups& shared() noexcept { return shared_; }
  // A message another process picked this one for, for one member of a group; `from`: that
  // process (not asked again if nobody here is left).
  // `wait`: the process asking to be answered once it is durable here (DurablePublish).
  void shared_arrived(uint16_t from, std::string_view share, std::string_view filter, Message m,
                      uint8_t hops, DurableWait wait = {});
  // Every retained message, copied out (a peer that started asks for them).
  void for_each_retained(const std::function<void(const Message&)>& visit) const;
  // A loop's position among this process's loops (0 .. threads-1).
  uint32_t loop_position(uint32_t loop_index) const noexcept { return loop_index - loop_base_; }

  // New-connection rates (mqtt.connects_per_s*): false means close it at once. Any loop.
  bool connect_limits_enabled() const noexcept { return source_rate_ || total_rate_on_; }
  bool admit_connection(const sockaddr_storage& peer);

  BrokerTotals totals() const;
  // Prometheus families for /metrics (admin::MetricsSource).
  void render_metrics(std::string& out) const;

 private:
  BrokerConfig config_;
  Server* server_ = nullptr;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<Authorizer> acl_;
  std::unique_ptr<Router> router_;
  ClientRegistry registry_;
  RetainedStore retained_;
  SharedGroups shared_;
  TopicTaps taps_;
  ClientLog client_log_;
  std::vector<MqttHandler*> handlers_;  // by loop position; filled in Server::start
  uint32_t loop_base_ = 0;
  uint64_t start_ms_ = 0;
  std::atomic<uint64_t> client_numbers_{0};
  std::atomic<uint64_t> adopt_dropped_{0};
  std::atomic<uint64_t> shared_dropped_{0};  // shared messages with no member left anywhere
  static constexpr uint8_t kMaxSharedHops = 8;  // late session images dropped: the id had one
  std::atomic<uint32_t> next_loop_{0};
  // Client ids with a claim unsettled here, and the surrenders waiting for it.
  struct HeldSurrender {
    uint32_t ticket;
    bool want_image;
    std::shared_ptr<SessionDoneOnce> done;
  };
  struct Claiming {
    uint32_t unsettled = 0;
    std::vector<HeldSurrender> held;
    uint32_t late_ticket = 0;  // claim_answered_late meanwhile: given to the session once settled
  };
  // claim_answered_late, on its loop: the ticket goes to the id's session, a settling claim,
  // or back to the home.
  void settle_late_ticket(std::string_view client_id, uint32_t ticket);
  // The handler whose loop adopts the id's late images (any loop will do; one per id keeps
  // them in order).
  MqttHandler* adopting_handler(std::string_view client_id) const noexcept;
  std::mutex claiming_mu_;
  std::unordered_map<std::string, Claiming> claiming_;
  // Per-source connection rate: a bounded, sharded table of buckets (shared by the loops, so
  // a source spread over loops is limited as one); overall rate: one bucket under a lock.
  std::unique_ptr<auth::LoginThrottle> source_rate_;
  bool total_rate_on_ = false;
  std::mutex total_rate_mu_;
  auth::TokenBucket total_rate_{0, {}};
  store::StoreWriter* store_ = nullptr;
  class Recovery;
  std::unique_ptr<Recovery> recovery_;
};

}  // namespace tcpms::broker
