#include "store/recovery.h"

#include <sqlite3.h>

#include <algorithm>

namespace tcpms::store {

void RecoveryReport::problem(std::string what) {
  if (problems.size() < kMaxProblems) problems.push_back(std::move(what));
}

std::string RecoveryReport::summary() const {
  std::string s = std::to_string(sessions) + " sessions, " + std::to_string(subscriptions) +
                  " subscriptions, " + std::to_string(messages) + " queued or in-flight messages (" +
                  std::to_string(bodies) + " bodies), " + std::to_string(inbound) +
                  " inbound QoS 2 ids, " + std::to_string(wills) + " delayed wills, " +
                  std::to_string(retained) + " retained messages";
  if (expired_sessions != 0) s += ", " + std::to_string(expired_sessions) + " expired sessions reclaimed";
  return s;
}

namespace {

std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > 64) out += "...";
  return out;
}

// Reads one table in key order. When SQLite reports an error mid-way (a damaged page), the
// cursor starts again just after the last row it read, a few times, so one bad page costs
// the rows on it rather than the rest of the table.
class TableCursor {
 public:
  struct Spec {
    const char* table;
    const char* columns;    // key columns then, optionally, the record column
    const char* order;      // the key columns, for ORDER BY
    const char* after;      // "(k1, k2) > (?1, ?2)": resume condition
    int keys;               // 1 or 2
    bool second_is_int;     // second key column is an INTEGER (seq, packet id)
    bool first_is_int;      // first key column is an INTEGER (bodies.id)
    bool has_record;
  };
  TableCursor(SqliteDb& db, Spec spec, RecoveryReport& report)
      : db_(db), spec_(spec), report_(report) {
    prepare(false);
    next();
  }

  bool valid() const noexcept { return valid_; }
  const std::string& key() const noexcept { return k1_; }
  int64_t int_key() const noexcept { return i1_; }
  const std::string& key2() const noexcept { return k2_; }
  int64_t int_key2() const noexcept { return i2_; }
  ByteView record() const noexcept { return as_bytes(record_); }

  void next() {
    valid_ = false;
    while (stmt_.valid()) {
      const int rc = stmt_.step();
      if (rc == SQLITE_ROW) {
        read_row();
        have_key_ = true;
        rows_since_resume_ = true;
        valid_ = true;
        return;
      }
      if (rc == SQLITE_DONE) break;
      report_.unreadable = true;
      report_.problem(std::string(spec_.table) + ": " + db_.error() +
                      (have_key_ ? " (after key '" + printable(k1_) + "')" : ""));
      stmt_ = SqliteStatement();
      // Resuming helps when the bad page comes after rows it can reach again; a resume that
      // fails before its first row meets the same page, and the rest of the table is lost.
      if (++resumes_ > kMaxResumes || !have_key_ || !rows_since_resume_) break;
      rows_since_resume_ = false;
      prepare(true);
    }
    stmt_ = SqliteStatement();
  }

 private:
  static constexpr int kMaxResumes = 8;

  void prepare(bool resume) {
    std::string sql = std::string("SELECT ") + spec_.columns + " FROM " + spec_.table;
    if (resume) sql += std::string(" WHERE ") + spec_.after;
    sql += std::string(" ORDER BY ") + spec_.order;
    stmt_ = db_.prepare(sql);
    if (!stmt_.valid()) {
      report_.unreadable = true;
      report_.problem(std::string(spec_.table) + ": " + db_.error());
      return;
    }
    if (!resume) return;
    if (spec_.first_is_int)
      stmt_.bind(1, i1_);
    else
      stmt_.bind(1, k1_);
    if (spec_.keys == 2) {
      if (spec_.second_is_int)
        stmt_.bind(2, i2_);
      else
        stmt_.bind(2, k2_);
    }
  }
  void read_row() {
    int col = 0;
    if (spec_.first_is_int)
      i1_ = stmt_.column_int(col++);
    else
      k1_.assign(as_chars(stmt_.column_blob(col++)));
    if (spec_.keys == 2) {
      if (spec_.second_is_int)
        i2_ = stmt_.column_int(col++);
      else
        k2_.assign(as_chars(stmt_.column_blob(col++)));
    }
    if (spec_.has_record) record_.assign(as_chars(stmt_.column_blob(col)));
  }

  SqliteDb& db_;
  Spec spec_;
  RecoveryReport& report_;
  SqliteStatement stmt_;
  std::string k1_, k2_, record_;
  int64_t i1_ = 0, i2_ = 0;
  bool valid_ = false;
  bool have_key_ = false;
  bool rows_since_resume_ = false;
  int resumes_ = 0;
};

constexpr TableCursor::Spec kSessions{"sessions", "client_id, record", "client_id",
                                      "client_id > ?1", 1, false, false, true};
constexpr TableCursor::Spec kSubscriptions{"subscriptions", "client_id, filter, record",
                                           "client_id, filter", "(client_id, filter) > (?1, ?2)",
                                           2, false, false, true};
constexpr TableCursor::Spec kMessages{"messages", "client_id, seq, record", "client_id, seq",
                                      "(client_id, seq) > (?1, ?2)", 2, true, false, true};
