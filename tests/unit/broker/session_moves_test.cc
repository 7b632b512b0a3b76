// Sessions moving between two brokers in one test process, as between worker processes:
// broker B's router fetches from broker A (Broker::export_session) from another thread, and
// B's handler imports the image (subscriptions, in-flight, queue) before its CONNACK.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <mutex>
#include <thread>
#include <vector>

#include "broker/broker.h"
#include "mqtt_test_client.h"
#include "broker/session_image.h"
#include "mqtt/codec.h"
#include "tcpms/server.h"

namespace tcpms::broker {
namespace {

using namespace std::chrono_literals;

using testing::Client;

// Fetches from another broker, answering on a thread of its own (as a mesh loop would).
class PeerRouter final : public Router {
 public:
  explicit PeerRouter(Broker** peer) : peer_(peer) {}
  bool shares_sessions() const override { return true; }
  void fetch_session(std::string_view id, SessionDone done) override {
    fetches.fetch_add(1);
    std::thread([peer = *peer_, id = std::string(id), done = std::move(done)]() mutable {
      if (peer == nullptr) {
        done(std::nullopt);
        return;
      }
      peer->export_session(id, std::move(done));
    }).detach();
  }
  void on_session_ended(std::string_view) override { ended.fetch_add(1); }
  std::atomic<int> fetches{0};
  std::atomic<int> ended{0};

