// Authentication and authorization hooks. tcpms-server plugs in the password-file and ACL
// implementations (broker/auth_files.h, docs/auth.md); the broker core knows only these.
//
// Authenticator::check may be slow (password hashing), so it runs on the server's worker pool
// (Server::workers().offload); the CONNECT continues on the connection's loop afterwards. An
// authenticator that is not enabled() costs nothing: no thread hop at all.
// Authorizer calls are synchronous on loop threads: keep them in memory and fast.
//
// Thread rules: check() runs on worker threads, can_* on loop threads, concurrently: both
// must be thread-safe (read-only state, or their own locks).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "mqtt/types.h"

namespace tcpms::broker {

// What a CONNECT says about who is asking (copied: check() runs after the bytes are gone).
struct ConnectInfo {
  std::string client_id;
  std::optional<std::string> username;
  std::optional<std::string> password;
  mqtt::ProtocolVersion version = mqtt::ProtocolVersion::kV311;
  // The peer's address (Connection::peer_address), for per-source login throttling;
  // ss_family AF_UNSPEC if it could not be read.
  sockaddr_storage peer{};
};

// The refusals a 3.1.1 CONNACK can express (3.1.1 §3.2.2.3).
enum class AuthResult : uint8_t {
  kAccept = 0,
  kServerUnavailable = 3,
  kBadUserNameOrPassword = 4,
  kNotAuthorized = 5,
};

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // False: accept everyone without calling check() (the default).
  virtual bool enabled() const { return false; }
  virtual AuthResult check(const ConnectInfo& info) { return AuthResult::kAccept; }
  // Prometheus families of its own (Broker::render_metrics calls it; any thread).
  virtual void render_metrics(std::string& out) const {}
};

// Who asks: the CONNECT's client id and user name (nullopt: none, or the authorizer does
// not use names; see uses_username()).
struct ClientRef {
  std::string_view client_id;
  std::optional<std::string_view> username;
};

class Authorizer {
 public:
  virtual ~Authorizer() = default;
  // True: the broker keeps each client's user name for the checks below (a per-client
  // allocation for clients that have one). False: `username` is always nullopt.
  virtual bool uses_username() const { return false; }
  // A refused PUBLISH is acknowledged and dropped (3.1.1 has no negative PUBACK). Publishing
  // to $SYS is refused by the broker before this is asked.
  virtual bool can_publish(const ClientRef& who, std::string_view topic) { return true; }
  // A refused subscription gets SUBACK 0x80 [MQTT-3.8.4-5].
  virtual bool can_subscribe(const ClientRef& who, std::string_view filter) { return true; }
  virtual void render_metrics(std::string& out) const {}
};

// user -> password from the command line (--auth-user NAME:PASSWORD), in plain text: a
// stand-in for tests. Real setups use --password-file (FileAuthenticator, auth_files.h).
class StaticAuthenticator final : public Authenticator {
 public:
  StaticAuthenticator(std::map<std::string, std::string> users, bool allow_anonymous)
      : users_(std::move(users)), allow_anonymous_(allow_anonymous) {}
  bool enabled() const override { return true; }
  AuthResult check(const ConnectInfo& info) override;

 private:
  const std::map<std::string, std::string> users_;
  const bool allow_anonymous_;
};

}  // namespace tcpms::broker
