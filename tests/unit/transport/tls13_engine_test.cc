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
#include "tcpms/server.h"
#include "test_cert.h"

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

// An OpenSSL TLS 1.3 client over a blocking loopback socket, through memory BIOs.
class Client {
 public:
  Client(uint16_t port, SSL_CTX* ctx, SSL_SESSION* resume = nullptr) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    ssl_ = SSL_new(ctx);
    rbio_ = BIO_new(BIO_s_mem());
    wbio_ = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl_, rbio_, wbio_);
    SSL_set_connect_state(ssl_);
    if (resume) SSL_set_session(ssl_, resume);
  }
  ~Client() {
    SSL_free(ssl_);
    ::close(fd_);
  }
  SSL* ssl() { return ssl_; }

  // Sends what OpenSSL wrote, `chunk` bytes per send (0: all at once), `corrupt_at` >= 0
  // flipping one bit of that byte first.
  void flush(size_t chunk = 0, long corrupt_at = -1) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(wbio_, &data);
    std::string out(data, static_cast<size_t>(n));
    (void)BIO_reset(wbio_);
    if (corrupt_at >= 0 && corrupt_at < n) out[static_cast<size_t>(corrupt_at)] ^= 1;
    const size_t step = chunk ? chunk : out.size();
    for (size_t at = 0; at < out.size(); at += step) {
      ::send(fd_, out.data() + at, std::min(step, out.size() - at), MSG_NOSIGNAL);
      if (chunk) std::this_thread::sleep_for(1ms);  // so the server reads the pieces apart
    }
  }
  // Reads from the socket into OpenSSL; false at EOF or timeout.
  bool pull() {
    char buf[16384];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;
    BIO_write(rbio_, buf, static_cast<int>(n));
    return true;
  }
  bool handshake() {
    for (;;) {
      const int r = SSL_do_handshake(ssl_);
      flush();
      if (r == 1) return true;
      if (SSL_get_error(ssl_, r) != SSL_ERROR_WANT_READ || !pull()) return false;
    }
  }
  bool write(const std::string& s, size_t chunk = 0, long corrupt_at = -1) {
    for (size_t at = 0; at < s.size();) {
      size_t n = 0;
      if (SSL_write_ex(ssl_, s.data() + at, s.size() - at, &n) != 1) return false;
      at += n;
    }
    flush(chunk, corrupt_at);
    return true;
  }
  // Reads until `n` bytes came; what came (less on error or close). `error` gets
  // SSL_get_error's answer when it stops short.
  std::string read(size_t n, int* error = nullptr) {
    std::string got;
    char buf[16384];
    while (got.size() < n) {
      size_t k = 0;
      const int r = SSL_read_ex(ssl_, buf, sizeof buf, &k);
      if (r == 1) {
        got.append(buf, k);
        continue;
      }
      const int e = SSL_get_error(ssl_, r);
      flush();  // a KeyUpdate answer, say
      if (e == SSL_ERROR_WANT_READ && pull()) continue;
      if (error) *error = e;
      break;
    }
    return got;
  }
  // True when the server closed the TCP connection (after whatever it sent).
  bool closed_by_server() {
    char buf[256];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0) return true;
      if (n < 0) return false;
      BIO_write(rbio_, buf, static_cast<int>(n));
    }
  }

  bool connected_ = false;

 private:
  int fd_ = -1;
  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;
  BIO* wbio_ = nullptr;
};

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 251) & 0xff);
  return s;
}

template <typename P>
bool eventually(P pred, std::chrono::milliseconds limit = 5s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return pred();
}

class Tls13Engine : public ::testing::Test {
 protected:
  void SetUp() override {
    TlsServerSettings ss;
    ss.cert_file = cert_.cert;
    ss.key_file = cert_.key;
    std::string error;
    tls_ = TlsContext::server(ss, error);
    ASSERT_TRUE(tls_) << error;
    ServerConfig config;
    config.threads = 1;
    server_ = std::make_unique<Server>(config);
    ListenerOptions lo;
    lo.transport.tls = tls_;
    server_->listen(*Endpoint::parse("127.0.0.1:0"), [](EventLoop&) { return std::make_unique<Echo>(); }, lo);
    ASSERT_EQ(server_->start(), "");
    port_ = server_->bound_port(0);
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx_, TLS1_3_VERSION);
    SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_CLIENT);
  }
  void TearDown() override {
    if (server_) {
      server_->stop();
      server_->wait();
    }
    SSL_CTX_free(ctx_);
  }
  const LoopStats& stats() { return server_->loop(0).stats(); }

  TestCert cert_;
  std::shared_ptr<TlsContext> tls_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
  SSL_CTX* ctx_ = nullptr;
};

TEST_F(Tls13Engine, EverySuiteEchoesEverySizeWithNoOpenSslStateLeft) {
  for (const char* suite : {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}) {
    ASSERT_EQ(SSL_CTX_set_ciphersuites(ctx_, suite), 1);
    Client c(port_, ctx_);
    ASSERT_TRUE(c.connected_);
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
  Client c(port_, ctx_);
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
    Client c(port_, ctx_);
    ASSERT_TRUE(c.handshake());
    ASSERT_TRUE(c.write("ping"));
    ASSERT_EQ(c.read(4), "ping");  // the tickets came first, sealed under the same key
    session = SSL_get1_session(c.ssl());
    ASSERT_NE(session, nullptr);
    SSL_shutdown(c.ssl());  // a session whose connection was cut would not be offered
    c.flush();
  }
  Client again(port_, ctx_, session);
  ASSERT_TRUE(again.handshake());
  EXPECT_TRUE(SSL_session_reused(again.ssl()));
  ASSERT_TRUE(again.write("pong"));
  EXPECT_EQ(again.read(4), "pong");
  EXPECT_EQ(stats().tls_resumed.get(), 1u);
  SSL_SESSION_free(session);
}

TEST_F(Tls13Engine, KeyUpdatesFromTheClientAreFollowedAndAnsweredWhenAsked) {
  Client c(port_, ctx_);
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
  Client c(port_, ctx_);
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
  Client c(port_, ctx_);
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
  Client c(port_, ctx_);
  ASSERT_TRUE(c.handshake());
  ASSERT_TRUE(c.write("twelve"));
  EXPECT_EQ(c.read(6), "twelve");
  EXPECT_EQ(stats().tls_openssl_connections.get(), 1u);
}

}  // namespace
}  // namespace tcpms
