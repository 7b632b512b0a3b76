#include "admin/stats.h"

#include <algorithm>

#include "admin/metrics.h"

namespace tcpms::admin {

StatsSampler::StatsSampler(Server& server)
    : server_(server), started_(std::chrono::steady_clock::now()) {}

nlohmann::json StatsSampler::sample(PushTarget& target, bool ready) {
  using nlohmann::json;
  Totals now;
  now.at = std::chrono::steady_clock::now();
  json loops = json::array();
  uint64_t connections = 0, pending_in = 0, pending_out = 0;
  for (size_t i = 0; i < server_.loop_count(); ++i) {
    const LoopStats& s = server_.loop(i).stats();
    now.accepted += s.accepted.get();
    now.bytes_in += s.bytes_in.get();
    now.bytes_out += s.bytes_out.get();
    now.busy_ns.push_back(s.busy_ns.get());
    connections += s.connections.get();
    pending_in += s.pending_input_bytes.get();
    pending_out += s.pending_output_bytes.get();
    loops.push_back({{"index", server_.loop(i).index()}, {"connections", s.connections.get()}});
  }
  json protocol = json::object();
  target.add_stats(protocol);
  bool has_messages = protocol.contains("messages_in") || protocol.contains("messages_out");
  now.messages_in = protocol.value("messages_in", uint64_t{0});
  now.messages_out = protocol.value("messages_out", uint64_t{0});

  Rates rates;
  {
    std::lock_guard lock(mu_);
    if (!have_base_ || base_.busy_ns.size() != now.busy_ns.size()) {
      base_ = now;
      have_base_ = true;
      rates_ = Rates{};
      rates_.busy.assign(now.busy_ns.size(), 0.0);
    } else if (now.at - base_.at >= kMinWindow) {
      double dt = std::chrono::duration<double>(now.at - base_.at).count();
      auto per_s = [dt](uint64_t a, uint64_t b) { return a >= b ? (a - b) / dt : 0.0; };
      rates_.accepted = per_s(now.accepted, base_.accepted);
      rates_.bytes_in = per_s(now.bytes_in, base_.bytes_in);
      rates_.bytes_out = per_s(now.bytes_out, base_.bytes_out);
      rates_.messages_in = per_s(now.messages_in, base_.messages_in);
      rates_.messages_out = per_s(now.messages_out, base_.messages_out);
      for (size_t i = 0; i < now.busy_ns.size(); ++i) {
        rates_.busy[i] = std::clamp(per_s(now.busy_ns[i], base_.busy_ns[i]) / 1e9, 0.0, 1.0);
      }
      base_ = now;
    }
    rates = rates_;
  }
  for (size_t i = 0; i < loops.size(); ++i) loops[i]["busy_fraction"] = rates.busy[i];

  json out = {
      {"protocol", target.protocol()},
      {"ready", ready},
      {"uptime_s", std::chrono::duration<double>(now.at - started_).count()},
      {"connections", connections},
      {"accepted_total", now.accepted},
      {"accepted_per_s", rates.accepted},
      {"bytes_in_total", now.bytes_in},
      {"bytes_out_total", now.bytes_out},
      {"bytes_in_per_s", rates.bytes_in},
      {"bytes_out_per_s", rates.bytes_out},
      {"pending_input_bytes", pending_in},
      {"pending_output_bytes", pending_out},
      {"rss_bytes", process_rss_bytes()},
      {"worker_queue_depth", server_.workers().queued()},
      {"loops", std::move(loops)},
  };
  if (has_messages) {
    out["messages_in_total"] = now.messages_in;
    out["messages_out_total"] = now.messages_out;
    out["messages_in_per_s"] = rates.messages_in;
    out["messages_out_per_s"] = rates.messages_out;
  } else {
    // The protocol has no messages (echo moves bytes): say so rather than show zeros.
    out["messages_in_per_s"] = nullptr;
    out["messages_out_per_s"] = nullptr;
  }
  out["protocol_stats"] = std::move(protocol);
  return out;
}

}  // namespace tcpms::admin
