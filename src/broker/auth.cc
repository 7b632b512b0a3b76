#include "broker/auth.h"

namespace tcpms::broker {

AuthResult StaticAuthenticator::check(const ConnectInfo& info) {
  if (!info.username) return allow_anonymous_ ? AuthResult::kAccept : AuthResult::kNotAuthorized;
  auto it = users_.find(*info.username);
  if (it == users_.end() || !info.password || *info.password != it->second)
    return AuthResult::kBadUserNameOrPassword;
  return AuthResult::kAccept;
}

}  // namespace tcpms::broker
