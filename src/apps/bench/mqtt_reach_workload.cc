// mqtt-reach: can the server reach every one of N clients? Each subscribes to a topic of its
// own; then one message is published to every one, and one is pushed to a random K through
// the admin API by client id; each must arrive exactly once at the right client. The stages
// and the rendezvous between processes are in mqtt_reach_driver.h.
//
// With --stream-during, the stream stage's counters: stream_published, stream_acked,
// stream_delivered (unique), stream_lost (acknowledged, never delivered), stream_unacked,
// stream_duplicates; during_command_rc, during_command_ms; the latency histograms
// stream_delivery (send to delivery) and stream_loop_gap (between a loop's stream deliveries).
// disconnects: connections the server closed or reset (any stage, any run).
//
// ops = clients that got their published message. finalize adds, besides the connect and
// subscribe rates: deliveries_per_s (over the time from the first publish to the last
// delivery, across every process) and, with --server-pid, the server's CPU per stage divided
// by that stage's operations: subscribe_server_cpu_ns_per_client,
// publish_server_cpu_ns_per_delivery, push_server_cpu_ns_per_push.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "admin_pusher.h"
#include "mqtt_reach_driver.h"
#include "workloads.h"

namespace tcpms::benchapp {
namespace {

// `cpu_us` of server CPU per `ops` operations, in ns, as counter `name`.
void add_cpu_per_op(bench::RunResult& r, std::string_view cpu_us, std::string_view ops, std::string_view name) {
  const int64_t cpu = r.counter(cpu_us), n = r.counter(ops);
  if (cpu > 0 && n > 0)
    r.counters[std::string(name)] = static_cast<int64_t>(static_cast<double>(cpu) * 1000.0 / static_cast<double>(n) + 0.5);
}

class MqttReachWorkload final : public Workload {
 public:
  std::string_view name() const override { return "mqtt-reach"; }
  std::string_view description() const override {
    return "MQTT reach: N clients on topics of their own, one message published to each, "
           "K pushed by client id through the admin API; each checked delivered exactly once";
  }
  void add_options(CLI::App& cmd) override {
    cmd.add_option("--qos", o_.qos, "QoS of SUBSCRIBE, PUBLISH and the admin pushes")
        ->check(CLI::Range(0, 1))
        ->capture_default_str();
    cmd.add_option("--keep-alive", o_.keep_alive_s,
                   "Keep-alive in CONNECT, seconds (0: none); a PINGREQ goes out every half of it")
        ->capture_default_str();
    cmd.add_option("--publishers", o_.publishers, "Publisher connections per event loop (bench process)")
        ->check(CLI::Range(1u, 64u))
        ->capture_default_str();
    cmd.add_option("--publish-rate", o_.publish_rate,
                   "PUBLISH per second over the whole run, open loop (latency from the intended "
                   "send time); 0: as fast as the sockets take them")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    cmd.add_option("--max-logins", o_.max_logins,
                   "Clients between their connect and their SUBACK at once, over the whole run "
                   "(0: no cap: every client sends its CONNECT as soon as it is connected, and the "
                   "last of a large fleet wait behind all the others in the accept queue)")
        ->capture_default_str();
    cmd.add_flag("--persistent", o_.persistent,
                 "Clients CONNECT with CleanSession 0: the server keeps (and with persistence.dir "
                 "stores) a session for each; publishers stay clean");
    cmd.add_option("--inflight", o_.inflight, "QoS 1: unacknowledged PUBLISH per publisher")
        ->check(CLI::Range(1u, 60000u))
        ->capture_default_str();
    cmd.add_option("--payload", o_.payload, "Message bytes (16-byte header + pattern)")
        ->check(CLI::Range(16u, 1u << 20))
        ->capture_default_str();
    cmd.add_option("--drain", o_.drain_s, "Give up on a missing message after this long of silence (s)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    cmd.add_option("--sync-timeout", o_.sync_timeout_s,
                   "Give up waiting for the other processes at a stage boundary after this long (s)")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    cmd.add_option("--pushes", o_.pushes, "Random clients to push one message to through the admin API (0: none)")
        ->capture_default_str();
    cmd.add_option("--admin", o_.admin, "HOST:PORT of the server's admin API (needed when --pushes > 0)");
    cmd.add_option("--admin-token", o_.admin_token, "Bearer token for the admin API");
    cmd.add_option("--push-concurrency", o_.push_concurrency, "Admin requests in flight")
        ->check(CLI::Range(1, 32))
        ->capture_default_str();
    cmd.add_option("--stream-during", o_.stream_during,
                   "Stream stage: once every client is subscribed, stream QoS 1 messages to them "
                   "and run this shell command (sh -c) meanwhile, e.g. \"tcpms-server --upgrade "
                   "--pid-file F\"; counts what the broker acknowledged and never delivered "
                   "(needs --qos 1)");
    cmd.add_option("--stream-after", o_.stream_after_s, "Seconds of streaming before the command starts")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    cmd.add_option("--stream-tail", o_.stream_tail_s, "Seconds of streaming after the command returned")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    cmd.add_option("--stream-rate", o_.stream_rate,
                   "Stream PUBLISH per second over the whole run, open loop; 0: each publisher "
                   "keeps --inflight unacknowledged")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
  }
  std::string validate(const CommonOptions& c) const override {
    if (o_.pushes > 0) {
      std::string host;
      uint16_t port = 0;
      if (o_.admin.empty()) return "--pushes needs --admin HOST:PORT (or --pushes 0)";
      if (!split_host_port(o_.admin, host, port)) return fmt::format("--admin {}: expected HOST:PORT", o_.admin);
    }
    if (!o_.stream_during.empty() && o_.qos != 1)
      return "--stream-during needs --qos 1 (a loss is a message acknowledged and never delivered)";
    if (c.connections > 0xFFFF'FFFFll) return "at most 4294967295 clients (the payload's client field)";
    return {};
  }
  nlohmann::json parameters() const override {
    nlohmann::json j{{"qos", o_.qos},
                     {"keep_alive_s", o_.keep_alive_s},
                     {"protocol", "mqtt-3.1.1"},
                     {"publishers_per_loop", o_.publishers},
                     {"publish_rate", o_.publish_rate},
                     {"mode", o_.publish_rate > 0 ? "open_loop" : "as_fast_as_possible"},
                     {"payload_bytes", o_.payload},
                     {"drain_s", o_.drain_s},
                     {"sync_timeout_s", o_.sync_timeout_s},
                     {"pushes", o_.pushes},
                     {"max_logins", o_.max_logins},
                     {"persistent", o_.persistent},
                     {"push_concurrency", o_.push_concurrency}};
    if (o_.qos > 0) j["inflight"] = o_.inflight;
    if (!o_.admin.empty()) j["admin"] = o_.admin;
    if (!o_.stream_during.empty()) {
      j["stream_during"] = o_.stream_during;
      j["stream_after_s"] = o_.stream_after_s;
      j["stream_tail_s"] = o_.stream_tail_s;
      j["stream_rate"] = o_.stream_rate;
    }
    return j;
  }
  // Clients only: each loop's control and publisher connections fit in the descriptors a
  // bench process keeps for itself (split.h kReservedFds).
  int64_t peak_connections(const CommonOptions& c) const override { return c.connections; }
  std::unique_ptr<LoopDriver> make_driver(const DriverContext& ctx) override { return make_reach_driver(ctx, o_); }

