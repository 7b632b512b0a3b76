// mqtt-p2p: N clients, each subscribed to its own topic tb/<run>/p2p/<i> and publishing to the
// topic of client (i + N/2) mod N (a permutation: every client has exactly one sender, and most
// pairs sit on different loops and processes). After the barrier (mqtt_driver.h) the clients
// publish for --duration seconds at --publish-rate in total, or as fast as possible.
//
// Every delivery is checked (topic, sender, sequence, every payload byte). ops = deliveries;
// finalize adds expected_deliveries (= published), lost, deliveries_per_s and, with
// --server-pid, phase_server_cpu_ns_per_delivery.
#include "mqtt_driver.h"
#include "workloads.h"

namespace tcpms::benchapp {
namespace {

class MqttP2pWorkload final : public MqttWorkload {
 public:
  MqttP2pWorkload() : MqttWorkload(MqttKind::kP2p) {}
  std::string_view name() const override { return "mqtt-p2p"; }
  std::string_view description() const override {
    return "MQTT point to point: each client subscribes to its own topic and publishes to another's";
  }
  std::string validate(const CommonOptions& c) const override {
    return c.connections >= 2 ? std::string() : std::string("mqtt-p2p needs at least 2 connections");
  }
};

}  // namespace

std::unique_ptr<Workload> make_mqtt_p2p_workload() { return std::make_unique<MqttP2pWorkload>(); }

}  // namespace tcpms::benchapp
