// MqttHandler: the engine Handler for MQTT 5.0, 3.1.1 and 3.1, one per loop. It owns the loop's
// topic tree and the sessions living on the loop, runs each connection's state machine, and
// delivers publishes matched on this loop.
//
// The handler's code is split by concern, one file each:
//   mqtt_handler.cc      engine callbacks, packet dispatch, protocol violations, DISCONNECT
//   connect.cc           CONNECT: checks, authentication, claiming the client id, CONNACK
//   loop_handover.cc     a session moving to the loop where its client reconnected
//   session_moves.cc     a session moving to or from another process (worker, node)
//   inbound.cc           PUBLISH and the acknowledgements from the client; publish rate
//   subscriptions.cc     SUBSCRIBE, UNSUBSCRIBE and the loop's topic tree
//   delivery.cc          a message through the broker: retained store, loops, router, the
//                        matching sessions, their QoS 1/2 windows and queues
//   packet_writer.cc     encoding what goes to a client
//   session_lifecycle.cc detach, reset, discard, wills, 5.0 expiry and delayed wills
//   control.cc           control-plane requests on this loop: push, kick, listings
//   shared_delivery.cc   shared subscriptions: one member of a group per message
//   persistence.cc       the persistent store: sessions read back at start-up, output held
//                        until durable (session_store.h, durable_gate.h)
//
// Connection::user_data is null before CONNECT, then a PendingConnect while the CONNECT waits
// (authentication on the worker pool, or a session coming from another loop), then the
// client's Session (session.h). Both start with a ConnStateKind byte.
//
// Delivery: a publish is matched against this loop's tree and posted once to every other
// loop with at least one subscription (a task carrying topic and payload as SharedBytes),
// which matches its own tree. Payloads are never copied per subscriber: each gets its own
// PUBLISH header and a reference to the payload (Connection::enqueue_shared), and all that one
// client receives in a loop iteration leaves in one write.
//
// Thread rules: everything runs on this handler's loop thread; other threads reach it only
// through EventLoop::post (see Broker).
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "broker/broker.h"
#include "broker/broker_stats.h"
#include "broker/durable_gate.h"
#include "broker/message.h"
#include "broker/message_props.h"
#include "broker/offline_timers.h"
#include "broker/session.h"
#include "broker/session_image.h"
#include "broker/session_store.h"
#include "broker/topic_tree.h"
#include "mqtt/codec.h"
#include "store/recovery.h"
#include "tcpms/connection.h"
#include "tcpms/event_loop.h"
#include "tcpms/handler.h"

namespace tcpms::broker {

struct PendingConnect;

// Counts the sessions a control-plane publish reaches on every loop: each loop it is posted to
// adds its count; the waiting thread is woken when the last one has.
class DeliveryTally {
 public:
  void expect() {
    std::lock_guard lock(mu_);
    ++pending_;
  }
  void add(size_t receivers) {
    std::lock_guard lock(mu_);
    receivers_ += receivers;
    if (pending_ > 0) --pending_;
    if (pending_ == 0) cv_.notify_all();
  }
  // Waits until every loop answered; false on timeout. `receivers` gets the count so far.
  bool wait(std::chrono::milliseconds timeout, uint64_t& receivers) {
    std::unique_lock lock(mu_);
    bool done = cv_.wait_for(lock, timeout, [&] { return pending_ == 0; });
    receivers = receivers_;
    return done;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  size_t pending_ = 1;  // the publishing loop itself
  uint64_t receivers_ = 0;
};

// Longest single loop timer; longer session expiries and will delays re-arm until due.
inline constexpr uint64_t kMaxLoopTimerMs = 1ull << 30;
// How often a publisher held for backed-up links (Router::links_backed_up) looks again.
inline constexpr uint32_t kLinkWaitMs = 2;

class MqttHandler final : public Handler {
 public:
  MqttHandler(Broker& broker, EventLoop& loop);
  ~MqttHandler() override;

