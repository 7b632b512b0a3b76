// PushTarget: what the HTTP push API (/api/v1/publish, /api/v1/clients...) asks of the protocol
// that serves the connections. The admin server owns no connection state: every call here is
// made on an admin HTTP thread, and an implementation reaches its loops only through their task
// queues (EventLoop::post), waiting for the answer with a timeout (see run_on_loop in
// engine_push_target.h).
//
// EnginePushTarget (engine_push_target.h) works with only the engine: raw bytes to a
// connection by id, kick, listing. The MQTT broker derives from it (or implements this
// interface) to add publish and send-by-client-id, and hands it to AdminServer::set_push_target
// before start().
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tcpms/bytes.h"
#include "tcpms/conn_id.h"

namespace tcpms::admin {

// How a push call ended; the API maps each to an HTTP status.
enum class PushStatus : uint8_t {
  kDone,          // 200: sent / published / kicked / deleted
  kQueued,        // 202: kept for an offline client with a persistent session
  kNotFound,      // 404: no such client, connection, session, message or tap
  kInvalid,       // 400: e.g. a topic with wildcards, qos 3
  kForbidden,     // 403: $SYS/ topics are the broker's
  kConflict,      // 409: e.g. deleting the session of a connected client
  kUnsupported,   // 501: the protocol has no such notion (echo has no topics)
  kUnavailable,   // 503: the loop did not answer in time, the server is draining, too many taps
};

struct PushResult {
  PushStatus status = PushStatus::kDone;
  std::string detail;   // a sentence for the JSON answer ("no client 'abc'")
  uint64_t receivers = 0;  // publish: sessions it reached (see has_receivers)
  bool has_receivers = false;  // the protocol counted them (MQTT: in this process)
};

struct PublishRequest {
  std::string topic;
  std::string payload;  // bytes, already decoded from base64 if the request said so
  uint8_t qos = 0;
  bool retain = false;
};

// One subscription: GET /api/v1/subscriptions and a client's details.
struct SubscriptionRow {
  std::string client_id;
  std::string filter;
  uint8_t qos = 0;
  bool no_local = false;             // MQTT 5.0 options
  bool retain_as_published = false;
  uint32_t subscription_id = 0;      // 0: none
};

struct ClientInfo {
  std::string id;        // MQTT client id, or the decimal ConnId of a raw connection
  uint64_t conn_id = 0;  // 0: not connected (an offline persistent session)
  std::string protocol;  // "echo", "mqtt"
  std::string peer;      // "203.0.113.5:40122" ("" when offline)
  uint32_t loop = 0;
  bool connected = false;
  uint64_t pending_output_bytes = 0;
  uint64_t pending_input_bytes = 0;
  // Protocol extras shown as-is under "details" (protocol version, keep-alive, username,
  // queue counts...), as a JSON object text; empty for none.
  std::string details_json;
  // One client's GET (not listings): its subscriptions, when the protocol has them.
  std::optional<std::vector<SubscriptionRow>> subscriptions;
};

struct ClientPage {
  std::vector<ClientInfo> clients;
  std::string next_cursor;  // pass back as ?cursor= for the next page; empty on the last page
};

// GET /api/v1/clients (and /api/v1/sessions, which asks for offline ones).
struct ClientQuery {
  std::string cursor;               // "" = from the start
  size_t limit = 100;
  std::optional<bool> connected;    // ?state=connected|offline
  std::string search;               // ?q=: a substring of the id (or, MQTT, the user name)
};

struct RetainedRow {
  std::string topic;
  std::string payload;     // bytes
  uint8_t qos = 0;
};
struct RetainedResult {
  PushStatus status = PushStatus::kDone;
  std::string detail;
  std::vector<RetainedRow> rows;  // sorted by topic
};

// The topic viewer: a filter and the last messages that matched it, read by polling.
struct TapMessage {
  uint64_t seq = 0;
  int64_t time_unix_ms = 0;
  std::string topic;
  std::string payload;       // cut to the protocol's display limit
  size_t payload_bytes = 0;  // the whole payload's size
  uint8_t qos = 0;
  bool retain = false;
};
struct TapResult {
  PushStatus status = PushStatus::kDone;
  std::string detail;
  uint64_t id = 0;
  std::string filter;
  std::vector<TapMessage> messages;
  uint64_t next = 0;     // ?after= for the next read
  uint64_t dropped = 0;  // pushed out of the tap's ring before they could be read

