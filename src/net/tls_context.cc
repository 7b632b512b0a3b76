#include "net/tls_context.h"

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <memory>

#include "net/tls_records.h"

namespace tcpms {
namespace {

// Mozilla's "intermediate" TLS 1.2 list: ECDHE key exchange and AEAD ciphers only.
constexpr const char* kDefaultCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* kDefaultGroups = "X25519:P-256:P-384";

int version_of(const std::string& v) {
  if (v == "1.2") return TLS1_2_VERSION;
  if (v == "1.3") return TLS1_3_VERSION;
  return 0;
}

std::string alpn_wire(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) {
    if (n.empty() || n.size() > 255) continue;
    out += static_cast<char>(n.size());
    out += n;
  }
  return out;
}

int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void* arg) {
  auto* impl = static_cast<TlsContext::Impl*>(arg);
  const auto& ours = impl->alpn_wire;
  unsigned char* chosen = nullptr;
  unsigned char chosen_len = 0;
  if (SSL_select_next_proto(&chosen, &chosen_len, reinterpret_cast<const unsigned char*>(ours.data()),
                            static_cast<unsigned>(ours.size()), in, inlen) == OPENSSL_NPN_NEGOTIATED) {
    *out = chosen;
    *outlen = chosen_len;
    return SSL_TLSEXT_ERR_OK;
  }
  // A client offering only protocols we do not list (a browser's "http/1.1" on a plain MQTT
  // port, say) still gets its connection: ALPN is a hint here, not a gate.
  return SSL_TLSEXT_ERR_NOACK;
}

int new_client_session(SSL* ssl, SSL_SESSION* session) {
  auto* impl = static_cast<TlsContext::Impl*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  if (impl == nullptr) return 0;
  impl->keep_session(session);
  return 1;  // we took the reference
}

bool fail(std::string& error, std::string what) {
  std::string detail = take_ssl_errors();
  error = std::move(what);
  if (!detail.empty()) error += " (" + detail + ")";
  return false;
}

using CtxPtr = std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)>;

// A context with what both sides share; null and `error` on failure.
CtxPtr new_context(const SSL_METHOD* method, const std::string& min, const std::string& max,
                   const std::string& ciphers, const std::string& suites, const std::string& groups,
                   std::string& error) {
  ERR_clear_error();
  CtxPtr ctx(SSL_CTX_new(method), SSL_CTX_free);
  auto bad = [&](std::string what) {
    fail(error, std::move(what));
    return CtxPtr(nullptr, SSL_CTX_free);
  };
  if (!ctx) return bad("cannot create a TLS context");
  const int lo = version_of(min.empty() ? "1.2" : min);
  if (lo == 0) return bad("tls.min_version must be \"1.2\" or \"1.3\", got \"" + min + "\"");
  SSL_CTX_set_min_proto_version(ctx.get(), lo);
  if (!max.empty()) {
    const int hi = version_of(max);
    if (hi == 0) return bad("TLS max version must be \"1.2\" or \"1.3\"");
    SSL_CTX_set_max_proto_version(ctx.get(), hi);
  }
  if (SSL_CTX_set_cipher_list(ctx.get(), ciphers.empty() ? kDefaultCiphers : ciphers.c_str()) != 1)
    return bad("tls.ciphers: no usable cipher in \"" + ciphers + "\"");
  if (!suites.empty() && SSL_CTX_set_ciphersuites(ctx.get(), suites.c_str()) != 1)
    return bad("tls.ciphersuites: no usable suite in \"" + suites + "\"");
  if (SSL_CTX_set1_groups_list(ctx.get(), groups.empty() ? kDefaultGroups : groups.c_str()) != 1)
    return bad("tls.groups: unknown group in \"" + groups + "\"");
  // Renegotiation and compression have only ever been attack surface; a connection that is
  // idle must not keep OpenSSL's 17 KiB read and write buffers (the engine's own rule).
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  return ctx;
}

// A build step that failed: `error` says why; the context is freed by its CtxPtr.
SSL_CTX* refuse(std::string& error, std::string what) {
  fail(error, std::move(what));
  return nullptr;
}

}  // namespace

