// What a TLS 1.3 server connection keeps once OpenSSL's `SSL` is freed after the handshake:
// the traffic keys of both directions (src/proto/tls13) and, on a listener that takes
// certificate identities as user names, that identity. About 250 bytes where the `SSL` was
// about 14 KB (docs/transports.md, "TLS memory").
//
// How the keys get here. During the handshake this object hangs off the `SSL` (its app data):
// - OpenSSL's key-log callback hands over the two application traffic secrets as it derives
//   them (capture_traffic_secret), the one public way OpenSSL 3.0 shows them;
// - the engine's BIO counts the records the server writes in the handshake call that
//   completes (count_written): they are the session tickets, sealed with the application
//   key, so their number is where our write sequence starts. The client's first
//   application record is its sequence 0: OpenSSL reads no further than the client's
//   Finished (no read-ahead), which it checks (SSL_has_pending) before letting go.
// Then the engine derives keys (take_over), frees the `SSL`, and seals and opens records
// itself.
#pragma once

#include <openssl/ssl.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "handover/handover_frame.h"
#include "net/pending_input.h"
#include "tls13/record.h"

namespace tcpms::net {

struct TlsRecords {
  tls13::Suite suite = tls13::Suite::kNone;
  tls13::TrafficKeys read;   // the client's application traffic
  tls13::TrafficKeys write;  // ours
  // A record an earlier read cut short (null otherwise, so null while idle).
  PendingInput* partial = nullptr;
  // The certificate identity, taken before the `SSL` goes (identity_as_username listeners;
  // empty when the certificate has none).
  std::string identity;

  // Handshake-time only.
  uint8_t secrets_seen = 0;         // kClientSecret | kServerSecret
  uint8_t header_have = 0;          // bytes of a record header cut between two BIO writes
  uint8_t header[5] = {};
  uint32_t body_left = 0;           // bytes of the current written record still to come
  uint32_t records_written = 0;     // records whose header was written since the last reset
  uint8_t secret_len = 0;           // of the secrets captured into read.secret, write.secret

  static constexpr uint8_t kClientSecret = 1;
  static constexpr uint8_t kServerSecret = 2;
};

// Owns a TlsRecords: deletes it and the partial record it may hold.
struct TlsRecordsDelete {
  void operator()(TlsRecords* r) const noexcept;
};
using TlsRecordsPtr = std::unique_ptr<TlsRecords, TlsRecordsDelete>;

// OpenSSL's key-log callback (SSL_CTX_set_keylog_callback), on server contexts: keeps the
// application traffic secrets in the connection's TlsRecords, if it has one.
void capture_traffic_secret(const SSL* ssl, const char* line);

// The TlsRecords an `SSL` carries; null for none, or for no `SSL`. The `SSL`'s app data owns
// it from the handshake's start (transport.cc) until detach_records takes it back: freed then
// if the handshake did not finish or the connection stays with OpenSSL, else the transport's.
TlsRecords* records_of(const SSL* ssl);
TlsRecordsPtr detach_records(SSL* ssl);

// Counts the records that start in `bytes`, which the server is writing (a BIO write may hold
// several records, or part of one).
void count_written(TlsRecords& r, const std::byte* bytes, size_t n);

// After the handshake: true and the keys installed when the connection can leave OpenSSL
// (TLS 1.3, one of the three suites, both secrets seen, nothing buffered inside the `SSL`).
// The caller then detaches `r` from the `SSL` and frees the `SSL`.
bool take_over(SSL* ssl, TlsRecords& r);

// The upgrade handover (docs/upgrade.md): the records' state as it travels to the process
// replacing this one, and back into a TlsRecords there (keys derived again from the secrets;
// false for a state no TLS 1.3 suite of ours could have). The traffic secrets leave this
// process only over the handover's Unix socket, to a process of the same user.
handover::TlsState export_records(const TlsRecords& r);
bool import_records(const handover::TlsState& s, TlsRecords& r);

}  // namespace tcpms::net
