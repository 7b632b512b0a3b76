#include "admin/front_door.h"

#include <algorithm>
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

json parse_any(const WorkerReply& r) {
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

namespace {

std::string tap_open_request(const std::string& filter, const std::string& token) {
  return make_request("POST", "/api/v1/taps", token, json{{"filter", filter}}.dump(),
                      "application/json");
}

std::optional<uint64_t> whole_number(std::string_view text) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return n;
}

std::optional<uint64_t> tap_id_of(const json& answer) {
  if (!answer.is_object() || !answer.contains("id") || !answer["id"].is_string()) return std::nullopt;
  return whole_number(answer["id"].get_ref<const std::string&>());
}

json tap_answer(uint64_t id, const std::string& filter, json messages, uint64_t next,
                uint64_t dropped) {
  return {{"id", std::to_string(id)}, {"filter", filter}, {"messages", std::move(messages)},
          {"next", next}, {"dropped", dropped}};
}

}  // namespace

std::shared_ptr<FrontDoor::FrontTap> FrontDoor::find_tap(std::string_view text) {
  auto id = whole_number(text);
  if (!id) return nullptr;
  std::lock_guard lock(taps_mutex_);
  auto it = taps_.find(*id);
  return it == taps_.end() ? nullptr : it->second;
}

void FrontDoor::open_tap(const httplib::Request& req, httplib::Response& res) {
  {  // taps nobody read for a minute close (their workers' parts close themselves)
    std::lock_guard lock(taps_mutex_);
    const auto now = std::chrono::steady_clock::now();
    std::erase_if(taps_, [&](const auto& t) {
      std::unique_lock tap_lock(t.second->mutex, std::try_to_lock);
      return tap_lock.owns_lock() && now - t.second->last_read > kTapIdle;
    });
    if (taps_.size() >= kMaxTaps)
      return reply_error(res, 503, fmt::format("{} taps are open already (close one, or wait a "
                                               "minute for an unread one to close itself)", kMaxTaps));
  }
  // This worker checks the request (filter, fields) exactly as one process would.
  WorkerReply here = calls_.call_one(calls_.self(), forward_request(req));
  json first = here.answered() ? parse_any(here) : json(nullptr);
  if (here.http.status != 201 || !tap_id_of(first)) return reply_with(res, here);
  auto tap = std::make_shared<FrontTap>();
  tap->filter = first.value("filter", std::string());
  tap->ids.resize(calls_.count());
  tap->after.assign(calls_.count(), 0);
  tap->dropped.assign(calls_.count(), 0);
  tap->ids[calls_.self()] = tap_id_of(first);
  std::vector<unsigned> others;
  for (unsigned w = 0; w < calls_.count(); ++w)
    if (w != calls_.self()) others.push_back(w);
  auto replies = calls_.call(others, tap_open_request(tap->filter, config_.bearer_token));
  for (const WorkerReply& r : replies)
    if (r.answered() && r.http.status == 201) tap->ids[r.worker] = tap_id_of(parse_any(r));
  tap->last_read = std::chrono::steady_clock::now();
  json out;
  {
    std::lock_guard lock(taps_mutex_);
    const uint64_t id = next_tap_++;
    taps_[id] = tap;
    out = tap_answer(id, tap->filter, json::array(), 0, 0);
  }
  note_unusable(out, replies, {201});  // opened again at the first read
  reply_json(res, 201, out);
}