constexpr TableCursor::Spec kInbound{"inbound", "client_id, packet_id", "client_id, packet_id",
                                     "(client_id, packet_id) > (?1, ?2)", 2, true, false, false};
constexpr TableCursor::Spec kWills{"wills", "client_id, record", "client_id", "client_id > ?1",
                                   1, false, false, true};
constexpr TableCursor::Spec kBodies{"bodies", "id, record", "id", "id > ?1", 1, false, true, true};
constexpr TableCursor::Spec kRetained{"retained", "topic, record", "topic", "topic > ?1", 1,
                                      false, false, true};

class Recovery {
 public:
  Recovery(SqliteDb& db, uint64_t now_ms, bool rebuild, RecoveryVisitor& v, RecoveryReport& r)
      : db_(db), now_ms_(now_ms), rebuild_(rebuild), visitor_(v), report_(r) {}

  RecoveryResult run() {
    load_bodies();
    load_retained();
    load_sessions();
    // Bodies no kept ref names (their refs were unreadable or orphaned): not kept.
    for (auto& [id, b] : bodies_) {
      if (b.refs != 0) continue;
      if (!rebuild_) out_.writes.push_back(DeleteBody{id});
    }
    if (!rebuild_) {
      for (auto& [id, b] : bodies_)
        if (b.refs != 0) out_.body_refs.emplace(id, b.refs);
    }
    report_.bodies = 0;
    for (auto& [id, b] : bodies_) report_.bodies += b.kept_refs != 0;
    return std::move(out_);
  }

 private:
  struct Body {
    MessageBody body;
    uint32_t refs = 0;       // readable refs on disk
    uint32_t kept_refs = 0;  // refs of sessions handed to the visitor
    bool written = false;  // rebuild: PutBody emitted
  };

  void bad(const char* table, std::string_view key, const char* why) {
    ++report_.bad_records;
    report_.problem(std::string(table) + ": " + why + " (key '" + printable(key) + "')");
  }
  void orphan(const char* table, std::string_view key, const char* why) {
    ++report_.orphans;
    report_.problem(std::string(table) + ": " + why + " (key '" + printable(key) + "')");
  }
  void note_id(uint64_t id) { out_.max_id = std::max(out_.max_id, id); }

  void load_bodies() {
    for (TableCursor c(db_, kBodies, report_); c.valid(); c.next()) {
      const auto id = static_cast<uint64_t>(c.int_key());
      note_id(id);
      auto d = decode_message_body(c.record());
      if (!d.ok()) {
        bad("bodies", std::to_string(id), d.error);
        if (!rebuild_) out_.writes.push_back(DeleteBody{id});
        continue;
      }
      bodies_.emplace(id, Body{std::move(d.value), 0, 0, false});
    }
  }

  void load_retained() {
    for (TableCursor c(db_, kRetained, report_); c.valid(); c.next()) {
      auto d = decode_retained_record(c.record());
      const std::string& topic = c.key();
      if (d.ok() && !valid_stored_topic(as_bytes(topic))) d.error = "invalid retained topic";
      if (!d.ok()) {
        bad("retained", topic, d.error);
        if (!rebuild_) out_.writes.push_back(DeleteRetained{topic});
        continue;
      }
      // An expired retained message is not delivered [MQTT-3.3.2-5]: forget it.
      if (d.value.expires_at_ms != 0 && d.value.expires_at_ms <= now_ms_) {
        if (!rebuild_) out_.writes.push_back(DeleteRetained{topic});
        continue;
      }
      ++report_.retained;
      if (rebuild_) out_.writes.push_back(PutRetained{topic, d.value});
      visitor_.on_retained(topic, std::move(d.value));
    }
  }

  // Rows of `c` before `id` belong to no session: orphans.
  template <typename OnOrphan>
  void skip_before(TableCursor& c, const std::string& id, const char* table, OnOrphan on_orphan) {
    while (c.valid() && c.key() < id) {
      orphan(table, c.key(), "no session for this row");
      on_orphan(c);
      c.next();
    }
  }

