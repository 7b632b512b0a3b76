// PeerRouter between brokers in one test process, over the in-memory transport: each "peer" is
// a real Broker on a real Server (loopback clients connect to it), and the test decides when
// the frames between them arrive. Sessions move with their in-flight and queued messages;
// the newest claim of an id wins whatever order the claims reach their home; pushes and kicks
// by id find the holder through the id's home; a publish crosses only to interested peers; a
// home that restarts learns again what the others hold.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <chrono>
#include <functional>
#include <future>
#include <mutex>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../broker/mqtt_test_client.h"
#include "broker/broker.h"
#include "mqtt/codec.h"
#include "routing/directory.h"
#include "routing/memory_transport.h"
#include "routing/peer_router.h"
#include "routing/remote_interest.h"
#include "routing/router_image.h"
#include "store/sqlite_db.h"
#include "store/store.h"
#include "store/store_files.h"
#include "tcpms/server.h"

namespace tcpms::routing {
namespace {

using namespace std::chrono_literals;
using broker::testing::Client;

struct Node {
  // `store_dir`: a persistent store there (every-message sync), else none.
  Node(MemoryFabric& fabric, PeerId id, RouterOptions o = {}, const std::string& store_dir = "")
      : broker(config()) {
    o.loops = 2;
    auto r = std::make_unique<PeerRouter>(broker, fabric.transport(id), o);
    router = r.get();
    broker.set_router(std::move(r));
    ServerConfig sc;
    sc.threads = 2;
    server = std::make_unique<Server>(sc);
    broker.attach(*server);
    if (!store_dir.empty()) {
      store::StoreConfig c;
      c.dir = store_dir + "/peer-" + std::to_string(id);
      store::RecoveryReport report;
      std::string error;
      store = store::Store::open(c, broker.recovery_visitor(), report, error);
      EXPECT_TRUE(store) << error;
      broker.set_store(&store->writer());
    }
    server->listen(*Endpoint::parse("127.0.0.1:0"), broker.handler_factory());
    EXPECT_EQ(server->start(), "");
    if (store) {
      store->start();
      broker.after_recovery();
    }
    port = server->bound_port(0);
  }
  ~Node() {
    server->stop();
    server->wait();
  }
  static broker::BrokerConfig config() {
    broker::BrokerConfig c;
    c.sys_interval_ms = 0;
    return c;
  }
  broker::Broker broker;
  PeerRouter* router = nullptr;
  std::unique_ptr<Server> server;
  std::unique_ptr<store::Store> store;  // destroyed before the server's loops
  uint16_t port = 0;
};

// Peers linked in memory; a pump thread delivers frames and runs timers until paused.
class Mesh {
 public:
  explicit Mesh(uint32_t n, RouterOptions o = {}, const std::string& store_dir = "",
                bool homes_follow_up = false)
      : fabric(n), options(o) {
    fabric.set_homes_follow_up(homes_follow_up);
    for (uint32_t i = 0; i < n; ++i)
      nodes.push_back(std::make_unique<Node>(fabric, static_cast<PeerId>(i), o, store_dir));
    fabric.start();
    pump_ = std::thread([this] {
      while (!stop_) {
        {
          std::lock_guard lock(round_mu_);
          if (!paused_) {
            if (!frames_held_) fabric.deliver_all();
            fabric.advance(1);
          }
        }
        std::this_thread::sleep_for(1ms);
      }
    });
    // Hellos and interest snapshots delivered: the peers know each other.
    for (int i = 0; i < 500 && fabric.queued() != 0; ++i) std::this_thread::sleep_for(2ms);
    std::this_thread::sleep_for(10ms);
  }
  ~Mesh() {
    stop_ = true;
    pump_.join();
  }
  Node& operator[](size_t i) { return *nodes[i]; }
  void pause() {
    paused_ = true;
    std::lock_guard lock(round_mu_);  // the pump's round in progress ends
  }
  void resume() { paused_ = false; }
  // Frames stay queued while timers keep running: a peer that does not answer. Returns once
  // the pump's round in progress (which may have read the flag before) has ended.
  void hold_frames(bool on) {
    frames_held_ = on;
    std::lock_guard lock(round_mu_);
  }
  // A client id whose home is `home`.
  std::string id_homed_at(PeerId home, const std::string& prefix) {
    for (int i = 0;; ++i) {
      std::string id = prefix + std::to_string(i);
      if (home_of(id, fabric.peers()) == home) return id;
    }
  }
  // Waits (the pump paused) until `n` frames are queued from `from` to `to`.
  void wait_queued(PeerId from, PeerId to, size_t n) {
    for (int i = 0; i < 500 && fabric.queued(from, to) < n; ++i) std::this_thread::sleep_for(2ms);
    ASSERT_GE(fabric.queued(from, to), n);
  }

  MemoryFabric fabric;
  RouterOptions options;
  std::vector<std::unique_ptr<Node>> nodes;

