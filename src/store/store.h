// Store: tcpms's persistent state under one directory (persistence.dir): sessions,
// subscriptions, retained messages, queued and in-flight QoS 1/2 messages, inbound QoS 2 ids,
// delayed wills. SQLite underneath (docs/architecture.md says why); the record formats are
// tcpms's own codecs (*_record.h); one store thread writes (store_writer.h).
//
//   Store::open(config, visitor, report, error)   lock, check, read back, repair: main thread
//   store->writer().add_listener(...)             one per loop, before start
//   store->start()                                the store thread
//   store->writer().submit(op)                    any thread
//
// A damaged store (SQLite's checks fail, records fail their codecs, rows lost their session)
// is never silently dropped: open() reports what it found, keeps the damaged files in
// DIR/damaged-<time>/, and starts with what could be read; with OnDamage::kRefuse it refuses
// instead and changes nothing.
//
// An upgrade (docs/upgrade.md) hands the store over between two processes without either
// reading the other's memory from disk: the new process takes the sessions over the handover
// socket, queues their writes from the start (taking_over), and takes the files once the old
// process has committed its last write and let go (release): its first commit clears the store
// and writes its whole state, in one transaction, so the disk never holds half of either.
//
//   old:  Store::open ... handover committed ... store->release()
//   new:  Store::taking_over(config) ... handover committed ... take_files(wait) ... start()
//
// Thread rules: open and start on one thread; writer() from any thread afterwards.
#pragma once

#include <memory>
#include <string>

#include "store/recovery.h"
#include "store/store_writer.h"
#include "store/sync_policy.h"
#include "tcpms/unique_fd.h"

namespace tcpms::store {

enum class OnDamage : uint8_t {
  kSalvage,  // keep the damaged files aside, start with what could be read
  kRefuse,   // refuse to start; change nothing
};

struct StoreConfig {
  std::string dir;
  SyncPolicy sync;
  OnDamage on_damage = OnDamage::kSalvage;
};

class Store {
 public:
  // Null, with `error`, when the store cannot be used: the directory is locked by another
  // process or cannot be made, SQLite cannot open it for a reason other than damage (a
  // permission, a full disk), or it is damaged and `on_damage` is kRefuse.
  static std::unique_ptr<Store> open(const StoreConfig& config, RecoveryVisitor& visitor,
                                     RecoveryReport& report, std::string& error);
  // For a process taking the store over from the one it replaces: the writer queues (the
  // first op clears the store) until take_files() gives it the files.
  static std::unique_ptr<Store> taking_over(const StoreConfig& config);
  // Locks the directory (waiting up to `wait_ms` for the process it replaces to let go),
  // opens and checks the database (a damaged one is kept aside and started fresh: all of it is
  // written anew). False with `error` when it cannot; abandon_files() then.
  bool take_files(uint32_t wait_ms, std::string& error);
  // The files cannot be had: nothing will be written (the writer drops its ops).
  void abandon_files() { writer_->abandon(); }
  // The process that handed its state over: commits and syncs what is queued, closes the
  // database and unlocks the directory. Later writes are dropped.
  void release();
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  StoreWriter& writer() noexcept { return *writer_; }
  const StoreConfig& config() const noexcept { return config_; }
  // Where damaged files were kept at open ("" when none were).
  const std::string& aside_dir() const noexcept { return aside_dir_; }
  void start() { writer_->start(); }
  // Commits and syncs what is queued; the destructor does it too.
  void stop() { writer_->stop(); }

 private:
  Store() = default;
  StoreConfig config_;
  UniqueFd lock_;
  std::string aside_dir_;
  std::unique_ptr<StoreWriter> writer_;
};

const char* on_damage_name(OnDamage d) noexcept;

}  // namespace tcpms::store
