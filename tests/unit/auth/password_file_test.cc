// Password files: parsing with line numbers, editing, the immutable db and its snapshot swap,
// Mosquitto's own files, atomic writes.
#include "auth/password_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "auth/file_io.h"
#include "auth/snapshot.h"

namespace tcpms::auth {
namespace {

using Verdict = PasswordDb::Verdict;

std::string line_for(std::string_view user, std::string_view password, uint32_t iterations = 1000) {
  return std::string(user) + ":" + format_password_hash(*make_password_hash(password, iterations));
}

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tcpms_auth_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(std::string_view name) const { return dir_ + "/" + std::string(name); }
  std::string dir_;
};

TEST(PasswordFile, ReadsMosquittoPasswdOutput) {
  // fixtures/mosquitto_passwd.txt: `mosquitto_passwd -c -b` (alice, bob: $7$ with 101
  // iterations) and `-H sha512 -b` (carol: $6$), Mosquitto 2.0.11.
  auto db = load_password_file(TCPMS_AUTH_FIXTURES "/mosquitto_passwd.txt");
  ASSERT_TRUE(db) << db.error();
  EXPECT_EQ((*db)->size(), 3u);
  EXPECT_EQ((*db)->verify("alice", "correct horse"), Verdict::kOk);
  EXPECT_EQ((*db)->verify("bob", "hunter2"), Verdict::kOk);
  EXPECT_EQ((*db)->verify("carol", "legacy pass"), Verdict::kOk);
  EXPECT_EQ((*db)->verify("alice", "hunter2"), Verdict::kWrongPassword);
  EXPECT_EQ((*db)->verify("dave", "hunter2"), Verdict::kUnknownUser);
  EXPECT_EQ((*db)->verify("Alice", "correct horse"), Verdict::kUnknownUser);
}

TEST(PasswordFile, CommentsBlankLinesAndCrlf) {
  std::string text = "# users\n\n" + line_for("a", "pa") + "\r\n   \n#x:y\n" + line_for("b", "pb");
  auto db = PasswordDb::parse(text, "pw");
  ASSERT_TRUE(db) << db.error();
  EXPECT_EQ((*db)->size(), 2u);
  EXPECT_EQ((*db)->verify("a", "pa"), Verdict::kOk);
  EXPECT_EQ((*db)->verify("b", "pb"), Verdict::kOk);
  EXPECT_TRUE(PasswordDb::parse("", "pw"));
}

TEST(PasswordFile, ErrorsNameFileAndLine) {
  std::string good = line_for("a", "pa");
  auto err = [](std::string_view text) { return PasswordDb::parse(text, "users.pw").error(); };
  EXPECT_EQ(err(good + "\n\nnocolon\n"), "users.pw:3: expected USER:HASH");
  EXPECT_EQ(err(":" + good.substr(2)), "users.pw:1: empty username");
  EXPECT_EQ(err("# c\nbob:plain\n").rfind("users.pw:2: user 'bob': not a hashed password", 0), 0u);
  EXPECT_EQ(err(good + "\n" + good + "\n"), "users.pw:2: user 'a' already defined on line 1");
  EXPECT_EQ(err("x:$7$5$AAAAAAAAAAAAAAAA$AAAA\n"),
            "users.pw:1: user 'x': hash must be 64 bytes (SHA-512)");
}

TEST(PasswordFile, EditKeepsOrderAndComments) {
  auto f = PasswordFile::parse("# head\n" + line_for("a", "1") + "\n" + line_for("b", "2") + "\n", "pw");
  ASSERT_TRUE(f) << f.error();
  f->set("a", *make_password_hash("new", 1000));
  f->set("c", *make_password_hash("3", 1000));
  EXPECT_TRUE(f->remove("b"));
  EXPECT_FALSE(f->remove("b"));
  std::string out = f->to_string();
  EXPECT_EQ(out.rfind("# head\na:$7$1000$", 0), 0u) << out;
  EXPECT_NE(out.find("\nc:$7$1000$"), std::string::npos);
  EXPECT_EQ(out.find("\nb:"), std::string::npos);
  auto db = PasswordDb::parse(out, "pw");
  ASSERT_TRUE(db) << db.error();
  EXPECT_EQ((*db)->verify("a", "new"), Verdict::kOk);
  EXPECT_EQ((*db)->verify("a", "1"), Verdict::kWrongPassword);
  EXPECT_EQ((*db)->verify("c", "3"), Verdict::kOk);
}

TEST(PasswordFile, UsernameRules) {
  EXPECT_EQ(username_problem("alice"), "");
  EXPECT_EQ(username_problem("b\xc3\xb6rk with space"), "");
  EXPECT_NE(username_problem(""), "");
  EXPECT_NE(username_problem("a:b"), "");
  EXPECT_NE(username_problem("a\nb"), "");
  EXPECT_NE(username_problem(std::string(65536, 'x')), "");
}

// The unknown-user path must cost a hash with the file's iteration count, like a wrong
// password. Asserted on the work done, not on a clock (timed tests are flaky on shared CI).
TEST(PasswordDb, UnknownUserIsCheckedAgainstAHashOfTheSameCost) {
  std::string text = line_for("a", "pa", 100'000) + "\n" + line_for("b", "pb", 100'000) +
                     "\n" + line_for("c", "pc", 7'000) + "\n";
  auto db = *PasswordDb::parse(text, "pw");
  EXPECT_EQ(db->dummy_hash().scheme, HashScheme::kPbkdf2Sha512);
  EXPECT_EQ(db->dummy_hash().iterations, 100'000u);  // the most common count in the file
  EXPECT_EQ(db->verify("nobody", "pa"), PasswordDb::Verdict::kUnknownUser);
  EXPECT_EQ(db->verify("a", "wrong"), PasswordDb::Verdict::kWrongPassword);
  EXPECT_EQ(db->verify("a", "pa"), PasswordDb::Verdict::kOk);
}

TEST(PasswordDb, ConcurrentVerifyDuringSwap) {
  Snapshot<PasswordDb> users(*PasswordDb::parse(line_for("u", "one", 10), "pw"));
  auto second = *PasswordDb::parse(line_for("u", "two", 10), "pw");
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      SnapshotReader<PasswordDb> reader(users);
      while (!stop.load()) {
        const PasswordDb* db = reader.get();
        if (db->verify("u", "one") != Verdict::kOk && db->verify("u", "two") != Verdict::kOk) ++bad;
      }
    });
  }
  for (int i = 0; i < 200; ++i) {
    users.store(i % 2 ? *PasswordDb::parse(line_for("u", "one", 10), "pw") : second);
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(users.generation(), 200u);
}

TEST_F(TempDir, AtomicWriteMode0600AndReload) {
  std::string p = path("users.pw");
  ASSERT_EQ(write_file_atomic(p, line_for("a", "pa") + "\n"), "");
  struct stat st {};
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto db = load_password_file(p);
  ASSERT_TRUE(db) << db.error();
  EXPECT_EQ((*db)->verify("a", "pa"), Verdict::kOk);
  // Replacing keeps no temporary files behind.
  ASSERT_EQ(write_file_atomic(p, line_for("b", "pb") + "\n"), "");
  size_t files = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(dir_)) ++files;
  EXPECT_EQ(files, 1u);
  EXPECT_EQ((*load_password_file(p))->verify("a", "pa"), Verdict::kUnknownUser);
}

TEST_F(TempDir, WriteThroughSymlinkReplacesTarget) {
  std::string target = path("real.pw"), link = path("link.pw");
  ASSERT_EQ(write_file_atomic(target, "# old\n"), "");
  std::filesystem::create_symlink(target, link);
  ASSERT_EQ(write_file_atomic(link, "# new\n"), "");
  EXPECT_TRUE(std::filesystem::is_symlink(link));
  EXPECT_EQ(*read_text_file(target), "# new\n");
}

TEST_F(TempDir, LoadErrorsNameTheFile) {
  auto missing = load_password_file(path("nope"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), path("nope") + ": No such file or directory");
  auto dir = load_password_file(dir_);
  EXPECT_EQ(dir.error(), dir_ + ": not a regular file");
  EXPECT_NE(write_file_atomic(path("no/such/dir/f"), "x").find("No such file"), std::string::npos);
}

}  // namespace
}  // namespace tcpms::auth