  Action on_open(Connection& conn) override;
  DataResult on_data(Connection& conn, ByteView data) override;
  // A FIN without DISCONNECT: answer what is queued (a PUBACK, a SUBACK), then close; the will
  // still goes out, as for any loss without DISCONNECT. While the upgrade handover holds
  // input the connection is kept: its unread bytes (a DISCONNECT?) decide, once read.
  Action on_peer_shutdown(Connection& conn) override;
  Action on_timeout(Connection& conn) override;
  void on_writable(Connection& conn) override;
  // Server is stopping: a 5.0 client hears DISCONNECT 0x8B first.
  Action on_shutdown(Connection& conn) override;
  void on_close(Connection& conn, CloseReason reason) override;
  // The upgrade handover (upgrade_handover.cc, docs/upgrade.md).
  bool export_state(Connection& conn, std::string& state) override;
  bool import_state(Connection& conn, ByteView state) override;
  void on_handed_over(Connection& conn) override;
  void hold_input_for_handover(bool hold) override;
  // Output waits for the store (every-message: DurableGate); such a connection cannot move.
  bool holds_durable_output() const noexcept { return gate_ && !gate_->empty(); }
  // The upgrade handover's state on no connection (State frame items, connection_image.h):
  // this loop's offline sessions appended to `items`; one installed here (decoded here; false
  // when refused); a retained message installed (in the broker, and in this loop's store).
  void export_offline_sessions(std::vector<std::string>& items);
  // Once every connection that can move is parked: those that cannot (TLS, WebSocket, a
  // CONNECT being decided, DISCONNECT received) are closed, their sessions left offline here
  // so that they travel with the offline sessions.
  void close_what_cannot_move();
  bool import_offline_session(ByteView item);
  bool import_retained(ByteView item);

  EventLoop& loop() noexcept { return loop_; }
  const BrokerStats& stats() const noexcept { return stats_; }
  // Read by other loops to skip this one when it has no subscription at all.
  bool has_subscriptions() const noexcept {
    return subscription_count_.load(std::memory_order_relaxed) != 0;
  }
  // Read by other loops: false when no subscription here can match `topic`.
  bool may_match(std::string_view topic) const noexcept {
    return has_subscriptions() && tree_.summary().may_match(topic);
  }

  // --- loop-thread entry points (run through EventLoop::post by Broker and other loops) ---
  // A message entering the broker on this loop: retained store, local delivery, other loops,
  // then the router (unless it came from the router). `origin`: the publishing session,
  // compared (never dereferenced) for No Local [MQTT-3.8.3-3].
  // `tally` (control-plane publishes only) counts the sessions reached on every loop.
  void route(const Message& m, bool from_remote, const Session* origin = nullptr,
             const std::shared_ptr<DeliveryTally>& tally = {});
  // Match on this loop's tree and deliver; returns the number of sessions it went to.
  // `m.retain` is kept only for Retain As Published subscriptions [MQTT-3.3.1-12].
  size_t deliver_local(const Message& m, const Session* origin = nullptr);

  // The same for a client's QoS 1/2 publish whose acknowledgement is held in this loop's
  // DurableGate as `ack_token`: each other loop that delivers it answers (gate_echo) with the
  // last store op it submitted, and each other process it is sent to answers once its store
  // has it (Router::on_local_publish_held; gate_answer). Returns how many were asked.
  // `from_remote`: a publish another process sent here (not routed again).
  uint32_t route_held(const Message& m, const Session* origin, uint64_t ack_token,
                      bool from_remote = false);
  // A publish process `peer` sent with a DurablePublish `request`: delivered as route() does,
  // and answered (Router::durable_done) once what this process stored for it is durable.
  void route_for_peer(const Message& m, uint16_t peer, uint64_t request);

