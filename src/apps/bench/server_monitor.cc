#include "server_monitor.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace tcpms::benchapp {

std::string ServerMonitor::begin() {
  listen_before_ = sampler_.read_listen_drops();
  if (pid_ == 0) return {};
  before_ = sampler_.sample(pid_);
  if (!before_) return fmt::format("--server-pid {}: no such process", pid_);
  last_cpu_us_ = before_->usage.cpu_user_us + before_->usage.cpu_system_us;
  return {};
}

void ServerMonitor::tick(size_t second) {
  if (!before_) return;
  auto u = sampler_.read_tree(pid_);
  if (!u) return;
  const uint64_t cpu = u->cpu_user_us + u->cpu_system_us;
  series_.set("server_rss_bytes", second, static_cast<int64_t>(u->rss_bytes));
  series_.set("server_cpu_us", second, static_cast<int64_t>(cpu - std::min(cpu, last_cpu_us_)));
  last_cpu_us_ = cpu;
}

void ServerMonitor::end(bench::RunResult& r) {
  listen_after_ = sampler_.read_listen_drops();
  if (listen_before_ && listen_after_) {
    r.counters["kernel.listen_overflows"] =
        static_cast<int64_t>(listen_after_->listen_overflows - listen_before_->listen_overflows);
    r.counters["kernel.listen_drops"] =
        static_cast<int64_t>(listen_after_->listen_drops - listen_before_->listen_drops);
  }
  if (!before_) return;
  r.server_before = before_;
  r.server_after = sampler_.sample(pid_);
  r.series.merge(series_);
}

nlohmann::json ServerMonitor::netstat_json() const {
  if (!listen_before_ || !listen_after_) return nullptr;
  return {{"before", *listen_before_}, {"after", *listen_after_}};
}

}  // namespace tcpms::benchapp
