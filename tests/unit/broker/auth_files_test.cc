// FileAuthenticator, AclAuthorizer and AuthFiles::reload on real files in a temp directory,
// and Broker::admit_connection (per-source and overall connection rates).
#include "broker/auth_files.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "auth/password_hash.h"
#include "broker/broker.h"

namespace tcpms::broker {
namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/auth_files_test.XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf " + path_).c_str()); }
  std::string write(const std::string& name, const std::string& text) const {
    std::string p = path_ + "/" + name;
    std::ofstream(p) << text;
    return p;
  }

 private:
  std::string path_;
};

std::string user_line(const std::string& user, const std::string& password) {
  auto h = auth::make_password_hash(password, 1000);
  return user + ":" + auth::format_password_hash(*h) + "\n";
}

ConnectInfo who(const char* user, const char* password, const char* ip = "192.0.2.1") {
  ConnectInfo i;
  i.client_id = "c";
  if (user) i.username = user;
  if (password) i.password = password;
  auto* sin = reinterpret_cast<sockaddr_in*>(&i.peer);
  sin->sin_family = AF_INET;
  ::inet_pton(AF_INET, ip, &sin->sin_addr);
  return i;
}

TEST(FileAuthenticator, PasswordsAnonymousAndThrottle) {
  TempDir dir;
  AuthFilesConfig c;
  c.password_file = dir.write("passwd", user_line("alice", "secret") + user_line("bob", "pw"));
  c.allow_anonymous = false;
  c.login_guard = {{0.001, 2}, {0.001, 4}, 1024};
  std::string error;
  auto files = AuthFiles::load(c, &error);
  ASSERT_TRUE(files) << error;
  FileAuthenticator a(files);
  EXPECT_EQ(a.check(who("alice", "secret")), AuthResult::kAccept);
  EXPECT_EQ(a.check(who(nullptr, nullptr)), AuthResult::kNotAuthorized);
  EXPECT_EQ(a.check(who("alice", "wrong")), AuthResult::kBadUserNameOrPassword);
  EXPECT_EQ(a.check(who("alice", "wrong")), AuthResult::kBadUserNameOrPassword);
  // Two failures for alice from 192.0.2.1 used that pair's burst: refused before hashing,
  // even when right.
  EXPECT_EQ(a.check(who("alice", "secret")), AuthResult::kNotAuthorized);
  // Another user from the same address is not affected, nor alice from another address.
  EXPECT_EQ(a.check(who("bob", "pw")), AuthResult::kAccept);
  EXPECT_EQ(a.check(who("alice", "secret", "192.0.2.2")), AuthResult::kAccept);
  // Guessing many users from one address meets the address's cap (4 failures).
  EXPECT_EQ(a.check(who("carol", "x")), AuthResult::kBadUserNameOrPassword);
  EXPECT_EQ(a.check(who("dave", "x")), AuthResult::kBadUserNameOrPassword);
  EXPECT_EQ(a.check(who("erin", "x")), AuthResult::kNotAuthorized);
  auto& n = files->counters();
  EXPECT_EQ(n.accepted.load(), 3u);
  EXPECT_EQ(n.bad_credentials.load(), 4u);
  EXPECT_EQ(n.anonymous_refused.load(), 1u);
  EXPECT_EQ(n.throttled.load(), 1u);
  EXPECT_EQ(n.throttled_address.load(), 1u);
}

TEST(FileAuthenticator, AnonymousAllowedAndNoPasswordFile) {
  AuthFilesConfig c;
  c.allow_anonymous = true;
  std::string error;
  auto files = AuthFiles::load(c, &error);
  ASSERT_TRUE(files);
  FileAuthenticator a(files);
  EXPECT_EQ(a.check(who(nullptr, nullptr)), AuthResult::kAccept);
  // No password file: no user name is known.
  EXPECT_EQ(a.check(who("alice", "x")), AuthResult::kBadUserNameOrPassword);
}

