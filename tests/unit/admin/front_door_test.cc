// The front door's parts that need no process: reading a worker's answer back, merging the
// workers' Prometheus texts, stats, client pages and subscriptions, and the fan-out itself
// against a worker API on a Unix socket of this test.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "admin/front_door_merge.h"
#include "admin/http_reply.h"
#include "admin/metrics_merge.h"
#include "admin/worker_calls.h"
#include "tcpms/conn_id.h"
#include "tcpms/unique_fd.h"

namespace tcpms::admin {
namespace {

using nlohmann::json;

TEST(HttpReply, ReadsStatusBodyAndTheHeadersWorthPassingOn) {
  auto r = parse_http_reply(
      "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nallow: GET, POST\r\n"
      "X-Other: no\r\nContent-Length: 4\r\n\r\n{\"a\"trailing");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->body, "{\"a\"");
  EXPECT_EQ(r->header("Allow"), "GET, POST");
  EXPECT_EQ(r->header("x-other"), "");
  EXPECT_EQ(r->header("content-type"), "application/json");
}

TEST(HttpReply, WithoutContentLengthTheBodyRunsToTheEnd) {
  auto r = parse_http_reply("HTTP/1.0 200 OK\r\n\r\nall of it");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "all of it");
}

TEST(HttpReply, RefusesWhatIsNotAWholeAnswer) {
  std::string error;
  EXPECT_FALSE(parse_http_reply("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", &error));
  EXPECT_EQ(error, "the answer ends inside its body");
  EXPECT_FALSE(parse_http_reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", &error));
  EXPECT_FALSE(parse_http_reply("HTTP/1.1 2000 OK\r\n\r\n", &error));
  EXPECT_FALSE(parse_http_reply("SMTP/1.1 200 OK\r\n\r\n", &error));
  EXPECT_FALSE(parse_http_reply("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", &error));
  EXPECT_FALSE(parse_http_reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", &error));
  EXPECT_FALSE(parse_http_reply("HTTP/1.1 200 OK\r\nno colon\r\n\r\n", &error));
  EXPECT_TRUE(parse_http_reply("HTTP/1.1 204\r\n\r\n", &error));
}

TEST(MetricsMerge, SumsTotalsKeepsLoopsAndLabelsWhatDescribesOneProcess) {
  std::string w0 =
      "# HELP tcpms_connections Open connections.\n# TYPE tcpms_connections gauge\n"
      "tcpms_connections{loop=\"0\"} 3\n"
      "# HELP tcpms_mqtt_messages_received_total In.\n# TYPE tcpms_mqtt_messages_received_total counter\n"
      "tcpms_mqtt_messages_received_total 10\n"
      "# HELP tcpms_mqtt_auth_total Auth.\n# TYPE tcpms_mqtt_auth_total counter\n"
      "tcpms_mqtt_auth_total{result=\"ok\"} 1\ntcpms_mqtt_auth_total{result=\"bad\"} 2\n"
      "# HELP tcpms_process_resident_memory_bytes RSS.\n# TYPE tcpms_process_resident_memory_bytes gauge\n"
      "tcpms_process_resident_memory_bytes 1000\n"
      "# HELP tcpms_admin_requests_total Requests.\n# TYPE tcpms_admin_requests_total counter\n"
      "tcpms_admin_requests_total 5\n"
      "# HELP tcpms_loop_busy_seconds_total Busy.\n# TYPE tcpms_loop_busy_seconds_total counter\n"
      "tcpms_loop_busy_seconds_total{loop=\"0\"} 0.250000\n";
  std::string w1 =
      "# HELP tcpms_connections Open connections.\n# TYPE tcpms_connections gauge\n"
      "tcpms_connections{loop=\"1\"} 4\n"
      "# HELP tcpms_mqtt_messages_received_total In.\n# TYPE tcpms_mqtt_messages_received_total counter\n"
      "tcpms_mqtt_messages_received_total 32\n"
      "# HELP tcpms_mqtt_auth_total Auth.\n# TYPE tcpms_mqtt_auth_total counter\n"
      "tcpms_mqtt_auth_total{result=\"bad\"} 5\n"
      "# HELP tcpms_process_resident_memory_bytes RSS.\n# TYPE tcpms_process_resident_memory_bytes gauge\n"
      "tcpms_process_resident_memory_bytes 2000\n"
      "# HELP tcpms_admin_requests_total Requests.\n# TYPE tcpms_admin_requests_total counter\n"
      "tcpms_admin_requests_total 7\n"
      "# HELP tcpms_loop_busy_seconds_total Busy.\n# TYPE tcpms_loop_busy_seconds_total counter\n"
      "tcpms_loop_busy_seconds_total{loop=\"1\"} 0.5\n";
  MetricsMergeRules rules{{"tcpms_process_"}, {"tcpms_admin_"}};
  std::string out = merge_metrics({w0, "", w1}, rules);
  EXPECT_EQ(out,
            "# HELP tcpms_connections Open connections.\n# TYPE tcpms_connections gauge\n"
            "tcpms_connections{loop=\"0\"} 3\ntcpms_connections{loop=\"1\"} 4\n"
            "# HELP tcpms_mqtt_messages_received_total In.\n# TYPE tcpms_mqtt_messages_received_total counter\n"
            "tcpms_mqtt_messages_received_total 42\n"
            "# HELP tcpms_mqtt_auth_total Auth.\n# TYPE tcpms_mqtt_auth_total counter\n"
            "tcpms_mqtt_auth_total{result=\"ok\"} 1\ntcpms_mqtt_auth_total{result=\"bad\"} 7\n"
            "# HELP tcpms_process_resident_memory_bytes RSS.\n# TYPE tcpms_process_resident_memory_bytes gauge\n"
            "tcpms_process_resident_memory_bytes{worker=\"0\"} 1000\n"
            "tcpms_process_resident_memory_bytes{worker=\"2\"} 2000\n"
            "# HELP tcpms_loop_busy_seconds_total Busy.\n# TYPE tcpms_loop_busy_seconds_total counter\n"
            "tcpms_loop_busy_seconds_total{loop=\"0\"} 0.250000\ntcpms_loop_busy_seconds_total{loop=\"1\"} 0.5\n");
}

TEST(MetricsMerge, AWorkerLabelGoesFirstAmongExistingLabels) {
  std::string w = "# TYPE tcpms_mesh_frames_total counter\ntcpms_mesh_frames_total{direction=\"sent\"} 2\n";
  EXPECT_EQ(merge_metrics({w, w}, {{"tcpms_mesh_"}, {}}),
            "# TYPE tcpms_mesh_frames_total counter\n"
            "tcpms_mesh_frames_total{worker=\"0\",direction=\"sent\"} 2\n"
            "tcpms_mesh_frames_total{worker=\"1\",direction=\"sent\"} 2\n");
}

TEST(FrontDoorMerge, StatsAddUpAndRetainedIsEveryWorkersCopy) {
  json a = {{"protocol", "mqtt"}, {"ready", true}, {"uptime_s", 10.5}, {"connections", 2},
            {"bytes_in_per_s", 1.5}, {"rss_bytes", 100}, {"messages_in_per_s", nullptr},
            {"loops", {{{"index", 0}, {"connections", 2}}}},
            {"protocol_stats", {{"sessions_connected", 2}, {"retained", 7}}}};
  json b = {{"protocol", "mqtt"}, {"ready", true}, {"uptime_s", 3.0}, {"connections", 5},
            {"bytes_in_per_s", 0.5}, {"rss_bytes", 300}, {"messages_in_per_s", nullptr},
            {"loops", {{{"index", 1}, {"connections", 5}}}},
            {"protocol_stats", {{"sessions_connected", 5}, {"retained", 7}}}};
  json out = merge_stats({a, b}, {"retained"});
  EXPECT_EQ(out["connections"], 7);
  EXPECT_DOUBLE_EQ(out["bytes_in_per_s"].get<double>(), 2.0);
  EXPECT_EQ(out["rss_bytes"], 400);
  EXPECT_DOUBLE_EQ(out["uptime_s"].get<double>(), 10.5);
  EXPECT_TRUE(out["messages_in_per_s"].is_null());
  EXPECT_EQ(out["protocol"], "mqtt");
  EXPECT_EQ(out["ready"], true);
  EXPECT_EQ(out["loops"].size(), 2u);
  EXPECT_EQ(out["protocol_stats"]["sessions_connected"], 7);
  EXPECT_EQ(out["protocol_stats"]["retained"], 7);
  EXPECT_EQ(out["workers"].size(), 2u);

  json missing = merge_stats({a, nullptr}, {"retained"});
  EXPECT_EQ(missing["ready"], false);  // a worker that does not answer is not ready
  EXPECT_EQ(missing["connections"], 2);
}

json page(std::initializer_list<const char*> ids, bool more) {
  json rows = json::array();
  for (const char* id : ids) rows.push_back({{"id", id}});
  return {{"clients", rows}, {"next_cursor", more ? json(rows.back()["id"]) : json(nullptr)}};
}

TEST(FrontDoorMerge, PagesTakeTheFirstRowsOfAllWorkersInIdOrder) {
  // limit 3: worker 0 had more than 3 after the cursor, worker 1 two.
  json out = merge_pages({page({"a", "d", "e"}, true), page({"b", "c"}, false)}, "clients", 3,
                         PageOrder::kById);
  ASSERT_EQ(out["clients"].size(), 3u);
  EXPECT_EQ(out["clients"][0]["id"], "a");
  EXPECT_EQ(out["clients"][1]["id"], "b");
  EXPECT_EQ(out["clients"][2]["id"], "c");
  EXPECT_EQ(out["next_cursor"], "c");

  json last = merge_pages({page({"x"}, false), page({"y"}, false)}, "clients", 3, PageOrder::kById);
  EXPECT_EQ(last["clients"].size(), 2u);
  EXPECT_TRUE(last["next_cursor"].is_null());

  // Exactly `limit` rows, but one worker said it has more: there is a next page.
  json full = merge_pages({page({"a", "b"}, true), page({}, false)}, "clients", 2, PageOrder::kById);
  EXPECT_EQ(full["next_cursor"], "b");
}

TEST(FrontDoorMerge, RawConnectionsPageByLoopThenSlot) {
  auto row = [](uint32_t loop, uint32_t slot) {
    uint64_t id = ConnId::make(loop, slot, 1).value;
    return json{{"id", std::to_string(id)}, {"conn_id", id}, {"loop", loop}};
  };
  json w0 = {{"clients", {row(0, 5), row(1, 2)}}, {"next_cursor", nullptr}};
  json w1 = {{"clients", {row(2, 0), row(3, 1)}}, {"next_cursor", nullptr}};
  json out = merge_pages({w1, w0}, "clients", 3, PageOrder::kByConnection);
  ASSERT_EQ(out["clients"].size(), 3u);
  EXPECT_EQ(out["clients"][0]["loop"], 0);
  EXPECT_EQ(out["clients"][2]["loop"], 2);
  EXPECT_EQ(out["next_cursor"], "2.0");
}

TEST(FrontDoorMerge, SubscriptionsAreTheSortedUnion) {
  json a = {{"subscriptions", {{{"client_id", "c"}, {"filter", "x"}}, {{"client_id", "a"}, {"filter", "z"}}}}};
  json b = {{"subscriptions", {{{"client_id", "a"}, {"filter", "y"}}}}};
  json out = merge_subscriptions({a, nullptr, b}, 2);
  ASSERT_EQ(out["subscriptions"].size(), 2u);
  EXPECT_EQ(out["subscriptions"][0]["filter"], "y");
  EXPECT_EQ(out["subscriptions"][1]["filter"], "z");
  EXPECT_EQ(out["truncated"], true);
  EXPECT_EQ(merge_subscriptions({a, b}, 10)["truncated"], false);
}

// A worker's API reduced to what the calls need: one answer per connection, then close.
class FakeWorker {
 public:
  explicit FakeWorker(std::string name, std::string answer)
      : name_(std::move(name)), answer_(std::move(answer)) {
    fd_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    auto at = Endpoint::parse("unix:@" + name_);
    EXPECT_EQ(::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&at->addr), at->len), 0);
    EXPECT_EQ(::listen(fd_.get(), 8), 0);
    thread_ = std::thread([this] {
      UniqueFd c(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      std::string in;
      char buf[4096];
      while (in.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::recv(c.get(), buf, sizeof buf, 0);
        if (n <= 0) return;
        in.append(buf, static_cast<size_t>(n));
      }
      request_ = in;
      ::send(c.get(), answer_.data(), answer_.size(), MSG_NOSIGNAL);
    });
  }
  ~FakeWorker() { thread_.join(); }
  Endpoint endpoint() const { return *Endpoint::parse("unix:@" + name_); }
  const std::string& request() const { return request_; }

 private:
  std::string name_, answer_, request_;
  UniqueFd fd_;
  std::thread thread_;
};

TEST(FrontDoorMerge, NamesEveryWorkerWhoseAnswerIsNotUsable) {
  auto reply = [](unsigned worker, int status, std::string body, std::string error = {}) {
    WorkerReply r;
    r.worker = worker;
    r.http.status = status;
    r.http.body = std::move(body);
    r.error = std::move(error);
    return r;
  };
  std::vector<WorkerReply> replies = {
      reply(0, 200, "{}"), reply(1, 431, "{\"error\":\"header too large\"}\nmore"),
      reply(2, 0, "", "worker 2: timed out"), reply(3, 404, "{\"error\":\"no client\"}")};
  json out = json::object();
  EXPECT_TRUE(note_unusable(out, replies));
  EXPECT_EQ(out["workers_unanswered"], json({1, 2, 3}));
  EXPECT_EQ(out["worker_errors"][0], json({{"worker", 1}, {"status", 431},
                                           {"error", "{\"error\":\"header too large\"}"}}));
  EXPECT_EQ(out["worker_errors"][1], json({{"worker", 2}, {"status", 0}, {"error", "worker 2: timed out"}}));
  EXPECT_EQ(out["worker_errors"][2]["status"], 404);

  json lookup = json::object();  // who holds an id: 404 is an answer ("not here")
  EXPECT_TRUE(note_unusable(lookup, replies, {200, 404}));
  EXPECT_EQ(lookup["workers_unanswered"], json({1, 2}));

  json fine = json::object();
  EXPECT_FALSE(note_unusable(fine, {replies[0]}));
  EXPECT_FALSE(fine.contains("workers_unanswered"));
}

TEST(WorkerCalls, AsksEveryWorkerAtOnceAndThisOneInProcess) {
  const std::string base = "tcpms-front-door-test-" + std::to_string(::getpid());
  FakeWorker one(base + "-1", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none");
  auto gone = Endpoint::parse("unix:@" + base + "-nobody");
  std::string local_request;
  WorkerCalls calls(0, {Endpoint{}, one.endpoint(), *gone},
                    [&](std::string_view r) {
                      local_request = r;
                      return std::string("HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nzero");
                    },
                    std::chrono::milliseconds(3000));
  std::string request = make_request("GET", "/api/v1/stats", "secret");
  auto replies = calls.call_all(request);
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_EQ(replies[0].http.status, 404);
  EXPECT_EQ(replies[0].http.body, "zero");
  EXPECT_EQ(local_request, request);
  EXPECT_EQ(replies[1].http.status, 200);
  EXPECT_EQ(replies[1].http.body, "one");
  EXPECT_FALSE(replies[2].answered());
  EXPECT_NE(replies[2].error.find("worker 2: connect"), std::string::npos) << replies[2].error;
  EXPECT_NE(one.request().find("Authorization: Bearer secret\r\n"), std::string::npos);
  EXPECT_NE(one.request().find("Connection: close\r\n"), std::string::npos);
}

TEST(WorkerCalls, UrlEncodingKeepsOnlyUnreservedCharacters) {
  EXPECT_EQ(url_encode("a/b+#c d~"), "a%2Fb%2B%23c%20d~");
}

}  // namespace
}  // namespace tcpms::admin
