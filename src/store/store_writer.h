// StoreWriter: the store thread. Loops submit WriteOps (any thread, one short lock); the thread
// takes everything queued, applies it in one SQLite transaction and commits (group commit):
// under every-message the commit is fsync'ed, and a commit's ops are durable the moment it
// returns; under an interval the WAL is fsync'ed every interval; under off never.
//
// Durability reaches the loops through their task queues: a loop that must wait (a PUBACK held
// until its message is on disk) calls want(listener, seq); after the commit that covers `seq`
// the thread calls that listener's `notify(durable_seq)` (tcpms-server: a post to the loop).
// Nothing is ever written on a loop thread.
//
// Message bodies are shared by refs (message_record.h); the thread counts the refs of every
// body and deletes a body with its last ref. A commit that fails (disk full, I/O error) is
// rolled back and retried every second with everything queued since; durable_seq does not
// move meanwhile, so strict acknowledgements wait rather than lie.
//
// A writer can also start without its database (a process taking the store over from the one
// it replaces, store.h): ops queue and durability waits from the first moment, and attach()
// gives it the database once the other process has let go of it; the first commit then holds
// everything queued. A writer stopped stays stopped: later ops are dropped (the process that
// handed its store over closes what stayed behind without writing).
//
// Thread rules: submit, want, durable_seq, next_id and the stats may be called from any thread;
// add_listener, attach, abandon, start, stop and close from the owner's thread (before start /
// once).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "store/sqlite_db.h"
#include "store/sync_policy.h"
#include "store/write_ops.h"
#include "tcpms/unique_fd.h"

namespace tcpms::store {

struct WriterStats {
  std::atomic<uint64_t> commits{0};
  std::atomic<uint64_t> ops{0};
  std::atomic<uint64_t> syncs{0};         // fsyncs we asked for (commits under every-message, WAL syncs)
  std::atomic<uint64_t> commit_errors{0};
  std::atomic<uint64_t> commit_us_total{0};  // time in commit (fsync included)
  std::atomic<uint64_t> queued_ops{0};    // waiting for the next commit
  std::atomic<uint64_t> bodies{0};        // message bodies on disk
};

class StoreWriter {
 public:
  using Notify = std::function<void(uint64_t durable_seq)>;

  // `db` is prepared (store_files.h); `body_refs` and `next_id` come from recovery.
  StoreWriter(SqliteDb db, std::string wal_path, SyncPolicy policy,
              std::unordered_map<uint64_t, uint32_t> body_refs, uint64_t next_id);
  // Without a database yet: attach() before start().
  explicit StoreWriter(SyncPolicy policy);
  ~StoreWriter();
  StoreWriter(const StoreWriter&) = delete;
  StoreWriter& operator=(const StoreWriter&) = delete;

  uint32_t add_listener(Notify notify);
  bool attached() const noexcept { return st_ != nullptr; }
  void attach(SqliteDb db, std::string wal_path);
  // Never to be attached (the database could not be had): what is queued and every later op is
  // dropped and counts as durable at once, so that nothing waits for it forever.
  void abandon();
  void start();
  // Commits what is queued (and syncs it, whatever the policy), then joins the thread.
  void stop();
  // After stop(): lets go of the database.
  void close();

  // Queues `op`; returns its sequence number (increasing in submission order).
  uint64_t submit(WriteOp op);
  // Asks for `listener`'s notify once everything up to `seq` is durable. True when it already
  // is (then no notify is owed for it).
  bool want(uint32_t listener, uint64_t seq);
  uint64_t durable_seq() const noexcept { return durable_.load(std::memory_order_seq_cst); }
  uint64_t last_seq() const;
  // Unique, increasing ids for message refs and bodies (never reused across restarts).
  uint64_t next_id() noexcept { return next_id_.fetch_add(1, std::memory_order_relaxed); }
  const SyncPolicy& policy() const noexcept { return policy_; }
  const WriterStats& stats() const noexcept { return stats_; }

 private:
  struct Pending {
    uint64_t seq;
    WriteOp op;
  };
  struct Listener {
    Notify notify;
    std::atomic<uint64_t> wanted{0};
    uint64_t notified = 0;  // store thread only
  };
  struct Statements;

  void run();
  bool commit(std::vector<Pending>& batch);
  // Marks in skip_ the refs written and deleted within `batch` (a message acknowledged before
  // its commit): applying them would write and delete the same row.
  void cancel_pairs(const std::vector<Pending>& batch);
  void sweep_bodies();
  bool apply(const WriteOp& op);
  void release_body(uint64_t id);
  void recount_bodies();
  void notify_listeners(uint64_t durable);
  void sync_wal();
  void reclaim_space();

  SqliteDb db_;
  std::string wal_path_;
  UniqueFd wal_fd_;
  const SyncPolicy policy_;
  std::unique_ptr<Statements> st_;
  std::unordered_map<uint64_t, uint32_t> refs_;  // store thread only
  std::vector<uint64_t> created_;     // bodies inserted by the current batch
  std::vector<uint64_t> unreferenced_;  // bodies the last batch left without a ref
  std::vector<char> skip_;            // ops of the current batch that cancel out
  std::string scratch_;
  std::atomic<uint64_t> next_id_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Pending> queue_;  // guarded by mu_
  uint64_t last_seq_ = 0;       // guarded by mu_
  std::chrono::steady_clock::time_point first_queued_;  // guarded by mu_
  bool stopping_ = false;       // guarded by mu_
  bool abandoned_ = false;      // guarded by mu_
  std::atomic<uint64_t> durable_{0};
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::thread thread_;
  WriterStats stats_;
};

}  // namespace tcpms::store
