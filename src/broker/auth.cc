#include "broker/auth.h"

#include "tcpms/event_loop.h"
#include "tcpms/worker_pool.h"

namespace tcpms::broker {

void Authenticator::check_async(std::shared_ptr<const ConnectInfo> info,
                                std::shared_ptr<std::atomic<bool>> cancelled, EventLoop& loop,
                                WorkerPool& pool, Done done) {
  auto result = std::make_shared<AuthResult>(AuthResult::kAccept);
  pool.offload(
      loop,
      [this, info, cancelled, result] {
        if (!cancelled->load(std::memory_order_relaxed)) *result = check(*info);
      },
      [result, done = std::move(done)] { done(*result); });
}

AuthResult StaticAuthenticator::check(const ConnectInfo& info) {
  if (!info.username) {
    if (allow_anonymous_) return AuthResult::kAccept;
    info.why = "anonymous clients are refused";
    return AuthResult::kNotAuthorized;
  }
  auto it = users_.find(*info.username);
  if (it == users_.end() || !info.password || *info.password != it->second) {
    info.why = "bad user name or password";
    return AuthResult::kBadUserNameOrPassword;
  }
  return AuthResult::kAccept;
}

}  // namespace tcpms::broker
