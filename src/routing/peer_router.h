// PeerRouter: the broker's Router between peers — the worker processes of one server, or the
// nodes of a cluster — over any Transport (transport.h). One routing layer for both: the same
// frames (frame.h), the same interest summary, the same ownership of client ids.
//
// Publishes: by interest, decided locally. Every peer's filters are kept as Bloom bitmaps
// (RemoteInterest) and a publish goes only to the peers whose bitmap says they may have a
// matching subscriber: no round trip, no broadcast. A peer keeps its own filters as a counting
// bitmap (LocalInterest) and sends the others a delta when they changed (at once after a quiet
// spell, else at most once an interval, through the hub with many peers), or a snapshot when
// a peer comes up or the bitmap grew. Cluster nodes keep the others' bitmaps from these
// frames, and a SUBACK waits until every node has applied the update carrying its filter
// (interest_acks.h), so a publish anywhere after the SUBACK reaches the subscriber; a node
// that does not answer within claim_timeout_ms only delays it. Worker processes share one copy
// of every bitmap instead (RouterOptions::shared_interest): each writes its own column before
// it sends the update, which the others do not apply; the SUBACK still waits for their answer
// to it. That wait is not needed for the filter to be seen; it stays because it paces a
// subscription storm: a million-client ramp without it left 2,214 clients without a CONNACK
// for 60 s: the quicker SUBACKs let new CONNECTs in faster than the workers answered them
// (docs/scale.md).
// A link that breaks and is redialled keeps the peer's column; a restart forgets it. Retained
// publishes go to every peer (each keeps every retained message); a peer that starts asks one
// other for them.
//
// Client ids: by ownership. Every id has a home, home_of(id) over the peers, whose Directory
// says which peer holds the id's session and under which ticket. A CONNECT claims its id at
// the home before its CONNACK (claim): the home gives it the next ticket, makes it the holder,
// and tells the previous holder, if any, to give the session up (Surrender): with its image
// for a persistent CONNECT (sent straight to the claimer), or dropped for a clean one. The
// newest claim at the home wins, whatever the order connections reach their peers; a holder
// gives up a session only if the ticket named is the session's, so a stale request never
// touches a newer one. A session that ends is released at the home. A push, kick or lookup by
// client id goes to the home, which forwards it to the holder (ById), and the answer comes
// back to the asker (Reply). Each of these costs a fixed number of frames, whatever the number
// of peers. A peer that restarts forgets its directory; every other peer then enrolls the ids
// it holds whose home that peer is (Register), with their tickets.
//
// Durability (persistence.sync = every-message): a client's QoS 1/2 publish whose
// acknowledgement is held goes to the peers as DurablePublish instead of Publish (or
// SharedDeliver), with a request id; each peer delivers it and answers Reply{request, kDone}
// once what its store got of it is durable (at once when it stored nothing). A shared message
// a peer passes on to a third one is answered when the third answers (the middle peer waits
// for it as for its own). The publisher's loop holds the acknowledgement until every peer
// asked has answered (Broker::durable_answered). A peer that goes down, or does not answer
// within request_timeout_ms, fails the wait: the publisher's connection is closed without the
// acknowledgement, and the client sends the message again.
//
// Failure: a frame to a peer that is down is dropped. A claim whose home does not answer
// within claim_timeout_ms completes without a ticket (a clean CONNECT goes on with a fresh
// session, a persistent one is refused); a session image that comes after its claim gave up
// is adopted by the broker if the id has no session here. A home that answers after the
// claim gave up has recorded this peer as the holder all the same: the late answer's ticket
// goes to the id's session here, or the home is told to forget the id
// (Broker::claim_answered_late), so the home's record and the session agree and the next
// claim finds the session. A request by id gets no answer after request_timeout_ms:
// kUnknown.
//
// Thread rules: the Router hooks from loop threads; the Receiver callbacks from the
// transport's threads. State is under two mutexes (directory, pending requests), never held
// while calling into the broker or the transport.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "broker/broker.h"
#include "broker/router.h"
#include "routing/directory.h"
#include "routing/frame.h"
#include "routing/interest_acks.h"
#include "routing/local_interest.h"
#include "routing/peer_set.h"
#include "routing/remote_interest.h"
#include "routing/router_image.h"
#include "routing/transport.h"

