// RedisRouter: the broker's Router across tcpms nodes (machines), through Redis.
//
// Keys and channels (prefix "tcpms:"):
//   node:<N>      lease of node N: a key with a TTL of lease_ms, refreshed every lease_ms/3
//   routes:<N>    SET of N's topic filters (same TTL)        -- the route table
//   clients:<N>   SET of client ids with a session on N, connected or offline persistent
//                 (same TTL) -- the client registry: pushes and session fetches look here
//   retained      HASH topic -> [qos][payload]: what a node joining later loads
//   stream:<N>    STREAM of messages for node N: publishes, pushes, session moves (entries
//                 s=sender tag, n=sequence, f=frame; MAXLEN ~ bounded; expires with N's lease)
//   ctl           channel: route changes, hello/bye, "client X connected on N"
//
// A publish costs no Redis round trip to decide where it goes: each node keeps the other
// nodes' filters in a local trie (RouteTable), loaded with SMEMBERS and kept current by the
// ctl notifications, and sends a message only to the nodes whose filters match. Retained
// publishes go to every live node (each keeps every retained message, as worker processes
// do) and into the retained hash.
//
// Threads: loop threads call the Router hooks, which never touch Redis: they match the trie
// under a shared lock and put one operation on a bounded queue (full: dropped and counted).
// A command thread owns one blocking hiredis connection, drains the queue in pipelined
// batches (XADD to the target nodes' streams) and keeps the lease; a subscriber thread owns a
// second connection and receives ctl; a stream thread owns a third, reads this node's stream
// from the last entry it read (XREAD BLOCK), drops entries a sender already delivered, and
// hands messages to Broker's thread-safe entry points. A batch that fails keeps its messages
// in a bounded outbox, sent again (same sequence numbers) once Redis is back. Redis unreachable:
// local delivery goes on, what would cross is counted as dropped, the threads reconnect with
// backoff, and the command thread rewrites this node's routes and registry on reconnection.
// Sessions: a CleanSession 0 CONNECT asks (fetch_session) the nodes whose clients set has the
// id; the holder answers with Broker::export_session's image through the requester's stream.
//
// Thread rules: construct and set on the Broker before Broker::attach; start() after
// Server::start() (it waits up to redis_timeout_ms for the first join); stop() before the Broker is destroyed (it says goodbye to the other nodes).
// Hooks from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "broker/broker.h"
#include "broker/router.h"
#include "cluster/cluster_metrics.h"
#include "cluster/frame.h"
#include "cluster/lease.h"
#include "cluster/node_stream.h"
#include "cluster/redis_client.h"
#include "cluster/route_table.h"

struct redisReply;

namespace tcpms::cluster {

struct ClusterConfig {
  RedisAddress redis;
  std::string node_id;
  uint32_t lease_ms = 5000;
  uint32_t redis_timeout_ms = 2000;  // connect and per-reply timeout
  // How long a CONNECT waits for another node's answer with its session before going on
  // without it (a session arriving later goes to Broker::adopt_session).
  uint32_t session_fetch_timeout_ms = 3000;
  size_t queue_capacity = 65536;     // operations waiting for the command thread
  size_t stream_max_len = 100000;    // entries kept per node stream (XADD MAXLEN ~)
  size_t outbox_capacity = 65536;    // messages of failed batches kept for a retry
  std::string prefix = "tcpms:";
};

// A Router::PushDone that runs exactly once: explicitly, or with kUnknown when destroyed
// unanswered (an operation dropped with the queue, a batch that failed, a stop).
class OncePushDone {
 public:
  OncePushDone() = default;
  explicit OncePushDone(broker::Router::PushDone fn) : fn_(std::move(fn)) {}
  OncePushDone(OncePushDone&& o) noexcept : fn_(std::exchange(o.fn_, nullptr)) {}
  OncePushDone& operator=(OncePushDone&& o) noexcept {
    if (this != &o) {
      (*this)(broker::Router::PushOutcome::kUnknown);
      fn_ = std::exchange(o.fn_, nullptr);
    }
    return *this;
  }
  ~OncePushDone() { (*this)(broker::Router::PushOutcome::kUnknown); }
  void operator()(broker::Router::PushOutcome outcome) {
    if (fn_) std::exchange(fn_, nullptr)(outcome);
  }
  bool armed() const noexcept { return static_cast<bool>(fn_); }
  // Forgets the callback without running it (the push was refused: the caller is told so).
  void disarm() noexcept { fn_ = nullptr; }

