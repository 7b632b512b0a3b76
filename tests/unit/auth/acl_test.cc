// ACL files in Mosquitto's format: parse errors with line numbers, user/anonymous/pattern
// rules, read/write/deny, wildcard coverage for subscriptions, $SYS.
#include "auth/acl.h"

#include <gtest/gtest.h>

namespace tcpms::auth {
namespace {

std::shared_ptr<const Acl> parse(std::string_view text) {
  auto acl = Acl::parse(text, "acl");
  EXPECT_TRUE(acl) << acl.error();
  return acl ? *acl : nullptr;
}
std::string error_of(std::string_view text) { return Acl::parse(text, "test.acl").error(); }

const AclSubject kAnon{"anon-client", std::nullopt};
AclSubject user(std::string_view name, std::string_view client_id = "cid") { return {client_id, name}; }

TEST(AclParse, MosquittoExampleFile) {
  auto acl = parse(
      "# This affects access control for clients with no username.\n"
      "topic read $SYS/#\n"
      "\n"
      "# This only affects clients with username \"roger\".\n"
      "user roger\n"
      "topic foo/bar\n"
      "\n"
      "# This affects all clients.\n"
      "pattern write $SYS/broker/connection/%c/state\n");
  EXPECT_EQ(acl->rule_count(), 3u);
  EXPECT_TRUE(acl->can_subscribe(kAnon, "$SYS/#"));
  EXPECT_FALSE(acl->can_subscribe(user("roger"), "$SYS/#"));
  EXPECT_TRUE(acl->can_publish(user("roger"), "foo/bar"));
  EXPECT_TRUE(acl->can_subscribe(user("roger"), "foo/bar"));
  EXPECT_FALSE(acl->can_publish(kAnon, "foo/bar"));
  // Nobody publishes to $SYS, even with a pattern that says write.
  EXPECT_FALSE(acl->can_publish(user("roger", "br1"), "$SYS/broker/connection/br1/state"));
}

TEST(AclParse, ErrorsNameFileAndLine) {
  EXPECT_EQ(error_of("topic a\nfrobnicate x\n"),
            "test.acl:2: unknown keyword 'frobnicate' (expected user, topic or pattern)");
  EXPECT_EQ(error_of("\n\ntopic readonly a/b\n"),
            "test.acl:3: unknown access 'readonly' (expected read, write, readwrite or deny)");
  EXPECT_EQ(error_of("user\n"), "test.acl:1: 'user' needs a username");
  EXPECT_EQ(error_of("# c\ntopic\n"), "test.acl:2: 'topic' needs a topic");
  EXPECT_EQ(error_of("topic read a/#/b\n"), "test.acl:1: '#' must be the last level of 'a/#/b'");
  EXPECT_EQ(error_of("topic read a/b+\n"), "test.acl:1: '+' and '#' must fill a whole level in 'a/b+'");
  EXPECT_EQ(error_of("pattern read a/x%c\n"),
            "test.acl:1: %c and %u must fill a whole level in 'a/x%c'");
}

TEST(AclParse, AccessWordsSpacesAndCrlf) {
  auto acl = parse("  topic   read   with space/t\r\n\ttopic write w\r\ntopic deny d\ntopic readwrite rw\ntopic bare\n");
  EXPECT_TRUE(acl->can_subscribe(kAnon, "with space/t"));
  EXPECT_FALSE(acl->can_publish(kAnon, "with space/t"));
  EXPECT_TRUE(acl->can_publish(kAnon, "w"));
  EXPECT_FALSE(acl->can_subscribe(kAnon, "w"));
  EXPECT_TRUE(acl->can_publish(kAnon, "rw"));
  EXPECT_TRUE(acl->can_subscribe(kAnon, "rw"));
  EXPECT_TRUE(acl->can_publish(kAnon, "bare"));  // no access word: readwrite
  EXPECT_TRUE(acl->can_subscribe(kAnon, "bare"));
  EXPECT_FALSE(acl->can_publish(kAnon, "d"));
}

TEST(AclMatch, UsersAnonymousAndUnlistedUsers) {
  auto acl = parse(
      "topic read public/#\n"
      "user alice\n"
      "topic alice/#\n"
      "user bob\n"
      "topic read alice/status\n");
  EXPECT_TRUE(acl->can_subscribe(kAnon, "public/news"));
  EXPECT_FALSE(acl->can_subscribe(kAnon, "alice/x"));
  EXPECT_TRUE(acl->can_publish(user("alice"), "alice/x/y"));
  EXPECT_TRUE(acl->can_publish(user("alice"), "alice"));  // '#' includes the parent level
  EXPECT_FALSE(acl->can_subscribe(user("alice"), "public/news"));  // anonymous rules are not hers
  EXPECT_TRUE(acl->can_subscribe(user("bob"), "alice/status"));
  EXPECT_FALSE(acl->can_publish(user("bob"), "alice/status"));
  EXPECT_FALSE(acl->can_subscribe(user("bob"), "alice/#"));
  // A username with no block gets nothing (but patterns), not the anonymous rules.
  EXPECT_FALSE(acl->can_subscribe(user("mallory"), "public/news"));
  // Usernames are exact.
  EXPECT_FALSE(acl->can_publish(user("Alice"), "alice/x"));
  // Repeated user blocks add up.
  auto twice = parse("user a\ntopic read x\nuser b\nuser a\ntopic read y\n");
  EXPECT_TRUE(twice->can_subscribe(user("a"), "x"));
  EXPECT_TRUE(twice->can_subscribe(user("a"), "y"));
}

TEST(AclMatch, PatternsSubstituteClientIdAndUsername) {
  auto acl = parse(
      "user alice\n"
      "pattern readwrite devices/%c/#\n"  // applies to every client despite the user line
      "pattern read users/%u/inbox\n");
  EXPECT_TRUE(acl->can_publish(kAnon, "devices/anon-client/temp"));
  EXPECT_FALSE(acl->can_publish(kAnon, "devices/other/temp"));
  EXPECT_TRUE(acl->can_subscribe(user("bob", "c7"), "devices/c7/#"));
  EXPECT_FALSE(acl->can_subscribe(user("bob", "c7"), "devices/+/temp"));
  EXPECT_TRUE(acl->can_subscribe(user("bob"), "users/bob/inbox"));
  EXPECT_FALSE(acl->can_subscribe(user("bob"), "users/alice/inbox"));
  EXPECT_FALSE(acl->can_subscribe(user("bob"), "users/+/inbox"));
  // %u never matches for a client without a username (not even an empty level).
  EXPECT_FALSE(acl->can_subscribe(kAnon, "users//inbox"));
  // A client id with '/' cannot reach into other levels: %c is one whole level.
  EXPECT_FALSE(acl->can_publish(AclSubject{"a/b", std::nullopt}, "devices/a/b"));
  // Ids or usernames with wildcards get no pattern rules at all (CVE-2017-7650).
  EXPECT_FALSE(acl->can_subscribe(AclSubject{"+", std::nullopt}, "devices/+/x"));
  EXPECT_FALSE(acl->can_publish(AclSubject{"#", std::nullopt}, "devices/#"));
  EXPECT_FALSE(acl->can_subscribe(AclSubject{"c", "#"}, "users/#/inbox"));
  EXPECT_FALSE(acl->can_publish(AclSubject{"", std::nullopt}, "devices//t"));
  // In a `topic` line %c is literal text.
  auto literal = parse("topic read a/%c\n");
  EXPECT_TRUE(literal->can_subscribe(AclSubject{"x", std::nullopt}, "a/%c"));
  EXPECT_FALSE(literal->can_subscribe(AclSubject{"x", std::nullopt}, "a/x"));
}

TEST(AclMatch, SubscriptionMustBeCoveredByOneReadRule) {
  auto acl = parse("topic read a/#\ntopic read b/+\ntopic read c/+/d\ntopic write w/#\n");
  EXPECT_TRUE(acl->can_subscribe(kAnon, "a/+/b"));
  EXPECT_TRUE(acl->can_subscribe(kAnon, "a/#"));
  EXPECT_TRUE(acl->can_subscribe(kAnon, "a"));
  EXPECT_TRUE(acl->can_subscribe(kAnon, "b/x"));
  EXPECT_TRUE(acl->can_subscribe(kAnon, "b/+"));
  EXPECT_FALSE(acl->can_subscribe(kAnon, "b/#"));    // "b/+" does not cover "b/#"
  EXPECT_FALSE(acl->can_subscribe(kAnon, "b"));
  EXPECT_FALSE(acl->can_subscribe(kAnon, "b/x/y"));
  EXPECT_TRUE(acl->can_subscribe(kAnon, "c/+/d"));
  EXPECT_TRUE(acl->can_subscribe(kAnon, "c/x/d"));
  EXPECT_FALSE(acl->can_subscribe(kAnon, "c/x/+"));
  EXPECT_FALSE(acl->can_subscribe(kAnon, "+/x/d"));
  EXPECT_FALSE(acl->can_subscribe(kAnon, "#"));
  EXPECT_FALSE(acl->can_subscribe(kAnon, "w/x"));    // write is not read
  EXPECT_TRUE(acl->can_publish(kAnon, "w/x"));
  EXPECT_FALSE(acl->can_publish(kAnon, "a/x"));      // read is not write
  // Malformed filters and topics are refused, whatever the rules say.
  EXPECT_FALSE(acl->can_subscribe(kAnon, "a/#/b"));
  EXPECT_FALSE(acl->can_subscribe(kAnon, "a/x+"));
  EXPECT_FALSE(acl->can_subscribe(kAnon, ""));
  EXPECT_FALSE(acl->can_publish(kAnon, "w/+"));
  EXPECT_FALSE(acl->can_publish(kAnon, ""));
  // Per-message read check.
  EXPECT_TRUE(acl->can_read(kAnon, "a/1/2"));
  EXPECT_FALSE(acl->can_read(kAnon, "w/1"));
}

TEST(AclMatch, DenyComesFirst) {
  auto acl = parse(
      "topic readwrite home/#\n"
      "topic deny home/secret\n"
      "pattern deny home/%c/private/#\n");
  EXPECT_TRUE(acl->can_publish(kAnon, "home/lamp"));
  EXPECT_FALSE(acl->can_publish(kAnon, "home/secret"));
  EXPECT_TRUE(acl->can_publish(kAnon, "home/secret/x"));  // deny is exact unless it has wildcards
  EXPECT_FALSE(acl->can_publish(kAnon, "home/anon-client/private/x"));
  EXPECT_TRUE(acl->can_publish(AclSubject{"other", std::nullopt}, "home/anon-client/private/x"));
  EXPECT_FALSE(acl->can_subscribe(kAnon, "home/secret"));
  // A filter that could receive a denied topic is refused (no per-message check in the broker).
  EXPECT_FALSE(acl->can_subscribe(kAnon, "home/#"));
  EXPECT_FALSE(acl->can_subscribe(kAnon, "home/+"));
  EXPECT_FALSE(acl->can_subscribe(kAnon, "+/anon-client/private/#"));
  EXPECT_TRUE(acl->can_subscribe(kAnon, "home/+/state"));
  EXPECT_TRUE(acl->can_subscribe(kAnon, "home/lamp"));
  EXPECT_FALSE(acl->can_read(kAnon, "home/secret"));
  EXPECT_TRUE(acl->can_read(kAnon, "home/lamp"));
}

TEST(AclMatch, DollarTopicsNeedARuleThatNamesThem) {
  auto acl = parse("topic readwrite #\nuser ops\ntopic read $SYS/#\ntopic read +/status\n");
  EXPECT_TRUE(acl->can_subscribe(kAnon, "#"));
  EXPECT_TRUE(acl->can_subscribe(kAnon, "a/b"));
  EXPECT_FALSE(acl->can_subscribe(kAnon, "$SYS/#"));      // '#' does not match $SYS [MQTT-4.7.2-1]
  EXPECT_FALSE(acl->can_subscribe(kAnon, "$SYS/broker/uptime"));
  EXPECT_FALSE(acl->can_subscribe(kAnon, "$other/x"));
  EXPECT_FALSE(acl->can_read(kAnon, "$SYS/broker/uptime"));
  EXPECT_FALSE(acl->can_publish(kAnon, "$SYS/x"));
  EXPECT_FALSE(acl->can_publish(kAnon, "$SYS"));
  EXPECT_TRUE(acl->can_subscribe(user("ops"), "$SYS/#"));
  EXPECT_TRUE(acl->can_subscribe(user("ops"), "$SYS/broker/+"));
  EXPECT_FALSE(acl->can_subscribe(user("ops"), "$other/status"));  // '+' at level one skips '$'
  EXPECT_TRUE(acl->can_subscribe(user("ops"), "x/status"));
  EXPECT_FALSE(acl->can_publish(user("ops"), "$SYS/x"));
  // A deny of "#" does not reach $SYS either, and a deny on $SYS does not block "#".
  auto deny = parse("topic read $SYS/#\ntopic read #\ntopic deny $SYS/secret\n");
  EXPECT_TRUE(deny->can_subscribe(kAnon, "#"));
  EXPECT_FALSE(deny->can_subscribe(kAnon, "$SYS/#"));
  EXPECT_TRUE(deny->can_subscribe(kAnon, "$SYS/public"));
}

TEST(AclMatch, EmptyFileAllowsNothing) {
  auto acl = parse("# nothing\n");
  EXPECT_EQ(acl->rule_count(), 0u);
  EXPECT_FALSE(acl->can_publish(kAnon, "a"));
  EXPECT_FALSE(acl->can_subscribe(user("x"), "a"));
}

TEST(AclLoad, MissingFileNamesIt) {
  auto r = load_acl_file("/nonexistent/tcpms.acl");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "/nonexistent/tcpms.acl: No such file or directory");
}

}  // namespace
}  // namespace tcpms::auth
