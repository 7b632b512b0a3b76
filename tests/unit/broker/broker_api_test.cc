// The control-plane entry points (Broker::publish, send_to_client, kick, list_clients) against
// a real Server on loopback, called from the test thread as the admin thread would.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "broker/broker.h"
#include "mqtt_test_client.h"
#include "mqtt/codec.h"
#include "tcpms/server.h"

namespace tcpms::broker {
namespace {

using namespace std::chrono_literals;

using testing::Client;

TEST(BrokerApi, PublishPushKickList) {
  BrokerConfig cfg;
  cfg.sys_interval_ms = 0;
  Broker broker(cfg);
  ServerConfig sc;
  sc.threads = 2;
  Server server(sc);
  broker.attach(server);
  server.listen(*Endpoint::parse("127.0.0.1:0"), broker.handler_factory());
  ASSERT_EQ(server.start(), "");
  const uint16_t port = server.bound_port(0);
  {
    Client c(port);
    c.send_connect("api-1", false);
    EXPECT_EQ(c.read().first, mqtt::PacketType::kConnack);
    c.send(mqtt::Pingreq{});
    EXPECT_EQ(c.read().first, mqtt::PacketType::kPingresp);
    mqtt::Subscription s{"a/b", {mqtt::QoS::k1}};
    std::vector<std::byte> buf(mqtt::subscribe_size(1, {&s, 1}, {}, mqtt::ProtocolVersion::kV311));
    ASSERT_EQ(mqtt::encode_subscribe(1, {&s, 1}, {}, mqtt::ProtocolVersion::kV311, buf), buf.size());
    c.send_bytes(buf);
    EXPECT_EQ(c.read().first, mqtt::PacketType::kSuback);

    // publish() from this (non-loop) thread reaches the subscriber on whichever loop.
    ASSERT_TRUE(broker.publish("a/b", as_bytes("from-admin"), mqtt::QoS::k1, false));
    mqtt::Publish p = c.read_publish(0x02);
    EXPECT_EQ(p.topic, "a/b");
    EXPECT_EQ(as_chars(p.payload), "from-admin");

    // send_to_client: not subscribed to this topic, delivered anyway.
    EXPECT_EQ(broker.send_to_client("api-1", "direct/x", as_bytes("hi"), mqtt::QoS::k0),
              SendResult::kSent);
    p = c.read_publish(0x00);
    EXPECT_EQ(p.topic, "direct/x");
    EXPECT_EQ(as_chars(p.payload), "hi");
    EXPECT_EQ(broker.send_to_client("nobody", "x", as_bytes("y"), mqtt::QoS::k0),
              SendResult::kNotConnected);
    EXPECT_EQ(broker.send_to_client("api-1", "bad/#", as_bytes("y"), mqtt::QoS::k0),
              SendResult::kInvalid);

    auto list = broker.list_clients();
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0].client_id, "api-1");
    EXPECT_TRUE(list[0].connected);
    EXPECT_EQ(list[0].subscriptions, 1u);
    EXPECT_TRUE(list[0].conn.valid());
    EXPECT_EQ(list[0].loop, list[0].conn.loop());
    EXPECT_GT(list[0].connected_since_s, 0u);

    EXPECT_TRUE(broker.kick("api-1"));
    EXPECT_EQ(c.read().first, mqtt::PacketType{});  // closed
  }
  // The persistent session stays, offline: QoS 1 is kept for it, QoS 0 is not.
  for (int i = 0; i < 100 && broker.registry().find("api-1")->conn.valid(); ++i)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(broker.send_to_client("api-1", "later", as_bytes("q"), mqtt::QoS::k1),
            SendResult::kQueued);
  EXPECT_EQ(broker.send_to_client("api-1", "later", as_bytes("q"), mqtt::QoS::k0),
            SendResult::kNotConnected);
  {
    Client c(port);
    c.send_connect("api-1", false);
    auto [type, body] = c.read();
    ASSERT_EQ(type, mqtt::PacketType::kConnack);
    EXPECT_EQ(static_cast<uint8_t>(body[0]), 1);  // session present
    // First the QoS 1 message never acknowledged, again with DUP [MQTT-4.4.0-1], then the one
    // queued while offline.
    mqtt::Publish p = c.read_publish(0x0A);
    EXPECT_EQ(p.topic, "a/b");
    EXPECT_TRUE(p.dup);
    p = c.read_publish(0x02);
    EXPECT_EQ(p.topic, "later");
  }
  server.stop();
  server.wait();
}

}  // namespace
}  // namespace tcpms::broker
