// What the TLS transport tests over real sockets share: a fixture with the test certificate's
// server context and an OpenSSL client context, and a one-thread Server with one TLS listener
// (WebSocket over it when asked) on 127.0.0.1:0.
#pragma once

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <utility>

#include "tcpms/server.h"
#include "tcpms/tls.h"
#include "test_cert.h"

namespace tcpms {

// A server TLS context from a fresh test certificate (`tls_`) and a client context (`ctx_`).
class TlsFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    TlsServerSettings ss;
    ss.cert_file = cert_.cert;
    ss.key_file = cert_.key;
    std::string error;
    tls_ = TlsContext::server(ss, error);
    ASSERT_TRUE(tls_) << error;
    ctx_ = SSL_CTX_new(TLS_client_method());
  }
  void TearDown() override { SSL_CTX_free(ctx_); }

  TestCert cert_;
  std::shared_ptr<TlsContext> tls_;
  SSL_CTX* ctx_ = nullptr;
};

// Serves every connection of its one listener with a new `H`; stopped when it goes.
template <typename H>
struct TlsTestServer {
  explicit TlsTestServer(std::shared_ptr<TlsContext> tls, bool websocket = false) {
    ServerConfig config;
    config.threads = 1;
    server = std::make_unique<Server>(config);
    ListenerOptions lo;
    lo.transport.tls = std::move(tls);
    lo.transport.websocket = websocket;
    server->listen(*Endpoint::parse("127.0.0.1:0"), [](EventLoop&) { return std::make_unique<H>(); }, lo);
    EXPECT_EQ(server->start(), "");
  }
  ~TlsTestServer() {
    server->stop();
    server->wait();
  }
  EventLoop& loop() { return server->loop(0); }
  uint16_t port() { return server->bound_port(0); }

  std::unique_ptr<Server> server;
};

}  // namespace tcpms
