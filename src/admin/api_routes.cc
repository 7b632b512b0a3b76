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
  return out;
}

void reply_result(httplib::Response& res, const PushResult& r, std::string_view done_word) {
  int status = http_status(r.status);
  if (status >= 400) return reply_error(res, status, r.detail);
  json body = {{"status", r.status == PushStatus::kQueued ? "queued" : done_word},
               {"detail", r.detail}};
  if (r.receivers) body["receivers"] = r.receivers;
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

}  // namespace

int http_status(PushStatus status) noexcept {
  switch (status) {
    case PushStatus::kDone: return 200;
    case PushStatus::kQueued: return 202;
    case PushStatus::kNotFound: return 404;
    case PushStatus::kInvalid: return 400;
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
  for (const auto& [method, add] : methods) {
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

  routes.push_back({"/api/v1/clients", "GET",
                    [target](const httplib::Request& req, httplib::Response& res) {
    size_t limit = kDefaultPageSize;
    if (req.has_param("limit") && !parse_limit(req.get_param_value("limit"), limit)) {
      return reply_error(res, 400,
                         "\"limit\" must be a whole number from 1 to " + std::to_string(kMaxPageSize));
    }
    ClientPage page = target().list_clients(req.get_param_value("cursor"), limit);
    json clients = json::array();
    for (const auto& c : page.clients) clients.push_back(client_json(c));
    reply_json(res, 200,
               {{"clients", std::move(clients)},
                {"next_cursor", page.next_cursor.empty() ? json(nullptr) : json(page.next_cursor)}});
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

  routes.push_back({"/api/v1/stats", "GET",
                    [target, stats = ctx.stats, ready = ctx.ready](const httplib::Request&,
                                                                   httplib::Response& res) {
    reply_json(res, 200, stats->sample(target(), ready()));
  }});
  return routes;
}

}  // namespace tcpms::admin
