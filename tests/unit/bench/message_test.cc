// The echo message format and failure-cause names of tcpms-bench.
#include "message.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <vector>

#include "driver_base.h"

namespace tcpms::benchapp {
namespace {

TEST(Message, RoundTripsAndChecksEveryByte) {
  std::vector<std::byte> m(64);
  write_message(m, 42, 7, 123456789);
  auto t = check_message(m, 42, 7);
  ASSERT_TRUE(t);
  EXPECT_EQ(*t, 123456789u);
  EXPECT_FALSE(check_message(m, 43, 7));  // another connection's message
  EXPECT_FALSE(check_message(m, 42, 8));  // out of order
  for (size_t i = kMessageHeaderBytes; i < m.size(); ++i) {
    auto bad = m;
    bad[i] ^= std::byte{1};
    EXPECT_FALSE(check_message(bad, 42, 7)) << "byte " << i;
  }
  EXPECT_FALSE(check_message(ByteView(m).first(kMessageHeaderBytes - 1), 42, 7));
}

TEST(Message, PatternDiffersBetweenMessages) {
  std::vector<std::byte> a(32), b(32);
  write_message(a, 1, 1, 0);
  write_message(b, 1, 2, 0);
  EXPECT_NE(std::vector<std::byte>(a.begin() + kMessageHeaderBytes, a.end()),
            std::vector<std::byte>(b.begin() + kMessageHeaderBytes, b.end()));
}

TEST(FailureCause, ErrnoNames) {
  EXPECT_EQ(errno_cause(ECONNREFUSED), "ECONNREFUSED");
  EXPECT_EQ(errno_cause(EADDRNOTAVAIL), "EADDRNOTAVAIL");
  EXPECT_EQ(errno_cause(100000), "errno_100000");
  EXPECT_EQ(close_cause(CloseReason::kConnectFailed, ECONNREFUSED), "ECONNREFUSED");
  EXPECT_EQ(close_cause(CloseReason::kPeerReset, 0), "ECONNRESET");
  EXPECT_EQ(close_cause(CloseReason::kPeerClosed, 0), "closed_by_server");
}

}  // namespace
}  // namespace tcpms::benchapp
