// Whole-loop tests on loopback: backpressure pause/resume, half-close after backpressure,
// idle timeouts, outbound connects, loop timers and posts.
#include "tcpms/event_loop.h"

#include <poll.h>

#include <gtest/gtest.h>

#include "loop_fixture.h"

namespace tcpms::testing {
namespace {

LoopConfig small_water_marks() {
  LoopConfig c;
  c.output_high_water_bytes = 256 << 10;
  c.output_low_water_bytes = 64 << 10;
  c.output_hard_limit_bytes = 64 << 20;
  return c;
}

TEST(EventLoop, BackpressurePausesReadingFromASlowReaderAndResumesWhenItReads) {
  LoopConfig config = small_water_marks();
  LoopThread lt(config);
  uint16_t port = 0;
  auto* h = lt.serve(port);
  lt.start();

  const std::string data = pattern(16 << 20);
  UniqueFd c = connect_client(port, 16 << 10);
  std::thread sender([&] { EXPECT_TRUE(send_all(c.get(), data)); });

  const LoopStats& s = lt.loop().stats();
  ASSERT_TRUE(eventually([&] { return s.backpressure_pauses.get() >= 1; }))
      << "a peer that does not read must pause reading";
  // While paused, nothing more is read, and the queue stays near the high-water mark.
  std::this_thread::sleep_for(100ms);
  uint64_t in_before = s.bytes_in.get();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(s.bytes_in.get(), in_before) << "reading continued past the high-water mark";
  EXPECT_LE(s.pending_output_bytes.get(),
            config.output_high_water_bytes + EventLoop::kReadBufferBytes);
  EXPECT_EQ(s.conns_with_output.get(), 1u);
  EXPECT_LT(in_before, data.size());

  // Now read everything: it must come back complete and in order.
  std::string got = recv_exactly(c.get(), data.size());
  sender.join();
  ASSERT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data) << "echo reordered or corrupted bytes";
  EXPECT_GE(h->writable.load(), 1) << "on_writable follows each resume";
  EXPECT_GE(s.backpressure_pauses.get(), 1u);
  ASSERT_TRUE(eventually([&] {
    return s.pending_output_bytes.get() == 0 && s.conns_with_output.get() == 0;
  })) << "a drained connection must give its queue back";
  EXPECT_EQ(h->closed.load(), 0);
}

// The peer sends a lot, then FIN, while reading slowly: the FIN arrives while reading is
// paused. After resuming, the engine must still see it, answer everything, then close.
TEST(EventLoop, HalfCloseSeenWhileBackpressuredIsNotLost) {
  LoopThread lt(small_water_marks());
  uint16_t port = 0;
  auto* h = lt.serve(port);
  lt.start();

  const std::string data = pattern(4 << 20);
  UniqueFd c = connect_client(port, 16 << 10);
  std::thread sender([&] {
    EXPECT_TRUE(send_all(c.get(), data));
    ::shutdown(c.get(), SHUT_WR);
  });
  std::this_thread::sleep_for(300ms);  // let the server stall on us
  std::string got = recv_exactly(c.get(), data.size());
  sender.join();
  ASSERT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data);
  EXPECT_EQ(recv_some(c.get()), 0) << "after the echo the server must close (EOF), not hang";
  ASSERT_TRUE(eventually([&] { return h->closed == 1; }));
  EXPECT_EQ(h->reason(0), CloseReason::kPeerClosed);
}

// Reading paused by the handler (a rate limit, say) while the peer sent its last bytes and
// FIN: the edge-triggered event for the FIN is spent during the pause, so resume_reading()
// must read to EAGAIN rather than stop at the first short read.
class PausingHandler : public RecordingHandler {
 public:
  Action on_open(Connection& c) override {
    c.pause_reading();
    return RecordingHandler::on_open(c);
  }
};