void FrontDoor::pull(FrontTap& tap, json& notes) {
  std::vector<unsigned> to_read, to_open;
  for (unsigned w = 0; w < calls_.count(); ++w) (tap.ids[w] ? to_read : to_open).push_back(w);
  std::vector<WorkerReply> replies;
  // Each worker has its own tap id and cursor, so each read is its own request.
  for (unsigned w : to_read) {
    replies.push_back(calls_.call_one(
        w, make_request("GET", fmt::format("/api/v1/taps/{}?after={}", *tap.ids[w], tap.after[w]),
                        config_.bearer_token)));
  }
  json reopened = json::array();
  std::vector<WorkerReply> unusable;
  std::vector<std::pair<unsigned, json>> fresh;  // (worker, message)
  for (WorkerReply& r : replies) {
    if (r.answered() && r.http.status == 404) {  // the worker restarted, or its tap idled out
      tap.ids[r.worker].reset();
      to_open.push_back(r.worker);
      continue;
    }
    json j = parse(r);
    if (!j.is_object()) {
      unusable.push_back(std::move(r));
      continue;
    }
    tap.after[r.worker] = j.value("next", tap.after[r.worker]);
    tap.dropped[r.worker] = j.value("dropped", uint64_t{0});
    for (json& m : j["messages"]) fresh.emplace_back(r.worker, std::move(m));
  }
  if (!to_open.empty()) {
    for (WorkerReply& r : calls_.call(to_open, tap_open_request(tap.filter, config_.bearer_token))) {
      auto id = r.answered() && r.http.status == 201 ? tap_id_of(parse_any(r)) : std::nullopt;
      if (!id) {
        unusable.push_back(std::move(r));
        continue;
      }
      tap.ids[r.worker] = id;
      tap.after[r.worker] = 0;
      tap.dropped[r.worker] = 0;
      reopened.push_back(r.worker);
    }
  }
  // The workers' messages in the order they were seen (each worker's own order kept).
  std::stable_sort(fresh.begin(), fresh.end(), [](const auto& a, const auto& b) {
    return a.second.value("time_unix_ms", int64_t{0}) < b.second.value("time_unix_ms", int64_t{0});
  });
  for (auto& [worker, m] : fresh) {
    m["seq"] = ++tap.seq;
    m["worker"] = worker;
    tap.ring.push_back(std::move(m));
    if (tap.ring.size() > kTapRing) {
      tap.ring.pop_front();
      ++tap.ring_dropped;
    }
  }
  note_unusable(notes, unusable, {200});
  if (!reopened.empty()) notes["workers_reopened"] = std::move(reopened);
}

void FrontDoor::read_tap(const httplib::Request& req, httplib::Response& res) {
  const std::string id = req.matches[1];
  auto tap = find_tap(id);
  if (!tap) return reply_error(res, 404, fmt::format("no tap {} (taps unread for a minute close)", id));
  uint64_t after = 0;
  if (req.has_param("after")) {
    auto n = whole_number(req.get_param_value("after"));
    if (!n) return reply_error(res, 400, "\"after\" must be a whole number");
    after = *n;
  }
  std::lock_guard lock(tap->mutex);
  tap->last_read = std::chrono::steady_clock::now();
  json notes = json::object();
  pull(*tap, notes);
  json messages = json::array();
  for (const json& m : tap->ring)
    if (m.value("seq", uint64_t{0}) > after) messages.push_back(m);
  uint64_t dropped = tap->ring_dropped;
  for (uint64_t d : tap->dropped) dropped += d;
  json out = tap_answer(*whole_number(id), tap->filter, std::move(messages), std::max(after, tap->seq),
                        dropped);
  out.update(notes);
  reply_json(res, 200, out);
}

void FrontDoor::close_tap(const httplib::Request& req, httplib::Response& res) {
  const std::string id = req.matches[1];
  std::shared_ptr<FrontTap> tap;
  {
    std::lock_guard lock(taps_mutex_);
    if (auto n = whole_number(id)) {
      if (auto it = taps_.find(*n); it != taps_.end()) {
        tap = it->second;
        taps_.erase(it);
      }
    }
  }
  if (!tap) return reply_error(res, 404, fmt::format("no tap {}", id));
  std::lock_guard lock(tap->mutex);
  for (unsigned w = 0; w < calls_.count(); ++w)
    if (tap->ids[w])
      calls_.call_one(w, make_request("DELETE", fmt::format("/api/v1/taps/{}", *tap->ids[w]),
                                      config_.bearer_token));
  reply_json(res, 200, {{"status", "closed"}, {"detail", fmt::format("tap {} closed", id)}});
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
    if (config_.routed_push) return relay(req, res, calls_.self());
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

  // A worker's tap sees only the messages routed through that worker: one tap per worker.
  routes.push_back({"/api/v1/taps", "POST",
                    [this](const httplib::Request& req, httplib::Response& res) { open_tap(req, res); }});
  routes.push_back({R"(/api/v1/taps/([^/]+))", "GET",
                    [this](const httplib::Request& req, httplib::Response& res) { read_tap(req, res); }});
  routes.push_back({R"(/api/v1/taps/([^/]+))", "DELETE",
                    [this](const httplib::Request& req, httplib::Response& res) { close_tap(req, res); }});

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