 private:
  broker::Router::PushDone fn_;
};

class RedisRouter final : public broker::Router {
 public:
  RedisRouter(broker::Broker& broker, ClusterConfig config);
  ~RedisRouter() override;

  void start();
  void stop();

  bool wants_filter_events() const override { return true; }
  void on_filter_added(std::string_view filter, uint32_t loop) override;
  void on_filter_removed(std::string_view filter, uint32_t loop) override;
  void on_local_publish(const broker::Message& m) override;
  bool push_to_client(std::string_view client_id, const broker::Message& m,
                      PushDone done) override;
  bool claims_client_ids() const override { return true; }
  void claim(std::string_view client_id, bool persistent, ClaimDone done) override;
  void release(std::string_view client_id, uint32_t ticket) override;
  void enroll(std::string_view client_id, uint32_t ticket) override;

  const ClusterMetrics& metrics() const noexcept { return metrics_; }
  void render_metrics(std::string& out) const { metrics_.render(out, config_.node_id); }

 private:
  using SessionDone = broker::Broker::SessionDone;
  void on_client_connected(std::string_view client_id);
  void on_client_disconnected(std::string_view client_id, bool session_kept);
  void on_session_ended(std::string_view client_id);
  void fetch_session(std::string_view client_id, SessionDone done);

  struct Op {
    enum Kind : uint8_t {
      kPublish,       // frame to `targets` (or every live node when `all`)
      kPush,          // frame to whichever live node holds client `key`
      kRouteAdd,      // SADD routes:self key + notify
      kRouteRemove,   // SREM routes:self key + notify
      kClientAdd,     // SADD clients:self key + notify (takeover) if `frame`
      kClientRemove,  // SREM clients:self key
      kFetch,         // look up who holds session `key`, send `frame` (a request) to them
      kSend,          // PUBLISH `frame` on channel `key` (a session answer)
      kLoadNode,      // (internal) a node said hello: load its routes
      kForgetNode,    // (internal) a node said bye
    };
    explicit Op(Kind k) : kind(k) {}
    Kind kind;
    // kPush: what became of it, reported once (kUnknown if the Op is dropped unanswered).
    bool all = false;
    NodeSet targets;
    std::string key;
    std::shared_ptr<const std::string> frame;
    std::string retained_value;  // kPublish with retain: [qos][payload] for the hash
    OncePushDone done;
    uint64_t fetch_id = 0;  // kFetch: its entry in fetches_
  };

  // A fetch_session waiting for its answer. `awaiting`: holders asked and not yet answered
  // (-1 until the lookup is done).
  struct PendingFetch {
    std::string client_id;
    SessionDone done;
    uint64_t deadline_ms = 0;
    int awaiting = -1;
  };
  enum class FetchEnd : uint8_t { kFound, kNone, kTimeout, kRedisDown };

