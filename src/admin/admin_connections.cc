#include "admin/admin_connections.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "admin/http_dispatcher.h"
#include "tcpms/connection.h"

namespace tcpms::admin {

struct AdminConnections::State {
  std::string in;  // received, not yet answered
  FramerState framer;
  std::string ip;  // also the per-source key ("" for a Unix socket peer)
  int port = 0;
  std::list<ConnId>::iterator in_all, in_source;
  bool listed = false;
  uint64_t deadline_timer = 0;  // 0: none
  uint32_t requests = 0;
  bool waiting = false;  // a worker has its request; reading is paused
};

namespace {

void peer_of(Connection& c, std::string& ip, int& port) {
  sockaddr_storage ss{};
  if (!c.peer_address(ss)) return;
  char text[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(ss);
    ::inet_ntop(AF_INET, &a.sin_addr, text, sizeof text);
    port = ntohs(a.sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(ss);
    ::inet_ntop(AF_INET6, &a.sin6_addr, text, sizeof text);
    port = ntohs(a.sin6_port);
  }
  ip = text;
}

// A Unix socket peer that may use this API: the same user as this process, or root. An
// abstract socket has no permissions and the API asks no token of a Unix peer (it counts as
// loopback), so the peer's credentials are the only check. A TCP peer passes (the token and
// the listen address guard it). Refusals are logged at most once per 10 s, with a count.
bool unix_peer_allowed(const Connection& c) {
  sockaddr_storage own{};
  socklen_t len = sizeof own;
  if (::getsockname(c.fd(), reinterpret_cast<sockaddr*>(&own), &len) != 0) return false;
  if (own.ss_family != AF_UNIX) return true;
  ucred cred{};
  socklen_t cred_len = sizeof cred;
  const bool known = ::getsockopt(c.fd(), SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) == 0;
  if (known && (cred.uid == ::geteuid() || cred.uid == 0)) return true;
  static std::atomic<uint64_t> refused{0};
  static std::atomic<int64_t> last_log_s{0};
  const uint64_t n = refused.fetch_add(1) + 1;
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::steady_clock::now().time_since_epoch()).count();
  int64_t last = last_log_s.load();
  if ((last == 0 || now - last >= 10) && last_log_s.compare_exchange_strong(last, now)) {
    if (known)
      std::fprintf(stderr, "tcpms-server: admin: refused a Unix socket peer of uid %u pid %d "
                   "(only uid %u or root may use it; %llu refused so far)\n",
                   static_cast<unsigned>(cred.uid), static_cast<int>(cred.pid),
                   static_cast<unsigned>(::geteuid()), static_cast<unsigned long long>(n));
    else
      std::fprintf(stderr, "tcpms-server: admin: refused a Unix socket peer whose credentials "
                   "could not be read (%llu refused so far)\n", static_cast<unsigned long long>(n));
  }
  return false;
}

const char* status_text(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
  }
  return "Error";
}

// An answer made on the loop, without cpp-httplib: the same JSON error shape as the routes.
std::string error_response(int status, std::string_view message, bool close) {
  std::string body = nlohmann::json{{"error", message}}.dump() + "\n";
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + status_text(status) +
                    "\r\nContent-Type: application/json\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n";
  if (status == 503) out += "Retry-After: 1\r\n";
  out += close ? "Connection: close\r\n\r\n" : "\r\n";
  return out + body;
}

// Routes that never wait for anything are answered on the loop, so health probes and the
// dashboard page keep working while every worker is busy.
bool answer_on_loop(std::string_view request, bool readyz) {
  size_t sp = request.find(' ');
  if (sp == std::string_view::npos) return false;
  std::string_view method = request.substr(0, sp);
  if (method != "GET" && method != "HEAD") return false;
  std::string_view target = request.substr(sp + 1, request.find(' ', sp + 1) - sp - 1);
  std::string_view path = target.substr(0, target.find('?'));
  return path == "/healthz" || (readyz && path == "/readyz") || path == "/";
}

}  // namespace

AdminConnections::AdminConnections(EventLoop& loop, WorkerPool& workers,
                                   HttpDispatcher& dispatcher, const ConnectionLimits& limits,
                                   AdminStats& stats, bool readyz_on_loop)
    : loop_(loop),
      workers_(workers),
      dispatcher_(dispatcher),
      limits_(limits),
      stats_(stats),
      readyz_on_loop_(readyz_on_loop) {}

AdminConnections::~AdminConnections() = default;

Action AdminConnections::on_open(Connection& c) {
  if (!unix_peer_allowed(c)) return Action::kClose;
  auto* s = new State;
  c.set_user_data(s);
  peer_of(c, s->ip, s->port);
  auto source = by_source_.find(s->ip);
  if ((source != by_source_.end() && source->second.size() >= limits_.max_connections_per_source &&
       !evict_oldest(source->second)) ||
      (all_.size() >= limits_.max_connections && !evict_oldest(all_))) {
    stats_.refused.add();
    return Action::kClose;
  }
  std::list<ConnId>& same_source = by_source_[s->ip];  // after evictions, which may drop entries
  s->in_all = all_.insert(all_.end(), c.id());
  s->in_source = same_source.insert(same_source.end(), c.id());
  s->listed = true;
  stats_.connections.add();
  arm_deadline(c, *s);
  return Action::kKeep;
}

