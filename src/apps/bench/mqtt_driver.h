// The MQTT client side of tcpms-bench, shared by mqtt-conn, mqtt-fanout and mqtt-p2p: every
// loop opens its share of clients (FleetDriver's pacing), sends CONNECT (MQTT 3.1.1 or 5.0,
// clean session, a unique client id, the user name and password if given), SUBSCRIBE for the
// clients that subscribe, and then runs the
// workload's phase 2: hold (mqtt-conn) or publish for --duration and check every delivery.
//
// Client i of the run (global number) has a role fixed by MqttLayout:
//   conn:   subscribes to bench/<i>/cmd; nobody publishes.
//   fanout: i < S subscribes to tb/<run>/fanout; i >= S is publisher i - S to that topic.
//   p2p:    subscribes to tb/<run>/p2p/<i> and publishes to the topic of p2p_target(i, N).
//
// Barrier (fanout, p2p): publishing must not start before every subscriber of the run, in every
// loop and worker process, is subscribed. Each loop opens one control connection that
// subscribes to tb/<run>/ready/+; once its own clients are settled it publishes a retained
// "<settled clients>" to tb/<run>/ready/<first client number>. A loop starts its publish phase
// when the settled counts it has seen add up to N, so the broker itself is the rendezvous and
// no process talks to another. The retained messages are cleared when the loop finishes.
//
// End of a publish phase: after --duration each publisher sends an end marker (mqtt_payload.h)
// carrying how many data messages it sent. A loop is done when its publishers are acknowledged
// (QoS 1) and its subscribers have every end marker they expect, or nothing arrived for --drain
// seconds after the publish phase ended (a marker can be dropped like any QoS 0 message).
//
// Threads: the loop's thread only (one driver per event loop).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "fleet_driver.h"
#include "mqtt/types.h"

namespace CLI {
class App;
}

namespace tcpms::benchapp {

struct MqttOptions {
  uint16_t keep_alive_s = 0;     // in CONNECT; > 0 sends PINGREQ every keep_alive / 2
  int qos = 0;                   // publish and subscribe QoS (0, 1 or 2)
  mqtt::ProtocolVersion version = mqtt::ProtocolVersion::kV311;
  std::string username, password;  // in every CONNECT when set
  bool persistent = false;       // CONNECT with CleanSession 0 (the control client stays clean)
  uint32_t payload = 64;         // data message size in bytes
  double publish_rate = 0;       // total PUBLISH per second over all publishers; 0: flat out
  uint32_t inflight = 10;        // QoS 1/2 flat out: unacknowledged PUBLISH per publisher
  double hold_s = 0;             // mqtt-conn: hold once every client is subscribed
  double drain_s = 2;            // after publishing: give up on silence this long
  int64_t slow_subscribers = 0;  // the first K subscribers stop reading while publishing
  int64_t subscribers = 1000;    // mqtt-fanout: S
  int64_t publishers = 1;        // mqtt-fanout: P
};

enum class MqttKind : uint8_t { kConn, kFanout, kP2p };

// Who client i is; the same in every process of the run.
struct MqttLayout {
  MqttKind kind = MqttKind::kConn;
  uint64_t clients = 0;      // N (all connections but the control ones)
  uint64_t subscribers = 0;  // fanout: S
  uint64_t publishers = 0;   // fanout: P; p2p: N; conn: 0
  uint32_t run = 0;          // run id (mqtt_payload.h client_id)

  bool subscribes(uint64_t i) const noexcept { return kind != MqttKind::kFanout || i < subscribers; }
  bool publishes(uint64_t i) const noexcept {
    return kind == MqttKind::kP2p || (kind == MqttKind::kFanout && i >= subscribers);
  }
  // The publisher number client i puts in its payloads.
  uint32_t publisher_number(uint64_t i) const noexcept {
    return static_cast<uint32_t>(kind == MqttKind::kFanout ? i - subscribers : i);
  }
  // End markers (publishers) a subscriber expects.
  uint32_t sources_per_subscriber() const noexcept {
    return kind == MqttKind::kFanout ? static_cast<uint32_t>(publishers) : kind == MqttKind::kP2p ? 1 : 0;
  }
  std::string subscribe_topic(uint64_t i) const;
  std::string publish_topic(uint64_t i) const;
  std::string ready_prefix() const;  // "tb/<run>/ready/"
};

// What the three MQTT workloads share as Workloads: the flags (keep-alive and QoS; the
// publish-phase ones or --hold), parameters, the driver, and finalize's derived numbers
// (rates; for publishing workloads expected deliveries, losses and the server's CPU per
// delivery during the publish phase). A workload adds its name and its own flags.
class MqttWorkload : public Workload {
 public:
  explicit MqttWorkload(MqttKind kind) : kind_(kind) {}
  void add_options(CLI::App& cmd) override;
  nlohmann::json parameters() const override;
  int64_t peak_connections(const CommonOptions& c) const override { return c.connections; }
  std::unique_ptr<LoopDriver> make_driver(const DriverContext& ctx) override;
  void finalize(bench::RunResult& r, const CommonOptions& c) const override;

 protected:
  // Who client i is in this run (the same in every process).
  MqttLayout layout(const CommonOptions& c) const;
  bool publishing() const noexcept { return kind_ != MqttKind::kConn; }
  // The run id every process of one run agrees on: the parent bench process's pid.
  static uint32_t run_id(const CommonOptions& c);

  MqttKind kind_;
  MqttOptions o_;
};

}  // namespace tcpms::benchapp