namespace tcpms::routing {

struct RouterOptions {
  uint32_t loops = 1;  // the broker's event loops (their trees are walked when interest grows)
  InterestOptions interest;
  uint32_t claim_timeout_ms = 3000;
  // A persistent CONNECT's claim (0: claim_timeout_ms). Giving up on one refuses the client
  // (its stored session may be where no answer came from), so it may wait longer than a clean
  // one, which goes on with a fresh session.
  uint32_t persistent_claim_timeout_ms = 0;
  // Shortest time between two interest updates to the peers; 0: 2.5 ms per peer (an update
  // costs one frame per peer, so with many peers updates batch more).
  uint32_t interest_interval_ms = 0;
  // With more peers than this, interest updates go through one peer, the hub (peer 0), which
  // forwards them all together: 2 frames per peer and interval instead of one per pair.
  uint32_t interest_relay_above = 8;
  uint32_t request_timeout_ms = 5000;
  uint64_t incarnation = 0;  // this process's; 0: chosen from the pid and the clock
  // The interest tables the worker processes share (RemoteInterest::shared_region, made
  // before they were forked); null: this peer keeps the others' columns itself.
  InterestRegion* shared_interest = nullptr;
};

struct RouterStats {
  std::atomic<uint64_t> publishes_sent{0}, publishes_received{0}, publishes_unmatched{0};
  std::atomic<uint64_t> claims{0}, claims_remote{0}, claims_timed_out{0}, claims_answered_late{0};
  std::atomic<uint64_t> surrenders{0}, sessions_moved_in{0}, sessions_late{0};
  std::atomic<uint64_t> by_id_requests{0}, by_id_unknown{0};
  std::atomic<uint64_t> frames_bad{0}, frames_unknown{0}, sends_failed{0};
  std::atomic<uint64_t> interest_updates_sent{0}, interest_rebuilds{0};
  std::atomic<uint64_t> enrolled{0}, peers_restarted{0};
  std::atomic<uint64_t> shared_sent{0}, shared_received{0};
  std::atomic<uint64_t> durable_asked{0}, durable_unconfirmed{0};
  std::atomic<uint64_t> subacks_held{0}, subacks_unconfirmed{0};
};

class PeerRouter final : public broker::Router, public Transport::Receiver {
 public:
  PeerRouter(broker::Broker& broker, Transport& transport, RouterOptions options);
  ~PeerRouter() override;

  // --- broker::Router (loop threads) ---
  bool wants_filter_events() const override { return true; }
  void on_filter_added(std::string_view filter, uint32_t loop) override;
  void on_filter_removed(std::string_view filter, uint32_t loop) override;
  bool when_filters_known(std::function<void()> resume) override;
  void on_local_publish(const broker::Message& m) override;
  uint32_t on_local_publish_held(const broker::Message& m, uint32_t loop, uint64_t token) override;
  void durable_done(uint16_t peer, uint64_t request) override;
  bool claims_client_ids() const override { return transport_.peer_slots() > 1; }
  bool links_backed_up() const override { return transport_.backed_up(); }
  void claim(std::string_view client_id, bool persistent, ClaimDone done) override;
  void release(std::string_view client_id, uint32_t ticket) override;
  void enroll(std::string_view client_id, uint32_t ticket) override;
  bool push_to_client(std::string_view client_id, const broker::Message& m, PushDone done) override;
  bool kick_client(std::string_view client_id, PushDone done) override;
  void on_shared_group(std::string_view share, std::string_view filter, bool joined) override;
  void shared_deliver(uint16_t peer, std::string_view share, std::string_view filter,
                      const broker::Message& m, uint8_t hops) override;
  bool shared_deliver_held(uint16_t peer, std::string_view share, std::string_view filter,
                           const broker::Message& m, uint8_t hops,
                           const broker::DurableWait& wait) override;

