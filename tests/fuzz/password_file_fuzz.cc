// libFuzzer target for password files (auth/password_file.h, auth/password_hash.h). The input
// is the file text. No password is ever verified: a fuzzed iteration count up to the allowed
// 10,000,000 would make one run take seconds; the parsers are what reads operator input.
//
// Invariants checked (a violation aborts):
//  - parse never crashes or reads outside the input (ASan/UBSan);
//  - an error names the source: "fuzz:N: ..." or "fuzz: ...";
//  - PasswordFile and PasswordDb agree on whether the text is valid, and on the users;
//  - a parsed file writes back (to_string) to text that parses to the same users and hashes;
//  - every hash formats to a string that parses back to the same hash.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "auth/password_file.h"
#include "auth/password_hash.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

bool same(const tcpms::auth::PasswordHash& a, const tcpms::auth::PasswordHash& b) {
  return a.scheme == b.scheme && a.iterations == b.iterations && a.salt == b.salt &&
         a.digest == b.digest;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tcpms::auth;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto file = PasswordFile::parse(text, "fuzz");
  auto db = PasswordDb::parse(text, "fuzz");
  check(file.has_value() == db.has_value());
  if (!file) {
    check(file.error().rfind("fuzz:", 0) == 0);
    check(db.error().rfind("fuzz:", 0) == 0);
    return 0;
  }
  size_t users = 0;
  for (const auto& e : file->entries()) {
    if (e.user.empty()) continue;
    ++users;
    check((*db)->contains(e.user));
    std::string formatted = format_password_hash(e.hash);
    auto again = parse_password_hash(formatted);
    check(again.has_value() && same(*again, e.hash));
  }
  check((*db)->size() == users);
  auto round = PasswordFile::parse(file->to_string(), "fuzz");
  check(round.has_value());
  size_t round_users = 0;
  for (const auto& e : round->entries()) {
    if (e.user.empty()) continue;
    ++round_users;
    const PasswordHash* h = file->find(e.user);
    check(h != nullptr && same(*h, e.hash));
  }
  check(round_users == users);
  return 0;
}
