// EnginePushTarget: the push API over the bare engine, for raw protocols such as echo.
// Connections are addressed by their numeric ConnId (decimal, as GET /api/v1/clients lists
// them): raw send (Server::send_to's path, but confirmed), kick (close with kKicked), listing
// and lookup. It has no topics, so publish and send-by-client-id answer 501.
//
// A protocol with its own notion of clients (the MQTT broker) derives from it, overrides what
// it knows better, and keeps send_raw/kick-by-number for free.
//
// Thread rules: any thread except a loop thread (each call waits for a loop to answer; a loop
// waiting on itself would always time out).
#pragma once

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>

#include "admin/push_target.h"
#include "tcpms/server.h"

namespace tcpms::admin {

// Runs `fn` on `loop` and waits up to `timeout` for its result. nullopt when the loop has
// stopped or did not answer in time. `fn` must own everything it uses (it may run after this
// returns, when the wait timed out).
template <typename R>
std::optional<R> run_on_loop(EventLoop& loop, std::function<R()> fn,
                             std::chrono::milliseconds timeout) {
  auto done = std::make_shared<std::promise<R>>();
  std::future<R> result = done->get_future();
  if (!loop.post([done, fn = std::move(fn)] { done->set_value(fn()); })) return std::nullopt;
  if (result.wait_for(timeout) != std::future_status::ready) return std::nullopt;
  return result.get();
}

class EnginePushTarget : public PushTarget {
 public:
  // `protocol` labels the connections ("echo"); `timeout` bounds each wait for a loop.
  explicit EnginePushTarget(Server& server, std::string protocol = "raw",
                            std::chrono::milliseconds timeout = std::chrono::seconds(2));

  PushResult publish(const PublishRequest& request) override;
  PushResult send_to_client(std::string_view client_id, const PublishRequest& message) override;
  PushResult send_raw(ConnId id, ByteView bytes) override;
  ClientPage list_clients(const ClientQuery& q) override;
  std::optional<ClientInfo> client(std::string_view id) override;
  PushResult kick(std::string_view id) override;
  void add_stats(nlohmann::json& out) override;
  std::string protocol() const override { return protocol_; }

  // "12884901889" -> ConnId; nullopt unless all digits and a plausible id.
  static std::optional<ConnId> parse_conn_id(std::string_view text);
  // Loop thread: what the API shows of an open connection.
  ClientInfo describe(Connection& c) const;

 protected:
  Server& server_;
  std::string protocol_;
  std::chrono::milliseconds timeout_;
};

}  // namespace tcpms::admin