TEST(EventLoop, FinThatArrivedWhileReadingWasPausedIsSeenAfterResume) {
  LoopThread lt;
  uint16_t port = 0;
  auto* h = lt.serve<PausingHandler>(port);
  lt.start();

  UniqueFd c = connect_client(port);
  ASSERT_TRUE(eventually([&] { return h->opened == 1; }));
  ASSERT_TRUE(send_all(c.get(), "last words"));
  ::shutdown(c.get(), SHUT_WR);
  std::this_thread::sleep_for(200ms);  // the FIN's event comes and goes while paused
  EXPECT_EQ(lt.loop().stats().bytes_in.get(), 0u);
  ConnId id = h->id(0);
  lt.call([&] {
    Connection* conn = lt.loop().find(id);
    ASSERT_NE(conn, nullptr);
    conn->resume_reading();
  });
  EXPECT_EQ(recv_exactly(c.get(), 10), "last words");
  EXPECT_EQ(recv_some(c.get()), 0) << "the FIN was lost: the connection hangs half-open";
  ASSERT_TRUE(eventually([&] { return h->closed == 1; }));
  EXPECT_EQ(h->reason(0), CloseReason::kPeerClosed);
}

// A handler that pauses itself mid-stream (rate limit, waiting for a session) keeps the rest
// of what it was given; on resume the engine presents those bytes again without waiting for
// the peer to send more.
class PauseAfterFirstByteHandler : public RecordingHandler {
 public:
  std::atomic<int> calls{0};
  DataResult on_data(Connection& c, ByteView data) override {
    if (calls.fetch_add(1) == 0) {
      c.send(data.first(1));
      c.pause_reading();
      return {1, Action::kKeep};
    }
    c.send(data);
    return {data.size(), Action::kKeep};
  }
};

TEST(EventLoop, BytesHeldWhilePausedArePresentedAgainOnResume) {
  LoopThread lt;
  uint16_t port = 0;
  auto* h = lt.serve<PauseAfterFirstByteHandler>(port);
  lt.start();
  UniqueFd c = connect_client(port);
  ASSERT_TRUE(eventually([&] { return h->opened == 1; }));
  ASSERT_TRUE(send_all(c.get(), "abcdef"));
  EXPECT_EQ(recv_exactly(c.get(), 1), "a");
  ASSERT_TRUE(eventually([&] { return h->calls == 1; }));
  ConnId id = h->id(0);
  lt.call([&] {
    Connection* conn = lt.loop().find(id);
    ASSERT_NE(conn, nullptr);
    EXPECT_EQ(conn->pending_input_bytes(), 5u);
    conn->resume_reading();
  });
  EXPECT_EQ(recv_exactly(c.get(), 5), "bcdef") << "held bytes were not presented on resume";
}

// The input limit bounds a partial frame, not one read: frames just under the limit sent
// back to back (the end of one arriving with the next ones) must not close the connection.
class FixedFrameEcho : public RecordingHandler {
 public:
  static constexpr size_t kFrame = 1000;
  DataResult on_data(Connection& c, ByteView data) override {
    size_t whole = data.size() / kFrame * kFrame;
    if (whole) c.send(data.first(whole));
    return {whole, Action::kKeep};
  }
};

TEST(EventLoop, InputLimitBoundsPartialFramesNotReads) {
  LoopConfig config;
  config.input_limit_bytes = FixedFrameEcho::kFrame + 8;
  LoopThread lt(config);
  uint16_t port = 0;
  auto* h = lt.serve<FixedFrameEcho>(port);
  lt.start();
  UniqueFd c = connect_client(port);
  ASSERT_TRUE(eventually([&] { return h->opened == 1; }));
  std::string frames(5 * FixedFrameEcho::kFrame, 'f');
  ASSERT_TRUE(send_all(c.get(), frames.substr(0, 500)));
  std::this_thread::sleep_for(100ms);  // the first half frame is held
  ASSERT_TRUE(send_all(c.get(), frames.substr(500)));
  EXPECT_EQ(recv_exactly(c.get(), frames.size()), frames);
  EXPECT_EQ(h->closed, 0);
}

// A handler may keep larger partial frames than the loop's clients (links between worker
// processes beside MQTT clients): its own limit applies to its connections only.
template <size_t kFrame, size_t kOwnLimit>
class BigFrameEcho : public RecordingHandler {
 public:
  DataResult on_data(Connection& c, ByteView data) override {
    size_t whole = data.size() / kFrame * kFrame;
    if (whole) c.send(data.first(whole));
    return {whole, Action::kKeep};
  }
  size_t input_limit_bytes() const noexcept override { return kOwnLimit; }
};

