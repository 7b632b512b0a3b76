// Password files: one "USER:HASH" per line (mosquitto_passwd's format, see password_hash.h);
// blank lines and lines starting with '#' are ignored (and kept when tcpms-passwd rewrites).
//
//   PasswordDb   immutable lookup table, built by load_password_file(); hold it as
//                shared_ptr<const PasswordDb> (Snapshot<PasswordDb>) and swap it on SIGHUP.
//   PasswordFile the editable line list tcpms-passwd uses; it preserves order and comments.
//
// Thread rules: a PasswordDb is immutable, so verify() may run on any number of worker threads
// at once. verify() hashes (slow): never call it on a loop thread. load_password_file() does
// blocking I/O. PasswordFile is a plain value, one thread at a time.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "auth/password_hash.h"
#include "auth/result.h"

namespace tcpms::auth {

// Usernames we write: non-empty, at most 65535 bytes (an MQTT string), no ':' and no control
// characters. Returns an empty string if valid, otherwise why not.
std::string username_problem(std::string_view user);

class PasswordFile {
 public:
  // Errors are "SOURCE:LINE: why".
  static Result<PasswordFile> parse(std::string_view text, std::string_view source);

  const PasswordHash* find(std::string_view user) const;
  // Replaces the user's line in place, or appends one.
  void set(std::string_view user, const PasswordHash& hash);
  bool remove(std::string_view user);
  std::string to_string() const;

  struct Entry {
    std::string user;  // empty: a comment or blank line, kept verbatim in `text`
    std::string text;
    PasswordHash hash;
    size_t line = 0;
  };
  const std::vector<Entry>& entries() const noexcept { return entries_; }

 private:
  std::vector<Entry> entries_;
};

class PasswordDb {
 public:
  enum class Verdict : uint8_t { kOk, kWrongPassword, kUnknownUser };

  static Result<std::shared_ptr<const PasswordDb>> parse(std::string_view text,
                                                         std::string_view source);
  static std::shared_ptr<const PasswordDb> from(const PasswordFile& file);

  // Slow by design. An unknown user costs the same as a wrong password: the password is
  // checked against a dummy hash with the file's most common scheme and iteration count.
  // Report kWrongPassword and kUnknownUser to the client identically (CONNACK 4); the
  // difference is for the server's log only.
  Verdict verify(std::string_view user, std::string_view password) const;

  bool contains(std::string_view user) const { return users_.find(user) != users_.end(); }
  size_t size() const noexcept { return users_.size(); }
  // What an unknown user is checked against: the same scheme and iteration count as the
  // file's users, so both answers cost the same PBKDF2 work.
  const PasswordHash& dummy_hash() const noexcept { return dummy_; }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, PasswordHash, Hash, std::equal_to<>> users_;
  PasswordHash dummy_;
};

// Reads and parses PATH. On failure the caller keeps its current snapshot; the error is
// "PATH: why" or "PATH:LINE: why".
Result<std::shared_ptr<const PasswordDb>> load_password_file(const std::string& path);

}  // namespace tcpms::auth
