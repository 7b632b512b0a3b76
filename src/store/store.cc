#include "store/store.h"

#include <chrono>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "store/store_files.h"

namespace tcpms::store {

namespace {

uint64_t unix_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

const char* on_damage_name(OnDamage d) noexcept { return d == OnDamage::kRefuse ? "refuse" : "salvage"; }

Store::~Store() {
  if (writer_) writer_->stop();
}

std::unique_ptr<Store> Store::taking_over(const StoreConfig& config) {
  std::unique_ptr<Store> s(new Store());
  s->config_ = config;
  s->writer_ = std::make_unique<StoreWriter>(config.sync);
  s->writer_->submit(ClearAll{});
  return s;
}

bool Store::take_files(uint32_t wait_ms, std::string& error) {
  const auto t0 = std::chrono::steady_clock::now();
  lock_ = lock_store_dir(config_.dir, error, wait_ms);
  if (!lock_) return false;
  const std::string path = store_db_path(config_.dir);
  SqliteDb db = SqliteDb::open(path, false, error);
  if (!db.valid()) return false;
  // What is in the files is replaced, so damage costs nothing but the check: the damaged files
  // are kept aside for the operator, as at start-up.
  std::string why;
  if (!prepare_and_check_store_db(db, config_.sync.mode, path, why, error)) return false;
  if (!why.empty()) {
    db.close();
    aside_dir_ = move_store_aside(config_.dir, false, error);
    if (aside_dir_.empty()) return false;
    spdlog::error("store: {} was damaged ({}); kept in {}; written anew from this process's "
                  "state", config_.dir, why, aside_dir_);
    db = open_fresh_store_db(path, config_.sync.mode, error);
    if (!db.valid()) return false;
  }
  writer_->attach(std::move(db), path + "-wal");
  spdlog::info("store: {} taken over in {:.2f} s; {} writes queued meanwhile", config_.dir,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
               writer_->stats().queued_ops.load(std::memory_order_relaxed));
  return true;
}

void Store::release() {
  writer_->stop();
  writer_->close();
  lock_ = UniqueFd();
}

std::unique_ptr<Store> Store::open(const StoreConfig& config, RecoveryVisitor& visitor,
                                   RecoveryReport& report, std::string& error) {
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<Store> s(new Store());
  s->config_ = config;
  s->lock_ = lock_store_dir(config.dir, error);
  if (!s->lock_) return nullptr;
  const std::string path = store_db_path(config.dir);
  const uint64_t now = unix_ms();

  // 1. Open and check in place.
  std::string why;  // what makes the files damaged, if anything
  SqliteDb db = SqliteDb::open(path, false, error);
  if (!db.valid()) return nullptr;  // not damage: SQLite opens lazily (permissions, space)
  if (!prepare_and_check_store_db(db, config.sync.mode, path, why, error)) return nullptr;

  RecoveryResult result;
  if (why.empty()) {
    result = recover_store(db, now, false, visitor, report);
    if (report.damaged()) {
      why = "some records could not be read";
      if (config.on_damage == OnDamage::kRefuse) {
        error = path + " is damaged (" + why + ": " +
                (report.problems.empty() ? std::string("?") : report.problems.front()) +
                "); refusing to start as persistence.on_damage = refuse asks. Start with "
                "persistence.on_damage = salvage to keep what can be read (the damaged files "
                "are kept aside), or move " + config.dir + " away";
        return nullptr;
      }
      // Keep a copy as it was; the live file gets the repairs (deletes of what was unreadable).
      s->aside_dir_ = move_store_aside(config.dir, true, error);
      if (s->aside_dir_.empty()) return nullptr;
    }
  } else {
    // 2. Damaged beyond reading in place: keep the files aside, read what the copy gives, and
    // write it into a fresh store.
    if (config.on_damage == OnDamage::kRefuse) {
      error = path + " is damaged (" + why + "); refusing to start as persistence.on_damage = "
              "refuse asks. Start with persistence.on_damage = salvage to keep what can be read "
              "(the damaged files are kept aside), or move " + config.dir + " away";
      return nullptr;
    }
    report.unreadable = true;
    report.problem(why);
    db.close();
    s->aside_dir_ = move_store_aside(config.dir, false, error);
    if (s->aside_dir_.empty()) return nullptr;
    std::string copy_error;
    SqliteDb copy = SqliteDb::open(store_db_path(s->aside_dir_), true, copy_error);
    if (copy.valid()) {
      result = recover_store(copy, now, true, visitor, report);
    } else {
      report.problem("the damaged copy cannot be opened: " + copy_error);
    }
    copy.close();
    db = open_fresh_store_db(path, config.sync.mode, error);
    if (!db.valid()) return nullptr;
  }

  s->writer_ = std::make_unique<StoreWriter>(std::move(db), path + "-wal", config.sync,
                                             std::move(result.body_refs), result.max_id + 1);
  // Repairs or the rebuild go first, in the store thread's first commit.
  for (WriteOp& op : result.writes) s->writer_->submit(std::move(op));

  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (report.damaged()) {
    spdlog::error("store: {} was damaged ({}): {} unreadable records, {} rows without their "
                  "session or body{}",
                  config.dir, why, report.bad_records, report.orphans,
                  report.unreadable ? ", parts SQLite could not read" : "");
    for (const std::string& p : report.problems) spdlog::error("store:   {}", p);
    spdlog::error("store: the damaged files are kept in {}; started with what could be read",
                  s->aside_dir_);
  }
  spdlog::info("store: {}: recovered {} in {:.2f} s (sync {})", config.dir, report.summary(), secs,
               to_string(config.sync));
  return s;
}

}  // namespace tcpms::store