TEST(EventLoop, AHandlersOwnInputLimitReplacesTheLoopsForItsConnections) {
  constexpr size_t kFrame = 256 << 10;
  LoopConfig config;
  config.input_limit_bytes = 4 << 10;  // far below one frame
  auto run = [&](auto* handler_type_tag) {
    using H = std::remove_pointer_t<decltype(handler_type_tag)>;
    LoopThread lt(config);
    uint16_t port = 0;
    auto* h = lt.template serve<H>(port);
    lt.start();
    UniqueFd c = connect_client(port);
    EXPECT_TRUE(eventually([&] { return h->opened == 1; }));
    std::string frame(kFrame, 'b');
    std::thread sender([&] { send_all(c.get(), frame); });
    std::string got = recv_exactly(c.get(), frame.size());
    sender.join();
    const bool ok = got == frame;
    if (!ok) eventually([&] { return h->closed.load() >= 1; });
    return std::make_pair(ok, h->closed.load());
  };
  auto [echoed, closed] = run(static_cast<BigFrameEcho<kFrame, kFrame + 8>*>(nullptr));
  EXPECT_TRUE(echoed) << "a frame under the handler's own limit must get through";
  EXPECT_EQ(closed, 0);
  auto [echoed_default, closed_default] = run(static_cast<BigFrameEcho<kFrame, 0>*>(nullptr));
  EXPECT_FALSE(echoed_default) << "with no limit of its own, the loop's limit applies";
  EXPECT_EQ(closed_default, 1);
}

TEST(EventLoop, IdleTimeoutClosesOnlyTheIdleConnection) {
  LoopConfig config;
  config.timer_tick_ms = 10;
  config.idle_timeout_ms = 300;
  LoopThread lt(config);
  uint16_t port = 0;
  auto* h = lt.serve(port);
  lt.start();

  UniqueFd idle = connect_client(port);
  UniqueFd busy = connect_client(port);
  ASSERT_TRUE(eventually([&] { return h->opened == 2; }));
  auto start = std::chrono::steady_clock::now();
  // The busy one talks every 50 ms for 1 s: each read pushes its deadline forward.
  while (std::chrono::steady_clock::now() - start < 1s) {
    ASSERT_TRUE(send_all(busy.get(), "ping"));
    ASSERT_EQ(recv_exactly(busy.get(), 4), "ping");
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(recv_some(idle.get()), 0) << "the idle connection is closed";
  EXPECT_EQ(h->closed.load(), 1);
  EXPECT_EQ(h->reason(0), CloseReason::kIdleTimeout);
  ASSERT_TRUE(send_all(busy.get(), "still"));
  EXPECT_EQ(recv_exactly(busy.get(), 5), "still");
  EXPECT_EQ(lt.loop().stats().closed_by_reason[static_cast<size_t>(CloseReason::kIdleTimeout)].get(),
            1u);
}

// Arms a timeout when a connection opens and records, in the loop's clock, when it was armed
// and when it fired.
class ArmTimeoutOnOpen : public RecordingHandler {
 public:
  static constexpr uint32_t kTimeoutMs = 200;
  std::atomic<uint64_t> armed_at_ms{0};
  std::atomic<uint64_t> fired_at_ms{0};
  Action on_open(Connection& c) override {
    RecordingHandler::on_open(c);
    armed_at_ms = c.loop().now_ms();
    c.set_timeout(kTimeoutMs);
    return Action::kKeep;
  }
  Action on_timeout(Connection& c) override {
    fired_at_ms = c.loop().now_ms();
    return Action::kClose;
  }
};

// A running loop with a 10 ms timer tick serving one H.
template <typename H>
struct FineTickLoop {
  static constexpr uint32_t kTickMs = 10;
  static LoopConfig config() {
    LoopConfig c;
    c.timer_tick_ms = kTickMs;
    return c;
  }
  LoopThread lt{config()};
  uint16_t port = 0;
  H* h = lt.serve<H>(port);
  FineTickLoop() { lt.start(); }
};

// A loop with nothing to time sleeps in epoll_wait, and its wheel does not advance meanwhile.
// A deadline armed when it wakes (a new connection's first timer) must count from the time it
// woke, not from the wheel's last tick: armed from that, it would be due at once.
TEST(EventLoop, ATimeoutArmedAfterALongSleepIsNotAlreadyDue) {
  FineTickLoop<ArmTimeoutOnOpen> loop;
  auto* h = loop.h;
  for (int round = 1; round <= 2; ++round) {
    // Idle for longer than the timeout: no connection, no timer, the loop sleeps.
    std::this_thread::sleep_for(std::chrono::milliseconds(3 * ArmTimeoutOnOpen::kTimeoutMs));
    UniqueFd c = connect_client(loop.port);
    ASSERT_TRUE(eventually([&] { return h->closed.load() == round; }));
    EXPECT_EQ(h->reason(round - 1), CloseReason::kIdleTimeout);
    // The loop's clock is cached per iteration and the wheel counts whole ticks: the timeout
    // may fire up to one tick early, never at once.
    EXPECT_GE(h->fired_at_ms.load() - h->armed_at_ms.load(),
              ArmTimeoutOnOpen::kTimeoutMs - loop.kTickMs)
        << "round " << round << ": the deadline was armed from a stale wheel tick";
  }
}

// Consumes only whole kFrame-byte frames (echoing them); arms its timer on open: an idle
// timeout, or a fixed deadline.
template <bool kFixed>
class FrameTimeouts : public RecordingHandler {
 public:
  static constexpr size_t kFrame = 64;
  static constexpr uint32_t kTimeoutMs = 300;
  Action on_open(Connection& c) override {
    RecordingHandler::on_open(c);
    if (kFixed) {
      c.set_deadline(kTimeoutMs);
    } else {
      c.set_timeout(kTimeoutMs);
    }
    return Action::kKeep;
  }
  DataResult on_data(Connection& c, ByteView data) override {
    size_t whole = data.size() / kFrame * kFrame;
    if (whole) c.send(data.first(whole));
    return {whole, Action::kKeep};
  }
};

// Sends `unit` every 50 ms until the server closes the connection or `limit` passes; true if
// it was closed.
bool trickle_until_closed(int fd, std::string_view unit, std::chrono::milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (::send(fd, unit.data(), unit.size(), MSG_NOSIGNAL) <= 0) return true;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) == 1) {
      char buf[4096];
      ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN)) return true;
    }
  }
  return false;
}

