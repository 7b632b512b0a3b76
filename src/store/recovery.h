// Recovery: reads a store back, table by table in client-id order, merges the per-client
// tables into whole sessions and hands them to a RecoveryVisitor (the broker), together with
// the retained messages.
//
// Nothing unreadable is fatal here: a record that fails its codec (checksum, bounds, values
// a live session cannot have), a row whose session or body is missing, or a table SQLite
// cannot read to its end is reported and left out; the rest is read. What the store must
// change to match what was read comes back as WriteOps: deletes of what was left out and of
// sessions that expired while the server was down (in place), or, when reading a damaged copy
// (`rebuild`), every good record, to be written into a fresh store.
//
// Thread rules: one thread, before the store thread starts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "store/sqlite_db.h"
#include "store/write_ops.h"

namespace tcpms::store {

struct RecoveredMessage {
  uint64_t seq = 0;
  MessageRef ref;
  MessageBody body;  // empty in kWaitPubcomp; shared by every session that had the body
};

struct RecoveredSession {
  std::string client_id;
  SessionRecord session;
  std::vector<std::pair<std::string, SubscriptionRecord>> subscriptions;  // by filter
  std::vector<RecoveredMessage> messages;  // in the order the session got them
  std::vector<uint16_t> inbound;           // QoS 2 ids awaiting PUBREL
  std::optional<WillRecord> will;          // a delayed will that had not gone out
};

class RecoveryVisitor {
 public:
  virtual ~RecoveryVisitor() = default;
  virtual void on_retained(std::string topic, RetainedRecord record) = 0;
  virtual void on_session(RecoveredSession session) = 0;
  // Expired while the server was down (the store forgets it): its delayed will, if any, is
  // owed now [MQTT-3.1.3-9].
  virtual void on_expired_session(RecoveredSession session) = 0;
};

struct RecoveryReport {
  uint64_t sessions = 0;
  uint64_t subscriptions = 0;
  uint64_t messages = 0;
  uint64_t bodies = 0;
  uint64_t inbound = 0;
  uint64_t wills = 0;
  uint64_t retained = 0;
  uint64_t expired_sessions = 0;
  uint64_t bad_records = 0;   // failed their codec
  uint64_t orphans = 0;       // rows whose session or body is missing
  bool unreadable = false;    // SQLite could not read some table to its end
  std::vector<std::string> problems;  // the first kMaxProblems, for the log
  static constexpr size_t kMaxProblems = 20;
  bool damaged() const noexcept { return bad_records != 0 || orphans != 0 || unreadable; }
  void problem(std::string what);
  std::string summary() const;  // "12 sessions, 12 subscriptions, ..."
};

struct RecoveryResult {
  std::vector<WriteOp> writes;  // repairs (in place) or the rebuild (from a damaged copy)
  std::unordered_map<uint64_t, uint32_t> body_refs;  // in place only
  uint64_t max_id = 0;  // largest message seq or body id seen
};

// `now_ms` (unix ms) decides expiry; sessions that had a connection when last written count as
// offline since `now_ms`.
RecoveryResult recover_store(SqliteDb& db, uint64_t now_ms, bool rebuild, RecoveryVisitor& visitor,
                             RecoveryReport& report);

}  // namespace tcpms::store
