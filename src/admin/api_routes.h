// The admin API's routes: the push API (/api/v1/publish, /api/v1/clients...), /api/v1/stats,
// and the table that installs every route with consistent answers for the methods a path
// does not take (405 with Allow) — cpp-httplib alone would say 404.
//
// Thread rules: build and install before the HTTP server starts; handlers run on its threads.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <httplib.h>

#include "admin/push_target.h"
#include "admin/stats.h"

namespace tcpms::admin {

struct Route {
  std::string pattern;  // cpp-httplib regex, whole path
  std::string method;   // "GET", "POST", "DELETE", ...
  httplib::Server::Handler handler;
};

// Registers `routes` in order (put specific patterns first) and a 405 for every other method
// on each pattern.
void install_routes(httplib::Server& http, const std::vector<Route>& routes);

struct ApiContext {
  std::function<PushTarget&()> target;  // the current target, read per request
  StatsSampler* stats = nullptr;
  std::function<bool()> ready;
};

std::vector<Route> api_routes(ApiContext ctx);

// HTTP status for a push outcome.
int http_status(PushStatus status) noexcept;

}  // namespace tcpms::admin
