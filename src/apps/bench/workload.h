// How a workload plugs into tcpms-bench: one file implementing Workload (its subcommand, its
// flags, and a LoopDriver per event loop) plus one line in workload_registry.cc. The bench
// does the rest: planning, worker processes, pacing help, progress, merging, output.
//
//   class MqttConnWorkload final : public Workload {
//     std::string_view name() const override { return "mqtt-conn"; }
//     void add_options(CLI::App& cmd) override { cmd.add_option("--qos", qos_); }
//     std::unique_ptr<LoopDriver> make_driver(const DriverContext& ctx) override {...}
//     ...
//   };
//
// Threads: a Workload is built and configured on the main thread. make_driver() is called on
// the main thread (from Server::start); the driver it returns then lives on its loop's thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "benchkit/report.h"
#include "options.h"
#include "split.h"
#include "targets.h"
#include "tcpms/event_loop.h"
#include "tcpms/handler.h"

namespace CLI {
class App;
}

namespace tcpms::benchapp {

// What a driver shows while it runs. Each field has one writer (the loop thread); the main
// thread reads them for the progress line and the per-second series.
struct LiveCounters {
  std::atomic<int64_t> open{0};         // connections open now
  std::atomic<int64_t> established{0};  // connects that completed
  std::atomic<int64_t> ops{0};          // completed operations (see the workload's definition)
  std::atomic<int64_t> errors{0};       // failures of any cause
  std::atomic<int64_t> bytes_sent{0};
  std::atomic<int64_t> bytes_received{0};
  std::atomic<bool> done{false};        // the driver finished its work (release/acquire)

  void bump(std::atomic<int64_t>& c, int64_t n = 1) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
};

// Where the targets and sources are (shared, read-only).
struct TargetPlan {
  std::vector<Endpoint> targets;
  SourcePlan sources;
};

struct DriverContext {
  EventLoop* loop = nullptr;
  uint8_t handler = 0;  // this driver's handler index, for EventLoop::connect
  const CommonOptions* options = nullptr;
  const TargetPlan* plan = nullptr;
  Share share;  // this loop's part of the run
  LiveCounters* live = nullptr;
};

// One per event loop: a Handler for the loop's outbound connections plus the workload's state
// machine. Every method runs on the loop's thread.
class LoopDriver : public Handler {
 public:
  // Begin the workload (posted to the loop once the Server runs).
  virtual void start() = 0;
  // End early (Ctrl-C, --max-time): stop starting work, count what is in flight, mark done.
  virtual void stop() = 0;
  // The result so far; the bench calls it once done is set (from a task on this loop), and
  // the driver starts a fresh one so late callbacks cannot race the caller.
  virtual bench::RunResult take_result() = 0;
};

class Workload {
 public:
  virtual ~Workload() = default;
  virtual std::string_view name() const = 0;
  virtual std::string_view description() const = 0;
  // Registers this workload's own flags on its subcommand.
  virtual void add_options(CLI::App& cmd) = 0;
  // Checks those flags against the shared ones; empty when fine.
  virtual std::string validate(const CommonOptions& common) const { return {}; }
  // This workload's flags, for RunResult::parameters.
  virtual nlohmann::json parameters() const = 0;
  // --connections when not given: connections to open, or cycles (0: bounded by time only).
  virtual int64_t default_connections() const { return 1000; }
  // The most connections the whole run holds open at once: sizes the worker processes and
  // the source-address plan.
  virtual int64_t peak_connections(const CommonOptions& common) const = 0;
  // What a run is split into: connections (or cycles), rate, pending cap.
  virtual Share whole_share(const CommonOptions& common) const;
  virtual std::unique_ptr<LoopDriver> make_driver(const DriverContext& ctx) = 0;
  // In the parent, after every worker's result is merged: add derived numbers (rates, times)
  // as counters, and summary lines of its own.
  virtual void finalize(bench::RunResult& merged, const CommonOptions& common) const {}
};

// Every workload, in the order the help lists them (workload_registry.cc).
std::vector<std::unique_ptr<Workload>> make_workloads();

}  // namespace tcpms::benchapp
