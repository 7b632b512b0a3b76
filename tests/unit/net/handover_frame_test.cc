// The upgrade handover's frames (src/proto/handover/handover_frame.h): round trips, version
// negotiation, and refusals of what another process could send wrong.
#include "handover/handover_frame.h"

#include <gtest/gtest.h>

namespace tcpms::net::handover {
namespace {

Frame round_trip(const Frame& f, uint16_t version = kHighestVersion) {
  std::string out;
  encode(f, out, version);
  LengthResult len = decode_length(as_bytes(out));
  EXPECT_EQ(len.error, nullptr);
  EXPECT_EQ(len.body_bytes + kLengthBytes, out.size());
  DecodeResult r = decode_body(as_bytes(out).subspan(kLengthBytes));
  EXPECT_TRUE(r.ok()) << r.error;
  return r.frame;
}

TEST(HandoverFrame, EveryKindRoundTrips) {
  Batch b;
  b.sequence = 7;
  ConnectionState c;
  c.old_id = 0x1234567890abcdefULL;
  c.handler = 2;
  c.idle_timeout_ms = 30000;
  c.flags = 1;
  c.unread_input = std::string("half a fr\0ame", 13);
  c.unsent_output = std::string(100000, 'x');
  c.protocol_state = "state";
  b.connections.push_back(c);
  b.connections.push_back(ConnectionState{});
  const Frame frames[] = {
      Hello{1, 1, 4242},
      Welcome{1, 99, 4, "echo"},
      Refuse{RefuseCode::kVersion, "no version in common"},
      Listeners{{{0, "127.0.0.1:7000"}, {1, "[::1]:7001"}}},
      Taken{3, {1, 0, 1}},
      b,
      Done{12},
  };
  for (const Frame& f : frames) EXPECT_EQ(round_trip(f), f);
}

TEST(HandoverFrame, DescriptorsTravelWithListenersAndBatches) {
  EXPECT_EQ(descriptors_of(Listeners{{{0, "a"}, {1, "b"}}}), 2u);
  Batch b;
  b.connections.resize(3);
  EXPECT_EQ(descriptors_of(b), 3u);
  EXPECT_EQ(descriptors_of(Hello{}), 0u);
}

TEST(HandoverFrame, NegotiatesTheHighestCommonVersion) {
  EXPECT_EQ(negotiate(Hello{1, 1, 0}), 1);
  EXPECT_EQ(negotiate(Hello{1, 9, 0}), kHighestVersion);  // a newer release that still speaks 1
  EXPECT_EQ(negotiate(Hello{kHighestVersion + 1, kHighestVersion + 3, 0}), 0);  // too new
}

TEST(HandoverFrame, HelloAndRefuseAreReadableByAnyRelease) {
  // A newer build would encode its other frames in its own version; these two stay at 1.
  std::string out;
  encode(Hello{kHighestVersion + 1, kHighestVersion + 5, 1}, out, kHighestVersion + 5);
  EXPECT_EQ(static_cast<uint8_t>(out[kLengthBytes]), 1);
  DecodeResult r = decode_body(as_bytes(out).subspan(kLengthBytes));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(negotiate(std::get<Hello>(r.frame)), 0);
  out.clear();
  encode(Refuse{RefuseCode::kVersion, "x"}, out, 9);
  EXPECT_EQ(static_cast<uint8_t>(out[kLengthBytes]), 1);
  // So a Hello or a Refuse in any other version is no frame a release sends: refused (the
  // fuzzer found one decoding, then re-encoding differently).
  out[kLengthBytes] = 2;
  EXPECT_STREQ(decode_body(as_bytes(out).subspan(kLengthBytes)).error,
               "Hello or Refuse in a version other than 1");
}

TEST(HandoverFrame, RefusesAnUnknownVersionBeforeReadingTheBody) {
  std::string out;
  encode(Done{1}, out, kHighestVersion + 1);
  DecodeResult r = decode_body(as_bytes(out).subspan(kLengthBytes));
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.version, kHighestVersion + 1);
  EXPECT_STREQ(r.error, "frame of a handover version this build does not speak");
}

TEST(HandoverFrame, RefusesBadInputClearly) {
  EXPECT_NE(decode_length(as_bytes(std::string_view("\x01\x00", 2))).error, nullptr);
  EXPECT_NE(decode_length(as_bytes(std::string_view("\x01\x00\x00\x00", 4))).error, nullptr);
  EXPECT_NE(decode_length(as_bytes(std::string_view("\xff\xff\xff\xff", 4))).error, nullptr);
  // Unknown kind.
  EXPECT_STREQ(decode_body(as_bytes(std::string_view("\x01\x63", 2))).error, "unknown frame kind");
  // A batch that claims a million connections in a few bytes: refused, nothing reserved.
  std::string forged("\x01\x06\x00\x00\x00\x00\x40\x42\x0f\x00", 10);
  EXPECT_FALSE(decode_body(as_bytes(forged)).ok());
  // Trailing bytes.
  std::string out;
  encode(Done{1}, out);
  out.push_back('z');
  EXPECT_STREQ(decode_body(as_bytes(out).subspan(kLengthBytes)).error,
               "bytes left over after the frame");
  // Every truncation of a valid batch is an error, never a crash.
  Batch b;
  b.connections.push_back(ConnectionState{1, 2, 3, 4, "in", "out", "state"});
  out.clear();
  encode(b, out);
  for (size_t n = kLengthBytes; n < out.size(); ++n)
    EXPECT_FALSE(decode_body(as_bytes(out).subspan(kLengthBytes, n - kLengthBytes)).ok()) << n;
}

TEST(HandoverFrame, StateRoundTripsFromVersion2AndIsRefusedInVersion1) {
  State st{9, {std::string("R\0x", 3), "", std::string(70000, 's')}};
  EXPECT_EQ(round_trip(st, 2), Frame(st));
  std::string out;
  encode(st, out, 1);
  EXPECT_STREQ(decode_body(as_bytes(out).subspan(kLengthBytes)).error,
               "frame kind State in handover version 1");
  std::string forged;
  encode(State{1, {"a"}}, forged, 2);
  forged[kLengthBytes + 2 + 4] = '\xff';  // a count the body cannot hold
  EXPECT_FALSE(decode_body(as_bytes(forged).subspan(kLengthBytes)).ok());
}

TEST(HandoverFrame, WorkersRoundTripFromVersion3WithOneDescriptorEach) {
  Workers w{4242, {0, 1, 2}};
  EXPECT_EQ(round_trip(w, 3), Frame(w));
  EXPECT_EQ(descriptors_of(w), 3u);
  EXPECT_EQ(round_trip(Workers{7, {}}, 3), Frame(Workers{7, {}}));
  std::string out;
  encode(w, out, 2);
  EXPECT_STREQ(decode_body(as_bytes(out).subspan(kLengthBytes)).error,
               "frame kind Workers before handover version 3");
  out.clear();
  encode(w, out, 3);
  for (size_t n = kLengthBytes; n < out.size(); ++n)
    EXPECT_FALSE(decode_body(as_bytes(out).subspan(kLengthBytes, n - kLengthBytes)).ok()) << n;
  out[kLengthBytes + 2 + 4] = '\xff';  // a count the body cannot hold
  EXPECT_FALSE(decode_body(as_bytes(out).subspan(kLengthBytes)).ok());
}

TEST(HandoverFrame, AConnectionsTransportTravelsFromVersion5AndIsLeftOutBefore) {
  Batch b;
  b.sequence = 2;
  ConnectionState c;
  c.old_id = 9;
  c.protocol_state = "state";
  TransportState t;
  t.listener = 3;
  t.has_peer = true;
  t.peer_family = 2;
  t.peer_port = 0x5000;
  t.peer_addr = {192, 0, 2, 7};
  c.transport = t;
  b.connections.push_back(c);
  b.connections.push_back(ConnectionState{});  // none
  EXPECT_EQ(round_trip(b, 5), Frame(b));
  // Version 4 has no room for it: the giver sends no such connection to such a successor.
  Batch without = b;
  without.connections[0].transport.reset();
  EXPECT_EQ(round_trip(b, 4), Frame(without));
  std::string out;
  encode(b, out, 5);
  for (size_t n = kLengthBytes; n < out.size(); ++n)
    EXPECT_FALSE(decode_body(as_bytes(out).subspan(kLengthBytes, n - kLengthBytes)).ok()) << n;
  // The presence byte of the first connection's transport: neither 0 nor 1.
  const size_t presence = kLengthBytes + 2 + 4 + 4 + 8 + 4 + 4 + 1 + 4 + 4 + 4 + c.protocol_state.size();
  ASSERT_EQ(out[presence], 1);
  out[presence] = 2;
  EXPECT_FALSE(decode_body(as_bytes(out).subspan(kLengthBytes)).ok());
}


TransportState framed_transport() {
  TransportState t;
  t.listener = 1;
  TlsState tls;
  tls.suite = 2;
  tls.secret_length = 48;
  for (size_t i = 0; i < 48; ++i) {
    tls.read.secret[i] = static_cast<uint8_t>(i);
    tls.write.secret[i] = static_cast<uint8_t>(200 - i);
  }
  tls.read.seq = 7;
  tls.write.seq = uint64_t{1} << 40;
  tls.identity = "device-17";
  tls.partial = std::string("\x17\x03\x03\x00\x20half", 9);
  t.tls = tls;
  WebSocketState ws;
  ws.payload_left = 300;
  ws.mask = {1, 2, 3, 4};
  ws.mask_offset = 3;
  ws.in_message = true;
  ws.in_frame = true;
  ws.masked = true;
  ws.stash = std::string("\x89\x85", 2);
  t.websocket = ws;
  return t;
}

TEST(HandoverFrame, TlsRecordsAndWebSocketFramingTravelFromVersion6AndAreLeftOutBefore) {
  Batch b;
  b.sequence = 3;
  ConnectionState c;
  c.old_id = 11;
  c.transport = framed_transport();
  b.connections.push_back(c);
  ConnectionState tls_only;
  tls_only.transport = framed_transport();
  tls_only.transport->websocket.reset();
  tls_only.transport->tls->secret_length = 32;
  for (size_t i = 32; i < 48; ++i) tls_only.transport->tls->read.secret[i] = tls_only.transport->tls->write.secret[i] = 0;
  b.connections.push_back(tls_only);
  ConnectionState ws_only;
  ws_only.transport = framed_transport();
  ws_only.transport->tls.reset();
  b.connections.push_back(ws_only);
  EXPECT_EQ(round_trip(b, 6), Frame(b));
  // Version 5 has no room for them: the giver sends no such connection to such a successor.
  Batch plain = b;
  for (auto& conn : plain.connections) {
    conn.transport->tls.reset();
    conn.transport->websocket.reset();
  }
  EXPECT_EQ(round_trip(b, 5), Frame(plain));
  std::string out;
  encode(b, out, 6);
  for (size_t n = kLengthBytes; n < out.size(); ++n)
    EXPECT_FALSE(decode_body(as_bytes(out).subspan(kLengthBytes, n - kLengthBytes)).ok()) << n;
}

// Each field a forged frame could get wrong, refused with the reason.
TEST(HandoverFrame, ForgedTlsAndWebSocketStatesAreRefused) {
  auto refused = [](auto&& change) {
    Batch b;
    ConnectionState c;
    c.transport = framed_transport();
    change(*c.transport);
    b.connections.push_back(c);
    std::string out;
    encode(b, out, 6);
    const DecodeResult r = decode_body(as_bytes(out).subspan(kLengthBytes));
    return r.ok() ? std::string() : std::string(r.error);
  };
  EXPECT_EQ(refused([](TransportState&) {}), "");
  EXPECT_EQ(refused([](TransportState& t) { t.tls->suite = 0; }), "batch: a tls state of an unknown suite");
  EXPECT_EQ(refused([](TransportState& t) { t.tls->suite = 4; }), "batch: a tls state of an unknown suite");
  EXPECT_EQ(refused([](TransportState& t) { t.tls->secret_length = 40; }),
            "batch: a tls secret neither 32 nor 48 bytes long");
  EXPECT_EQ(refused([](TransportState& t) { t.tls->partial.assign(kMaxPartialRecordBytes + 1, 'x'); }),
            "batch: a tls record cut short is longer than a record");
  EXPECT_EQ(refused([](TransportState& t) { t.tls->partial.assign(kMaxPartialRecordBytes, 'x'); }), "");
  EXPECT_EQ(refused([](TransportState& t) { t.websocket->mask_offset = 4; }),
            "batch: a websocket mask offset past the mask");
  EXPECT_EQ(refused([](TransportState& t) { t.websocket->stash.assign(kMaxWebSocketStashBytes + 1, 'x'); }),
            "batch: a websocket frame cut short is longer than a control frame");
  // Presence and flag bytes other than those the encoder writes.
  Batch b;
  ConnectionState c;
  c.transport = framed_transport();
  c.transport->tls.reset();
  c.transport->websocket->stash.clear();
  b.connections.push_back(c);
  std::string out;
  encode(b, out, 6);
  const size_t ws_flags = out.size() - 2 - 1;  // before the empty stash's length
  ASSERT_EQ(out[ws_flags], 7);
  out[ws_flags] = 8;
  EXPECT_STREQ(decode_body(as_bytes(out).subspan(kLengthBytes)).error, "batch: unknown websocket flags");
  out[ws_flags] = 7;
  const size_t tls_presence = ws_flags - 1 - 4 - 8 - 1 - 1;  // offset, mask, payload left, websocket presence
  ASSERT_EQ(out[tls_presence], 0);
  out[tls_presence] = 2;
  EXPECT_STREQ(decode_body(as_bytes(out).subspan(kLengthBytes)).error,
               "batch: a transport's tls flag is neither 0 nor 1");
}

}  // namespace
}  // namespace tcpms::net::handover
