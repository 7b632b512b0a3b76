// Store (src/store/store.h): writes through the store thread, reading everything back,
// body sharing and reclaiming, expiry, durability notices, the directory lock, and damaged
// files (garbled records, orphans, zeroed, truncated and garbled files; refuse mode).
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <thread>

#include "store/store.h"
#include "store/sqlite_db.h"
#include "store/store_files.h"

namespace tcpms::store {
namespace {

namespace fs = std::filesystem;

SharedBytes sb(std::string_view s) { return SharedBytes::copy_of(as_bytes(s)); }
std::string str(const SharedBytes& b) { return std::string(as_chars(b.view())); }

uint64_t unix_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

struct Collect : RecoveryVisitor {
  std::map<std::string, RecoveredSession> sessions;
  std::map<std::string, RecoveredSession> expired;
  std::map<std::string, RetainedRecord> retained;
  void on_retained(std::string topic, RetainedRecord r) override { retained[topic] = std::move(r); }
  void on_session(RecoveredSession s) override { sessions[s.client_id] = std::move(s); }
  void on_expired_session(RecoveredSession s) override { expired[s.client_id] = std::move(s); }
};

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("tcpms-store-test-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<Store> open(Collect& c, RecoveryReport& r,
                              OnDamage on_damage = OnDamage::kSalvage,
                              SyncPolicy sync = SyncPolicy{}) {
    std::string error;
    auto s = Store::open(StoreConfig{dir_.string(), sync, on_damage}, c, r, error);
    error_ = error;
    return s;
  }
  // Opens the store, starts its thread, runs `ops` against its writer, stops (everything
  // submitted is committed) and closes it.
  void write(const std::function<void(StoreWriter&)>& ops) {
    Collect c;
    RecoveryReport r;
    auto s = open(c, r);
    ASSERT_TRUE(s) << error_;
    s->start();
    ops(s->writer());
    s->stop();
  }
  // The same, with `ops` submitted before the thread starts, so they make one batch, and
  // `then` (if any) a batch after it.
  void write_one_batch(const std::function<void(StoreWriter&)>& ops,
                       const std::function<void(StoreWriter&)>& then = {}) {
    Collect c;
    RecoveryReport r;
    auto s = open(c, r);
    ASSERT_TRUE(s) << error_;
    ops(s->writer());
    s->start();
    if (then) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      then(s->writer());
    }
    s->stop();
  }
  // Opens, reads back, and closes again; what was recovered.
  Collect reopen(RecoveryReport* report = nullptr) {
    Collect c;
    RecoveryReport r;
    auto s = open(c, r);
    EXPECT_TRUE(s) << error_;
    if (s) {
      s->start();
      s->stop();
    }
    if (report) *report = r;
    return c;
  }
  int64_t count(const char* table) {
    std::string e;
    SqliteDb db = SqliteDb::open(store_db_path(dir_.string()), true, e);
    return db.query_int((std::string("SELECT count(*) FROM ") + table).c_str(), -1);
  }
  // A store with `n` sessions "c<i>", each with a subscription, a queued message and (every
  // third) a retained message.
  void fill(int n) {
    write([&](StoreWriter& w) { fill_with(w, n); });
  }
  void fill_with(StoreWriter& w, int n) {
    for (int i = 0; i < n; ++i) {
      const std::string id = "c" + std::to_string(i);
      w.submit(PutSession{id, SessionRecord{mqtt::ProtocolVersion::kV311, kNeverExpires, 0, 0}});
      w.submit(PutSubscription{id, "dev/" + id + "/cmd", SubscriptionRecord{mqtt::QoS::k1, 0, 0}});
      const uint64_t body = w.next_id();
      w.submit(PutBody{body, MessageBody{sb("dev/" + id + "/cmd"), sb("payload-" + id), {}, 0}});
      w.submit(PutMessage{id, w.next_id(),
                          MessageRef{body, mqtt::QoS::k1, false, DeliveryState::kQueued, 0, {}}});
      if (i % 3 == 0)
        w.submit(PutRetained{"r/" + id, RetainedRecord{mqtt::QoS::k0, sb("r" + id), {}, 0}});
    }
  }
  fs::path db_path() const { return dir_ / kStoreFileName; }
  std::vector<fs::path> aside_dirs() const {
    std::vector<fs::path> out;
    for (auto& e : fs::directory_iterator(dir_))
      if (e.path().filename().string().starts_with("damaged-")) out.push_back(e.path());
    return out;
  }

