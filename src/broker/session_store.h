// SessionStore: what one loop tells the persistent store (src/store) about its sessions. The
// handler calls it at every state change of a persistent session (CleanSession 0, or a 5.0
// Session Expiry Interval); each call builds a store::WriteOp and submits it to the store
// thread (one short lock), which commits in groups. Nothing here waits for the disk: under
// persistence.sync = every-message the output that must wait for durability goes through the
// loop's DurableGate (durable_gate.h).
//
// A session is stored once it is persistent (Session::stored); a clean session never costs a
// write. Message bodies: the first session of this loop that stores a publish writes its body
// (store::PutBody); the others of the same publish refer to it.
//
// Times: the store keeps unix milliseconds (a restart resets the steady clock); the broker
// keeps steady-clock deadlines. The conversions are here.
//
// Thread rules: one per loop, used on that loop's thread only.
#pragma once

#include <cstdint>
#include <string_view>

#include "broker/inflight.h"
#include "broker/message.h"
#include "broker/session.h"
#include "store/store_writer.h"

namespace tcpms::broker {

class SessionStore {
 public:
  explicit SessionStore(store::StoreWriter& writer) : w_(writer) {}

  bool strict() const noexcept { return w_.policy().mode == store::SyncMode::kEveryMessage; }
  store::StoreWriter& writer() noexcept { return w_; }
  // The last op this loop submitted (what held output waits for).
  uint64_t last_seq() const noexcept { return last_seq_; }

  // --- sessions ---
  // The session's record (version, expiry, offline since, last packet id); marks it stored.
  void save_session(Session& s);
  // Everything of a stored session goes (discarded, expired, reset by a clean start, moved
  // to another process).
  void drop_session(Session& s);
  void put_subscription(Session& s, std::string_view filter, mqtt::QoS qos, uint8_t options,
                        uint32_t subscription_id);
  void delete_subscription(Session& s, std::string_view filter);

  // --- QoS 1/2 messages of a stored session (OutMessage::store_seq / store_body) ---
  // One publish's delivery to this loop's sessions: within it, the sessions that store the
  // message share one body. Outside a pass every stored message gets a body of its own. (A
  // pass is synchronous, so no acknowledgement can drop the body's last ref before the pass
  // has written all of its refs; across passes it could, and a reused id would name a body
  // already deleted.)
  void begin_pass() noexcept { in_pass_ = true; }
  void end_pass() noexcept;
  // Queued for later (window full, backlog, offline).
  void message_queued(Session& s, OutMessage& m);
  // In flight with its packet id: a new ref, or the queued one updated.
  void message_started(Session& s, OutMessage& m);
  // QoS 2, PUBREC came: the ref keeps only its id and lets go of the body [MQTT-4.3.3-1].
  void message_released(Session& s, OutMessage& m);
  // Acknowledged, expired or given up.
  void message_done(Session& s, uint64_t store_seq, uint64_t store_body);
  // The same by client id, for a copy whose session may have moved to another loop or ended
  // since (a shared message handed on: MqttHandler::handoff_answered). A row that is gone
  // already costs nothing: the store releases a body only for a row it deleted.
  void message_gone(std::string_view client_id, uint64_t store_seq, uint64_t store_body);
  void inbound_added(Session& s, uint16_t packet_id);
  void inbound_released(Session& s, uint16_t packet_id);

  // --- delayed wills, retained messages ---
  void will_saved(Session& s, const Will& will, uint64_t due_steady_ms);
  void will_deleted(Session& s);
  void retained_set(const Message& m);

  // steady-clock ms <-> unix ms (0 stays 0).
  static uint64_t to_unix_ms(uint64_t steady_ms_value);
  static uint64_t to_steady_ms(uint64_t unix_ms_value);

 private:
  uint64_t submit(store::WriteOp op) { return last_seq_ = w_.submit(std::move(op)); }
  // The body id for `m`: the one this loop wrote for the same publish, else a new one.
  uint64_t body_for(const Message& m);
  store::MessageRef ref_of(const OutMessage& m) const;

  store::StoreWriter& w_;
  uint64_t last_seq_ = 0;
  // The body written in the current pass, and the publish it is for (its payload and topic
  // blocks, held so their addresses cannot be reused meanwhile).
  SharedBytes body_payload_;
  SharedBytes body_topic_;
  uint64_t body_id_ = 0;
  bool in_pass_ = false;
};

}  // namespace tcpms::broker
