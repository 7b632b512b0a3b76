// Access control lists in Mosquitto's acl_file format, so existing files work:
//
//   # comment
//   topic [read|write|readwrite|deny] TOPIC     before any `user` line: anonymous clients
//   user NAME                                    the following `topic` lines are NAME's
//   topic [read|write|readwrite|deny] TOPIC
//   pattern [read|write|readwrite|deny] TOPIC    every client, wherever the line is;
//                                                a level "%c" is the client id, "%u" the username
//
// Without an access word a rule is readwrite (a topic containing a space needs one). TOPIC may
// use '+' and '#'. Decisions:
//   publish   -> needs write on the topic. Nobody may publish to $SYS (first level "$SYS").
//   subscribe -> the whole filter must be covered by one read rule: "a/#" covers "a/+/b",
//                "a/+" does not cover "a/#".
//   deny      -> checked first, for the client's own rules and the patterns alike. For a
//                subscription a deny rule refuses any filter that could match a denied topic
//                (the broker has no per-message read check; see can_read()).
//   $-topics  -> a '+' or '#' first level never matches a topic starting with '$'
//                [MQTT-4.7.2-1], so $SYS is readable only through a rule that names it.
// A client with a username gets that user's rules (none if the file has no such user) plus
// the patterns; a client without one gets the anonymous rules plus the patterns. Patterns do
// not apply to a client whose id is empty or whose id or username contains '+' or '#'
// (CVE-2017-7650), and a "%u" rule does not apply to a client without a username.
//
// Thread rules: an Acl is immutable; every method may run on any number of threads at once.
// Checks allocate nothing and do no I/O, so they are fit for loop threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "auth/result.h"

namespace tcpms::auth {

// Who asks: the CONNECT's client id and username (nullopt: no username).
struct AclSubject {
  std::string_view client_id;
  std::optional<std::string_view> username;
};

class Acl {
 public:
  // Errors are "SOURCE:LINE: why".
  static Result<std::shared_ptr<const Acl>> parse(std::string_view text, std::string_view source);

  bool can_publish(const AclSubject& who, std::string_view topic) const;
  bool can_subscribe(const AclSubject& who, std::string_view filter) const;
  // Per-message read check on a concrete topic, for a broker that filters deliveries.
  bool can_read(const AclSubject& who, std::string_view topic) const;

  size_t rule_count() const noexcept { return rule_count_; }

  enum Access : uint8_t { kRead = 1, kWrite = 2, kReadWrite = 3 };
  enum class LevelKind : uint8_t { kLiteral, kPlus, kHash, kClientId, kUsername };
  struct Level {
    LevelKind kind;
    std::string text;  // kLiteral only
  };
  struct Rule {
    std::vector<Level> levels;
    uint8_t access = 0;  // kRead/kWrite bits; 0 with deny
    bool deny = false;
    bool uses_username = false;
  };

 private:
  bool check(const AclSubject& who, std::string_view topic_or_filter, Access need) const;

  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::vector<Rule> anonymous_;
  std::unordered_map<std::string, std::vector<Rule>, Hash, std::equal_to<>> users_;
  std::vector<Rule> patterns_;
  size_t rule_count_ = 0;
};

// Reads and parses PATH; on failure keep the current Acl (errors as in Acl::parse).
Result<std::shared_ptr<const Acl>> load_acl_file(const std::string& path);

}  // namespace tcpms::auth
