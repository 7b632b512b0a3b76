#include "mqtt_push_target.h"

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>

#include <netinet/in.h>

#include <fmt/format.h>

#include "tcpms/endpoint.h"

namespace tcpms::app {

admin::PushResult MqttPushTarget::publish(const admin::PublishRequest& r) {
  if (!broker_.publish(r.topic, as_bytes(r.payload), static_cast<mqtt::QoS>(r.qos), r.retain))
    return {admin::PushStatus::kInvalid, "not a valid topic name or QoS", 0};
  return {admin::PushStatus::kDone, "published", 0};
}

namespace {

// What the router learnt about a push it took, handed from whichever thread answers to the
// HTTP thread waiting for it. Shared: the answer may come after the wait gave up.
struct RoutedAnswer {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<broker::Router::PushOutcome> outcome;
};

}  // namespace

admin::PushResult MqttPushTarget::send_to_client(std::string_view client_id,
                                                 const admin::PublishRequest& m) {
  auto answer = std::make_shared<RoutedAnswer>();
  auto result = broker_.send_to_client(
      client_id, m.topic, as_bytes(m.payload), static_cast<mqtt::QoS>(m.qos),
      [answer](broker::Router::PushOutcome o) {
        {
          std::lock_guard lock(answer->mu);
          answer->outcome = o;
        }
        answer->cv.notify_all();
      });
  switch (result) {
    case broker::SendResult::kSent:
      return {admin::PushStatus::kDone, "sent", 1};
    case broker::SendResult::kRouted: {
      // An HTTP thread, never a loop: waiting here blocks nobody else. The router answers
      // within its Redis timeouts; the bound is for a router that never would.
      std::unique_lock lock(answer->mu);
      answer->cv.wait_for(lock, routed_wait_, [&] { return answer->outcome.has_value(); });
      if (!answer->outcome) {
        return {admin::PushStatus::kDone,
                fmt::format("routed; no answer about its holder within {} ms", routed_wait_.count()), 0};
      }
      switch (*answer->outcome) {
        case broker::Router::PushOutcome::kHeld:
          return {admin::PushStatus::kDone, "sent to the node that holds it", 1};
        case broker::Router::PushOutcome::kNoSuchClient:
          return {admin::PushStatus::kNotFound,
                  "no client '" + std::string(client_id) + "' on any node", 0};
        case broker::Router::PushOutcome::kUnknown:
          break;
      }
      return {admin::PushStatus::kDone, "routed to the node or worker that holds it, if any", 0};
    }
    case broker::SendResult::kQueued:
      return {admin::PushStatus::kQueued, "queued in its offline session", 0};
    case broker::SendResult::kInvalid:
      return {admin::PushStatus::kInvalid, "not a valid topic name or QoS", 0};
    case broker::SendResult::kNotConnected:
      break;
  }
  return {admin::PushStatus::kNotFound, "no client '" + std::string(client_id) + "'", 0};
}

namespace {

admin::ClientInfo to_admin(const broker::ClientInfo& c) {
  admin::ClientInfo out;
  out.id = c.client_id;
  out.conn_id = c.connected ? c.conn.value : 0;
  out.protocol = c.transport.empty() || c.transport == "tcp" ? "mqtt" : "mqtt+" + c.transport;
  if (c.peer.ss_family == AF_INET || c.peer.ss_family == AF_INET6) {
    socklen_t len = c.peer.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    out.peer = Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&c.peer), len).to_string();
  }
  out.loop = c.loop;
  out.connected = c.connected;
  out.details_json = fmt::format(
      R"({{"subscriptions":{},"queued":{},"inflight":{},"connected_since_unix":{}}})",
      c.subscriptions, c.queued, c.inflight, c.connected_since_s);
  return out;
}

}  // namespace

// Client ids in byte order; the cursor is the last id of the previous page. The broker
// gathers every session from every loop, so this is an operator's tool, not something to
// poll per second at a million clients.
admin::ClientPage MqttPushTarget::list_clients(std::string_view cursor, size_t limit) {
  auto all = broker_.list_clients();
  std::sort(all.begin(), all.end(),
            [](const auto& a, const auto& b) { return a.client_id < b.client_id; });
  admin::ClientPage page;
  auto it = cursor.empty() ? all.begin()
                           : std::upper_bound(all.begin(), all.end(), cursor,
                                              [](std::string_view c, const auto& e) {
                                                return c < std::string_view(e.client_id);
                                              });
  for (; it != all.end() && page.clients.size() < limit; ++it) page.clients.push_back(to_admin(*it));
  if (it != all.end() && !page.clients.empty()) page.next_cursor = page.clients.back().id;
  return page;
}

std::optional<admin::ClientInfo> MqttPushTarget::client(std::string_view id) {
  if (!broker_.registry().find(id)) return EnginePushTarget::client(id);
  for (const auto& c : broker_.list_clients()) {
    if (c.client_id == id) return to_admin(c);
  }
  return std::nullopt;
}

admin::PushResult MqttPushTarget::kick(std::string_view id) {
  if (broker_.kick(id)) return {admin::PushStatus::kDone, "kicked", 0};
  return EnginePushTarget::kick(id);  // a numeric connection id, or 404
}

}  // namespace tcpms::app
