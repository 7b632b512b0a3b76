#include "admin/api_routes.h"

#include <algorithm>
#include <charconv>

#include "admin/engine_push_target.h"
#include "admin/http_json.h"

namespace tcpms::admin {
namespace {

using nlohmann::json;

constexpr size_t kDefaultPageSize = 100;
constexpr size_t kMaxPageSize = 1000;

json subscription_json(const SubscriptionRow& r) {
  json out = {{"client_id", r.client_id}, {"filter", r.filter}, {"qos", r.qos}};
  if (r.no_local) out["no_local"] = true;
  if (r.retain_as_published) out["retain_as_published"] = true;
  if (r.subscription_id) out["subscription_id"] = r.subscription_id;
  return out;
}

json client_json(const ClientInfo& c) {
  json out = {{"id", c.id},
              {"conn_id", c.conn_id},
              {"protocol", c.protocol},
              {"connected", c.connected},
              {"peer", c.peer},
              {"loop", c.loop},
              {"pending_output_bytes", c.pending_output_bytes},
              {"pending_input_bytes", c.pending_input_bytes}};
  if (!c.details_json.empty()) {
    out["details"] = json::parse(c.details_json, nullptr, /*allow_exceptions=*/false);
  }
  if (c.subscriptions) {
    json subs = json::array();
    for (const auto& r : *c.subscriptions) subs.push_back(subscription_json(r));
    out["subscriptions"] = std::move(subs);
  }
  return out;
}

// A payload as JSON: the text when it is UTF-8, else base64 with "encoding": "base64".
void put_payload(json& out, const std::string& bytes) {
  try {
    (void)json(bytes).dump();  // throws type_error.316 on bytes that are not UTF-8
    out["payload"] = bytes;
  } catch (const json::type_error&) {
    out["payload"] = base64_encode(bytes);
    out["encoding"] = "base64";
  }
}

void reply_result(httplib::Response& res, const PushResult& r, std::string_view done_word) {
  int status = http_status(r.status);
  if (status >= 400) return reply_error(res, status, r.detail);
  json body = {{"status", r.status == PushStatus::kQueued ? "queued" : done_word},
               {"detail", r.detail}};
  if (r.has_receivers) body["receivers"] = r.receivers;
  reply_json(res, status, body);
}

// Reads "topic", "qos", "retain" and the payload into `out`; returns "" or the problem.
std::string read_message(const json& body, bool topic_required, PublishRequest& out) {
  if (auto t = body.find("topic"); t != body.end()) {
    if (!t->is_string() || t->get_ref<const std::string&>().empty()) {
      return "\"topic\" must be a non-empty string";
    }
    out.topic = t->get<std::string>();
  } else if (topic_required) {
    return "missing \"topic\"";
  }
  if (auto q = body.find("qos"); q != body.end()) {
    if (!q->is_number_integer() || q->get<int64_t>() < 0 || q->get<int64_t>() > 2) {
      return "\"qos\" must be 0, 1 or 2";
    }
    out.qos = static_cast<uint8_t>(q->get<int64_t>());
  }
  if (auto r = body.find("retain"); r != body.end()) {
    if (!r->is_boolean()) return "\"retain\" must be true or false";
    out.retain = r->get<bool>();
  }
  return decode_payload(body, out.payload);
}

// The request's JSON body as a message; on failure answers 400 and returns false.
bool read_body(const httplib::Request& req, httplib::Response& res, bool topic_required,
               PublishRequest& out) {
  auto body = parse_json_object(req, res);
  if (!body) return false;
  std::string err = only_fields(*body, {"topic", "payload", "qos", "retain", "encoding"});
  if (err.empty()) err = read_message(*body, topic_required, out);
  if (!err.empty()) reply_error(res, 400, err);
  return err.empty();
}

bool parse_limit(const std::string& text, size_t& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && out >= 1 && out <= kMaxPageSize;
}

// ?limit= (1..1000, default 100); false after answering 400.
bool read_limit(const httplib::Request& req, httplib::Response& res, size_t& limit) {
  limit = kDefaultPageSize;
  if (req.has_param("limit") && !parse_limit(req.get_param_value("limit"), limit)) {
    reply_error(res, 400, "\"limit\" must be a whole number from 1 to " + std::to_string(kMaxPageSize));
    return false;
  }
  return true;
}

void reply_page(httplib::Response& res, const ClientPage& page, const char* key) {
  json clients = json::array();
  for (const auto& c : page.clients) clients.push_back(client_json(c));
  reply_json(res, 200,
             {{key, std::move(clients)},
              {"next_cursor", page.next_cursor.empty() ? json(nullptr) : json(page.next_cursor)}});
}

bool parse_u64(const std::string& text, uint64_t& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return !text.empty() && ec == std::errc() && end == text.data() + text.size();
}

json tap_json(const TapResult& t) {
  json messages = json::array();
  for (const TapMessage& m : t.messages) {
    json one = {{"seq", m.seq}, {"time_unix_ms", m.time_unix_ms}, {"topic", m.topic},
                {"qos", m.qos}, {"retain", m.retain}, {"payload_bytes", m.payload_bytes}};
    put_payload(one, m.payload);
    if (m.payload.size() < m.payload_bytes) one["truncated"] = true;
    messages.push_back(std::move(one));
  }
  return {{"id", std::to_string(t.id)}, {"filter", t.filter}, {"messages", std::move(messages)},
          {"next", t.next}, {"dropped", t.dropped}};
}

}  // namespace

int http_status(PushStatus status) noexcept {
  switch (status) {
    case PushStatus::kDone: return 200;
    case PushStatus::kQueued: return 202;
    case PushStatus::kNotFound: return 404;
    case PushStatus::kInvalid: return 400;
    case PushStatus::kForbidden: return 403;
    case PushStatus::kConflict: return 409;
    case PushStatus::kUnsupported: return 501;
    case PushStatus::kUnavailable: return 503;
  }
  return 500;
}

void install_routes(httplib::Server& http, const std::vector<Route>& routes) {
  using Register = httplib::Server& (httplib::Server::*)(const std::string&, httplib::Server::Handler);
  const std::pair<const char*, Register> methods[] = {
      {"GET", &httplib::Server::Get},       {"POST", &httplib::Server::Post},
      {"PUT", &httplib::Server::Put},       {"PATCH", &httplib::Server::Patch},
      {"DELETE", &httplib::Server::Delete}, {"OPTIONS", &httplib::Server::Options}};
  std::vector<std::string> patterns;
  for (const auto& r : routes) {
    if (std::find(patterns.begin(), patterns.end(), r.pattern) == patterns.end()) {
      patterns.push_back(r.pattern);
    }
  }
  for (const auto& [method_name, add] : methods) {
    // A named copy: clang 14 cannot capture a structured binding in a lambda.
    const std::string_view method = method_name;
    for (const auto& pattern : patterns) {
      auto it = std::find_if(routes.begin(), routes.end(), [&](const Route& r) {
        return r.pattern == pattern && r.method == method;
      });
      if (it != routes.end()) {
        (http.*add)(pattern, it->handler);
        continue;
      }
      std::string allow;
      for (const auto& r : routes) {
        if (r.pattern == pattern) allow += (allow.empty() ? "" : ", ") + r.method;
      }
      (http.*add)(pattern, [allow, m = std::string(method)](const httplib::Request& req,
                                                             httplib::Response& res) {
        res.set_header("Allow", allow);
        reply_error(res, 405, m + " is not allowed on " + req.path + " (allowed: " + allow + ")");
      });
    }
  }
}

std::vector<Route> api_routes(ApiContext ctx) {
  auto target = ctx.target;
  std::vector<Route> routes;

  routes.push_back({"/api/v1/publish", "POST",
                    [target](const httplib::Request& req, httplib::Response& res) {
    PublishRequest message;
    if (!read_body(req, res, /*topic_required=*/true, message)) return;
    reply_result(res, target().publish(message), "published");
  }});

  routes.push_back({R"(/api/v1/clients/(.+)/send)", "POST",
                    [target](const httplib::Request& req, httplib::Response& res) {
    std::string id = req.matches[1];
    PublishRequest message;
    if (!read_body(req, res, /*topic_required=*/false, message)) return;
    if (!message.topic.empty()) {
      return reply_result(res, target().send_to_client(id, message), "sent");
    }
    // No topic: raw bytes to a connection named by its numeric id.
    auto conn = EnginePushTarget::parse_conn_id(id);
    if (!conn) {
      return reply_error(res, 400,
                         "raw sends address a connection by its numeric id (see GET "
                         "/api/v1/clients); give a \"topic\" to reach a client by client id");
    }
    if (message.payload.empty()) return reply_error(res, 400, "\"payload\" is empty");
    reply_result(res, target().send_raw(*conn, as_bytes(message.payload)), "sent");
  }});

  routes.push_back({R"(/api/v1/clients/(.+)/subscriptions)", "GET",
                    [target](const httplib::Request& req, httplib::Response& res) {
    std::string id = req.matches[1];
    auto info = target().client(id);
    if (!info) return reply_error(res, 404, "no client '" + id + "'");
    if (!info->subscriptions)
      return reply_error(res, 501, "the " + target().protocol() + " protocol has no subscriptions");
    json rows = json::array();
    for (const auto& r : *info->subscriptions) rows.push_back(subscription_json(r));
    reply_json(res, 200, {{"client_id", id}, {"subscriptions", std::move(rows)}});
  }});

  routes.push_back({"/api/v1/clients", "GET",
                    [target](const httplib::Request& req, httplib::Response& res) {
    ClientQuery q;
    if (!read_limit(req, res, q.limit)) return;
    q.cursor = req.get_param_value("cursor");
    q.search = req.get_param_value("q");
    if (req.has_param("state")) {
      std::string state = req.get_param_value("state");
      if (state == "connected") q.connected = true;
      else if (state == "offline") q.connected = false;
      else if (state != "all")
        return reply_error(res, 400, "\"state\" must be connected, offline or all");
    }
    reply_page(res, target().list_clients(q), "clients");
  }});

  routes.push_back({R"(/api/v1/clients/(.+))", "GET",
                    [target](const httplib::Request& req, httplib::Response& res) {
    std::string id = req.matches[1];
    auto info = target().client(id);
    if (!info) return reply_error(res, 404, "no client '" + id + "'");
    reply_json(res, 200, client_json(*info));
  }});

  routes.push_back({R"(/api/v1/clients/(.+))", "DELETE",
                    [target](const httplib::Request& req, httplib::Response& res) {
    reply_result(res, target().kick(std::string(req.matches[1])), "kicked");
  }});

  routes.push_back({"/api/v1/sessions", "GET",
                    [target](const httplib::Request& req, httplib::Response& res) {
    PushTarget& t = target();
    if (!t.has_sessions())
      return reply_error(res, 501, "the " + t.protocol() + " protocol has no sessions");
    ClientQuery q;
    if (!read_limit(req, res, q.limit)) return;
    q.cursor = req.get_param_value("cursor");
    q.search = req.get_param_value("q");
    q.connected = false;
    reply_page(res, t.list_clients(q), "sessions");
  }});

  routes.push_back({R"(/api/v1/sessions/(.+))", "DELETE",
                    [target](const httplib::Request& req, httplib::Response& res) {
    reply_result(res, target().delete_session(std::string(req.matches[1])), "deleted");
  }});

  routes.push_back({"/api/v1/subscriptions", "GET",
                    [target](const httplib::Request& req, httplib::Response& res) {
    size_t limit = 0;
    if (!read_limit(req, res, limit)) return;
    const bool by_filter = req.has_param("filter"), by_topic = req.has_param("topic");
    if (by_filter == by_topic)
      return reply_error(res, 400, "give exactly one of \"filter\" (subscriptions with that "
                                   "filter) or \"topic\" (subscriptions matching that topic)");
    std::string what = req.get_param_value(by_filter ? "filter" : "topic");
    auto rows = target().subscriptions(what, by_topic, limit);
    if (!rows) return reply_error(res, 501, "the " + target().protocol() + " protocol has no subscriptions");
    json out = json::array();
    for (const auto& r : *rows) out.push_back(subscription_json(r));
    reply_json(res, 200, {{"subscriptions", std::move(out)}, {"truncated", rows->size() >= limit}});
  }});

  routes.push_back({"/api/v1/receivers", "GET",
                    [target](const httplib::Request& req, httplib::Response& res) {
    if (!req.has_param("topic")) return reply_error(res, 400, "missing \"topic\"");
    reply_result(res, target().count_receivers(req.get_param_value("topic")), "counted");
  }});
  // The same with the topic in a JSON body {"topic": T}: a topic of up to 64 KiB does not fit
  // the request line (the front door asks the workers this way).
  routes.push_back({"/api/v1/receivers", "POST",
                    [target](const httplib::Request& req, httplib::Response& res) {
    auto body = parse_json_object(req, res);
    if (!body) return;
    if (std::string err = only_fields(*body, {"topic"}); !err.empty()) return reply_error(res, 400, err);
    auto t = body->find("topic");
    if (t == body->end() || !t->is_string()) return reply_error(res, 400, "\"topic\" must be a string");
    reply_result(res, target().count_receivers(t->get_ref<const std::string&>()), "counted");
  }});

  routes.push_back({"/api/v1/retained", "GET",
                    [target](const httplib::Request& req, httplib::Response& res) {
    size_t limit = 0;
    if (!read_limit(req, res, limit)) return;
    std::string filter = req.has_param("filter") ? req.get_param_value("filter") : "#";
    RetainedResult r = target().list_retained(filter);
    if (http_status(r.status) >= 400) return reply_error(res, http_status(r.status), r.detail);
    // Pages in topic order; the cursor is the last topic of the previous page.
    const std::string cursor = req.get_param_value("cursor");
    auto it = std::upper_bound(r.rows.begin(), r.rows.end(), cursor,
                               [](const std::string& c, const RetainedRow& row) { return c < row.topic; });
    if (cursor.empty()) it = r.rows.begin();
    json rows = json::array();
    std::string last;
    for (; it != r.rows.end() && rows.size() < limit; ++it) {
      json one = {{"topic", it->topic}, {"qos", it->qos}, {"payload_bytes", it->payload.size()}};
      put_payload(one, it->payload);
      rows.push_back(std::move(one));
      last = it->topic;
    }
    reply_json(res, 200, {{"retained", std::move(rows)},
                          {"next_cursor", it == r.rows.end() ? json(nullptr) : json(last)}});
  }});

  routes.push_back({R"(/api/v1/retained/(.+))", "GET",
                    [target](const httplib::Request& req, httplib::Response& res) {
    std::string topic = req.matches[1];
    RetainedResult r = target().get_retained(topic);
    if (http_status(r.status) >= 400) return reply_error(res, http_status(r.status), r.detail);
    if (r.rows.empty()) return reply_error(res, 404, "no retained message on '" + topic + "'");
    json one = {{"topic", r.rows[0].topic}, {"qos", r.rows[0].qos},
                {"payload_bytes", r.rows[0].payload.size()}};
    put_payload(one, r.rows[0].payload);
    reply_json(res, 200, one);
  }});

  routes.push_back({R"(/api/v1/retained/(.+))", "DELETE",
                    [target](const httplib::Request& req, httplib::Response& res) {
    reply_result(res, target().delete_retained(std::string(req.matches[1])), "deleted");
  }});

  routes.push_back({"/api/v1/taps", "POST",
                    [target](const httplib::Request& req, httplib::Response& res) {
    auto body = parse_json_object(req, res);
    if (!body) return;
    if (std::string err = only_fields(*body, {"filter"}); !err.empty()) return reply_error(res, 400, err);
    auto f = body->find("filter");
    if (f == body->end() || !f->is_string() || f->get_ref<const std::string&>().empty())
      return reply_error(res, 400, "\"filter\" must be a non-empty string");
    TapResult t = target().open_tap(f->get<std::string>());
    if (http_status(t.status) >= 400) return reply_error(res, http_status(t.status), t.detail);
    reply_json(res, 201, tap_json(t));
  }});

  routes.push_back({R"(/api/v1/taps/([^/]+))", "GET",
                    [target](const httplib::Request& req, httplib::Response& res) {
    uint64_t id = 0, after = 0;
    if (!parse_u64(req.matches[1], id)) return reply_error(res, 404, "no tap '" + std::string(req.matches[1]) + "'");
    if (req.has_param("after") && !parse_u64(req.get_param_value("after"), after))
      return reply_error(res, 400, "\"after\" must be a whole number");
    TapResult t = target().read_tap(id, after);
    if (http_status(t.status) >= 400) return reply_error(res, http_status(t.status), t.detail);
    reply_json(res, 200, tap_json(t));
  }});

  routes.push_back({R"(/api/v1/taps/([^/]+))", "DELETE",
                    [target](const httplib::Request& req, httplib::Response& res) {
    uint64_t id = 0;
    if (!parse_u64(req.matches[1], id)) return reply_error(res, 404, "no tap '" + std::string(req.matches[1]) + "'");
    reply_result(res, target().close_tap(id), "closed");
  }});

  routes.push_back({"/api/v1/stats", "GET",
                    [target, stats = ctx.stats, ready = ctx.ready](const httplib::Request&,
                                                                   httplib::Response& res) {
    reply_json(res, 200, stats->sample(target(), ready()));
  }});
  return routes;
}

}  // namespace tcpms::admin
