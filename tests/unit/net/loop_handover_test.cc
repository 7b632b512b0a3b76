// The engine's side of the upgrade handover (src/net/event_loop_handover.cc): a connection is
// parked (not read, not written), then either released to another loop that adopts it (here
// in the same process, the descriptor duplicated as SCM_RIGHTS would) or resumed. Either way
// the client sees every byte once, in order, on the same socket.
#include <fcntl.h>

#include <gtest/gtest.h>

#include "loop_fixture.h"

namespace tcpms::testing {
namespace {

class MovableHandler : public RecordingHandler {
 public:
  std::atomic<int> handed_over{0};
  std::atomic<int> imported{0};
  bool export_state(Connection&, std::string& state) override {
    state = "state";
    return true;
  }
  bool import_state(Connection&, ByteView state) override {
    imported.fetch_add(1);
    return as_chars(state) == "state";
  }
  void on_handed_over(Connection&) override { handed_over.fetch_add(1); }
};

// Consumes whole lines only and echoes them: what it leaves is a partial frame the engine keeps.
class LineHandler : public MovableHandler {
 public:
  DataResult on_data(Connection& c, ByteView data) override {
    std::string_view text = as_chars(data);
    size_t end = text.rfind('\n');
    if (end == std::string_view::npos) return {0, Action::kKeep};
    c.send(data.first(end + 1));
    return {end + 1, Action::kKeep};
  }
};

// What the successor does with a parked connection, in one process: the descriptor duplicated
// (as SCM_RIGHTS would), adopted on `to` (parked: held until resumed). Returns the new id
// (invalid: refused).
ConnId adopt_on(LoopThread& to, const HandedConnection& h, bool parked = false) {
  UniqueFd copy(::fcntl(h.fd, F_DUPFD_CLOEXEC, 0));
  return to.call([&] { return to.loop().adopt_handed(std::move(copy), h, parked); });
}

std::vector<HandedConnection> park_all(LoopThread& lt) {
  return lt.call([&] {
    std::vector<HandedConnection> out;
    uint32_t cursor = 0;
    while (lt.loop().park_for_handover(100, cursor, out) != 0 || !lt.loop().scan_done(cursor)) {}
    return out;
  });
}

TEST(LoopHandover, AParkedConnectionIsNotServedUntilResumedThenLosesNothing) {
  LoopThread lt;
  uint16_t port = 0;
  auto* h = lt.serve<MovableHandler>(port);
  lt.start();
  UniqueFd c = connect_client(port);
  ASSERT_TRUE(send_all(c.get(), "hello"));
  EXPECT_EQ(recv_exactly(c.get(), 5), "hello");

  auto parked = park_all(lt);
  ASSERT_EQ(parked.size(), 1u);
  EXPECT_EQ(parked[0].protocol_state, "state");
  ASSERT_TRUE(send_all(c.get(), "while parked"));
  timeval short_wait{0, 200000};
  ::setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &short_wait, sizeof short_wait);
  EXPECT_LT(recv_some(c.get()), 0) << "a parked connection must not be read or answered";

  lt.call([&] { lt.loop().resume_parked(parked[0].id); });
  timeval long_wait{10, 0};
  ::setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &long_wait, sizeof long_wait);
  EXPECT_EQ(recv_exactly(c.get(), 12), "while parked");
  EXPECT_EQ(h->closed.load(), 0);
  EXPECT_EQ(h->handed_over.load(), 0);
}