  // --- control plane (control.cc), posted by Broker ---
  SendResult push_to_client(std::string_view client_id, Session* s, const Message& m);
  // A message for `member` of shared group `group` (picked here or on another loop or
  // process): to it if it can take it now, else to the next member (`tried` so far). `wait`
  // is answered once, where the message ends (answer_wait). `from_peer`: another process
  // picked this one for it; if no member here can take it now it stays with `member` rather
  // than crossing again (else members offline everywhere would pass it back and forth).
  void deliver_shared(uint32_t group, const SharedGroups::Member& member, const Message& m,
                      uint32_t tried, const DurableWait& wait = {}, bool from_peer = false);
  void kick(std::string_view client_id, Session* s);
  void collect_clients(std::vector<ClientInfo>& out);
  // The details of `s` (registered as `client_id` on this loop); nullopt if it moved or ended.
  std::optional<ClientInfo> describe_client(std::string_view client_id, Session* s,
                                            bool with_subscriptions);
  SessionDeleteResult delete_session(std::string_view client_id, Session* s);
  // See Broker::find_subscriptions; appends at most `limit` to `out`.
  void collect_subscriptions(std::string_view filter, bool match_topic, size_t limit,
                             std::vector<SubscriptionInfo>& out);
  void publish_sys();

  // Session handover between loops (client_registry.h describes the protocol).
  struct Handover;
  // On the new loop: asks the session's loop to let it go.
  Action start_handover(Connection& c, PendingConnect* p, const RegistryEntry& entry);
  void handover_request(std::shared_ptr<Handover> h);   // on the owning loop
  void handover_attach(std::shared_ptr<Handover> h);    // on the new loop
  void handover_retry(ConnId conn, PendingConnect* p);  // back on the new loop
  void handover_superseded(ConnId conn, PendingConnect* p);  // back on the new loop

  // Sessions moving between processes (session_image.h): the holder's side of a claim made
  // elsewhere (Broker::surrender_session), and a late image kept here (Broker::adopt_session).
  // Each runs on the loop the registry names for the id.
  void surrender_session(const std::string& client_id, Session* s, uint32_t ticket,
                         bool want_image, std::shared_ptr<Broker::SessionDoneOnce> done);
  void adopt_session(const std::string& client_id, std::string image, uint32_t ticket);
  // Calls on_filter(filter) for each filter of this loop's tree (the router's interest).
  void walk_filters(const std::function<void(std::string_view)>& on_filter);

  // --- the persistent store (persistence.cc) ---
  // Sessions read back at start-up, installed before the loop runs (main thread, from the
  // constructor: nothing else touches this loop yet).
  void install_recovered(std::vector<store::RecoveredSession>& sessions);
  // After start-up: the router hears of every session recovered here (kept, offline).
  void announce_recovered();
  // The store is durable through `durable` (posted by the store thread).
  void on_durable(uint64_t durable);
  // Another loop delivered a held publish (route_held).
  void gate_echo(uint64_t token, uint64_t seq);
  // Another process asked for a held publish answered: durable there (`ok`), or it never will
  // (then the publisher's connection is closed instead of acknowledged).
  // `seq`: the last store op of the loop that delivered it, when in this process.
  void gate_answer(uint64_t token, bool ok, uint64_t seq = 0);
  uint64_t store_last_seq() const noexcept { return store_ ? store_->last_seq() : 0; }

 private:
  // --- input (mqtt_handler.cc) ---
  size_t process(Connection& c, ByteView data, Action& action);
  Action handle_packet(Connection& c, const mqtt::FixedHeader& h, mqtt::Bytes body);
  // Closes for a protocol violation; a 5.0 client gets DISCONNECT `code` first (4.13).
  Action violation(Connection& c, const char* what,
                   mqtt::ReasonCode code = mqtt::ReasonCode::kProtocolError);
  Action handle_disconnect(Connection& c, Session& s, mqtt::Bytes body);
  // Runs the outcome of work that finished off the input path (authentication, a session
  // arriving): close, or resume reading.
  void after_async(Connection& c, Action a);

