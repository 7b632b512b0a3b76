// WebSocket frames: the examples of RFC 6455 section 5.7 and the rules of section 5.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "websocket/frame.h"

namespace tcpms::ws {
namespace {

std::vector<std::byte> bytes(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (int b : v) out.push_back(static_cast<std::byte>(b));
  return out;
}

std::string text(MutableByteView v) { return std::string(reinterpret_cast<const char*>(v.data()), v.size()); }

TEST(WebSocketFrame, Rfc6455UnmaskedTextHeader) {
  auto f = bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f});
  HeaderResult h = decode_header(f, false);
  ASSERT_EQ(h.status, Status::kComplete);
  EXPECT_TRUE(h.header.fin);
  EXPECT_EQ(h.header.opcode, Opcode::kText);
  EXPECT_FALSE(h.header.masked);
  EXPECT_EQ(h.header.payload_size, 5u);
  EXPECT_EQ(h.header.header_size, 2u);
}

TEST(WebSocketFrame, Rfc6455MaskedPongUnmasksToHello) {
  // "Unmasked Ping request and masked Ping response" (section 5.7).
  auto f = bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
  ReceiverState st;
  Step s = receive(st, f, true, 0);
  ASSERT_EQ(s.kind, Step::kControl);
  EXPECT_EQ(s.opcode, Opcode::kPong);
  EXPECT_EQ(text(s.payload), "Hello");
  EXPECT_EQ(s.consumed, f.size());
}

TEST(WebSocketFrame, MaskedTextIsRefusedWith1003) {
  auto f = bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
  ReceiverState st;
  Step s = receive(st, f, true, 0);
  ASSERT_EQ(s.kind, Step::kError);
  EXPECT_EQ(s.error, CloseCode::kUnsupportedData);
}

TEST(WebSocketFrame, ExtendedLengths) {
  auto f16 = bytes({0x82, 0x7E, 0x01, 0x00});
  HeaderResult h = decode_header(f16, false);
  ASSERT_EQ(h.status, Status::kComplete);
  EXPECT_EQ(h.header.payload_size, 256u);
  EXPECT_EQ(h.header.header_size, 4u);
  auto f64 = bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0});
  h = decode_header(f64, false);
  ASSERT_EQ(h.status, Status::kComplete);
  EXPECT_EQ(h.header.payload_size, 65536u);
  EXPECT_EQ(h.header.header_size, 10u);
  // Every prefix of a header asks for more.
  for (size_t n = 0; n < f64.size(); ++n) {
    EXPECT_EQ(decode_header(ByteView(f64.data(), n), false).status, Status::kNeedMore) << n;
  }
}

TEST(WebSocketFrame, ProtocolErrors) {
  struct Case {
    std::vector<std::byte> frame;
    bool masked;
    CloseCode code;
  } cases[] = {
      {bytes({0xC2, 0x00}), false, CloseCode::kProtocolError},            // RSV1 without extension
      {bytes({0x83, 0x00}), false, CloseCode::kProtocolError},            // reserved opcode 3
      {bytes({0x8B, 0x00}), false, CloseCode::kProtocolError},            // reserved control 0xB
      {bytes({0x09, 0x00}), false, CloseCode::kProtocolError},            // fragmented ping
      {bytes({0x89, 0x7E, 0x00, 0x7E}), false, CloseCode::kProtocolError},  // ping over 125
      {bytes({0x82, 0x7E, 0x00, 0x10}), false, CloseCode::kProtocolError},  // 16 as 16-bit
      {bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF}), false, CloseCode::kProtocolError},
      {bytes({0x82, 0x7F, 0x80, 0, 0, 0, 0, 1, 0, 0}), false, CloseCode::kProtocolError},
      {bytes({0x82, 0x00}), true, CloseCode::kProtocolError},   // client frame not masked
      {bytes({0x82, 0x80, 1, 2, 3, 4}), false, CloseCode::kProtocolError},  // server masked
  };
  for (const auto& c : cases) {
    HeaderResult h = decode_header(c.frame, c.masked);
    EXPECT_EQ(h.status, Status::kError) << h.what;
    EXPECT_EQ(h.error, c.code);
  }
}

TEST(WebSocketFrame, EncodeHeaderRoundTripsAndIsShortest) {
  for (uint64_t size : {0ull, 1ull, 125ull, 126ull, 65535ull, 65536ull, 1ull << 40}) {
    for (bool masked : {false, true}) {
      std::byte out[kMaxHeaderBytes];
      const uint8_t mask[4] = {1, 2, 3, 4};
      size_t n = encode_header(out, Opcode::kBinary, true, size, masked ? mask : nullptr);
      HeaderResult h = decode_header(ByteView(out, n), masked);
      ASSERT_EQ(h.status, Status::kComplete) << size;
      EXPECT_EQ(h.header.payload_size, size);
      EXPECT_EQ(h.header.header_size, n);
      EXPECT_EQ(n, (size < 126 ? 2u : size <= 65535 ? 4u : 10u) + (masked ? 4u : 0u));
    }
  }
}

