#include "broker/auth_http.h"

#include <netinet/in.h>

#include <iterator>
#include <unordered_map>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "auth/base64.h"
#include "broker/client_log.h"
#include "tcpms/connection.h"
#include "tcpms/event_loop.h"
#include "tcpms/worker_pool.h"

namespace tcpms::broker {
namespace {

using Clock = std::chrono::steady_clock;

std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// A JSON string member for bytes that may not be UTF-8 (an MQTT password is binary): the text,
// or base64 under "<name>_base64".
void put_bytes(nlohmann::json& out, const char* name, const std::string& bytes) {
  try {
    (void)nlohmann::json(bytes).dump();
    out[name] = bytes;
  } catch (const nlohmann::json::type_error&) {
    std::string b64 = auth::base64_encode(
        std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
    out[std::string(name) + "_base64"] = b64;
  }
}

std::string peer_of(const Connection* c) {
  sockaddr_storage peer{};
  if (c == nullptr || !c->peer_address(peer)) return {};
  return ClientLog::peer_text(peer);
}

const char* action_name(AclAction a) { return a == AclAction::kPublish ? "publish" : "subscribe"; }

// A deny from the service: "bad user name or password" for a client that gave a name (what
// a password check says), "not authorized" for one that did not.
AuthResult denied(const ConnectInfo& info) {
  return info.username ? AuthResult::kBadUserNameOrPassword : AuthResult::kNotAuthorized;
}

}  // namespace

bool split_http_url(const std::string& url, std::string& origin, std::string& path,
                    std::string* error) {
  size_t scheme_end = url.find("://");
  std::string scheme = scheme_end == std::string::npos ? "" : url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") {
    if (error) *error = "'" + url + "' is not an http:// or https:// URL";
    return false;
  }
  size_t slash = url.find('/', scheme_end + 3);
  origin = url.substr(0, slash);
  path = slash == std::string::npos ? "/" : url.substr(slash);
  if (origin.size() <= scheme_end + 3) {
    if (error) *error = "'" + url + "' has no host";
    return false;
  }
  return true;
}

// --- HttpAuthService ------------------------------------------------------------------------

HttpAuthService::HttpAuthService(HttpAuthConfig config)
    : config_(std::move(config)),
      breaker_(config_.failure_threshold, std::chrono::milliseconds(config_.retry_after_ms)) {
  split_http_url(config_.url, origin_, path_, nullptr);
  for (unsigned i = 0; i < std::max(1u, config_.threads); ++i) threads_.emplace_back([this] { run(); });
}

HttpAuthService::~HttpAuthService() { stop(); }

void HttpAuthService::stop() {
  std::deque<Job> left;
  {
    std::lock_guard lock(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
    left.swap(jobs_);
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  // Answered here, so that nobody waits forever (their loops, stopped by now, refuse posts).
  for (Job& j : left) j.done(Verdict::kFailed);
}

void HttpAuthService::ask(std::string body, Done done) {
  counters_.requests.fetch_add(1, std::memory_order_relaxed);
  if (!breaker_.allow(Clock::now())) {
    counters_.skipped_open.fetch_add(1, std::memory_order_relaxed);
    done(Verdict::kFailed);
    return;
  }
  {
    std::lock_guard lock(mu_);
    if (!stopping_ && jobs_.size() < config_.max_queued) {
      jobs_.push_back(Job{std::move(body), std::move(done)});
      cv_.notify_one();
      return;
    }
  }
  counters_.failed.fetch_add(1, std::memory_order_relaxed);
  breaker_.on_failure(Clock::now());
  done(Verdict::kFailed);
}

void HttpAuthService::run() {
  // One client per thread: a keep-alive connection of its own, no locking around requests.
  httplib::Client client(origin_);
  const auto timeout = std::chrono::milliseconds(config_.timeout_ms);
  client.set_connection_timeout(timeout);
  client.set_read_timeout(timeout);
  client.set_write_timeout(timeout);
  client.set_keep_alive(true);
  // Headers and body leave in separate writes: without this, Nagle and the peer's delayed
  // ACK add ~40 ms to every question.
  client.set_tcp_nodelay(true);
  if (!config_.bearer_token.empty()) client.set_bearer_token_auth(config_.bearer_token);
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    Verdict v = post(&client, job.body);
    if (v == Verdict::kFailed) {
      counters_.failed.fetch_add(1, std::memory_order_relaxed);
      breaker_.on_failure(Clock::now());
    } else {
      (v == Verdict::kAllow ? counters_.allowed : counters_.denied).fetch_add(1, std::memory_order_relaxed);
      breaker_.on_success();
    }
    job.done(v);
  }
}

HttpAuthService::Verdict HttpAuthService::post(void* c, const std::string& body) {
  auto& client = *static_cast<httplib::Client*>(c);
  httplib::Result r = client.Post(path_, body, "application/json");
  if (!r) return Verdict::kFailed;
  if (r->status == 401 || r->status == 403) return Verdict::kDeny;
  if (r->status != 200) return Verdict::kFailed;
  auto j = nlohmann::json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Verdict::kFailed;
  auto result = j.find("result");
  if (result == j.end() || !result->is_string()) return Verdict::kFailed;
  if (*result == "allow") return Verdict::kAllow;
  if (*result == "deny") return Verdict::kDeny;
  return Verdict::kFailed;
}

void HttpAuthService::render_metrics(std::string& out) const {
  auto it = std::back_inserter(out);
  auto v = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  fmt::format_to(it,
                 "# HELP tcpms_mqtt_auth_http_requests_total Questions for the HTTP auth "
                 "service, by outcome (skipped: the circuit breaker was open).\n"
                 "# TYPE tcpms_mqtt_auth_http_requests_total counter\n"
                 "tcpms_mqtt_auth_http_requests_total{{outcome=\"allow\"}} {}\n"
                 "tcpms_mqtt_auth_http_requests_total{{outcome=\"deny\"}} {}\n"
                 "tcpms_mqtt_auth_http_requests_total{{outcome=\"failed\"}} {}\n"
                 "tcpms_mqtt_auth_http_requests_total{{outcome=\"skipped\"}} {}\n"
                 "# HELP tcpms_mqtt_auth_http_breaker_open 1 while the HTTP auth service is taken "
                 "to be down.\n"
                 "# TYPE tcpms_mqtt_auth_http_breaker_open gauge\n"
                 "tcpms_mqtt_auth_http_breaker_open {}\n"
                 "# HELP tcpms_mqtt_auth_http_breaker_opened_total Times the circuit breaker "
                 "opened.\n"
                 "# TYPE tcpms_mqtt_auth_http_breaker_opened_total counter\n"
                 "tcpms_mqtt_auth_http_breaker_opened_total {}\n",
                 v(counters_.allowed), v(counters_.denied), v(counters_.failed),
                 v(counters_.skipped_open),
                 breaker_.state() == auth::CircuitBreaker::State::kClosed ? 0 : 1,
                 breaker_.opened_total());
}

// --- HttpAuthenticator ----------------------------------------------------------------------

HttpAuthenticator::HttpAuthenticator(std::shared_ptr<HttpAuthService> service,
                                     std::shared_ptr<AuthFiles> files)
    : service_(std::move(service)),
      files_(files),
      file_check_(files),
      cache_(service_->config().cache_entries) {}

std::string HttpAuthenticator::cache_key(const ConnectInfo& info) const {
  // A digest, so that the cache holds no password. The address (not the port) is part of it:
  // the service may decide by where a client comes from.
  std::string material;
  auto field = [&](std::string_view s) {
    material += std::to_string(s.size());
    material += ':';
    material += s;
  };
  field(info.client_id);
  field(info.username.value_or(""));
  field(info.password.value_or(""));
  field(info.will_topic.value_or(""));
  if (info.peer.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(info.peer).sin_addr;
    field(std::string_view(reinterpret_cast<const char*>(&a), sizeof a));
  } else if (info.peer.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(info.peer).sin6_addr;
    field(std::string_view(reinterpret_cast<const char*>(&a), sizeof a));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(material.data(), material.size(), digest, &n, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(digest), n);
}

void HttpAuthenticator::fall_back(std::shared_ptr<const ConnectInfo> info,
                                  std::shared_ptr<std::atomic<bool>> cancelled, EventLoop& loop,
                                  WorkerPool& pool, Done done) {
  fallbacks_.fetch_add(1, std::memory_order_relaxed);
  if (service_->config().fallback_to_files) {
    file_check_.check_async(std::move(info), std::move(cancelled), loop, pool, std::move(done));
    return;
  }
  info->why = "the HTTP auth service is unavailable (auth.http.when_down = deny)";
  loop.post([done = std::move(done)] { done(AuthResult::kNotAuthorized); });
}

void HttpAuthenticator::check_async(std::shared_ptr<const ConnectInfo> info,
                                    std::shared_ptr<std::atomic<bool>> cancelled, EventLoop& loop,
                                    WorkerPool& pool, Done done) {
  const HttpAuthConfig& cfg = service_->config();
  const auto now = Clock::now();
  // The login guard first: a throttled attempt costs the service nothing.
  std::optional<auth::IpKey> ip = auth::ip_key_from_sockaddr(reinterpret_cast<const sockaddr*>(&info->peer));
  const std::string user = info->username.value_or("");
  if (ip) {
    switch (files_->login_guard().try_acquire(*ip, user, now)) {
      case auth::LoginGuard::Verdict::kGo: break;
      case auth::LoginGuard::Verdict::kUserThrottled:
        info->why = "throttled: too many failed logins for this user from this address";
        loop.post([done] { done(AuthResult::kNotAuthorized); });
        return;
      case auth::LoginGuard::Verdict::kAddressThrottled:
        info->why = "throttled: too many failed logins from this address";
        loop.post([done] { done(AuthResult::kNotAuthorized); });
        return;
    }
  }
  // What the guard is told once the answer is known (a success refunds its token).
  auto settle = [files = files_, ip, user](AuthResult r) {
    if (ip && r == AuthResult::kAccept) files->login_guard().on_success(*ip, user, Clock::now());
  };
  std::string key = cache_key(*info);
  {
    std::lock_guard lock(cache_mu_);
    if (auto hit = cache_.get(key, now)) {
      cache_hits_.fetch_add(1, std::memory_order_relaxed);
      AuthResult r = *hit ? AuthResult::kAccept : denied(*info);
      if (!*hit) info->why = "denied by the HTTP auth service (cached answer)";
      settle(r);
      loop.post([done, r] { done(r); });
      return;
    }
  }
  nlohmann::json body = {{"action", "connect"},
                         {"client_id", info->client_id},
                         {"peer", ClientLog::peer_text(info->peer)},
                         {"protocol", ClientLog::version_name(info->version)}};
  if (info->username) body["username"] = *info->username;
  if (info->password) put_bytes(body, "password", *info->password);
  if (info->will_topic) body["will_topic"] = *info->will_topic;
  if (cancelled->load(std::memory_order_relaxed)) return;  // the client left: nothing to answer
  service_->ask(dump(body), [this, info, cancelled, &loop, &pool, done, key = std::move(key),
                             settle, allow_ttl = std::chrono::seconds(cfg.allow_ttl_s),
                             deny_ttl = std::chrono::seconds(cfg.deny_ttl_s)](HttpAuthService::Verdict v) {
    if (v == HttpAuthService::Verdict::kFailed) {
      // On whichever thread the service answered; the fallback posts to the loop itself.
      fall_back(info, cancelled, loop, pool, [done, settle](AuthResult r) {
        settle(r);
        done(r);
      });
      return;
    }
    const bool allow = v == HttpAuthService::Verdict::kAllow;
    {
      std::lock_guard lock(cache_mu_);
      cache_.put(key, allow, allow ? Clock::duration(allow_ttl) : Clock::duration(deny_ttl), Clock::now());
    }
    AuthResult r = allow ? AuthResult::kAccept : denied(*info);
    if (!allow) info->why = "denied by the HTTP auth service";
    settle(r);
    loop.post([done, r] { done(r); });
  });
}

void HttpAuthenticator::render_metrics(std::string& out) const {
  service_->render_metrics(out);
  files_->render_metrics(out);
  fmt::format_to(std::back_inserter(out),
                 "# HELP tcpms_mqtt_auth_http_connect_cache_hits_total CONNECTs answered from the "
                 "HTTP auth cache.\n"
                 "# TYPE tcpms_mqtt_auth_http_connect_cache_hits_total counter\n"
                 "tcpms_mqtt_auth_http_connect_cache_hits_total {}\n"
                 "# HELP tcpms_mqtt_auth_http_fallbacks_total Answers made by the when_down "
                 "policy because the HTTP auth service failed or its breaker was open.\n"
                 "# TYPE tcpms_mqtt_auth_http_fallbacks_total counter\n"
                 "tcpms_mqtt_auth_http_fallbacks_total{{check=\"connect\"}} {}\n",
                 cache_hits_.load(std::memory_order_relaxed), fallbacks_.load(std::memory_order_relaxed));
}

// --- HttpAuthorizer -------------------------------------------------------------------------

struct HttpAuthorizer::Shard {
  explicit Shard(size_t entries) : cache(entries) {}
  auth::DecisionCache cache;
  // Questions in flight: key -> the packets waiting for it (their resume callbacks).
  std::unordered_map<std::string, std::vector<std::function<void()>>> waiting;
};

HttpAuthorizer::HttpAuthorizer(std::shared_ptr<HttpAuthService> service,
                               std::shared_ptr<AuthFiles> files)
    : service_(std::move(service)), files_(files), file_acl_(files) {}

HttpAuthorizer::~HttpAuthorizer() = default;

void HttpAuthorizer::prepare_loops(size_t loops) {
  shards_.clear();
  for (size_t i = 0; i < loops; ++i)
    shards_.push_back(std::make_unique<Shard>(service_->config().cache_entries));
}

bool HttpAuthorizer::can_publish(const ClientRef& who, std::string_view topic) {
  return file_acl_.can_publish(who, topic);
}

bool HttpAuthorizer::can_subscribe(const ClientRef& who, std::string_view filter) {
  return file_acl_.can_subscribe(who, filter);
}

Decision HttpAuthorizer::decide(const ClientRef& who, AclAction action, std::string_view topic,
                                EventLoop& loop, uint32_t loop_slot, std::function<void()> resume) {
  // The ACL file first: it is in memory, and its deny is final.
  const bool file_ok = action == AclAction::kPublish ? file_acl_.can_publish(who, topic)
                                                     : file_acl_.can_subscribe(who, topic);
  if (!file_ok) return Decision::kDeny;
  if (!service_->config().authorize || loop_slot >= shards_.size()) return Decision::kAllow;
  Shard& shard = *shards_[loop_slot];
  std::string key;
  key.reserve(who.client_id.size() + topic.size() + 32);
  for (std::string_view part : {who.client_id, who.username.value_or(std::string_view()),
                                std::string_view(action_name(action)), topic}) {
    key += std::to_string(part.size());
    key += ':';
    key += part;
  }
  const auto now = Clock::now();
  if (auto hit = shard.cache.get(key, now)) {
    cache_hits_.fetch_add(1, std::memory_order_relaxed);
    return *hit ? Decision::kAllow : Decision::kDeny;
  }
  auto [it, first] = shard.waiting.try_emplace(key);
  it->second.push_back(std::move(resume));
  if (!first) return Decision::kPending;  // already asked: wait for that answer
  fetches_.fetch_add(1, std::memory_order_relaxed);
  nlohmann::json body = {{"action", action_name(action)},
                         {"client_id", who.client_id},
                         {"peer", peer_of(who.conn)},
                         {"topic", topic}};
  if (who.username) body["username"] = *who.username;
  const HttpAuthConfig& cfg = service_->config();
  service_->ask(dump(body), [this, &shard, &loop, key,
                             allow_ttl = std::chrono::seconds(cfg.allow_ttl_s),
                             deny_ttl = std::chrono::seconds(cfg.deny_ttl_s),
                             fallback = cfg.fallback_to_files](HttpAuthService::Verdict v) {
    bool allow = v == HttpAuthService::Verdict::kAllow;
    // A failed service: deny, or what the ACL file said (it allowed, or it would not be
    // asked); cached briefly either way, so the packet can be decided when it is read again.
    Clock::duration ttl = allow ? Clock::duration(allow_ttl) : Clock::duration(deny_ttl);
    if (v == HttpAuthService::Verdict::kFailed) {
      fallbacks_.fetch_add(1, std::memory_order_relaxed);
      allow = fallback;
      ttl = std::chrono::seconds(1);
    }
    loop.post([&shard, key, allow, ttl] {
      // At least a second: the held packet is read again right after its resume runs.
      shard.cache.put(key, allow, std::max<Clock::duration>(ttl, std::chrono::seconds(1)), Clock::now());
      auto w = shard.waiting.find(key);
      if (w == shard.waiting.end()) return;
      std::vector<std::function<void()>> resumes = std::move(w->second);
      shard.waiting.erase(w);
      for (auto& r : resumes) r();
    });
  });
  return Decision::kPending;
}

void HttpAuthorizer::render_metrics(std::string& out) const {
  fmt::format_to(std::back_inserter(out),
                 "# HELP tcpms_mqtt_auth_http_acl_cache_hits_total PUBLISH/SUBSCRIBE decided from "
                 "the per-loop HTTP authorization cache.\n"
                 "# TYPE tcpms_mqtt_auth_http_acl_cache_hits_total counter\n"
                 "tcpms_mqtt_auth_http_acl_cache_hits_total {}\n"
                 "# HELP tcpms_mqtt_auth_http_acl_fetches_total PUBLISH/SUBSCRIBE decisions asked "
                 "of the HTTP service (the packet waited).\n"
                 "# TYPE tcpms_mqtt_auth_http_acl_fetches_total counter\n"
                 "tcpms_mqtt_auth_http_acl_fetches_total {}\n"
                 "# HELP tcpms_mqtt_auth_http_acl_fallbacks_total PUBLISH/SUBSCRIBE decided by the "
                 "when_down policy.\n"
                 "# TYPE tcpms_mqtt_auth_http_acl_fallbacks_total counter\n"
                 "tcpms_mqtt_auth_http_acl_fallbacks_total {}\n",
                 cache_hits_.load(std::memory_order_relaxed), fetches_.load(std::memory_order_relaxed),
                 fallbacks_.load(std::memory_order_relaxed));
}

}  // namespace tcpms::broker
