#include "auth/password_file.h"

#include <map>
#include <openssl/rand.h>

#include "auth/file_io.h"
#include "auth/lines.h"

namespace tcpms::auth {

using detail::located;

std::string username_problem(std::string_view user) {
  if (user.empty()) return "empty username";
  if (user.size() > 65535) return "username longer than 65535 bytes";
  for (char c : user) {
    if (c == ':') return "username contains ':'";
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return "username contains a control character";
  }
  return {};
}

Result<PasswordFile> PasswordFile::parse(std::string_view text, std::string_view source) {
  PasswordFile f;
  std::map<std::string, size_t, std::less<>> seen;
  std::string error;
  detail::for_each_line(text, [&](size_t n, std::string_view line) {
    Entry e;
    e.line = n;
    e.text = std::string(line);
    std::string_view t = detail::trim(line);
    if (t.empty() || t.front() == '#') {
      f.entries_.push_back(std::move(e));
      return true;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      error = located(source, n, "expected USER:HASH");
      return false;
    }
    std::string_view user = line.substr(0, colon);
    if (user.empty()) {
      error = located(source, n, "empty username");
      return false;
    }
    auto h = parse_password_hash(line.substr(colon + 1));
    if (!h) {
      error = located(source, n, "user '" + std::string(user) + "': " + h.error());
      return false;
    }
    auto [it, fresh] = seen.emplace(std::string(user), n);
    if (!fresh) {
      error = located(source, n, "user '" + std::string(user) + "' already defined on line " +
                                     std::to_string(it->second));
      return false;
    }
    e.user = std::string(user);
    e.hash = std::move(*h);
    f.entries_.push_back(std::move(e));
    return true;
  });
  if (!error.empty()) return Result<PasswordFile>::fail(std::move(error));
  return Result<PasswordFile>::ok(std::move(f));
}

const PasswordHash* PasswordFile::find(std::string_view user) const {
  for (const Entry& e : entries_)
    if (!e.user.empty() && e.user == user) return &e.hash;
  return nullptr;
}

void PasswordFile::set(std::string_view user, const PasswordHash& hash) {
  std::string text = std::string(user) + ":" + format_password_hash(hash);
  for (Entry& e : entries_) {
    if (!e.user.empty() && e.user == user) {
      e.hash = hash;
      e.text = std::move(text);
      return;
    }
  }
  entries_.push_back(Entry{std::string(user), std::move(text), hash, 0});
}

bool PasswordFile::remove(std::string_view user) {
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (!it->user.empty() && it->user == user) {
      entries_.erase(it);
      return true;
    }
  }
  return false;
}

std::string PasswordFile::to_string() const {
  std::string out;
  for (const Entry& e : entries_) {
    out += e.text;
    out += '\n';
  }
  return out;
}

std::shared_ptr<const PasswordDb> PasswordDb::from(const PasswordFile& file) {
  auto db = std::make_shared<PasswordDb>();
  // The dummy copies the most common (scheme, iterations) so an unknown user takes as long as
  // a typical known one.
  std::map<std::pair<HashScheme, uint32_t>, size_t> shapes;
  for (const auto& e : file.entries()) {
    if (e.user.empty()) continue;
    db->users_.emplace(e.user, e.hash);
    ++shapes[{e.hash.scheme, e.hash.iterations}];
  }
  PasswordHash& d = db->dummy_;
  d.scheme = HashScheme::kPbkdf2Sha512;
  d.iterations = kDefaultIterations;
  size_t best = 0;
  for (const auto& [shape, count] : shapes) {
    if (count > best) {
      best = count;
      d.scheme = shape.first;
      d.iterations = shape.second;
    }
  }
  d.salt.assign(kSaltBytes, 0);
  // A random digest no password reaches; if RAND fails the zeros are just as unreachable.
  RAND_bytes(d.salt.data(), static_cast<int>(d.salt.size()));
  RAND_bytes(d.digest.data(), static_cast<int>(d.digest.size()));
  return db;
}

Result<std::shared_ptr<const PasswordDb>> PasswordDb::parse(std::string_view text,
                                                            std::string_view source) {
  using R = Result<std::shared_ptr<const PasswordDb>>;
  auto file = PasswordFile::parse(text, source);
  if (!file) return R::fail(file.error());
  return R::ok(from(*file));
}

PasswordDb::Verdict PasswordDb::verify(std::string_view user, std::string_view password) const {
  auto it = users_.find(user);
  if (it == users_.end()) {
    (void)verify_password(dummy_, password);  // same work as a known user; result unused
    return Verdict::kUnknownUser;
  }
  return verify_password(it->second, password) ? Verdict::kOk : Verdict::kWrongPassword;
}

Result<std::shared_ptr<const PasswordDb>> load_password_file(const std::string& path) {
  auto text = read_text_file(path);
  if (!text) return Result<std::shared_ptr<const PasswordDb>>::fail(text.error());
  return PasswordDb::parse(*text, path);
}

}  // namespace tcpms::auth