  void finalize(bench::RunResult& r, const CommonOptions&) const override {
    finalize_connect_rate(r);
    add_per_second(r, "time_to_subscribe", "subscribed", "subscribes_per_s");
    r.counters["deliveries"] = r.counter(bench::kCounterOps);
    if (const int64_t us = r.counter("time_to_deliver_all_us"); us > 0)
      r.counters["deliveries_per_s"] = static_cast<int64_t>(static_cast<double>(r.counter(bench::kCounterOps)) * 1e6 / static_cast<double>(us));
    add_cpu_per_op(r, "phase_subscribe_server_cpu_us", "subscribed", "subscribe_server_cpu_ns_per_client");
    add_cpu_per_op(r, "phase_publish_server_cpu_us", bench::kCounterOps, "publish_server_cpu_ns_per_delivery");
    add_cpu_per_op(r, "phase_push_server_cpu_us", "pushes_delivered", "push_server_cpu_ns_per_push");
    add_cpu_per_op(r, "phase_stream_server_cpu_us", "stream_delivered", "stream_server_cpu_ns_per_delivery");
  }

 private:
  ReachOptions o_;
};

}  // namespace

std::unique_ptr<Workload> make_mqtt_reach_workload() { return std::make_unique<MqttReachWorkload>(); }

}  // namespace tcpms::benchapp
