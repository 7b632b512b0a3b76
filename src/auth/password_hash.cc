#include "auth/password_hash.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <charconv>

#include "auth/base64.h"

namespace tcpms::auth {
namespace {

constexpr size_t kMinSaltBytes = 8;
constexpr size_t kMaxSaltBytes = 64;

bool sha512_salted(std::string_view password, const std::vector<uint8_t>& salt, Digest& out) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) return false;
  unsigned int len = 0;
  bool ok = EVP_DigestInit_ex(ctx, EVP_sha512(), nullptr) == 1 &&
            EVP_DigestUpdate(ctx, password.data(), password.size()) == 1 &&
            EVP_DigestUpdate(ctx, salt.data(), salt.size()) == 1 &&
            EVP_DigestFinal_ex(ctx, out.data(), &len) == 1 && len == out.size();
  EVP_MD_CTX_free(ctx);
  return ok;
}

// Splits "a$b$c" at every '$'.
std::vector<std::string_view> split_dollar(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t pos = s.find('$', start);
    out.push_back(s.substr(start, pos == std::string_view::npos ? pos : pos - start));
    if (pos == std::string_view::npos) return out;
    start = pos + 1;
  }
}

}  // namespace

bool pbkdf2_sha512(std::string_view password, const std::vector<uint8_t>& salt,
                   uint32_t iterations, Digest& out) {
  if (iterations == 0 || iterations > kMaxIterations) return false;
  return PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt.data(),
                           static_cast<int>(salt.size()), static_cast<int>(iterations),
                           EVP_sha512(), static_cast<int>(out.size()), out.data()) == 1;
}

Result<PasswordHash> parse_password_hash(std::string_view text) {
  using R = Result<PasswordHash>;
  // "$7$it$salt$hash" splits into "", "7", it, salt, hash; "$6$salt$hash" into "", "6", salt, hash.
  auto f = split_dollar(text);
  PasswordHash h;
  std::string_view salt_b64, digest_b64;
  if (f.size() == 5 && f[0].empty() && f[1] == "7") {
    h.scheme = HashScheme::kPbkdf2Sha512;
    auto [end, ec] = std::from_chars(f[2].data(), f[2].data() + f[2].size(), h.iterations);
    if (ec != std::errc() || end != f[2].data() + f[2].size() || f[2].empty())
      return R::fail("iteration count is not a number");
    if (h.iterations == 0 || h.iterations > kMaxIterations)
      return R::fail("iteration count out of range 1.." + std::to_string(kMaxIterations));
    salt_b64 = f[3];
    digest_b64 = f[4];
  } else if (f.size() == 4 && f[0].empty() && f[1] == "6") {
    h.scheme = HashScheme::kSha512;
    salt_b64 = f[2];
    digest_b64 = f[3];
  } else if (f.size() >= 2 && f[0].empty() && (f[1] == "7" || f[1] == "6")) {
    return R::fail(f[1] == "7" ? "malformed hash (expected $7$ITERATIONS$SALT$HASH)"
                               : "malformed hash (expected $6$SALT$HASH)");
  } else if (f.size() >= 2 && f[0].empty()) {
    return R::fail("unsupported hash type '$" + std::string(f[1].substr(0, 8)) +
                   "$' (expected $7$ PBKDF2-SHA512 or $6$ SHA-512)");
  } else {
    return R::fail("not a hashed password (expected $7$ or $6$; hash plain-text passwords "
                   "with tcpms-passwd)");
  }
  auto salt = base64_decode(salt_b64);
  if (!salt) return R::fail("salt is not valid base64");
  if (salt->size() < kMinSaltBytes || salt->size() > kMaxSaltBytes)
    return R::fail("salt must be " + std::to_string(kMinSaltBytes) + ".." +
                   std::to_string(kMaxSaltBytes) + " bytes");
  auto digest = base64_decode(digest_b64);
  if (!digest) return R::fail("hash is not valid base64");
  if (digest->size() != kDigestBytes) return R::fail("hash must be 64 bytes (SHA-512)");
  h.salt = std::move(*salt);
  std::copy(digest->begin(), digest->end(), h.digest.begin());
  return R::ok(std::move(h));
}

std::string format_password_hash(const PasswordHash& hash) {
  std::string out = hash.scheme == HashScheme::kPbkdf2Sha512
                        ? "$7$" + std::to_string(hash.iterations) + "$"
                        : std::string("$6$");
  out += base64_encode(hash.salt);
  out += '$';
  out += base64_encode(hash.digest);
  return out;
}

Result<PasswordHash> make_password_hash(std::string_view password, uint32_t iterations) {
  using R = Result<PasswordHash>;
  if (iterations == 0 || iterations > kMaxIterations)
    return R::fail("iteration count out of range 1.." + std::to_string(kMaxIterations));
  PasswordHash h;
  h.scheme = HashScheme::kPbkdf2Sha512;
  h.iterations = iterations;
  h.salt.resize(kSaltBytes);
  if (RAND_bytes(h.salt.data(), static_cast<int>(h.salt.size())) != 1)
    return R::fail("OpenSSL RAND_bytes failed");
  if (!pbkdf2_sha512(password, h.salt, iterations, h.digest))
    return R::fail("OpenSSL PBKDF2 failed");
  return R::ok(std::move(h));
}

bool verify_password(const PasswordHash& hash, std::string_view password) {
  Digest d{};
  bool ok = hash.scheme == HashScheme::kPbkdf2Sha512
                ? pbkdf2_sha512(password, hash.salt, hash.iterations, d)
                : sha512_salted(password, hash.salt, d);
  bool same = CRYPTO_memcmp(d.data(), hash.digest.data(), d.size()) == 0;
  OPENSSL_cleanse(d.data(), d.size());
  return ok && same;
}

}  // namespace tcpms::auth