  // --- CONNECT (connect.cc) ---
  Action handle_connect(Connection& c, mqtt::Bytes body);
  Action continue_connect(Connection& c, PendingConnect* p);
  Action attach(Connection& c, Session* s, PendingConnect* p, bool session_present);
  void send_connack_success(Connection& c, Session& s, bool present, bool assigned_id);

  // --- sessions from other processes (session_moves.cc) ---
  // The router's answer to this CONNECT's claim (on this loop).
  void claim_done(ConnId conn, PendingConnect* p, const std::string& client_id,
                  Router::Claim result);
  // A claim's outcome when no connection takes it (gone, or refused): what it brought is kept
  // or handed back so that no session is lost.
  void settle_claim_without_connection(const std::string& client_id, Router::Claim r);
  // A CONNECT that lost the race for its id at the router (a newer connection claimed it
  // meanwhile): CONNACK, then closed as taken over.
  Action superseded_connect(Connection& c, PendingConnect* p);
  // Installs a session that came from another process; false (nothing installed) if the
  // image does not decode.
  bool install_image(Session& s, const std::string& image);
  std::string encode_image(Session& s);
  // The session as an image; queued messages past `max_bytes` (all of the image) are left
  // out, counted and logged.
  SessionImage image_of(Session& s, size_t max_bytes);
  void import_image(Session& s, SessionImage& image);

  // --- PUBLISH and acknowledgements from the client (inbound.cc) ---
  Action handle_publish(Connection& c, Session& s, const mqtt::FixedHeader& h, mqtt::Bytes body);
  Action handle_ack(Connection& c, Session& s, mqtt::PacketType type, mqtt::Bytes body);
  // Per-client publish rate: takes the tokens, or pauses reading and schedules a resume.
  bool admit_publish(Connection& c, Session& s, size_t bytes);
  // The links to other processes are backed up (Router::links_backed_up): pauses reading
  // and looks again shortly; false then. Checked before the rate, which takes tokens.
  bool links_admit_publish(Connection& c);
  // Reading from `c` was paused: present its input again (or read on) after `ms`.
  void resume_reading_after(Connection& c, uint32_t ms);
  // 5.0 PUBLISH properties: the forwarded part as shared bytes, the expiry as a deadline.
  MessageProps message_props(mqtt::Properties in, uint64_t now_ms);

  // The authorizer's answer for a PUBLISH topic or SUBSCRIBE filter. kPending: reading
  // pauses and replay_packet_ is set, so the packet is read again once the answer is in.
  Decision authorize(Connection& c, Session& s, AclAction action, std::string_view topic);

  // --- subscriptions (subscriptions.cc) ---
  Action handle_subscribe(Connection& c, Session& s, mqtt::Bytes body);
  Action handle_unsubscribe(Connection& c, Session& s, mqtt::Bytes body);
  // A SUBACK and the retained messages that follow it [MQTT-3.3.1-6]. With other processes it
  // waits (reading paused) until they know the new filters (Router::when_filters_known), so
  // that a publish anywhere after the SUBACK reaches the subscriber.
  struct SubackReply {
    uint16_t packet_id = 0;
    std::vector<std::byte> codes;
    std::vector<RetainedMessage> retained;
    struct Granted {
      size_t first, count;
      mqtt::QoS qos;
    };
    std::vector<Granted> granted;
    SharedBytes sub_id_props;
  };
  void send_suback(Connection& c, Session& s, SubackReply& r);
  // The held SUBACK of connection `id`, once the other processes know its filters.
  void send_held_suback(ConnId id, SubackReply& r);
  bool subscribed_to(Session& s, std::string_view filter) const;
  // Subscriptions of the session, shared ones included.
  uint32_t subscription_total(const Session& s) const noexcept;
  void add_subscription(Session& s, std::string_view filter, mqtt::QoS qos, bool* replaced,
                        uint8_t options = 0, uint32_t subscription_id = 0);
  void remove_subscriptions(Session& s);
  void update_subscription_count();

