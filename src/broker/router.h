// Router: how messages and client ids cross to other processes (the worker processes of one
// server, the nodes of a cluster). The broker core calls these hooks and nothing else; the
// default routes nowhere, so a single process works with no configuration. The one real
// implementation is routing::PeerRouter (src/routing), over a transport per kind of peer.
//
// Thread rules: hooks are called on loop threads, concurrently from several loops: an
// implementation must be thread-safe. Calls into the broker go through Broker's thread-safe
// entry points (deliver_remote, surrender_session, send_to_local_client, ...).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "broker/message.h"
#include "mqtt/types.h"
#include "tcpms/shared_bytes.h"

namespace tcpms::broker {

// Who waits until a message is durable where it is delivered (persistence.sync =
// every-message): a loop's held acknowledgement (DurableGate token), or another process's
// request (answered with Router::durable_done), or nobody.
struct DurableWait {
  static constexpr uint16_t kNoPeer = 0xFFFF;
  uint32_t loop = 0;
  uint64_t token = 0;  // 0: no loop waits
  uint16_t peer = kNoPeer;
  uint64_t request = 0;
  // A token with this bit names no DurableGate entry but a shared message that a member
  // leaving loop `loop` handed to another (MqttHandler::redistribute_shared): that loop keeps
  // the message's stored copy until the answer says the member taking it has its own. The
  // router carries it as any loop's token (Broker::durable_answered).
  static constexpr uint64_t kHandOff = uint64_t{1} << 63;
  static DurableWait for_loop(uint32_t loop, uint64_t token) { return {loop, token, kNoPeer, 0}; }
  static DurableWait for_peer(uint16_t peer, uint64_t request) { return {0, 0, peer, request}; }
  static DurableWait for_handoff(uint32_t loop, uint64_t id) {
    return {loop, id | kHandOff, kNoPeer, 0};
  }
  bool loop_waits() const noexcept { return token != 0; }
  bool peer_waits() const noexcept { return peer != kNoPeer; }
  bool any() const noexcept { return loop_waits() || peer_waits(); }
  bool is_handoff() const noexcept { return (token & kHandOff) != 0; }
};

class Router {
 public:
  virtual ~Router() = default;

  // --- where publishes go -----------------------------------------------------------------
  virtual bool wants_filter_events() const { return false; }
  // Loop `loop` (its position, 0 .. threads-1) has its first subscriber on `filter` / lost
  // its last. Several loops with one filter each report it.
  virtual void on_filter_added(std::string_view filter, uint32_t loop) {}
  virtual void on_filter_removed(std::string_view filter, uint32_t loop) {}
  // Runs `resume` (on any thread, exactly once) when every other process has applied the
  // filters this one has now, so that a publish anywhere after it reaches their subscribers:
  // a SUBACK waits for it. False when they have already (or there is nobody to tell): then
  // `resume` is dropped and the caller goes on at once.
  virtual bool when_filters_known(std::function<void()> resume) { return false; }
  // A publish from a local client (or the control plane), after local delivery. A remote
  // publish arriving is handed to Broker::deliver_remote, which does not call this again.
  virtual void on_local_publish(const Message& m) {}
  // True while the links to other processes have more waiting than they can take: the loop
  // stops reading a publisher (TCP pushes back on it) until this clears, instead of the
  // links dropping what a publish sends them. Asked before each PUBLISH.
  virtual bool links_backed_up() const { return false; }
  // on_local_publish for a client's QoS 1/2 publish whose acknowledgement loop `loop` holds
  // (DurableGate entry `token`, persistence.sync = every-message) until every process it goes
  // to has made it durable. Returns how many processes were asked; each of them is answered
  // exactly once through Broker::durable_answered(loop, token, ok), with ok false when no
  // answer came (the process went down, or the time ran out).
  virtual uint32_t on_local_publish_held(const Message& m, uint32_t loop, uint64_t token) {
    on_local_publish(m);
    return 0;
  }
  // The receiving side: what process `peer` asked for under `request` is durable here (or was
  // not stored: nothing here needed it).
  virtual void durable_done(uint16_t peer, uint64_t request) {}

  // --- client ids across processes --------------------------------------------------------
  // True when a CONNECT claims its client id here before its CONNACK, so that the newest
  // connection anywhere wins [MQTT-3.1.4-2] and a session follows its client.
  virtual bool claims_client_ids() const { return false; }
  struct Claim {
    // This connection's place in the order of the id's connections (0: not registered, the
    // router could not ask). The session keeps it; a request to give the session up names
    // the ticket it is for, so a stale request never touches a newer session.
    uint32_t ticket = 0;
    // Another process held the id: a session of it here is stale (it was given up there).
    bool elsewhere = false;
    // The session that process gave up (broker/session_image.h), for a persistent CONNECT.
    std::optional<std::string> image;
    // The id's home, or the process that held the id, did not answer in time: what this
    // claim says is incomplete (no ticket if the home was silent; no session if the holder
    // was), and the id's stored session may still be elsewhere.
    bool timed_out = false;
  };
  using ClaimDone = std::function<void(Claim)>;
  // `persistent`: the CONNECT wants its stored session (3.x CleanSession 0, 5.0 Clean Start 0).
  // `done` runs exactly once, on any thread.
  virtual void claim(std::string_view client_id, bool persistent, ClaimDone done) { done({}); }
  // The session registered under `ticket` ended in this process (closed clean, discarded,
  // expired, given up).
  virtual void release(std::string_view client_id, uint32_t ticket) {}
  // A session that this process holds without having claimed it (adopted from a late image,
  // recovered from disk): registered unless the id is held elsewhere (then it is given up).
  virtual void enroll(std::string_view client_id, uint32_t ticket) {}

  // Push to a client that is not in this process. True if routed somewhere; then `done`
  // (when set) runs exactly once, on any thread, with what became of it.
  enum class PushOutcome : uint8_t {
    kHeld,          // a process holding that client id took it
    kQueued,        // the process that holds it queued it in the client's offline session
    kNoSuchClient,  // no process holds that id
    kUnknown,       // routed, but no answer came in time
  };
  using PushDone = std::function<void(PushOutcome)>;
  virtual bool push_to_client(std::string_view client_id, const Message& m, PushDone done) {
    return false;
  }
  // Disconnects a client that is not in this process. True if routed; `done` as above.
  virtual bool kick_client(std::string_view client_id, PushDone done) { return false; }

  // --- shared subscriptions (shared_groups.h) ---------------------------------------------
  // This process has its first member of the group / lost its last: the others pick it (or
  // stop picking it) for the group's messages.
  virtual void on_shared_group(std::string_view share, std::string_view filter, bool joined) {}
  // A message for one member of the group, picked to be in process `peer` (an id the router
  // gave in SharedGroups::set_remote). `hops`: how many processes it passed already.
  virtual void shared_deliver(uint16_t peer, std::string_view share, std::string_view filter,
                              const Message& m, uint8_t hops) {}
  // The same for a message `wait` waits for (a held acknowledgement's, every-message): true if
  // sent, and then exactly one answer follows, once it is durable where the group delivered
  // it (Broker::durable_answered for a loop, durable_done to a process); false: sent as
  // shared_deliver or not at all, no answer follows.
  virtual bool shared_deliver_held(uint16_t peer, std::string_view share, std::string_view filter,
                                   const Message& m, uint8_t hops, const DurableWait& wait) {
    shared_deliver(peer, share, filter, m, hops);
    return false;
  }
};

}  // namespace tcpms::broker