  // --- Transport::Receiver (transport threads) ---
  void on_frame(PeerId from, ByteView frame) override;
  void on_peer_up(PeerId peer) override;
  void on_peer_down(PeerId peer) override;

  const RouterStats& stats() const noexcept { return stats_; }
  // The peers a publish to `topic` would go to now (diagnostics, tests).
  PeerSet interested(std::string_view topic) const {
    PeerSet s;
    remote_.match(topic, s);
    return s;
  }
  void render_metrics(std::string& out) const;
  PeerId self() const noexcept { return self_; }

  // --- the upgrade handover with worker processes (docs/upgrade.md, "Worker processes") ---
  // Any thread, once this worker holds its clients' input: a DrainMark to every peer, after
  // everything sent before it.
  void send_drain_marks(uint32_t epoch);
  // Every peer's DrainMark of `epoch` has arrived: every frame they sent before holding their
  // input has been handled here (posted to the loops it was for).
  bool drained(uint32_t epoch) const;
  // Every peer's Hello and interest column have arrived: a publish read here from now on
  // reaches every subscriber anywhere (the new workers of an upgrade read nothing before).
  bool knows_every_peer();
  // The sessions held here whose home is this worker enter its directory (those homed at a
  // peer are enrolled there as the peer comes up): a worker that took sessions over in an
  // upgrade, rather than by claims, needs it before it reads input.
  void enroll_homed_here() { enroll_at(self_); }
  size_t directory_size() const;

  // --- the upgrade handover of a cluster node (router_image.h; docs/upgrade.md) ---
  // Old process, with the transport's input held: what this router knows of the other peers
  // and of the ids homed here.
  RouterImage export_image();
  // New process, before its transport starts: goes on from `image` as the same peer (its
  // incarnation, the peers' Hellos, interest columns and shared groups, the directory). The
  // retained messages came with the handover: none are asked of a peer.
  void continue_from(const RouterImage& image);
  // Peers whose interest bitmap has any bit set here (metrics; scans the columns).
  uint32_t peers_with_interest();
  // Sends the interest changes gathered so far (normally scheduled on its own).
  void flush_interest();
  // Runs `task` now if `last_ms` is at least an interval ago, else when it will be; `scheduled`
  // keeps one pending.
  void schedule_spaced(std::atomic<bool>& scheduled, std::atomic<uint64_t>& last_ms,
                       void (PeerRouter::*task)());

 private:
  struct PendingClaim {
    std::string client_id;
    ClaimDone done;
    PeerId home = kNoPeer;
    uint32_t timeout_ms = 0;
    bool answered = false;
    bool image_expected = false;
    bool image_arrived = false;
    Claim result;
  };
  struct PendingById {
    PushDone done;
    PeerId target = kNoPeer;
  };
  // A held publish's acknowledgement (a loop's DurableGate entry), or another peer's request
  // (a shared message passed on), waiting for the peers in `waiting`.
  struct PendingDurable {
    broker::DurableWait wait;
    PeerSet waiting;
  };
  // One peer's answer for `wait` (ok: durable there).
  void finish_durable(const broker::DurableWait& wait, bool ok);
  using Pending = std::variant<PendingClaim, PendingById, PendingDurable>;

