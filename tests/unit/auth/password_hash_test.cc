// PBKDF2-HMAC-SHA512 known answers, base64, and the $7$/$6$ hash formats.
#include "auth/password_hash.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "auth/base64.h"

namespace tcpms::auth {
namespace {

std::string hex(const Digest& d) {
  std::string out;
  char buf[3];
  for (uint8_t b : d) {
    std::snprintf(buf, sizeof buf, "%02x", b);
    out += buf;
  }
  return out;
}

std::vector<uint8_t> bytes(std::string_view s) { return {s.begin(), s.end()}; }

// The published PBKDF2-HMAC-SHA512 vectors (RFC 6070's inputs with SHA-512).
TEST(Pbkdf2Sha512, KnownAnswers) {
  Digest d{};
  ASSERT_TRUE(pbkdf2_sha512("password", bytes("salt"), 1, d));
  EXPECT_EQ(hex(d),
            "867f70cf1ade02cff3752599a3a53dc4af34c7a669815ae5d513554e1c8cf252"
            "c02d470a285a0501bad999bfe943c08f050235d7d68b1da55e63f73b60a57fce");
  ASSERT_TRUE(pbkdf2_sha512("password", bytes("salt"), 2, d));
  EXPECT_EQ(hex(d),
            "e1d9c16aa681708a45f5c7c4e215ceb66e011a2e9f0040713f18aefdb866d53c"
            "f76cab2868a39b9f7840edce4fef5a82be67335c77a6068e04112754f27ccf4e");
  ASSERT_TRUE(pbkdf2_sha512("passwordPASSWORDpassword",
                            bytes("saltSALTsaltSALTsaltSALTsaltSALTsalt"), 4096, d));
  EXPECT_EQ(hex(d),
            "8c0511f4c6e597c6ac6315d8f0362e225f3c501495ba23b868c005174dc4ee71"
            "115b59f9e60cd9532fa33e0f75aefe30225c583a186cd82bd4daea9724a3d3b8");
}

TEST(Pbkdf2Sha512, RefusesZeroAndHugeIterations) {
  Digest d{};
  EXPECT_FALSE(pbkdf2_sha512("p", bytes("saltsalt"), 0, d));
  EXPECT_FALSE(pbkdf2_sha512("p", bytes("saltsalt"), kMaxIterations + 1, d));
}

TEST(Base64, RoundTripsEveryTailLength) {
  std::vector<uint8_t> data;
  for (int n = 0; n < 10; ++n) {
    auto decoded = base64_decode(base64_encode(data));
    ASSERT_TRUE(decoded) << n;
    EXPECT_EQ(*decoded, data);
    data.push_back(static_cast<uint8_t>(n * 37 + 200));
  }
  EXPECT_EQ(base64_encode(bytes("foob")), "Zm9vYg==");
  EXPECT_EQ(base64_encode(bytes("fooba")), "Zm9vYmE=");
  EXPECT_EQ(base64_encode(bytes("foobar")), "Zm9vYmFy");
}

TEST(Base64, RejectsNonCanonicalInput) {
  EXPECT_FALSE(base64_decode("Zm9vYg"));     // no padding
  EXPECT_FALSE(base64_decode("Zm9v Yg=="));  // whitespace
  EXPECT_FALSE(base64_decode("Zm=vYg=="));   // '=' inside
  EXPECT_FALSE(base64_decode("Zm9vYg=a"));
  EXPECT_FALSE(base64_decode("Zm9v*g=="));
  EXPECT_TRUE(base64_decode(""));
}

TEST(PasswordHash, MakeFormatParseVerify) {
  auto h = make_password_hash("s3cret", 1000);
  ASSERT_TRUE(h) << h.error();
  EXPECT_EQ(h->scheme, HashScheme::kPbkdf2Sha512);
  EXPECT_EQ(h->salt.size(), kSaltBytes);
  std::string text = format_password_hash(*h);
  EXPECT_EQ(text.rfind("$7$1000$", 0), 0u) << text;
  auto back = parse_password_hash(text);
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(format_password_hash(*back), text);
  EXPECT_TRUE(verify_password(*back, "s3cret"));
  EXPECT_FALSE(verify_password(*back, "s3cre"));
  EXPECT_FALSE(verify_password(*back, "s3cret "));
  EXPECT_FALSE(verify_password(*back, ""));
}

TEST(PasswordHash, SaltsDiffer) {
  auto a = make_password_hash("same", 1000);
  auto b = make_password_hash("same", 1000);
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->salt, b->salt);
  EXPECT_NE(a->digest, b->digest);
}

TEST(PasswordHash, ParsesMosquittoLines) {
  // From mosquitto_passwd 2.0.11 (fixtures/mosquitto_passwd.txt).
  auto h = parse_password_hash(
      "$7$101$oB7eC0XaQTia4s5W$av6p559LB8OAQRUdQfXxPc2O/fmhdR63SY3mzrOc6HpHFU7YFpZNB08RH+L6rmIw"
      "Kg2UJrrTorGFY55P8Sv/4A==");
  ASSERT_TRUE(h) << h.error();
  EXPECT_EQ(h->iterations, 101u);
  EXPECT_TRUE(verify_password(*h, "correct horse"));
  EXPECT_FALSE(verify_password(*h, "correct horsE"));
  auto legacy = parse_password_hash(
      "$6$jZZGgJn7BWUCoRHz$m0uCgGbAlTW0exeI93f6AROTXvk9vD5O11QE1qIYZoPgrGI2l8PHedmXKC4CZRJri4zN"
      "xHV7HBRbfhwkhA5C/A==");
  ASSERT_TRUE(legacy) << legacy.error();
  EXPECT_EQ(legacy->scheme, HashScheme::kSha512);
  EXPECT_TRUE(verify_password(*legacy, "legacy pass"));
  EXPECT_FALSE(verify_password(*legacy, "legacy"));
}

TEST(PasswordHash, ParseErrorsSayWhy) {
  const std::string salt = "AAAAAAAAAAAAAAAA";  // 12 bytes
  const std::string digest = base64_encode(Digest{});
  auto why = [](std::string_view text) { return parse_password_hash(text).error(); };
  EXPECT_NE(why("plaintext").find("not a hashed password"), std::string::npos);
  EXPECT_NE(why("$1$abc$def").find("unsupported hash type '$1$'"), std::string::npos);
  EXPECT_NE(why("$7$x$" + salt + "$" + digest).find("not a number"), std::string::npos);
  EXPECT_NE(why("$7$0$" + salt + "$" + digest).find("out of range"), std::string::npos);
  EXPECT_NE(why("$7$99999999$" + salt + "$" + digest).find("out of range"), std::string::npos);
  EXPECT_NE(why("$7$10$" + salt + "!$" + digest).find("salt is not valid"), std::string::npos);
  EXPECT_NE(why("$7$10$AAAA$" + digest).find("salt must be"), std::string::npos);
  EXPECT_NE(why("$7$10$" + salt + "$AAAA").find("64 bytes"), std::string::npos);
  EXPECT_NE(why("$7$10$" + salt + "$" + digest + "$x").find("malformed"), std::string::npos);
  EXPECT_TRUE(parse_password_hash("$7$10$" + salt + "$" + digest));
}

}  // namespace
}  // namespace tcpms::auth