  void load_sessions() {
    TableCursor subs(db_, kSubscriptions, report_);
    TableCursor msgs(db_, kMessages, report_);
    TableCursor inbound(db_, kInbound, report_);
    TableCursor wills(db_, kWills, report_);
    auto drop_sub = [&](TableCursor& c) {
      if (!rebuild_) out_.writes.push_back(DeleteSubscription{c.key(), c.key2()});
    };
    auto drop_msg = [&](TableCursor& c) {
      if (!rebuild_) out_.writes.push_back(DeleteMessage{c.key(), static_cast<uint64_t>(c.int_key2()), 0});
    };
    auto drop_inbound = [&](TableCursor& c) {
      if (!rebuild_)
        out_.writes.push_back(DeleteInbound{c.key(), static_cast<uint16_t>(c.int_key2())});
    };
    auto drop_will = [&](TableCursor& c) {
      if (!rebuild_) out_.writes.push_back(DeleteWill{c.key()});
    };
    for (TableCursor c(db_, kSessions, report_); c.valid(); c.next()) {
      const std::string id = c.key();
      skip_before(subs, id, "subscriptions", drop_sub);
      skip_before(msgs, id, "messages", drop_msg);
      skip_before(inbound, id, "inbound", drop_inbound);
      skip_before(wills, id, "wills", drop_will);
      auto rec = decode_session_record(c.record());
      RecoveredSession s;
      s.client_id = id;
      bool ok = rec.ok() && !id.empty();
      if (!ok) {
        bad("sessions", id, rec.ok() ? "empty client id" : rec.error);
        if (!rebuild_) out_.writes.push_back(DropSession{id});
      } else {
        s.session = rec.value;
      }
      for (; subs.valid() && subs.key() == id; subs.next()) {
        if (!ok) continue;
        auto d = decode_subscription_record(subs.record());
        if (d.ok() && !valid_stored_subscription(subs.key2(), d.value)) d.error = "invalid subscription filter";
        if (!d.ok()) {
          bad("subscriptions", id, d.error);
          drop_sub(subs);
          continue;
        }
        s.subscriptions.emplace_back(subs.key2(), d.value);
      }
      for (; msgs.valid() && msgs.key() == id; msgs.next()) {
        const auto seq = static_cast<uint64_t>(msgs.int_key2());
        note_id(seq);
        auto d = decode_message_ref(msgs.record());
        if (!d.ok()) {
          bad("messages", id, d.error);
          drop_msg(msgs);  // names no body the store thread counts
          continue;
        }
        RecoveredMessage m{seq, std::move(d.value), {}};
        if (m.ref.body_id != 0) {
          auto b = bodies_.find(m.ref.body_id);
          if (b == bodies_.end()) {
            orphan("messages", id, "its message body is missing");
            drop_msg(msgs);
            continue;
          }
          // Counted while the row is on disk: a DropSession of an unreadable or expired
          // session releases it again in the store thread.
          ++b->second.refs;
          m.body = b->second.body;
        }
        if (ok) s.messages.push_back(std::move(m));
      }
      for (; inbound.valid() && inbound.key() == id; inbound.next()) {
        if (!ok) continue;
        const int64_t pid = inbound.int_key2();
        if (pid <= 0 || pid > 65535) {
          bad("inbound", id, "packet id out of range");
          drop_inbound(inbound);
          continue;
        }
        s.inbound.push_back(static_cast<uint16_t>(pid));
      }
      for (; wills.valid() && wills.key() == id; wills.next()) {
        if (!ok) continue;
        auto d = decode_will_record(wills.record());
        if (!d.ok()) {
          bad("wills", id, d.error);
          drop_will(wills);
          continue;
        }
        s.will = std::move(d.value);
      }
      if (!ok) continue;
      if (session_expired(s.session, now_ms_, now_ms_)) {
        ++report_.expired_sessions;
        if (!rebuild_) out_.writes.push_back(DropSession{id});
        visitor_.on_expired_session(std::move(s));
        continue;
      }
      keep(std::move(s));
    }
    // Whatever is left belongs to no session.
    auto rest = [&](TableCursor& t, const char* table, auto drop) {
      while (t.valid()) {
        orphan(table, t.key(), "no session for this row");
        drop(t);
        t.next();
      }
    };
    rest(subs, "subscriptions", drop_sub);
    rest(msgs, "messages", drop_msg);
    rest(inbound, "inbound", drop_inbound);
    rest(wills, "wills", drop_will);
  }

  void keep(RecoveredSession s) {
    ++report_.sessions;
    report_.subscriptions += s.subscriptions.size();
    report_.messages += s.messages.size();
    report_.inbound += s.inbound.size();
    report_.wills += s.will.has_value();
    for (const RecoveredMessage& m : s.messages) {
      if (m.ref.body_id == 0) continue;
      Body& b = bodies_[m.ref.body_id];
      ++b.kept_refs;
      if (rebuild_ && !b.written) {
        b.written = true;
        out_.writes.push_back(PutBody{m.ref.body_id, b.body});
      }
    }
    if (rebuild_) {
      out_.writes.push_back(PutSession{s.client_id, s.session});
      for (const auto& [filter, rec] : s.subscriptions)
        out_.writes.push_back(PutSubscription{s.client_id, filter, rec});
      for (const RecoveredMessage& m : s.messages)
        out_.writes.push_back(PutMessage{s.client_id, m.seq, m.ref, true, 0});
      for (uint16_t id : s.inbound) out_.writes.push_back(PutInbound{s.client_id, id});
      if (s.will) out_.writes.push_back(PutWill{s.client_id, *s.will});
    }
    visitor_.on_session(std::move(s));
  }

  SqliteDb& db_;
  const uint64_t now_ms_;
  const bool rebuild_;
  RecoveryVisitor& visitor_;
  RecoveryReport& report_;
  std::unordered_map<uint64_t, Body> bodies_;
  RecoveryResult out_;
};

}  // namespace

RecoveryResult recover_store(SqliteDb& db, uint64_t now_ms, bool rebuild, RecoveryVisitor& visitor,
                             RecoveryReport& report) {
  return Recovery(db, now_ms, rebuild, visitor, report).run();
}

}  // namespace tcpms::store