TEST(AuthFiles, LoadErrorsNameFileAndLine) {
  TempDir dir;
  AuthFilesConfig c;
  c.acl_file = dir.write("acl", "topic read a\ntopic readonly b\n");
  std::string error;
  EXPECT_FALSE(AuthFiles::load(c, &error));
  EXPECT_NE(error.find(c.acl_file + ":2:"), std::string::npos) << error;
}

TEST(AclAuthorizer, RulesReloadAndBrokenReloadKeepsOld) {
  TempDir dir;
  AuthFilesConfig c;
  c.acl_file = dir.write("acl", "user alice\ntopic readwrite a/#\npattern read in/%u\n");
  std::string error;
  auto files = AuthFiles::load(c, &error);
  ASSERT_TRUE(files) << error;
  AclAuthorizer z(files);
  EXPECT_TRUE(z.uses_username());
  ClientRef alice{"c1", "alice"};
  ClientRef anon{"c2", std::nullopt};
  EXPECT_TRUE(z.can_publish(alice, "a/b"));
  EXPECT_FALSE(z.can_publish(alice, "b/b"));
  EXPECT_FALSE(z.can_publish(anon, "a/b"));
  EXPECT_TRUE(z.can_subscribe(alice, "in/alice"));
  EXPECT_FALSE(z.can_subscribe(alice, "in/bob"));

  dir.write("acl", "user alice\ntopic readwrite b/#\n");
  auto lines = files->reload();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(lines[0].ok) << lines[0].text;
  EXPECT_TRUE(z.can_publish(alice, "b/b"));
  EXPECT_FALSE(z.can_publish(alice, "a/b"));

  dir.write("acl", "user alice\ntopic readwrite c/#\nbogus line\n");
  lines = files->reload();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_FALSE(lines[0].ok);
  EXPECT_NE(lines[0].text.find(c.acl_file + ":3:"), std::string::npos) << lines[0].text;
  EXPECT_TRUE(z.can_publish(alice, "b/b"));  // the old rules stay
  EXPECT_FALSE(z.can_publish(alice, "c/b"));
  EXPECT_EQ(files->counters().reloads_failed.load(), 1u);
}

TEST(AclAuthorizer, WithoutAclFileAllowsEverything) {
  std::string error;
  auto files = AuthFiles::load(AuthFilesConfig{}, &error);
  AclAuthorizer z(files);
  EXPECT_FALSE(z.uses_username());
  EXPECT_TRUE(z.can_publish({"c", std::nullopt}, "x/y"));
  EXPECT_TRUE(z.can_subscribe({"c", std::nullopt}, "#"));
}

sockaddr_storage addr(const char* ip) {
  sockaddr_storage ss{};
  auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
  sin->sin_family = AF_INET;
  ::inet_pton(AF_INET, ip, &sin->sin_addr);
  return ss;
}

TEST(BrokerConnectRate, PerSourceAndOverall) {
  BrokerConfig per_source;
  per_source.connects_per_s_per_source = 0.001;
  per_source.connect_burst_per_source = 3;
  Broker b(per_source);
  ASSERT_TRUE(b.connect_limits_enabled());
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(b.admit_connection(addr("198.51.100.1")));
  EXPECT_FALSE(b.admit_connection(addr("198.51.100.1")));
  EXPECT_TRUE(b.admit_connection(addr("198.51.100.2")));

  BrokerConfig overall;
  overall.connects_per_s = 0.001;
  overall.connect_burst = 2;
  Broker o(overall);
  EXPECT_TRUE(o.admit_connection(addr("198.51.100.1")));
  EXPECT_TRUE(o.admit_connection(addr("198.51.100.2")));
  EXPECT_FALSE(o.admit_connection(addr("198.51.100.3")));

  Broker none{BrokerConfig{}};
  EXPECT_FALSE(none.connect_limits_enabled());
}

}  // namespace
}  // namespace tcpms::broker
