// WorkerCalls: the front door's line to the admin APIs of a server's worker processes
// (front_door.h). A call sends one HTTP/1.1 request to several workers at once and waits for
// every answer: the requests leave first (non-blocking sockets), then this worker's own API
// answers in-process on the calling thread, then one poll() collects the others. So a call to
// P workers costs P requests on P short connections and the time of the slowest worker, not
// the sum. No connection is kept between calls: the workers' APIs are on Unix sockets, where
// a connect costs microseconds, and a restarted worker is simply found again. A Unix socket
// whose listener runs as another user is not sent the request (abstract names can be taken
// by anyone on the host; the request may carry the admin token).
//
// Thread rules: any thread but an event loop's (a call blocks up to its timeout); calls may
// run on several threads at once.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "admin/http_reply.h"
#include "tcpms/endpoint.h"

namespace tcpms::admin {

// A worker's answer, or why there is none (status 0).
struct WorkerReply {
  unsigned worker = 0;
  HttpReply http;     // http.status == 0: no answer
  std::string error;  // "worker 2: connect: Connection refused"
  bool answered() const { return http.status != 0; }
};

class WorkerCalls {
 public:
  // `local` answers a whole request with whole response bytes (this worker's own
  // HttpDispatcher); `workers[self]` is not dialled.
  using LocalAnswer = std::function<std::string(std::string_view request)>;
  static constexpr size_t kMaxReplyBytes = 64u << 20;

  WorkerCalls(unsigned self, std::vector<Endpoint> workers, LocalAnswer local,
              std::chrono::milliseconds timeout);

  unsigned count() const noexcept { return static_cast<unsigned>(workers_.size()); }
  unsigned self() const noexcept { return self_; }

  // `request` to each worker in `to`, answers in the same order.
  std::vector<WorkerReply> call(const std::vector<unsigned>& to, std::string_view request) const;
  std::vector<WorkerReply> call_all(std::string_view request) const;
  WorkerReply call_one(unsigned worker, std::string_view request) const;

 private:
  unsigned self_;
  std::vector<Endpoint> workers_;
  LocalAnswer local_;
  std::chrono::milliseconds timeout_;
};

// "GET /metrics HTTP/1.1" with Host, Connection: close, the bearer token when there is one,
// and the body with its Content-Type and Content-Length.
std::string make_request(std::string_view method, std::string_view target, std::string_view token,
                         std::string_view body = {}, std::string_view content_type = {});

// Percent-encodes everything but RFC 3986's unreserved characters (for a query value).
std::string url_encode(std::string_view text);

}  // namespace tcpms::admin
