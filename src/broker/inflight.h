// SessionQueues: the QoS 1/2 state of one session (3.1.1 §4.3, §4.4): messages sent and not yet
// acknowledged (the in-flight window, in send order), messages waiting for room (window full,
// slow consumer, or client offline), and the packet ids of inbound QoS 2 messages awaiting
// PUBREL. A session allocates it on first need and frees it once everything is empty, so an
// idle client owns none.
//
// Thread rules: owned by one session, used only on that session's loop thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

#include "broker/message.h"
#include "mqtt/types.h"
#include "tcpms/shared_bytes.h"

namespace tcpms::broker {

// One outbound message to one subscriber: the message as this subscriber gets it (qos and
// retain are its granted QoS and the RETAIN flag it is sent with), plus its delivery state.
// Topic, payload and properties stay shared with every other subscriber (SharedBytes).
struct OutMessage : Message {
  enum class State : uint8_t {
    kQueued,       // not sent yet
    kWaitPuback,   // QoS 1 sent
    kWaitPubrec,   // QoS 2 sent
    kWaitPubcomp,  // QoS 2: PUBREC received, PUBREL sent; payload released
  };
  // This subscriber's matching Subscription Identifiers, encoded as properties (5.0; empty
  // unless its subscriptions have ids).
  SharedBytes sub_ids;
  uint16_t packet_id = 0;
  State state = State::kQueued;
  // The shared subscription group it came through (SharedGroups id; 0: none): if this member
  // leaves before it is acknowledged, another member of the group gets it.
  uint32_t shared_group = 0;
  // In the persistent store (session_store.h): this copy's ref and the body it names (0: not
  // stored). 16 bytes per queued or in-flight message, nothing per client.
  uint64_t store_seq = 0;
  uint64_t store_body = 0;

  OutMessage() = default;
  OutMessage(const Message& m, mqtt::QoS granted, bool retain_flag, SharedBytes ids = {})
      : Message(m), sub_ids(std::move(ids)) {
    qos = granted;
    retain = retain_flag;
  }
};

// Bytes one queued or in-flight message may keep alive: its entry (the container's share
// included) and every buffer it references, each in full with the allocator's overhead. Topic,
// payload and properties are shared with the other subscribers of the same publish, but any one
// session may end up the last to hold them, so each session that holds one is charged for it:
// the charges bound the memory from above (a payload shared by 10,000 queues is one payload in
// memory and 10,000 charges). A QoS 2 message past PUBREC holds only its entry.
size_t held_bytes_of(const OutMessage& m) noexcept;

class SessionQueues {
 public:
  bool idle() const noexcept { return inflight_.empty() && queued_.empty() && incoming_.empty(); }

  // --- outbound ---------------------------------------------------------------------------
  bool window_has_room(size_t window) const noexcept { return inflight_.size() < window; }
  size_t inflight_count() const noexcept { return inflight_.size(); }
  // Moves `m` into the window with a fresh packet id (never 0, never one in use
  // [MQTT-2.3.1-2]) and the state that awaits its first acknowledgement. Not checked against
  // the byte bound: the caller asked admits() (a message from the queue was admitted there).
  OutMessage& start(OutMessage m);
  // Acknowledgements. Each returns false when no entry with that id is in the matching state
  // (a duplicate or unknown ack, which 3.1.1 lets us ignore; wrong_ack() tells the ones that
  // are violations).
  bool on_puback(uint16_t packet_id);    // QoS 1 done [MQTT-4.3.2-1]
  bool on_pubrec(uint16_t packet_id);    // QoS 2: -> kWaitPubcomp; payload dropped [MQTT-4.3.3-1]
  bool on_pubcomp(uint16_t packet_id);   // QoS 2 done
  // True when `type` (PUBACK, PUBREC or PUBCOMP) names a message in flight at a stage of its
  // handshake that type cannot acknowledge: PUBREC or PUBCOMP for QoS 1, PUBACK for QoS 2,
  // PUBCOMP before our PUBREL. A protocol violation [MQTT-4.8.0-1]. An id not in flight is not
  // (a late duplicate, e.g. after a reconnect), nor is a PUBREC repeated after our PUBREL.
  bool wrong_ack(mqtt::PacketType type, uint16_t packet_id) const noexcept;
  // Gives up on an in-flight message whatever its state (it can no longer be sent to this
  // client: over the Maximum Packet Size its new connection announced).
  bool abandon(uint16_t packet_id);
  std::vector<OutMessage>& inflight() noexcept { return inflight_; }
  // The in-flight message with this packet id (null: none).
  OutMessage* find_inflight(uint16_t packet_id) noexcept { return find(packet_id); }