TEST(EventLoop, APartialFrameTrickledForeverDoesNotPushAnIdleTimeout) {
  using H = FrameTimeouts<false>;
  FineTickLoop<H> loop;
  // Whole frames are activity: the connection lives while they come.
  UniqueFd talker = connect_client(loop.port);
  const std::string frame(H::kFrame, 'f');
  EXPECT_FALSE(trickle_until_closed(talker.get(), frame, 3 * std::chrono::milliseconds(H::kTimeoutMs)))
      << "whole frames must push the idle timeout";
  // A frame never finished is not: one byte every 50 ms, 64 bytes would take 3.2 s.
  UniqueFd trickler = connect_client(loop.port);
  EXPECT_TRUE(trickle_until_closed(trickler.get(), "x", 20 * std::chrono::milliseconds(H::kTimeoutMs)))
      << "bytes of a frame that never completes kept the connection open";
  ASSERT_TRUE(eventually([&] { return loop.h->closed.load() >= 1; }));
  EXPECT_EQ(loop.h->reason(0), CloseReason::kIdleTimeout);
}

TEST(EventLoop, AFixedDeadlineIsNotPushedByInput) {
  using H = FrameTimeouts<true>;
  FineTickLoop<H> loop;
  UniqueFd c = connect_client(loop.port);
  const std::string frame(H::kFrame, 'f');
  EXPECT_TRUE(trickle_until_closed(c.get(), frame, 20 * std::chrono::milliseconds(H::kTimeoutMs)))
      << "whole frames pushed a fixed deadline";
  ASSERT_TRUE(eventually([&] { return loop.h->closed.load() == 1; }));
  EXPECT_EQ(loop.h->reason(0), CloseReason::kIdleTimeout);
}

// A login request is a byte 'L' (the loop owes it work until it is answered), answered by
// the byte 'A' (an ordinary timeout from then on).
class LoginOnFirstByte : public RecordingHandler {
 public:
  Action on_open(Connection& c) override {
    RecordingHandler::on_open(c);
    c.set_deadline(10000);
    return Action::kKeep;
  }
  DataResult on_data(Connection& c, ByteView data) override {
    for (std::byte b : data) {
      if (b == std::byte{'L'}) c.begin_login();
      if (b == std::byte{'A'}) c.set_timeout(0);
    }
    return RecordingHandler::on_data(c, data);
  }
};