  uint64_t add_pending(Pending p, uint32_t timeout_ms);
  void arm_deadline_timer(uint64_t due_ms);
  void run_deadlines(uint64_t fired_for_ms);
  std::optional<Pending> take_pending(uint64_t request);
  // `answer_may_come`: false when the request never left (its peer was down).
  void expire(uint64_t request, bool answer_may_come = true);
  // A claim that stopped waiting for its home's answer; under pending_mu_.
  void remember_late_claim(uint64_t request, const PendingClaim& c);
  // Under pending_mu_, for an answer whose claim is no longer pending: the id whose ticket the
  // broker settles now, if `f` answers a claim that stopped waiting and no session is still
  // to come with it (else the ticket waits for the session).
  std::optional<std::string> late_answer(const ClaimAnswer& f);
  // Under pending_mu_, for a session whose claim is no longer pending: the late answer's ticket
  // it takes, if the answer came first (0: none, or not yet: the answer settles it then).
  uint32_t late_session(const SessionImage& f);
  // Completes a claim once its answer and (if one is coming) the image are in.
  void maybe_finish_claim(uint64_t request);
  // `from` answered the DurablePublish `request` (`ok`: durable there; false: it never will
  // be known). False if `request` is not a durable one (another kind of reply).
  bool answer_durable(uint64_t request, PeerId from, bool ok);
  // The peers a publish goes to: every one for a retained message, else by interest.
  PeerSet publish_targets(const broker::Message& m) const;

  // The home of a client id, as the transport decides it (transport.h).
  PeerId home_of_id(std::string_view client_id) const {
    return transport_.home_of(client_id, client_key(client_id));
  }
  // Homes that follow the peers up (cluster nodes): the directory and the ids held here move
  // when `peer` comes up or goes down.
  void rehome_after_up();
  void rehome_after_down(PeerId peer);

  bool send(PeerId to, const Frame& f);
  bool send(PeerId to, SharedBytes frame);
  void schedule_interest_flush();
  void maybe_grow_interest();
  // With shared interest tables: writes this peer's update (an encoded snapshot or delta) to
  // its own column, before the peers are sent it.
  void write_own_column(const std::string& update);

  // Frame handlers.
  void on_hello(PeerId from, const Hello& f);
  void on_publish(PeerId from, const Publish& f);
  void on_durable_publish(PeerId from, const DurablePublish& f);
  // A publish from a peer that may be delivered here (topic and properties checked).
  bool acceptable(PeerId from, const MessageView& m);
  void on_claim(PeerId from, const ClaimRequest& f);
  void on_claim_answer(PeerId from, const ClaimAnswer& f);
  void on_surrender(PeerId from, const Surrender& f);
  void on_session_image(PeerId from, const SessionImage& f);
  void on_release(PeerId from, const Release& f);
  void on_register(PeerId from, const Register& f);
  void on_by_id(PeerId from, const ById& f);
  void on_reply(PeerId from, const Reply& f);
  void on_query(PeerId from, const Query& f);
  void on_shared_group_frame(PeerId from, const SharedGroup& f);
  void on_shared_deliver(PeerId from, const SharedDeliver& f);
  void on_interest(PeerId from, const InterestSnapshot& f);
  void on_interest(PeerId from, const InterestDelta& f);
  // An interest update from `origin` (through the hub or not); the hub queues it for the others.
  void on_interest_frame(PeerId origin, ByteView bytes, const Frame& f);
  void on_interest_relay(PeerId from, const InterestRelay& f);
  void on_interest_mark(PeerId from, const InterestMark& f);
  void on_interest_applied(PeerId from, const InterestApplied& f);
  // The hub's answers to subscribers whose relay every peer has applied (its own included).
  void send_answers(const std::vector<InterestAcks::Answer>& answers);
  static void resume_all(std::vector<InterestAcks::Resume> resumes);
  // The hub's side: updates to forward to every peer, sent together at most once an interval.
  void queue_relay(PeerId origin, ByteView frame);
  void flush_relay();

  // The home's side of a claim (from a peer, or this one).
  void home_claim(PeerId claimer, uint64_t request, std::string_view client_id, bool persistent);
  // The holder's side of a by-id request; the answer goes to `reply_to`.
  void execute_by_id(PeerId reply_to, uint64_t request, ByIdOp op, std::string_view client_id,
                     ByteView body);
  void reply(PeerId to, uint64_t request, ReplyStatus status);
  void finish_by_id(uint64_t request, ReplyStatus status);
  bool route_by_id(std::string_view client_id, ByIdOp op, std::string body, PushDone done);
  // Sends `peer` the client ids this process holds whose home it is.
  void enroll_at(PeerId peer);
  void sync_retained_from(PeerId peer);