 private:
  std::atomic<bool> stop_{false}, paused_{false}, frames_held_{false};
  std::mutex round_mu_;
  std::thread pump_;
};

// The CONNACK's return code (3.1.1), or -1 if no CONNACK came.
int connack_code(Client& c) {
  auto [type, body] = c.read();
  if (type != mqtt::PacketType::kConnack || body.size() < 2) return -1;
  return static_cast<int>(body[1]);
}

int connack_code(Client& c, const std::string& id, bool clean) {
  c.send_connect(id.c_str(), clean);
  return connack_code(c);
}

int connect_present(Client& c, const std::string& id, bool clean) {
  c.send_connect(id.c_str(), clean);
  auto [type, body] = c.read();
  if (type != mqtt::PacketType::kConnack || body.size() < 2 || body[1] != std::byte{0}) return -1;
  return static_cast<int>(body[0]) & 1;
}

// Sends a SUBSCRIBE; its SUBACK comes once the peers know the filter.
void send_subscribe(Client& c, const char* filter) {
  mqtt::Subscription s{filter, {mqtt::QoS::k1}};
  std::vector<std::byte> buf(mqtt::subscribe_size(1, {&s, 1}, {}, mqtt::ProtocolVersion::kV311));
  ASSERT_EQ(mqtt::encode_subscribe(1, {&s, 1}, {}, mqtt::ProtocolVersion::kV311, buf), buf.size());
  c.send_bytes(buf);
}

void subscribe(Client& c, const char* filter) {
  send_subscribe(c, filter);
  EXPECT_EQ(c.read().first, mqtt::PacketType::kSuback);
}

void wait_for(const std::function<bool()>& cond, const char* what) {
  for (int i = 0; i < 1000 && !cond(); ++i) std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(cond()) << what;
}

bool offline(broker::Broker& b, const std::string& id) {
  auto e = b.registry().find(id);
  return e && !e->conn.valid();
}

// The upgrade handover's drain (docs/upgrade.md, "Worker processes"): a peer is drained once
// every other peer's mark of this epoch has arrived, and only then; a new worker knows every
// peer once their Hellos and interest columns came.
TEST(PeerRouter, DrainedOnlyOnceEveryPeersMarkOfThisEpochArrived) {
  Mesh mesh(3);
  for (int i = 0; i < 500 && !mesh[0].router->knows_every_peer(); ++i) std::this_thread::sleep_for(2ms);
  EXPECT_TRUE(mesh[0].router->knows_every_peer());
  EXPECT_FALSE(mesh[0].router->drained(77));
  mesh.pause();
  mesh[1].router->send_drain_marks(76);  // an earlier attempt's mark does not count
  mesh[1].router->send_drain_marks(77);
  mesh.fabric.deliver_all();
  EXPECT_FALSE(mesh[0].router->drained(77));  // peer 2 has not marked yet
  mesh[2].router->send_drain_marks(77);
  mesh.fabric.deliver_all();
  EXPECT_TRUE(mesh[0].router->drained(77));
  EXPECT_FALSE(mesh[1].router->drained(77));  // peer 0 has not marked
  mesh[0].router->send_drain_marks(77);
  mesh.fabric.deliver_all();
  EXPECT_TRUE(mesh[1].router->drained(77));
  EXPECT_TRUE(mesh[2].router->drained(77));
  mesh.resume();
}

TEST(PeerRouter, SessionMovesWithItsInflightAndQueuedMessages) {
  Mesh m(3);
  const std::string id = m.id_homed_at(2, "mv-");  // home on a third peer
  {
    Client c(m[0].port);
    EXPECT_EQ(connect_present(c, id, false), 0);  // nobody had it
    subscribe(c, "a/+");
    ASSERT_TRUE(m[0].broker.publish("a/1", as_bytes("inflight"), mqtt::QoS::k1, false));
    EXPECT_EQ(c.read_publish(0x02).topic, "a/1");  // never acknowledged
  }
  wait_for([&] { return offline(m[0].broker, id); }, "offline on peer 0");
  // Published on peer 1: the subscription's interest is known there, so it crosses.
  wait_for([&] { return m[1].router->interested("a/2").has(0); }, "interest at peer 1");
  auto queued = [&](uint32_t n) {
    return [&, n] {
      for (const auto& c : m[0].broker.list_clients())
        if (c.client_id == id) return c.queued == n;
      return false;
    };
  };
  // One at a time: publish() picks loops round robin, so two at once have no order.
  ASSERT_TRUE(m[1].broker.publish("a/2", as_bytes("queued-1"), mqtt::QoS::k1, false));
  wait_for(queued(1), "a/2 queued at peer 0");
  ASSERT_TRUE(m[1].broker.publish("a/3", as_bytes("queued-2"), mqtt::QoS::k1, false));
  wait_for(queued(2), "a/3 queued at peer 0");
  {
    Client c(m[1].port);
    EXPECT_EQ(connect_present(c, id, false), 1);  // session present [MQTT-3.2.2-2]
    mqtt::Publish p = c.read_publish(0x0A);
    EXPECT_EQ(p.topic, "a/1");
    EXPECT_TRUE(p.dup);  // [MQTT-4.4.0-1]
    EXPECT_EQ(c.read_publish(0x02).topic, "a/2");
    EXPECT_EQ(c.read_publish(0x02).topic, "a/3");
    // Peer 1's interest (the imported filter) reaches peer 0.
    wait_for([&] { return m[0].router->interested("a/4").has(1); }, "interest at peer 0");
    ASSERT_TRUE(m[0].broker.publish("a/4", as_bytes("after"), mqtt::QoS::k1, false));
    EXPECT_EQ(c.read_publish(0x02).topic, "a/4");  // the subscription came along
  }
  EXPECT_FALSE(m[0].broker.registry().find(id).has_value());  // peer 0 gave it up
  EXPECT_EQ(m[1].router->stats().sessions_moved_in.load(), 1u);
  EXPECT_EQ(m[2].router->directory_size(), 1u);  // one entry, at the home
  wait_for([&] { return offline(m[1].broker, id); }, "offline on peer 1");
  // A clean start on another peer discards it [MQTT-3.1.2-6]; then nobody holds it.
  {
    Client c(m[0].port);
    EXPECT_EQ(connect_present(c, id, true), 0);
  }
  wait_for([&] { return !m[1].broker.registry().find(id).has_value(); }, "peer 1 dropped it");
  wait_for([&] { return m[2].router->directory_size() == 0; }, "released at its home");
}

TEST(PeerRouter, TheNewestClaimAtTheHomeWinsWhateverOrderTheyArrive) {
  for (int order = 0; order < 2; ++order) {
    Mesh m(3);
    const std::string id = m.id_homed_at(2, "race-");
    m.pause();
    Client a(m[0].port), b(m[1].port);
    a.send_connect(id.c_str(), true);
    b.send_connect(id.c_str(), true);
    m.wait_queued(0, 2, 1);  // both claims wait on their way to the home
    m.wait_queued(1, 2, 1);
    // The home takes them in the order the test chooses; the later one must win.
    const PeerId first = order == 0 ? 0 : 1, second = order == 0 ? 1 : 0;
    EXPECT_EQ(m.fabric.deliver(first, 2), 1u);
    EXPECT_EQ(m.fabric.deliver(second, 2), 1u);
    m.resume();
    Client& winner = second == 0 ? a : b;
    Client& loser = second == 0 ? b : a;
    // Both CONNECTs were valid: both get CONNACK [MQTT-3.1.4-4]; the older one is then
    // closed [MQTT-3.1.4-2].
    EXPECT_EQ(loser.read().first, mqtt::PacketType::kConnack);
    EXPECT_EQ(winner.read().first, mqtt::PacketType::kConnack);
    EXPECT_EQ(loser.read().first, mqtt::PacketType{}) << "order " << order;
    wait_for([&] { return m[second].broker.registry().find(id).has_value(); }, "winner registered");
    wait_for([&] { return !m[first].broker.registry().find(id).has_value(); }, "loser gone");
    auto e = m[second].broker.registry().find(id);
    ASSERT_TRUE(e.has_value());
    EXPECT_TRUE(e->conn.valid()) << "the newest connection stays";
  }
}

TEST(PeerRouter, PushAndKickByIdReachTheHolderThroughItsHome) {
  Mesh m(3);
  const std::string id = m.id_homed_at(1, "dev-");
  Client dev(m[2].port);
  ASSERT_EQ(connect_present(dev, id, true), 0);
  std::promise<broker::Router::PushOutcome> held;
  EXPECT_EQ(m[0].broker.send_to_client(id, "cmd/reboot", as_bytes("now"), mqtt::QoS::k1,
                                       [&](auto o) { held.set_value(o); }),
            broker::SendResult::kRouted);
  EXPECT_EQ(held.get_future().get(), broker::Router::PushOutcome::kHeld);
  EXPECT_EQ(dev.read_publish(0x02).topic, "cmd/reboot");
  std::promise<broker::Router::PushOutcome> none;
  EXPECT_EQ(m[0].broker.send_to_client("nobody-here", "x", as_bytes("y"), mqtt::QoS::k0,
                                       [&](auto o) { none.set_value(o); }),
            broker::SendResult::kRouted);
  EXPECT_EQ(none.get_future().get(), broker::Router::PushOutcome::kNoSuchClient);
  std::promise<broker::Router::PushOutcome> kicked;
  EXPECT_TRUE(m[0].broker.kick(id, [&](auto o) { kicked.set_value(o); }));
  EXPECT_EQ(kicked.get_future().get(), broker::Router::PushOutcome::kHeld);
  EXPECT_EQ(dev.read().first, mqtt::PacketType{});  // disconnected
}

TEST(PeerRouter, APublishCrossesOnlyToPeersWithAMatchingSubscription) {
  Mesh m(3);
  Client sub(m[2].port);
  ASSERT_EQ(connect_present(sub, "only-subscriber", true), 0);
  subscribe(sub, "room/+/temp");
  wait_for([&] { return m[0].router->interested("room/1/temp").has(2); }, "interest at peer 0");
  ASSERT_TRUE(m[0].broker.publish("room/1/temp", as_bytes("21"), mqtt::QoS::k1, false));
  EXPECT_EQ(sub.read_publish(0x02).topic, "room/1/temp");
  ASSERT_TRUE(m[0].broker.publish("room/1/humidity", as_bytes("40"), mqtt::QoS::k1, false));
  wait_for([&] { return m[0].router->stats().publishes_unmatched.load() == 1; }, "routed");
  std::this_thread::sleep_for(20ms);  // what would have been sent has arrived
  EXPECT_EQ(m[2].router->stats().publishes_received.load(), 1u);
  EXPECT_EQ(m[1].router->stats().publishes_received.load(), 0u) << "nobody there subscribed";
  EXPECT_EQ(m[0].router->stats().publishes_sent.load(), 1u);
  EXPECT_EQ(m[0].router->stats().publishes_unmatched.load(), 1u);
}

TEST(PeerRouter, ARestartedHomeLearnsWhatTheOthersHold) {
  Mesh m(3);
  const std::string id = m.id_homed_at(1, "kept-");
  Client dev(m[2].port);
  ASSERT_EQ(connect_present(dev, id, false), 0);
  wait_for([&] { return m[1].router->directory_size() == 1; }, "registered at its home");
  // Peer 1 restarts: a new broker and router with an empty directory.
  m.pause();
  m.fabric.set_up(1, false);
  m.nodes[1].reset();
  m.nodes[1] = std::make_unique<Node>(m.fabric, 1, m.options);
  m.fabric.set_up(1, true);  // peer 2 enrolls what it holds, with its ticket
  m.resume();
  wait_for([&] { return m[1].router->directory_size() == 1; }, "enrolled again");
  std::promise<broker::Router::PushOutcome> held;
  m[0].broker.send_to_client(id, "after/restart", as_bytes("x"), mqtt::QoS::k1,
                             [&](auto o) { held.set_value(o); });
  EXPECT_EQ(held.get_future().get(), broker::Router::PushOutcome::kHeld);
  EXPECT_EQ(dev.read_publish(0x02).topic, "after/restart");
}

TEST(PeerRouter, ASharedSubscriptionMessageGoesToOneMemberInOnePeer) {
  Mesh m(3);
  Client a(m[1].port), b(m[2].port);
  ASSERT_EQ(connect_present(a, "member-a", true), 0);
  ASSERT_EQ(connect_present(b, "member-b", true), 0);
  subscribe(a, "$share/pool/jobs/+");
  subscribe(b, "$share/pool/jobs/+");
  wait_for([&] { return m[0].broker.shared().peers_of("pool", "jobs/+") == 2; },
           "peer 0 knows both peers with members");
  const int n = 20;
  for (int k = 0; k < n; ++k)
    ASSERT_TRUE(m[0].broker.publish("jobs/" + std::to_string(k % 4), as_bytes("j"), mqtt::QoS::k0, false));
  // Round robin over the two peers that have members: half each, none twice.
  int got_a = 0, got_b = 0;
  auto drain = [](Client& c, int& count) {
    for (;;) {
      auto [type, body] = c.read_for(std::chrono::milliseconds(300));
      if (type != mqtt::PacketType::kPublish) return;
      ++count;
    }
  };
  drain(a, got_a);
  drain(b, got_b);
  EXPECT_EQ(got_a + got_b, n);
  EXPECT_EQ(got_a, n / 2);
  EXPECT_EQ(m[0].router->stats().shared_sent.load(), static_cast<uint64_t>(n));
}

TEST(PeerRouter, InterestThroughTheHubReachesEveryPeerAndSurvivesItsRestart) {
  RouterOptions o;
  o.interest_relay_above = 2;  // 4 peers: interest goes through peer 0
  Mesh m(4, o);
  Client sub(m[3].port);
  ASSERT_EQ(connect_present(sub, "far-subscriber", true), 0);
  subscribe(sub, "far/+");
  wait_for([&] { return m[1].router->interested("far/x").has(3); }, "peer 1 hears through the hub");
  ASSERT_TRUE(m[1].broker.publish("far/x", as_bytes("1"), mqtt::QoS::k1, false));
  EXPECT_EQ(sub.read_publish(0x02).topic, "far/x");
  EXPECT_EQ(m[1].router->stats().publishes_sent.load(), 1u);
  // The hub restarts: every peer gives it its column again, and it gives every column to all.
  m.pause();
  m.fabric.set_up(0, false);
  m.nodes[0].reset();
  m.nodes[0] = std::make_unique<Node>(m.fabric, 0, m.options);
  m.fabric.set_up(0, true);
  m.resume();
  wait_for([&] { return m[0].router->interested("far/x").has(3); }, "the new hub knows peer 3");
  Client late(m[2].port);
  ASSERT_EQ(connect_present(late, "late-subscriber", true), 0);
  subscribe(late, "late/topic");
  wait_for([&] { return m[1].router->interested("late/topic").has(2); }, "a new filter after it");
  ASSERT_TRUE(m[1].broker.publish("late/topic", as_bytes("2"), mqtt::QoS::k1, false));
  EXPECT_EQ(late.read_publish(0x02).topic, "late/topic");
  EXPECT_TRUE(m[1].router->interested("far/x").has(3)) << "the old filter is still known";
}

// At once, with no wait for a timeout: a clean CONNECT goes on without the home; a
// persistent one is refused, server unavailable (its stored session may be at the home's
// holder), rather than given an empty session.
TEST(PeerRouter, AClaimWhoseHomeIsDownGoesOnWithoutItWhenClean) {
  Mesh m(3);
  const std::string id = m.id_homed_at(1, "lonely-");
  m.fabric.set_up(1, false);
  Client clean(m[0].port);
  EXPECT_EQ(connect_present(clean, id, true), 0);
  Client persistent(m[0].port);
  EXPECT_EQ(connack_code(persistent, m.id_homed_at(1, "kept-"), false), 3);
  EXPECT_EQ(m[0].router->stats().claims_timed_out.load(), 2u);
}

// A persistent CONNECT's claim waits persistent_claim_timeout_ms for its home, a clean one
// only claim_timeout_ms (the server: workers.session_fetch_timeout_ms, and at most 3 s for a
// clean one, main.cc): a clean CONNECT goes on without the home's answer anyway, while giving
// up on a persistent one refuses the client. The deadlines are on the steady clock and the
// router's timer that fires them on the fabric's, which stands still here but for advance().
TEST(PeerRouter, APersistentClaimWaitsLongerForItsHomeThanACleanOne) {
  RouterOptions o;
  o.claim_timeout_ms = 100;
  o.persistent_claim_timeout_ms = 1000;
  Mesh m(2, o);
  const std::string clean_id = m.id_homed_at(1, "clean-"), kept_id = m.id_homed_at(1, "kept-");
  m.pause();  // the claims stay queued for the home: no answer comes
  Client clean(m[0].port), kept(m[0].port);
  clean.send_connect(clean_id.c_str(), true);
  kept.send_connect(kept_id.c_str(), false);
  wait_for([&] { return m[0].router->stats().claims_remote.load() == 2; }, "both claims sent");
  const auto sent = std::chrono::steady_clock::now();  // both deadlines run from before this
  std::this_thread::sleep_until(sent + 300ms);
  m.fabric.advance(300);  // past the clean claim's deadline only
  EXPECT_EQ(connack_code(clean), 0) << "a clean CONNECT goes on without its home";
  EXPECT_EQ(kept.read_for(100ms).first, mqtt::PacketType{}) << "the persistent claim still waits";
  EXPECT_EQ(m[0].router->stats().claims_timed_out.load(), 1u);
  std::this_thread::sleep_until(sent + 1100ms);
  m.fabric.advance(800);  // past the persistent claim's deadline too
  EXPECT_EQ(connack_code(kept), 3) << "refused, server unavailable";
  EXPECT_EQ(m[0].router->stats().claims_timed_out.load(), 2u);
  m.resume();
}

// A home too slow to answer in time (stopped, or swamped in a login storm) still answers in
// the end, and by then it records the claimer as the id's holder under a new ticket. The
// claimer gives that ticket to the id's session it holds, so the next claim's request to give
// the session up names it (before, the request named a ticket the session did not have, was
// refused, and the next CONNECT got an empty session while the stored one stayed behind).
RouterOptions late_answer_options() {
  RouterOptions o;
  o.claim_timeout_ms = 100;
  return o;
}

std::optional<uint32_t> ticket_at(Node& n, const std::string& id) {
  auto e = n.broker.registry().find(id);
  return e ? std::optional<uint32_t>(e->ticket) : std::nullopt;
}

TEST(PeerRouter, AStoredSessionIsFoundAfterItsHomeAnsweredAClaimThatHadGivenUp) {
  Mesh m(2, late_answer_options());
  const std::string id = m.id_homed_at(1, "late-kept-");
  {
    Client c(m[0].port);
    EXPECT_EQ(connect_present(c, id, false), 0);
    subscribe(c, "late/kept");
  }
  wait_for([&] { return offline(m[0].broker, id); }, "stored offline at peer 0");
  ASSERT_TRUE(m[0].broker.publish("late/kept", as_bytes("queued"), mqtt::QoS::k1, false));
  wait_for([&] {
    for (const auto& c : m[0].broker.list_clients())
      if (c.client_id == id) return c.queued == 1;
    return false;
  }, "a message queued for it");
  const auto stored_ticket = ticket_at(m[0], id);
  m.hold_frames(true);  // the home hears nothing, answers nothing
  {
    Client c(m[0].port);
    EXPECT_EQ(connack_code(c, id, false), 3) << "refused while its session cannot be looked for";
  }
  m.hold_frames(false);  // the home takes the claim now, and answers after the deadline
  wait_for([&] { return m[0].router->stats().claims_answered_late.load() == 1; }, "a late answer");
  wait_for([&] { return ticket_at(m[0], id) != stored_ticket; }, "the stored session took its ticket");
  Client c(m[1].port);
  EXPECT_EQ(connect_present(c, id, false), 1) << "the stored session comes [MQTT-3.2.2-2]";
  mqtt::Publish p = c.read_publish(0x02);
  EXPECT_EQ(p.topic, "late/kept");
  EXPECT_FALSE(m[0].broker.registry().find(id).has_value());
}

// A clean CONNECT goes on when its claim times out, beside an older connection of the id on
// another peer. Once its home takes the claim, the older connection is closed, and once the
// late answer is in, a newer connection takes this one over in its turn [MQTT-3.1.4-2] rather
// than live beside it.
TEST(PeerRouter, AConnectionLetInWithoutItsHomesAnswerIsTakenOverOnceTheAnswerCame) {
  Mesh m(3, late_answer_options());
  const std::string id = m.id_homed_at(2, "late-clean-");
  Client oldest(m[1].port);
  EXPECT_EQ(connack_code(oldest, id, true), 0);
  m.hold_frames(true);
  Client late(m[0].port);
  EXPECT_EQ(connack_code(late, id, true), 0) << "a clean CONNECT goes on without its home";
  EXPECT_EQ(ticket_at(m[0], id), 0u);
  m.hold_frames(false);
  EXPECT_EQ(oldest.read().first, mqtt::PacketType{}) << "the home's late take closes the oldest";
  wait_for([&] { return ticket_at(m[0], id).value_or(0) != 0; }, "the late answer's ticket");
  Client newest(m[1].port);
  EXPECT_EQ(connack_code(newest, id, true), 0);
  EXPECT_EQ(late.read().first, mqtt::PacketType{}) << "the late one is taken over in its turn";
  wait_for([&] { return !m[0].broker.registry().find(id).has_value(); }, "peer 0 let the id go");
  auto e = m[1].broker.registry().find(id);
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->conn.valid()) << "the newest connection stays";
}

// A refused persistent CONNECT leaves nothing here: the home's late record is released, so the
// next claim does not ask this peer for a session it never had.
TEST(PeerRouter, AHomeForgetsAClaimThatGaveUpWhenNothingHoldsTheId) {
  Mesh m(2, late_answer_options());
  const std::string id = m.id_homed_at(1, "late-none-");
  m.hold_frames(true);
  {
    Client c(m[0].port);
    EXPECT_EQ(connack_code(c, id, false), 3);
  }
  m.hold_frames(false);
  wait_for([&] { return m[0].router->stats().claims_answered_late.load() == 1; }, "a late answer");
  wait_for([&] { return m[1].router->directory_size() == 0; }, "released at its home");
  EXPECT_FALSE(m[0].broker.registry().find(id).has_value());
}

// The worker mesh's links are one-way: a worker that restarted dials its peers at once, but
// they redial it only later. A home whose link back to the claimer is down keeps its answer
// and sends it once the link is up, rather than leave the claim to time out.
TEST(PeerRouter, AClaimAnsweredWhileTheLinkBackIsDownIsAnsweredWhenItComesUp) {
  RouterOptions o;
  o.claim_timeout_ms = 60000;  // far beyond the test: only the held answer can complete it
  Mesh m(2, o);
  const std::string id = m.id_homed_at(1, "back-");
  m.fabric.set_link_up(1, 0, false);  // the home cannot reach the claimer; the claimer can
  Client c(m[0].port);
  c.send_connect(id.c_str(), true);
  wait_for([&] { return m[1].router->directory_size() == 1; }, "the claim reached its home");
  EXPECT_EQ(c.read_for(200ms).first, mqtt::PacketType{}) << "no answer can have come back";
  m.fabric.set_link_up(1, 0, true);
  EXPECT_EQ(connack_code(c), 0) << "the held answer completes the claim";
  EXPECT_EQ(m[0].router->stats().claims_timed_out.load(), 0u);
}

// Homes that follow the peers up (cluster nodes): when a home goes, its holders enroll its ids
// at their new homes, and a takeover goes through the new one; when it comes back (restarted,
// empty), the holders enroll them there again and the interim home forgets them.
TEST(PeerRouter, HomesThatFollowThePeersUpMoveWhenAPeerGoesAndComes) {
  Mesh m(3, {}, "", true);
  std::string id;
  for (int i = 0;; ++i) {
    id = "roam-" + std::to_string(i);
    if (m.fabric.home_among_up(client_key(id), 0) == 2) break;
  }
  Client first(m[0].port);
  ASSERT_EQ(connect_present(first, id, false), 0);
  wait_for([&] { return m[2].router->directory_size() == 1; }, "registered at its home");
  m.fabric.set_up(2, false);  // peer 0 enrolls the id at its new home
  const PeerId next = m.fabric.home_among_up(client_key(id), 0);
  ASSERT_NE(next, 2);
  wait_for([&] { return m[next].router->directory_size() == 1; }, "enrolled at the new home");
  // A CONNECT on peer 1 takes the session over through the new home.
  Client second(m[1].port);
  EXPECT_EQ(connect_present(second, id, false), 1);  // its session came from peer 0
  EXPECT_EQ(first.read().first, mqtt::PacketType{});  // closed [MQTT-3.1.4-2]
  // Peer 2 restarts with an empty directory and comes back.
  m.pause();
  m.nodes[2].reset();
  m.nodes[2] = std::make_unique<Node>(m.fabric, 2, m.options);
  m.fabric.set_up(2, true);
  m.resume();
  wait_for([&] { return m[2].router->directory_size() == 1; }, "enrolled at peer 2 again");
  wait_for([&] { return m[next].router->directory_size() == 0; }, "the interim home forgot it");
  std::promise<broker::Router::PushOutcome> held;
  m[0].broker.send_to_client(id, "found/again", as_bytes("x"), mqtt::QoS::k1,
                             [&](auto o) { held.set_value(o); });
  EXPECT_EQ(held.get_future().get(), broker::Router::PushOutcome::kHeld);
  EXPECT_EQ(second.read_publish(0x02).topic, "found/again");
}

// Every-message sync across peers: a publisher's PUBACK waits until the peer holding a
// persistent subscriber has the message in its store and answered; a peer that goes down
// before answering leaves the publisher disconnected without the PUBACK.
class DurableAcrossPeers : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tcpms-durable-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

// A persistent subscriber to "d/t" (or a member of "$share/g/d/t") on peer 1, known at peer 0,
// and a publisher on peer 0.
struct SubscriberAndPublisher {
  explicit SubscriberAndPublisher(Mesh& m, bool shared = false) : sub(m[1].port), pub(m[0].port) {
    EXPECT_EQ(connect_present(sub, "kept-sub", false), 0);
    subscribe(sub, shared ? "$share/g/d/t" : "d/t");
    if (shared)
      wait_for([&] { return m[0].broker.shared().peers_of("g", "d/t") == 1; }, "group at peer 0");
    else
      wait_for([&] { return m[0].router->interested("d/t").has(1); }, "interest at peer 0");
    EXPECT_EQ(connect_present(pub, "pub", true), 0);
  }
  void publish_qos1() {
    mqtt::Publish p;
    p.qos = mqtt::QoS::k1;
    p.topic = "d/t";
    p.packet_id = 7;
    p.payload = as_bytes("m");
    pub.send(p);
  }
  Client sub, pub;
};

TEST_F(DurableAcrossPeers, ThePubackWaitsForThePeerThatStoredIt) {
  Mesh m(2, {}, dir_);
  SubscriberAndPublisher c(m);
  m.pause();
  c.publish_qos1();
  m.wait_queued(0, 1, 1);  // the DurablePublish, held in the fabric
  EXPECT_EQ(c.pub.read_for(200ms).first, mqtt::PacketType{}) << "no PUBACK before peer 1 answered";
  m.resume();
  EXPECT_EQ(c.pub.read_for(5000ms).first, mqtt::PacketType::kPuback);
  EXPECT_EQ(c.sub.read_publish(0x02).topic, "d/t");
  EXPECT_EQ(m[0].router->stats().durable_asked.load(), 1u);
  EXPECT_EQ(m[0].router->stats().durable_unconfirmed.load(), 0u);
}

TEST_F(DurableAcrossPeers, APeerDownBeforeItAnsweredDisconnectsThePublisher) {
  Mesh m(2, {}, dir_);
  SubscriberAndPublisher c(m);
  m.pause();
  c.publish_qos1();
  m.wait_queued(0, 1, 1);
  m.fabric.set_up(1, false);  // its link drops: the answer will never come
  m.resume();
  EXPECT_EQ(c.pub.read_for(5000ms).first, mqtt::PacketType{}) << "closed, without a PUBACK";
  EXPECT_EQ(m[0].router->stats().durable_unconfirmed.load(), 1u);
}

TEST_F(DurableAcrossPeers, APeerThatDoesNotAnswerInTimeDisconnectsThePublisher) {
  RouterOptions o;
  o.request_timeout_ms = 50;
  Mesh m(2, o, dir_);
  SubscriberAndPublisher c(m);
  m.pause();
  c.publish_qos1();
  m.wait_queued(0, 1, 1);  // held: peer 1 never sees it while paused
  std::this_thread::sleep_for(80ms);  // past the request's deadline (steady clock)
  m.fabric.advance(200);   // the router's deadline timer runs
  EXPECT_EQ(c.pub.read_for(5000ms).first, mqtt::PacketType{}) << "closed, without a PUBACK";
  EXPECT_EQ(m[0].router->stats().durable_unconfirmed.load(), 1u);
  m.resume();  // the late answer finds no request waiting
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(m[0].router->stats().durable_unconfirmed.load(), 1u);
}

TEST_F(DurableAcrossPeers, ThePubackWaitsForASharedMemberInAnotherPeer) {
  Mesh m(2, {}, dir_);
  SubscriberAndPublisher c(m, true);
  m.pause();
  c.publish_qos1();
  m.wait_queued(0, 1, 1);  // the shared DurablePublish
  EXPECT_EQ(c.pub.read_for(200ms).first, mqtt::PacketType{}) << "no PUBACK before peer 1 answered";
  m.resume();
  EXPECT_EQ(c.pub.read_for(5000ms).first, mqtt::PacketType::kPuback);
  EXPECT_EQ(c.sub.read_publish(0x02).topic, "d/t");
  EXPECT_EQ(m[0].router->stats().durable_asked.load(), 1u);
  EXPECT_EQ(m[1].router->stats().shared_received.load(), 1u);
}

// Waits until everything `node` submitted to its store so far is committed.
void settled(Node& node) {
  store::StoreWriter& w = node.store->writer();
  const uint64_t last = w.last_seq();
  wait_for([&] { return w.durable_seq() >= last; }, "store committed");
}

// The client's stored messages in peer `p`'s store under `dir` (read beside its writer: WAL).
int64_t stored_messages(const std::string& dir, size_t p, const std::string& client_id) {
  std::string e;
  store::SqliteDb db =
      store::SqliteDb::open(store::store_db_path(dir + "/peer-" + std::to_string(p)), true, e);
  // Ids are stored as blobs.
  const std::string q =
      "SELECT count(*) FROM messages WHERE client_id = CAST('" + client_id + "' AS BLOB)";
  return db.query_int(q.c_str(), -1);
}

// A persistent member of "$share/g/d/t" on `node`, the group's only one when the message
// "d/t" is published there: it has it in flight and never acknowledges it.
std::unique_ptr<Client> member_with_a_message(Node& node, const std::string& id) {
  auto x = std::make_unique<Client>(node.port);
  EXPECT_EQ(connect_present(*x, id, false), 0);
  subscribe(*x, "$share/g/d/t");
  EXPECT_TRUE(node.broker.publish("d/t", as_bytes("handed"), mqtt::QoS::k1, false));
  EXPECT_EQ(x->read_publish(0x02).topic, "d/t");
  return x;
}

// A shared group's message handed from a member leaving peer 0 to a member on peer 1: the
// leaving member's stored copy stays until peer 1 answered that it has its own
// (docs/persistence.md, "Shared groups"), and comes back to it if peer 1 never answers.
struct CrossPeerHandOff {
  CrossPeerHandOff(Mesh& m, std::string store_dir)
      : mesh(m), dir(std::move(store_dir)), leaver_id(m.id_homed_at(0, "leaver-")) {
    auto x = member_with_a_message(m[0], leaver_id);
    EXPECT_EQ(connect_present(taker, "taker", false), 0);
    subscribe(taker, "$share/g/d/t");
    wait_for([&] { return m[0].broker.shared().peers_of("g", "d/t") == 1; }, "group at peer 0");
    settled(m[0]);
    EXPECT_EQ(rows(0, leaver_id), 1) << "stored for the leaver";
    m.pause();
    x.reset();  // offline: its message goes to the taker, on peer 1
    m.wait_queued(0, 1, 1);
  }
  int64_t rows(size_t p, const std::string& id) { return stored_messages(dir, p, id); }
  Mesh& mesh;
  const std::string dir;
  const std::string leaver_id;
  Client taker{mesh[1].port};
};

TEST_F(DurableAcrossPeers, AHandedOnSharedMessageStaysStoredUntilTheTakerHasIt) {
  Mesh m(2, {}, dir_);
  CrossPeerHandOff h(m, dir_);
  // The hand-off is in the fabric, not at peer 1: the leaver's copy is still on disk (before
  // the fix it was deleted here, and a kill -9 now lost an acknowledged message).
  std::this_thread::sleep_for(50ms);
  settled(m[0]);
  EXPECT_EQ(h.rows(0, h.leaver_id), 1);
  m.resume();
  EXPECT_EQ(h.taker.read_publish(0x02).topic, "d/t");  // not acknowledged: stays stored there
  wait_for([&] { return h.rows(0, h.leaver_id) == 0; }, "the leaver's copy goes after the answer");
  EXPECT_EQ(h.rows(1, "taker"), 1) << "the taker's copy is on disk before the leaver's goes";
  EXPECT_EQ(m[0].router->stats().durable_asked.load(), 1u);
}

TEST_F(DurableAcrossPeers, AHandedOnSharedMessageNobodyConfirmedComesBack) {
  Mesh m(2, {}, dir_);
  CrossPeerHandOff h(m, dir_);
  m.fabric.set_up(1, false);  // the taker's peer goes down before it answered
  m.resume();
  std::this_thread::sleep_for(100ms);
  settled(m[0]);
  EXPECT_EQ(h.rows(0, h.leaver_id), 1) << "still (or again) stored for the leaver";
  Client back(m[0].port);
  EXPECT_EQ(connect_present(back, h.leaver_id, false), 1);
  EXPECT_EQ(back.read_publish(0x02).topic, "d/t");  // its own again
}

TEST_F(DurableAcrossPeers, AHandOffBetweenLoopsDeletesTheLeaversCopyAfterTheTakersWrite) {
  // The same within one process, leaver and taker on different loops: the taker's loop is
  // kept busy, so the hand-off waits in its task queue; the leaver's copy must stay stored
  // meanwhile (before the fix its delete was submitted first and could commit alone).
  Mesh m(1, {}, dir_);
  Node& n = m[0];
  auto x = member_with_a_message(n, "loop-leaver");
  const uint32_t x_loop = n.broker.registry().find("loop-leaver")->loop;
  std::unique_ptr<Client> y;
  std::string y_id;
  for (int i = 0; i < 64 && !y; ++i) {  // a connection on the other loop
    auto c = std::make_unique<Client>(n.port);
    const std::string id = "loop-taker-" + std::to_string(i);
    EXPECT_EQ(connect_present(*c, id, false), 0);
    if (n.broker.registry().find(id)->loop != x_loop) {
      y = std::move(c);
      y_id = id;
    }
  }
  ASSERT_TRUE(y) << "no connection landed on the other loop";
  subscribe(*y, "$share/g/d/t");
  const uint32_t y_loop = n.broker.registry().find(y_id)->loop;
  std::promise<void> entered, release;
  std::shared_future<void> go = release.get_future().share();
  EventLoop* busy = nullptr;
  for (size_t i = 0; i < n.server->loop_count(); ++i)
    if (n.server->loop(i).index() == y_loop) busy = &n.server->loop(i);
  ASSERT_NE(busy, nullptr);
  busy->post([&entered, go] {
    entered.set_value();
    go.wait();
  });
  entered.get_future().wait();
  x.reset();  // offline: its message goes to y, behind the busy task on y's loop
  wait_for([&] { return offline(n.broker, "loop-leaver"); }, "the leaver is offline");
  std::this_thread::sleep_for(50ms);
  settled(n);
  EXPECT_EQ(stored_messages(dir_, 0, "loop-leaver"), 1) << "kept while the taker has nothing";
  release.set_value();
  EXPECT_EQ(y->read_publish(0x02).topic, "d/t");
  wait_for([&] { return stored_messages(dir_, 0, "loop-leaver") == 0; }, "the leaver's copy goes");
  settled(n);
  EXPECT_EQ(stored_messages(dir_, 0, y_id), 1);
}

TEST_F(DurableAcrossPeers, WithoutAStoreNothingIsAsked) {
  Mesh m(2);
  SubscriberAndPublisher c(m);
  c.publish_qos1();
  EXPECT_EQ(c.pub.read_for(5000ms).first, mqtt::PacketType::kPuback);
  EXPECT_EQ(m[0].router->stats().durable_asked.load(), 0u);
}

// Issue 15 (filters lost between peers?). Filters added on several peers while their bitmaps
// grow again and again (8 slots to start: nearly every few filters a rebuild, two loops walking
// each; one peer growing faster than the rest), interest going through the hub, and the frames held and then delivered pair by pair in
// an adversarial order (newest senders first, one frame at a time, the clock moved in between
// so that deltas, snapshots and the hub's relays interleave): every peer must end up knowing
// every filter of every other one.
// `shared`: the bitmaps in one region every peer reads (worker processes), where only a
// snapshot at a new size travels and the peers grow on their own.
void filters_added_while_bitmaps_grow(bool shared) {
  RouterOptions o;
  o.interest.min_slots = 8;
  o.interest_relay_above = 2;  // 5 peers: through the hub, peer 0
  o.interest_interval_ms = 3;
  std::string error;
  std::unique_ptr<InterestRegion> region = shared ? RemoteInterest::shared_region(&error) : nullptr;
  ASSERT_TRUE(!shared || region) << error;
  o.shared_interest = region.get();
  constexpr uint32_t kPeers = 5;
  Mesh m(kPeers, o);
  constexpr int kRounds = 6, kPerRound = 4;
  // The last peer takes four times as many: it grows first, so bitmaps of three sizes are in
  // use at once (the others then go "send everything" until they resend).
  const auto per_round = [&](PeerId p) { return p == kPeers - 1 ? 4 * kPerRound : kPerRound; };
  // Connected first (a CONNECT claims its id at its home, over the fabric).
  std::vector<std::unique_ptr<Client>> clients;
  for (int round = 0; round < kRounds; ++round)
    for (PeerId p = 0; p < kPeers; ++p)
      for (int k = 0; k < per_round(p); ++k) {
        clients.push_back(std::make_unique<Client>(m[p].port));
        ASSERT_EQ(connect_present(*clients.back(), fmt::format("c-{}-{}-{}", p, round, k), true), 0);
      }
  std::vector<std::pair<PeerId, std::string>> filters;
  m.pause();
  size_t next = 0;
  for (int round = 0; round < kRounds; ++round) {
    for (PeerId p = 0; p < kPeers; ++p) {
      for (int k = 0; k < per_round(p); ++k) {
        const std::string topic = fmt::format("reach/{}/{}/{}", p, round, k);
        send_subscribe(*clients[next++], topic.c_str());  // its SUBACK waits for the peers
        // The loop runs its rebuild walks between subscriptions (the bitmaps grow step by
        // step, as when each client waited for its SUBACK before the SUBACK waited).
        std::this_thread::sleep_for(1ms);
        filters.emplace_back(p, topic);
      }
    }
    // Some of what was sent, newest senders first, one frame per pair at a time.
    for (int step = 0; step < 3 + round; ++step) {
      for (int from = kPeers - 1; from >= 0; --from)
        for (int to = kPeers - 1; to >= 0; --to)
          if (from != to) m.fabric.deliver(static_cast<PeerId>(from), static_cast<PeerId>(to), 1);
      m.fabric.advance(1 + round);
    }
  }
  m.resume();
  for (const auto& [holder, topic] : filters)
    for (PeerId p = 0; p < kPeers; ++p)
      if (p != holder)
        wait_for([&, h = holder, t = topic] { return m[p].router->interested(t).has(h); },
                 fmt::format("peer {} knows peer {}'s {}", p, holder, topic).c_str());
  for (auto& c : clients) EXPECT_EQ(c->read().first, mqtt::PacketType::kSuback);
  EXPECT_GE(m[1].router->stats().interest_rebuilds.load(), 3u);  // 8 -> 32 -> 128 -> 512
}

TEST(PeerRouter, FiltersAddedWhileBitmapsGrowAreKnownEverywhereWhateverTheOrder) {
  filters_added_while_bitmaps_grow(false);
}

TEST(PeerRouter, WithSharedTablesFiltersAddedWhileBitmapsGrowAreKnownEverywhere) {
  filters_added_while_bitmaps_grow(true);
}

// A link can break and be made again while both processes live (worker mesh: the sending side
// closed it past its output limit, or the receiver refused a frame; PeerMesh redials it). Only
// the sender sees it (on_peer_down, then on_peer_up when redialled); the other side's link
// stays up, so it never sends its column again. The column must survive: the filters are the
// peer's, not the link's.
TEST(PeerRouter, AFilterStaysKnownAcrossALinkThatBrokeAndWasRemade) {
  for (uint32_t relay_above : {8u, 2u}) {  // direct, then through the hub (peer 0)
    SCOPED_TRACE(relay_above == 2 ? "through the hub" : "direct");
    RouterOptions o;
    o.interest_relay_above = relay_above;
    Mesh m(4, o);
    Client far(m[3].port), hub_side(m[0].port);
    ASSERT_EQ(connect_present(far, "far-subscriber", true), 0);
    ASSERT_EQ(connect_present(hub_side, "hub-subscriber", true), 0);
    subscribe(far, "flap/far");
    subscribe(hub_side, "flap/hub");
    wait_for([&] { return m[1].router->interested("flap/far").has(3); }, "peer 1 knows peer 3");
    wait_for([&] { return m[3].router->interested("flap/hub").has(0); }, "peer 3 knows peer 0");
    // Peer 1's link to peer 3, and peer 3's to peer 0, break and are made again.
    m[1].router->on_peer_down(3);
    m[1].router->on_peer_up(3);
    m[3].router->on_peer_down(0);
    m[3].router->on_peer_up(0);
    std::this_thread::sleep_for(50ms);  // whatever would be resent has arrived
    EXPECT_TRUE(m[1].router->interested("flap/far").has(3)) << "peer 1 forgot peer 3's filter";
    EXPECT_TRUE(m[3].router->interested("flap/hub").has(0)) << "peer 3 forgot peer 0's filter";
    ASSERT_TRUE(m[1].broker.publish("flap/far", as_bytes("1"), mqtt::QoS::k1, false));
    EXPECT_EQ(far.read_publish(0x02).topic, "flap/far");
  }
}


// Issue 15's cause (docs/scale.md, "The missing messages"): a SUBACK that left before the other
// peers knew the filter. A peer sends its interest delta at most once an interval, through the
// hub with more than interest_relay_above peers. A client that gets its SUBACK and then has a
// message published on another peer (mqtt-reach's publishers wait only for every SUBACK) lost
// it when that peer's bitmap did not have the filter yet. Here the frames are held, so the
// window stays open: the SUBACK must not come while they are, and once they flow, a publish on
// another peer after the SUBACK reaches the subscriber. Directly and through the hub.
TEST(PeerRouter, AMessagePublishedAfterTheSubackReachesTheSubscriber) {
  struct Case {
    uint32_t relay_above;
    PeerId subscriber;
    const char* what;
    bool shared = false;  // the bitmaps in one region every peer reads (worker processes)
  };
  for (const Case k : {Case{8, 3, "directly"}, Case{2, 3, "through the hub (peer 0)"},
                       Case{2, 0, "on the hub"}, Case{8, 3, "shared tables", true},
                       Case{2, 3, "shared tables, through the hub", true}}) {
    SCOPED_TRACE(k.what);
    RouterOptions o;
    o.interest_relay_above = k.relay_above;
    std::string error;
    std::unique_ptr<InterestRegion> region = k.shared ? RemoteInterest::shared_region(&error) : nullptr;
    ASSERT_TRUE(!k.shared || region) << error;
    o.shared_interest = region.get();
    Mesh m(4, o);
    Client sub(m[k.subscriber].port);
    ASSERT_EQ(connect_present(sub, "just-subscribed", true), 0);
    m.pause();
    mqtt::Subscription s{"race/t", {mqtt::QoS::k1}};
    std::vector<std::byte> buf(mqtt::subscribe_size(1, {&s, 1}, {}, mqtt::ProtocolVersion::kV311));
    ASSERT_EQ(mqtt::encode_subscribe(1, {&s, 1}, {}, mqtt::ProtocolVersion::kV311, buf), buf.size());
    sub.send_bytes(buf);
    auto [type, body] = sub.read_for(200ms);
    EXPECT_NE(type, mqtt::PacketType::kSuback) << "a SUBACK while no peer could know the filter";
    m.resume();
    if (type != mqtt::PacketType::kSuback) {
      EXPECT_EQ(sub.read().first, mqtt::PacketType::kSuback);
    }
    int published = 0;
    for (PeerId publisher = 0; publisher < 4; ++publisher) {
      if (publisher == k.subscriber) continue;
      ASSERT_TRUE(m[publisher].broker.publish("race/t", as_bytes("after"), mqtt::QoS::k1, false));
      ++published;
    }
    for (int i = 0; i < published; ++i) {
      auto [got, rest] = sub.read_for(1000ms);
      EXPECT_EQ(got, mqtt::PacketType::kPublish) << "a message published after the SUBACK was lost";
    }
    EXPECT_EQ(m[k.subscriber].router->stats().subacks_held.load(), 1u);
    EXPECT_EQ(m[k.subscriber].router->stats().subacks_unconfirmed.load(), 0u);
    // With shared tables the filter is read where it was written: no update travels, only
    // the marks the held SUBACK waits on.
    if (k.shared)
      for (PeerId p = 0; p < 4; ++p)
        EXPECT_EQ(m[p].router->stats().interest_updates_sent.load(), 0u) << "peer " << p;
  }
}

// A peer that never answers (down for good, or a version without the marks) delays a SUBACK
// by claim_timeout_ms, no more: the SUBACK goes and is counted.
TEST(PeerRouter, ASubackGoesAtTheDeadlineWhenAPeerDoesNotAnswer) {
  RouterOptions o;
  o.claim_timeout_ms = 300;
  Mesh m(3, o);
  Client sub(m[2].port);
  ASSERT_EQ(connect_present(sub, "waits", true), 0);
  m.hold_frames(true);
  subscribe(sub, "late/t");  // its SUBACK comes, at the deadline
  EXPECT_EQ(m[2].router->stats().subacks_held.load(), 1u);
  EXPECT_EQ(m[2].router->stats().subacks_unconfirmed.load(), 1u);
  m.hold_frames(false);
}

// The upgrade of a cluster node (router_image.h): a router that goes on from another's image
// knows the other peers' interest and the ids homed at it, though no peer told it anything;
// the peers see no restart.
TEST(PeerRouter, ARouterContinuedFromAnImageKnowsWhatTheOldOneKnew) {
  Mesh m(2);
  const std::string id = m.id_homed_at(0, "kept-");
  Client holder(m[1].port);
  ASSERT_EQ(connect_present(holder, id, false), 0);
  subscribe(holder, "kept/#");
  wait_for([&] { return m[0].router->directory_size() == 1; }, "registered at its home");
  wait_for([&] { return m[0].router->interested("kept/1").has(1); }, "its filter known at peer 0");

  m.pause();
  const RouterImage image = m[0].router->export_image();
  std::string bytes;
  encode_router_image(image, bytes);
  auto decoded = decode_router_image(as_bytes(bytes), m.fabric.peers());
  ASSERT_TRUE(decoded.ok()) << decoded.error;
  m.nodes[0].reset();
  m.nodes[0] = std::make_unique<Node>(m.fabric, 0, m.options);
  EXPECT_FALSE(m[0].router->interested("kept/1").has(1));  // a new router knows nothing
  m[0].router->continue_from(decoded.image);
  m.resume();

  EXPECT_TRUE(m[0].router->interested("kept/1").has(1));
  EXPECT_EQ(m[0].router->directory_size(), 1u);
  // Its image is the one it went on from.
  const RouterImage same = m[0].router->export_image();
  EXPECT_EQ(same.incarnation, image.incarnation);
  ASSERT_EQ(same.peers.size(), image.peers.size());
  EXPECT_EQ(same.peers[0].column, image.peers[0].column);
  EXPECT_EQ(same.ticket_counter, image.ticket_counter);
  ASSERT_TRUE(m[0].broker.publish("kept/1", as_bytes("after"), mqtt::QoS::k1, false));
  EXPECT_EQ(holder.read_publish(0x02).topic, "kept/1");
  // A CONNECT of the id on the continued peer takes the session from its holder: the
  // directory came with the image.
  Client taker(m[0].port);
  EXPECT_EQ(connect_present(taker, id, false), 1);
  EXPECT_EQ(holder.read().first, mqtt::PacketType{});  // closed [MQTT-3.1.4-2]
  EXPECT_EQ(m[1].router->stats().peers_restarted.load(), 0u);
  // The claim's ticket is newer than every ticket the old router gave.
  EXPECT_TRUE(newer_ticket(m[0].router->export_image().ticket_counter, image.ticket_counter));
}

TEST(RouterImage, RoundTripsAndRefusesWhatItCannotTrust) {
  RouterImage image;
  image.incarnation = 42;
  RouterImage::Peer p;
  p.peer = 1;
  p.incarnation = 7;
  p.shared_groups = {{"g", "a/#"}};
  image.peers.push_back(p);
  image.ticket_counter = 9;
  image.directory = {{123, 1, 9}, {456, 0, 3}};
  image.held = {{"dev1", 3}};
  std::string bytes;
  encode_router_image(image, bytes);
  auto r = decode_router_image(as_bytes(bytes), 2);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.image.incarnation, 42u);
  ASSERT_EQ(r.image.peers.size(), 1u);
  EXPECT_EQ(r.image.peers[0].incarnation, 7u);
  EXPECT_EQ(r.image.peers[0].shared_groups, p.shared_groups);
  EXPECT_EQ(r.image.ticket_counter, 9u);
  ASSERT_EQ(r.image.directory.size(), 2u);
  EXPECT_EQ(r.image.directory[1].key, 456u);
  EXPECT_EQ(r.image.directory[1].ticket, 3u);
  EXPECT_EQ(r.image.held, image.held);

  EXPECT_FALSE(decode_router_image(as_bytes(bytes), 1).ok());  // peer 1 beyond one slot
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_FALSE(decode_router_image(as_bytes(std::string_view(bytes).substr(0, n)), 2).ok()) << n;
  EXPECT_FALSE(decode_router_image(as_bytes(bytes + "x"), 2).ok());
  std::string other = bytes;
  other[0] = 2;
  EXPECT_FALSE(decode_router_image(as_bytes(other), 2).ok());
  image.peers[0].column = "not a frame";
  bytes.clear();
  encode_router_image(image, bytes);
  EXPECT_FALSE(decode_router_image(as_bytes(bytes), 2).ok());
}

}  // namespace
}  // namespace tcpms::routing
