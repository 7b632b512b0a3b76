// RedisTransport: the routing layer's transport between tcpms nodes on several machines,
// through Redis (routing::Transport; the routing itself is routing::PeerRouter, the same as
// between worker processes). See docs/cluster.md.
//
// Keys (prefix "tcpms:"):
//   slot_of / node_of  HASHes node id <-> peer slot. A node id keeps its slot for as long as
//                      Redis keeps these (a node that restarts gets its slot back); a Redis that
//                      lost them gets them re-asserted by the live nodes.
//   node:<N>           lease of node N: "<slot> <incarnation>", TTL lease_ms, refreshed every
//                      lease_ms / 3. A scan of these at every refresh is who is up.
//   stream:<N>         STREAM of entries for node N (node_stream.h: routing frames, and "up"
//                      control entries), MAXLEN ~ bounded, expiring with N's lease.
//
// Peers: a node is up (on_peer_up) from the moment this node sees its lease or its "up" entry,
// until a scan misses its lease (on_peer_down) or it comes back with another incarnation (down,
// then up). A node that (re)joins, or that could not send something to a peer (Redis was down,
// the queue was full, a retried batch was dropped), writes "up" into that peer's stream before
// anything else it sends it: the peer forgets what it knew of this node (on_peer_down) and
// both sides tell each other everything again (on_peer_up). That is what keeps the transport
// contract (whole, once, per-pair order, or not at all while down) through Redis blips:
// - whole and once: an entry is one XADD; a batch that failed is sent again with the same
//   sequence numbers and the receiver drops what it has seen (DuplicateFilter);
// - per-pair order: one command thread sends, in the order frames were handed to send();
//   a retried batch goes before anything newer;
// - not at all: while the command connection is down send() refuses (counted as dropped), and
//   the peer is told "up" once it is back.
// Client-id homes are rendezvous hashing over the live slots (node_ring.h), so they move as
// nodes come and go (homes_move()).
//
// Threads: loop threads call send(); a command thread owns one blocking hiredis connection,
// drains the send queue in pipelined batches (XADD to the target's stream), keeps the lease,
// scans the leases and calls on_peer_up/down; a stream thread owns a second connection, reads
// this node's stream (XREAD BLOCK) from the last entry it read and calls on_frame (and, for an
// "up" entry, on_peer_down/up); a timer thread runs run_after tasks. Peer changes are
// serialized by one mutex (never taken by send()).
//
// Thread rules: open() (blocking, before the router is made on it), then start() after
// Server::start(); stop() before the Broker goes (it says goodbye). send/run_after/home_of
// from any thread.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cluster/cluster_metrics.h"
#include "cluster/continuation.h"
#include "cluster/lease.h"
#include "cluster/node_ring.h"
#include "cluster/node_stream.h"
#include "cluster/redis_client.h"
#include "routing/transport.h"

namespace tcpms::cluster {

struct ClusterConfig {
  RedisAddress redis;
  std::string node_id;
  uint32_t lease_ms = 5000;
  uint32_t redis_timeout_ms = 2000;  // connect and per-reply timeout
  uint32_t max_nodes = 32;           // peer slots (at most kMaxNodeSlots): distinct node ids
  uint32_t join_wait_ms = 30000;     // open(): how long to wait for Redis to give a slot
  size_t queue_capacity = 65536;     // frames waiting for the command thread
  // backed_up() from this many waiting frames: publishers wait, so a node that publishes
  // faster than Redis takes its frames slows its publishers down instead of dropping what
  // crosses. Eight batches keep the command thread busy; more would only add latency (every
  // frame waits behind the queue). 0 or more than half the queue: half the queue.
  size_t queue_high_water = 8 * 512;
  size_t stream_max_len = 100000;    // entries kept per node stream (XADD MAXLEN ~)
  size_t outbox_capacity = 65536;    // frames of failed batches kept for a retry
  std::string prefix = "tcpms:";
};

class RedisTransport final : public routing::Transport {
 public:
  explicit RedisTransport(ClusterConfig config);
  ~RedisTransport() override;
  RedisTransport(const RedisTransport&) = delete;
  RedisTransport& operator=(const RedisTransport&) = delete;

  // Connects and takes this node's slot, retrying with backoff for up to join_wait_ms. Empty
  // on success, else what went wrong.
  std::string open();
  void start();
  void stop();

  // --- routing::Transport ---
  void set_receiver(Receiver* r) override { receiver_ = r; }
  routing::PeerId self() const override { return self_; }
  uint32_t peer_slots() const override { return config_.max_nodes; }
  bool send(routing::PeerId to, SharedBytes frame) override;
  bool run_after(uint32_t delay_ms, std::function<void()> task) override;
  routing::PeerId home_of(std::string_view client_id, uint64_t key) const override;
  bool homes_move() const override { return true; }
  // While Redis is up and at least queue_high_water frames wait for it. While Redis is down
  // nothing waits (frames are dropped and the peers told everything once it is back), so
  // publishers are not held for an outage.
  bool backed_up() const override;
  // A node is down when its lease lapsed; one that comes back writes an "up" entry first,
  // and both sides then resend their state.
  bool down_is_mutual() const override { return true; }
  routing::PeerId home_with(uint64_t key, routing::PeerId peer) const override;

