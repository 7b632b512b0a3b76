// The TLS 1.3 record codec (src/proto/tls13): traffic keys against RFC 8448's trace, sealing
// and opening for each suite, and the checks a record must pass (header, tag, sequence,
// inner type, post-handshake messages).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tls13/record.h"

namespace tcpms::tls13 {
namespace {

std::vector<std::byte> hex(const std::string& h) {
  std::vector<std::byte> out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<std::byte>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return out;
}

std::vector<std::byte> key_of(const TrafficKeys& k, Suite s) {
  return {k.key.begin(), k.key.begin() + static_cast<long>(key_bytes(s))};
}

TEST(Tls13Record, TrafficKeysMatchRfc8448) {
  // RFC 8448 section 3, "Simple 1-RTT Handshake": the application traffic secrets and the
  // keys and IVs derived from them.
  TrafficKeys server, client;
  const auto s_ap = hex("a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643");
  const auto c_ap = hex("9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5");
  ASSERT_TRUE(install(Suite::kAes128GcmSha256, s_ap, server));
  ASSERT_TRUE(install(Suite::kAes128GcmSha256, c_ap, client));
  EXPECT_EQ(key_of(server, Suite::kAes128GcmSha256), hex("9f02283b6c9c07efc26bb9f2ac92e356"));
  EXPECT_EQ(std::vector<std::byte>(server.iv.begin(), server.iv.end()), hex("cf782b88dd83549aadf1e984"));
  EXPECT_EQ(key_of(client, Suite::kAes128GcmSha256), hex("17422dda596ed5d9acd890e3c63f5051"));
  EXPECT_EQ(std::vector<std::byte>(client.iv.begin(), client.iv.end()), hex("5b78923dee08579033e523d9"));
  EXPECT_FALSE(install(Suite::kAes256GcmSha384, s_ap, server)) << "a 32-byte secret for a SHA-384 suite";
  EXPECT_FALSE(install(Suite::kNone, s_ap, server));
}

class EachSuite : public ::testing::TestWithParam<Suite> {};

TEST_P(EachSuite, SealedRecordsOpenInOrderAndOnlyInOrder) {
  const Suite s = GetParam();
  std::vector<std::byte> secret(secret_bytes(s), std::byte{7});
  TrafficKeys writer, reader;
  ASSERT_TRUE(install(s, secret, writer));
  ASSERT_TRUE(install(s, secret, reader));
  Aead aead;
  for (size_t size : {size_t{0}, size_t{1}, size_t{100}, kMaxPlaintext}) {
    std::vector<std::byte> plain(size);
    for (size_t i = 0; i < size; ++i) plain[i] = static_cast<std::byte>(i * 31);
    std::vector<std::byte> rec(size + kSealOverhead);
    const size_t n = aead.seal(s, writer, ContentType::kApplicationData, plain, rec.data());
    ASSERT_EQ(n, size + kSealOverhead);
    const Header h = parse_header(rec);
    ASSERT_EQ(h.status, Header::kOk);
    ASSERT_EQ(h.record_bytes, n);
    const Aead::Opened o = aead.open(s, reader, rec);
    ASSERT_TRUE(o.ok) << size;
    const Inner in = split_inner(o.plaintext);
    ASSERT_TRUE(in.ok);
    EXPECT_EQ(in.type, ContentType::kApplicationData);
    EXPECT_EQ(std::vector<std::byte>(in.content.begin(), in.content.end()), plain);
  }
  // A record opened with the wrong sequence number (replayed, dropped, reordered) fails.
  std::vector<std::byte> rec(10 + kSealOverhead);
  ASSERT_NE(aead.seal(s, writer, ContentType::kApplicationData, std::vector<std::byte>(10), rec.data()), 0u);
  ++reader.seq;
  auto copy = rec;
  EXPECT_FALSE(aead.open(s, reader, copy).ok);
  --reader.seq;
  // One flipped bit anywhere, header included (it is the additional data), fails.
  for (size_t at : {size_t{3}, size_t{6}, rec.size() - 1}) {
    auto bad = rec;
    bad[at] ^= std::byte{1};
    TrafficKeys r = reader;
    EXPECT_FALSE(aead.open(s, r, bad).ok) << at;
  }
  EXPECT_TRUE(aead.open(s, reader, rec).ok);
}

TEST_P(EachSuite, KeyUpdatesAgreeOnBothSidesAndChangeTheKey) {
  const Suite s = GetParam();
  std::vector<std::byte> secret(secret_bytes(s), std::byte{9});
  TrafficKeys a, b;
  ASSERT_TRUE(install(s, secret, a));
  ASSERT_TRUE(install(s, secret, b));
  a.seq = 41;
  const auto old_key = a.key;
  ASSERT_TRUE(update(s, a));
  ASSERT_TRUE(update(s, b));
  EXPECT_NE(a.key, old_key);
  EXPECT_EQ(a.key, b.key);
  EXPECT_EQ(a.iv, b.iv);
  EXPECT_EQ(a.seq, 0u) << "a new key starts its sequence at zero";
}

INSTANTIATE_TEST_SUITE_P(Suites, EachSuite,
                         ::testing::Values(Suite::kAes128GcmSha256, Suite::kAes256GcmSha384,
                                           Suite::kChaCha20Poly1305Sha256));

TEST(Tls13Record, SuitesByIanaId) {
  EXPECT_EQ(suite_from_id(0x1301), Suite::kAes128GcmSha256);
  EXPECT_EQ(suite_from_id(0x1302), Suite::kAes256GcmSha384);
  EXPECT_EQ(suite_from_id(0x1303), Suite::kChaCha20Poly1305Sha256);
  EXPECT_EQ(suite_from_id(0x1304), Suite::kNone) << "AES-128-CCM stays with OpenSSL";
}

TEST(Tls13Record, HeadersOtherThanProtectedRecordsAreErrors) {
  auto header = [](uint8_t type, uint16_t version, uint16_t len) {
    return std::vector<std::byte>{std::byte{type}, std::byte{static_cast<uint8_t>(version >> 8)},
                                  std::byte{static_cast<uint8_t>(version)},
                                  std::byte{static_cast<uint8_t>(len >> 8)}, std::byte{static_cast<uint8_t>(len)}};
  };
  EXPECT_EQ(parse_header(std::vector<std::byte>(4)).status, Header::kNeedMore);
  EXPECT_EQ(parse_header(header(23, 0x0303, 100)).status, Header::kOk);
  EXPECT_EQ(parse_header(header(23, 0x0303, 100)).record_bytes, 105u);
  const Header plaintext_alert = parse_header(header(21, 0x0303, 2));
  EXPECT_EQ(plaintext_alert.status, Header::kError);
  EXPECT_EQ(plaintext_alert.alert, AlertCode::kUnexpectedMessage);
  EXPECT_EQ(parse_header(header(20, 0x0303, 1)).alert, AlertCode::kUnexpectedMessage) << "CCS after Finished";
  EXPECT_EQ(parse_header(header(23, 0x0301, 100)).alert, AlertCode::kDecodeError);
  EXPECT_EQ(parse_header(header(23, 0x0303, kMaxCiphertext + 1)).alert, AlertCode::kRecordOverflow);
  EXPECT_EQ(parse_header(header(23, 0x0303, kMaxCiphertext)).status, Header::kOk);
  EXPECT_EQ(parse_header(header(23, 0x0303, 16)).alert, AlertCode::kBadRecordMac) << "shorter than a tag";
}

TEST(Tls13Record, InnerTypeComesAfterThePaddingIsGone) {
  std::vector<std::byte> p = {std::byte{'h'}, std::byte{'i'}, std::byte{23}, std::byte{0}, std::byte{0}};
  Inner in = split_inner(p);
  ASSERT_TRUE(in.ok);
  EXPECT_EQ(in.type, ContentType::kApplicationData);
  EXPECT_EQ(in.content.size(), 2u);
  std::vector<std::byte> zeros(20);
  EXPECT_FALSE(split_inner(zeros).ok) << "all padding, no type";
  std::vector<std::byte> only_type = {std::byte{21}};
  in = split_inner(only_type);
  ASSERT_TRUE(in.ok);
  EXPECT_EQ(in.type, ContentType::kAlert);
  EXPECT_TRUE(in.content.empty());
}

TEST(Tls13Record, OnlyAWholeKeyUpdateEndingItsRecordIsAccepted) {
  std::byte ku[kKeyUpdateBytes];
  encode_key_update(ku, true);
  PostHandshake p = parse_post_handshake(std::vector<std::byte>(ku, ku + kKeyUpdateBytes));
  EXPECT_TRUE(p.ok);
  EXPECT_TRUE(p.key_update);
  EXPECT_TRUE(p.update_requested);
  encode_key_update(ku, false);
  p = parse_post_handshake(std::vector<std::byte>(ku, ku + kKeyUpdateBytes));
  EXPECT_TRUE(p.ok && p.key_update && !p.update_requested);

  std::vector<std::byte> two(ku, ku + kKeyUpdateBytes);
  two.insert(two.end(), ku, ku + kKeyUpdateBytes);
  EXPECT_FALSE(parse_post_handshake(two).ok) << "a key change mid-record";
  EXPECT_FALSE(parse_post_handshake(std::vector<std::byte>(ku, ku + 3)).ok) << "cut";
  EXPECT_FALSE(parse_post_handshake({}).ok) << "empty handshake record";
  std::vector<std::byte> bad_value(ku, ku + kKeyUpdateBytes);
  bad_value[4] = std::byte{2};
  EXPECT_EQ(parse_post_handshake(bad_value).alert, AlertCode::kDecodeError);
  // A NewSessionTicket (type 4) or a ClientHello (1) from a client after the handshake.
  for (uint8_t type : {1, 4, 13}) {
    std::vector<std::byte> m = {std::byte{type}, std::byte{0}, std::byte{0}, std::byte{1}, std::byte{0}};
    const PostHandshake r = parse_post_handshake(m);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.alert, AlertCode::kUnexpectedMessage);
  }
}

}  // namespace
}  // namespace tcpms::tls13
