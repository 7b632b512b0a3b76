// SqliteDb, SqliteStatement: RAII over the two SQLite handles the store uses. Errors are
// SQLite result codes (SQLITE_OK, SQLITE_ROW, SQLITE_DONE, SQLITE_CORRUPT, ...) with the
// database's message beside them, as SQLite itself reports them; nothing here throws.
//
// Thread rules: one thread at a time per handle (SQLite is built serialized on Debian, but the
// store gives each handle to one thread: the opener, then the store thread).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "tcpms/bytes.h"

struct sqlite3;
struct sqlite3_stmt;

namespace tcpms::store {

class SqliteStatement {
 public:
  SqliteStatement() noexcept = default;
  explicit SqliteStatement(sqlite3_stmt* s) noexcept : s_(s) {}
  SqliteStatement(SqliteStatement&& o) noexcept;
  SqliteStatement& operator=(SqliteStatement&& o) noexcept;
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;
  ~SqliteStatement();

  bool valid() const noexcept { return s_ != nullptr; }
  // Parameters are numbered from 1; blobs are bound without copying (SQLITE_STATIC): keep
  // them alive until the statement is reset.
  void bind(int i, int64_t v) noexcept;
  void bind(int i, ByteView blob) noexcept;
  void bind(int i, std::string_view blob) noexcept { bind(i, as_bytes(blob)); }
  int step() noexcept;
  // Resets for the next use and clears the bindings.
  void reset() noexcept;
  // Columns of the current row, numbered from 0. A view is valid until the next step().
  ByteView column_blob(int i) const noexcept;
  int64_t column_int(int i) const noexcept;
  bool column_is_null(int i) const noexcept;

 private:
  sqlite3_stmt* s_ = nullptr;
};

class SqliteDb {
 public:
  SqliteDb() noexcept = default;
  SqliteDb(SqliteDb&& o) noexcept;
  SqliteDb& operator=(SqliteDb&& o) noexcept;
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;
  ~SqliteDb();

  // Opens (read-write, created if missing, or read-only). On failure the result is invalid and
  // `error` says why.
  static SqliteDb open(const std::string& path, bool read_only, std::string& error);
  bool valid() const noexcept { return db_ != nullptr; }
  int exec(const char* sql) noexcept;
  // Invalid statement on error (see error()).
  SqliteStatement prepare(std::string_view sql) noexcept;
  // A single integer a query answers (PRAGMA page_count, ...); `fallback` when it fails.
  int64_t query_int(const char* sql, int64_t fallback) noexcept;
  std::string error() const;
  int64_t changes() const noexcept;
  void close() noexcept;

 private:
  sqlite3* db_ = nullptr;
};

// SQLITE_CORRUPT, SQLITE_NOTADB and friends: the file is damaged (as opposed to full, busy or
// unreadable).
bool is_damage(int sqlite_rc) noexcept;
const char* sqlite_rc_name(int rc) noexcept;

}  // namespace tcpms::store
