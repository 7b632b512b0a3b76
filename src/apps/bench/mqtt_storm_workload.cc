// mqtt-storm: N MQTT clients connected and subscribed, then held until the server drops them
// (bench/storm.sh kills it with -9 and restarts it); every client reconnects on its own at
// once, with backoff only after a failed attempt. The stages are in mqtt_storm_driver.h.
//
// ops = clients back (subscribed again after their drop). finalize adds:
//   time_to_all_back_ms   first drop to last client back, across every process
//   drop_spread_ms        first drop to last drop (how long the dying server took to close)
//   attempt_fail_total    failed reconnect attempts (attempt_fail.<cause> has them by cause)
// Histograms: outage (per client, its drop to its SUBACK), time_to_subscribe (setup, per loop).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "mqtt_storm_driver.h"
#include "workloads.h"

namespace tcpms::benchapp {
namespace {

class MqttStormWorkload final : public Workload {
 public:
  std::string_view name() const override { return "mqtt-storm"; }
  std::string_view description() const override {
    return "MQTT reconnect storm: N clients subscribed and held; when the server drops them "
           "(killed and restarted) each reconnects at once; time until all are back, failed "
           "attempts by cause";
  }
  void add_options(CLI::App& cmd) override {
    cmd.add_option("--retry-min", o_.retry_min_s, "Backoff after a client's first failed attempt (s)")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    cmd.add_option("--retry-max", o_.retry_max_s, "Backoff cap: each failure doubles it up to this (s)")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    cmd.add_option("--storm-timeout", o_.storm_timeout_s,
                   "Give up on clients not back this long after a loop's first drop (s)")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    cmd.add_option("--storm-max-pending", o_.storm_max_pending,
                   "Reconnect attempts in flight per process (0: every client at once)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    cmd.add_option("--ready-file", o_.ready_file,
                   "Once a loop's clients are all subscribed it writes their count to PATH.<first "
                   "client number>; sum them to know when to kill the server");
  }
  std::string validate(const CommonOptions& c) const override {
    if (o_.retry_max_s < o_.retry_min_s) return "--retry-max must be at least --retry-min";
    if (c.connections > 0xFFFF'FFFFll) return "at most 4294967295 clients";
    return {};
  }
  nlohmann::json parameters() const override {
    return {{"protocol", "mqtt-3.1.1"},
            {"retry_min_s", o_.retry_min_s},
            {"retry_max_s", o_.retry_max_s},
            {"storm_timeout_s", o_.storm_timeout_s},
            {"storm_max_pending", o_.storm_max_pending},
            {"reconnect", "at once on drop; exponential backoff with jitter after a failed attempt"}};
  }
  int64_t peak_connections(const CommonOptions& c) const override { return c.connections; }
  std::unique_ptr<LoopDriver> make_driver(const DriverContext& ctx) override { return make_storm_driver(ctx, o_); }

  void finalize(bench::RunResult& r, const CommonOptions&) const override {
    auto drop = r.histograms.find("storm_drop_at");
    auto back = r.histograms.find("storm_back_at");
    if (drop != r.histograms.end() && back != r.histograms.end() && back->second.count() > 0) {
      r.counters["time_to_all_back_ms"] =
          static_cast<int64_t>((back->second.max() - drop->second.min()) / 1'000'000);
      r.counters["drop_spread_ms"] = static_cast<int64_t>((drop->second.max() - drop->second.min()) / 1'000'000);
    }
    int64_t failed = 0;
    for (const auto& [name, n] : r.counters)
      if (name.starts_with("attempt_fail.")) failed += n;
    r.counters["attempt_fail_total"] = failed;
    // Instants, not latencies: the summary's percentiles of them would mislead.
    r.histograms.erase("storm_drop_at");
    r.histograms.erase("storm_back_at");
  }

 private:
  StormOptions o_;
};

}  // namespace

std::unique_ptr<Workload> make_mqtt_storm_workload() { return std::make_unique<MqttStormWorkload>(); }

}  // namespace tcpms::benchapp
