#include "admin_pusher.h"

#include <openssl/evp.h>

#include <charconv>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "driver_base.h"

namespace tcpms::benchapp {
namespace {

std::string base64(const std::vector<std::byte>& in) {
  std::string out(4 * ((in.size() + 2) / 3), '\0');
  const int n = ::EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

}  // namespace

bool split_host_port(const std::string& text, std::string& host, uint16_t& port) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const char* p = text.data() + colon + 1;
  const char* end = text.data() + text.size();
  auto [next, ec] = std::from_chars(p, end, port);
  return ec == std::errc{} && next == end && port != 0;
}

AdminPusher::AdminPusher(Options options, std::vector<PushJob> jobs, PayloadFn payload,
                         std::function<void()> on_done)
    : o_(std::move(options)), jobs_(std::move(jobs)), payload_(std::move(payload)), on_done_(std::move(on_done)) {}

AdminPusher::~AdminPusher() {
  cancel();
  join();
}

void AdminPusher::start() {
  const int n = std::max(1, std::min<int>(o_.concurrency, static_cast<int>(std::max<size_t>(jobs_.size(), 1))));
  running_.store(n);
  for (int i = 0; i < n; ++i) threads_.emplace_back([this] { run_thread(); });
}

void AdminPusher::join() {
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

PushOutcome AdminPusher::take_outcome() {
  std::lock_guard lock(mu_);
  return std::exchange(outcome_, PushOutcome{});
}

void AdminPusher::run_thread() {
  PushOutcome mine;
  httplib::Client http(o_.host, o_.port);
  http.set_keep_alive(true);
  // Headers and body go out in two writes: without this, Nagle holds the body until the
  // server's delayed ACK (40 ms a request).
  http.set_tcp_nodelay(true);
  const auto whole_s = static_cast<time_t>(o_.timeout_s);
  const auto rest_us = static_cast<time_t>((o_.timeout_s - static_cast<double>(whole_s)) * 1e6);
  http.set_connection_timeout(whole_s, rest_us);
  http.set_read_timeout(whole_s, rest_us);
  http.set_write_timeout(whole_s, rest_us);
  httplib::Headers headers;
  if (!o_.token.empty()) headers.emplace("Authorization", "Bearer " + o_.token);
  for (;;) {
    if (cancelled_.load(std::memory_order_relaxed)) break;
    const size_t k = next_.fetch_add(1, std::memory_order_relaxed);
    if (k >= jobs_.size()) break;
    const PushJob& job = jobs_[k];
    const uint64_t t0 = monotonic_ns();
    const nlohmann::json body = {{"topic", job.topic}, {"payload", base64(payload_(job.index))},
                                 {"encoding", "base64"}, {"qos", o_.qos}};
    auto res = http.Post("/api/v1/clients/" + job.client_id + "/send", headers, body.dump(), "application/json");
    if (!res) {
      ++mine.errors[httplib::to_string(res.error())];
      continue;
    }
    mine.round_trip.record(monotonic_ns() - t0);
    ++mine.sent;
    ++mine.statuses[res->status];
  }
  {
    std::lock_guard lock(mu_);
    outcome_.sent += mine.sent;
    for (const auto& [s, n] : mine.statuses) outcome_.statuses[s] += n;
    for (const auto& [e, n] : mine.errors) outcome_.errors[e] += n;
    outcome_.round_trip.merge(mine.round_trip);
  }
  if (running_.fetch_sub(1) == 1 && on_done_) on_done_();
}

}  // namespace tcpms::benchapp