  fs::path dir_;
  std::string error_;
};

TEST_F(StoreTest, FreshDirectoryRecoversNothing) {
  Collect c;
  RecoveryReport r;
  auto s = open(c, r);
  ASSERT_TRUE(s) << error_;
  EXPECT_TRUE(c.sessions.empty());
  EXPECT_FALSE(r.damaged());
  EXPECT_TRUE(fs::exists(db_path()));
}

TEST_F(StoreTest, EverythingComesBack) {
  write([&](StoreWriter& w) {
    w.submit(PutSession{"v5", SessionRecord{mqtt::ProtocolVersion::kV5, 3600, 0, 41}});
    w.submit(PutSubscription{"v5", "a/+", SubscriptionRecord{mqtt::QoS::k2, kSubscriptionNoLocal, 77}});
    w.submit(PutSubscription{"v5", "b/#", SubscriptionRecord{mqtt::QoS::k1, 0, 0}});
    w.submit(PutSubscription{"v5", "$share/g/c/+",
                             SubscriptionRecord{mqtt::QoS::k1, kSubscriptionRetainAsPublished, 12}});
    const uint64_t body = w.next_id();
    w.submit(PutBody{body, MessageBody{sb("a/x"), sb("hello"), {}, 0}});
    const uint64_t s1 = w.next_id(), s2 = w.next_id(), s3 = w.next_id();
    w.submit(PutMessage{"v5", s1, MessageRef{body, mqtt::QoS::k1, false, DeliveryState::kWaitPuback, 5, {}}});
    w.submit(PutMessage{"v5", s2, MessageRef{body, mqtt::QoS::k2, true, DeliveryState::kQueued, 0, {}}});
    w.submit(PutMessage{"v5", s3, MessageRef{0, mqtt::QoS::k2, false, DeliveryState::kWaitPubcomp, 6, {}}});
    w.submit(PutInbound{"v5", 9});
    w.submit(PutInbound{"v5", 3});
    w.submit(PutWill{"v5", WillRecord{sb("w/t"), sb("bye"), mqtt::QoS::k1, false, {}, 0, 30, unix_ms() + 30000}});
    w.submit(PutSession{"old", SessionRecord{mqtt::ProtocolVersion::kV311, kNeverExpires, 0, 0}});
    w.submit(PutSubscription{"old", "$share/g/c/+", SubscriptionRecord{mqtt::QoS::k2, 0, 0}});
    w.submit(PutMessage{"old", w.next_id(), MessageRef{body, mqtt::QoS::k1, false, DeliveryState::kQueued, 0, {}}});
    w.submit(PutRetained{"r/1", RetainedRecord{mqtt::QoS::k1, sb("on"), {}, 0}});
  });
  RecoveryReport r;
  Collect c = reopen(&r);
  EXPECT_FALSE(r.damaged());
  EXPECT_EQ(r.sessions, 2u);
  ASSERT_EQ(c.sessions.count("v5"), 1u);
  const RecoveredSession& v5 = c.sessions["v5"];
  EXPECT_EQ(v5.session.version, mqtt::ProtocolVersion::kV5);
  EXPECT_EQ(v5.session.expiry_s, 3600u);
  EXPECT_EQ(v5.session.last_packet_id, 41);
  ASSERT_EQ(v5.subscriptions.size(), 3u);  // by filter: "$share/..." sorts first
  EXPECT_EQ(v5.subscriptions[0].first, "$share/g/c/+");
  EXPECT_EQ(v5.subscriptions[0].second,
            (SubscriptionRecord{mqtt::QoS::k1, kSubscriptionRetainAsPublished, 12}));
  EXPECT_EQ(v5.subscriptions[1].first, "a/+");
  EXPECT_EQ(v5.subscriptions[1].second.subscription_id, 77u);
  ASSERT_EQ(c.sessions["old"].subscriptions.size(), 1u);
  EXPECT_EQ(c.sessions["old"].subscriptions[0].first, "$share/g/c/+");
  EXPECT_EQ(c.sessions["old"].subscriptions[0].second.qos, mqtt::QoS::k2);
  ASSERT_EQ(v5.messages.size(), 3u);
  EXPECT_EQ(v5.messages[0].ref.state, DeliveryState::kWaitPuback);
  EXPECT_EQ(v5.messages[0].ref.packet_id, 5);
  EXPECT_EQ(str(v5.messages[0].body.payload), "hello");
  EXPECT_EQ(v5.messages[1].ref.state, DeliveryState::kQueued);
  EXPECT_TRUE(v5.messages[1].ref.retain);
  EXPECT_EQ(v5.messages[2].ref.state, DeliveryState::kWaitPubcomp);
  EXPECT_TRUE(v5.messages[2].body.payload.empty());
  EXPECT_EQ(v5.inbound, (std::vector<uint16_t>{3, 9}));
  ASSERT_TRUE(v5.will);
  EXPECT_EQ(str(v5.will->payload), "bye");
  // One body, shared in memory by both sessions after recovery as it was before.
  ASSERT_EQ(c.sessions["old"].messages.size(), 1u);
  EXPECT_EQ(c.sessions["old"].messages[0].body.payload.view().data(),
            v5.messages[0].body.payload.view().data());
  EXPECT_EQ(r.bodies, 1u);
  EXPECT_EQ(str(c.retained["r/1"].payload), "on");
}

