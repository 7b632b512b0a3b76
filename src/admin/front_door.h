// FrontDoor: one admin API for a server that runs as P worker processes (--processes P).
//
// Worker 0 serves the operator's admin port with these routes; every worker also serves its
// own admin API (the same routes as a single-process server, about itself only) on a private
// abstract Unix socket, "@tcpms-<group>-admin-<i>", and worker 0 answers its own part
// in-process. Each operator request becomes at most P + 1 requests to the workers' APIs
// (WorkerCalls: sent at once, answered in parallel) and nothing is kept per client (only
// the open taps):
//
//   /metrics, /api/v1/stats, /readyz      every worker; merged (metrics_merge.h,
//                                         front_door_merge.h); ready when all are
//   GET /api/v1/clients, /api/v1/sessions every worker, the same cursor and limit; the first
//                                         `limit` rows of all of them
//   GET /api/v1/subscriptions             every worker; the union, sorted, limited
//   GET /api/v1/clients/{id}              every worker; the one that has it answers
//   .../{id}/send, .../{id}/subscriptions, DELETE /api/v1/clients/{id},
//   DELETE /api/v1/sessions/{id}          every worker is asked who holds the id (as above),
//                                         then the holder alone does it
//   POST /api/v1/publish                  published once, by this worker (the routing layer
//                                         takes it to the others, by interest); `receivers`
//                                         adds the other workers' count of their sessions the
//                                         topic reaches (GET /api/v1/receivers)
//   /api/v1/retained (GET)                this worker (every worker holds every retained
//                                         message)
//   /api/v1/taps                          a tap on every worker (a worker sees only the
//                                         messages routed through it: a publish goes to the
//                                         workers with interest only); reads merge them
//                                         (FrontTap, the one state the front door keeps)
//   DELETE /api/v1/retained/{topic}       every worker (each holds a copy)
//
// Answers keep the single-process shapes and statuses; a worker that does not answer is left
// out of merged answers, and named in "workers_unanswered" where the answer is JSON.
//
// Thread rules: construct before the admin server starts; routes run on its worker threads.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "admin/api_routes.h"
#include "admin/front_door_merge.h"
#include "admin/metrics_merge.h"
#include "admin/worker_calls.h"

namespace tcpms::admin {

struct FrontDoorConfig {
  std::string bearer_token;      // the workers' APIs ask for the same token as this one
  PageOrder order = PageOrder::kById;
  MetricsMergeRules metrics;     // which families get a worker label
  std::vector<std::string> same_everywhere_stats;  // protocol_stats every worker holds whole
  // The protocol's router finds the worker that holds a client id through the id's home (MQTT):
  // a push by id goes to this worker's own API, a constant number of frames whatever the
  // number of workers, instead of asking every worker first.
  bool routed_push = false;
};

class FrontDoor {
 public:
  FrontDoor(WorkerCalls calls, FrontDoorConfig config);

  // The /api/v1/ routes, answered for the whole server.
  std::vector<Route> api_routes();
  // /metrics of every worker as one server's (without the admin families; the admin server
  // adds its own).
  std::string metrics();
  // /readyz: every worker answers that it is ready; `why` says which is not.
  bool ready(std::string* why = nullptr);

  static std::string socket_name(const std::string& group, unsigned index);

 private:
  // Forwards the request as it came to `worker` and answers with its answer.
  void relay(const httplib::Request& req, httplib::Response& res, unsigned worker);
  // The worker that holds client `raw_id` (as written in the request's path), or none.
  // `unsure` gets "workers_unanswered"/"worker_errors" when none was found and some worker
  // did not answer 200 or 404 (it may be the holder, restarting or stalled).
  std::optional<unsigned> holder_of(std::string_view raw_id, WorkerReply* found = nullptr,
                                    nlohmann::json* unsure = nullptr);
  // Forwards to the holder of the id in the path; when none holds it, 503 if some worker did
  // not answer, else this worker's answer (the single-process one: 404, 400...).
  void to_holder(const httplib::Request& req, httplib::Response& res, std::string_view raw_id);
  std::string forward_request(const httplib::Request& req) const;

  // A tap through the front door: one tap on each worker, read in turn; its messages get
  // this tap's own sequence numbers and ring, so ?after= works as on one process. A worker
  // whose tap is gone (it restarted, or could not open one) gets a new one at the next read.
  struct FrontTap {
    std::mutex mutex;  // one read at a time (it calls the workers)
    std::string filter;
    std::vector<std::optional<uint64_t>> ids;  // each worker's tap, none: to open
    std::vector<uint64_t> after, dropped;       // each worker's cursor and dropped count
    std::deque<nlohmann::json> ring;            // merged, oldest first, "seq" renumbered
    uint64_t seq = 0, ring_dropped = 0;
    std::chrono::steady_clock::time_point last_read;
  };
  static constexpr size_t kTapRing = 200;
  static constexpr auto kTapIdle = std::chrono::seconds(60);
  static constexpr size_t kMaxTaps = 16;

  void open_tap(const httplib::Request& req, httplib::Response& res);
  void read_tap(const httplib::Request& req, httplib::Response& res);
  void close_tap(const httplib::Request& req, httplib::Response& res);
  // Reads every worker's part of `tap` into its ring (opening the missing ones); `notes`
  // gets the workers that did not answer and those whose tap was opened again.
  void pull(FrontTap& tap, nlohmann::json& notes);
  std::shared_ptr<FrontTap> find_tap(std::string_view id);

  WorkerCalls calls_;
  FrontDoorConfig config_;
  std::mutex taps_mutex_;
  std::map<uint64_t, std::shared_ptr<FrontTap>> taps_;
  uint64_t next_tap_ = 1;
};

}  // namespace tcpms::admin
