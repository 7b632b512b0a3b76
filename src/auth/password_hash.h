// Salted password hashes in Mosquitto's formats:
//   $7$ITERATIONS$SALT_B64$HASH_B64   PBKDF2-HMAC-SHA512 (mosquitto_passwd's default since 2.0)
//   $6$SALT_B64$HASH_B64              SHA512(password || salt) (Mosquitto 1.x; read, never written)
// PBKDF2 is OpenSSL's PKCS5_PBKDF2_HMAC; digests are compared with CRYPTO_memcmp.
//
// Hashing is slow by design (about 0.5 us per iteration here): verify_password() and
// make_password_hash() belong on a worker thread, never on a loop thread.
// Thread rules: pure functions on immutable inputs, callable from any thread concurrently.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "auth/result.h"

namespace tcpms::auth {

enum class HashScheme : uint8_t {
  kPbkdf2Sha512,  // $7$
  kSha512,        // $6$ (legacy: a single SHA-512, fast to brute-force; re-hash these users)
};

// 20,000 iterations cost about 10 ms per CONNECT per core (see docs/auth.md for the trade-off
// against reconnect storms; OWASP suggests 210,000). Mosquitto's own default is 101.
inline constexpr uint32_t kDefaultIterations = 20'000;
// Bounds for files we read: an absurd count in a file must not stall the worker pool.
inline constexpr uint32_t kMaxIterations = 10'000'000;
inline constexpr size_t kSaltBytes = 12;  // as mosquitto_passwd writes
inline constexpr size_t kDigestBytes = 64;

using Digest = std::array<uint8_t, kDigestBytes>;

struct PasswordHash {
  HashScheme scheme = HashScheme::kPbkdf2Sha512;
  uint32_t iterations = 0;  // kPbkdf2Sha512 only
  std::vector<uint8_t> salt;
  Digest digest{};
};

// Parses "$7$..." or "$6$..."; the error says what is wrong (never echoes the hash).
Result<PasswordHash> parse_password_hash(std::string_view text);
std::string format_password_hash(const PasswordHash& hash);

// A new random salt (RAND_bytes) and the digest of `password`, scheme $7$.
Result<PasswordHash> make_password_hash(std::string_view password,
                                        uint32_t iterations = kDefaultIterations);

// Constant-time digest comparison. False as well if OpenSSL fails (fail closed).
bool verify_password(const PasswordHash& hash, std::string_view password);

// PBKDF2-HMAC-SHA512 with a 64-byte output; false if OpenSSL fails.
bool pbkdf2_sha512(std::string_view password, const std::vector<uint8_t>& salt,
                   uint32_t iterations, Digest& out);

}  // namespace tcpms::auth