TEST(LoopHandover, AReleasedConnectionContinuesOnTheLoopThatAdoptedItWithItsUnsentOutput) {
  LoopConfig config;
  config.output_high_water_bytes = 256 << 10;
  config.output_low_water_bytes = 64 << 10;
  LoopThread old_loop(config);
  LoopThread new_loop(config);
  uint16_t port = 0;
  auto* old_h = old_loop.serve<MovableHandler>(port);
  auto* new_h = new_loop.add<MovableHandler>();
  old_loop.start();
  new_loop.start();

  // A client that does not read: its echo waits in the old loop's output queue.
  const std::string data = pattern(4 << 20);
  UniqueFd c = connect_client(port, 16 << 10);
  std::thread sender([&] { EXPECT_TRUE(send_all(c.get(), data)); });
  ASSERT_TRUE(eventually([&] { return old_loop.loop().stats().backpressure_pauses.get() >= 1; }));

  auto parked = park_all(old_loop);
  ASSERT_EQ(parked.size(), 1u);
  EXPECT_GT(parked[0].unsent_output.size(), 0u);
  ASSERT_TRUE(adopt_on(new_loop, parked[0]).valid());
  old_loop.call([&] { old_loop.loop().release_parked(parked[0].id); });

  std::string got = recv_exactly(c.get(), data.size());
  sender.join();
  ASSERT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data) << "bytes lost, doubled or reordered across the handover";
  EXPECT_EQ(old_h->handed_over.load(), 1);
  EXPECT_EQ(old_h->closed.load(), 0) << "a connection that moved is not closed";
  EXPECT_EQ(new_h->imported.load(), 1);
  EXPECT_EQ(old_loop.loop().connection_count(), 0u);
  EXPECT_EQ(new_loop.loop().connection_count(), 1u);
}

TEST(LoopHandover, AHalfReadFrameMovesAndIsCompletedByTheNextBytes) {
  LoopThread old_loop;
  LoopThread new_loop;
  uint16_t port = 0;
  old_loop.serve<LineHandler>(port);
  new_loop.add<LineHandler>();
  old_loop.start();
  new_loop.start();
  UniqueFd c = connect_client(port);
  ASSERT_TRUE(send_all(c.get(), "first line\nhalf a li"));
  EXPECT_EQ(recv_exactly(c.get(), 11), "first line\n");
  ASSERT_TRUE(eventually([&] { return old_loop.loop().stats().pending_input_bytes.get() == 9; }));

  auto parked = park_all(old_loop);
  ASSERT_EQ(parked.size(), 1u);
  EXPECT_EQ(parked[0].unread_input, "half a li");
  ASSERT_TRUE(adopt_on(new_loop, parked[0]).valid());
  old_loop.call([&] { old_loop.loop().release_parked(parked[0].id); });
  ASSERT_TRUE(send_all(c.get(), "ne\n"));
  EXPECT_EQ(recv_exactly(c.get(), 12), "half a line\n");
  EXPECT_EQ(old_loop.loop().stats().pending_input_bytes.get(), 0u);
}

// Handover version 4: both sides hold the connection parked until the commit; a rollback then
// lets the adopted copy go silently and the old loop serves on, every byte once.
TEST(LoopHandover, AConnectionAdoptedParkedIsNeitherReadNorWrittenAndCanGoBack) {
  LoopThread old_loop;
  LoopThread new_loop;
  uint16_t port = 0;
  auto* old_h = old_loop.serve<LineHandler>(port);
  auto* new_h = new_loop.add<LineHandler>();
  old_loop.start();
  new_loop.start();
  UniqueFd c = connect_client(port);
  auto parked = park_all(old_loop);
  ASSERT_EQ(parked.size(), 1u);
  parked[0].unsent_output = "unsent\n";  // as if the old loop had not written it yet
  const ConnId adopted = adopt_on(new_loop, parked[0], true);
  ASSERT_TRUE(adopted.valid());
  ASSERT_TRUE(send_all(c.get(), "first\n"));
  timeval short_wait{0, 300000};
  ::setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &short_wait, sizeof short_wait);
  EXPECT_LT(recv_some(c.get()), 0) << "an adopted parked connection must not be read or written";

  // Rolled back: the adopted copy goes without a word; the old loop answers what came.
  new_loop.call([&] { new_loop.loop().release_parked(adopted); });
  old_loop.call([&] { old_loop.loop().resume_parked(parked[0].id); });
  timeval long_wait{10, 0};
  ::setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &long_wait, sizeof long_wait);
  EXPECT_EQ(recv_exactly(c.get(), 6), "first\n");
  EXPECT_EQ(new_h->handed_over.load(), 1);
  EXPECT_EQ(new_h->closed.load(), 0);
  EXPECT_EQ(old_h->closed.load(), 0);
  EXPECT_EQ(new_loop.loop().connection_count(), 0u);

  // Committed instead (a second handover): the new loop writes the unsent output first.
  parked = park_all(old_loop);
  ASSERT_EQ(parked.size(), 1u);
  parked[0].unsent_output = "unsent\n";
  const ConnId again = adopt_on(new_loop, parked[0], true);
  ASSERT_TRUE(again.valid());
  old_loop.call([&] { old_loop.loop().release_parked(parked[0].id); });
  ASSERT_TRUE(send_all(c.get(), "second\n"));
  new_loop.call([&] { new_loop.loop().resume_parked(again); });
  EXPECT_EQ(recv_exactly(c.get(), 14), "unsent\nsecond\n");
}

