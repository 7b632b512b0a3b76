// The engine's transports over real loopback sockets: a TLS + WebSocket client made by the
// engine itself talks to a TLS + WebSocket listener; handshakes are invisible to handlers
// (on_open only after them, nothing at all for one that never completes); a PROXY header
// sets the peer address; plain connections carry no transport state.
#include <gtest/gtest.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>

#include "tcpms/loop_stats.h"
#include "tcpms/server.h"
#include "test_cert.h"
#include "transport_test_support.h"

namespace tcpms {
namespace {

using namespace std::chrono_literals;

static_assert(sizeof(Connection) <= 72, "transports must not grow plain connections");

class Echo : public Handler {
 public:
  std::atomic<int> opened{0}, closed{0};
  std::mutex mu;
  std::string peer;  // guarded by mu
  bool saw_transport = false;
  Action on_open(Connection& c) override {
    sockaddr_storage ss{};
    if (c.peer_address(ss)) {
      std::lock_guard lock(mu);
      socklen_t len = ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
      peer = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len).to_string();
      saw_transport = c.has_transport();
    }
    opened++;
    return Action::kKeep;
  }
  DataResult on_data(Connection& c, ByteView data) override {
    c.send(data);
    return {data.size(), Action::kKeep};
  }
  void on_close(Connection&, CloseReason) override { closed++; }
};

// Sends `message` once open and collects what comes back.
class Client : public Handler {
 public:
  std::string message;
  std::atomic<bool> done{false};
  std::atomic<int> opened{0}, closed{0};
  std::string got;  // loop thread until done
  Action on_open(Connection& c) override {
    opened++;
    c.send(as_bytes(message));
    return Action::kKeep;
  }
  DataResult on_data(Connection&, ByteView data) override {
    got.append(as_chars(data));
    if (got.size() >= message.size()) done = true;
    return {data.size(), Action::kKeep};
  }
  void on_close(Connection&, CloseReason) override { closed++; }
};

LoopStats const& stats(Server& s) { return s.loop(0).stats(); }

TEST(TransportEngine, TlsWebSocketRoundTripBothSidesInTheEngine) {
  TestCert cert;
  TlsServerSettings ss;
  ss.cert_file = cert.cert;
  ss.key_file = cert.key;
  ss.alpn = {"http/1.1"};
  std::string error;
  auto server_tls = TlsContext::server(ss, error);
  ASSERT_TRUE(server_tls) << error;
  TlsClientSettings cs;
  cs.server_name = "localhost";
  cs.alpn = {"http/1.1"};
  auto client_tls = TlsContext::client(cs, error);
  ASSERT_TRUE(client_tls) << error;

  for (size_t size : {1u, 125u, 65536u, 300000u}) {
    ServerConfig config;
    config.threads = 1;
    Server server(config);
    Echo* echo = nullptr;
    ListenerOptions lo;
    lo.transport.tls = server_tls;
    lo.transport.websocket = true;
    server.listen(*Endpoint::parse("127.0.0.1:0"), [&](EventLoop&) {
      auto h = std::make_unique<Echo>();
      echo = h.get();
      return h;
    }, lo);
    Client* client = nullptr;
    TransportOptions out;
    out.tls = client_tls;
    out.websocket = true;
    uint8_t ch = server.add_handler([&](EventLoop&) {
      auto h = std::make_unique<Client>();
      client = h.get();
      return h;
    }, out);
    ASSERT_EQ(server.start(), "");
    client->message = pattern(size);
    Endpoint to = *Endpoint::parse("127.0.0.1:" + std::to_string(server.bound_port(0)));
    server.loop(0).post([&] {
      int err = 0;
      server.loop(0).connect(to, nullptr, ch, err);
    });
    ASSERT_TRUE(eventually([&] { return client->done.load(); })) << size;
    server.stop();
    server.wait();  // the loop is quiet now: its handlers can be read
    EXPECT_EQ(client->got, client->message);
    EXPECT_EQ(echo->opened.load(), 1);
    EXPECT_EQ(client->opened.load(), 1);
    EXPECT_EQ(stats(server).tls_handshakes.get() + stats(server).tls_resumed.get(), 2u);  // both ends
    EXPECT_EQ(stats(server).ws_upgrades.get(), 2u);
  }
}

int raw_connect(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  return fd;
}

TEST(TransportEngine, AHandshakeThatNeverCompletesIsInvisibleToTheHandler) {
  TestCert cert;
  TlsServerSettings ss;
  ss.cert_file = cert.cert;
  ss.key_file = cert.key;
  std::string error;
  ServerConfig config;
  config.threads = 1;
  config.loop.timer_tick_ms = 10;
  Server server(config);
  Echo* echo = nullptr;
  ListenerOptions lo;
  lo.transport.tls = TlsContext::server(ss, error);
  lo.transport.handshake_timeout_ms = 200;
  server.listen(*Endpoint::parse("127.0.0.1:0"), [&](EventLoop&) {
    auto h = std::make_unique<Echo>();
    echo = h.get();
    return h;
  }, lo);
  ASSERT_EQ(server.start(), "");
  int fd = raw_connect(server.bound_port(0));
  char buf[16];
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(::recv(fd, buf, sizeof buf, 0), 0);  // closed at the deadline
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  ::close(fd);
  EXPECT_TRUE(eventually([&] { return stats(server).handshake_timeouts.get() == 1; }));
  EXPECT_EQ(stats(server).tls_failures[static_cast<size_t>(TlsFailure::kTimeout)].get(), 1u);
  EXPECT_EQ(echo->opened.load(), 0);
  EXPECT_EQ(echo->closed.load(), 0);
  EXPECT_TRUE(eventually([&] { return stats(server).transport_connections.get() == 0; }));
}

TEST(TransportEngine, ProxyHeaderIsThePeerAndPlainConnectionsCarryNothing) {
  ServerConfig config;
  config.threads = 1;
  Server server(config);
  Echo* echo = nullptr;
  ListenerOptions lo;
  lo.transport.proxy_protocol = true;
  uint8_t h = server.add_handler([&](EventLoop&) {
    auto e = std::make_unique<Echo>();
    echo = e.get();
    return e;
  });
  server.listen(*Endpoint::parse("127.0.0.1:0"), h, lo);
  server.listen(*Endpoint::parse("127.0.0.1:0"), h);  // plain, same handler
  ASSERT_EQ(server.start(), "");

  int fd = raw_connect(server.bound_port(0));
  std::string wire = "PROXY TCP4 203.0.113.7 127.0.0.1 4711 1883\r\nhello";
  ASSERT_EQ(::send(fd, wire.data(), wire.size(), 0), static_cast<ssize_t>(wire.size()));
  char buf[16] = {};
  ASSERT_EQ(::recv(fd, buf, 5, MSG_WAITALL), 5);
  EXPECT_EQ(std::string(buf, 5), "hello");
  {
    std::lock_guard lock(echo->mu);
    EXPECT_EQ(echo->peer, "203.0.113.7:4711");
    EXPECT_TRUE(echo->saw_transport);
  }
  ::close(fd);

  int plain = raw_connect(server.bound_port(1));
  ASSERT_EQ(::send(plain, "x", 1, 0), 1);
  ASSERT_EQ(::recv(plain, buf, 1, 0), 1);
  {
    std::lock_guard lock(echo->mu);
    EXPECT_TRUE(echo->peer.starts_with("127.0.0.1:"));
    EXPECT_FALSE(echo->saw_transport);
  }
  ::close(plain);

  // No header: closed, and the handler never knew.
  int bare = raw_connect(server.bound_port(0));
  ASSERT_EQ(::send(bare, "hello", 5, 0), 5);
  EXPECT_EQ(::recv(bare, buf, sizeof buf, 0), 0);
  ::close(bare);
  EXPECT_TRUE(eventually([&] { return stats(server).proxy_refused.get() == 1; }));
  EXPECT_EQ(echo->opened.load(), 2);
}

TEST(TransportEngine, ListenerCapClosesTheExtraConnectionsOnly) {
  ServerConfig config;
  config.threads = 1;
  Server server(config);
  ListenerOptions lo;
  lo.max_connections = 2;
  server.listen(*Endpoint::parse("127.0.0.1:0"), [](EventLoop&) { return std::make_unique<Echo>(); }, lo);
  ASSERT_EQ(server.start(), "");
  int a = raw_connect(server.bound_port(0)), b = raw_connect(server.bound_port(0));
  char buf[4];
  for (int fd : {a, b}) {
    ASSERT_EQ(::send(fd, "k", 1, 0), 1);
    ASSERT_EQ(::recv(fd, buf, 1, 0), 1);
  }
  int c = raw_connect(server.bound_port(0));
  EXPECT_LE(::recv(c, buf, 1, 0), 0);
  EXPECT_TRUE(eventually([&] { return stats(server).listener_rejected.get() == 1; }));
  ::close(a);
  EXPECT_TRUE(eventually([&] { return stats(server).transport_connections.get() == 1; }));
  int d = raw_connect(server.bound_port(0));  // a slot freed up
  ASSERT_EQ(::send(d, "k", 1, 0), 1);
  EXPECT_EQ(::recv(d, buf, 1, 0), 1);
  for (int fd : {b, c, d}) ::close(fd);
}

}  // namespace
}  // namespace tcpms
