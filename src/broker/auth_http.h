// Authentication and authorization by an HTTP service (auth.http.url; docs/auth.md, "HTTP
// service"): the operator's own system decides who may connect and what they may publish and
// subscribe to, as EMQX's HTTP authentication does.
//
// The request is a POST with a JSON body; the service answers 200 {"result": "allow"} or
// {"result": "deny"} (401 and 403 are denies too). Anything else (a timeout, a refused
// connection, another status, another body) is a failure of the service:
//
//   {"action": "connect", "client_id": "...", "username": "...", "password": "...",
//    "peer": "192.0.2.1:40122", "protocol": "5.0", "will_topic": "..."}
//   {"action": "publish" | "subscribe", "client_id": "...", "username": "...",
//    "peer": "...", "topic": "a/b"}
//
// HttpAuthService  the client: `threads` threads, each with its own keep-alive connection
//                  (cpp-httplib), a bounded queue, timeouts, and a circuit breaker that
//                  stops asking after `failure_threshold` failures in a row and tries again
//                  after `retry_after_ms`.
// HttpAuthenticator CONNECTs: the login guard (a throttled attempt is not sent), a cache
//                  of answers keyed by a digest of (client id, user, password, address) with a
//                  TTL for allows and a shorter one for denies, then the service. No loop or
//                  worker thread waits: the answer comes back on the connection's loop.
// HttpAuthorizer   PUBLISH and SUBSCRIBE: the ACL file first (when set; a deny there is
//                  final), then a cache per loop keyed by (client id, user, action, topic),
//                  then the service, while the broker holds the packet (auth.h).
//
// When the service fails or the breaker is open, `when_down` decides: deny, or fall back to
// the password file (and ACL file) as if no service were configured.
//
// Thread rules: HttpAuthService is thread-safe; the authenticator's check_async any thread;
// the authorizer's decide on loop threads, each with its own cache shard.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "auth/circuit_breaker.h"
#include "auth/decision_cache.h"
#include "broker/auth.h"
#include "broker/auth_files.h"

namespace tcpms::broker {

struct HttpAuthConfig {
  std::string url;           // http://host:port/path or https://...
  std::string bearer_token;  // sent as "Authorization: Bearer ..." when set
  uint32_t timeout_ms = 2000;          // to connect, and for the answer
  uint32_t allow_ttl_s = 60;           // how long an allow is cached (0: not cached)
  uint32_t deny_ttl_s = 10;            // how long a deny is cached
  size_t cache_entries = 100000;       // CONNECT answers; and per loop, authorization answers
  uint32_t failure_threshold = 5;      // failures in a row that open the breaker
  uint32_t retry_after_ms = 5000;      // how long it stays open before a trial request
  bool fallback_to_files = false;      // when down: false denies; true uses the files
  unsigned threads = 8;                // requests in flight at once
  size_t max_queued = 10000;           // waiting requests past which a request fails at once
  bool authorize = true;               // also ask for PUBLISH and SUBSCRIBE
};

// Splits "http://host:port/path" into the scheme-host-port cpp-httplib wants and the path;
// "" and an error when it is not an http(s) URL.
bool split_http_url(const std::string& url, std::string& origin, std::string& path,
                    std::string* error);

class HttpAuthService {
 public:
  enum class Verdict : uint8_t { kAllow, kDeny, kFailed };
  using Done = std::function<void(Verdict)>;

  explicit HttpAuthService(HttpAuthConfig config);
  ~HttpAuthService();  // stop()
  // Joins the threads; queued requests answer kFailed. Call it after the server's loops have
  // stopped and before they are destroyed: answers are posted to them. Idempotent.
  void stop();
  HttpAuthService(const HttpAuthService&) = delete;
  HttpAuthService& operator=(const HttpAuthService&) = delete;

  const HttpAuthConfig& config() const noexcept { return config_; }
  // Sends `body` (a JSON text) and runs `done` on one of the service's threads, or at once on
  // the caller's when the breaker is open or the queue full (kFailed).
  void ask(std::string body, Done done);

  struct Counters {
    std::atomic<uint64_t> requests{0}, allowed{0}, denied{0}, failed{0}, skipped_open{0};
  };
  const Counters& counters() const noexcept { return counters_; }
  const auth::CircuitBreaker& breaker() const noexcept { return breaker_; }
  void render_metrics(std::string& out) const;

 private:
  struct Job {
    std::string body;
    Done done;
  };
  void run();
  Verdict post(void* client, const std::string& body);

  const HttpAuthConfig config_;
  std::string origin_, path_;
  auth::CircuitBreaker breaker_;
  Counters counters_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;  // guarded by mu_
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

class HttpAuthenticator final : public Authenticator {
 public:
  // `files`: the login guard, and the password file for the fallback (may hold none).
  HttpAuthenticator(std::shared_ptr<HttpAuthService> service, std::shared_ptr<AuthFiles> files);
  bool enabled() const override { return true; }
  // Not used: every answer comes through check_async, and no thread waits for the service.
  AuthResult check(const ConnectInfo&) override { return AuthResult::kNotAuthorized; }
  void check_async(std::shared_ptr<const ConnectInfo> info,
                   std::shared_ptr<std::atomic<bool>> cancelled, EventLoop& loop,
                   WorkerPool& pool, Done done) override;
  void render_metrics(std::string& out) const override;

 private:
  // The service is down: deny, or the password file's answer (hashing on `pool`).
  void fall_back(std::shared_ptr<const ConnectInfo> info, std::shared_ptr<std::atomic<bool>> cancelled,
                 EventLoop& loop, WorkerPool& pool, Done done);
  std::string cache_key(const ConnectInfo& info) const;

  std::shared_ptr<HttpAuthService> service_;
  std::shared_ptr<AuthFiles> files_;
  FileAuthenticator file_check_;
  std::mutex cache_mu_;
  auth::DecisionCache cache_;
  std::atomic<uint64_t> cache_hits_{0}, fallbacks_{0};
};

class HttpAuthorizer final : public Authorizer {
 public:
  // `files`: the ACL file checked first (may hold none).
  HttpAuthorizer(std::shared_ptr<HttpAuthService> service, std::shared_ptr<AuthFiles> files);
  ~HttpAuthorizer() override;
  bool uses_username() const override { return true; }
  // Synchronous checks (the will topic at CONNECT): the ACL file only; the service decides
  // wills as part of the CONNECT (its "will_topic").
  bool can_publish(const ClientRef& who, std::string_view topic) override;
  bool can_subscribe(const ClientRef& who, std::string_view filter) override;
  Decision decide(const ClientRef& who, AclAction action, std::string_view topic, EventLoop& loop,
                  uint32_t loop_slot, std::function<void()> resume) override;
  void prepare_loops(size_t loops) override;
  void render_metrics(std::string& out) const override;

 private:
  struct Shard;  // one loop's cache and requests in flight
  std::shared_ptr<HttpAuthService> service_;
  std::shared_ptr<AuthFiles> files_;
  AclAuthorizer file_acl_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<uint64_t> cache_hits_{0}, fetches_{0}, fallbacks_{0};
};

}  // namespace tcpms::broker
