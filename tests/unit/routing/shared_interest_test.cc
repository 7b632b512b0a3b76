// Interest tables shared between worker processes: each process writes its own column, every
// process reads them all, from one copy (interest_region.h, remote_interest.h).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "routing/interest_region.h"
#include "routing/local_interest.h"
#include "routing/remote_interest.h"
#include "interest_test_support.h"

namespace tcpms::routing {
namespace {

std::unique_ptr<InterestRegion> region() {
  std::string error;
  auto r = RemoteInterest::shared_region(&error);
  EXPECT_NE(r, nullptr) << error;
  return r;
}

// Runs `body` in a child process; true if it exited 0.
template <typename F>
bool in_child(F body) {
  pid_t pid = ::fork();
  if (pid == 0) {
    body();
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

TEST(SharedInterest, AColumnWrittenInOneProcessIsReadInAnother) {
  auto shared = region();
  RemoteInterest here(0, 3, 3, shared.get());
  ASSERT_TRUE(in_child([&] {
    RemoteInterest there(2, 3, 3, shared.get());
    LocalInterest local({}, 1);
    local.add("dev/7/cmd", 0);
    local.add("fleet/+/status", 0);
    apply(there, 2, local.snapshot());
  }));
  EXPECT_TRUE(here.knows(2));
  EXPECT_TRUE(names(here, "dev/7/cmd", 2));
  EXPECT_TRUE(names(here, "fleet/3/status", 2)) << "its wildcard shape is shared too";
  EXPECT_FALSE(names(here, "dev/8/cmd", 2));
  EXPECT_FALSE(here.knows(1));
}

TEST(SharedInterest, FramesFromOthersChangeNothingOnlyTheWriterDoes) {
  auto shared = region();
  RemoteInterest zero(0, 3, 3, shared.get());
  RemoteInterest one(1, 3, 3, shared.get());
  LocalInterest local({}, 1);
  local.add("a/b", 0);
  apply(zero, 1, local.snapshot());  // peer 1's frame, as peer 0 receives it
  EXPECT_FALSE(zero.knows(1));
  EXPECT_FALSE(names(zero, "a/b", 1));
  apply(one, 1, local.snapshot());  // peer 1 writes its own column
  EXPECT_TRUE(names(zero, "a/b", 1));
  EXPECT_FALSE(names(one, "a/b", 1)) << "a publish never goes back to its own process";
  zero.forget(1);  // peer 0 cannot erase peer 1's column either
  EXPECT_TRUE(names(zero, "a/b", 1));
  local.remove("a/b", 0);
  apply(one, 1, local.take_update());
  EXPECT_FALSE(names(zero, "a/b", 1));
}

TEST(SharedInterest, AWorkerThatStartsAgainFindsItsOldColumnGone) {
  auto shared = region();
  RemoteInterest zero(0, 2, 3, shared.get());
  ASSERT_TRUE(in_child([&] {
    RemoteInterest one(1, 2, 3, shared.get());
    LocalInterest local({}, 1);
    local.add("old/filter", 0);
    apply(one, 1, local.snapshot());
  }));
  ASSERT_TRUE(names(zero, "old/filter", 1));
  RemoteInterest again(1, 2, 3, shared.get());  // worker 1 restarted
  EXPECT_FALSE(names(zero, "old/filter", 1));
}

TEST(SharedInterest, OneCopyWhateverTheNumberOfWorkers) {
  auto shared = region();
  LocalInterest local({}, 1);
  for (int i = 0; i < 1000; ++i) local.add("client/" + std::to_string(i), 0);
  std::vector<std::unique_ptr<RemoteInterest>> workers;
  for (PeerId p = 0; p < 8; ++p) {
    workers.push_back(std::make_unique<RemoteInterest>(p, 8, 3, shared.get()));
    apply(*workers.back(), p, local.snapshot());
  }
  // 8 columns of local.slots() bits: one byte a slot, held once.
  EXPECT_EQ(workers[0]->table_bytes(), size_t{local.slots()});
  EXPECT_EQ(workers[3]->table_bytes(), 0u) << "counted by worker 0 alone";
  for (PeerId p = 1; p < 8; ++p) EXPECT_TRUE(names(*workers[0], "client/999", p));
}

TEST(SharedInterest, GrowingToANewSizeNeverMissesAFilterOfTheOthers) {
  auto shared = region();
  RemoteInterest zero(0, 3, 3, shared.get());
  RemoteInterest one(1, 3, 3, shared.get());
  RemoteInterest two(2, 3, 3, shared.get());
  LocalInterest l1({}, 1), l2({}, 1);
  l1.add("one/x", 0);
  l2.add("two/x", 0);
  apply(one, 1, l1.snapshot());
  apply(two, 2, l2.snapshot());
  for (int i = 0; i < 500; ++i) l1.add("one/" + std::to_string(i), 0);
  ASSERT_TRUE(l1.begin_rebuild(l1.wanted_slots()));
  l1.add_walked("one/x");
  for (int i = 0; i < 500; ++i) l1.add_walked("one/" + std::to_string(i));
  ASSERT_TRUE(l1.walk_done(0));
  apply(one, 1, l1.take_update());  // peer 1 at the larger size
  EXPECT_TRUE(names(zero, "one/499", 1));
  EXPECT_TRUE(names(zero, "two/x", 2)) << "peer 2 stays in the table of its size";
  EXPECT_GT(zero.largest_slots(), l2.slots()) << "the size everyone grows to";
}

TEST(SharedInterest, AProcessKilledHoldingTheLockDoesNotStopTheOthers) {
  auto shared = region();
  RemoteInterest zero(0, 2, 3, shared.get());
  ASSERT_FALSE(in_child([&] {
    InterestRegion::Lock lock(*shared);
    ::_exit(9);  // dies holding it
  }));
  RemoteInterest one(1, 2, 3, shared.get());  // takes the lock to clear its column
  LocalInterest local({}, 1);
  local.add("still/works", 0);
  apply(one, 1, local.snapshot());
  EXPECT_TRUE(names(zero, "still/works", 1));
}

}  // namespace
}  // namespace tcpms::routing