  // Moves `op` into the queue; leaves it untouched (the caller still owns it) when full or
  // stopping.
  bool enqueue(Op&& op, bool is_message);
  void command_main();
  void subscriber_main();
  void stream_main();
  // Connects a subscriber or stream connection (named tcpms:<node>:<link>) and subscribes to
  // `channels`; on failure counts it and waits out `backoff`, which doubles. True if up.
  bool connect_link(RedisConnection& c, std::string_view link, const std::vector<std::string>& channels,
                    uint32_t& backoff);
  // Command thread: XADD `frame` to `target`'s stream with sequence `seq`, plus the PEXPIRE
  // that keeps the stream from outliving its node. `store` owns the strings `cmds` points to.
  void add_xadd(std::vector<RedisCommand>& cmds, std::deque<std::string>& store, const std::string& target,
                const std::string& frame, uint64_t seq);
  // Sends what failed batches left (after a reconnection); false when the connection broke.
  bool flush_outbox();
  // Command thread; false when the connection broke.
  bool rebuild();
  bool refresh();
  bool load_nodes(const std::vector<std::string>& joined, const std::vector<std::string>& left);
  bool scan_nodes(std::vector<std::string>& out);
  bool load_retained();
  bool process(std::vector<Op>& batch);
  bool run(const std::vector<RedisCommand>& cmds, std::vector<RedisReply>& replies);
  void say_goodbye();
  void drop_queued(const char* why);
  void wait_backoff(uint32_t ms);
  void lost(const char* what);
  void first_attempt_over();
  // Ends fetch `id` (any thread): runs its `done` outside the lock. False if it had ended.
  bool end_fetch(uint64_t id, std::optional<std::string> image, FetchEnd why);
  void expire_fetches();
  // Ops that will not run: fetches end (nullopt), session answers return to the broker.
  void abandon(Op& op);
  // The holder's side: answers `requester` with what export_session gave (loop thread or
  // stream thread).
  void answer_fetch(const std::string& requester, const std::string& client_id,
                    const std::string& request_id, std::optional<std::string> image);
  // Subscriber thread (ctl) and stream thread (this node's stream).
  void dispatch(std::string_view channel, std::string_view data);
  void on_session_answer(const Frame& f);
  // Stream thread: answers "none" to a session request older than its requester's timeout
  // (Redis' TIME, asked once per read into `redis_now_ms`, against the entry id). True if so.
  bool stale_request(RedisConnection& rd, const redisReply* entry_id, std::string_view data,
                     uint64_t& redis_now_ms);

  std::string key(std::string_view kind, std::string_view node) const {
    return config_.prefix + std::string(kind) + ":" + std::string(node);
  }

  broker::Broker& broker_;
  ClusterConfig config_;
  const std::string ctl_channel_;
  const std::string incarnation_;
  const std::string sender_tag_;  // "<node>/<incarnation>": whose sequence numbers these are
  ClusterMetrics metrics_;

  // Remote routes: written by the Redis threads, matched by loop threads.
  mutable std::shared_mutex routes_mu_;
  RouteTable routes_;
  std::atomic<uint64_t> route_count_{0};

  // Local filters (for rebuilds), and on how many loops each is; guarded by filters_mu_.
  std::mutex filters_mu_;
  std::unordered_set<std::string> filters_;
  std::unordered_map<std::string, uint32_t> filter_loops_;

  // Client ids that connected here whose "connected" notice has not come back from Redis yet:
  // a notice from another node for such an id is older than ours, so it must not close ours.
  std::mutex pending_mu_;
  std::unordered_set<std::string> pending_connects_;

  // Session fetches in flight, by request id.
  std::mutex fetch_mu_;
  std::unordered_map<uint64_t, PendingFetch> fetches_;
  std::atomic<uint64_t> next_fetch_id_{1};
  std::atomic<size_t> fetches_pending_{0};

  // The command queue.
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Op> queue_;
  bool reload_remote_ = false;  // the subscriber (re)connected: events may have been missed
  bool rebuild_needed_ = false;  // a route or registry change was dropped (queue full)

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;  // wakes a thread waiting out a backoff
  bool first_attempt_done_ = false;  // guarded by stop_mu_; start() waits for it

  std::atomic<bool> running_{false}, stopping_{false};
  std::atomic<bool> command_up_{false};
  // Set by the command thread's first rewrite, which empties this node's stream of what an
  // earlier process with the same node id left; the stream thread reads only after it.
  std::atomic<bool> joined_{false};
  std::thread command_thread_, subscriber_thread_, stream_thread_;

  // Command thread only.
  RedisConnection cmd_;
  LeaseTable lease_;
  bool retained_loaded_ = false;
  uint64_t seq_ = 0;                      // last sequence number given to a stream entry
  Outbox outbox_;
  std::vector<Outbox::Item> in_flight_;  // stream messages of the round trip under way
  std::unordered_map<std::string, uint64_t> stream_ttl_set_ms_;  // by target: last PEXPIRE sent
  bool rebuild_pending_ = false;  // state changes were dropped: rewrite at the next refresh
  uint64_t down_since_ms_ = 0;
  uint64_t dropped_at_down_ = 0;
};

}  // namespace tcpms::cluster
