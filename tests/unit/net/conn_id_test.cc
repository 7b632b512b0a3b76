// ConnId: the encoding, and the generation rule that makes an id kept past its connection's
// close a counted no-op, even after the slot is reused.
#include "tcpms/conn_id.h"

#include <gtest/gtest.h>

#include "loop_fixture.h"

namespace tcpms::testing {
namespace {

TEST(ConnId, PacksLoopSlotAndGeneration) {
  ConnId id = ConnId::make(1023, ConnId::kMaxSlots - 2, 0xfffffffeu);
  EXPECT_EQ(id.loop(), 1023u);
  EXPECT_EQ(id.slot(), ConnId::kMaxSlots - 2);
  EXPECT_EQ(id.generation(), 0xfffffffeu);
  EXPECT_TRUE(id.valid());
  EXPECT_FALSE(ConnId{}.valid());
  ConnId other = ConnId::make(1023, ConnId::kMaxSlots - 2, 0xffffffffu);
  EXPECT_NE(id, other);
  EXPECT_NE(std::hash<ConnId>{}(id), std::hash<ConnId>{}(other));
  ConnId small = ConnId::make(3, 5, 1);
  EXPECT_EQ(small.loop(), 3u);
  EXPECT_EQ(small.slot(), 5u);
  EXPECT_EQ(small.generation(), 1u);
}

TEST(ConnIdGenerations, StaleIdIsACountedNoOpAndTheSlotComesBackWithANewGeneration) {
  LoopThread lt;
  uint16_t port = 0;
  auto* h = lt.serve(port);
  lt.start();

  UniqueFd a = connect_client(port);
  ASSERT_TRUE(eventually([&] { return h->opened == 1; }));
  ConnId first = h->id(0);
  EXPECT_TRUE(lt.call([&] { return lt.loop().find(first) != nullptr; }));
  EXPECT_EQ(first.generation(), 1u);

  a.reset();  // the peer goes away; the engine closes its side
  ASSERT_TRUE(eventually([&] { return h->closed == 1; }));
  EXPECT_EQ(h->reason(0), CloseReason::kPeerClosed);

  EXPECT_EQ(lt.loop().stats().stale_ids.get(), 0u);
  EXPECT_TRUE(lt.call([&] {
    return lt.loop().find(first) == nullptr && !lt.loop().send_to(first, as_bytes("x")) &&
           !lt.loop().close(first, CloseReason::kKicked);
  }));
  EXPECT_EQ(lt.loop().stats().stale_ids.get(), 2u) << "send_to and close on a stale id are counted";

  // The next connection reuses the slot with the next generation.
  UniqueFd b = connect_client(port);
  ASSERT_TRUE(eventually([&] { return h->opened == 2; }));
  ConnId second = h->id(1);
  EXPECT_EQ(second.slot(), first.slot());
  EXPECT_EQ(second.generation(), first.generation() + 1);
  EXPECT_NE(second, first);

  // The old id still names nothing: its bytes must not reach the new connection.
  EXPECT_FALSE(lt.call([&] { return lt.loop().send_to(first, as_bytes("stale")); }));
  EXPECT_TRUE(lt.call([&] { return lt.loop().send_to(second, as_bytes("fresh")); }));
  EXPECT_EQ(recv_exactly(b.get(), 5), "fresh");
  EXPECT_EQ(lt.loop().stats().stale_ids.get(), 3u);
  timeval short_wait{0, 200000};
  ::setsockopt(b.get(), SOL_SOCKET, SO_RCVTIMEO, &short_wait, sizeof short_wait);
  EXPECT_LT(recv_some(b.get()), 0) << "nothing else may arrive on the new connection";

  EXPECT_TRUE(lt.call([&] { return lt.loop().close(second, CloseReason::kKicked); }));
  timeval long_wait{10, 0};
  ::setsockopt(b.get(), SOL_SOCKET, SO_RCVTIMEO, &long_wait, sizeof long_wait);
  EXPECT_EQ(recv_some(b.get()), 0) << "a kicked connection sees EOF";
  ASSERT_TRUE(eventually([&] { return h->closed == 2; }));
  EXPECT_EQ(h->reason(1), CloseReason::kKicked);
  EXPECT_FALSE(lt.call([&] { return lt.loop().close(second, CloseReason::kKicked); }));
  EXPECT_EQ(lt.call([&] { return lt.loop().connection_count(); }), 0u);
}

}  // namespace
}  // namespace tcpms::testing