 private:
  Broker** peer_;
};

struct Node {
  explicit Node(Broker** peer) : Node(std::make_unique<PeerRouter>(peer)) {}
  explicit Node(std::unique_ptr<Router> r) : broker(config()) {
    router = dynamic_cast<PeerRouter*>(r.get());  // null for the other test routers
    broker.set_router(std::move(r));
    ServerConfig sc;
    sc.threads = 2;
    server = std::make_unique<Server>(sc);
    broker.attach(*server);
    server->listen(*Endpoint::parse("127.0.0.1:0"), broker.handler_factory());
    EXPECT_EQ(server->start(), "");
    port = server->bound_port(0);
  }
  ~Node() {
    server->stop();
    server->wait();
  }
  static BrokerConfig config() {
    BrokerConfig c;
    c.sys_interval_ms = 0;
    return c;
  }
  Broker broker;
  PeerRouter* router = nullptr;
  std::unique_ptr<Server> server;
  uint16_t port = 0;
};

// Two brokers, each fetching from the other.
struct Pair {
  Broker* a_ptr = nullptr;
  Broker* b_ptr = nullptr;
  Node a{&b_ptr};
  Node b{&a_ptr};
  Pair() {
    a_ptr = &a.broker;
    b_ptr = &b.broker;
  }
};

// A gauge from the broker's /metrics text, summed over loops.
int64_t gauge(const Broker& b, const std::string& name) {
  std::string text;
  b.render_metrics(text);
  int64_t sum = 0;
  size_t at = 0;
  while ((at = text.find("\n" + name + "{", at)) != std::string::npos) {
    at = text.find(' ', at) + 1;
    sum += std::stoll(text.substr(at, text.find('\n', at) - at));
  }
  return sum;
}

// Sends CONNECT; the CONNACK's session present flag, or -1 if no CONNACK came.
int connect_present(Client& c, const char* id, bool clean) {
  c.send_connect(id, clean);
  auto [type, body] = c.read();
  if (type != mqtt::PacketType::kConnack || body.size() < 2) return -1;
  return static_cast<int>(body[0]) & 1;
}

void subscribe(Client& c, const char* filter) {
  mqtt::Subscription s{filter, {mqtt::QoS::k1}};
  std::vector<std::byte> buf(mqtt::subscribe_size(1, {&s, 1}, {}, mqtt::ProtocolVersion::kV311));
  ASSERT_EQ(mqtt::encode_subscribe(1, {&s, 1}, {}, mqtt::ProtocolVersion::kV311, buf), buf.size());
  c.send_bytes(buf);
  EXPECT_EQ(c.read().first, mqtt::PacketType::kSuback);
}

void wait_offline(Broker& b, const char* id) {
  for (int i = 0; i < 200; ++i) {
    auto e = b.registry().find(id);
    if (e && !e->conn.valid()) return;
    std::this_thread::sleep_for(5ms);
  }
  ADD_FAILURE() << id << " never went offline";
}

TEST(SessionMoves, ImageTravelsWithInflightAndQueue) {
  Pair pair;
  Node& a = pair.a;
  Node& b = pair.b;
  {
    Client c(a.port);
    EXPECT_EQ(connect_present(c, "mv-1", false), 0);  // nobody had it
    subscribe(c, "a/+");
    ASSERT_TRUE(a.broker.publish("a/1", as_bytes("inflight"), mqtt::QoS::k1, false));
    EXPECT_EQ(c.read_publish(0x02).topic, "a/1");  // never acknowledged
  }
  wait_offline(a.broker, "mv-1");
  ASSERT_TRUE(a.broker.publish("a/2", as_bytes("queued-1"), mqtt::QoS::k1, false));
  std::this_thread::sleep_for(20ms);  // publish() picks loops round robin: no order between them
  ASSERT_TRUE(a.broker.publish("a/3", as_bytes("queued-2"), mqtt::QoS::k1, false));
  std::this_thread::sleep_for(50ms);
  {
    Client c(b.port);
    EXPECT_EQ(connect_present(c, "mv-1", false), 1);  // session present [MQTT-3.2.2-2]
    mqtt::Publish p = c.read_publish(0x0A);
    EXPECT_EQ(p.topic, "a/1");
    EXPECT_TRUE(p.dup);  // [MQTT-4.4.0-1]
    EXPECT_EQ(c.read_publish(0x02).topic, "a/2");
    EXPECT_EQ(c.read_publish(0x02).topic, "a/3");
    // The subscription came along: a publish on B reaches it.
    ASSERT_TRUE(b.broker.publish("a/4", as_bytes("after"), mqtt::QoS::k1, false));
    EXPECT_EQ(c.read_publish(0x02).topic, "a/4");
  }
  EXPECT_FALSE(a.broker.registry().find("mv-1").has_value());  // A gave it up
  EXPECT_EQ(a.router->ended.load(), 1);
  // A's gauges are back to nothing; B counts the subscription it took over.
  for (const char* g : {"tcpms_mqtt_queued_messages", "tcpms_mqtt_inflight_messages",
                        "tcpms_mqtt_sessions_offline", "tcpms_mqtt_subscriptions",
                        "tcpms_mqtt_sessions_connected"})
    EXPECT_EQ(gauge(a.broker, g), 0) << g;
  EXPECT_EQ(gauge(a.broker, "tcpms_mqtt_sessions_exported_total"), 1);
  EXPECT_EQ(gauge(b.broker, "tcpms_mqtt_sessions_imported_total"), 1);
  EXPECT_EQ(gauge(b.broker, "tcpms_mqtt_subscriptions"), 1);
  wait_offline(b.broker, "mv-1");
  // A clean start discards it [MQTT-3.1.2-6]; a clean CONNECT asks nobody.
  {
    Client c(b.port);
    EXPECT_EQ(connect_present(c, "mv-1", true), 0);
  }
  EXPECT_EQ(b.router->ended.load(), 1);
  for (const char* g : {"tcpms_mqtt_queued_messages", "tcpms_mqtt_inflight_messages",
                        "tcpms_mqtt_subscriptions"})
    EXPECT_EQ(gauge(b.broker, g), 0) << g;
}

TEST(SessionMoves, ConnectedHolderIsTakenOver) {
  Pair pair;
  Node& a = pair.a;
  Node& b = pair.b;
  Client old(a.port);
  old.send_connect("mv-2", false);
  ASSERT_EQ(old.read().first, mqtt::PacketType::kConnack);
  subscribe(old, "t");
  Client now(b.port);
  EXPECT_EQ(connect_present(now, "mv-2", false), 1);
  EXPECT_EQ(old.read().first, mqtt::PacketType{});  // closed [MQTT-3.1.4-2]
  ASSERT_TRUE(b.broker.publish("t", as_bytes("x"), mqtt::QoS::k1, false));
  EXPECT_EQ(now.read_publish(0x02).topic, "t");
}

TEST(SessionMoves, NobodyHasItAndLateImagesAreAdopted) {
  Broker* none = nullptr;
  Node b(&none);
  {
    Client c(b.port);
    EXPECT_EQ(connect_present(c, "mv-3", false), 0);
  }
  EXPECT_EQ(b.router->fetches.load(), 1);
  // A late image for an id with no session here becomes an offline session...
  SessionImage img;
  img.subscriptions.push_back({"late/#", mqtt::QoS::k1});
  OutMessage m;
  m.topic = SharedBytes::copy_of(as_bytes("late/x"));
  m.payload = SharedBytes::copy_of(as_bytes("kept"));
  m.qos = mqtt::QoS::k1;
  img.queued.push_back(m);
  std::string bytes;
  encode_session_image(img, bytes);
  EXPECT_TRUE(b.broker.adopt_session("mv-4", bytes));
  // ...and for an id that has one, it is dropped and counted.
  wait_offline(b.broker, "mv-3");
  EXPECT_FALSE(b.broker.adopt_session("mv-3", bytes));
  EXPECT_EQ(b.broker.sessions_adopt_dropped(), 1u);
  // Garbage is refused on the loop without harm.
  EXPECT_TRUE(b.broker.adopt_session("mv-5", "garbage"));
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(b.broker.registry().find("mv-5").has_value());
  // The adopted session is there for its next CONNECT, which asks nobody.
  Client c(b.port);
  EXPECT_EQ(connect_present(c, "mv-4", false), 1);
  EXPECT_EQ(c.read_publish(0x02).topic, "late/x");
  EXPECT_EQ(b.router->fetches.load(), 1);
}

// Holds every fetch until release() answers it "nobody has it".
class HoldingRouter final : public Router {
 public:
  bool shares_sessions() const override { return true; }
  void fetch_session(std::string_view, SessionDone done) override {
    std::lock_guard lock(mu);
    held.push_back(std::move(done));
  }
  size_t held_count() {
    std::lock_guard lock(mu);
    return held.size();
  }
  void release() {
    std::vector<SessionDone> out;
    {
      std::lock_guard lock(mu);
      out.swap(held);
    }
    for (auto& d : out) d(std::nullopt);
  }
  std::mutex mu;
  std::vector<SessionDone> held;
};

TEST(SessionMoves, APushWhileTheSessionIsFetchedWaitsForTheConnection) {
  auto r = std::make_unique<HoldingRouter>();
  HoldingRouter* router = r.get();
  Node node(std::move(r));
  Broker& broker = node.broker;
  {
    Client c(node.port);
    c.send_connect("mv-7", false);
    for (int i = 0; i < 400 && router->held_count() == 0; ++i) std::this_thread::sleep_for(5ms);
    ASSERT_EQ(router->held_count(), 1u);
    // The registry names the connection already, so the push is answered "sent": it must
    // then reach the client, not vanish while the fetch is out.
    EXPECT_EQ(broker.send_to_client("mv-7", "to/mv-7", as_bytes("during fetch"), mqtt::QoS::k1),
              SendResult::kSent);
    std::this_thread::sleep_for(50ms);
    router->release();
    auto [type, body] = c.read();
    ASSERT_EQ(type, mqtt::PacketType::kConnack);
    mqtt::Publish p = c.read_publish(0x02);
    EXPECT_EQ(p.topic, "to/mv-7");
  }
}

TEST(SessionMoves, ExportRunsDoneOnceForUnknownAndDrop) {
  Broker* none = nullptr;
  Node a(&none);
  std::atomic<int> calls{0};
  a.broker.export_session("nobody", [&](std::optional<std::string> img) {
    EXPECT_FALSE(img.has_value());
    calls.fetch_add(1);
  });
  EXPECT_EQ(calls.load(), 1);
  Client c(a.port);
  c.send_connect("mv-6", false);
  ASSERT_EQ(c.read().first, mqtt::PacketType::kConnack);
  a.broker.drop_session("mv-6");
  EXPECT_EQ(c.read().first, mqtt::PacketType{});  // closed
  for (int i = 0; i < 200 && a.broker.registry().find("mv-6"); ++i) std::this_thread::sleep_for(5ms);
  EXPECT_FALSE(a.broker.registry().find("mv-6").has_value());  // discarded though persistent
}

}  // namespace
}  // namespace tcpms::broker
