// The store's files: the directory and its lock, the SQLite schema and settings, and moving a
// damaged store aside.
//
//   DIR/LOCK             flock'ed by the process using DIR (a second server is refused)
//   DIR/store.db         SQLite, WAL mode; PRAGMA user_version is the store format (1)
//   DIR/store.db-wal     its write-ahead log (group commits land here first)
//   DIR/store.db-shm     SQLite's WAL index (rebuilt from the WAL when missing)
//   DIR/damaged-<time>/  files found damaged at start-up, kept for the operator
//
// Tables (each record is a codec of its own, see *_record.h; keys are BLOBs compared bytewise,
// so every per-client table reads back in the same client order and recovery merges them):
//   sessions(client_id, record)            subscriptions(client_id, filter, record)
//   messages(client_id, seq, record)       bodies(id, record)
//   inbound(client_id, packet_id)          wills(client_id, record)
//   retained(topic, record)
//
// Thread rules: called by Store::open, on one thread.
#pragma once

#include <cstdint>
#include <string>

#include "store/sqlite_db.h"
#include "store/sync_policy.h"
#include "tcpms/unique_fd.h"

namespace tcpms::store {

inline constexpr const char* kStoreFileName = "store.db";
inline constexpr int kStoreFormat = 1;

std::string store_db_path(const std::string& dir);

// Creates `dir` (and parents) and takes its lock. Invalid and `error` set when another process
// holds it (still after `wait_ms`: a process taking over from the one it replaces waits for it
// to let go) or the directory cannot be made.
UniqueFd lock_store_dir(const std::string& dir, std::string& error, uint32_t wait_ms = 0);

// Settings for the writer connection (WAL, synchronous per `mode`, incremental auto-vacuum)
// and the tables. False and `error` set on failure; `damaged` when SQLite says the file is
// damaged (not a database, malformed) rather than unusable for another reason.
bool prepare_store_db(SqliteDb& db, SyncMode mode, std::string& error, bool& damaged);

// PRAGMA quick_check: SQLite's structural check of every page. Empty when fine, else what it
// said (first lines).
std::string check_store_db(SqliteDb& db);

// prepare_store_db, then check_store_db. False with `error` when the database cannot be used
// for a reason other than damage; else true, with `damage` saying what damages it ("" when
// nothing does).
bool prepare_and_check_store_db(SqliteDb& db, SyncMode mode, const std::string& path,
                                std::string& damage, std::string& error);

// The database at `path` made anew (its damaged files moved aside), prepared; invalid with
// `error` on failure.
SqliteDb open_fresh_store_db(const std::string& path, SyncMode mode, std::string& error);

// Moves (or copies) the store's files into DIR/damaged-<UTC time>/ and returns that path; empty
// and `error` set on failure.
std::string move_store_aside(const std::string& dir, bool copy, std::string& error);

}  // namespace tcpms::store
