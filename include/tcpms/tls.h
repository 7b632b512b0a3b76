// TLS for the engine's listeners and outbound connections (OpenSSL). A TlsContext is built
// once from its settings and shared by every loop; reload() swaps in a new certificate chain,
// key, CA and CRL (SIGHUP) while connections keep the one they started with.
//
// Thread rules: create and reload on one thread (main); the loops only take the current
// context for a new connection, which is safe from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tcpms {

struct TlsServerSettings {
  std::string cert_file;  // PEM: the certificate, then its chain
  std::string key_file;   // PEM
  std::string ca_file;    // PEM: CAs that client certificates must chain to
  std::string crl_file;   // PEM: revoked client certificates (needs ca_file)
  bool require_client_cert = false;  // no certificate: the handshake fails
  bool request_client_cert = false;  // ask, verify one if given, accept none
  // Handlers may take the client's certificate identity as its user name
  // (Connection::certificate_identity); needs require_client_cert.
  bool identity_as_username = false;
  std::string identity_field = "cn";  // "cn" (subject CN) or "san" (first DNS/email/URI SAN)
  std::string min_version = "1.2";    // "1.2" or "1.3"
  std::string ciphers;       // TLS 1.2 cipher list (OpenSSL syntax); empty: ECDHE with AEADs
  std::string ciphersuites;  // TLS 1.3 suites; empty: OpenSSL's (AES-GCM, ChaCha20-Poly1305)
  std::string groups;        // key exchange groups; empty: X25519:P-256:P-384
  std::vector<std::string> alpn;  // protocols we accept, best first; none offered is fine
  bool session_tickets = true;    // resumption (TLS 1.2 and 1.3 tickets; no server cache)
  uint32_t session_lifetime_s = 7200;
  // After a TLS 1.3 handshake, keep only the traffic keys and run the record layer in the
  // engine, freeing OpenSSL's per-connection state (~14 KB); off: OpenSSL keeps every
  // connection to its end.
  bool own_record_layer = true;
};

struct TlsClientSettings {
  std::string ca_file;      // verify the server against these (empty: do not verify)
  std::string cert_file;    // client certificate for mutual TLS (optional)
  std::string key_file;
  std::string server_name;  // SNI and the name checked when verifying
  std::vector<std::string> alpn;
  std::string min_version = "1.2";
  std::string max_version;  // "1.2" to test a TLS 1.2 server path; empty: the highest
  bool resume = true;       // keep the last session per context and offer it (tickets)
};

class TlsContext {
 public:
  // Loads everything; returns null and sets `error` ("tls.cert_file /x.pem: no such file").
  static std::shared_ptr<TlsContext> server(const TlsServerSettings& settings, std::string& error);
  static std::shared_ptr<TlsContext> client(const TlsClientSettings& settings, std::string& error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // Re-reads the certificate chain, key, CA and CRL files. New handshakes use the new ones,
  // established connections are untouched; session tickets issued before stay valid. Returns
  // "" or why nothing changed.
  std::string reload();
  bool is_server() const noexcept;
  const TlsServerSettings& server_settings() const noexcept;

  struct Impl;  // src/net/tls_context.h
  Impl& impl() noexcept { return *impl_; }

 private:
  explicit TlsContext(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tcpms
