// The WebSocket opening handshake: RFC 6455 section 1.3 / 4.2 examples and every refusal.
#include <gtest/gtest.h>

#include <string>

#include "websocket/handshake.h"

namespace tcpms::ws {
namespace {

constexpr std::string_view kMqtt[] = {"mqtt"};

ServerPolicy policy() {
  ServerPolicy p;
  p.path = "/mqtt";
  p.subprotocols = kMqtt;
  return p;
}

std::string request(std::string extra = "Sec-WebSocket-Protocol: mqtt\r\n",
                    std::string line = "GET /mqtt HTTP/1.1") {
  return line + "\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\n"
                "Sec-WebSocket-Version: 13\r\n" + extra + "\r\n";
}

UpgradeResult parse(const std::string& s) { return parse_upgrade(as_bytes(s), policy()); }

TEST(WebSocketHandshake, Rfc6455AcceptKey) {
  char out[28];
  accept_key("dGhlIHNhbXBsZSBub25jZQ==", out);
  EXPECT_EQ(std::string(out, 28), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocketHandshake, AcceptsAndAnswers101) {
  std::string req = request() + "leftover";
  UpgradeResult r = parse(req);
  ASSERT_EQ(r.status, Status::kComplete) << r.what;
  EXPECT_EQ(r.size, req.size() - 8);
  EXPECT_EQ(r.subprotocol, "mqtt");
  EXPECT_EQ(r.origin, "http://example.com");
  char out[kMaxResponseBytes];
  std::string resp(out, write_accept(out, r.key, r.subprotocol));
  EXPECT_EQ(resp,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            "Sec-WebSocket-Protocol: mqtt\r\n\r\n");
  // The client side accepts that answer.
  ResponseResult c = parse_response(as_bytes(resp), "dGhlIHNhbXBsZSBub25jZQ==");
  EXPECT_EQ(c.status, Status::kComplete) << c.what;
  EXPECT_EQ(c.subprotocol, "mqtt");
  EXPECT_EQ(parse_response(as_bytes(resp), "AAAAAAAAAAAAAAAAAAAAAA==").status, Status::kError);
}

TEST(WebSocketHandshake, HeaderNamesAndTokensAreCaseInsensitive) {
  std::string req =
      "GET /mqtt?x=1 HTTP/1.1\r\nhost: h\r\nUPGRADE: WebSocket\r\nconnection: keep-alive, Upgrade\r\n"
      "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nSEC-WEBSOCKET-VERSION: 13\r\n"
      "Sec-WebSocket-Protocol: mqttv3.1\r\nSec-WebSocket-Protocol: chat, mqtt\r\n\r\n";
  UpgradeResult r = parse(req);
  ASSERT_EQ(r.status, Status::kComplete) << r.what;
  EXPECT_EQ(r.subprotocol, "mqtt");
}

TEST(WebSocketHandshake, NoSubprotocolOfferedIsAccepted) {
  UpgradeResult r = parse(request(""));
  ASSERT_EQ(r.status, Status::kComplete);
  EXPECT_TRUE(r.subprotocol.empty());
}

TEST(WebSocketHandshake, EveryPrefixNeedsMore) {
  std::string req = request();
  for (size_t n = 0; n < req.size(); ++n) {
    UpgradeResult r = parse_upgrade(as_bytes(std::string_view(req).substr(0, n)), policy());
    EXPECT_EQ(r.status, Status::kNeedMore) << n;
  }
}

TEST(WebSocketHandshake, Refusals) {
  struct Case {
    std::string req;
    int status;
  } cases[] = {
      {request("", "POST /mqtt HTTP/1.1"), 405},
      {request("", "GET /other HTTP/1.1"), 404},
      {request("", "GET /mqtt HTTP/1.0"), 505},
      {request("", "GET /mqtt  HTTP/1.1"), 400},
      {request("Sec-WebSocket-Protocol: chat\r\n"), 400},
      {request("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"), 400},  // twice
      {request(" folded\r\n"), 400},
      {"GET /mqtt HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", 426},
      {"GET /mqtt HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n", 426},
      {"GET /mqtt HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n", 400},
      {"GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", 400},
      {std::string("\x10\x0c\x00\x04MQTT", 8), 400},  // raw MQTT: refused at once
      {"GET /mqtt HTTP/1.1\r\nX: " + std::string(9000, 'a'), 431},
  };
  for (const auto& c : cases) {
    UpgradeResult r = parse(c.req);
    EXPECT_EQ(r.status, Status::kError) << c.req;
    EXPECT_EQ(r.http_status, c.status) << c.req << " -> " << r.what;
    char out[kMaxResponseBytes];
    std::string resp(out, write_refusal(out, r.http_status, r.what));
    EXPECT_TRUE(resp.starts_with("HTTP/1.1 " + std::to_string(c.status) + " ")) << resp;
    EXPECT_NE(resp.find("Connection: close\r\n"), std::string::npos);
  }
}

TEST(WebSocketHandshake, ClientRequestParsesOnTheServer) {
  char out[1024];
  std::string req(out, write_request(out, sizeof out, "127.0.0.1:8080", "/mqtt",
                                     "dGhlIHNhbXBsZSBub25jZQ==", "mqtt"));
  UpgradeResult r = parse(req);
  ASSERT_EQ(r.status, Status::kComplete) << r.what;
  EXPECT_EQ(r.size, req.size());
}

}  // namespace
}  // namespace tcpms::ws
