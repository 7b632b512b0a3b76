#include "admin/front_door.h"

#include <charconv>

#include <fmt/format.h>

#include "admin/http_json.h"

namespace tcpms::admin {
namespace {

using nlohmann::json;

constexpr std::string_view kClientsPath = "/api/v1/clients/";
constexpr std::string_view kSessionsPath = "/api/v1/sessions/";

// The request's path as it was written (percent-encoded), without the query.
std::string_view raw_path(const httplib::Request& req) {
  std::string_view t = req.target;
  return t.substr(0, t.find('?'));
}

// The id in "/api/v1/clients/{id}[suffix]" as written in the path.
std::string_view raw_id(const httplib::Request& req, std::string_view prefix,
                        std::string_view suffix = {}) {
  std::string_view p = raw_path(req);
  if (!p.starts_with(prefix)) return {};
  p.remove_prefix(prefix.size());
  if (!suffix.empty() && p.ends_with(suffix)) p.remove_suffix(suffix.size());
  return p;
}

json parse(const WorkerReply& r) {
  if (!r.answered() || r.http.status != 200) return nullptr;
  json j = json::parse(r.http.body, nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? json(nullptr) : j;
}

void reply_with(httplib::Response& res, const WorkerReply& r) {
  if (!r.answered()) return reply_error(res, 503, r.error);
  res.status = r.http.status;
  std::string type = r.http.header("Content-Type");
  for (const auto& [name, value] : r.http.headers)
    if (name != "Content-Type") res.set_header(name.c_str(), value);
  res.set_content(r.http.body, type.empty() ? "application/json" : type.c_str());
}

// The first answer that is not 200 (a bad parameter is refused alike by every worker), or
// null when every worker that answered said 200.
const WorkerReply* first_refusal(const std::vector<WorkerReply>& replies) {
  for (const WorkerReply& r : replies)
    if (r.answered() && r.http.status != 200) return &r;
  return nullptr;
}

std::vector<json> parse_all(const std::vector<WorkerReply>& replies) {
  std::vector<json> out;
  out.reserve(replies.size());
  for (const WorkerReply& r : replies) out.push_back(parse(r));
  return out;
}

size_t limit_of(const httplib::Request& req) {
  size_t limit = 100;  // the routes' default; the workers refused anything out of range
  if (req.has_param("limit")) {
    const std::string v = req.get_param_value("limit");
    std::from_chars(v.data(), v.data() + v.size(), limit);
  }
  return limit;
}

}  // namespace

FrontDoor::FrontDoor(WorkerCalls calls, FrontDoorConfig config)
    : calls_(std::move(calls)), config_(std::move(config)) {}

std::string FrontDoor::socket_name(const std::string& group, unsigned index) {
  return fmt::format("unix:@tcpms-{}-admin-{}", group, index);
}

std::string FrontDoor::forward_request(const httplib::Request& req) const {
  return make_request(req.method, req.target, config_.bearer_token, req.body,
                      req.get_header_value("Content-Type"));
}

void FrontDoor::relay(const httplib::Request& req, httplib::Response& res, unsigned worker) {
  reply_with(res, calls_.call_one(worker, forward_request(req)));
}

std::optional<unsigned> FrontDoor::holder_of(std::string_view id, WorkerReply* found,
                                             json* unsure) {
  auto replies = calls_.call_all(
      make_request("GET", std::string(kClientsPath) + std::string(id), config_.bearer_token));
  const WorkerReply* best = nullptr;
  for (const WorkerReply& r : replies) {
    json j = parse(r);
    if (!j.is_object()) continue;
    // During a takeover two workers may know the id for a moment: the connected one holds it.
    if (best == nullptr || (j.value("connected", false) && !parse(*best).value("connected", false)))
      best = &r;
  }
  if (best == nullptr) {
    if (found) *found = replies[calls_.self()];
    if (unsure) {
      *unsure = json::object();
      note_unusable(*unsure, replies, {200, 404});
    }
    return std::nullopt;
  }
  if (found) *found = *best;
  return best->worker;
}

namespace {

// 503: nobody was found holding `id`, but a worker that may hold it did not answer.
void reply_unsure(httplib::Response& res, std::string_view id, json unsure) {
  unsure["error"] = fmt::format("no worker that answered holds '{}'; a worker that did not "
                                "answer may (restarting or stalled): try again", id);
  res.set_header("Retry-After", "1");
  reply_json(res, 503, unsure);
}

}  // namespace

void FrontDoor::to_holder(const httplib::Request& req, httplib::Response& res,
                          std::string_view id) {
  json unsure;
  auto holder = holder_of(id, nullptr, &unsure);
  if (!holder && unsure.contains("workers_unanswered")) return reply_unsure(res, id, std::move(unsure));
  relay(req, res, holder.value_or(calls_.self()));
}

std::string FrontDoor::metrics() {
  auto replies = calls_.call_all(make_request("GET", "/metrics", config_.bearer_token));
  std::vector<std::string> texts;
  unsigned answered = 0;
  for (WorkerReply& r : replies) {
    const bool ok = r.answered() && r.http.status == 200;
    answered += ok;
    texts.push_back(ok ? std::move(r.http.body) : std::string());
  }
  std::string out = merge_metrics(texts, config_.metrics);
  fmt::format_to(std::back_inserter(out),
                 "# HELP tcpms_workers Worker processes of this server, by whether they answered "
                 "this scrape.\n# TYPE tcpms_workers gauge\ntcpms_workers{{state=\"answered\"}} "
                 "{}\ntcpms_workers{{state=\"unanswered\"}} {}\n",
                 answered, replies.size() - answered);
  return out;
}

bool FrontDoor::ready(std::string* why) {
  auto replies = calls_.call_all(make_request("GET", "/readyz", config_.bearer_token));
  for (const WorkerReply& r : replies) {
    if (r.answered() && r.http.status == 200) continue;
    if (why)
      *why = r.answered() ? fmt::format("worker {}: {}", r.worker, r.http.body)
                          : r.error + "\n";
    return false;
  }
  return true;
}

std::vector<Route> FrontDoor::api_routes() {
  std::vector<Route> routes;
  auto all = [this](const httplib::Request& req) { return calls_.call_all(forward_request(req)); };

  routes.push_back({"/api/v1/publish", "POST",
                    [this](const httplib::Request& req, httplib::Response& res) {
    // Published once, here: the routing layer takes it to the workers with a subscriber, and
    // picks one member of each shared group, as for a client's publish.
    WorkerReply here = calls_.call_one(calls_.self(), forward_request(req));
    json body = parse(here);
    if (!body.is_object()) return reply_with(res, here);
    json request = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    std::string topic = request.is_object() ? request.value("topic", std::string()) : std::string();
    std::vector<unsigned> others;
    for (unsigned w = 0; w < calls_.count(); ++w)
      if (w != calls_.self()) others.push_back(w);
    auto counts = calls_.call(others, make_request("POST", "/api/v1/receivers", config_.bearer_token,
                                                   json{{"topic", topic}}.dump(),
                                                   "application/json"));
    uint64_t receivers = body.value("receivers", uint64_t{0});
    for (const json& c : parse_all(counts)) {
      if (c.is_object()) receivers += c.value("receivers", uint64_t{0});
    }
    body["receivers"] = receivers;
    note_unusable(body, counts);
    reply_json(res, here.http.status, body);
  }});

  routes.push_back({R"(/api/v1/clients/(.+)/send)", "POST",
                    [this](const httplib::Request& req, httplib::Response& res) {
    to_holder(req, res, raw_id(req, kClientsPath, "/send"));
  }});

  routes.push_back({R"(/api/v1/clients/(.+)/subscriptions)", "GET",
                    [this](const httplib::Request& req, httplib::Response& res) {
    to_holder(req, res, raw_id(req, kClientsPath, "/subscriptions"));
  }});

  auto page_route = [this, all](const char* key) {
    return [this, all, key](const httplib::Request& req, httplib::Response& res) {
      auto replies = all(req);
      if (const WorkerReply* refused = first_refusal(replies)) return reply_with(res, *refused);
      json out = merge_pages(parse_all(replies), key, limit_of(req), config_.order);
      note_unusable(out, replies);
      reply_json(res, 200, out);
    };
  };
  routes.push_back({"/api/v1/clients", "GET", page_route("clients")});

  routes.push_back({R"(/api/v1/clients/(.+))", "GET",
                    [this](const httplib::Request& req, httplib::Response& res) {
    WorkerReply found;
    json unsure;
    if (!holder_of(raw_id(req, kClientsPath), &found, &unsure) && unsure.contains("workers_unanswered"))
      return reply_unsure(res, raw_id(req, kClientsPath), std::move(unsure));
    reply_with(res, found);
  }});

  routes.push_back({R"(/api/v1/clients/(.+))", "DELETE",
                    [this](const httplib::Request& req, httplib::Response& res) {
    to_holder(req, res, raw_id(req, kClientsPath));
  }});

  routes.push_back({"/api/v1/sessions", "GET", page_route("sessions")});

  routes.push_back({R"(/api/v1/sessions/(.+))", "DELETE",
                    [this](const httplib::Request& req, httplib::Response& res) {
    to_holder(req, res, raw_id(req, kSessionsPath));
  }});

  routes.push_back({"/api/v1/subscriptions", "GET",
                    [all](const httplib::Request& req, httplib::Response& res) {
    auto replies = all(req);
    if (const WorkerReply* refused = first_refusal(replies)) return reply_with(res, *refused);
    json out = merge_subscriptions(parse_all(replies), limit_of(req));
    note_unusable(out, replies);
    reply_json(res, 200, out);
  }});

  // Every worker holds every retained message: this one answers for all.
  auto here = [this](const httplib::Request& req, httplib::Response& res) {
    relay(req, res, calls_.self());
  };
  routes.push_back({"/api/v1/retained", "GET", here});
  routes.push_back({R"(/api/v1/retained/(.+))", "GET", here});
  routes.push_back({R"(/api/v1/retained/(.+))", "DELETE",
                    [this, all](const httplib::Request& req, httplib::Response& res) {
    auto replies = all(req);  // each holds a copy
    for (const WorkerReply& r : replies)
      if (r.answered() && r.http.status == 200) return reply_with(res, r);
    reply_with(res, replies[calls_.self()]);
  }});

  // A tap here sees the messages of every worker (they reach it through the routing layer).
  routes.push_back({"/api/v1/taps", "POST", here});
  routes.push_back({R"(/api/v1/taps/([^/]+))", "GET", here});
  routes.push_back({R"(/api/v1/taps/([^/]+))", "DELETE", here});

  routes.push_back({"/api/v1/stats", "GET",
                    [this, all](const httplib::Request& req, httplib::Response& res) {
    auto replies = all(req);
    json out = merge_stats(parse_all(replies), config_.same_everywhere_stats);
    note_unusable(out, replies);
    reply_json(res, 200, out);
  }});

  auto count_receivers = [all](const httplib::Request& req, httplib::Response& res) {
    auto replies = all(req);
    if (const WorkerReply* refused = first_refusal(replies)) return reply_with(res, *refused);
    uint64_t receivers = 0;
    for (const json& j : parse_all(replies))
      if (j.is_object()) receivers += j.value("receivers", uint64_t{0});
    std::string topic = req.get_param_value("topic");
    if (req.method == "POST") {
      json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
      topic = body.is_object() && body["topic"].is_string() ? body["topic"].get<std::string>() : "";
    }
    json out = {{"topic", topic}, {"receivers", receivers}};
    note_unusable(out, replies);
    reply_json(res, 200, out);
  };
  routes.push_back({"/api/v1/receivers", "GET", count_receivers});
  routes.push_back({"/api/v1/receivers", "POST", count_receivers});
  return routes;
}

}  // namespace tcpms::admin
