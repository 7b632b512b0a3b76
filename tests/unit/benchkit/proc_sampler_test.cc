#include "benchkit/proc_sampler.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace tcpms::bench {
namespace {

namespace fs = std::filesystem;

// A fake /proc: pid 100 (the server) with children 101 and 102, grandchild 103 under 102,
// and an unrelated 200. Clock ticks are 100 per second, so 1 tick = 10,000 us.
class FakeProc : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("benchkit_proc_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "net");
    add_process(100, 1, "tcpms-server", 250, 50, 10'000);
    add_process(101, 100, "worker (a) b)", 10, 5, 2'000);  // comm with spaces and ')'
    add_process(102, 100, "worker", 20, 10, 3'000);
    add_process(103, 102, "helper", 1, 1, 0);  // no VmRSS line, like a zombie
    add_process(200, 1, "other", 999, 999, 99'999);
    write("self/stat", "not a pid dir");
    write("meminfo",
          "MemTotal:       24000000 kB\nSlab:             512000 kB\n"
          "SReclaimable:     112000 kB\nSUnreclaim:       400000 kB\n");
    write("net/netstat",
          "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPHPHits\n"
          "TcpExt: 1 17 19 12345\n"
          "IpExt: InNoRoutes InOctets\n"
          "IpExt: 0 99\n");
  }
  void TearDown() override { fs::remove_all(root_); }

  void write(const std::string& relative, const std::string& text) {
    fs::create_directories((root_ / relative).parent_path());
    std::ofstream(root_ / relative) << text;
  }
  void add_process(int pid, int ppid, const std::string& comm, int utime, int stime,
                   int rss_kb) {
    // Fields 1..17 of proc(5) stat, then filler.
    write(std::to_string(pid) + "/stat",
          std::to_string(pid) + " (" + comm + ") S " + std::to_string(ppid) +
              " 100 100 0 -1 4194560 1000 0 0 0 " + std::to_string(utime) + " " +
              std::to_string(stime) + " 0 0 20 0 3 0 12345 1000000 250\n");
    std::string status = "Name:\t" + comm + "\nState:\tS (sleeping)\nPPid:\t" +
                         std::to_string(ppid) + "\n";
    if (rss_kb > 0) status += "VmRSS:\t  " + std::to_string(rss_kb) + " kB\n";
    write(std::to_string(pid) + "/status", status);
    // A third of each process's pages shared with the others, as after fork().
    if (rss_kb > 0) {
      write(std::to_string(pid) + "/smaps_rollup",
            "55d0c0000000-7ffc00000000 ---p 00000000 00:00 0    [rollup]\nRss:  " +
                std::to_string(rss_kb) + " kB\nPss:  " + std::to_string(rss_kb * 2 / 3) +
                " kB\nPss_Anon:  1 kB\n");
    }
  }

  fs::path root_;
};

TEST_F(FakeProc, ReadsOneProcess) {
  const ProcSampler sampler(root_, 100);
  const auto usage = sampler.read_process(100);
  ASSERT_TRUE(usage);
  EXPECT_EQ(usage->pid, 100);
  EXPECT_EQ(usage->processes, 1);
  EXPECT_EQ(usage->cpu_user_us, 2'500'000u);
  EXPECT_EQ(usage->cpu_system_us, 500'000u);
  EXPECT_EQ(usage->rss_bytes, 10'000u * 1024);
  EXPECT_EQ(usage->pss_bytes, 6'666u * 1024);  // the Pss line, not Pss_Anon
  EXPECT_FALSE(sampler.read_process(999));
}

TEST_F(FakeProc, ParsesCommWithSpacesAndParens) {
  const auto usage = ProcSampler(root_, 100).read_process(101);
  ASSERT_TRUE(usage);
  EXPECT_EQ(usage->cpu_user_us, 100'000u);
  EXPECT_EQ(usage->cpu_system_us, 50'000u);
}

TEST_F(FakeProc, WalksDescendants) {
  const ProcSampler sampler(root_, 100);
  auto kids = sampler.descendants(100);
  std::sort(kids.begin(), kids.end());
  EXPECT_EQ(kids, (std::vector<int>{101, 102, 103}));
  EXPECT_TRUE(sampler.descendants(103).empty());
}

TEST_F(FakeProc, SumsTheTree) {
  const auto tree = ProcSampler(root_, 100).read_tree(100);
  ASSERT_TRUE(tree);
  EXPECT_EQ(tree->processes, 4);
  EXPECT_EQ(tree->rss_bytes, (10'000u + 2'000 + 3'000) * 1024);
  EXPECT_EQ(tree->pss_bytes, (6'666u + 1'333 + 2'000) * 1024);
  EXPECT_EQ(tree->cpu_user_us, (250u + 10 + 20 + 1) * 10'000);
  EXPECT_EQ(tree->cpu_system_us, (50u + 5 + 10 + 1) * 10'000);
}

TEST_F(FakeProc, ReadsHostCounters) {
  const ProcSampler sampler(root_, 100);
  const auto drops = sampler.read_listen_drops();
  ASSERT_TRUE(drops);
  EXPECT_EQ(drops->listen_overflows, 17u);
  EXPECT_EQ(drops->listen_drops, 19u);
  const auto slab = sampler.read_slab();
  ASSERT_TRUE(slab);
  EXPECT_EQ(slab->slab_bytes, 512'000u * 1024);
  EXPECT_EQ(slab->reclaimable_bytes, 112'000u * 1024);
  EXPECT_EQ(slab->unreclaimable_bytes, 400'000u * 1024);
}

TEST_F(FakeProc, SampleCombinesAllAndRoundTripsJson) {
  const ProcSampler sampler(root_, 100);
  const auto sample = sampler.sample(100);
  ASSERT_TRUE(sample);
  EXPECT_GT(sample->time_unix_ms, 0);
  EXPECT_EQ(sample->usage.processes, 4);
  EXPECT_EQ(sample->listen.listen_drops, 19u);
  EXPECT_EQ(sample->slab.slab_bytes, 512'000u * 1024);
  EXPECT_EQ(nlohmann::json::parse(nlohmann::json(*sample).dump()).get<ServerSample>(), *sample);
  EXPECT_FALSE(sampler.sample(4242));
}

TEST_F(FakeProc, MissingHostFilesGiveNullopt) {
  fs::remove(root_ / "meminfo");
  fs::remove(root_ / "net" / "netstat");
  const ProcSampler sampler(root_, 100);
  EXPECT_FALSE(sampler.read_slab());
  EXPECT_FALSE(sampler.read_listen_drops());
  const auto sample = sampler.sample(100);
  ASSERT_TRUE(sample);  // the process is still there; host counters stay 0
  EXPECT_EQ(sample->slab.slab_bytes, 0u);
}

TEST(ProcSampler, ReadsThisProcessFromRealProc) {
  const ProcSampler sampler;
  const auto usage = sampler.read_tree(::getpid());
  ASSERT_TRUE(usage);
  EXPECT_GT(usage->rss_bytes, 0u);
  EXPECT_GT(usage->pss_bytes, 0u);
  EXPECT_LE(usage->pss_bytes, usage->rss_bytes + 64 * 1024);  // rounding per mapping
  EXPECT_GE(usage->processes, 1);
}

}  // namespace
}  // namespace tcpms::bench
