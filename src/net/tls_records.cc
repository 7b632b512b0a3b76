#include "net/tls_records.h"

#include <algorithm>
#include <cstring>
#include <string_view>
#include <utility>

namespace tcpms::net {
namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes `hex` into `out` (at most out_len bytes); the decoded length, 0 when malformed.
size_t from_hex(std::string_view hex, std::byte* out, size_t out_len) {
  if (hex.size() % 2 != 0 || hex.size() / 2 > out_len) return 0;
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);
    if (hi < 0 || lo < 0) return 0;
    out[i / 2] = static_cast<std::byte>(hi << 4 | lo);
  }
  return hex.size() / 2;
}

// A partial record records_input could have kept: shorter than the record its header names,
// with a header it accepts. It takes from the next read only the bytes the record lacks, so a
// longer one would make it take a negative count.
bool incomplete_record(std::string_view partial) noexcept {
  if (partial.empty()) return true;
  if (partial.size() >= tls13::kMaxRecordBytes) return false;
  const tls13::Header h = tls13::parse_header(as_bytes(partial));
  if (h.status == tls13::Header::kNeedMore) return true;
  return h.status == tls13::Header::kOk && partial.size() < h.record_bytes;
}

}  // namespace

void TlsRecordsDelete::operator()(TlsRecords* r) const noexcept {
  pending_free(r->partial);
  delete r;
}

TlsRecords* records_of(const SSL* ssl) {
  return ssl ? static_cast<TlsRecords*>(SSL_get_app_data(ssl)) : nullptr;
}

TlsRecordsPtr detach_records(SSL* ssl) {
  TlsRecordsPtr r(records_of(ssl));
  if (r) SSL_set_app_data(ssl, nullptr);
  return r;
}

void capture_traffic_secret(const SSL* ssl, const char* line) {
  TlsRecords* r = records_of(ssl);
  if (r == nullptr) return;
  // "LABEL <client random, hex> <secret, hex>" (the NSS key log format).
  std::string_view text(line);
  const size_t first = text.find(' ');
  const size_t second = first == std::string_view::npos ? first : text.find(' ', first + 1);
  if (second == std::string_view::npos) return;
  const std::string_view label = text.substr(0, first);
  const std::string_view secret = text.substr(second + 1);
  tls13::TrafficKeys* into = nullptr;
  uint8_t bit = 0;
  if (label == "CLIENT_TRAFFIC_SECRET_0") {
    into = &r->read;
    bit = TlsRecords::kClientSecret;
  } else if (label == "SERVER_TRAFFIC_SECRET_0") {
    into = &r->write;
    bit = TlsRecords::kServerSecret;
  } else {
    return;  // handshake and exporter secrets: not needed
  }
  const size_t n = from_hex(secret, into->secret.data(), into->secret.size());
  if (n == 0 || (r->secret_len != 0 && r->secret_len != n)) return;
  r->secret_len = static_cast<uint8_t>(n);
  r->secrets_seen |= bit;
}

void count_written(TlsRecords& r, const std::byte* bytes, size_t n) {
  while (n > 0) {
    if (r.body_left > 0) {
      const size_t take = std::min<size_t>(n, r.body_left);
      r.body_left -= static_cast<uint32_t>(take);
      bytes += take;
      n -= take;
      continue;
    }
    const size_t take = std::min<size_t>(n, sizeof r.header - r.header_have);
    std::memcpy(r.header + r.header_have, bytes, take);
    r.header_have = static_cast<uint8_t>(r.header_have + take);
    bytes += take;
    n -= take;
    if (r.header_have == sizeof r.header) {
      r.body_left = static_cast<uint32_t>(r.header[3]) << 8 | r.header[4];
      r.header_have = 0;
      ++r.records_written;
    }
  }
}

bool take_over(SSL* ssl, TlsRecords& r) {
  if (SSL_version(ssl) != TLS1_3_VERSION) return false;
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl);
  if (cipher == nullptr) return false;
  const tls13::Suite suite = tls13::suite_from_id(SSL_CIPHER_get_protocol_id(cipher));
  if (suite == tls13::Suite::kNone) return false;
  constexpr uint8_t kBoth = TlsRecords::kClientSecret | TlsRecords::kServerSecret;
  if (r.secrets_seen != kBoth || r.secret_len != tls13::secret_bytes(suite)) return false;
  // Anything OpenSSL read but did not hand out would be lost; a record half written would
  // make our count wrong. Neither happens with the engine's BIO; checked all the same.
  if (SSL_has_pending(ssl) || r.body_left != 0 || r.header_have != 0) return false;
  const uint32_t tickets = r.records_written;
  const tls13::Bytes client(r.read.secret.data(), r.secret_len);
  const tls13::Bytes server(r.write.secret.data(), r.secret_len);
  if (!tls13::install(suite, client, r.read) || !tls13::install(suite, server, r.write)) return false;
  r.write.seq = tickets;
  r.suite = suite;
  return true;
}

handover::TlsState export_records(const TlsRecords& r) {
  handover::TlsState s;
  s.suite = static_cast<uint8_t>(r.suite);
  s.secret_length = static_cast<uint8_t>(tls13::secret_bytes(r.suite));
  for (auto [from, to] : {std::pair{&r.read, &s.read}, std::pair{&r.write, &s.write}}) {
    std::memcpy(to->secret.data(), from->secret.data(), s.secret_length);
    to->seq = from->seq;
  }
  s.identity = r.identity;
  if (r.partial != nullptr) s.partial.assign(reinterpret_cast<const char*>(r.partial->data()), r.partial->size);
  return s;
}

bool import_records(const handover::TlsState& s, TlsRecords& r) {
  const auto suite = static_cast<tls13::Suite>(s.suite);
  if (s.suite > static_cast<uint8_t>(tls13::Suite::kChaCha20Poly1305Sha256) ||
      s.secret_length != tls13::secret_bytes(suite))
    return false;
  for (auto [from, to] : {std::pair{&s.read, &r.read}, std::pair{&s.write, &r.write}}) {
    const tls13::Bytes secret(reinterpret_cast<const std::byte*>(from->secret.data()), s.secret_length);
    if (!tls13::install(suite, secret, *to)) return false;
    to->seq = from->seq;
  }
  r.suite = suite;
  r.secret_len = s.secret_length;
  r.identity = s.identity;
  if (!incomplete_record(s.partial)) return false;
  return s.partial.empty() ||
         pending_append(r.partial, as_bytes(std::string_view(s.partial)), tls13::kMaxRecordBytes);
}

}  // namespace tcpms::net