  // --- shared subscriptions (shared_delivery.cc) ---
  // True when the session was a member already (QoS and options replaced).
  bool add_shared(Session& s, std::string_view share, std::string_view filter, mqtt::QoS qos,
                  uint8_t options, uint32_t subscription_id);
  bool remove_shared(Session& s, std::string_view share, std::string_view filter);
  void leave_group(Session& s, const SharedSub& sub);
  void leave_all_shared(Session& s);
  // Connected, not backlogged, and (QoS 1/2) with room in its window and nothing queued.
  bool available_for(Session& s, mqtt::QoS qos);
  void dispatch_shared(const SharedGroups::Choice& c, const Message& m, uint32_t tried,
                       const DurableWait& wait = {}, bool from_peer = false);
  // Where a held shared message ends: `wait` is answered (delivered here: once this loop's
  // store writes for it are durable; else at once, as nothing was stored).
  void answer_wait(const DurableWait& wait, bool delivered_here);
  // A member leaving or going offline: its queued and QoS 1 in-flight messages of its groups
  // (or of `only_group`) go to other members, if there are any. A stored one is handed off:
  // its stored copy stays until the member taking it has its own (handoff_answered).
  void redistribute_shared(Session& s, uint32_t only_group);
  // The answer for hand-off `token` (DurableWait::for_handoff): `ok`, the member that took it
  // has its copy (submitted to this process's store, which commits in submission order, or
  // committed by another process), so the leaving member's copy goes; else it comes back to
  // that member (or, if its session is no longer on this loop, to the group).
  void handoff_answered(uint64_t token, bool ok);
  // One member per matching group, for a publish entering here. Returns how many groups; each
  // answers `wait` once (answer_wait).
  uint32_t route_shared(const Message& m, const DurableWait& wait = {});

  // --- output (packet_writer.cc) ---
  template <typename Packet>
  void send_packet(Connection& c, const Packet& p, mqtt::ProtocolVersion v, mqtt::PacketType t);
  // `code` is a 3.1.1 return code; a 5.0 client gets its 5.0 equivalent (0x02 -> 0x85, ...).
  // `client_max_packet_size`: the CONNECT's Maximum Packet Size (0: none); a CONNACK over it
  // is not sent [MQTT-3.1.2-24].
  void send_connack(Connection& c, mqtt::ProtocolVersion v, bool present, uint8_t code,
                    uint32_t client_max_packet_size = 0);
  void send_connack_v5(Connection& c, bool present, mqtt::ReasonCode code,
                       mqtt::Properties props = {}, uint32_t client_max_packet_size = 0);
  // False (and the connection closing) when a packet of `packet_bytes` would exceed the
  // client's Maximum Packet Size [MQTT-3.1.2-24]; send_packet asks before every packet.
  bool fits_client(Connection& c, size_t packet_bytes);
  void send_disconnect(Connection& c, mqtt::ReasonCode code);  // 5.0 only
  void send_ack(Connection& c, Session& s, mqtt::PacketType t, uint16_t id,
                mqtt::ReasonCode code = mqtt::ReasonCode::kSuccess);
  // False when nothing was sent: the message expired [MQTT-3.3.2-5] (unless `how.resend`) or
  // is bigger than the client's Maximum Packet Size [MQTT-3.1.2-25].
  bool send_publish(Connection& c, Session& s, const Message& m, const SharedBytes& sub_ids,
                    PublishSend how);