std::string take_ssl_errors() {
  std::string out;
  char buf[256];
  while (unsigned long e = ERR_get_error()) {
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

SSL_CTX* build_server_ctx(const TlsServerSettings& s, TlsContext::Impl& impl, std::string& error) {
  CtxPtr owned = new_context(TLS_server_method(), s.min_version, {}, s.ciphers, s.ciphersuites,
                             s.groups, error);
  if (!owned) return nullptr;
  SSL_CTX* ctx = owned.get();
  auto bad = [&](std::string what) { return refuse(error, std::move(what)); };
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  // The traffic secrets for the engine's own TLS 1.3 record layer (tls_records.h); they
  // go to the connection's TlsRecords, nowhere else.
  if (s.own_record_layer) SSL_CTX_set_keylog_callback(ctx, net::capture_traffic_secret);
  if (s.cert_file.empty() || s.key_file.empty()) return bad("tls.cert_file and tls.key_file are both needed");
  if (SSL_CTX_use_certificate_chain_file(ctx, s.cert_file.c_str()) != 1)
    return bad("tls.cert_file " + s.cert_file + ": cannot load a PEM certificate chain");
  if (SSL_CTX_use_PrivateKey_file(ctx, s.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    return bad("tls.key_file " + s.key_file + ": cannot load a PEM private key");
  if (SSL_CTX_check_private_key(ctx) != 1)
    return bad("tls.key_file " + s.key_file + " does not match tls.cert_file " + s.cert_file);
  if (!s.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, s.ca_file.c_str(), nullptr) != 1)
      return bad("tls.ca_file " + s.ca_file + ": cannot load PEM CA certificates");
    // The CA names go into the CertificateRequest so clients pick the right certificate.
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(s.ca_file.c_str()))
      SSL_CTX_set_client_CA_list(ctx, names);
  }
  if (!s.crl_file.empty()) {
    if (s.ca_file.empty()) return bad("tls.crl_file needs tls.ca_file");
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    X509_LOOKUP* lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
    if (lookup == nullptr || X509_load_crl_file(lookup, s.crl_file.c_str(), X509_FILETYPE_PEM) < 1)
      return bad("tls.crl_file " + s.crl_file + ": cannot load a PEM CRL");
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
  }
  if (s.require_client_cert || s.request_client_cert) {
    if (s.ca_file.empty()) return bad("a client certificate needs tls.ca_file to verify it against");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (s.require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                       nullptr);
  }
  // Resumption by tickets only: a server-side cache would hold a session per client.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  static const unsigned char kSidContext[] = "tcpms";
  SSL_CTX_set_session_id_context(ctx, kSidContext, sizeof kSidContext - 1);
  if (s.session_tickets) {
    SSL_CTX_set_tlsext_ticket_keys(ctx, impl.ticket_keys, sizeof impl.ticket_keys);
    SSL_CTX_set_timeout(ctx, s.session_lifetime_s);
    SSL_CTX_set_num_tickets(ctx, 1);  // one is enough to resume; each costs an encryption
  } else {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
  }
  if (!impl.alpn_wire.empty()) SSL_CTX_set_alpn_select_cb(ctx, select_alpn, &impl);
  SSL_CTX_set_app_data(ctx, &impl);
  return owned.release();
}

SSL_CTX* build_client_ctx(const TlsClientSettings& s, TlsContext::Impl& impl, std::string& error) {
  CtxPtr owned = new_context(TLS_client_method(), s.min_version, s.max_version, {}, {}, {}, error);
  if (!owned) return nullptr;
  SSL_CTX* ctx = owned.get();
  auto bad = [&](std::string what) { return refuse(error, std::move(what)); };
  if (!s.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, s.ca_file.c_str(), nullptr) != 1)
      return bad("CA file " + s.ca_file + ": cannot load");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
  if (!s.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, s.cert_file.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, (s.key_file.empty() ? s.cert_file : s.key_file).c_str(),
                                    SSL_FILETYPE_PEM) != 1) {
      return bad("client certificate " + s.cert_file + ": cannot load");
    }
  }
  if (!impl.alpn_wire.empty()) {
    SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(impl.alpn_wire.data()),
                            static_cast<unsigned>(impl.alpn_wire.size()));
  }
  if (s.resume) {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_client_session);
  }
  SSL_CTX_set_app_data(ctx, &impl);
  return owned.release();
}