  // --- the upgrade handover (continuation.h; docs/upgrade.md, "A cluster node") ---
  // Old process, once its clients' input is held: stops reading this node's stream after
  // the entries being handled (their frames are with the router when it returns).
  void hold_input();
  // Old process, once its connections and state are out: writes what waits to be sent and
  // sends nothing more, so the sequence numbers stop. "" or why not (Redis is unreachable,
  // or frames wait for a retry: the handover stops and this process serves on).
  std::string hold_output();
  // What the new process needs to go on as this node; with both held.
  NodeContinuation continuation() const;
  // The handover stopped: reads and sends again (what waited goes now).
  void release_holds();
  // The handover committed: the threads stop without the goodbye (the lease and the stream
  // are the new process's); what waited to be sent is dropped (the new process has the state).
  void stop_handed_over();
  // New process, after open() and before start(): goes on as the node `c` describes (same
  // slot, incarnation, sequence numbers, stream position, peers). Its peers are told our
  // state again at the first scan (Hello, interest, homed ids), without the "up" that would
  // make them forget it. "" or why not.
  std::string continue_from(const NodeContinuation& c);

  const ClusterMetrics& metrics() const noexcept { return metrics_; }
  void render_metrics(std::string& out) const { metrics_.render(out, config_.node_id); }
  ClusterMetrics& mutable_metrics() noexcept { return metrics_; }

 private:
  enum class PeerState : uint8_t { kDown, kOpening, kUp };
  struct Outgoing {
    routing::PeerId to = routing::kNoPeer;
    SharedBytes frame;
    bool control = false;
  };

  std::string key(std::string_view kind, std::string_view node) const {
    return config_.prefix + std::string(kind) + ":" + std::string(node);
  }
  bool take_slot(RedisConnection& c, std::string& error);  // the slot script
  void command_main();
  void stream_main();
  void timer_main();
  bool join();     // command thread: lease, first-join cleanup, slot re-asserted; then scan
  bool refresh();  // command thread: lease refresh; a lost lease is a rejoin
  bool scan();     // command thread: who is up
  bool process(std::deque<Outgoing>& batch);
  bool flush_outbox();
  bool run(const std::vector<RedisCommand>& cmds, std::vector<RedisReply>& replies);
  void add_xadd(std::vector<RedisCommand>& cmds, std::deque<std::string>& store,
                const std::string& target, std::string_view frame, uint64_t seq, bool control);
  void lost(const char* what);
  void drop_queued();
  void wait_backoff(uint32_t ms);
  void first_attempt_over();
  // Peers with frames lost since they were told: "up", then everything again.
  void resend_to_lost();
  // Under members_mu_: `peer` goes down / comes up (the receiver told). `coming_back`: it is
  // brought up again at once (its homes stay). `tell` writes "up" into its stream first.
  void peer_down_locked(routing::PeerId peer, bool coming_back = false);
  void peer_up_locked(routing::PeerId peer, bool tell);
  void mark_lost(routing::PeerId peer) { lost_[peer].store(true, std::memory_order_relaxed); }
  std::string name_of(routing::PeerId peer) const;

  ClusterConfig config_;
  // Set at construction, or by continue_from() before the threads start.
  std::string incarnation_;
  std::string sender_tag_;  // "<node>/<incarnation>": whose sequence numbers these are
  routing::PeerId self_ = 0;
  std::string self_str_;
  Receiver* receiver_ = nullptr;
  ClusterMetrics metrics_;

  // Peers. State and live mask read by any thread; changed under members_mu_.
  std::array<std::atomic<PeerState>, kMaxNodeSlots> state_{};
  std::array<std::atomic<bool>, kMaxNodeSlots> lost_{};
  std::array<std::atomic<std::thread::id>, kMaxNodeSlots> opener_{};
  std::atomic<uint64_t> live_{0};  // slots up, this node's included
  mutable std::recursive_mutex members_mu_;  // a callback may bring a peer down/up again (same thread)
  mutable std::mutex names_mu_;
  std::array<std::string, kMaxNodeSlots> names_;         // under names_mu_
  std::array<std::string, kMaxNodeSlots> incarnations_;  // under members_mu_

  // The send queue.
  mutable std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Outgoing> queue_;
  // By peer: frames other threads sent while it was being told everything (under queue_mu_).
  std::array<std::vector<Outgoing>, kMaxNodeSlots> held_;
  std::atomic<bool> resend_wanted_{false};
  std::atomic<bool> rejoined_{false};  // the lease had lapsed: every peer is taken down and up

  // Timers.
  std::mutex timer_mu_;
  std::condition_variable timer_cv_;
  std::multimap<uint64_t, std::function<void()>> timers_;  // by due time (steady ms)

  mutable std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool first_attempt_done_ = false;
  // The handover's holds (under stop_mu_ for input, queue_mu_ for output; waited on with
  // stop_cv_ and queue_cv_): asked for, and reached by the thread concerned.
  bool input_held_ = false, input_parked_ = false;
  bool output_held_ = false, output_parked_ = false;
  bool output_clean_ = false;  // when parked: nothing waited for a retry, Redis was up
  std::atomic<bool> handed_over_{false};  // stop() says no goodbye

  std::atomic<bool> running_{false}, stopping_{false};
  std::atomic<bool> command_up_{false};
  std::atomic<bool> joined_{false};  // the first join emptied our stream: the reader may start
  std::thread command_thread_, stream_thread_, timer_thread_;

  // Stream thread only (read by continuation() while it is parked).
  DuplicateFilter seen_;
  std::string last_read_id_ = "0-0";  // the first join emptied the stream: everything is ours
  // Peers a continued node tells its state again at its first scan (under members_mu_).
  uint64_t retell_ = 0;

  // Command thread only.
  RedisConnection cmd_;
  LeaseTable lease_;
  uint64_t seq_ = 0;
  Outbox outbox_;
  std::vector<Outbox::Item> in_flight_;
  std::map<std::string, uint64_t> stream_ttl_set_ms_;
  uint64_t down_since_ms_ = 0;
  uint64_t dropped_at_down_ = 0;
  bool ever_joined_ = false;
  bool continued_ = false;  // continue_from(): the first join is no join
};

}  // namespace tcpms::cluster
