#include "auth/acl.h"

#include "auth/file_io.h"
#include "auth/lines.h"

namespace tcpms::auth {
namespace {

using detail::located;
using LevelKind = Acl::LevelKind;
using Level = Acl::Level;
using Rule = Acl::Rule;

// Walks the levels of a topic or filter without copying it ("a//b" has an empty level).
class Levels {
 public:
  explicit Levels(std::string_view s) : rest_(s) {}
  bool at_end() const noexcept { return end_; }
  std::string_view peek() const noexcept { return rest_.substr(0, rest_.find('/')); }
  std::string_view next() noexcept {
    size_t slash = rest_.find('/');
    std::string_view level = rest_.substr(0, slash);
    if (slash == std::string_view::npos) end_ = true;
    else rest_.remove_prefix(slash + 1);
    return level;
  }

 private:
  std::string_view rest_;
  bool end_ = false;
};

bool is_dollar(std::string_view level) { return !level.empty() && level.front() == '$'; }
bool has_wildcard(std::string_view s) { return s.find_first_of("+#") != std::string_view::npos; }

// '+' and '#' fill whole levels and '#' is last [MQTT-4.7.1-2, -3]. The broker checks this
// before asking, but a malformed filter must not slip past a rule by accident.
bool valid_filter(std::string_view filter) {
  Levels levels(filter);
  while (!levels.at_end()) {
    std::string_view l = levels.next();
    if (l == "#") return levels.at_end();
    if (l != "+" && has_wildcard(l)) return false;
  }
  return true;
}

// A rule level after %c/%u substitution: kLiteral (with its text), kPlus or kHash.
struct Resolved {
  LevelKind kind;
  std::string_view text;
};
Resolved resolve(const Level& l, const AclSubject& who) {
  switch (l.kind) {
    case LevelKind::kClientId: return {LevelKind::kLiteral, who.client_id};
    case LevelKind::kUsername: return {LevelKind::kLiteral, who.username.value_or("")};
    default: return {l.kind, l.text};
  }
}

// Every topic the request (a topic or filter) matches, the rule matches too.
bool covers(const Rule& rule, std::string_view request, const AclSubject& who) {
  Levels req(request);
  for (size_t i = 0;; ++i) {
    if (i == rule.levels.size()) return req.at_end();
    Resolved r = resolve(rule.levels[i], who);
    // '#' also matches the parent level ("a/#" matches "a"), but no $-topic at level one.
    if (r.kind == LevelKind::kHash) return !(i == 0 && !req.at_end() && is_dollar(req.peek()));
    if (req.at_end()) return false;
    std::string_view f = req.next();
    if (f == "#") return false;  // only a '#' rule covers '#'
    if (r.kind == LevelKind::kPlus) {
      if (i == 0 && is_dollar(f)) return false;
      continue;
    }
    if (f == "+" || f != r.text) return false;
  }
}

// Some topic matches both the rule and the request.
bool intersects(const Rule& rule, std::string_view request, const AclSubject& who) {
  Levels req(request);
  for (size_t i = 0;; ++i) {
    bool rule_end = i == rule.levels.size();
    if (rule_end && req.at_end()) return true;
    Resolved r = rule_end ? Resolved{LevelKind::kLiteral, {}} : resolve(rule.levels[i], who);
    if (!rule_end && r.kind == LevelKind::kHash)
      return !(i == 0 && !req.at_end() && is_dollar(req.peek()));
    if (!req.at_end() && req.peek() == "#")
      return !(i == 0 && !rule_end && r.kind == LevelKind::kLiteral && is_dollar(r.text));
    if (rule_end || req.at_end()) return false;
    std::string_view f = req.next();
    if (r.kind == LevelKind::kPlus) {
      if (i == 0 && is_dollar(f)) return false;
      continue;
    }
    if (f == "+") {
      if (i == 0 && is_dollar(r.text)) return false;
      continue;
    }
    if (f != r.text) return false;
  }
}

std::string parse_topic(std::string_view topic, bool pattern, Rule& rule) {
  if (topic.size() > 65535) return "topic longer than 65535 bytes";
  if (topic.find('\0') != std::string_view::npos) return "topic contains a NUL byte";
  Levels levels(topic);
  while (!levels.at_end()) {
    std::string_view l = levels.next();
    if (!rule.levels.empty() && rule.levels.back().kind == LevelKind::kHash)
      return "'#' must be the last level of '" + std::string(topic) + "'";
    if (l == "+") rule.levels.push_back({LevelKind::kPlus, {}});
    else if (l == "#") rule.levels.push_back({LevelKind::kHash, {}});
    else if (has_wildcard(l))
      return "'+' and '#' must fill a whole level in '" + std::string(topic) + "'";
    else if (pattern && l == "%c") rule.levels.push_back({LevelKind::kClientId, {}});
    else if (pattern && l == "%u") {
      rule.levels.push_back({LevelKind::kUsername, {}});
      rule.uses_username = true;
    } else if (pattern && (l.find("%c") != std::string_view::npos ||
                           l.find("%u") != std::string_view::npos))
      return "%c and %u must fill a whole level in '" + std::string(topic) + "'";
    else rule.levels.push_back({LevelKind::kLiteral, std::string(l)});
  }
  return {};
}

}  // namespace

Result<std::shared_ptr<const Acl>> Acl::parse(std::string_view text, std::string_view source) {
  using R = Result<std::shared_ptr<const Acl>>;
  auto acl = std::make_shared<Acl>();
  std::vector<Rule>* current = &acl->anonymous_;
  std::string error;
  detail::for_each_line(text, [&](size_t n, std::string_view line) {
    std::string_view t = detail::trim(line);
    if (t.empty() || t.front() == '#') return true;
    size_t sp = t.find_first_of(" \t");
    std::string_view keyword = t.substr(0, sp);
    std::string_view rest = sp == std::string_view::npos ? std::string_view{} : detail::trim(t.substr(sp));
    auto fail = [&](std::string why) {
      error = located(source, n, why);
      return false;
    };
    if (keyword == "user") {
      if (rest.empty()) return fail("'user' needs a username");
      current = &acl->users_[std::string(rest)];
      return true;
    }
    bool pattern = keyword == "pattern";
    if (!pattern && keyword != "topic")
      return fail("unknown keyword '" + std::string(keyword) + "' (expected user, topic or pattern)");
    if (rest.empty()) return fail("'" + std::string(keyword) + "' needs a topic");
    Rule rule;
    size_t sp2 = rest.find_first_of(" \t");
    std::string_view topic = rest;
    rule.access = kReadWrite;
    if (sp2 != std::string_view::npos) {  // an access word, then the topic (spaces allowed)
      std::string_view word = rest.substr(0, sp2);
      topic = detail::trim(rest.substr(sp2));
      if (word == "read") rule.access = kRead;
      else if (word == "write") rule.access = kWrite;
      else if (word == "readwrite") rule.access = kReadWrite;
      else if (word == "deny") rule.access = 0, rule.deny = true;
      else
        return fail("unknown access '" + std::string(word) +
                    "' (expected read, write, readwrite or deny)");
    }
    if (std::string why = parse_topic(topic, pattern, rule); !why.empty()) return fail(why);
    (pattern ? acl->patterns_ : *current).push_back(std::move(rule));
    ++acl->rule_count_;
    return true;
  });
  if (!error.empty()) return R::fail(std::move(error));
  return R::ok(std::move(acl));
}

bool Acl::check(const AclSubject& who, std::string_view request, Access need) const {
  const std::vector<Rule>* own = &anonymous_;
  if (who.username) {
    auto it = users_.find(*who.username);
    own = it == users_.end() ? nullptr : &it->second;
  }
  bool patterns = !who.client_id.empty() && !has_wildcard(who.client_id) &&
                  !(who.username && has_wildcard(*who.username));
  auto applies = [&](const Rule& r) { return !r.uses_username || who.username.has_value(); };

  // Denials first, from the client's own rules and the patterns alike.
  if (own)
    for (const Rule& r : *own)
      if (r.deny && intersects(r, request, who)) return false;
  if (patterns)
    for (const Rule& r : patterns_)
      if (r.deny && applies(r) && intersects(r, request, who)) return false;

  if (own)
    for (const Rule& r : *own)
      if ((r.access & need) && covers(r, request, who)) return true;
  if (patterns)
    for (const Rule& r : patterns_)
      if ((r.access & need) && applies(r) && covers(r, request, who)) return true;
  return false;
}

bool Acl::can_publish(const AclSubject& who, std::string_view topic) const {
  if (topic.empty() || has_wildcard(topic)) return false;
  if (Levels(topic).peek() == "$SYS") return false;  // the broker's own; nobody publishes there
  return check(who, topic, kWrite);
}

bool Acl::can_subscribe(const AclSubject& who, std::string_view filter) const {
  if (filter.empty() || !valid_filter(filter)) return false;
  return check(who, filter, kRead);
}

bool Acl::can_read(const AclSubject& who, std::string_view topic) const {
  if (topic.empty() || has_wildcard(topic)) return false;
  return check(who, topic, kRead);
}

Result<std::shared_ptr<const Acl>> load_acl_file(const std::string& path) {
  auto text = read_text_file(path);
  if (!text) return Result<std::shared_ptr<const Acl>>::fail(text.error());
  return Acl::parse(*text, path);
}

}  // namespace tcpms::auth