TlsContext::Impl::~Impl() {
  if (last_session) SSL_SESSION_free(last_session);
  if (ctx) SSL_CTX_free(ctx);
}

SSL* TlsContext::Impl::new_ssl() {
  std::lock_guard lock(mu);
  SSL* ssl = SSL_new(ctx);  // takes its own reference on ctx: a reload cannot free it under us
  if (ssl == nullptr || server) return ssl;
  if (!client_settings.server_name.empty()) {
    SSL_set_tlsext_host_name(ssl, client_settings.server_name.c_str());
    if (!client_settings.ca_file.empty()) SSL_set1_host(ssl, client_settings.server_name.c_str());
  }
  if (last_session) SSL_set_session(ssl, last_session);
  return ssl;
}

void TlsContext::Impl::keep_session(SSL_SESSION* s) {
  std::lock_guard lock(mu);
  if (last_session) SSL_SESSION_free(last_session);
  last_session = s;
}

bool certificate_identity(SSL* ssl, const std::string& field, std::string& out) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return false;
  if (field == "san") {
    auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    bool found = false;
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && !found; ++i) {
      const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
      if (g->type == GEN_DNS || g->type == GEN_EMAIL || g->type == GEN_URI) {
        const ASN1_IA5STRING* s = g->d.ia5;
        out.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                   static_cast<size_t>(ASN1_STRING_length(s)));
        found = !out.empty() && out.find('\0') == std::string::npos;
      }
    }
    GENERAL_NAMES_free(names);
    return found;
  }
  X509_NAME* subject = X509_get_subject_name(cert);
  int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (at < 0) return false;
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at)));
  if (n <= 0) return false;
  out.assign(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return out.find('\0') == std::string::npos;  // an embedded NUL is an attack, not a name
}

TlsContext::TlsContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TlsContext::~TlsContext() = default;

std::shared_ptr<TlsContext> TlsContext::server(const TlsServerSettings& settings, std::string& error) {
  auto impl = std::make_unique<Impl>();
  impl->server = true;
  impl->server_settings = settings;
  impl->alpn_wire = alpn_wire(settings.alpn);
  if (settings.identity_as_username && !settings.require_client_cert) {
    error = "tls.identity_as_username needs tls.require_client_cert = true";
    return nullptr;
  }
  if (settings.identity_field != "cn" && settings.identity_field != "san") {
    error = "tls.identity_field must be \"cn\" or \"san\", got \"" + settings.identity_field + "\"";
    return nullptr;
  }
  if (RAND_bytes(impl->ticket_keys, sizeof impl->ticket_keys) != 1) {
    error = "cannot make session ticket keys: " + take_ssl_errors();
    return nullptr;
  }
  impl->ctx = build_server_ctx(settings, *impl, error);
  if (impl->ctx == nullptr) return nullptr;
  return std::shared_ptr<TlsContext>(new TlsContext(std::move(impl)));
}

std::shared_ptr<TlsContext> TlsContext::client(const TlsClientSettings& settings, std::string& error) {
  auto impl = std::make_unique<Impl>();
  impl->server = false;
  impl->client_settings = settings;
  impl->alpn_wire = alpn_wire(settings.alpn);
  impl->ctx = build_client_ctx(settings, *impl, error);
  if (impl->ctx == nullptr) return nullptr;
  return std::shared_ptr<TlsContext>(new TlsContext(std::move(impl)));
}

std::string TlsContext::reload() {
  if (!impl_->server) return {};
  std::string error;
  SSL_CTX* fresh = build_server_ctx(impl_->server_settings, *impl_, error);
  if (fresh == nullptr) return error;
  SSL_CTX* old;
  {
    std::lock_guard lock(impl_->mu);
    old = impl_->ctx;
    impl_->ctx = fresh;
  }
  SSL_CTX_free(old);  // connections made from it hold their own references
  return {};
}

bool TlsContext::is_server() const noexcept { return impl_->server; }
const TlsServerSettings& TlsContext::server_settings() const noexcept { return impl_->server_settings; }

}  // namespace tcpms