TEST_F(StoreTest, BodiesGoWithTheirLastRefAndSessionsWithEverything) {
  Collect c;
  RecoveryReport r;
  {
    auto s = open(c, r);
    ASSERT_TRUE(s);
    s->start();
    StoreWriter& w = s->writer();
    for (const char* id : {"a", "b"})
      w.submit(PutSession{id, SessionRecord{mqtt::ProtocolVersion::kV311, kNeverExpires, 0, 0}});
    const uint64_t body = w.next_id();
    w.submit(PutBody{body, MessageBody{sb("t"), sb("x"), {}, 0}});
    const uint64_t sa = w.next_id(), sb_ = w.next_id();
    w.submit(PutMessage{"a", sa, MessageRef{body, mqtt::QoS::k2, false, DeliveryState::kWaitPubrec, 1, {}}});
    w.submit(PutMessage{"b", sb_, MessageRef{body, mqtt::QoS::k1, false, DeliveryState::kQueued, 0, {}}});
    w.submit(PutBody{body, MessageBody{sb("t"), sb("x"), {}, 0}});  // a second loop's copy: ignored
    // a: PUBREC came; the ref lets go of the body.
    w.submit(PutMessage{"a", sa, MessageRef{0, mqtt::QoS::k2, false, DeliveryState::kWaitPubcomp, 1, {}}, false, body});
    w.submit(PutSubscription{"b", "t", SubscriptionRecord{}});
    w.submit(PutInbound{"b", 4});
    s->stop();
  }
  EXPECT_EQ(count("bodies"), 1);
  {
    Collect c2;
    RecoveryReport r2;
    auto s = open(c2, r2);
    ASSERT_TRUE(s);
    s->start();
    s->writer().submit(DropSession{"b"});  // b's ref was the body's last
    s->stop();
  }
  EXPECT_EQ(count("bodies"), 0);
  EXPECT_EQ(count("subscriptions"), 0);
  EXPECT_EQ(count("inbound"), 0);
  EXPECT_EQ(count("messages"), 1);  // a's PUBCOMP-waiting id
  EXPECT_EQ(count("sessions"), 1);
}

TEST_F(StoreTest, ARefWrittenAndDeletedInOneBatchCostsNoRow) {
  // The ref is acknowledged before its commit; another of the same body stays.
  write_one_batch([&](StoreWriter& w) {
    w.submit(PutSession{"a", SessionRecord{}});
    const uint64_t body = w.next_id(), seq = w.next_id(), kept = w.next_id();
    w.submit(PutBody{body, MessageBody{sb("t"), sb("x"), {}, 0}});
    w.submit(PutMessage{"a", seq, MessageRef{body, mqtt::QoS::k1, false, DeliveryState::kQueued, 0, {}}});
    w.submit(PutMessage{"a", seq, MessageRef{body, mqtt::QoS::k1, false, DeliveryState::kWaitPuback, 4, {}}, false, 0});
    w.submit(DeleteMessage{"a", seq, body});
    w.submit(PutMessage{"a", kept, MessageRef{body, mqtt::QoS::k1, false, DeliveryState::kQueued, 0, {}}});
  });
  EXPECT_EQ(count("messages"), 1);
  EXPECT_EQ(count("bodies"), 1);  // still named by the kept ref
  RecoveryReport r;
  Collect c = reopen(&r);
  EXPECT_FALSE(r.damaged());
  ASSERT_EQ(c.sessions["a"].messages.size(), 1u);
  EXPECT_EQ(c.sessions["a"].messages[0].ref.state, DeliveryState::kQueued);
}

