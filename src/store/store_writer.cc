#include "store/store_writer.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

namespace tcpms::store {

namespace {

using Clock = std::chrono::steady_clock;

// A batch past this many ops is committed without waiting for the commit window.
constexpr size_t kMaxBatchOps = 20000;
constexpr auto kRetryAfter = std::chrono::seconds(1);
constexpr auto kReclaimEvery = std::chrono::seconds(60);
// Free pages kept before an incremental vacuum gives space back to the file system.
constexpr int64_t kReclaimMinFreePages = 2048;

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

}  // namespace

struct StoreWriter::Statements {
  explicit Statements(SqliteDb& db)
      : put_session(db.prepare("INSERT OR REPLACE INTO sessions VALUES(?1, ?2)")),
        del_session(db.prepare("DELETE FROM sessions WHERE client_id = ?1")),
        del_session_subs(db.prepare("DELETE FROM subscriptions WHERE client_id = ?1")),
        del_session_msgs(db.prepare("DELETE FROM messages WHERE client_id = ?1")),
        del_session_inbound(db.prepare("DELETE FROM inbound WHERE client_id = ?1")),
        session_msgs(db.prepare("SELECT record FROM messages WHERE client_id = ?1")),
        put_sub(db.prepare("INSERT OR REPLACE INTO subscriptions VALUES(?1, ?2, ?3)")),
        del_sub(db.prepare("DELETE FROM subscriptions WHERE client_id = ?1 AND filter = ?2")),
        put_body(db.prepare("INSERT OR REPLACE INTO bodies VALUES(?1, ?2)")),
        del_body(db.prepare("DELETE FROM bodies WHERE id = ?1")),
        put_msg(db.prepare("INSERT OR REPLACE INTO messages VALUES(?1, ?2, ?3)")),
        del_msg(db.prepare("DELETE FROM messages WHERE client_id = ?1 AND seq = ?2")),
        put_inbound(db.prepare("INSERT OR IGNORE INTO inbound VALUES(?1, ?2)")),
        del_inbound(db.prepare("DELETE FROM inbound WHERE client_id = ?1 AND packet_id = ?2")),
        put_will(db.prepare("INSERT OR REPLACE INTO wills VALUES(?1, ?2)")),
        del_will(db.prepare("DELETE FROM wills WHERE client_id = ?1")),
        put_retained(db.prepare("INSERT OR REPLACE INTO retained VALUES(?1, ?2)")),
        del_retained(db.prepare("DELETE FROM retained WHERE topic = ?1")),
        begin(db.prepare("BEGIN")),
        commit(db.prepare("COMMIT")),
        rollback(db.prepare("ROLLBACK")) {}
  bool valid() const {
    for (const SqliteStatement* s :
         {&put_session, &del_session, &del_session_subs, &del_session_msgs, &del_session_inbound,
          &session_msgs, &put_sub, &del_sub, &put_body, &del_body, &put_msg, &del_msg,
          &put_inbound, &del_inbound, &put_will, &del_will, &put_retained, &del_retained, &begin,
          &commit, &rollback})
      if (!s->valid()) return false;
    return true;
  }
  SqliteStatement put_session, del_session, del_session_subs, del_session_msgs, del_session_inbound,
      session_msgs, put_sub, del_sub, put_body, del_body, put_msg, del_msg, put_inbound,
      del_inbound, put_will, del_will, put_retained, del_retained, begin, commit, rollback;
};

namespace {

// Runs a statement whose parameters are bound; true when it completed.
bool execute(SqliteStatement& s) {
  const int rc = s.step();
  s.reset();
  return rc == SQLITE_DONE || rc == SQLITE_ROW;
}

}  // namespace

StoreWriter::StoreWriter(SqliteDb db, std::string wal_path, SyncPolicy policy,
                         std::unordered_map<uint64_t, uint32_t> body_refs, uint64_t next_id)
    : db_(std::move(db)),
      wal_path_(std::move(wal_path)),
      policy_(policy),
      st_(std::make_unique<Statements>(db_)),
      refs_(std::move(body_refs)),
      next_id_(next_id == 0 ? 1 : next_id) {
  if (!st_->valid()) spdlog::error("store: preparing statements failed: {}", db_.error());
  stats_.bodies.store(refs_.size(), std::memory_order_relaxed);
}

StoreWriter::StoreWriter(SyncPolicy policy) : policy_(policy), next_id_(1) {}

void StoreWriter::attach(SqliteDb db, std::string wal_path) {
  db_ = std::move(db);
  wal_path_ = std::move(wal_path);
  st_ = std::make_unique<Statements>(db_);
  if (!st_->valid()) spdlog::error("store: preparing statements failed: {}", db_.error());
}

void StoreWriter::abandon() {
  uint64_t last;
  {
    std::lock_guard lock(mu_);
    abandoned_ = true;
    stats_.queued_ops.fetch_sub(queue_.size(), std::memory_order_relaxed);
    queue_.clear();
    last = last_seq_;
  }
  durable_.store(last, std::memory_order_seq_cst);
  notify_listeners(last);  // no store thread runs: this thread stands in for it
}

void StoreWriter::close() {
  st_.reset();
  wal_fd_.reset();
  db_.close();
}

StoreWriter::~StoreWriter() { stop(); }

uint32_t StoreWriter::add_listener(Notify notify) {
  auto l = std::make_unique<Listener>();
  l->notify = std::move(notify);
  listeners_.push_back(std::move(l));
  return static_cast<uint32_t>(listeners_.size() - 1);
}

void StoreWriter::start() {
  thread_ = std::thread([this] { run(); });
}

void StoreWriter::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

uint64_t StoreWriter::submit(WriteOp op) {
  bool wake;
  uint64_t seq;
  {
    std::lock_guard lock(mu_);
    seq = ++last_seq_;
    if (abandoned_) {
      durable_.store(seq, std::memory_order_seq_cst);
      return seq;
    }
    if (stopping_) return seq;  // handed over (or shutting down): nothing more is written
    wake = queue_.empty();
    if (wake) first_queued_ = Clock::now();
    queue_.push_back(Pending{seq, std::move(op)});
  }
  stats_.queued_ops.fetch_add(1, std::memory_order_relaxed);
  // The thread sleeps only on an empty queue; later ops find it awake or about to look.
  if (wake) cv_.notify_one();
  return seq;
}

uint64_t StoreWriter::last_seq() const {
  std::lock_guard lock(mu_);
  return last_seq_;
}

bool StoreWriter::want(uint32_t listener, uint64_t seq) {
  Listener& l = *listeners_[listener];
  uint64_t w = l.wanted.load(std::memory_order_seq_cst);
  while (w < seq && !l.wanted.compare_exchange_weak(w, seq, std::memory_order_seq_cst)) {
  }
  // Either the thread's next read of `wanted` sees `seq`, or this read sees its durable_ store
  // (both seq_cst): a wait is never missed.
  return durable_.load(std::memory_order_seq_cst) >= seq;
}

void StoreWriter::notify_listeners(uint64_t durable) {
  for (auto& lp : listeners_) {
    Listener& l = *lp;
    const uint64_t w = l.wanted.load(std::memory_order_seq_cst);
    if (w > l.notified && durable > l.notified) {
      l.notified = durable;
      l.notify(durable);
    }
  }
}

void StoreWriter::run() {
  std::vector<Pending> batch, retry;
  auto last_sync = Clock::now();
  auto last_reclaim = Clock::now();
  bool unsynced = false;
  const auto window = std::chrono::milliseconds(policy_.commit_window_ms());
  const auto sync_every = std::chrono::milliseconds(policy_.interval_ms);
  for (;;) {
    bool stopping;
    {
      std::unique_lock lock(mu_);
      auto wake_at = Clock::time_point::max();
      if (unsynced && policy_.mode == SyncMode::kInterval) wake_at = last_sync + sync_every;
      if (!retry.empty()) wake_at = std::min(wake_at, Clock::now() + kRetryAfter);
      auto ready = [&] { return !queue_.empty() || stopping_; };
      if (wake_at == Clock::time_point::max())
        cv_.wait(lock, ready);
      else
        cv_.wait_until(lock, wake_at, ready);
      // Let a batch grow for the commit window (interval and off modes), unless it is big.
      if (window.count() > 0 && !stopping_)
        cv_.wait_until(lock, first_queued_ + window,
                       [&] { return stopping_ || queue_.size() >= kMaxBatchOps; });
      stopping = stopping_;
      batch.swap(queue_);
    }
    stats_.queued_ops.fetch_sub(batch.size(), std::memory_order_relaxed);
    if (!retry.empty()) {
      retry.insert(retry.end(), std::make_move_iterator(batch.begin()),
                   std::make_move_iterator(batch.end()));
      batch.swap(retry);
      retry.clear();
    }
    if (!batch.empty()) {
      if (commit(batch)) {
        const uint64_t durable = batch.back().seq;
        if (policy_.mode == SyncMode::kEveryMessage) stats_.syncs.fetch_add(1, std::memory_order_relaxed);
        unsynced = policy_.mode == SyncMode::kInterval;
        durable_.store(durable, std::memory_order_seq_cst);
        notify_listeners(durable);
        batch.clear();
      } else {
        batch.swap(retry);  // kept, in order, ahead of what comes next
        if (stopping) {
          spdlog::critical("store: stopping with {} writes that could not be committed", retry.size());
          return;
        }
      }
    }
    const auto now = Clock::now();
    if (unsynced && (now - last_sync >= sync_every || stopping)) {
      sync_wal();
      unsynced = false;
      last_sync = now;
    }
    if (stopping && retry.empty()) {
      std::lock_guard lock(mu_);
      if (queue_.empty()) break;
      continue;
    }
    if (now - last_reclaim >= kReclaimEvery) {
      reclaim_space();
      last_reclaim = now;
    }
  }
  // A clean stop leaves a short WAL behind, so the next start reads less.
  db_.exec("PRAGMA wal_checkpoint(TRUNCATE)");
}

bool StoreWriter::commit(std::vector<Pending>& batch) {
  const auto t0 = Clock::now();
  if (!execute(st_->begin)) {
    stats_.commit_errors.fetch_add(1, std::memory_order_relaxed);
    spdlog::error("store: BEGIN failed: {}", db_.error());
    return false;
  }
  bool ok = true;
  created_.clear();
  cancel_pairs(batch);
  for (size_t i = 0; i < batch.size(); ++i) {
    if (skip_[i]) continue;
    if (!apply(batch[i].op)) {
      ok = false;
      break;
    }
  }
  if (ok) sweep_bodies();
  if (ok) ok = execute(st_->commit);
  if (!ok) {
    const std::string why = db_.error();
    execute(st_->rollback);
    stats_.commit_errors.fetch_add(1, std::memory_order_relaxed);
    // Logged at most every few seconds by the retry pace (one attempt per second).
    spdlog::error("store: commit of {} writes failed ({}); retrying every second, strict "
                  "acknowledgements wait",
                  batch.size(), why);
    recount_bodies();  // the rolled-back batch changed counts in memory
    unreferenced_.clear();
    return false;
  }
  stats_.commits.fetch_add(1, std::memory_order_relaxed);
  stats_.ops.fetch_add(batch.size(), std::memory_order_relaxed);
  stats_.commit_us_total.fetch_add(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count(),
      std::memory_order_relaxed);
  stats_.bodies.store(refs_.size(), std::memory_order_relaxed);
  return true;
}

bool StoreWriter::apply(const WriteOp& op) {
  Statements& s = *st_;
  scratch_.clear();
  return std::visit(
      Overloaded{
          [&](const ClearAll&) {
            for (const char* sql :
                 {"DELETE FROM sessions", "DELETE FROM subscriptions", "DELETE FROM messages",
                  "DELETE FROM bodies", "DELETE FROM inbound", "DELETE FROM wills",
                  "DELETE FROM retained"})
              if (db_.exec(sql) != SQLITE_OK) return false;
            refs_.clear();
            created_.clear();
            unreferenced_.clear();
            return true;
          },
          [&](const PutSession& o) {
            encode_session_record(o.record, scratch_);
            s.put_session.bind(1, o.client_id);
            s.put_session.bind(2, scratch_);
            return execute(s.put_session);
          },
          [&](const DropSession& o) {
            // Release the bodies its messages named before the rows go.
            s.session_msgs.bind(1, o.client_id);
            std::vector<uint64_t> bodies;
            int rc;
            while ((rc = s.session_msgs.step()) == SQLITE_ROW) {
              auto ref = decode_message_ref(s.session_msgs.column_blob(0));
              if (ref.ok() && ref.value.body_id != 0) bodies.push_back(ref.value.body_id);
            }
            s.session_msgs.reset();
            if (rc != SQLITE_DONE) return false;
            for (SqliteStatement* d : {&s.del_session, &s.del_session_subs, &s.del_session_msgs,
                                       &s.del_session_inbound, &s.del_will}) {
              d->bind(1, o.client_id);
              if (!execute(*d)) return false;
            }
            for (uint64_t id : bodies) release_body(id);
            return true;
          },
          [&](const PutSubscription& o) {
            encode_subscription_record(o.record, scratch_);
            s.put_sub.bind(1, o.client_id);
            s.put_sub.bind(2, o.filter);
            s.put_sub.bind(3, scratch_);
            return execute(s.put_sub);
          },
          [&](const DeleteSubscription& o) {
            s.del_sub.bind(1, o.client_id);
            s.del_sub.bind(2, o.filter);
            return execute(s.del_sub);
          },
          [&](const PutBody& o) {
            if (refs_.contains(o.body_id)) return true;
            encode_message_body(o.body, scratch_);
            s.put_body.bind(1, static_cast<int64_t>(o.body_id));
            s.put_body.bind(2, scratch_);
            if (!execute(s.put_body)) return false;
            // Its first ref follows (the broker submits a body right before the ref that
            // needs it), possibly in the next batch: a count of 0 here is not "unused".
            refs_.emplace(o.body_id, 0);
            created_.push_back(o.body_id);
            return true;
          },
          [&](const DeleteBody& o) {
            refs_.erase(o.body_id);
            s.del_body.bind(1, static_cast<int64_t>(o.body_id));
            return execute(s.del_body);
          },
          [&](const PutMessage& o) {
            encode_message_ref(o.ref, scratch_);
            s.put_msg.bind(1, o.client_id);
            s.put_msg.bind(2, static_cast<int64_t>(o.seq));
            s.put_msg.bind(3, scratch_);
            if (!execute(s.put_msg)) return false;
            if (o.is_new && o.ref.body_id != 0) {
              auto it = refs_.find(o.ref.body_id);
              if (it != refs_.end()) ++it->second;
            }
            if (o.released_body != 0) release_body(o.released_body);
            return true;
          },
          [&](const DeleteMessage& o) {
            s.del_msg.bind(1, o.client_id);
            s.del_msg.bind(2, static_cast<int64_t>(o.seq));
            if (!execute(s.del_msg)) return false;
            // Only a ref that existed gave its body a count.
            if (o.body_id != 0 && db_.changes() > 0) release_body(o.body_id);
            return true;
          },
          [&](const PutInbound& o) {
            s.put_inbound.bind(1, o.client_id);
            s.put_inbound.bind(2, int64_t{o.packet_id});
            return execute(s.put_inbound);
          },
          [&](const DeleteInbound& o) {
            s.del_inbound.bind(1, o.client_id);
            s.del_inbound.bind(2, int64_t{o.packet_id});
            return execute(s.del_inbound);
          },
          [&](const PutWill& o) {
            encode_will_record(o.will, scratch_);
            s.put_will.bind(1, o.client_id);
            s.put_will.bind(2, scratch_);
            return execute(s.put_will);
          },
          [&](const DeleteWill& o) {
            s.del_will.bind(1, o.client_id);
            return execute(s.del_will);
          },
          [&](const PutRetained& o) {
            encode_retained_record(o.record, scratch_);
            s.put_retained.bind(1, o.topic);
            s.put_retained.bind(2, scratch_);
            return execute(s.put_retained);
          },
          [&](const DeleteRetained& o) {
            s.del_retained.bind(1, o.topic);
            return execute(s.del_retained);
          },
      },
      op);
}

namespace {

struct RefKey {
  std::string_view client_id;
  uint64_t seq;
  bool operator==(const RefKey&) const = default;
};
struct RefKeyHash {
  size_t operator()(const RefKey& k) const noexcept {
    return std::hash<std::string_view>{}(k.client_id) ^ (k.seq * 0x9E3779B97F4A7C15ull);
  }
};

}  // namespace

void StoreWriter::cancel_pairs(const std::vector<Pending>& batch) {
  skip_.assign(batch.size(), 0);
  // Under load most QoS 1 deliveries are acknowledged within a commit or two; those whose ref
  // was created in this very batch need no row at all. Every op on such a ref is skipped: its
  // puts (no count for its body), its updates (a released body was never counted either) and
  // its delete.
  std::unordered_map<RefKey, std::vector<uint32_t>, RefKeyHash> born;
  for (uint32_t i = 0; i < batch.size(); ++i) {
    if (const auto* p = std::get_if<PutMessage>(&batch[i].op)) {
      auto it = born.find(RefKey{p->client_id, p->seq});
      if (p->is_new)
        born[RefKey{p->client_id, p->seq}] = {i};
      else if (it != born.end())
        it->second.push_back(i);
    } else if (const auto* d = std::get_if<DeleteMessage>(&batch[i].op)) {
      auto it = born.find(RefKey{d->client_id, d->seq});
      if (it == born.end()) continue;
      for (uint32_t j : it->second) skip_[j] = 1;
      skip_[i] = 1;
      born.erase(it);
    } else if (const auto* s = std::get_if<DropSession>(&batch[i].op)) {
      // The drop reads the session's refs back: keep earlier ones of this batch as they are.
      for (auto it = born.begin(); it != born.end();)
        it = it->first.client_id == s->client_id ? born.erase(it) : std::next(it);
    }
  }
}

void StoreWriter::sweep_bodies() {
  // A body's first ref follows its PutBody, at most one batch later; one the previous batch
  // left without a ref and this one gave none has none coming (its refs were acknowledged
  // before they were written).
  for (uint64_t id : unreferenced_) {
    auto it = refs_.find(id);
    if (it != refs_.end() && it->second == 0) {
      refs_.erase(it);
      st_->del_body.bind(1, static_cast<int64_t>(id));
      execute(st_->del_body);
    }
  }
  unreferenced_.clear();
  for (uint64_t id : created_) {
    auto it = refs_.find(id);
    if (it != refs_.end() && it->second == 0) unreferenced_.push_back(id);
  }
}

void StoreWriter::release_body(uint64_t id) {
  auto it = refs_.find(id);
  if (it == refs_.end()) return;
  if (it->second > 1) {
    --it->second;
    return;
  }
  refs_.erase(it);
  st_->del_body.bind(1, static_cast<int64_t>(id));
  execute(st_->del_body);
}

void StoreWriter::recount_bodies() {
  refs_.clear();
  SqliteStatement b = db_.prepare("SELECT id FROM bodies");
  while (b.valid() && b.step() == SQLITE_ROW) refs_.emplace(static_cast<uint64_t>(b.column_int(0)), 0);
  SqliteStatement m = db_.prepare("SELECT record FROM messages");
  while (m.valid() && m.step() == SQLITE_ROW) {
    auto ref = decode_message_ref(m.column_blob(0));
    if (!ref.ok()) continue;
    auto it = refs_.find(ref.value.body_id);
    if (it != refs_.end()) ++it->second;
  }
}

void StoreWriter::sync_wal() {
  // SQLite in NORMAL mode syncs only at checkpoints; the interval sync is ours. Any descriptor
  // of the file flushes its data.
  if (!wal_fd_) wal_fd_.reset(::open(wal_path_.c_str(), O_RDONLY | O_CLOEXEC));
  if (wal_fd_ && ::fdatasync(wal_fd_.get()) == 0) {
    stats_.syncs.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  wal_fd_.reset();  // reopened next time (the WAL may have been recreated)
}

void StoreWriter::reclaim_space() {
  const int64_t free_pages = db_.query_int("PRAGMA freelist_count", 0);
  const int64_t pages = db_.query_int("PRAGMA page_count", 0);
  // Deleted sessions and messages leave free pages, reused by later writes; give the file
  // system back only a large surplus (a quarter of the file), a bounded amount per round.
  if (free_pages < kReclaimMinFreePages || free_pages * 4 < pages) return;
  db_.exec("PRAGMA incremental_vacuum(16384)");
}

}  // namespace tcpms::store
