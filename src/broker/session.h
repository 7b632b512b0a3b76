// Session: what the broker keeps per client id (3.1.1 §4.1): its subscriptions, its QoS 1/2
// state, its will while connected, and the connection it is attached to (if any).
//
// Thread rules: a session belongs to exactly one loop (the loop of its last connection, or the
// one it is moving to; see client_registry.h) and is touched only on that loop's thread.
//
// Layout (x86-64, bytes): header 8, client id 24, conn 8, queues 8, will 8, subscriptions 24,
// dedupe mark 8, registry fields 16 = 104, a 112-byte malloc chunk. Everything that an idle client does not need
// (queues, will, more than one subscription) is a null pointer until used.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/token_bucket.h"
#include "broker/inflight.h"
#include "broker/inline_vector.h"
#include "broker/small_string.h"
#include "mqtt/types.h"
#include "tcpms/connection.h"
#include "tcpms/shared_bytes.h"

namespace tcpms::broker {

class TopicNode;

struct Will {
  SharedBytes topic;
  SharedBytes payload;
  mqtt::QoS qos = mqtt::QoS::k0;
  bool retain = false;
  // 5.0 Will Properties: forwarded ones as in MessageProps::wire; the Message Expiry Interval
  // starts when the will is published; the Will Delay Interval [MQTT-3.1.3-9].
  SharedBytes props;
  uint32_t expiry_s = 0;  // 0: none
  uint32_t delay_s = 0;
};

// Per-client publish rate state (only with mqtt.client_* limits, allocated on the first
// PUBLISH): two 16-byte buckets.
struct ClientRate {
  auth::TokenBucket messages;
  auth::TokenBucket bytes;
};

// Inbound Topic Aliases a 5.0 client may define per connection (CONNACK Topic Alias Maximum).
inline constexpr uint32_t kTopicAliasMaximum = 16;

// One of a session's shared subscriptions ("$share/{share}/{filter}"): its group in the
// process's SharedGroups and what it was granted.
struct SharedSub {
  uint32_t group = 0;
  std::string share;
  std::string filter;
  mqtt::QoS qos = mqtt::QoS::k0;
  uint8_t options = 0;
  uint32_t subscription_id = 0;
};
// The filter as the client subscribed to it, "$share/{share}/{filter}" (images, the store).
std::string subscribed_filter(const SharedSub& sub);

// What few clients need, behind one pointer: the will, the user name (kept only when the
// authorizer uses names), publish rate buckets (only with per-client rate limits).
struct SessionExtra {
  std::unique_ptr<Will> will;
  std::optional<std::string> username;
  std::unique_ptr<ClientRate> rate;

  // --- MQTT 5.0 (allocated for every 5.0 client) ---
  uint32_t session_expiry_s = 0;  // Session Expiry Interval; 0xFFFFFFFF: never
  uint32_t max_packet_size = 0;   // the client's Maximum Packet Size; 0: no limit
  uint16_t receive_maximum = 65535;  // the client's Receive Maximum: caps our in-flight window
  uint16_t topic_alias_count = 0;    // inbound aliases defined on this connection
  uint32_t timer_slot = 0;  // place in its loop's OfflineTimers heap + 1; 0: not in it
  std::unique_ptr<Will> delayed_will;  // waiting for its Will Delay Interval while offline
  // While offline: steady-clock ms when the session expires and when its delayed will goes
  // out (0: never), kept in its loop's OfflineTimers heap (offline_timers.h).
  uint64_t expires_at_ms = 0;
  uint64_t will_at_ms = 0;
  // Inbound Topic Alias -> topic (index alias - 1), allocated on the first alias, freed when
  // the connection goes.
  std::unique_ptr<std::array<SharedBytes, kTopicAliasMaximum>> topic_aliases;
  // Shared subscriptions (shared_groups.h), allocated on the first.
  std::unique_ptr<std::vector<SharedSub>> shared;
};
static_assert(sizeof(SessionExtra) <= 112, "SessionExtra is paid per 5.0 client");

// Where one of the session's subscriptions sits in its loop's topic tree: the node of the
// filter and the entry's index in that node (kept current when entries move). The QoS lives
// in the tree entry, the filter text in the tree's path: nothing is stored twice.
struct SubRecord {
  TopicNode* node = nullptr;
  uint32_t index = 0;
  // 5.0 subscription options kept for delivery (kSubNoLocal, kSubRetainAsPublished) and the
  // Subscription Identifier (at most 268,435,455: 28 bits); both fit the record's padding. A
  // tree entry with either set is flagged (SubEntry::has_options) so only those
  // subscriptions pay the lookup.
  uint32_t options : 4 = 0;
  uint32_t subscription_id : 28 = 0;  // 0: none
};
inline constexpr uint8_t kSubNoLocal = 1;
inline constexpr uint8_t kSubRetainAsPublished = 2;
static_assert(sizeof(SubRecord) == 16);

// A session's subscriptions; one inline (the common case), 24 bytes.
class SubList : public InlineVector<SubRecord> {
 public:
  SubRecord* find(const TopicNode* node) noexcept {
    for (auto& r : *this)
      if (r.node == node) return &r;
    return nullptr;
  }
  void erase(SubRecord* r) noexcept { swap_remove(static_cast<uint32_t>(r - data())); }
};
static_assert(sizeof(SubList) == 24);

// The first byte of whatever Connection::user_data points to says what it is.
enum class ConnStateKind : uint8_t { kPendingConnect = 1, kSession = 2 };

// All members public and the kind byte first, so user_data's first byte tells the kind.
struct Session {
  explicit Session(std::string_view client_id) : id(client_id) {}
  ~Session() = default;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  std::string_view client_id() const noexcept { return id.view(); }