TEST_F(StoreTest, ABodyWhoseRefsAllCancelOutIsNotKept) {
  write_one_batch(
      [&](StoreWriter& w) {
        w.submit(PutSession{"a", SessionRecord{}});
        const uint64_t body = w.next_id(), seq = w.next_id();
        w.submit(PutBody{body, MessageBody{sb("t"), sb("x"), {}, 0}});
        w.submit(PutMessage{"a", seq, MessageRef{body, mqtt::QoS::k1, false, DeliveryState::kWaitPuback, 1, {}}});
        w.submit(DeleteMessage{"a", seq, body});
      },
      // A second batch: the body the first left without a ref goes.
      [&](StoreWriter& w) { w.submit(PutSession{"b", SessionRecord{}}); });
  EXPECT_EQ(count("messages"), 0);
  EXPECT_EQ(count("bodies"), 0);
}

TEST_F(StoreTest, ExpiredSessionsAreReclaimedAndTheirWillOwed) {
  write([&](StoreWriter& w) {
    const uint64_t long_ago = unix_ms() - 60'000;
    w.submit(PutSession{"gone", SessionRecord{mqtt::ProtocolVersion::kV5, 10, long_ago, 0}});
    w.submit(PutWill{"gone", WillRecord{sb("w"), sb("bye"), mqtt::QoS::k0, false, {}, 0, 3600, long_ago + 3'600'000}});
    w.submit(PutSubscription{"gone", "t", SubscriptionRecord{}});
    w.submit(PutSession{"kept", SessionRecord{mqtt::ProtocolVersion::kV5, 3600, long_ago, 0}});
  });
  RecoveryReport r;
  Collect c = reopen(&r);
  EXPECT_EQ(r.expired_sessions, 1u);
  ASSERT_EQ(c.expired.count("gone"), 1u);
  ASSERT_TRUE(c.expired["gone"].will);
  EXPECT_EQ(c.sessions.count("kept"), 1u);
  EXPECT_EQ(count("sessions"), 1);
  EXPECT_EQ(count("wills"), 0);
  EXPECT_EQ(count("subscriptions"), 0);
}

