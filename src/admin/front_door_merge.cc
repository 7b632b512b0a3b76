#include "admin/front_door_merge.h"

#include <algorithm>
#include <tuple>

#include "tcpms/conn_id.h"

namespace tcpms::admin {
namespace {

using nlohmann::json;

bool in(const std::vector<std::string>& keys, const std::string& k) {
  return std::find(keys.begin(), keys.end(), k) != keys.end();
}

// Adds `from`'s numbers into `into`, key by key (integers stay integers).
void add_numbers(json& into, const json& from, const std::vector<std::string>& take_max) {
  for (auto it = from.begin(); it != from.end(); ++it) {
    const json& v = it.value();
    if (!v.is_number()) continue;
    json& slot = into[it.key()];
    if (slot.is_null()) {
      slot = v;
    } else if (in(take_max, it.key())) {
      if (v > slot) slot = v;
    } else if (slot.is_number_float() || v.is_number_float()) {
      slot = slot.get<double>() + v.get<double>();
    } else if (slot.is_number_unsigned() || v.is_number_unsigned()) {
      slot = slot.get<uint64_t>() + v.get<uint64_t>();
    } else {
      slot = slot.get<int64_t>() + v.get<int64_t>();
    }
  }
}

}  // namespace

json merge_stats(const std::vector<json>& stats, const std::vector<std::string>& same_everywhere) {
  json out = json::object();
  json loops = json::array(), workers = json::array(), protocol = json::object();
  bool ready = true, any = false;
  for (size_t i = 0; i < stats.size(); ++i) {
    const json& s = stats[i];
    if (!s.is_object()) {
      ready = false;  // a worker that does not answer is not ready to serve
      workers.push_back({{"index", i}, {"answered", false}, {"ready", false}});
      continue;
    }
    if (!any) {
      out = s;  // strings (protocol), nulls (echo's message rates) and the numbers' types
      any = true;
    } else {
      add_numbers(out, s, {"uptime_s"});
    }
    ready = ready && s.value("ready", false);
    if (auto l = s.find("loops"); l != s.end() && l->is_array())
      for (const json& one : *l) loops.push_back(one);
    if (auto p = s.find("protocol_stats"); p != s.end() && p->is_object()) {
      add_numbers(protocol, *p, same_everywhere);
    }
    workers.push_back({{"index", i}, {"answered", true}, {"ready", s.value("ready", false)},
                       {"connections", s.value("connections", json(0))},
                       {"rss_bytes", s.value("rss_bytes", json(0))}});
  }
  out["ready"] = any && ready;
  out["loops"] = std::move(loops);
  out["protocol_stats"] = std::move(protocol);
  out["workers"] = std::move(workers);
  return out;
}

json merge_pages(const std::vector<json>& pages, const char* key, size_t limit, PageOrder order) {
  std::vector<json> rows;
  bool more = false;
  for (const json& p : pages) {
    if (!p.is_object()) continue;
    if (auto c = p.find("next_cursor"); c != p.end() && !c->is_null()) more = true;
    if (auto r = p.find(key); r != p.end() && r->is_array())
      for (const json& row : *r) rows.push_back(row);
  }
  auto position = [](const json& row) {
    ConnId id{row.value("conn_id", uint64_t{0})};
    return std::make_tuple(id.loop(), id.slot());
  };
  if (order == PageOrder::kById) {
    std::stable_sort(rows.begin(), rows.end(), [](const json& a, const json& b) {
      return a.value("id", std::string()) < b.value("id", std::string());
    });
  } else {
    std::stable_sort(rows.begin(), rows.end(),
                     [&](const json& a, const json& b) { return position(a) < position(b); });
  }
  if (rows.size() > limit) {
    rows.resize(limit);
    more = true;
  }
  json next = nullptr;
  if (more && !rows.empty()) {
    if (order == PageOrder::kById) {
      next = rows.back().value("id", std::string());
    } else {
      auto [loop, slot] = position(rows.back());
      next = std::to_string(loop) + "." + std::to_string(slot);
    }
  }
  return {{key, std::move(rows)}, {"next_cursor", std::move(next)}};
}

json merge_subscriptions(const std::vector<json>& answers, size_t limit) {
  std::vector<json> rows;
  for (const json& a : answers) {
    if (!a.is_object()) continue;
    if (auto r = a.find("subscriptions"); r != a.end() && r->is_array())
      for (const json& row : *r) rows.push_back(row);
  }
  std::stable_sort(rows.begin(), rows.end(), [](const json& a, const json& b) {
    return std::make_tuple(a.value("client_id", std::string()), a.value("filter", std::string())) <
           std::make_tuple(b.value("client_id", std::string()), b.value("filter", std::string()));
  });
  if (rows.size() > limit) rows.resize(limit);
  const bool truncated = rows.size() >= limit;
  return {{"subscriptions", std::move(rows)}, {"truncated", truncated}};
}

bool note_unusable(nlohmann::json& out, const std::vector<WorkerReply>& replies,
                   std::initializer_list<int> usable) {
  nlohmann::json indexes = nlohmann::json::array(), errors = nlohmann::json::array();
  for (const WorkerReply& r : replies) {
    if (r.answered() && std::find(usable.begin(), usable.end(), r.http.status) != usable.end())
      continue;
    std::string_view text = r.answered() ? std::string_view(r.http.body) : std::string_view(r.error);
    text = text.substr(0, std::min(text.find('\n'), size_t{200}));
    indexes.push_back(r.worker);
    errors.push_back({{"worker", r.worker}, {"status", r.http.status}, {"error", std::string(text)}});
  }
  if (indexes.empty()) return false;
  out["workers_unanswered"] = std::move(indexes);
  out["worker_errors"] = std::move(errors);
  return true;
}

}  // namespace tcpms::admin
