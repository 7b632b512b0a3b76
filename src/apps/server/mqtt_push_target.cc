#include "mqtt_push_target.h"

#include <algorithm>
#include <cstdint>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>

#include <netinet/in.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "mqtt/topic.h"

#include "tcpms/endpoint.h"

namespace tcpms::app {

namespace {

// How long a publish waits for every loop to count the sessions it reached.
constexpr std::chrono::milliseconds kCountWait{2000};

bool is_sys(std::string_view topic) { return topic == "$SYS" || topic.starts_with("$SYS/"); }

admin::PushResult sys_refused() {
  return {admin::PushStatus::kForbidden, "topics under $SYS/ are the broker's own", 0};
}

}  // namespace

admin::PushResult MqttPushTarget::publish(const admin::PublishRequest& r) {
  if (is_sys(r.topic)) return sys_refused();
  broker::PublishOutcome o = broker_.publish_counted(r.topic, as_bytes(r.payload),
                                                     static_cast<mqtt::QoS>(r.qos), r.retain, kCountWait);
  if (!o.accepted) return {admin::PushStatus::kInvalid, "not a valid topic name or QoS", 0};
  admin::PushResult out{admin::PushStatus::kDone, "published", o.receivers, true};
  if (!o.counted)
    out.detail = fmt::format("published; receivers counts the loops that answered within {} ms",
                             kCountWait.count());
  return out;
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
  if (is_sys(m.topic)) return sys_refused();
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
      return {admin::PushStatus::kDone, "sent", 1, true};
    case broker::SendResult::kRouted: {
      // An HTTP thread, never a loop: waiting here blocks nobody else. The router answers
      // within its Redis timeouts; the bound is for a router that never would.
      std::unique_lock lock(answer->mu);
      answer->cv.wait_for(lock, routed_wait_, [&] { return answer->outcome.has_value(); });
      // No answer: the id's home (or its holder) is stalled, restarting or unreachable. 503,
      // not 200 and not 404: the message may or may not have reached the client.
      if (!answer->outcome) {
        return {admin::PushStatus::kUnavailable,
                fmt::format("routed, but no answer about its holder within {} ms: it may or may "
                            "not have been delivered", routed_wait_.count()), 0};
      }
      switch (*answer->outcome) {
        case broker::Router::PushOutcome::kHeld:
          return {admin::PushStatus::kDone, "sent to the node that holds it", 1, true};
        case broker::Router::PushOutcome::kQueued:
          return {admin::PushStatus::kQueued, "queued in its offline session", 0};
        case broker::Router::PushOutcome::kNoSuchClient:
          return {admin::PushStatus::kNotFound,
                  "no client '" + std::string(client_id) + "' on any node", 0};
        case broker::Router::PushOutcome::kUnknown:
          break;
      }
      return {admin::PushStatus::kUnavailable,
              "routed, but the worker or node that knows its holder did not answer in time: it "
              "may or may not have been delivered", 0};
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

admin::SubscriptionRow to_row(const broker::SubscriptionInfo& s) {
  return {s.client_id, s.filter, static_cast<uint8_t>(s.qos), s.no_local, s.retain_as_published,
          s.subscription_id};
}

admin::ClientInfo to_admin(const broker::ClientInfo& c, bool with_subscriptions) {
  admin::ClientInfo out;
  out.id = c.client_id;
  out.conn_id = c.connected ? c.conn.value : 0;
  out.protocol = c.transport.empty() || c.transport == "tcp" ? "mqtt" : "mqtt+" + c.transport;
  out.loop = c.loop;
  out.connected = c.connected;
  out.peer = c.peer;
  out.pending_output_bytes = c.pending_output_bytes;
  nlohmann::json d = {{"protocol_version", broker::ClientLog::version_name(c.version)},
                      {"persistent", c.persistent},
                      {"subscription_count", c.subscriptions},
                      {"queued", c.queued},
                      {"inflight", c.inflight},
                      {"connected_since_unix", c.connected_since_s}};
  if (c.described) {
    if (c.connected) d["keep_alive_s"] = c.keep_alive_s;
    if (c.username) d["username"] = *c.username;
    if (c.version == mqtt::ProtocolVersion::kV5) d["session_expiry_s"] = c.session_expiry_s;
    d["will"] = c.has_will;
  }
  out.details_json = d.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (with_subscriptions) {
    out.subscriptions.emplace();
    for (const auto& s : c.subscription_list) out.subscriptions->push_back(to_row(s));
  }
  return out;
}

}  // namespace

// Client ids in byte order; the cursor is the last id of the previous page. The broker
// gathers every session from every loop (cheap fields only), so this is an operator's tool,
// not something to poll per second at a million clients; the page's own clients are then
// described by their loops (peer address, keep-alive: a syscall each).
admin::ClientPage MqttPushTarget::list_clients(const admin::ClientQuery& q) {
  auto all = broker_.list_clients();
  std::erase_if(all, [&](const broker::ClientInfo& c) {
    return (q.connected && c.connected != *q.connected) ||
           (!q.search.empty() && c.client_id.find(q.search) == std::string::npos);
  });
  std::sort(all.begin(), all.end(),
            [](const auto& a, const auto& b) { return a.client_id < b.client_id; });
  auto it = q.cursor.empty() ? all.begin()
                             : std::upper_bound(all.begin(), all.end(), q.cursor,
                                                [](const std::string& c, const auto& e) {
                                                  return c < e.client_id;
                                                });
  std::vector<std::string> ids;
  for (; it != all.end() && ids.size() < q.limit; ++it) ids.push_back(it->client_id);
  admin::ClientPage page;
  auto described = broker_.describe_clients(ids, false);
  size_t d = 0;
  for (const std::string& id : ids) {
    // A client that left between the two steps is shown with what the listing had.
    if (d < described.size() && described[d].client_id == id) {
      page.clients.push_back(to_admin(described[d++], false));
    } else {
      auto summary = std::lower_bound(all.begin(), all.end(), id,
                                      [](const auto& e, const std::string& k) { return e.client_id < k; });
      page.clients.push_back(to_admin(*summary, false));
    }
  }
  if (it != all.end() && !page.clients.empty()) page.next_cursor = page.clients.back().id;
  return page;
}

std::optional<admin::ClientInfo> MqttPushTarget::client(std::string_view id) {
  if (!broker_.registry().find(id)) return EnginePushTarget::client(id);
  auto found = broker_.describe_clients({std::string(id)}, true);
  if (found.empty()) return std::nullopt;
  return to_admin(found.front(), true);
}

admin::PushResult MqttPushTarget::kick(std::string_view id) {
  if (broker_.kick(id)) return {admin::PushStatus::kDone, "kicked", 0};
  if (auto e = broker_.registry().find(id); e && !e->conn.valid())
    return {admin::PushStatus::kConflict,
            "client '" + std::string(id) + "' is not connected (its session is offline; DELETE "
            "/api/v1/sessions/{id} removes it)",
            0};
  return EnginePushTarget::kick(id);  // a numeric connection id, or 404
}

void MqttPushTarget::add_stats(nlohmann::json& out) {
  const broker::BrokerTotals t = broker_.totals();
  out["messages_in"] = t.messages_in;
  out["messages_out"] = t.messages_out;
  out["sessions_connected"] = t.sessions_connected;
  out["sessions_offline"] = t.sessions_offline;
  out["subscriptions"] = t.subscriptions;
  out["retained"] = broker_.retained().size();
  out["queued"] = t.queued;
  out["inflight"] = t.inflight;
  out["dropped"] = t.dropped;
  out["connects_refused"] = t.connects_refused;
  out["auth_failures"] = t.auth_refused;
  out["protocol_violations"] = t.protocol_violations;
}

admin::PushResult MqttPushTarget::delete_session(std::string_view id) {
  switch (broker_.delete_session(id)) {
    case broker::SessionDeleteResult::kDeleted:
      return {admin::PushStatus::kDone, "session '" + std::string(id) + "' deleted", 0};
    case broker::SessionDeleteResult::kConnected:
      return {admin::PushStatus::kConflict,
              "client '" + std::string(id) + "' is connected: kick it first (DELETE /api/v1/clients/{id})", 0};
    case broker::SessionDeleteResult::kUnavailable:
      return {admin::PushStatus::kUnavailable, "the event loop did not answer in time", 0};
    case broker::SessionDeleteResult::kNotFound:
      break;
  }
  return {admin::PushStatus::kNotFound, "no session '" + std::string(id) + "'", 0};
}

std::optional<std::vector<admin::SubscriptionRow>> MqttPushTarget::subscriptions(
    std::string_view filter, bool match_topic, size_t limit) {
  std::vector<admin::SubscriptionRow> rows;
  for (const auto& s : broker_.find_subscriptions(filter, match_topic, limit)) rows.push_back(to_row(s));
  return rows;
}

// The sessions the topic tree finds for the topic, as deliver_local counts them (a session
// with several matching filters once; shared subscriptions are not in the tree). O(matching
// subscriptions) on each loop.
admin::PushResult MqttPushTarget::count_receivers(std::string_view topic) {
  if (mqtt::validate_topic_name(topic, broker_.config().max_topic_levels) != mqtt::TopicError::kOk)
    return {admin::PushStatus::kInvalid, "\"" + std::string(topic) + "\" is not a valid topic name", 0};
  auto rows = broker_.find_subscriptions(topic, /*match_topic=*/true, SIZE_MAX);
  uint64_t sessions = 0;
  for (size_t i = 0; i < rows.size(); ++i)  // sorted by client id
    if (i == 0 || rows[i].client_id != rows[i - 1].client_id) ++sessions;
  return {admin::PushStatus::kDone, "sessions here that a publish to it reaches now", sessions, true};
}

namespace {
admin::RetainedRow to_row(const broker::RetainedMessage& m) {
  return {std::string(as_chars(m.topic.view())), std::string(as_chars(m.payload.view())),
          static_cast<uint8_t>(m.qos)};
}
}  // namespace

admin::RetainedResult MqttPushTarget::list_retained(std::string_view filter) {
  if (mqtt::validate_topic_filter(filter, broker_.config().max_topic_levels) != mqtt::TopicError::kOk)
    return {admin::PushStatus::kInvalid, "\"" + std::string(filter) + "\" is not a valid topic filter", {}};
  admin::RetainedResult r;
  for (const auto& m : broker_.retained_matching(filter)) r.rows.push_back(to_row(m));
  std::sort(r.rows.begin(), r.rows.end(), [](const auto& a, const auto& b) { return a.topic < b.topic; });
  return r;
}

admin::RetainedResult MqttPushTarget::get_retained(std::string_view topic) {
  admin::RetainedResult r;
  if (auto m = broker_.retained_get(topic)) r.rows.push_back(to_row(*m));
  return r;
}

admin::PushResult MqttPushTarget::delete_retained(std::string_view topic) {
  if (is_sys(topic)) return sys_refused();
  if (!broker_.retained_delete(topic))
    return {admin::PushStatus::kNotFound, "no retained message on '" + std::string(topic) + "'", 0};
  return {admin::PushStatus::kDone, "retained message on '" + std::string(topic) + "' deleted", 0};
}

namespace {
admin::TapResult to_admin(uint64_t id, const broker::TopicTaps::Read& r) {
  admin::TapResult out;
  out.id = id;
  out.filter = r.filter;
  out.next = r.next;
  out.dropped = r.dropped;
  for (const auto& e : r.entries)
    out.messages.push_back({e.seq, e.time_unix_ms, e.topic, e.payload, e.payload_bytes,
                            static_cast<uint8_t>(e.qos), e.retain});
  return out;
}
}  // namespace

admin::TapResult MqttPushTarget::open_tap(std::string_view filter) {
  if (mqtt::validate_topic_filter(filter, broker_.config().max_topic_levels) != mqtt::TopicError::kOk)
    return admin::TapResult::failed(admin::PushStatus::kInvalid,
                                    "\"" + std::string(filter) + "\" is not a valid topic filter");
  auto id = broker_.taps().open(filter);
  if (!id)
    return admin::TapResult::failed(
        admin::PushStatus::kUnavailable,
        fmt::format("{} taps are open already (close one, or wait a minute for an unread one "
                    "to close itself)", broker::TopicTaps::kMaxTaps));
  auto r = broker_.taps().read(*id, 0);
  return to_admin(*id, *r);
}

admin::TapResult MqttPushTarget::read_tap(uint64_t id, uint64_t after) {
  auto r = broker_.taps().read(id, after);
  if (!r) {
    return admin::TapResult::failed(admin::PushStatus::kNotFound,
                                    fmt::format("no tap {} (taps unread for a minute close)", id));
  }
  return to_admin(id, *r);
}

admin::PushResult MqttPushTarget::close_tap(uint64_t id) {
  if (!broker_.taps().close(id)) return {admin::PushStatus::kNotFound, fmt::format("no tap {}", id), 0};
  return {admin::PushStatus::kDone, fmt::format("tap {} closed", id), 0};
}

}  // namespace tcpms::app
