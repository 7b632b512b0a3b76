// AdminPusher: pushes one message to each of a list of MQTT clients by client id through
// tcpms's admin API (POST /api/v1/clients/{id}/send, docs/control-plane.md), from a few
// threads, each with one keep-alive HTTP/1.1 connection (cpp-httplib, blocking): at most
// `concurrency` requests are in flight, which keeps well inside the API's cap on requests in
// progress. Each request's payload is made right before it is sent, so a stamp in it is the
// send time.
//
// Threads: construct, start, cancel, join and take_outcome on one thread (a bench loop's);
// `payload` runs on the pusher's threads (concurrently), and `on_done` on the last one to
// finish, once.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "benchkit/histogram.h"

namespace tcpms::benchapp {

struct PushJob {
  uint64_t index = 0;     // handed back to `payload`
  std::string client_id;  // the path's {id}
  std::string topic;      // the topic the client receives it on
};

// What the pushes got back.
struct PushOutcome {
  int64_t sent = 0;                       // requests that got an HTTP answer
  std::map<int, int64_t> statuses;        // HTTP status -> count
  std::map<std::string, int64_t> errors;  // no answer, by cpp-httplib's error name
  bench::Histogram round_trip;            // request sent -> answer read (ns)
};

class AdminPusher {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    uint16_t port = 0;
    std::string token;  // Authorization: Bearer, when set
    int concurrency = 4;
    int qos = 0;
    double timeout_s = 10;  // connect, and read each answer
  };
  using PayloadFn = std::function<std::vector<std::byte>(uint64_t index)>;

  AdminPusher(Options options, std::vector<PushJob> jobs, PayloadFn payload, std::function<void()> on_done);
  ~AdminPusher();  // cancel() and join()
  AdminPusher(const AdminPusher&) = delete;
  AdminPusher& operator=(const AdminPusher&) = delete;

  void start();
  // No request starts after this; those in flight finish (or time out).
  void cancel() noexcept { cancelled_.store(true, std::memory_order_relaxed); }
  void join();
  // Everything the threads recorded; call after on_done ran or after join().
  PushOutcome take_outcome();

 private:
  void run_thread();

  const Options o_;
  const std::vector<PushJob> jobs_;
  const PayloadFn payload_;
  const std::function<void()> on_done_;
  std::vector<std::thread> threads_;
  std::atomic<size_t> next_{0};
  std::atomic<bool> cancelled_{false};
  std::atomic<int> running_{0};
  std::mutex mu_;
  PushOutcome outcome_;  // under mu_
};

// "HOST:PORT" -> host and port; false if it is not that shape.
bool split_host_port(const std::string& text, std::string& host, uint16_t& port);

}  // namespace tcpms::benchapp