  // --- delivery (delivery.cc) ---
  // Whether a message may start onward delivery to `s`: not expired, not too big for it.
  bool deliverable(Session& s, const OutMessage& m);
  size_t window(const Session& s) const noexcept;
  // `granted`: min(publish QoS, subscription QoS); `retain_flag`: the RETAIN bit it gets;
  // `sub_ids`: the Subscription Identifiers of the subscriptions that matched, as properties.
  // `shared_group`: the shared subscription group it came through (0: none).
  void deliver(Session& s, const Message& m, mqtt::QoS granted, bool retain_flag,
               const SharedBytes& sub_ids = {}, uint32_t shared_group = 0);
  void queue_message(Session& s, OutMessage m);
  // Into the window with a fresh packet id, and sent.
  void start_inflight(Connection& c, Session& s, OutMessage m);
  void pump(Session& s);
  void resend_inflight(Session& s);

  // --- session lifecycle (session_lifecycle.cc) ---
  // `why` goes to the disconnect log line (ClientLog).
  void detach_connection(Session& s, bool publish_will, std::string_view why);
  // Why a connection is about to close, for its disconnect log line: set where the handler
  // decides (violation, keep-alive, kick), read and erased in on_close. Entries live only
  // until the loop's closing phase.
  void note_close(Connection& c, const char* why);
  std::string_view close_reason_text(Connection& c, Session& s, CloseReason reason);
  void note_login_timeout(std::string_view client_id, std::string_view waiting);
  void reset_session(Session& s);
  // The session ends here: out of the tree and the registry, the router told, freed; a will
  // still delayed goes out [MQTT-3.1.3-9].
  void discard_session(Session* s);
  void publish_will(std::unique_ptr<Will> will);
  // A delayed will goes out when its session ends [MQTT-3.1.3-9].
  void flush_delayed_will(Session& s);
  // A new connection for the id arrived before the will delay ran out [MQTT-3.1.3-9].
  void drop_delayed_will(Session& s);
  // 5.0 session expiry and will delay while offline (OfflineTimers); a reconnect disarms.
  void arm_offline_timers(Session& s);
  void arm_offline_loop_timer();
  void run_offline_timers();
  // A new connection for the session's client id is opening: closes the session's connection
  // as a takeover (its will goes out, unless it has a Will Delay [MQTT-3.1.2-8]; what was
  // queued for it, a CONNACK included, is flushed first), drops a will still waiting for its
  // delay, and leaves the session offline whatever its CleanSession, so the caller decides
  // what becomes of it.
  void take_over(Session& s);

  // --- the persistent store (persistence.cc) ---
  // Output that must wait until the store has what it acknowledges (every-message sync):
  // whether there is such a wait on this loop, and holding `head` (+ `body`) in the gate.
  bool holds_output() const noexcept { return gate_ != nullptr; }
  // Holds (or sends at once when nothing waits) what `c` gets; returns the gate's token.
  uint64_t hold_output(Connection& c, ByteView head, const SharedBytes& body, uint32_t echoes);
  void ask_store_for_gate();
  // A PUBACK/PUBREC/PUBREL/PUBCOMP sent through the gate when holds_output().
  void send_ack_after_store(Connection& c, Session& s, mqtt::PacketType t, uint16_t id,
                            mqtt::ReasonCode code = mqtt::ReasonCode::kSuccess);
  void install_one(store::RecoveredSession& r);
  // Writes all of a persistent session that is not in the store yet (it came from another
  // process, or just became persistent): record, subscriptions, messages, inbound ids.
  void store_whole_session(Session& s);

  // Receive Maximum we announce: inbound QoS 2 publishes awaiting PUBREL (QoS 1 is
  // acknowledged at once). The same number as our outbound window, as Mosquitto does.
  uint16_t server_receive_maximum() const noexcept {
    return std::max<uint16_t>(1, cfg_.max_inflight);
  }

