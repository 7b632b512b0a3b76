// The engine's own TLS 1.3 record layer against OpenSSL as the client: after the handshake
// the server holds no OpenSSL state, and still echoes every size in every suite, resumes
// sessions from the tickets it sent, follows the client's key updates (and answers the ones
// that ask), takes records cut anywhere by TCP, answers a forged record with an alert, and
// closes with close_notify. The client drives its own memory BIOs, so the test decides how
// the ciphertext is cut on the wire.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "tcpms/loop_stats.h"
#include "tls_test_client.h"
#include "tls_test_server.h"
#include "transport_test_support.h"

namespace tcpms {
namespace {

using namespace std::chrono_literals;

class Echo : public Handler {
 public:
  DataResult on_data(Connection& c, ByteView data) override {
    c.send(data);
    return {data.size(), Action::kKeep};
  }
};

class Tls13Engine : public TlsFixture {
 protected:
  void SetUp() override {
    TlsFixture::SetUp();
    if (HasFatalFailure()) return;
    server_ = std::make_unique<TlsTestServer<Echo>>(tls_);
    port_ = server_->port();
    SSL_CTX_set_min_proto_version(ctx_, TLS1_3_VERSION);
    SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_CLIENT);
  }
  void TearDown() override {
    server_.reset();
    TlsFixture::TearDown();
  }
  const LoopStats& stats() { return server_->loop().stats(); }

  std::unique_ptr<TlsTestServer<Echo>> server_;
  uint16_t port_ = 0;
};

TEST_F(Tls13Engine, EverySuiteEchoesEverySizeWithNoOpenSslStateLeft) {
  for (const char* suite : {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}) {
    ASSERT_EQ(SSL_CTX_set_ciphersuites(ctx_, suite), 1);
    TlsTestClient c(port_, ctx_);
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.handshake()) << suite;
    EXPECT_STREQ(SSL_CIPHER_get_name(SSL_get_current_cipher(c.ssl())), suite);
    for (size_t size : {size_t{1}, size_t{16384}, size_t{16385}, size_t{200000}}) {
      const std::string msg = pattern(size);
      ASSERT_TRUE(c.write(msg));
      EXPECT_EQ(c.read(size), msg) << suite << " " << size;
    }
    // The server's side of this connection is its keys alone.
    EXPECT_TRUE(eventually([&] { return stats().tls_openssl_connections.get() == 0; }));
  }
}

TEST_F(Tls13Engine, RecordsCutAnywhereByTcpAreReassembled) {
  TlsTestClient c(port_, ctx_);
  ASSERT_TRUE(c.handshake());
  const std::string msg = pattern(700);
  for (size_t chunk : {size_t{1}, size_t{3}, size_t{4}, size_t{5}, size_t{6}, size_t{250}}) {
    ASSERT_TRUE(c.write(msg, chunk));
    EXPECT_EQ(c.read(msg.size()), msg) << "sent in pieces of " << chunk;
  }
}

TEST_F(Tls13Engine, ASessionResumesFromTheTicketsTheServerSentBeforeLettingOpenSslGo) {
  SSL_SESSION* session = nullptr;
  {
    TlsTestClient c(port_, ctx_);
    ASSERT_TRUE(c.handshake());
    ASSERT_TRUE(c.write("ping"));
    ASSERT_EQ(c.read(4), "ping");  // the tickets came first, sealed under the same key
    session = SSL_get1_session(c.ssl());
    ASSERT_NE(session, nullptr);
    SSL_shutdown(c.ssl());  // a session whose connection was cut would not be offered
    c.flush();
  }
  TlsTestClient again(port_, ctx_, session);
  ASSERT_TRUE(again.handshake());
  EXPECT_TRUE(SSL_session_reused(again.ssl()));
  ASSERT_TRUE(again.write("pong"));
  EXPECT_EQ(again.read(4), "pong");
  EXPECT_EQ(stats().tls_resumed.get(), 1u);
  SSL_SESSION_free(session);
}

TEST_F(Tls13Engine, KeyUpdatesFromTheClientAreFollowedAndAnsweredWhenAsked) {
  TlsTestClient c(port_, ctx_);
  ASSERT_TRUE(c.handshake());
  ASSERT_TRUE(c.write("before"));
  ASSERT_EQ(c.read(6), "before");
  // Asked: the server updates its own key too, which the client must follow to read on.
  ASSERT_EQ(SSL_key_update(c.ssl(), SSL_KEY_UPDATE_REQUESTED), 1);
  ASSERT_TRUE(c.write("after one"));
  EXPECT_EQ(c.read(9), "after one");
  ASSERT_EQ(SSL_key_update(c.ssl(), SSL_KEY_UPDATE_NOT_REQUESTED), 1);
  ASSERT_TRUE(c.write("after two"));
  EXPECT_EQ(c.read(9), "after two");
  EXPECT_EQ(stats().tls_key_updates.get(), 2u);
}

TEST_F(Tls13Engine, AForgedRecordGetsAnAlertAndTheConnectionCloses) {
  TlsTestClient c(port_, ctx_);
  ASSERT_TRUE(c.handshake());
  ASSERT_TRUE(c.write("fine"));
  ASSERT_EQ(c.read(4), "fine");
  ASSERT_TRUE(c.write("forged", 0, 8));  // a bit inside the ciphertext
  int error = 0;
  EXPECT_EQ(c.read(1, &error), "");
  EXPECT_EQ(error, SSL_ERROR_SSL);
  const unsigned long e = ERR_peek_last_error();
  EXPECT_EQ(ERR_GET_REASON(e), SSL_R_SSLV3_ALERT_BAD_RECORD_MAC) << ERR_reason_error_string(e);
  ERR_clear_error();
  EXPECT_TRUE(c.closed_by_server());
  EXPECT_EQ(stats().tls_record_errors.get(), 1u);
}

TEST_F(Tls13Engine, CloseNotifyIsAnsweredWithCloseNotify) {
  TlsTestClient c(port_, ctx_);
  ASSERT_TRUE(c.handshake());
  ASSERT_TRUE(c.write("bye"));
  ASSERT_EQ(c.read(3), "bye");
  SSL_shutdown(c.ssl());
  c.flush();
  int error = 0;
  EXPECT_EQ(c.read(1, &error), "");
  EXPECT_EQ(error, SSL_ERROR_ZERO_RETURN) << "the server's close_notify, not a cut";
  EXPECT_TRUE(c.closed_by_server());
  EXPECT_EQ(stats().tls_record_errors.get(), 0u);
}

TEST_F(Tls13Engine, Tls12ConnectionsStayWithOpenSsl) {
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx_, TLS1_2_VERSION);
  TlsTestClient c(port_, ctx_);
  ASSERT_TRUE(c.handshake());
  ASSERT_TRUE(c.write("twelve"));
  EXPECT_EQ(c.read(6), "twelve");
  EXPECT_EQ(stats().tls_openssl_connections.get(), 1u);
}

}  // namespace
}  // namespace tcpms
