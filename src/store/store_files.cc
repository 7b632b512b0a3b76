#include "store/store_files.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <system_error>
#include <thread>

namespace tcpms::store {

namespace fs = std::filesystem;

std::string store_db_path(const std::string& dir) { return (fs::path(dir) / kStoreFileName).string(); }

UniqueFd lock_store_dir(const std::string& dir, std::string& error, uint32_t wait_ms) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    error = "cannot create " + dir + ": " + ec.message();
    return UniqueFd();
  }
  const std::string path = (fs::path(dir) / "LOCK").string();
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd) {
    error = "cannot open " + path + ": " + std::strerror(errno);
    return UniqueFd();
  }
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  int err = 0;
  while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    err = errno;
    if (err != EWOULDBLOCK || std::chrono::steady_clock::now() >= until) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    err = 0;
  }
  if (err != 0) {
    error = err == EWOULDBLOCK
                ? dir + " is in use by another process (another tcpms-server with the same "
                        "persistence.dir?)"
                : "cannot lock " + path + ": " + std::strerror(err);
    return UniqueFd();
  }
  return fd;
}

namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS sessions(client_id BLOB PRIMARY KEY, record BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS subscriptions(client_id BLOB, filter BLOB, record BLOB NOT NULL,
  PRIMARY KEY(client_id, filter)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages(client_id BLOB, seq INTEGER, record BLOB NOT NULL,
  PRIMARY KEY(client_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bodies(id INTEGER PRIMARY KEY, record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS inbound(client_id BLOB, packet_id INTEGER,
  PRIMARY KEY(client_id, packet_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS wills(client_id BLOB PRIMARY KEY, record BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS retained(topic BLOB PRIMARY KEY, record BLOB NOT NULL) WITHOUT ROWID;
)sql";

bool step_ok(SqliteDb& db, int rc, const char* what, std::string& error, bool& damaged) {
  if (rc == SQLITE_OK) return true;
  damaged = is_damage(rc);
  error = std::string(what) + ": " + db.error();
  return false;
}

}  // namespace

bool prepare_store_db(SqliteDb& db, SyncMode mode, std::string& error, bool& damaged) {
  damaged = false;
  // Reading user_version reads page 1: a file that is not a database fails here.
  SqliteStatement v = db.prepare("PRAGMA user_version");
  if (!v.valid()) return step_ok(db, SQLITE_NOTADB, "reading the store format", error, damaged);
  const int rc = v.step();
  if (rc != SQLITE_ROW) return step_ok(db, rc, "reading the store format", error, damaged);
  const int64_t format = v.column_int(0);
  v = SqliteStatement();
  if (format > kStoreFormat) {
    error = "store format " + std::to_string(format) + " is newer than this tcpms-server reads (" +
            std::to_string(kStoreFormat) + ")";
    return false;
  }
  // auto_vacuum takes effect only before the first table exists (a new file).
  if (format == 0 && !step_ok(db, db.exec("PRAGMA auto_vacuum=INCREMENTAL"), "auto_vacuum", error, damaged))
    return false;
  SqliteStatement j = db.prepare("PRAGMA journal_mode=WAL");
  if (!j.valid() || j.step() != SQLITE_ROW)
    return step_ok(db, SQLITE_ERROR, "setting WAL mode", error, damaged);
  j = SqliteStatement();
  // FULL: every commit's WAL frames are fsync'ed. NORMAL: only checkpoints sync (the file stays
  // consistent after a power loss; the newest commits may be gone), and the writer fsyncs the
  // WAL itself on its interval.
  const char* sync = mode == SyncMode::kEveryMessage ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL";
  if (!step_ok(db, db.exec(sync), "synchronous", error, damaged)) return false;
  if (!step_ok(db, db.exec(kSchema), "creating the tables", error, damaged)) return false;
  if (format == 0 &&
      !step_ok(db, db.exec("PRAGMA user_version=1"), "writing the store format", error, damaged))
    return false;
  return true;
}

std::string check_store_db(SqliteDb& db) {
  SqliteStatement s = db.prepare("PRAGMA quick_check(5)");
  if (!s.valid()) return db.error();
  std::string out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    const std::string line(as_chars(s.column_blob(0)));
    if (line == "ok") continue;
    if (!out.empty()) out += "; ";
    out += line;
  }
  if (rc != SQLITE_DONE) {
    if (!out.empty()) out += "; ";
    out += db.error();
  }
  return out;
}

bool prepare_and_check_store_db(SqliteDb& db, SyncMode mode, const std::string& path,
                                std::string& damage, std::string& error) {
  std::string why;
  bool damaged = false;
  damage.clear();
  if (!prepare_store_db(db, mode, why, damaged)) {
    if (!damaged) {
      error = path + ": " + why;
      return false;
    }
    damage = why;
  } else if (std::string check = check_store_db(db); !check.empty()) {
    damage = "SQLite's check failed: " + check;
  }
  return true;
}

SqliteDb open_fresh_store_db(const std::string& path, SyncMode mode, std::string& error) {
  SqliteDb db = SqliteDb::open(path, false, error);
  if (!db.valid()) return db;
  std::string why;
  bool damaged = false;
  if (!prepare_store_db(db, mode, why, damaged)) {
    error = path + ": " + why;
    db.close();
  }
  return db;
}

std::string move_store_aside(const std::string& dir, bool copy, std::string& error) {
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  fs::path aside = fs::path(dir) / (std::string("damaged-") + stamp);
  std::error_code ec;
  for (int i = 1; fs::exists(aside, ec); ++i)
    aside = fs::path(dir) / (std::string("damaged-") + stamp + "-" + std::to_string(i));
  fs::create_directories(aside, ec);
  if (ec) {
    error = "cannot create " + aside.string() + ": " + ec.message();
    return {};
  }
  for (const char* suffix : {"", "-wal", "-shm"}) {
    const fs::path from = fs::path(dir) / (std::string(kStoreFileName) + suffix);
    if (!fs::exists(from, ec)) continue;
    const fs::path to = aside / from.filename();
    if (copy)
      fs::copy_file(from, to, ec);
    else
      fs::rename(from, to, ec);
    if (ec) {
      error = "cannot " + std::string(copy ? "copy " : "move ") + from.string() + " to " +
              aside.string() + ": " + ec.message();
      return {};
    }
  }
  return aside.string();
}

}  // namespace tcpms::store
