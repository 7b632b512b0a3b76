// MeshRouter between worker "processes" in one test process: two Servers, each with its
// Broker and PeerMesh over abstract Unix sockets, as tcpms-server --processes 2 wires them.
// Sessions are fetched from the peer, a CONNECT on one worker takes the other's over, and a
// peer that is down is not waited for.
#include "workers/mesh_router.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "../broker/mqtt_test_client.h"
#include "broker/broker.h"
#include "workers/peer_mesh.h"

namespace tcpms::workers {
namespace {

using namespace std::chrono_literals;
using broker::testing::Client;

std::string group_name() { return "ut-" + std::to_string(::getpid()); }

struct Worker {
  Worker(unsigned index, unsigned count) : broker(config()) {
    ServerConfig sc;
    sc.threads = 1;
    sc.loop_index_base = index;
    server = std::make_unique<Server>(sc);
    mesh = std::make_unique<PeerMesh>(group_name(), index, count,
                                      [this](unsigned, uint8_t kind, ByteView body) {
                                        MeshRouter::receive(&broker, *server, kind, body);
                                      });
    broker.set_router(std::make_unique<MeshRouter>(*mesh));
    broker.attach(*server);
    server->listen(*Endpoint::parse("127.0.0.1:0"), broker.handler_factory());
    mesh->attach(*server);
    EXPECT_EQ(server->start(), "");
    mesh->start();
    port = server->bound_port(0);
  }
  ~Worker() {
    server->stop();
    server->wait();
    server.reset();  // its loops close the mesh links, whose handlers point into the mesh
  }
  static broker::BrokerConfig config() {
    broker::BrokerConfig c;
    c.sys_interval_ms = 0;
    return c;
  }
  broker::Broker broker;
  std::unique_ptr<Server> server;
  std::unique_ptr<PeerMesh> mesh;
  uint16_t port = 0;
};

int connect_present(Client& c, const char* id, bool clean) {
  c.send_connect(id, clean);
  auto [type, body] = c.read();
  if (type != mqtt::PacketType::kConnack || body.size() < 2) return -1;
  return static_cast<int>(body[0]) & 1;
}

void wait_links(Worker& a, Worker& b) {
  for (int i = 0; i < 400 && (a.mesh->links_up() < 1 || b.mesh->links_up() < 1); ++i)
    std::this_thread::sleep_for(5ms);
  ASSERT_EQ(a.mesh->links_up(), 1u);
  ASSERT_EQ(b.mesh->links_up(), 1u);
}

TEST(MeshRouter, SessionFollowsItsClientAndConnectsTakeOver) {
  Worker w0(0, 2), w1(1, 2);
  wait_links(w0, w1);
  EXPECT_TRUE(w0.broker.router().shares_sessions());
  {
    Client c(w0.port);
    EXPECT_EQ(connect_present(c, "mr-1", false), 0);
    mqtt::Subscription s{"mr/x", {mqtt::QoS::k1}};
    std::vector<std::byte> buf(mqtt::subscribe_size(1, {&s, 1}, {}, mqtt::ProtocolVersion::kV311));
    ASSERT_EQ(mqtt::encode_subscribe(1, {&s, 1}, {}, mqtt::ProtocolVersion::kV311, buf), buf.size());
    c.send_bytes(buf);
    EXPECT_EQ(c.read().first, mqtt::PacketType::kSuback);
  }
  for (int i = 0; i < 200 && w0.broker.registry().find("mr-1")->conn.valid(); ++i)
    std::this_thread::sleep_for(5ms);
  Client moved(w1.port);
  EXPECT_EQ(connect_present(moved, "mr-1", false), 1);  // fetched from w0
  EXPECT_FALSE(w0.broker.registry().find("mr-1").has_value());
  // Its subscription lives on w1 now: a publish entering w0 reaches it over the mesh.
  ASSERT_TRUE(w0.broker.publish("mr/x", as_bytes("hop"), mqtt::QoS::k1, false));
  EXPECT_EQ(moved.read_publish(0x02).topic, "mr/x");
  // A clean CONNECT on w0 closes it on w1 [MQTT-3.1.4-2] and discards the session there.
  Client clean(w0.port);
  EXPECT_EQ(connect_present(clean, "mr-1", true), 0);
  EXPECT_EQ(moved.read().first, mqtt::PacketType{});  // closed
  for (int i = 0; i < 200 && w1.broker.registry().find("mr-1"); ++i)
    std::this_thread::sleep_for(5ms);
  EXPECT_FALSE(w1.broker.registry().find("mr-1").has_value());
}

TEST(MeshRouter, APeerThatIsDownIsNotWaitedFor) {
  Worker w0(0, 2);  // worker 1 never starts: the link to it never comes up
  Client c(w0.port);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(connect_present(c, "mr-2", false), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start,
            std::chrono::milliseconds(kSessionFetchTimeoutMs / 2));
}

}  // namespace
}  // namespace tcpms::workers
