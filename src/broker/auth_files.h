// The file-backed auth hooks tcpms-server installs (docs/auth.md, "Wiring"):
//
//   AuthFiles          the password file and ACL file snapshots, the failed-login throttle
//                      (auth::LoginGuard: per user and address, looser per address) and
//                      the counters; reload() re-reads both files (SIGHUP), keeping the old
//                      rules for a file that fails to parse.
//   FileAuthenticator  Authenticator over AuthFiles: throttle, anonymous policy, PasswordDb.
//   AclAuthorizer      Authorizer over AuthFiles: the ACL file's rules, or allow-all without one.
//
// Thread rules: AuthFiles is thread-safe (snapshots, a sharded throttle, atomic counters);
// check() runs on worker threads, the authorizer on loop threads, reload() on main's thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "auth/acl.h"
#include "auth/login_throttle.h"
#include "auth/password_file.h"
#include "auth/snapshot.h"
#include "broker/auth.h"

namespace tcpms::broker {

struct AuthFilesConfig {
  std::string password_file;  // empty: no passwords (every user name is refused)
  std::string acl_file;       // empty: everything allowed (but publishing to $SYS)
  bool allow_anonymous = true;
  // Failed logins per (user, address) and per address (a rate of 0 turns one off).
  auth::LoginGuardConfig login_guard;
};

class AuthFiles {
 public:
  // Loads both files; on failure returns null and sets *error ("FILE:LINE: why").
  static std::shared_ptr<AuthFiles> load(AuthFilesConfig config, std::string* error);

  // Re-reads both files. Returns what to log, one line per file: "reloaded FILE (N users)" or
  // "FILE:LINE: why; keeping the old rules".
  struct ReloadLine {
    bool ok;
    std::string text;
  };
  std::vector<ReloadLine> reload();

  const AuthFilesConfig& config() const noexcept { return config_; }
  std::shared_ptr<const auth::PasswordDb> passwords() const {
    return passwords_ ? passwords_->load() : nullptr;
  }
  const auth::Snapshot<auth::Acl>* acl() const noexcept { return acl_.get(); }
  auth::LoginGuard& login_guard() noexcept { return *guard_; }

  struct Counters {
    std::atomic<uint64_t> accepted{0};
    std::atomic<uint64_t> bad_credentials{0};    // CONNACK 4: unknown user or wrong password
    std::atomic<uint64_t> anonymous_refused{0};  // CONNACK 5: no user name, not allowed
    std::atomic<uint64_t> throttled{0};          // CONNACK 5: too many failures for the user
                                                 // from the address
    std::atomic<uint64_t> throttled_address{0};  // CONNACK 5: too many from the address
    std::atomic<uint64_t> reloads_ok{0};
    std::atomic<uint64_t> reloads_failed{0};
  };
  Counters& counters() noexcept { return counters_; }
  void render_metrics(std::string& out) const;

 private:
  explicit AuthFiles(AuthFilesConfig c) : config_(std::move(c)) {}
  AuthFilesConfig config_;
  std::unique_ptr<auth::Snapshot<auth::PasswordDb>> passwords_;
  std::unique_ptr<auth::Snapshot<auth::Acl>> acl_;
  std::unique_ptr<auth::LoginGuard> guard_;
  Counters counters_;
};

class FileAuthenticator final : public Authenticator {
 public:
  explicit FileAuthenticator(std::shared_ptr<AuthFiles> files) : files_(std::move(files)) {}
  bool enabled() const override { return true; }
  // Order: anonymous (no hashing), then the login guard (a refused attempt costs no hashing),
  // then PasswordDb::verify. An unknown user costs the same work as a wrong password.
  AuthResult check(const ConnectInfo& info) override;
  void render_metrics(std::string& out) const override { files_->render_metrics(out); }

 private:
  std::shared_ptr<AuthFiles> files_;
};

class AclAuthorizer final : public Authorizer {
 public:
  explicit AclAuthorizer(std::shared_ptr<AuthFiles> files);
  bool uses_username() const override { return files_->acl() != nullptr; }
  bool can_publish(const ClientRef& who, std::string_view topic) override;
  bool can_subscribe(const ClientRef& who, std::string_view filter) override;

 private:
  // The current Acl for this thread: a per-thread cached shared_ptr, re-loaded only when the
  // snapshot's generation changes (no shared refcount traffic per check).
  const auth::Acl* current();
  std::shared_ptr<AuthFiles> files_;
  const uint64_t instance_;  // tells apart authorizers in the per-thread cache
};

}  // namespace tcpms::broker
