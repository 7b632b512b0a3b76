// TaskQueue: posts from many threads all run once, on the loop thread, and a burst of posts
// costs one eventfd wake-up.
#include "net/task_queue.h"

#include <poll.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

namespace tcpms::net {
namespace {

bool readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

TEST(TaskQueue, BurstOfPostsWakesOnceAndRunsInOrder) {
  TaskQueue q;
  EXPECT_FALSE(readable(q.wake_fd(), 0));
  std::vector<int> order;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(q.push([&order, i] { order.push_back(i); }));
  ASSERT_TRUE(readable(q.wake_fd(), 0));
  uint64_t count = 0;
  ASSERT_EQ(::read(q.wake_fd(), &count, sizeof count), static_cast<ssize_t>(sizeof count));
  EXPECT_EQ(count, 1u) << "only the empty-to-non-empty push writes the eventfd";
  EXPECT_FALSE(q.empty());
  EXPECT_EQ(q.run_all(), 5u);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(readable(q.wake_fd(), 0));
}

TEST(TaskQueue, RunAllClearsTheWakeUp) {
  TaskQueue q;
  q.push([] {});
  EXPECT_EQ(q.run_all(), 1u);
  EXPECT_FALSE(readable(q.wake_fd(), 0)) << "a drained queue must not keep epoll awake";
  EXPECT_EQ(q.run_all(), 0u);
}

TEST(TaskQueue, TaskPostedFromATaskRunsNextRoundAndWakesAgain) {
  TaskQueue q;
  int ran = 0;
  q.push([&] {
    ++ran;
    q.push([&] { ++ran; });
  });
  EXPECT_EQ(q.run_all(), 1u);
  EXPECT_EQ(ran, 1);
  EXPECT_TRUE(readable(q.wake_fd(), 0)) << "the nested post must wake the loop again";
  EXPECT_EQ(q.run_all(), 1u);
  EXPECT_EQ(ran, 2);
}

TEST(TaskQueue, CrossThreadPostsAllRunExactlyOnceOnTheLoopThread) {
  TaskQueue q;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5000;
  std::vector<std::atomic<int>> seen(kThreads * kPerThread);
  std::atomic<bool> wrong_thread{false};
  std::thread::id loop_id;
  std::atomic<int> total{0};
  std::atomic<bool> loop_ready{false};

  // The "loop": sleeps on the eventfd like epoll_wait would, then runs what is queued.
  std::thread loop([&] {
    loop_id = std::this_thread::get_id();
    loop_ready = true;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (total.load() < kThreads * kPerThread && std::chrono::steady_clock::now() < deadline) {
      readable(q.wake_fd(), 1000);  // a lost wake-up shows up as a 1 s stall, then a timeout
      q.run_all();
    }
  });
  while (!loop_ready) std::this_thread::yield();
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        int index = t * kPerThread + i;
        q.push([&, index] {
          if (std::this_thread::get_id() != loop_id) wrong_thread = true;
          seen[index].fetch_add(1);
          total.fetch_add(1);
        });
      }
    });
  }
  auto start = std::chrono::steady_clock::now();
  for (auto& p : producers) p.join();
  loop.join();
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(total.load(), kThreads * kPerThread);
  for (int i = 0; i < kThreads * kPerThread; ++i) ASSERT_EQ(seen[i].load(), 1) << i;
  EXPECT_FALSE(wrong_thread);
  EXPECT_LT(took, std::chrono::seconds(10));
}

TEST(TaskQueue, WakesABlockedLoopPromptly) {
  TaskQueue q;
  std::atomic<bool> ran{false};
  std::thread loop([&] {
    if (readable(q.wake_fd(), 5000)) q.run_all();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto start = std::chrono::steady_clock::now();
  q.push([&] { ran = true; });
  loop.join();
  EXPECT_TRUE(ran);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(TaskQueue, CloseRefusesPostsAndDropsPendingTasks) {
  TaskQueue q;
  auto token = std::make_shared<int>(1);
  bool ran = false;
  q.push([token, &ran] { ran = true; });
  EXPECT_EQ(token.use_count(), 2);
  q.close();
  EXPECT_EQ(token.use_count(), 1) << "dropped tasks release their captures";
  EXPECT_FALSE(q.push([] {}));
  EXPECT_EQ(q.run_all(), 0u);
  EXPECT_FALSE(ran);
}

}  // namespace
}  // namespace tcpms::net
