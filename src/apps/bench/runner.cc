#include "runner.h"

#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>

#include "driver_base.h"
#include "tcpms/server.h"

namespace tcpms::benchapp {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Turns cumulative live counters into per-second series columns.
class SeriesRecorder {
 public:
  void record(bench::TimeSeries& s, size_t second, const LiveTotals& t, int64_t sent, int64_t received) {
    s.set(bench::kSeriesConnectionsOpen, second, t.open);
    s.set(bench::kSeriesOps, second, t.ops - last_.ops);
    s.set(bench::kSeriesErrors, second, t.errors - last_.errors);
    s.set("connects", second, t.established - last_.established);
    s.set(bench::kSeriesBytesSent, second, sent - last_sent_);
    s.set(bench::kSeriesBytesReceived, second, received - last_received_);
    last_ = t;
    last_sent_ = sent;
    last_received_ = received;
  }

 private:
  LiveTotals last_;
  int64_t last_sent_ = 0, last_received_ = 0;
};

}  // namespace

bool wait_signal(int signal_fd, int timeout_ms) {
  pollfd p{signal_fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) <= 0) return false;
  signalfd_siginfo info{};
  bool got = false;
  while (::read(signal_fd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
    got = true;
    pollfd again{signal_fd, POLLIN, 0};
    if (::poll(&again, 1, 0) <= 0) break;
  }
  return got;
}

bench::RunResult run_local(Workload& workload, const CommonOptions& opt, const TargetPlan& plan,
                           const Share& process_share, int signal_fd, const RunHooks& hooks) {
  const unsigned threads = std::max(opt.threads, 1u);
  ServerConfig config;
  config.threads = threads;
  config.max_connections = 0;
  config.worker_threads = 1;
  config.loop.timer_tick_ms = 10;  // connect and reply deadlines to 10 ms
  // Declared before the server: its destructor closes the connections, and the drivers'
  // on_close still updates these counters.
  auto live = std::make_unique<LiveCounters[]>(threads);
  Server server(config);

  // TLS and WebSocket run in the engine, below the workload's handler, as on the server.
  TransportOptions transport;
  if (opt.tls) {
    TlsClientSettings tls;
    tls.ca_file = opt.tls_ca_file;
    tls.cert_file = opt.tls_cert_file;
    tls.key_file = opt.tls_key_file;
    tls.server_name = opt.tls_server_name;
    tls.max_version = opt.tls_version;
    tls.resume = opt.tls_resume;
    tls.alpn = {opt.websocket ? "http/1.1" : "mqtt"};
    std::string error;
    transport.tls = TlsContext::client(tls, error);
    if (!transport.tls) throw std::runtime_error("--tls: " + error);
  }
  if (opt.websocket) {
    transport.websocket = true;
    transport.ws.path = opt.ws_path;
    transport.ws.host = opt.targets.empty() ? "localhost" : opt.targets.front();
  }
  transport.handshake_timeout_ms = static_cast<uint32_t>(opt.connect_timeout_s * 1000);

  std::vector<LoopDriver*> drivers(threads, nullptr);
  uint8_t handler = 0;
  handler = server.add_handler([&](EventLoop& loop) -> std::unique_ptr<Handler> {
    const size_t i = loop.index();
    DriverContext ctx;
    ctx.loop = &loop;
    ctx.handler = handler;
    ctx.options = &opt;
    ctx.plan = &plan;
    ctx.share = split_share(process_share, static_cast<int>(threads), static_cast<int>(i));
    ctx.live = &live[i];
    auto d = workload.make_driver(ctx);
    drivers[i] = d.get();
    return d;
  }, transport);
  if (std::string err = server.start(); !err.empty()) throw std::runtime_error(err);

  bench::RunResult result;
  result.started_unix_ms = wall_ms();
  const auto t0 = Clock::now();
  for (unsigned i = 0; i < threads; ++i) server.loop(i).post([d = drivers[i]] { d->start(); });

  auto totals = [&] {
    LiveTotals t;
    t.elapsed_s = seconds_since(t0);
    t.done = true;
    for (unsigned i = 0; i < threads; ++i) {
      const LiveCounters& c = live[i];
      t.open += c.open.load(std::memory_order_relaxed);
      t.established += c.established.load(std::memory_order_relaxed);
      t.ops += c.ops.load(std::memory_order_relaxed);
      t.errors += c.errors.load(std::memory_order_relaxed);
      t.done = t.done && c.done.load(std::memory_order_acquire);
    }
    return t;
  };
  auto bytes = [&](bool sent) {
    int64_t n = 0;
    for (unsigned i = 0; i < threads; ++i)
      n += (sent ? live[i].bytes_sent : live[i].bytes_received).load(std::memory_order_relaxed);
    return n;
  };
  auto stop_all = [&] {
    for (unsigned i = 0; i < threads; ++i) server.loop(i).post([d = drivers[i]] { d->stop(); });
  };

  SeriesRecorder recorder;
  size_t next_second = 1;
  double next_progress_s = 0.25;
  bool stopping = false;
  double stop_deadline_s = 0;
  LiveTotals t;
  for (;;) {
    const bool signalled = wait_signal(signal_fd, 50);
    t = totals();
    if (!stopping && (signalled || t.elapsed_s >= opt.max_time_s)) {
      result.add(signalled ? "stopped_by_signal" : "stopped_by_max_time");
      stopping = true;
      stop_deadline_s = t.elapsed_s + 5;
      stop_all();
    }
    while (t.elapsed_s >= static_cast<double>(next_second)) {
      recorder.record(result.series, next_second - 1, t, bytes(true), bytes(false));
      if (hooks.on_second) hooks.on_second(next_second - 1);
      ++next_second;
    }
    if (hooks.on_progress && t.elapsed_s >= next_progress_s) {
      hooks.on_progress(t);
      next_progress_s = t.elapsed_s + 0.25;
    }
    if (t.done) break;
    if (stopping && t.elapsed_s >= stop_deadline_s) break;  // a loop that does not answer
  }
  // The last, partial second.
  recorder.record(result.series, next_second - 1, t, bytes(true), bytes(false));
  if (hooks.on_progress) hooks.on_progress(t);

  for (unsigned i = 0; i < threads; ++i) {
    // Shared: if the loop never answers, the task may still run after this wait gives up.
    auto taken = std::make_shared<std::promise<bench::RunResult>>();
    auto future = taken->get_future();
    server.loop(i).post([d = drivers[i], taken] { taken->set_value(d->take_result()); });
    if (future.wait_for(std::chrono::seconds(10)) == std::future_status::ready) {
      result.merge(future.get());
    } else {
      result.add_failure("loop_unresponsive");
    }
  }
  result.workers = 1;
  result.ended_unix_ms = wall_ms();
  if (hooks.before_teardown) hooks.before_teardown(result);
  server.stop();
  server.wait();
  return result;
}

}  // namespace tcpms::benchapp
