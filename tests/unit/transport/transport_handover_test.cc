// Transports across the upgrade handover (handover version 6, src/net/event_loop_handover.cc):
// a TLS 1.3 connection whose records the engine keeps, and a WebSocket connection over it,
// are parked on one server and adopted by another (the descriptor duplicated, as SCM_RIGHTS
// would), with a record or a frame cut in half on the wire. The client, OpenSSL over its own
// memory BIOs, goes on on the same socket and never notices: its record sequence numbers,
// its key updates and its frames continue where they were. What cannot travel stays: TLS 1.2
// (its state is OpenSSL's), any framed transport for a successor that speaks only version 5,
// and a connection offered to a listener that is not the same kind.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <openssl/ssl.h>

#include <chrono>
#include <cstring>
#include <future>
#include <string>
#include <thread>

#include "tcpms/loop_stats.h"
#include "tls_test_client.h"
#include "tls_test_server.h"
#include "transport_test_support.h"
#include "websocket/frame.h"

namespace tcpms {
namespace {

using namespace std::chrono_literals;

// Echoes; its protocol state is nothing, so every connection may move.
class MovableEcho : public Handler {
 public:
  DataResult on_data(Connection& c, ByteView data) override {
    c.send(data);
    return {data.size(), Action::kKeep};
  }
  bool export_state(Connection&, std::string& state) override {
    state.clear();
    return true;
  }
  bool import_state(Connection&, ByteView) override { return true; }
};

// A masked client frame (RFC 6455 section 5.3), whole.
std::string client_frame(const std::string& payload) {
  std::byte header[ws::kMaxHeaderBytes];
  const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
  const size_t h = ws::encode_header(header, ws::Opcode::kBinary, true, payload.size(), mask);
  std::string frame(reinterpret_cast<const char*>(header), h);
  std::string body = payload;
  ws::apply_mask(reinterpret_cast<std::byte*>(body.data()), body.size(), mask, 0);
  return frame + body;
}

// Reads one unmasked server frame's payload through `c`.
std::string server_frame(TlsTestClient& c) {
  const std::string head = c.read(2);
  if (head.size() != 2) return {};
  size_t len = static_cast<uint8_t>(head[1]) & 0x7f;
  if (len == 126) {
    const std::string ext = c.read(2);
    len = static_cast<size_t>(static_cast<uint8_t>(ext[0])) << 8 | static_cast<uint8_t>(ext[1]);
  }
  return c.read(len);
}

// Upgrades `c`'s connection to WebSocket.
void upgrade(TlsTestClient& c) {
  c.write("GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  std::string response;
  while (response.find("\r\n\r\n") == std::string::npos) {
    const std::string got = c.read(1);
    ASSERT_EQ(got.size(), 1u) << response;
    response += got;
  }
  ASSERT_NE(response.find("101"), std::string::npos) << response;
}

template <typename F>
auto on_loop(EventLoop& loop, F&& f) {
  std::packaged_task<decltype(f())()> task(std::forward<F>(f));
  auto done = task.get_future();
  loop.post([&task] { task(); });
  return done.get();
}

// One server with one TLS (and maybe WebSocket) listener on loop 0: the old process and the
// new one are two of these with the same listener configuration.
struct TlsServer : TlsTestServer<MovableEcho> {
  using TlsTestServer::TlsTestServer;

  std::vector<HandedConnection> park(TravellingTransports transports = TravellingTransports::kAll) {
    return on_loop(loop(), [&] {
      std::vector<HandedConnection> out;
      uint32_t cursor = 0;
      while (loop().park_for_handover(100, cursor, out, transports) != 0 || !loop().scan_done(cursor)) {}
      return out;
    });
  }
  void resume(const std::vector<HandedConnection>& parked) {
    on_loop(loop(), [&] {
      for (const auto& h : parked) loop().resume_parked(h.id);
      return 0;
    });
  }
  void release(const std::vector<HandedConnection>& parked) {
    on_loop(loop(), [&] {
      for (const auto& h : parked) loop().release_parked(h.id);
      return 0;
    });
  }
  ConnId adopt(const HandedConnection& h) {
    UniqueFd copy(::fcntl(h.fd, F_DUPFD_CLOEXEC, 0));
    return on_loop(loop(), [&] { return loop().adopt_handed(std::move(copy), h); });
  }
};

class TransportHandover : public TlsFixture {
 protected:
  // Parks every connection of `from`, waiting until the one there holds `partial` bytes of a
  // record (what the client sent of it has been read); resumes and tries again meanwhile.
  std::vector<HandedConnection> park_with_partial_record(TlsServer& from, size_t partial) {
    std::vector<HandedConnection> parked;
    const bool got = eventually([&] {
      parked = from.park();
      if (parked.size() == 1 && parked[0].transport && parked[0].transport->tls &&
          parked[0].transport->tls->partial.size() == partial)
        return true;
      from.resume(parked);
      return false;
    });
    EXPECT_TRUE(got) << "the old server never held the half record";
    return parked;
  }
};

TEST_F(TransportHandover, ATls13ConnectionMovesWithARecordCutInHalfAndItsKeysGoOn) {
  const std::pair<const char*, int> suites[] = {
      {"TLS_AES_128_GCM_SHA256", 1}, {"TLS_AES_256_GCM_SHA384", 2}, {"TLS_CHACHA20_POLY1305_SHA256", 3}};
  for (auto [suite, suite_id] : suites) {
    TlsServer old_server(tls_, false), new_server(tls_, false);
    ASSERT_EQ(SSL_CTX_set_ciphersuites(ctx_, suite), 1);
    TlsTestClient c(old_server.port(), ctx_);
    ASSERT_TRUE(c.handshake()) << suite;
    // The old server asks for a key update of its own, so that both directions move
    // mid-life: updated secrets and sequence numbers past the tickets.
    c.write("before");
    ASSERT_EQ(c.read(6), "before");
    ASSERT_EQ(SSL_key_update(c.ssl(), SSL_KEY_UPDATE_REQUESTED), 1);
    c.write("updated");
    ASSERT_EQ(c.read(7), "updated");

    const std::string cut = pattern(3000);
    ASSERT_TRUE(c.seal(cut));
    const std::string record = c.take_written();
    c.send_raw(record.substr(0, 1000));
    auto parked = park_with_partial_record(old_server, 1000);
    ASSERT_EQ(parked.size(), 1u);
    EXPECT_EQ(parked[0].transport->tls->suite, suite_id) << suite;
    ASSERT_TRUE(new_server.adopt(parked[0]).valid()) << suite;
    old_server.release(parked);

    c.send_raw(record.substr(1000));
    EXPECT_EQ(c.read(cut.size()), cut) << suite;
    ASSERT_EQ(SSL_key_update(c.ssl(), SSL_KEY_UPDATE_REQUESTED), 1);
    const std::string after = pattern(40000);  // several records each way
    c.write(after);
    EXPECT_EQ(c.read(after.size()), after) << suite;
    EXPECT_EQ(new_server.loop().stats().tls_key_updates.get(), 1u);
    EXPECT_EQ(new_server.loop().stats().tls_openssl_connections.get(), 0u);
    EXPECT_EQ(new_server.loop().connection_count(), 1u);
    EXPECT_TRUE(eventually([&] { return old_server.loop().connection_count() == 0; }));
    EXPECT_EQ(new_server.loop().stats().tls_record_errors.get(), 0u);
  }
}

TEST_F(TransportHandover, AWebSocketConnectionOverTlsMovesInsideAFrameAndInsideAHeader) {
  TlsServer old_server(tls_, true), middle(tls_, true), new_server(tls_, true);
  TlsTestClient c(old_server.port(), ctx_);
  ASSERT_TRUE(c.handshake());
  ASSERT_NO_FATAL_FAILURE(upgrade(c));

  // Inside a frame's payload: 1001 of 3000 bytes read (the mask stands at offset 1).
  const std::string first = pattern(3000);
  const std::string frame = client_frame(first);
  const size_t header = frame.size() - first.size();
  c.write(frame.substr(0, header + 1001));
  ASSERT_EQ(server_frame(c), first.substr(0, 1001));
  auto parked = old_server.park();
  ASSERT_EQ(parked.size(), 1u);
  ASSERT_TRUE(parked[0].transport && parked[0].transport->websocket);
  EXPECT_EQ(parked[0].transport->websocket->payload_left, 3000u - 1001u);
  EXPECT_EQ(parked[0].transport->websocket->mask_offset, 1u);
  ASSERT_TRUE(middle.adopt(parked[0]).valid());
  old_server.release(parked);
  c.write(frame.substr(header + 1001));
  EXPECT_EQ(server_frame(c), first.substr(1001));

  // Inside the next frame's header: 3 of its 8 bytes read, kept aside.
  const std::string second = client_frame("after two moves");
  c.write(second.substr(0, 3));
  std::vector<HandedConnection> again;
  ASSERT_TRUE(eventually([&] {
    again = middle.park();
    if (again.size() == 1 && again[0].transport->websocket->stash.size() == 3) return true;
    middle.resume(again);
    return false;
  }));
  ASSERT_TRUE(new_server.adopt(again[0]).valid());
  middle.release(again);
  c.write(second.substr(3));
  EXPECT_EQ(server_frame(c), "after two moves");
  EXPECT_EQ(new_server.loop().stats().ws_protocol_errors.get(), 0u);
}

TEST_F(TransportHandover, AWebSocketStateTheReceiverCouldNotHaveLeftIsRefused) {
  TlsServer old_server(tls_, true), new_server(tls_, true);
  TlsTestClient c(old_server.port(), ctx_);
  ASSERT_TRUE(c.handshake());
  ASSERT_NO_FATAL_FAILURE(upgrade(c));
  c.write(client_frame("first"));
  ASSERT_EQ(server_frame(c), "first");
  auto parked = old_server.park();
  ASSERT_EQ(parked.size(), 1u);
  ASSERT_TRUE(parked[0].transport && parked[0].transport->websocket);
  // A whole ping kept as if cut short (the receiver would consume past the kept bytes), and
  // payload owed outside any frame: the new server closes its copy, nothing else.
  HandedConnection whole_ping = parked[0];
  whole_ping.transport->websocket->stash = std::string("\x89\x80\x01\x02\x03\x04\x82", 7);
  EXPECT_FALSE(new_server.adopt(whole_ping).valid());
  HandedConnection owed = parked[0];
  owed.transport->websocket->payload_left = 5;
  owed.transport->tls->partial = "\x17\x03\x03";  // records with a partial record, freed again
  EXPECT_FALSE(new_server.adopt(owed).valid());
  HandedConnection bad_keys = parked[0];
  bad_keys.transport->tls->secret_length = 7;  // refused before any transport is made
  EXPECT_FALSE(new_server.adopt(bad_keys).valid());
  // A partial record longer than the record its header names, and one whose header the
  // receiver refuses: neither can have been kept.
  HandedConnection overlong = parked[0];
  overlong.transport->tls->partial = std::string("\x17\x03\x03\x00\x02", 5) + std::string(10, 'x');
  EXPECT_FALSE(new_server.adopt(overlong).valid());
  HandedConnection plaintext_alert = parked[0];
  plaintext_alert.transport->tls->partial = std::string("\x15\x03\x03\x00\x02", 5);
  EXPECT_FALSE(new_server.adopt(plaintext_alert).valid());
  EXPECT_EQ(new_server.loop().connection_count(), 0u);
  EXPECT_EQ(new_server.loop().stats().transport_connections.get(), 0u);

  old_server.resume(parked);
  c.write(client_frame("served on"));
  EXPECT_EQ(server_frame(c), "served on");
}

TEST_F(TransportHandover, WhatCannotTravelStaysAndIsServedOn) {
  TlsServer old_server(tls_, false);
  // TLS 1.2: its record state is inside OpenSSL.
  SSL_CTX_set_max_proto_version(ctx_, TLS1_2_VERSION);
  TlsTestClient tls12(old_server.port(), ctx_);
  ASSERT_TRUE(tls12.handshake());
  tls12.write("1.2");
  ASSERT_EQ(tls12.read(3), "1.2");
  EXPECT_TRUE(old_server.park().empty());
  tls12.write("still");
  EXPECT_EQ(tls12.read(5), "still");

  // TLS 1.3, but a successor that speaks only handover version 5.
  SSL_CTX_set_max_proto_version(ctx_, TLS1_3_VERSION);
  TlsTestClient tls13(old_server.port(), ctx_);
  ASSERT_TRUE(tls13.handshake());
  tls13.write("1.3");
  ASSERT_EQ(tls13.read(3), "1.3");
  EXPECT_TRUE(old_server.park(TravellingTransports::kAddressOnly).empty());

  // Offered to a listener that does WebSocket as well: refused, and the old one serves on.
  TlsServer other_kind(tls_, true);
  auto parked = old_server.park();
  ASSERT_EQ(parked.size(), 1u);
  EXPECT_FALSE(other_kind.adopt(parked[0]).valid());
  old_server.resume(parked);
  tls13.write("served on");
  EXPECT_EQ(tls13.read(9), "served on");
  EXPECT_EQ(other_kind.loop().connection_count(), 0u);
}

}  // namespace
}  // namespace tcpms
