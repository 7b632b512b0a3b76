#include "broker/auth_files.h"

#include <chrono>
#include <iterator>

#include <fmt/format.h>

namespace tcpms::broker {

std::shared_ptr<AuthFiles> AuthFiles::load(AuthFilesConfig config, std::string* error) {
  std::shared_ptr<AuthFiles> f(new AuthFiles(std::move(config)));
  const AuthFilesConfig& c = f->config_;
  if (!c.password_file.empty()) {
    auto db = auth::load_password_file(c.password_file);
    if (!db) {
      *error = db.error();
      return nullptr;
    }
    f->passwords_ = std::make_unique<auth::Snapshot<auth::PasswordDb>>(*db);
  }
  if (!c.acl_file.empty()) {
    auto acl = auth::load_acl_file(c.acl_file);
    if (!acl) {
      *error = acl.error();
      return nullptr;
    }
    f->acl_ = std::make_unique<auth::Snapshot<auth::Acl>>(*acl);
  }
  f->guard_ = std::make_unique<auth::LoginGuard>(c.login_guard);
  return f;
}

std::vector<AuthFiles::ReloadLine> AuthFiles::reload() {
  std::vector<ReloadLine> lines;
  auto done = [&](bool ok, std::string text) {
    (ok ? counters_.reloads_ok : counters_.reloads_failed).fetch_add(1, std::memory_order_relaxed);
    lines.push_back({ok, std::move(text)});
  };
  if (passwords_) {
    auto db = auth::load_password_file(config_.password_file);
    if (db) {
      size_t n = (*db)->size();
      passwords_->store(std::move(*db));
      done(true, fmt::format("reloaded {} ({} users)", config_.password_file, n));
    } else {
      done(false, fmt::format("{}; keeping the old passwords", db.error()));
    }
  }
  if (acl_) {
    auto acl = auth::load_acl_file(config_.acl_file);
    if (acl) {
      size_t n = (*acl)->rule_count();
      acl_->store(std::move(*acl));
      done(true, fmt::format("reloaded {} ({} rules)", config_.acl_file, n));
    } else {
      done(false, fmt::format("{}; keeping the old rules", acl.error()));
    }
  }
  return lines;
}

void AuthFiles::render_metrics(std::string& out) const {
  auto it = std::back_inserter(out);
  fmt::format_to(it,
                 "# HELP tcpms_mqtt_auth_total CONNECTs checked by the authenticator, by outcome.\n"
                 "# TYPE tcpms_mqtt_auth_total counter\n");
  auto line = [&](const char* result, const std::atomic<uint64_t>& v) {
    fmt::format_to(it, "tcpms_mqtt_auth_total{{result=\"{}\"}} {}\n", result,
                   v.load(std::memory_order_relaxed));
  };
  line("accepted", counters_.accepted);
  line("bad_credentials", counters_.bad_credentials);
  line("anonymous_refused", counters_.anonymous_refused);
  line("throttled", counters_.throttled);
  line("throttled_address", counters_.throttled_address);
  fmt::format_to(it,
                 "# HELP tcpms_mqtt_auth_reloads_total Password/ACL file reloads (SIGHUP), by "
                 "outcome (failed: the old rules stay).\n"
                 "# TYPE tcpms_mqtt_auth_reloads_total counter\n"
                 "tcpms_mqtt_auth_reloads_total{{result=\"ok\"}} {}\n"
                 "tcpms_mqtt_auth_reloads_total{{result=\"failed\"}} {}\n",
                 counters_.reloads_ok.load(std::memory_order_relaxed),
                 counters_.reloads_failed.load(std::memory_order_relaxed));
  auto st = guard_->stats();
  fmt::format_to(it,
                 "# HELP tcpms_mqtt_login_throttle_entries Keys tracked by the failed-login "
                 "throttle, per table.\n"
                 "# TYPE tcpms_mqtt_login_throttle_entries gauge\n"
                 "tcpms_mqtt_login_throttle_entries{{key=\"user_address\"}} {}\n"
                 "tcpms_mqtt_login_throttle_entries{{key=\"address\"}} {}\n"
                 "# HELP tcpms_mqtt_login_throttle_evicted_total Throttle entries dropped for "
                 "room while still short of tokens.\n"
                 "# TYPE tcpms_mqtt_login_throttle_evicted_total counter\n"
                 "tcpms_mqtt_login_throttle_evicted_total{{key=\"user_address\"}} {}\n"
                 "tcpms_mqtt_login_throttle_evicted_total{{key=\"address\"}} {}\n",
                 st.per_user_address.entries, st.per_address.entries,
                 st.per_user_address.evicted_active, st.per_address.evicted_active);
}

AuthResult FileAuthenticator::check(const ConnectInfo& info) {
  auto& n = files_->counters();
  auto count = [](std::atomic<uint64_t>& c) { c.fetch_add(1, std::memory_order_relaxed); };
  if (!info.username) {
    // Anonymous: nothing to hash and nothing to guess, so no throttle either.
    if (files_->config().allow_anonymous) {
      count(n.accepted);
      return AuthResult::kAccept;
    }
    count(n.anonymous_refused);
    info.why = "anonymous clients are refused";
    return AuthResult::kNotAuthorized;
  }
  const auto now = auth::LoginGuard::Clock::now();
  auto key = auth::ip_key_from_sockaddr(reinterpret_cast<const sockaddr*>(&info.peer));
  if (key) {
    switch (files_->login_guard().try_acquire(*key, *info.username, now)) {
      case auth::LoginGuard::Verdict::kGo: break;
      case auth::LoginGuard::Verdict::kUserThrottled:
        count(n.throttled);
        info.why = "throttled: too many failed logins for this user from this address";
        return AuthResult::kNotAuthorized;
      case auth::LoginGuard::Verdict::kAddressThrottled:
        count(n.throttled_address);
        info.why = "throttled: too many failed logins from this address";
        return AuthResult::kNotAuthorized;
    }
  }
  auto db = files_->passwords();
  bool ok = false;
  if (db) {
    ok = db->verify(*info.username, info.password.value_or("")) == auth::PasswordDb::Verdict::kOk;
  }
  if (!ok) {
    count(n.bad_credentials);
    info.why = "bad user name or password";
    return AuthResult::kBadUserNameOrPassword;
  }
  if (key) files_->login_guard().on_success(*key, *info.username, now);
  count(n.accepted);
  return AuthResult::kAccept;
}

namespace {
std::atomic<uint64_t> g_authorizers{0};
}

AclAuthorizer::AclAuthorizer(std::shared_ptr<AuthFiles> files)
    : files_(std::move(files)), instance_(g_authorizers.fetch_add(1) + 1) {}

const auth::Acl* AclAuthorizer::current() {
  struct Cache {
    uint64_t instance = 0;
    uint64_t generation = 0;
    std::shared_ptr<const auth::Acl> acl;
  };
  thread_local Cache cache;
  const auth::Snapshot<auth::Acl>* snap = files_->acl();
  if (snap == nullptr) return nullptr;
  uint64_t g = snap->generation();
  if (cache.instance != instance_ || cache.generation != g || !cache.acl) {
    cache.acl = snap->load();
    cache.instance = instance_;
    cache.generation = g;
  }
  return cache.acl.get();
}

bool AclAuthorizer::can_publish(const ClientRef& who, std::string_view topic) {
  const auth::Acl* acl = current();
  return acl == nullptr || acl->can_publish({who.client_id, who.username}, topic);
}

bool AclAuthorizer::can_subscribe(const ClientRef& who, std::string_view filter) {
  const auth::Acl* acl = current();
  return acl == nullptr || acl->can_subscribe({who.client_id, who.username}, filter);
}

}  // namespace tcpms::broker
