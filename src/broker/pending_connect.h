// PendingConnect: what Connection::user_data holds between a CONNECT and its CONNACK
// (MqttHandler; see mqtt_handler.h for the user_data states).
//
// Thread rules: owned by its connection's loop; other threads only compare the pointer.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "broker/broker.h"
#include "broker/session.h"
#include "mqtt/types.h"

namespace tcpms::broker {

// A CONNECT accepted by the codec and the broker's checks, copied out of the read buffer while
// its outcome is decided (authentication, the client id's claim with the router, a session
// arriving from another loop or process).
struct PendingConnect {
  const ConnStateKind kind = ConnStateKind::kPendingConnect;
  mqtt::ProtocolVersion version = mqtt::ProtocolVersion::kV311;
  bool clean = true;
  uint16_t keep_alive_s = 0;
  std::string client_id;
  std::optional<std::string> username;  // only when the authorizer uses names
  std::unique_ptr<Will> will;
  // 5.0 CONNECT properties.
  bool assigned_id = false;        // the client sent an empty id [MQTT-3.2.2-16]
  uint32_t session_expiry_s = 0;   // Session Expiry Interval (3.x: unused)
  uint32_t max_packet_size = 0;    // 0: none
  uint16_t receive_maximum = 65535;
  // The claim of the client id with the router (Router::claim), when it claims ids. While it
  // is unsettled the broker holds back requests to give the id's session up (see
  // Broker::claim_started).
  Broker* claiming = nullptr;
  bool claim_sent = false;
  bool claim_done = false;
  bool elsewhere = false;  // another process held the id: a session of it here is stale
  uint32_t ticket = 0;
  std::optional<std::string> image;  // the session that process gave up
  // Set when the connection goes away while its password is queued for hashing, so the
  // worker skips the hash (a connect-and-close loop must not queue work without bound).
  std::shared_ptr<std::atomic<bool>> auth_cancelled;
  // The claim's outcome is in the registry (or the connection is gone): held-back requests go.
  void settle_claim() {
    if (claiming != nullptr) std::exchange(claiming, nullptr)->claim_settled(client_id);
  }
  ~PendingConnect() {
    if (auth_cancelled) auth_cancelled->store(true, std::memory_order_relaxed);
    settle_claim();
  }
};

}  // namespace tcpms::broker
