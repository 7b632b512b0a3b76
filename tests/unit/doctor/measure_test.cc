#include "doctor/measure.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace tcpms::doctor {
namespace {

std::size_t open_fds() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

TEST(Measure, RealLoopbackPairsCloseEverything) {
  const std::size_t before = open_fds();
  Measurement m = measure_kernel_bytes_per_socket_pair(500, 1);
  EXPECT_EQ(open_fds(), before);  // every socket and the listener closed
  if (!m.ok()) GTEST_SKIP() << "no figure on this host: " << m.error;
  EXPECT_EQ(m.pairs, 500);
  EXPECT_EQ(m.rounds, 1);
  EXPECT_EQ(m.bytes_per_socket, m.bytes_per_pair / 2);
  // A TCP socket costs the kernel more than its ~2 KiB sock and far less than 64 KiB.
  EXPECT_GT(m.bytes_per_socket, 1000U);
  EXPECT_LT(m.bytes_per_socket, 65536U);
  EXPECT_TRUE(m.source == "slabinfo" || m.source == "meminfo");
}

TEST(Measure, PairsAreBounded) {
  Measurement m = measure_kernel_bytes_per_socket_pair(1'000'000, 1);
  if (m.ok()) {
    EXPECT_LE(m.pairs, kMaxMeasurePairs);
  }
}

}  // namespace
}  // namespace tcpms::doctor