TEST(WebSocketFrame, MaskAtAnyOffsetMatchesBytewise) {
  const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
  std::vector<std::byte> data(100), want(100);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i * 7);
  for (size_t offset = 0; offset < 4; ++offset) {
    for (size_t len : {0u, 1u, 7u, 8u, 9u, 63u, 100u}) {
      auto got = data;
      apply_mask(got.data(), len, mask, offset);
      for (size_t i = 0; i < len; ++i)
        ASSERT_EQ(got[i], data[i] ^ static_cast<std::byte>(mask[(offset + i) & 3]));
    }
  }
}

// A masked binary message sent in two fragments with a ping between them, fed one byte at a
// time: the payload comes out whole and in order, the ping whole.
TEST(WebSocketFrame, FragmentsWithPingBetweenAnySplit) {
  const uint8_t mask[4] = {9, 8, 7, 6};
  std::vector<std::byte> wire;
  auto frame = [&](Opcode op, bool fin, std::string payload) {
    std::byte h[kMaxHeaderBytes];
    size_t n = encode_header(h, op, fin, payload.size(), mask);
    wire.insert(wire.end(), h, h + n);
    std::vector<std::byte> p(payload.size());
    std::memcpy(p.data(), payload.data(), payload.size());
    apply_mask(p.data(), p.size(), mask, 0);
    wire.insert(wire.end(), p.begin(), p.end());
  };
  frame(Opcode::kBinary, false, "MQTT-bytes-");
  frame(Opcode::kPing, true, "are-you-there");
  frame(Opcode::kContinuation, true, "rest");
  for (size_t chunk : {1u, 2u, 3u, 5u, 1000u}) {
    ReceiverState st;
    std::string data, pings;
    std::vector<std::byte> pending;
    for (size_t at = 0; at < wire.size(); at += chunk) {
      pending.insert(pending.end(), wire.begin() + at,
                     wire.begin() + std::min(wire.size(), at + chunk));
      size_t off = 0;
      for (;;) {
        Step s = receive(st, MutableByteView(pending).subspan(off), true, 0);
        ASSERT_NE(s.kind, Step::kError) << s.what;
        if (s.kind == Step::kNeedMore) break;
        if (s.kind == Step::kData) data += text(s.payload);
        if (s.kind == Step::kControl) pings += text(s.payload);
        off += s.consumed;
        if (off == pending.size()) break;
      }
      pending.erase(pending.begin(), pending.begin() + off);
    }
    EXPECT_EQ(data, "MQTT-bytes-rest") << chunk;
    EXPECT_EQ(pings, "are-you-there") << chunk;
    EXPECT_FALSE(st.in_message);
  }
}

TEST(WebSocketFrame, FragmentationRules) {
  ReceiverState st;
  auto cont = bytes({0x80, 0x80, 0, 0, 0, 0});
  Step s = receive(st, cont, true, 0);
  EXPECT_EQ(s.kind, Step::kError);  // continuation with no message open
  ReceiverState open;
  auto first = bytes({0x02, 0x80, 0, 0, 0, 0});
  ASSERT_EQ(receive(open, first, true, 0).kind, Step::kData);
  EXPECT_TRUE(open.in_message);
  auto again = bytes({0x82, 0x80, 0, 0, 0, 0});
  EXPECT_EQ(receive(open, again, true, 0).kind, Step::kError);  // new message inside one
}

TEST(WebSocketFrame, FrameSizeLimitIs1009) {
  ReceiverState st;
  auto f = bytes({0x82, 0xFE, 0x10, 0x00, 0, 0, 0, 0});
  Step s = receive(st, f, true, 1024);
  ASSERT_EQ(s.kind, Step::kError);
  EXPECT_EQ(s.error, CloseCode::kMessageTooBig);
}

TEST(WebSocketFrame, ClosePayloads) {
  EXPECT_TRUE(decode_close({}).ok);
  auto one = bytes({0x03});
  EXPECT_EQ(decode_close(one).error, CloseCode::kProtocolError);
  auto normal = bytes({0x03, 0xE8, 'b', 'y', 'e'});
  CloseResult c = decode_close(normal);
  ASSERT_TRUE(c.ok);
  EXPECT_EQ(c.close.code, 1000);
  EXPECT_EQ(c.close.reason, "bye");
  for (int code : {0, 999, 1004, 1005, 1006, 1012, 1015, 2999, 5000}) {
    auto f = bytes({code >> 8, code & 0xFF});
    EXPECT_FALSE(decode_close(f).ok) << code;
  }
  auto bad_utf8 = bytes({0x03, 0xE8, 0xC0, 0x80});
  EXPECT_EQ(decode_close(bad_utf8).error, CloseCode::kInvalidPayload);
  std::byte out[kMaxControlPayload];
  std::string long_reason(200, 'x');
  long_reason[122] = '\xC3';  // a two-byte character across the cut
  long_reason[123] = '\xA9';
  size_t n = encode_close(out, CloseCode::kProtocolError, long_reason);
  EXPECT_LE(n, kMaxControlPayload);
  EXPECT_TRUE(decode_close(ByteView(out, n)).ok);
}

TEST(WebSocketFrame, Utf8) {
  EXPECT_TRUE(valid_utf8("h\xC3\xA9llo \xF0\x9F\x98\x80"));
  EXPECT_FALSE(valid_utf8("\xED\xA0\x80"));  // surrogate
  EXPECT_FALSE(valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(valid_utf8("\xE0\x80\xAF"));  // overlong
  EXPECT_FALSE(valid_utf8("\xC3"));  // truncated
}

}  // namespace
}  // namespace tcpms::ws