  static TapResult failed(PushStatus status, std::string detail) {
    TapResult result;
    result.status = status;
    result.detail = std::move(detail);
    return result;
  }
};

class PushTarget {
 public:
  virtual ~PushTarget() = default;

  // POST /api/v1/publish
  virtual PushResult publish(const PublishRequest& request) = 0;
  // POST /api/v1/clients/{id}/send with a topic: one message to one client by client id.
  // kDone when written to a connected client, kQueued for an offline persistent session,
  // kNotFound when neither.
  virtual PushResult send_to_client(std::string_view client_id, const PublishRequest& message) = 0;
  // POST /api/v1/clients/{id}/send without a topic: bytes written as they are to the
  // connection `id` (raw protocols).
  virtual PushResult send_raw(ConnId id, ByteView bytes) = 0;
  // GET /api/v1/clients: up to `q.limit` clients after `q.cursor`, in a stable order so
  // paging visits each client at most once.
  virtual ClientPage list_clients(const ClientQuery& q) = 0;
  // GET /api/v1/clients/{id}, with its subscriptions when the protocol has them.
  virtual std::optional<ClientInfo> client(std::string_view id) = 0;
  // DELETE /api/v1/clients/{id}: disconnect it.
  virtual PushResult kick(std::string_view id) = 0;
  // GET /api/v1/stats: protocol counters added to the summary. Totals only (the admin server
  // turns them into rates): "messages_in", "messages_out" (counters), plus anything else.
  virtual void add_stats(nlohmann::json& out) = 0;
  // "echo", "mqtt": shown on the dashboard.
  virtual std::string protocol() const = 0;

  // What only some protocols have; the defaults answer 501.
  // GET /api/v1/sessions: offline persistent sessions (list_clients with connected = false).
  virtual bool has_sessions() const { return false; }
  // DELETE /api/v1/sessions/{id}: an offline session (409 while its client is connected).
  virtual PushResult delete_session(std::string_view id) { return unsupported("sessions"); }
  // GET /api/v1/subscriptions?filter=F (exactly F) or ?topic=T (every filter matching T).
  virtual std::optional<std::vector<SubscriptionRow>> subscriptions(std::string_view filter,
                                                                    bool match_topic,
                                                                    size_t limit) {
    return std::nullopt;
  }
  // GET /api/v1/receivers?topic=T: how many sessions here a publish to T would reach now
  // (in `receivers`); the front door adds it up over worker processes.
  virtual PushResult count_receivers(std::string_view topic) { return unsupported("topics"); }
  // GET /api/v1/retained?filter=F, GET and DELETE /api/v1/retained/{topic}.
  virtual RetainedResult list_retained(std::string_view filter) {
    return {PushStatus::kUnsupported, unsupported("retained messages").detail, {}};
  }
  virtual RetainedResult get_retained(std::string_view topic) { return list_retained(topic); }
  virtual PushResult delete_retained(std::string_view topic) { return unsupported("retained messages"); }
  // POST /api/v1/taps, GET and DELETE /api/v1/taps/{id}: the topic viewer.
  virtual TapResult open_tap(std::string_view filter) {
    return TapResult::failed(PushStatus::kUnsupported, unsupported("topics").detail);
  }
  virtual TapResult read_tap(uint64_t id, uint64_t after) { return open_tap({}); }
  virtual PushResult close_tap(uint64_t id) { return unsupported("topics"); }

 protected:
  PushResult unsupported(std::string_view what) const {
    return {PushStatus::kUnsupported, "the " + protocol() + " protocol has no " + std::string(what), 0};
  }
};

}  // namespace tcpms::admin