  Broker& broker_;
  EventLoop& loop_;
  const BrokerConfig& cfg_;
  const bool rate_limited_;  // mqtt.client_messages_per_s or client_bytes_per_s set
  const uint32_t pos_;       // this loop's position among the process's loops
  TopicTree tree_;
  BrokerStats stats_;
  std::atomic<size_t> subscription_count_{0};
  OfflineTimers offline_timers_;
  uint64_t last_login_timeout_log_ms_ = 0;  // note_login_timeout: one line per 10 s at most
  uint64_t login_timeouts_unlogged_ = 0;
  uint64_t offline_timer_at_ms_ = 0;  // when the loop timer armed for offline_timers_ fires
  uint32_t epoch_ = 0;
  struct Match {
    Session* s;
    mqtt::QoS qos;
    bool retain;  // a Retain As Published subscription matched and the publish had RETAIN
  };
  std::vector<Match> matches_;
  std::vector<std::pair<uint32_t, uint32_t>> match_ids_;  // (index in matches_, subscription id)
  std::vector<std::byte> scratch_;
  std::vector<std::byte> props_scratch_;
  std::vector<RetainedMessage> retained_scratch_;
  std::unordered_map<uint64_t, const char*> close_notes_;  // ConnId -> why (see note_close)
  std::string close_text_;
  // Set by a PUBLISH or SUBSCRIBE whose authorization is being fetched: process() gives the
  // packet back to the engine (reading paused) so that it is read again once the answer is in.
  bool replay_packet_ = false;
  // Set by a SUBSCRIBE whose SUBACK is held: process() leaves what follows it to the engine
  // (reading paused) until the SUBACK has gone.
  bool stop_after_packet_ = false;
  // The upgrade handover holds all input (hold_input_for_handover): the connections whose
  // bytes were kept meanwhile, presented again if it is rolled back.
  bool held_for_handover_ = false;
  std::vector<ConnId> held_conns_;
  // Persistence (null without persistence.dir): this loop's link to the store, and, under
  // every-message sync, the output held until durable.
  std::unique_ptr<SessionStore> store_;
  std::unique_ptr<DurableGate> gate_;
  uint32_t store_listener_ = 0;
  std::vector<std::string> recovered_ids_;  // announced to the router once running
  // Shared messages handed from a stored member to another, by hand-off id, until answered
  // (redistribute_shared). `session` is only compared with the registry's, never
  // dereferenced unless the registry says this loop still owns it.
  struct HandOff {
    std::string client_id;
    Session* session;
    OutMessage message;  // with its stored copy's ids
    uint32_t group;
  };
  std::unordered_map<uint64_t, HandOff> handoffs_;
  uint64_t next_handoff_ = 1;
};

// The upgrade handover's State items for the retained messages ($SYS/ aside: the new process
// publishes its own). Any thread.
void export_retained(const Broker& broker, std::vector<std::string>& items);

// The first byte of Connection::user_data says what it points to.
inline ConnStateKind kind_of(void* user) { return *static_cast<const ConnStateKind*>(user); }
// The session of a connection past its CONNACK, else null.
inline Session* session_of(Connection& c) {
  void* user = c.user_data();
  return user != nullptr && kind_of(user) == ConnStateKind::kSession ? static_cast<Session*>(user)
                                                                      : nullptr;
}
template <typename Packet>
void MqttHandler::send_packet(Connection& c, const Packet& p, mqtt::ProtocolVersion v,
                              mqtt::PacketType t) {
  size_t n = mqtt::encoded_size(p, v);
  if (n == 0 || !fits_client(c, n)) return;
  scratch_.resize(std::max(scratch_.size(), n));
  n = mqtt::encode(p, v, mqtt::OutBytes(scratch_.data(), n));
  // enqueue: everything for this client in one loop iteration leaves in one write.
  c.enqueue(ByteView(scratch_.data(), n));
  stats_.packets_out[static_cast<uint8_t>(t) & 15].add();
}

inline bool is_sys_topic(std::string_view t) { return t.starts_with("$SYS/") || t == "$SYS"; }
inline mqtt::QoS min_qos(mqtt::QoS a, mqtt::QoS b) {
  return static_cast<uint8_t>(a) < static_cast<uint8_t>(b) ? a : b;
}

}  // namespace tcpms::broker
