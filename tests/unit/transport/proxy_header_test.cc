// PROXY protocol headers: the examples of HAProxy's spec (v1 text, v2 binary) and refusals.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>
#include <vector>

#include "proxy/proxy_header.h"

namespace tcpms::proxy {
namespace {

std::string address(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(a->sin_port));
  }
  auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
  ::inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
  return "[" + std::string(buf) + "]:" + std::to_string(ntohs(a->sin6_port));
}

Result parse(std::string_view s) { return proxy::parse(as_bytes(s)); }

TEST(ProxyHeader, V1Tcp4) {
  std::string h = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
  Result r = parse(h + "GET /");
  ASSERT_EQ(r.status, Status::kComplete) << r.error;
  EXPECT_EQ(r.header.size, h.size());
  EXPECT_EQ(r.header.version, 1);
  EXPECT_TRUE(r.header.has_addresses);
  EXPECT_EQ(address(r.header.source), "192.168.0.1:56324");
  EXPECT_EQ(address(r.header.destination), "192.168.0.11:443");
  for (size_t n = 0; n < h.size(); ++n) EXPECT_EQ(parse(h.substr(0, n)).status, Status::kNeedMore) << n;
}

TEST(ProxyHeader, V1Tcp6AndUnknown) {
  Result r = parse("PROXY TCP6 2001:db8::1 2001:db8::2 4000 1883\r\n");
  ASSERT_EQ(r.status, Status::kComplete) << r.error;
  EXPECT_EQ(address(r.header.source), "[2001:db8::1]:4000");
  r = parse("PROXY UNKNOWN ffff:f...f:ffff 65535 65535\r\n");
  ASSERT_EQ(r.status, Status::kComplete);
  EXPECT_FALSE(r.header.has_addresses);
  r = parse("PROXY UNKNOWN\r\n");
  ASSERT_EQ(r.status, Status::kComplete);
}

TEST(ProxyHeader, V1Refusals) {
  for (const char* h : {
           "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",          // no CR
           "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",        // protocol
           "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",          // 4 fields
           "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",      // 6 fields
           "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",       // double space
           "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",    // port range
           "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",       // leading zero
           "PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n",    // family mismatch
           "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
           "PROXZ TCP4",                                 // prefix
           "\x10\x0c\x00\x04MQTT",                       // an MQTT CONNECT: no header
       }) {
    EXPECT_EQ(parse(h).status, Status::kError) << h;
  }
  EXPECT_EQ(parse(std::string("PROXY TCP4 ") + std::string(200, '1')).status, Status::kError);
}

std::vector<unsigned char> v2(unsigned char ver_cmd, unsigned char fam, std::vector<unsigned char> body) {
  std::vector<unsigned char> out(kV2Signature, kV2Signature + kV2SignatureBytes);
  out.push_back(ver_cmd);
  out.push_back(fam);
  out.push_back(static_cast<unsigned char>(body.size() >> 8));
  out.push_back(static_cast<unsigned char>(body.size()));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

Result parse(const std::vector<unsigned char>& v) {
  return proxy::parse(ByteView(reinterpret_cast<const std::byte*>(v.data()), v.size()));
}

TEST(ProxyHeader, V2Inet) {
  auto h = v2(0x21, 0x11, {192, 0, 2, 1, 198, 51, 100, 7, 0xDB, 0xF0, 0x07, 0x5B,
                           0x01, 0x00, 0x02, 'h', '2'});  // and an ALPN TLV
  Result r = parse(h);
  ASSERT_EQ(r.status, Status::kComplete) << r.error;
  EXPECT_EQ(r.header.size, h.size());
  EXPECT_EQ(address(r.header.source), "192.0.2.1:56304");
  EXPECT_EQ(address(r.header.destination), "198.51.100.7:1883");
  for (size_t n = 0; n < h.size(); ++n) {
    std::vector<unsigned char> part(h.begin(), h.begin() + static_cast<long>(n));
    EXPECT_EQ(parse(part).status, Status::kNeedMore) << n;
  }
}

TEST(ProxyHeader, V2LocalAndUnspecKeepTheRealAddress) {
  Result r = parse(v2(0x20, 0x00, {}));
  ASSERT_EQ(r.status, Status::kComplete);
  EXPECT_FALSE(r.header.has_addresses);
  r = parse(v2(0x21, 0x00, {1, 2, 3}));
  ASSERT_EQ(r.status, Status::kComplete);
  EXPECT_FALSE(r.header.has_addresses);
}

TEST(ProxyHeader, V2Refusals) {
  EXPECT_EQ(parse(v2(0x11, 0x11, std::vector<unsigned char>(12))).status, Status::kError);  // v1 nibble
  EXPECT_EQ(parse(v2(0x22, 0x11, std::vector<unsigned char>(12))).status, Status::kError);  // command
  EXPECT_EQ(parse(v2(0x21, 0x12, std::vector<unsigned char>(12))).status, Status::kError);  // datagram
  EXPECT_EQ(parse(v2(0x21, 0x11, std::vector<unsigned char>(8))).status, Status::kError);   // short
  EXPECT_EQ(parse(v2(0x21, 0x21, std::vector<unsigned char>(20))).status, Status::kError);  // v6 short
  auto tlv = std::vector<unsigned char>(12);
  tlv.insert(tlv.end(), {0x01, 0x00, 0x09, 'x'});  // TLV longer than the header
  EXPECT_EQ(parse(v2(0x21, 0x11, tlv)).status, Status::kError);
  auto big = v2(0x21, 0x11, {});
  big[14] = 0xFF;  // declares 65,280 bytes: over the cap, refused before they arrive
  EXPECT_EQ(parse(big).status, Status::kError);
  std::vector<unsigned char> bad_sig(kV2Signature, kV2Signature + 5);
  bad_sig.push_back(0x00);
  EXPECT_EQ(parse(bad_sig).status, Status::kError);
}

TEST(ProxyHeader, EncodersRoundTrip) {
  sockaddr_storage s{}, d{};
  auto* a = reinterpret_cast<sockaddr_in6*>(&s);
  auto* b = reinterpret_cast<sockaddr_in6*>(&d);
  a->sin6_family = b->sin6_family = AF_INET6;
  ::inet_pton(AF_INET6, "2001:db8::5", &a->sin6_addr);
  ::inet_pton(AF_INET6, "::1", &b->sin6_addr);
  a->sin6_port = htons(1234);
  b->sin6_port = htons(1883);
  std::byte out[kMaxHeaderBytes];
  for (int version : {1, 2}) {
    size_t n = version == 1 ? encode_v1(s, d, out) : encode_v2(s, d, out);
    Result r = proxy::parse(ByteView(out, n));
    ASSERT_EQ(r.status, Status::kComplete) << version;
    EXPECT_EQ(r.header.size, n);
    EXPECT_EQ(address(r.header.source), "[2001:db8::5]:1234");
    EXPECT_EQ(address(r.header.destination), "[::1]:1883");
  }
}

}  // namespace
}  // namespace tcpms::proxy
