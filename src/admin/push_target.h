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
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tcpms/bytes.h"
#include "tcpms/conn_id.h"

namespace tcpms::admin {

// How a push call ended; the API maps each to an HTTP status.
enum class PushStatus : uint8_t {
  kDone,          // 200: sent / published / kicked
  kQueued,        // 202: kept for an offline client with a persistent session
  kNotFound,      // 404: no such client or connection
  kInvalid,       // 400: e.g. a topic with wildcards, qos 3
  kUnsupported,   // 501: the protocol has no such notion (echo has no topics)
  kUnavailable,   // 503: the loop did not answer in time, or the server is draining
};

struct PushResult {
  PushStatus status = PushStatus::kDone;
  std::string detail;   // a sentence for the JSON answer ("no client 'abc'")
  uint64_t receivers = 0;  // publish: subscribers it went to, when the protocol knows
};

struct PublishRequest {
  std::string topic;
  std::string payload;  // bytes, already decoded from base64 if the request said so
  uint8_t qos = 0;
  bool retain = false;
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
  // Protocol extras shown as-is under "details" (username, keep_alive, subscriptions...),
  // as a JSON object text; empty for none.
  std::string details_json;
};

struct ClientPage {
  std::vector<ClientInfo> clients;
  std::string next_cursor;  // pass back as ?cursor= for the next page; empty on the last page
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
  // GET /api/v1/clients: up to `limit` clients after `cursor` ("" = from the start), in a
  // stable order so paging visits each client at most once.
  virtual ClientPage list_clients(std::string_view cursor, size_t limit) = 0;
  // GET /api/v1/clients/{id}
  virtual std::optional<ClientInfo> client(std::string_view id) = 0;
  // DELETE /api/v1/clients/{id}: disconnect it.
  virtual PushResult kick(std::string_view id) = 0;
  // GET /api/v1/stats: protocol counters added to the summary. Totals only (the admin server
  // turns them into rates): "messages_in", "messages_out" (counters), plus anything else.
  virtual void add_stats(nlohmann::json& out) = 0;
  // "echo", "mqtt": shown on the dashboard.
  virtual std::string protocol() const = 0;
};

}  // namespace tcpms::admin
