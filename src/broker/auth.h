// Authentication and authorization hooks. tcpms-server plugs in the password-file and ACL
// implementations (broker/auth_files.h) and the HTTP service ones (broker/auth_http.h); the
// broker core knows only these (docs/auth.md).
//
// Authenticator::check may be slow (password hashing), so the broker calls check_async, whose
// default runs check() on the server's worker pool (Server::workers().offload); the CONNECT
// continues on the connection's loop afterwards. An authenticator that waits on the network
// overrides check_async so that no worker thread waits. One that is not enabled() costs
// nothing: no thread hop at all.
//
// Authorizer calls are made on loop threads and must not block. An answer that is not known
// yet (an HTTP service) is kPending: the broker stops reading from that client before the
// packet in question, and the authorizer runs `resume` on the loop once the answer is in, so
// that the packet is read again and this time decided (see MqttHandler::wait_for_decision).
//
// Thread rules: check() runs on worker threads, decide()/can_* on loop threads, concurrently:
// all must be thread-safe (read-only state, or their own locks).
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "mqtt/types.h"

namespace tcpms {
class Connection;
class EventLoop;
class WorkerPool;
}  // namespace tcpms

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
  std::optional<std::string> will_topic;  // for an authenticator that decides wills too
  // Set by the authenticator that refused, for the log line ("throttled", "service down").
  mutable const char* why = nullptr;
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
  using Done = std::function<void(AuthResult)>;
  virtual ~Authenticator() = default;
  // False: accept everyone without calling check() (the default).
  virtual bool enabled() const { return false; }
  virtual AuthResult check(const ConnectInfo& info) { return AuthResult::kAccept; }
  // Decides `info` and runs `done` on `loop`'s thread (not inside this call). The default runs
  // check() on `pool`, skipping it when `cancelled` is set by then (the client left).
  virtual void check_async(std::shared_ptr<const ConnectInfo> info,
                           std::shared_ptr<std::atomic<bool>> cancelled, EventLoop& loop,
                           WorkerPool& pool, Done done);
  // Prometheus families of its own (Broker::render_metrics calls it; any thread).
  virtual void render_metrics(std::string& out) const {}
};

// Who asks: the CONNECT's client id and user name (nullopt: none, or the authorizer does
// not use names; see uses_username()).
struct ClientRef {
  std::string_view client_id;
  std::optional<std::string_view> username;
  const Connection* conn = nullptr;  // decide(): for the peer address of a request to a service
};

enum class AclAction : uint8_t { kPublish, kSubscribe };
enum class Decision : uint8_t { kAllow, kDeny, kPending };

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
  // What the broker asks for PUBLISH and SUBSCRIBE. `loop_slot` is the loop's position in the
  // broker (0 .. loops - 1, see prepare_loops), for per-loop caches. kPending: the answer is
  // being fetched and `resume` will run on `loop` once it is known (ask again then). The
  // default answers at once from can_publish / can_subscribe.
  virtual Decision decide(const ClientRef& who, AclAction action, std::string_view topic,
                          EventLoop& loop, uint32_t loop_slot, std::function<void()> resume) {
    bool ok = action == AclAction::kPublish ? can_publish(who, topic) : can_subscribe(who, topic);
    return ok ? Decision::kAllow : Decision::kDeny;
  }
  // Called once by Broker::attach with the number of loops, before any decide().
  virtual void prepare_loops(size_t loops) {}
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
