// Routing frames: every kind survives encode -> decode; anything malformed, truncated or of
// another version decodes to nothing (frames come from other processes: untrusted).
#include <gtest/gtest.h>

#include <random>

#include "routing/frame.h"

namespace tcpms::routing {
namespace {

std::vector<Frame> samples() {
  static const std::string image = "TSI-image-bytes";
  static const std::byte bitmap[4] = {std::byte{1}, std::byte{0}, std::byte{0x80}, std::byte{7}};
  static const std::string changes("\x05\x00\x00\x80\x09\x00\x00\x00", 8);
  static const std::string shapes("\x03\x01\x00\x00\x00\x00\x00\x00", 8);
  static std::string relay;
  if (relay.empty()) {
    append_relay_entry(relay, 3, as_bytes(std::string_view("frame-a")));
    append_relay_entry(relay, 7, as_bytes(std::string_view("bb")));
  }
  MessageView m;
  m.qos = mqtt::QoS::k2;
  m.retain = true;
  m.expiry_left_ms = 1234;
  m.topic = "a/b";
  m.props = as_bytes(std::string_view("\x01\x01", 2));
  m.payload = as_bytes(std::string_view("payload"));
  // Frames hold views: what they point at must outlive the returned vector.
  static const std::string pushed = encode_message_body(m);
  return {
      Hello{0x1122334455667788ull, 4096, 3},
      Publish{m},
      InterestSnapshot{32, 0, ShapeList{as_bytes(shapes)}, ByteView(bitmap, 4)},
      InterestDelta{4096, kInterestOverflow, ShapeList{as_bytes(shapes)}, as_bytes(changes)},
      ClaimRequest{7, ClaimRequest::kPersistent, "client-1"},
      ClaimAnswer{7, 99, 3, 98, ClaimAnswer::kImageComing},
      Surrender{7, 2, 98, Surrender::kWantImage, "client-1"},
      SessionImage{7, SessionImage::kHasImage, "client-1", as_bytes(image)},
      Release{99, "client-1"},
      Register{99, "client-1"},
      ById{8, 1, ByIdOp::kPush, 1, "client-2", as_bytes(pushed)},
      Reply{8, ReplyStatus::kNoSuchClient, {}},
      Query{9, QueryWhat::kRetained, {}},
      QueryAnswer{9, 0, as_bytes(std::string_view("body"))},
      SharedGroup{true, "g1", "jobs/+"},
      SharedDeliver{1, "g1", "jobs/+", m},
      InterestRelay{as_bytes(relay), 2},
      DurablePublish{0x0102030405060708ull, 0, {}, {}, m},
      DurablePublish{9, 2, "g1", "jobs/+", m},
      InterestMark{0xA1A2A3A4A5A6A7A8ull},
      InterestApplied{42},
      DrainMark{0xC0FFEE01u},
  };
}

TEST(RoutingFrame, EveryKindRoundTrips) {
  for (const Frame& f : samples()) {
    const std::string bytes = encode(f);
    auto d = decode(as_bytes(bytes));
    ASSERT_TRUE(d.has_value()) << "kind " << f.index() + 1;
    EXPECT_EQ(d->index(), f.index());
    EXPECT_EQ(encode(*d), bytes) << "kind " << f.index() + 1;  // same bytes again
    EXPECT_EQ(*peek_kind(as_bytes(bytes)), static_cast<FrameKind>(f.index() + 1));
  }
}

TEST(RoutingFrame, RelayEntriesComeBackWhole) {
  std::string entries;
  append_relay_entry(entries, 5, as_bytes(std::string_view("one")));
  append_relay_entry(entries, 9, as_bytes(std::string_view("")));
  const std::string bytes = encode(InterestRelay{as_bytes(entries), 2});
  auto d = decode(as_bytes(bytes));  // views into `bytes`
  ASSERT_TRUE(d.has_value());
  std::vector<std::pair<PeerId, std::string>> got;
  std::get<InterestRelay>(*d).for_each(
      [&](const InterestRelay::Entry& e) { got.emplace_back(e.origin, std::string(as_chars(e.frame))); });
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], (std::pair<PeerId, std::string>{5, "one"}));
  EXPECT_EQ(got[1], (std::pair<PeerId, std::string>{9, ""}));
  // A count that promises more entries than there are does not decode.
  EXPECT_FALSE(decode(as_bytes(encode(InterestRelay{as_bytes(entries), 3}))).has_value());
}

TEST(RoutingFrame, MessageFieldsSurvive) {
  broker::Message m;
  m.topic = SharedBytes::copy_of(as_bytes("t/1"));
  m.payload = SharedBytes::copy_of(as_bytes("xyz"));
  m.qos = mqtt::QoS::k1;
  m.retain = true;
  m.props.expires_at_ms = 10'000;
  const std::string bytes = encode(Publish{view_of(m, 4'000)});  // 6 s left
  auto d = decode(as_bytes(bytes));
  ASSERT_TRUE(d.has_value());
  broker::Message back = message_of(std::get<Publish>(*d).message, 100'000);
  EXPECT_EQ(as_chars(back.topic.view()), "t/1");
  EXPECT_EQ(as_chars(back.payload.view()), "xyz");
  EXPECT_EQ(back.qos, mqtt::QoS::k1);
  EXPECT_TRUE(back.retain);
  EXPECT_EQ(back.props.expires_at_ms, 106'000u);  // the time left, counted from arrival
}

TEST(RoutingFrame, RefusesMalformedInput) {
  for (const Frame& f : samples()) {
    const std::string bytes = encode(f);
    for (size_t n = 0; n < bytes.size(); ++n) {
      auto d = decode(as_bytes(std::string_view(bytes).substr(0, n)));
      // A prefix can only decode when the frame ends with a "rest" field that may be shorter.
      if (d) EXPECT_EQ(d->index(), f.index());
    }
    std::string longer = bytes + "x";
    auto d = decode(as_bytes(longer));
    if (d) EXPECT_EQ(d->index(), f.index()) << "trailing bytes only where a rest field takes them";
  }
  std::string wrong_version = encode(Hello{1, 2, 3});
  wrong_version[0] = 2;
  EXPECT_FALSE(decode(as_bytes(wrong_version)).has_value());
  std::string unknown_kind = encode(Hello{1, 2, 3});
  unknown_kind[1] = static_cast<char>(200);
  EXPECT_FALSE(decode(as_bytes(unknown_kind)).has_value());
  MessageView m;
  m.topic = "t";
  m.qos = mqtt::QoS::k1;
  std::string qos3 = encode(Publish{m});
  qos3[2] = 3;  // QoS 3
  EXPECT_FALSE(decode(as_bytes(qos3)).has_value());
  m.topic = "";
  EXPECT_FALSE(decode(as_bytes(encode(Publish{m}))).has_value()) << "empty topic";
}

TEST(RoutingFrame, RandomBytesNeverCrash) {
  std::mt19937 rng(5);
  for (const Frame& f : samples()) {
    const std::string good = encode(f);
    for (int i = 0; i < 2000; ++i) {
      std::string b = good;
      for (int k = 0; k < 1 + static_cast<int>(rng() % 3); ++k) b[rng() % b.size()] = static_cast<char>(rng());
      if (rng() % 2) b.resize(rng() % (b.size() + 1));
      auto d = decode(as_bytes(b));
      if (d) encode(*d);  // whatever decodes encodes again
    }
  }
}

}  // namespace
}  // namespace tcpms::routing
