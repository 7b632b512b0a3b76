// mqtt-conn: a CONNECT and SUBSCRIBE storm. Each of N clients opens a connection (paced by
// --rate, or as fast as --max-pending allows), sends CONNECT (MQTT 3.1.1, clean session, a
// unique client id) and, once accepted, one SUBSCRIBE to bench/<i>/cmd; then all are held for
// --hold seconds (keep-alive pings if --keep-alive is set).
//
// ops = clients fully subscribed, so with --server-pid the server's CPU per op is its cost per
// CONNECT + SUBSCRIBE (accept included) and RSS per connection is its memory per idle client
// with one subscription. Histograms: connect (TCP), connack (CONNECT sent -> CONNACK), suback
// (SUBSCRIBE sent -> SUBACK), time_to_subscribe (one value per loop). Failures by cause, CONNACK
// refusals as connack_rc_<return code>.
#include "mqtt_driver.h"
#include "workloads.h"

namespace tcpms::benchapp {
namespace {

class MqttConnWorkload final : public MqttWorkload {
 public:
  MqttConnWorkload() : MqttWorkload(MqttKind::kConn) {}
  std::string_view name() const override { return "mqtt-conn"; }
  std::string_view description() const override {
    return "MQTT CONNECT + SUBSCRIBE storm: N clients, one subscription each, then hold";
  }
};

}  // namespace

std::unique_ptr<Workload> make_mqtt_conn_workload() { return std::make_unique<MqttConnWorkload>(); }

}  // namespace tcpms::benchapp
