// DurableGate: output that may leave only once the store has what it acknowledges
// (persistence.sync = every-message). One per loop.
//
//   - PUBACK / PUBREC to a publisher: after the message is durable for every persistent
//     session it was routed to (the store ops of this loop, an echo from each other loop
//     that delivered it, carrying the last op that loop submitted for it, and an answer from
//     each other worker process it was sent to, given after that process's commit);
//   - the answer to another process for a publish it sent here (DurablePublish): after the
//     deliveries here are durable, the same way (it goes to the router, not a connection);
//   - PUBCOMP: after the inbound QoS 2 id's release is durable (else a restart would still
//     hold the id, and a new message reusing it would be taken for a duplicate);
//   - QoS 2 PUBLISH and PUBREL to a persistent session: after its packet id and state are
//     durable (else a restart could send the message again under another id, or resend a
//     PUBLISH after a PUBREL, and the client would deliver it twice).
//
// Answers to other processes go as soon as each is ready, in no order: one waiting behind a
// PUBACK could wait for ever (two processes each holding a PUBACK for the other's answer).
// Output for connections is released in the order it was held, across all of the loop's connections:
// ordering is what MQTT asks of acknowledgements on a connection [MQTT-4.6.0-2..4], and a
// connection's later packets of these kinds queue behind its held ones (once anything is held,
// everything of these kinds is). Output for a connection that closed meanwhile is dropped:
// what it acknowledged is redelivered from the store. An entry whose wait failed (a process
// asked never answered: it went down, or its link did) is not sent: its connection is closed
// instead, so the client sends the message again.
//
// Thread rules: its loop's thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <string>

#include "tcpms/conn_id.h"
#include "tcpms/event_loop.h"
#include "tcpms/shared_bytes.h"

namespace tcpms::broker {

class Broker;

class DurableGate {
 public:
  // Answers to other processes go through `broker`'s router.
  DurableGate(EventLoop& loop, Broker& broker) : loop_(loop), broker_(broker) {}

  // hold()'s `echoes` when the number of loops to answer is known only after routing.
  static constexpr uint32_t kUnknownEchoes = 0xFFFFFFFFu;

  bool empty() const noexcept { return held_.empty(); }
  // Whether anything is held for `conn` (a scan: for the upgrade handover, not per packet).
  bool holds(ConnId conn) const noexcept;
  size_t size() const noexcept { return held_.size(); }
  // Holds `head` (+ `body` by reference) for `conn` until the store is durable through
  // `wait_seq` and `echoes` other loops have answered. Returns the entry's token for echo().
  uint64_t hold(ConnId conn, ByteView head, const SharedBytes& body, uint64_t wait_seq,
                uint32_t echoes);
  // The same for the answer to process `peer`'s `request` (Router::durable_done).
  uint64_t hold_for_peer(uint16_t peer, uint64_t request, uint64_t wait_seq, uint32_t echoes);
  // Another loop delivered the message the entry `token` acknowledges; its store ops end at
  // `seq` (0: it stored nothing).
  void echo(uint64_t token, uint64_t seq);
  // One of the answers the entry `token` waits for will never come (counts as the answer): the
  // entry is not sent, its connection is closed when its turn comes.
  void fail(uint64_t token);
  // Routing is done: the entry `token` waits for the store through `wait_seq` and for `echoes`
  // answers in all (some may have come already).
  void complete(uint64_t token, uint64_t wait_seq, uint32_t echoes);
  // The store is durable through `durable`: sends what is ready, in order.
  void release(uint64_t durable);
  // The largest sequence anything held waits for (what to ask the store for).
  uint64_t wanted() const noexcept { return wanted_; }

 private:
  static constexpr uint16_t kNoPeer = 0xFFFF;
  struct Held {
    ConnId conn;
    std::string head;  // a few bytes: an ack, or a PUBLISH header
    SharedBytes body;
    uint64_t wait_seq;
    uint32_t echoes;        // answers expected (kUnknownEchoes until complete())
    uint32_t answered = 0;  // answers received
    uint64_t request = 0;      // for a peer: its request
    uint16_t peer = kNoPeer;   // kNoPeer: for `conn`
    bool failed = false;
    bool answered_peer = false;  // for a peer: its answer went (or was given up)
  };
  Held* find(uint64_t token);
  EventLoop& loop_;
  Broker& broker_;
  std::deque<Held> held_;
  uint64_t first_token_ = 1;  // token of held_.front()
  uint64_t durable_ = 0;
  uint64_t wanted_ = 0;
  size_t peers_waiting_ = 0;  // entries for peers not answered yet
};

}  // namespace tcpms::broker
