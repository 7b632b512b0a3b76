#include "driver_base.h"

#include <string.h>
#include <time.h>

#include <fmt/format.h>

#include "tcpms/connection.h"

namespace tcpms::benchapp {

std::string errno_cause(int err) {
  if (const char* name = ::strerrorname_np(err); name != nullptr) return name;
  return fmt::format("errno_{}", err);
}

std::string close_cause(CloseReason reason, int last_error) {
  switch (reason) {
    case CloseReason::kPeerClosed:
      return "closed_by_server";
    case CloseReason::kPeerReset:
      return last_error ? errno_cause(last_error) : "ECONNRESET";
    case CloseReason::kConnectFailed:
    case CloseReason::kIoError:
      return last_error ? errno_cause(last_error) : std::string(close_reason_name(reason));
    default:
      return std::string(close_reason_name(reason));
  }
}

uint64_t monotonic_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

bench::RunResult DriverBase::take_result() {
  bench::RunResult out = std::move(result_);
  result_ = bench::RunResult{};
  return out;
}

ConnId DriverBase::start_connect(uint64_t index, void* user_data) {
  int err = 0;
  ConnId id = try_connect(index, user_data, err);
  if (!id.valid()) count_failure(errno_cause(err));
  return id;
}

ConnId DriverBase::try_connect(uint64_t index, void* user_data, int& err) {
  const TargetPlan& plan = *ctx_.plan;
  const PairChoice pair = choose_pair(index, plan.targets.size(), plan.sources.sources.size());
  const sockaddr_storage* source = pair.source ? &plan.sources.sources[*pair.source].addr : nullptr;
  err = 0;
  return loop().connect(plan.targets[pair.target].addr, source, ctx_.handler, err, user_data);
}

void DriverBase::arm_timeout(ConnId id, double seconds) {
  if (Connection* c = loop().find(id); c != nullptr) c->set_timeout(ms(seconds));
}

void DriverBase::count_failure(std::string_view cause, int64_t n) {
  result_.add_failure(cause, n);
  live_.bump(live_.errors, n);
}

void DriverBase::mark_done() {
  if (done_) return;
  done_ = true;
  live_.done.store(true, std::memory_order_release);
}

}  // namespace tcpms::benchapp