TEST(EventLoop, AcceptingPausesWhileMaxAdmittingConnectionsAreLoggingIn) {
  LoopConfig config;
  config.max_admitting = 8;
  LoopThread lt(config);
  uint16_t port = 0;
  auto* h = lt.serve<LoginOnFirstByte>(port);
  lt.start();
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 8; ++i) {
    clients.push_back(connect_client(port));
    ASSERT_TRUE(send_all(clients.back().get(), "L"));
  }
  ASSERT_TRUE(eventually([&] { return lt.loop().stats().admitting.get() == 8; }));
  // Eight logins in progress: the next six wait in the kernel's accept queue.
  for (int i = 0; i < 6; ++i) clients.push_back(connect_client(port));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(h->opened.load(), 8);
  EXPECT_GE(lt.loop().stats().accept_held.get(), 1u);
  // One answered login is not enough to resume (a quarter must be through)...
  ASSERT_TRUE(send_all(clients[0].get(), "A"));
  ASSERT_TRUE(eventually([&] { return lt.loop().stats().admitting.get() == 7; }));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(h->opened.load(), 8);
  // ...and once enough are through, accepting resumes: every client gets in, none is lost.
  for (int i = 1; i < 3; ++i) ASSERT_TRUE(send_all(clients[i].get(), "A"));
  ASSERT_TRUE(eventually([&] { return h->opened == 14; }));
  EXPECT_EQ(h->closed.load(), 0);
}

TEST(EventLoop, SilentConnectionsDoNotStopTheLoopAccepting) {
  LoopConfig config;
  config.max_admitting = 2;
  LoopThread lt(config);
  uint16_t port = 0;
  auto* h = lt.serve<LoginOnFirstByte>(port);
  lt.start();
  // Sockets that say nothing (or half a request) cost the loop nothing: not counted.
  std::vector<UniqueFd> silent;
  for (int i = 0; i < 10; ++i) silent.push_back(connect_client(port));
  ASSERT_TRUE(eventually([&] { return h->opened == 10; }));
  EXPECT_EQ(lt.loop().stats().admitting.get(), 0u);
  EXPECT_EQ(lt.loop().stats().accept_held.get(), 0u);
}

TEST(EventLoop, ClosingALoggingInConnectionReleasesItsAdmission) {
  LoopConfig config;
  config.max_admitting = 2;
  LoopThread lt(config);
  uint16_t port = 0;
  auto* h = lt.serve<LoginOnFirstByte>(port);
  lt.start();
  UniqueFd a = connect_client(port), b = connect_client(port);
  ASSERT_TRUE(send_all(a.get(), "L"));
  ASSERT_TRUE(send_all(b.get(), "L"));
  ASSERT_TRUE(eventually([&] { return lt.loop().stats().admitting.get() == 2; }));
  UniqueFd c = connect_client(port);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(h->opened.load(), 2);
  a.reset();
  b.reset();  // both leave before their login was answered
  ASSERT_TRUE(eventually([&] { return h->opened == 3; }));
  EXPECT_EQ(lt.loop().stats().admitting.get(), 0u);
}

// A listening socket the test owns (blocking), for outbound connects.
struct TestListener {
  UniqueFd fd;
  sockaddr_storage addr{};
  TestListener() {
    int err = 0;
    const char* what = "";
    fd = net::open_listener(*Endpoint::parse("127.0.0.1:0"), 16, 0, err, what);
    Endpoint at = net::local_endpoint(fd.get());
    addr = at.addr;
  }
  UniqueFd accept_one() {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 10000) != 1) return {};
    UniqueFd c(::accept4(fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
    timeval tv{10, 0};
    ::setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return c;
  }
};

// A loop with a handler that serves no listener, for outbound connects.
class OutboundConnect : public ::testing::Test {
 protected:
  void SetUp() override {
    h = lt.add(&hi);
    lt.start();
  }
  ConnId connect(const sockaddr_storage& to, int& err) {
    return lt.call([&] { return lt.loop().connect(to, nullptr, hi, err); });
  }
  LoopThread lt;
  uint8_t hi = 0;
  RecordingHandler* h = nullptr;
};