  broker::Broker& broker_;
  Transport& transport_;
  const RouterOptions options_;
  const PeerId self_;
  const uint32_t peers_;
  uint64_t incarnation_;  // set at construction, or by continue_from() before any frame
  RouterStats stats_;

  const uint32_t interest_interval_ms_;
  std::atomic<uint64_t> last_flush_ms_{0};
  const PeerId hub_;  // kNoPeer: every peer sends its interest updates to every other
  std::mutex relay_send_mu_;  // one relay at a time: peers see the rounds in order
  std::mutex relay_mu_;
  std::string relay_entries_;
  uint16_t relay_count_ = 0;
  std::vector<std::pair<PeerId, uint64_t>> relay_marks_;  // subscribers' marks for the next round
  std::atomic<bool> relay_scheduled_{false};
  std::atomic<uint64_t> last_relay_ms_{0};
  LocalInterest local_;
  RemoteInterest remote_;
  InterestAcks acks_;
  std::atomic<bool> flush_scheduled_{false};
  // One flush at a time with shared tables: updates reach our column in the order taken.
  std::mutex own_column_mu_;
  // With shared tables: the generation our column in the shared region is current to.
  std::atomic<uint64_t> own_column_covers_{0};
  std::atomic<bool> growing_{false};

  mutable std::mutex dir_mu_;
  Directory directory_;
  std::vector<uint64_t> incarnations_;  // by peer, from its Hello (under dir_mu_)

  // Claim answers this home could not send: its link to the claimer was down while the
  // claimer's link to it was up (a worker that restarted, which the others redial only every
  // PeerMesh::kRedialMs). Sent when the link is up again, after the Hello, to the incarnation
  // that asked; dropped once older than any claim waits.
  struct HeldAnswer {
    PeerId to = kNoPeer;
    uint64_t incarnation = 0;
    uint64_t held_at_ms = 0;
    SharedBytes frame;
  };
  static constexpr size_t kMaxHeldAnswers = 1u << 16;
  std::mutex held_mu_;
  std::vector<HeldAnswer> held_answers_;
  void hold_answer(PeerId to, SharedBytes frame);
  void send_held_answers(PeerId to);
  // No claim waits longer than this: an answer held longer completes nothing.
  uint64_t answer_useful_ms() const noexcept;

  std::mutex pending_mu_;
  std::unordered_map<uint64_t, Pending> pending_;
  // Claims that stopped waiting before their home answered, by request (under pending_mu_):
  // the home may still make this peer the id's holder, and the session may still come. Only
  // claims that timed out are kept (a few per thousand in a login storm on a busy box); the
  // oldest go past kLateClaimsKept, and those of a home that restarted (it will not answer).
  struct LateClaim {
    std::string client_id;
    PeerId home = kNoPeer;
    uint32_t ticket = 0;       // the home's answer, when it came with a session still to come
    bool image_arrived = false;  // the session came before the answer
  };
  static constexpr size_t kLateClaimsKept = 16384;
  std::map<uint64_t, LateClaim> late_claims_;
  uint64_t next_request_ = 1;
  // Deadlines of pending requests (steady ms, request), earliest first; one timer for the head.
  std::priority_queue<std::pair<uint64_t, uint64_t>, std::vector<std::pair<uint64_t, uint64_t>>,
                      std::greater<>>
      deadlines_;
  std::atomic<uint64_t> timer_at_ms_{0};  // the armed timer's deadline; 0: none

  std::atomic<bool> retained_asked_{false};
  std::unique_ptr<std::atomic<uint32_t>[]> drain_marks_;  // by peer: the last DrainMark's epoch
};

}  // namespace tcpms::routing