  // Whether `m` may join this session's messages, queued or in flight, within `max_bytes` of
  // held_bytes_of() for all of them together (0: no byte bound). A session holding none admits
  // any one message, so a message larger than the bound still gets through, alone.
  bool admits(const OutMessage& m, size_t max_bytes) const noexcept;
  // Waiting messages (FIFO). False when full (by count, or admits() says no): the caller
  // counts the drop.
  bool enqueue(OutMessage m, size_t max_messages, size_t max_bytes);
  bool has_queued() const noexcept { return !queued_.empty(); }
  size_t queued_count() const noexcept { return queued_.size(); }
  // held_bytes_of() every message queued or in flight, summed.
  size_t held_bytes() const noexcept { return held_bytes_; }
  OutMessage pop_queued();
  OutMessage& last_queued() noexcept { return queued_.back(); }
  // Drops everything (clean session reset); returns how many queued messages went.
  size_t clear();
  // Moves out the messages of shared subscription group `group` that another member may take
  // instead (5.0 §4.8.2): the queued ones (never sent) and QoS 1 ones in flight. A QoS 2
  // message sent to this member stays: it must finish with this client, never go to another.
  // `inflight` gets how many of those moved out were in flight.
  void take_shared(uint32_t group, std::vector<OutMessage>& out, size_t& inflight);
  // The shared subscription groups of the messages held here (distinct, unordered).
  std::vector<uint32_t> shared_groups() const;

  // --- inbound QoS 2 (method B: deliver on PUBLISH, remember the id until PUBREL) ---------
  bool incoming_seen(uint16_t packet_id) const noexcept;
  void incoming_add(uint16_t packet_id);
  bool incoming_release(uint16_t packet_id);
  size_t incoming_count() const noexcept { return incoming_.size(); }
  const std::vector<uint16_t>& incoming() const noexcept { return incoming_; }

  // --- a session moved from another process (session_image.h) -----------------------------
  // Puts `m` back into the window as it was sent there: same packet id, same handshake state,
  // so the next connection gets it again with DUP [MQTT-4.4.0-1] (or its PUBREL). False when
  // the id is 0, already in use, or the state is not one awaiting an acknowledgement.
  bool restore_inflight(OutMessage m);
  // New ids continue after the last one used there, so a late ack for an old id is less
  // likely to meet a new message.
  void set_last_packet_id(uint16_t id) noexcept { last_packet_id_ = id; }
  uint16_t last_packet_id() const noexcept { return last_packet_id_; }
  const std::deque<OutMessage>& queued() const noexcept { return queued_; }
  std::deque<OutMessage>& queued() noexcept { return queued_; }

 private:
  OutMessage* find(uint16_t packet_id) noexcept;
  const OutMessage* find(uint16_t packet_id) const noexcept;
  bool id_in_use(uint16_t packet_id) const noexcept;
  void erase(OutMessage* m);

  std::vector<OutMessage> inflight_;
  std::deque<OutMessage> queued_;
  std::vector<uint16_t> incoming_;
  size_t held_bytes_ = 0;
  uint16_t last_packet_id_ = 0;
};

}  // namespace tcpms::broker
