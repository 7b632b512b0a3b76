// TlsContext's inside: the current SSL_CTX (swapped by reload under a mutex, so a loop taking
// it for a new connection never sees one being freed), the settings it was built from, the
// session-ticket keys that survive reloads, and a client's last session for resumption.
#pragma once

#include <openssl/ssl.h>

#include <mutex>
#include <string>

#include "tcpms/tls.h"

namespace tcpms {

struct TlsContext::Impl {
  bool server = true;
  TlsServerSettings server_settings;
  TlsClientSettings client_settings;
  // Ticket keys (name, HMAC and AES keys): made once when the context is created, before
  // worker processes fork, so that every worker and every reload accepts the same tickets.
  unsigned char ticket_keys[80] = {};
  std::string alpn_wire;  // the ALPN list in wire form: length-prefixed names

  std::mutex mu;
  SSL_CTX* ctx = nullptr;            // guarded by mu; one reference held here
  SSL_SESSION* last_session = nullptr;  // client: offered on the next connect (guarded by mu)

  ~Impl();
  // A new SSL for one connection from the current context, or null (ERR queue has why).
  SSL* new_ssl();
  // Client: remember the session a handshake produced (tickets arrive after it).
  void keep_session(SSL_SESSION* s);
};

// Builds an SSL_CTX from settings; null and `error` on failure.
SSL_CTX* build_server_ctx(const TlsServerSettings& s, TlsContext::Impl& impl, std::string& error);
SSL_CTX* build_client_ctx(const TlsClientSettings& s, TlsContext::Impl& impl, std::string& error);

// OpenSSL's error queue as one line ("error:0A000086:SSL routines::certificate verify
// failed"), cleared.
std::string take_ssl_errors();

// The identity of a verified peer certificate: its subject CN, or its first DNS, email or URI
// subject alternative name (`field` "san"). False when there is none.
bool certificate_identity(SSL* ssl, const std::string& field, std::string& out);

}  // namespace tcpms