bool AdminConnections::evict_oldest(std::list<ConnId>& list) {
  for (ConnId id : list) {
    Connection* c = loop_.find(id);
    State* s = c ? c->user<State>() : nullptr;
    if (s == nullptr || s->waiting) continue;
    forget(*s);  // counts and lists are exact at once; the close itself comes later
    stats_.evicted.add();
    c->close(CloseReason::kKicked);
    return true;
  }
  return false;
}

void AdminConnections::forget(State& s) {
  if (!s.listed) return;
  s.listed = false;
  all_.erase(s.in_all);
  auto it = by_source_.find(s.ip);
  it->second.erase(s.in_source);
  if (it->second.empty()) by_source_.erase(it);
  stats_.connections.sub();
  if (s.deadline_timer != 0) loop_.cancel_timer(s.deadline_timer);
  s.deadline_timer = 0;
}

void AdminConnections::on_close(Connection& c, CloseReason) {
  auto* s = c.user<State>();
  if (s == nullptr) return;
  forget(*s);
  c.set_user_data(nullptr);
  delete s;  // a worker still busy with its request answers into a ConnId that is gone
}

void AdminConnections::arm_deadline(Connection& c, State& s) {
  if (s.deadline_timer != 0) loop_.cancel_timer(s.deadline_timer);
  s.deadline_timer = loop_.run_after(limits_.request_timeout_ms, [this, id = c.id()] {
    Connection* conn = loop_.find(id);
    State* st = conn ? conn->user<State>() : nullptr;
    if (st == nullptr || st->waiting) return;
    st->deadline_timer = 0;
    stats_.timeouts.add();
    conn->close(CloseReason::kIdleTimeout);
  });
}

DataResult AdminConnections::on_data(Connection& c, ByteView data) {
  State& s = *c.user<State>();
  // Copied into the connection's own buffer (bounded by the framer's limits, which are
  // checked on every call) rather than left to the engine, so each byte is scanned once.
  s.in.append(as_chars(data));
  return {data.size(), s.waiting ? Action::kKeep : process(c, s)};
}

Action AdminConnections::process(Connection& c, State& s) {
  while (!s.waiting) {
    FrameResult r = frame_request(s.in, s.framer, limits_.framer);
    if (r.status == FrameStatus::kNeedMore) {
      if (r.wants_continue) c.send(as_bytes(std::string_view("HTTP/1.1 100 Continue\r\n\r\n")));
      return Action::kKeep;
    }
    if (r.status == FrameStatus::kError) {
      stats_.rejected_framing.add();
      s.in.clear();
      std::string why(r.reason);
      if (r.http_status == 413)  // the same words as for a declared length (http_json's)
        why = "request body larger than " + std::to_string(limits_.framer.max_body_bytes) + " bytes";
      c.send(as_bytes(error_response(r.http_status, why, true)));
      return Action::kCloseAfterFlush;
    }
    std::string request = s.in.substr(0, r.request_bytes);
    s.in.erase(0, r.request_bytes);
    s.framer = {};
    ++s.requests;
    if (Action a = dispatch(c, s, std::move(request)); a != Action::kKeep) return a;
  }
  return Action::kKeep;
}

Action AdminConnections::dispatch(Connection& c, State& s, std::string request) {
  bool close = s.requests >= limits_.max_requests_per_connection;
  if (answer_on_loop(request, readyz_on_loop_)) {
    std::string out = dispatcher_.answer(request, s.ip, s.port, close);
    stats_.requests.add();
    c.send(as_bytes(out));
    if (close) return Action::kCloseAfterFlush;
    arm_deadline(c, s);
    return Action::kKeep;
  }
  if (queued_ >= limits_.max_queued_requests) {
    stats_.busy.add();
    c.send(as_bytes(error_response(
        503, "the admin API has " + std::to_string(queued_) + " requests in progress; try again",
        close)));
    if (close) return Action::kCloseAfterFlush;
    arm_deadline(c, s);
    return Action::kKeep;
  }
  ++queued_;
  s.waiting = true;
  if (s.deadline_timer != 0) loop_.cancel_timer(s.deadline_timer);
  s.deadline_timer = 0;
  c.pause_reading();
  struct Job {
    std::string request, response, ip;
    int port = 0;
    bool close = false;
  };
  auto job = std::make_shared<Job>(Job{std::move(request), {}, s.ip, s.port, close});
  workers_.offload(
      loop_, [this, job] { job->response = dispatcher_.answer(job->request, job->ip, job->port, job->close); },
      [this, job, id = c.id()] { answered(id, std::move(job->response), job->close); });
  return Action::kKeep;
}

void AdminConnections::answered(ConnId id, std::string response, bool close) {
  --queued_;
  stats_.requests.add();
  Connection* c = loop_.find(id);
  State* s = c ? c->user<State>() : nullptr;
  if (s == nullptr) return;  // the client went away meanwhile
  s->waiting = false;
  c->send(as_bytes(response));
  if (close) {
    c->close_after_flush();
    return;
  }
  arm_deadline(*c, *s);
  c->resume_reading();
  // A request pipelined behind this one may already be buffered.
  switch (process(*c, *s)) {
    case Action::kKeep: break;
    case Action::kClose: c->close(CloseReason::kProtocol); break;
    case Action::kCloseAfterFlush: c->close_after_flush(); break;
  }
}

}  // namespace tcpms::admin
