// An OpenSSL TLS client for tests of the engine's TLS: a blocking loopback socket with
// OpenSSL behind memory BIOs, so that the test decides how the ciphertext is cut on the wire
// (sent in pieces, half now and half later, a bit flipped).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>

namespace tcpms {

class TlsTestClient {
 public:
  TlsTestClient(uint16_t port, SSL_CTX* ctx, SSL_SESSION* resume = nullptr) {
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
  ~TlsTestClient() {
    SSL_free(ssl_);
    ::close(fd_);
  }
  TlsTestClient(const TlsTestClient&) = delete;
  TlsTestClient& operator=(const TlsTestClient&) = delete;

  SSL* ssl() { return ssl_; }
  bool connected() const { return connected_; }

  // What OpenSSL wrote and this client has not sent yet.
  std::string take_written() {
    char* data = nullptr;
    const long n = BIO_get_mem_data(wbio_, &data);
    std::string out(data, static_cast<size_t>(n));
    (void)BIO_reset(wbio_);
    return out;
  }
  // Sends `bytes`, `chunk` bytes per send (0: all at once).
  void send_raw(const std::string& bytes, size_t chunk = 0) {
    const size_t step = chunk ? chunk : bytes.size();
    for (size_t at = 0; at < bytes.size(); at += step) {
      ::send(fd_, bytes.data() + at, std::min(step, bytes.size() - at), MSG_NOSIGNAL);
      if (chunk) std::this_thread::sleep_for(std::chrono::milliseconds(1));  // read apart
    }
  }
  // Sends what OpenSSL wrote, in pieces of `chunk`, `corrupt_at` >= 0 flipping one bit of
  // that byte first.
  void flush(size_t chunk = 0, long corrupt_at = -1) {
    std::string out = take_written();
    if (corrupt_at >= 0 && static_cast<size_t>(corrupt_at) < out.size()) out[static_cast<size_t>(corrupt_at)] ^= 1;
    send_raw(out, chunk);
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
  // Seals `s` into records, not sent yet (take_written, flush).
  bool seal(const std::string& s) {
    for (size_t at = 0; at < s.size();) {
      size_t n = 0;
      if (SSL_write_ex(ssl_, s.data() + at, s.size() - at, &n) != 1) return false;
      at += n;
    }
    return true;
  }
  bool write(const std::string& s, size_t chunk = 0, long corrupt_at = -1) {
    if (!seal(s)) return false;
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
      const int r = SSL_read_ex(ssl_, buf, std::min(sizeof buf, n - got.size()), &k);
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

 private:
  int fd_ = -1;
  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;
  BIO* wbio_ = nullptr;
  bool connected_ = false;
};

}  // namespace tcpms