  // --- header (8 bytes) ---
  const ConnStateKind kind = ConnStateKind::kSession;
  mqtt::ProtocolVersion version = mqtt::ProtocolVersion::kV311;
  bool clean : 1 = true;          // CleanSession of the last CONNECT [MQTT-3.1.2-6]
  bool disconnected : 1 = false;  // DISCONNECT received: no will [MQTT-3.14.4-3]
  bool offline : 1 = false;       // persistent session without a connection (counted)
  // In the persistent store (session_store.h): its changes are written there. A bit of the
  // header's flag byte, so persistence costs a session nothing in size.
  bool stored : 1 = false;
  uint32_t connected_since_s = 0;  // wall clock, for listings

  SmallString id;  // the client id; the registry's key

  // Where the registry says this session lives. Read and written only under the registry
  // shard's lock (client_registry.h): storing it here instead of in a map node saves a
  // 64-byte allocation per client.
  struct RegistryFields {
    ConnId conn;            // invalid while offline
    uint16_t loop = 0;      // EventLoop::index of the owning loop (10 bits in a ConnId)
    bool in_transit = false;
    uint32_t ticket = 0;    // Router::Claim::ticket of its registration (0: none)
  } reg;
  Connection* conn = nullptr;  // while connected (same loop)
  std::unique_ptr<SessionQueues> queues_;  // null while idle (see trim)
  std::unique_ptr<SessionExtra> extra;     // null unless a will, a user name or a rate is kept
  SubList subs;
  // Per-publish dedupe (a client with overlapping subscriptions gets one copy at the highest
  // granted QoS [MQTT-3.3.5-1]): the loop's match epoch and the index into its scratch list.
  uint32_t match_epoch = 0;
  uint32_t match_index = 0;

  SessionExtra& extra_ref() {
    if (!extra) extra = std::make_unique<SessionExtra>();
    return *extra;
  }
  std::unique_ptr<Will> take_will() { return extra ? std::move(extra->will) : nullptr; }
  void set_will(std::unique_ptr<Will> w) {
    if (w || extra) extra_ref().will = std::move(w);
  }
  void set_username(std::optional<std::string> name) {
    if (name || extra) extra_ref().username = std::move(name);
  }
  bool is_v5() const noexcept { return version == mqtt::ProtocolVersion::kV5; }
  uint32_t max_packet_size() const noexcept { return extra ? extra->max_packet_size : 0; }
  std::optional<std::string_view> username() const noexcept {
    if (extra && extra->username) return std::string_view(*extra->username);
    return std::nullopt;
  }

  SessionQueues& queues() {
    if (!queues_) queues_ = std::make_unique<SessionQueues>();
    return *queues_;
  }
  bool has_queues() const noexcept { return queues_ != nullptr; }
  // Frees the queues once nothing is left in them (an idle client holds no queue memory).
  void trim() {
    if (queues_ && queues_->idle()) queues_.reset();
  }
};
static_assert(sizeof(Session) <= 104, "Session grew: it is paid per client");

}  // namespace tcpms::broker
