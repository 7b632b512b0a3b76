// WriteOp: one change to the store, as a value. Loops build them (cheap: strings of ids,
// SharedBytes references, small records) and submit them to the store thread, which encodes
// the records and applies them in its next group commit. Order is the order of submission.
//
// Thread rules: values; build on any thread, hand over by move.
#pragma once

#include <cstdint>
#include <string>
#include <variant>

#include "store/message_record.h"
#include "store/retained_record.h"
#include "store/session_record.h"
#include "store/subscription_record.h"
#include "store/will_record.h"

namespace tcpms::store {

struct PutSession {
  std::string client_id;
  SessionRecord record;
};
// Everything of one session: the session, its subscriptions, messages, inbound ids and will.
struct DropSession {
  std::string client_id;
};
struct PutSubscription {
  std::string client_id;
  std::string filter;
  SubscriptionRecord record;
};
struct DeleteSubscription {
  std::string client_id;
  std::string filter;
};
// A body is written by the first ref that needs it (ignored when the store has it) and
// deleted with its last ref; the store thread counts the refs. Always submitted right before
// a PutMessage naming it.
struct PutBody {
  uint64_t body_id = 0;
  MessageBody body;
};
// Unconditional (recovery's repairs: an unreadable body).
struct DeleteBody {
  uint64_t body_id = 0;
};
// Inserts a ref (`is_new`) or replaces it (a state change). `released_body`: the body the
// replaced ref named and this one no longer does (QoS 2 after PUBREC), else 0.
struct PutMessage {
  std::string client_id;
  uint64_t seq = 0;
  MessageRef ref;
  bool is_new = true;
  uint64_t released_body = 0;
};
struct DeleteMessage {
  std::string client_id;
  uint64_t seq = 0;
  uint64_t body_id = 0;  // the body it named (0: none)
};
struct PutInbound {
  std::string client_id;
  uint16_t packet_id = 0;
};
struct DeleteInbound {
  std::string client_id;
  uint16_t packet_id = 0;
};
struct PutWill {
  std::string client_id;
  WillRecord will;
};
struct DeleteWill {
  std::string client_id;
};
struct PutRetained {
  std::string topic;
  RetainedRecord record;
};
struct DeleteRetained {
  std::string topic;
};

// Every row of every table goes. The first op of a process that takes the store over from the
// process it replaces (an upgrade, docs/upgrade.md): the ops after it write its whole state,
// in the same commit.
struct ClearAll {};

using WriteOp = std::variant<ClearAll, PutSession, DropSession, PutSubscription, DeleteSubscription, PutBody,
                             DeleteBody, PutMessage, DeleteMessage, PutInbound, DeleteInbound, PutWill,
                             DeleteWill, PutRetained, DeleteRetained>;

}  // namespace tcpms::store
