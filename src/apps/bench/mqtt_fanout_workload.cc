// mqtt-fanout: S subscribers on one topic, P publishers publishing to it. Once every subscriber
// of the run is subscribed (the barrier in mqtt_driver.h), the publishers send for --duration
// seconds at --publish-rate in total (open loop: latency from the intended send time) or as
// fast as possible (QoS 0: keep each socket full; QoS 1: --inflight unacknowledged each).
//
// Each payload carries the publisher, its sequence number and a CLOCK_MONOTONIC stamp (all on
// one box); every subscriber checks the topic, every payload byte and each publisher's order.
// ops = deliveries (in order, first copy). finalize adds expected_deliveries (published x
// subscribed), lost (expected - delivered), deliveries_per_s, and phase_server_cpu_ns_per_delivery
// (with --server-pid: the server's CPU from the barrier to the end of delivery, so the connect
// storm before it is not charged to the deliveries).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "mqtt_driver.h"
#include "workloads.h"

namespace tcpms::benchapp {
namespace {

class MqttFanoutWorkload final : public MqttWorkload {
 public:
  MqttFanoutWorkload() : MqttWorkload(MqttKind::kFanout) {}
  std::string_view name() const override { return "mqtt-fanout"; }
  std::string_view description() const override {
    return "MQTT fan-out: S subscribers on one topic, P publishers; delivery latency and losses";
  }
  void add_options(CLI::App& cmd) override {
    MqttWorkload::add_options(cmd);
    cmd.add_option("--subscribers,-s", o_.subscribers, "Subscribers on the topic")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    cmd.add_option("--publishers,-p", o_.publishers, "Publishers to the topic")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
  }
  // --connections is S + P; it need not be given.
  int64_t default_connections() const override { return o_.subscribers + o_.publishers; }
  std::string validate(const CommonOptions& c) const override {
    if (c.connections != o_.subscribers + o_.publishers)
      return fmt::format("--connections is --subscribers + --publishers ({}); leave it out",
                         o_.subscribers + o_.publishers);
    if (o_.publishers > 100000) return "at most 100000 publishers";
    return {};
  }
};

}  // namespace

std::unique_ptr<Workload> make_mqtt_fanout_workload() { return std::make_unique<MqttFanoutWorkload>(); }

}  // namespace tcpms::benchapp