TEST_F(OutboundConnect, OpensAndCarriesBytesBothWays) {
  TestListener target;
  int err = -1;
  ConnId id = connect(target.addr, err);
  ASSERT_TRUE(id.valid()) << net::errno_text(err);
  EXPECT_EQ(err, 0);
  UniqueFd peer = target.accept_one();
  ASSERT_TRUE(peer.valid());
  ASSERT_TRUE(eventually([&] { return h->opened == 1; })) << "on_open after connect completes";
  EXPECT_EQ(h->id(0), id);
  EXPECT_EQ(lt.loop().stats().connects_started.get(), 1u);

  EXPECT_TRUE(lt.call([&] { return lt.loop().send_to(id, as_bytes("ping")); }));
  EXPECT_EQ(recv_exactly(peer.get(), 4), "ping");
  ASSERT_TRUE(send_all(peer.get(), "pong"));
  EXPECT_EQ(recv_exactly(peer.get(), 4), "pong") << "the handler echoes what the peer sends";

  peer.reset();
  ASSERT_TRUE(eventually([&] { return h->closed == 1; }));
}

TEST_F(OutboundConnect, ToAClosedPortFails) {
  sockaddr_storage closed_addr;
  {
    TestListener gone;  // bound then closed: nothing listens on its port
    closed_addr = gone.addr;
  }
  int err = -1;
  ConnId id = connect(closed_addr, err);
  if (!id.valid()) {
    EXPECT_EQ(err, ECONNREFUSED);  // refused at once
  } else {
    ASSERT_TRUE(eventually([&] { return h->closed == 1; }));
    EXPECT_EQ(h->reason(0), CloseReason::kConnectFailed);
    std::lock_guard lock(h->mu);
    EXPECT_EQ(h->errors.at(0), ECONNREFUSED);
  }
  EXPECT_EQ(h->opened.load(), 0) << "a failed connect never opens";
}

TEST(EventLoop, RunEveryRepeatsUntilCancelledAndRunAfterFiresOnce) {
  LoopThread lt;
  lt.start();
  std::atomic<int> every{0};
  std::atomic<int> once{0};
  uint64_t id = lt.call([&] {
    lt.loop().run_after(30, [&] { once.fetch_add(1); });
    return lt.loop().run_every(20, [&] { every.fetch_add(1); });
  });
  ASSERT_TRUE(eventually([&] { return every >= 5; }, 5s));
  lt.call([&] { lt.loop().cancel_timer(id); });
  int after_cancel = every.load();
  std::this_thread::sleep_for(150ms);
  EXPECT_EQ(every.load(), after_cancel);
  EXPECT_EQ(once.load(), 1);
}

TEST(EventLoop, RunEveryKeepsTheTasksOwnStateAndMayCancelItself) {
  LoopThread lt;
  lt.start();
  std::atomic<int> last{0};
  lt.call([&] {
    uint64_t* self = new uint64_t(0);
    *self = lt.loop().run_every(10, [&, self, n = 0]() mutable {
      last = ++n;  // a counter in the lambda: must grow, not restart from a copy
      if (n == 3) {
        lt.loop().cancel_timer(*self);
        delete self;
      }
    });
  });
  ASSERT_TRUE(eventually([&] { return last == 3; }, 5s)) << "last seen: " << last;
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(last.load(), 3) << "a timer that cancelled itself ran again";
}

TEST(EventLoop, PostRunsOnTheLoopThreadAndFailsAfterStop) {
  LoopThread lt;
  lt.start();
  std::atomic<bool> in_loop{false};
  lt.call([&] { in_loop = lt.loop().in_loop_thread(); });
  EXPECT_TRUE(in_loop.load());
  EXPECT_FALSE(lt.loop().in_loop_thread());
  lt.stop();
  EXPECT_FALSE(lt.loop().post([] {})) << "a stopped loop refuses tasks";
}

TEST(EventLoop, AnIterationOfASecondOrMoreIsCountedAsAStallWithItsLength) {
  LoopThread t;
  t.start();
  // A task that keeps the loop busy for 1.1 s: every connection of the loop waits that long.
  t.loop().post([] { std::this_thread::sleep_for(1100ms); });
  ASSERT_TRUE(eventually([&] { return t.loop().stats().stalls.get() >= 1; }));
  EXPECT_GE(t.loop().stats().longest_iteration_ns.get(), 1'100'000'000u);
}

}  // namespace
}  // namespace tcpms::testing