TEST_F(StoreTest, DurabilityIsNotifiedThroughTheListener) {
  Collect c;
  RecoveryReport r;
  auto s = open(c, r);
  ASSERT_TRUE(s);
  std::atomic<uint64_t> heard{0};
  const uint32_t l = s->writer().add_listener([&](uint64_t d) { heard.store(d); });
  s->start();
  const uint64_t seq = s->writer().submit(PutSession{"x", SessionRecord{}});
  if (!s->writer().want(l, seq)) {
    for (int i = 0; i < 500 && heard.load() < seq; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_GE(heard.load(), seq);
  }
  EXPECT_GE(s->writer().durable_seq(), seq);
  EXPECT_TRUE(s->writer().want(l, seq));  // already durable: nothing owed
  EXPECT_GE(s->writer().stats().syncs.load(), 1u);
}

TEST_F(StoreTest, ACommitNeverHoldsALaterWriteWithoutAnEarlierOne) {
  // A shared message handed from a member on one loop to a member on another: the taker's loop
  // submits its copy, then the leaver's loop (told after that) submits the delete of its own.
  // The writer commits in submission order, a batch at a time, so every commit is a prefix of
  // the submissions: no commit can hold the delete without the copy, whatever the batches
  // (MqttHandler::handoff_answered relies on this). Checked after every commit, on the store
  // thread, between two loop threads submitting as fast as they can.
  constexpr int kPairs = 400;
  std::vector<uint64_t> leaver_seqs;
  uint64_t body = 0;
  write([&](StoreWriter& w) {
    for (const char* id : {"leaver", "taker"})
      w.submit(PutSession{id, SessionRecord{mqtt::ProtocolVersion::kV311, kNeverExpires, 0, 0}});
    body = w.next_id();
    w.submit(PutBody{body, MessageBody{sb("t"), sb("x"), {}, 0}});
    for (int i = 0; i < kPairs; ++i) {
      leaver_seqs.push_back(w.next_id());
      w.submit(PutMessage{"leaver", leaver_seqs.back(),
                          MessageRef{body, mqtt::QoS::k1, false, DeliveryState::kQueued, 0, {}}});
    }
  });
  Collect c;
  RecoveryReport r;
  auto s = open(c, r);
  ASSERT_TRUE(s) << error_;
  StoreWriter& w = s->writer();
  std::atomic<int> commits{0}, violations{0};
  const std::string path = db_path().string();
  const uint32_t l = w.add_listener([&](uint64_t) {
    std::string e;
    SqliteDb db = SqliteDb::open(path, true, e);
    const int64_t left = db.query_int(
        "SELECT count(*) FROM messages WHERE client_id = CAST('leaver' AS BLOB)", -1);
    const int64_t taken = db.query_int(
        "SELECT count(*) FROM messages WHERE client_id = CAST('taker' AS BLOB)", -1);
    if (left < 0 || taken < 0 || kPairs - left > taken) violations.fetch_add(1);
    commits.fetch_add(1);
  });
  w.want(l, UINT64_MAX);  // a notice after every commit
  s->start();
  std::atomic<int> copied{0};
  std::thread taker_loop([&] {
    for (int i = 0; i < kPairs; ++i) {
      w.submit(PutMessage{"taker", w.next_id(),
                          MessageRef{body, mqtt::QoS::k1, false, DeliveryState::kQueued, 0, {}}});
      copied.store(i + 1, std::memory_order_release);  // "posted to the leaver's loop"
      if (i % 16 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  std::thread leaver_loop([&] {
    for (int i = 0; i < kPairs; ++i) {
      while (copied.load(std::memory_order_acquire) <= i) std::this_thread::yield();
      w.submit(DeleteMessage{"leaver", leaver_seqs[i], body});
    }
  });
  taker_loop.join();
  leaver_loop.join();
  s->stop();
  EXPECT_GT(commits.load(), 1) << "the pairs spread over several commits";
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(count("messages"), kPairs);  // the takers' copies
  EXPECT_EQ(count("bodies"), 1);
}

TEST_F(StoreTest, IntervalModeSyncsTheWal) {
  Collect c;
  RecoveryReport r;
  auto s = open(c, r, OnDamage::kSalvage, SyncPolicy{SyncMode::kInterval, 20});
  ASSERT_TRUE(s);
  s->start();
  s->writer().submit(PutSession{"x", SessionRecord{}});
  for (int i = 0; i < 200 && s->writer().stats().syncs.load() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_GE(s->writer().stats().syncs.load(), 1u);
  s.reset();
  EXPECT_EQ(reopen().sessions.size(), 1u);
}

TEST_F(StoreTest, ASecondProcessIsRefusedTheDirectory) {
  Collect c;
  RecoveryReport r;
  auto first = open(c, r);
  ASSERT_TRUE(first);
  // flock locks belong to the open file description: a second open in this process conflicts
  // just as another process would.
  Collect c2;
  RecoveryReport r2;
  EXPECT_FALSE(open(c2, r2));
  EXPECT_NE(error_.find("in use by another process"), std::string::npos) << error_;
}

// --- an upgrade: the store handed from one process to the next (store.h) ---------------------

TEST_F(StoreTest, ATakeoverQueuesUntilTheOldProcessLetsGoThenReplacesEverythingInOneCommit) {
  fill(6);  // the old process's rows: all of them go
  Collect c;
  RecoveryReport r;
  auto old_store = open(c, r);
  ASSERT_TRUE(old_store) << error_;
  old_store->start();
  ASSERT_EQ(c.sessions.size(), 6u);

  auto taker = Store::taking_over(StoreConfig{dir_.string(), SyncPolicy{}, OnDamage::kSalvage});
  StoreWriter& w = taker->writer();
  std::atomic<uint64_t> notified{0};
  w.add_listener([&](uint64_t d) { notified = d; });
  // Its state, written before it has the files; durability waits meanwhile.
  w.submit(PutSession{"moved", SessionRecord{mqtt::ProtocolVersion::kV311, kNeverExpires, 0, 3}});
  w.submit(PutSubscription{"moved", "m/#", SubscriptionRecord{mqtt::QoS::k1, 0, 0}});
  const uint64_t body = w.next_id();
  w.submit(PutBody{body, MessageBody{sb("m/x"), sb("kept"), {}, 0}});
  const uint64_t last = w.submit(PutMessage{"moved", w.next_id(),
                                            MessageRef{body, mqtt::QoS::k1, false, DeliveryState::kQueued, 0, {}}});
  EXPECT_FALSE(w.want(0, last));
  std::string error;
  EXPECT_FALSE(taker->take_files(50, error));  // the old process still holds them
  EXPECT_NE(error.find("in use by another process"), std::string::npos) << error;

  // The old process writes on until it lets go; those writes are replaced too.
  old_store->writer().submit(PutSession{"late", SessionRecord{mqtt::ProtocolVersion::kV311, kNeverExpires, 0, 0}});
  std::thread let_go([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    old_store->release();
  });
  ASSERT_TRUE(taker->take_files(5000, error)) << error;  // waits for release()
  let_go.join();
  // After release the old process's writes are dropped, not queued for ever.
  old_store->writer().submit(PutSession{"after", SessionRecord{mqtt::ProtocolVersion::kV311, kNeverExpires, 0, 0}});
  EXPECT_EQ(old_store->writer().stats().queued_ops.load(), 0u);
  EXPECT_EQ(count("sessions"), 7);  // nothing of the taker's yet
  taker->start();
  for (int i = 0; i < 500 && notified.load() < last; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_GE(w.durable_seq(), last);
  EXPECT_GE(notified.load(), last);
  EXPECT_EQ(w.stats().commits.load(), 1u);  // the clear and the state together
  taker.reset();
  old_store.reset();

  Collect back = reopen();
  ASSERT_EQ(back.sessions.size(), 1u);
  const RecoveredSession& m = back.sessions.at("moved");
  EXPECT_EQ(m.session.last_packet_id, 3);
  ASSERT_EQ(m.messages.size(), 1u);
  EXPECT_EQ(str(m.messages[0].body.payload), "kept");
  EXPECT_TRUE(back.retained.empty());
  EXPECT_EQ(count("bodies"), 1);
}

TEST_F(StoreTest, ATakeoverThatCannotHaveTheFilesWritesNothingAndNothingWaits) {
  fill(2);
  Collect c;
  RecoveryReport r;
  auto holder = open(c, r);  // never lets go
  ASSERT_TRUE(holder);
  auto taker = Store::taking_over(StoreConfig{dir_.string(), SyncPolicy{}, OnDamage::kSalvage});
  std::atomic<uint64_t> notified{0};
  taker->writer().add_listener([&](uint64_t d) { notified = d; });
  const uint64_t seq = taker->writer().submit(
      PutSession{"x", SessionRecord{mqtt::ProtocolVersion::kV311, kNeverExpires, 0, 0}});
  EXPECT_FALSE(taker->writer().want(0, seq));
  std::string error;
  EXPECT_FALSE(taker->take_files(20, error));
  taker->abandon_files();
  EXPECT_EQ(notified.load(), seq);  // what waited is let go
  const uint64_t later = taker->writer().submit(DropSession{"x"});
  EXPECT_TRUE(taker->writer().want(0, later));
  taker.reset();
  holder.reset();
  EXPECT_EQ(reopen().sessions.size(), 2u);  // untouched
}

TEST_F(StoreTest, ATakeoverOfADamagedStoreKeepsItAsideAndWritesAnew) {
  fill(3);
  std::ofstream(db_path(), std::ios::binary | std::ios::trunc) << std::string(8192, '\0');
  auto taker = Store::taking_over(StoreConfig{dir_.string(), SyncPolicy{}, OnDamage::kSalvage});
  taker->writer().submit(PutSession{"new", SessionRecord{mqtt::ProtocolVersion::kV311, kNeverExpires, 0, 0}});
  std::string error;
  ASSERT_TRUE(taker->take_files(0, error)) << error;
  EXPECT_EQ(aside_dirs().size(), 1u);
  taker->start();
  taker.reset();
  Collect back = reopen();
  ASSERT_EQ(back.sessions.size(), 1u);
  EXPECT_TRUE(back.sessions.contains("new"));
}

TEST_F(StoreTest, AGarbledRecordIsLeftOutReportedAndKeptAside) {
  fill(30);
  {
    std::string e;
    SqliteDb db = SqliteDb::open(store_db_path(dir_.string()), false, e);
    ASSERT_EQ(db.exec("UPDATE subscriptions SET record = x'0102030405060708' WHERE client_id = CAST('c7' AS BLOB)"), SQLITE_OK);
    ASSERT_EQ(db.exec("INSERT INTO subscriptions VALUES(CAST('nobody' AS BLOB), CAST('x' AS BLOB), x'00')"), SQLITE_OK);
  }
  RecoveryReport r;
  Collect c = reopen(&r);
  EXPECT_TRUE(r.damaged());
  EXPECT_EQ(r.bad_records, 1u);
  EXPECT_EQ(r.orphans, 1u);
  EXPECT_EQ(r.sessions, 30u);
  EXPECT_TRUE(c.sessions["c7"].subscriptions.empty());
  EXPECT_EQ(c.sessions["c8"].subscriptions.size(), 1u);
  ASSERT_EQ(aside_dirs().size(), 1u);
  EXPECT_TRUE(fs::exists(aside_dirs()[0] / kStoreFileName));
  // Repaired in place: the next start finds nothing wrong.
  RecoveryReport again;
  reopen(&again);
  EXPECT_FALSE(again.damaged()) << (again.problems.empty() ? "" : again.problems[0]);
  EXPECT_EQ(again.sessions, 30u);
}

TEST_F(StoreTest, RefuseModeChangesNothing) {
  fill(5);
  {
    std::string e;
    SqliteDb db = SqliteDb::open(store_db_path(dir_.string()), false, e);
    ASSERT_EQ(db.exec("UPDATE sessions SET record = x'00' WHERE client_id = CAST('c1' AS BLOB)"), SQLITE_OK);
  }
  Collect c;
  RecoveryReport r;
  EXPECT_FALSE(open(c, r, OnDamage::kRefuse));
  EXPECT_NE(error_.find("refuse"), std::string::npos) << error_;
  EXPECT_TRUE(aside_dirs().empty());
  EXPECT_EQ(count("sessions"), 5);
}

void overwrite(const fs::path& p, size_t offset, const std::string& bytes) {
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

TEST_F(StoreTest, AZeroedFileIsKeptAsideAndTheServerStartsEmpty) {
  fill(50);
  const auto size = fs::file_size(db_path());
  overwrite(db_path(), 0, std::string(size, '\0'));
  Collect c;
  RecoveryReport r;
  auto s = open(c, r);
  ASSERT_TRUE(s) << error_;
  EXPECT_TRUE(r.damaged());
  EXPECT_FALSE(s->aside_dir().empty());
  EXPECT_TRUE(fs::exists(fs::path(s->aside_dir()) / kStoreFileName));
  s->start();
  s->writer().submit(PutSession{"new", SessionRecord{}});
  s->stop();
  s.reset();
  EXPECT_EQ(reopen().sessions.count("new"), 1u);
}

TEST_F(StoreTest, RefuseModeRefusesAZeroedFile) {
  fill(5);
  overwrite(db_path(), 0, std::string(fs::file_size(db_path()), '\0'));
  Collect c;
  RecoveryReport r;
  EXPECT_FALSE(open(c, r, OnDamage::kRefuse));
  EXPECT_NE(error_.find("damaged"), std::string::npos) << error_;
  EXPECT_TRUE(aside_dirs().empty());
}

TEST_F(StoreTest, ATruncatedFileGivesWhatItStillHas) {
  fill(2000);
  fs::resize_file(db_path(), fs::file_size(db_path()) / 2);
  Collect c;
  RecoveryReport r;
  auto s = open(c, r);
  ASSERT_TRUE(s) << error_;
  EXPECT_TRUE(r.damaged());
  EXPECT_LT(r.sessions, 2000u);
  s->start();
  s->stop();
  s.reset();
  RecoveryReport again;
  Collect c2 = reopen(&again);
  EXPECT_FALSE(again.damaged());
  EXPECT_EQ(c2.sessions.size(), c.sessions.size());
}

TEST_F(StoreTest, GarbledPagesNeverCrashTheReader) {
  fill(2000);
  const auto size = fs::file_size(db_path());
  std::mt19937 rng(17);
  for (int round = 0; round < 20; ++round) {
    // Garble a few runs of bytes anywhere (the header included, in some rounds).
    std::string garble(64, '\0');
    for (char& ch : garble) ch = static_cast<char>(rng());
    for (int k = 0; k < 4; ++k) overwrite(db_path(), rng() % (size - 64), garble);
    Collect c;
    RecoveryReport r;
    auto s = open(c, r);
    ASSERT_TRUE(s) << error_;  // salvage mode always starts
    s->start();
    s->stop();
  }
}

}  // namespace
}  // namespace tcpms::store
