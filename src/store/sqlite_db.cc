#include "store/sqlite_db.h"

#include <sqlite3.h>

#include <utility>

namespace tcpms::store {

SqliteStatement::SqliteStatement(SqliteStatement&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
SqliteStatement& SqliteStatement::operator=(SqliteStatement&& o) noexcept {
  if (this != &o) {
    sqlite3_finalize(s_);
    s_ = std::exchange(o.s_, nullptr);
  }
  return *this;
}
SqliteStatement::~SqliteStatement() { sqlite3_finalize(s_); }

void SqliteStatement::bind(int i, int64_t v) noexcept { sqlite3_bind_int64(s_, i, v); }
void SqliteStatement::bind(int i, ByteView blob) noexcept {
  // A zero-length blob, not NULL: keys may be empty strings in principle.
  sqlite3_bind_blob64(s_, i, blob.empty() ? "" : static_cast<const void*>(blob.data()),
                      blob.size(), SQLITE_STATIC);
}
int SqliteStatement::step() noexcept { return sqlite3_step(s_); }
void SqliteStatement::reset() noexcept {
  sqlite3_reset(s_);
  sqlite3_clear_bindings(s_);
}
ByteView SqliteStatement::column_blob(int i) const noexcept {
  const void* p = sqlite3_column_blob(s_, i);
  const int n = sqlite3_column_bytes(s_, i);
  if (p == nullptr || n <= 0) return {};
  return {static_cast<const std::byte*>(p), static_cast<size_t>(n)};
}
int64_t SqliteStatement::column_int(int i) const noexcept { return sqlite3_column_int64(s_, i); }
bool SqliteStatement::column_is_null(int i) const noexcept {
  return sqlite3_column_type(s_, i) == SQLITE_NULL;
}

SqliteDb::SqliteDb(SqliteDb&& o) noexcept : db_(std::exchange(o.db_, nullptr)) {}
SqliteDb& SqliteDb::operator=(SqliteDb&& o) noexcept {
  if (this != &o) {
    close();
    db_ = std::exchange(o.db_, nullptr);
  }
  return *this;
}
SqliteDb::~SqliteDb() { close(); }

void SqliteDb::close() noexcept {
  // v2: statements still open (none, by construction) would not keep the handle alive forever.
  if (db_ != nullptr) sqlite3_close_v2(db_);
  db_ = nullptr;
}

SqliteDb SqliteDb::open(const std::string& path, bool read_only, std::string& error) {
  SqliteDb d;
  const int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                    SQLITE_OPEN_NOMUTEX;
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    error = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return d;
  }
  sqlite3_extended_result_codes(db, 0);
  d.db_ = db;
  return d;
}

int SqliteDb::exec(const char* sql) noexcept { return sqlite3_exec(db_, sql, nullptr, nullptr, nullptr); }

SqliteStatement SqliteDb::prepare(std::string_view sql) noexcept {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                         &s, nullptr) != SQLITE_OK) {
    sqlite3_finalize(s);
    return SqliteStatement();
  }
  return SqliteStatement(s);
}

int64_t SqliteDb::query_int(const char* sql, int64_t fallback) noexcept {
  SqliteStatement s = prepare(sql);
  if (!s.valid() || s.step() != SQLITE_ROW) return fallback;
  return s.column_int(0);
}

std::string SqliteDb::error() const { return db_ != nullptr ? sqlite3_errmsg(db_) : "no database"; }
int64_t SqliteDb::changes() const noexcept { return db_ != nullptr ? sqlite3_changes64(db_) : 0; }

bool is_damage(int rc) noexcept {
  rc &= 0xff;
  return rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB || rc == SQLITE_FORMAT;
}

const char* sqlite_rc_name(int rc) noexcept { return sqlite3_errstr(rc); }

}  // namespace tcpms::store