TEST(LoopHandover, AStateTheHandlerRefusesIsNotAdoptedAndTheSocketStaysOpen) {
  LoopThread old_loop;
  LoopThread new_loop;
  uint16_t port = 0;
  old_loop.serve<MovableHandler>(port);
  new_loop.add<MovableHandler>();
  old_loop.start();
  new_loop.start();
  UniqueFd c = connect_client(port);
  auto parked = park_all(old_loop);
  ASSERT_EQ(parked.size(), 1u);
  parked[0].protocol_state = "not this";
  EXPECT_FALSE(adopt_on(new_loop, parked[0]).valid());
  old_loop.call([&] { old_loop.loop().resume_parked(parked[0].id); });
  ASSERT_TRUE(send_all(c.get(), "still here"));
  EXPECT_EQ(recv_exactly(c.get(), 10), "still here");
}


// Holds its input as MQTT does during a handover (consumes nothing, keeps the connection on
// the peer's FIN) while `holding`; otherwise records what it reads and the FIN after it.
class HoldingHandler : public MovableHandler {
 public:
  std::atomic<bool> holding{true};
  std::atomic<int> fins{0};
  std::mutex log_mu;
  std::string log;  // guarded by log_mu: the bytes read, then "<FIN>"
  DataResult on_data(Connection&, ByteView data) override {
    if (holding) return {0, Action::kKeep};
    std::lock_guard lock(log_mu);
    log.append(as_chars(data));
    return {data.size(), Action::kKeep};
  }
  Action on_peer_shutdown(Connection&) override {
    fins.fetch_add(1);
    if (holding) return Action::kKeep;
    std::lock_guard lock(log_mu);
    log += "<FIN>";
    return Action::kCloseAfterFlush;
  }
  std::string seen() {
    std::lock_guard lock(log_mu);
    return log;
  }
};

// A client that sent its last bytes and FIN while input was held: its connection moves (or
// goes back), and whoever serves it then reads the bytes first and the FIN after them.
TEST(LoopHandover, APeerThatLeftWhileInputWasHeldIsSeenLeavingAfterItsLastBytesWhereverItGoes) {
  for (bool commit : {true, false}) {
    LoopThread old_loop;
    LoopThread new_loop;
    uint16_t port = 0;
    auto* old_h = old_loop.serve<HoldingHandler>(port);
    auto* new_h = new_loop.add<HoldingHandler>();
    new_h->holding = false;
    old_loop.start();
    new_loop.start();
    UniqueFd c = connect_client(port);
    ASSERT_TRUE(send_all(c.get(), "last words"));
    ::shutdown(c.get(), SHUT_WR);
    ASSERT_TRUE(eventually([&] { return old_h->fins.load() == 1; }));

    auto parked = park_all(old_loop);
    ASSERT_EQ(parked.size(), 1u) << "a connection kept open after its peer's FIN moves too";
    EXPECT_EQ(parked[0].unread_input, "last words");
    HoldingHandler* reader = commit ? new_h : old_h;
    if (commit) {
      ASSERT_TRUE(adopt_on(new_loop, parked[0]).valid());
      old_loop.call([&] { old_loop.loop().release_parked(parked[0].id); });
    } else {
      old_h->holding = false;
      old_loop.call([&] { old_loop.loop().resume_parked(parked[0].id); });
    }
    ASSERT_TRUE(eventually([&] { return reader->seen() == "last words<FIN>"; })) << reader->seen();
    EXPECT_EQ(recv_some(c.get()), 0) << "closed after the FIN, as the handler chose";
    EXPECT_EQ(old_h->closed.load(), commit ? 0 : 1);
  }
}

}  // namespace
}  // namespace tcpms::testing
