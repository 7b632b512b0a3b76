#include <gtest/gtest.h>

#include "store/sync_policy.h"

namespace tcpms::store {
namespace {

TEST(SyncPolicyTest, Parses) {
  std::string e;
  EXPECT_EQ(parse_sync_policy("every-message", e), (SyncPolicy{SyncMode::kEveryMessage, 0}));
  EXPECT_EQ(parse_sync_policy("off", e), (SyncPolicy{SyncMode::kOff, 0}));
  EXPECT_EQ(parse_sync_policy("50ms", e), (SyncPolicy{SyncMode::kInterval, 50}));
  EXPECT_EQ(parse_sync_policy("2s", e), (SyncPolicy{SyncMode::kInterval, 2000}));
  for (const char* bad : {"", "0ms", "61s", "50", "ms", "fast", "-5ms", "5 ms"}) {
    e.clear();
    EXPECT_FALSE(parse_sync_policy(bad, e)) << bad;
    EXPECT_NE(e.find("every-message"), std::string::npos);
  }
  EXPECT_EQ(to_string(SyncPolicy{SyncMode::kInterval, 50}), "50ms");
}

TEST(SyncPolicyTest, CommitWindow) {
  EXPECT_EQ((SyncPolicy{SyncMode::kEveryMessage, 0}).commit_window_ms(), 0u);
  EXPECT_EQ((SyncPolicy{SyncMode::kInterval, 2}).commit_window_ms(), 2u);
  EXPECT_EQ((SyncPolicy{SyncMode::kInterval, 50}).commit_window_ms(), 5u);
  EXPECT_EQ((SyncPolicy{SyncMode::kOff, 0}).commit_window_ms(), 5u);
}

}  // namespace
}  // namespace tcpms::store
