// tcpms-passwd: add, update or delete a user in a password file, like mosquitto_passwd.
// The file is Mosquitto's format ($7$ PBKDF2-SHA512), so Mosquitto reads what we write and we
// read what it writes. Writes are atomic (temporary file, rename) with mode 0600.
// See docs/auth.md.
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <openssl/crypto.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "auth/file_io.h"
#include "auth/password_file.h"
#include "auth/password_hash.h"
#include "mqtt/utf8.h"

namespace {

constexpr int kExitError = 1;
constexpr int kExitUsage = 64;  // EX_USAGE
constexpr size_t kMaxPasswordBytes = 65535;  // an MQTT string

// The terminal state to restore if a signal arrives while echo is off; main() is the only
// writer, the handler only reads it (tcsetattr is async-signal-safe).
struct termios g_saved_termios;
volatile sig_atomic_t g_echo_off = 0;

void restore_echo_and_die(int sig) {
  if (g_echo_off) ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &g_saved_termios);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

// Reads one line from stdin (without its newline). False on EOF before any byte or on error.
bool read_line(std::string& out) {
  out.clear();
  char c;
  bool any = false;
  for (;;) {
    ssize_t n = ::read(STDIN_FILENO, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return any;
    any = true;
    if (c == '\n') break;
    if (out.size() <= kMaxPasswordBytes) out.push_back(c);  // one byte over: reported as too long
  }
  if (!out.empty() && out.back() == '\r') out.pop_back();
  return true;
}

bool prompt_no_echo(const char* prompt, std::string& out) {
  struct termios t;
  ::tcgetattr(STDIN_FILENO, &g_saved_termios);
  t = g_saved_termios;
  t.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) ::signal(sig, restore_echo_and_die);
  g_echo_off = 1;
  // Echo goes off (dropping anything typed blind before) and only then does the prompt show,
  // so what is typed after the prompt is kept.
  ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &t);
  std::fputs(prompt, stderr);
  std::fflush(stderr);
  bool ok = read_line(out);
  ::tcsetattr(STDIN_FILENO, TCSANOW, &g_saved_termios);
  g_echo_off = 0;
  std::fputs("\n", stderr);
  return ok;
}

struct Secret {
  std::string text;
  ~Secret() { OPENSSL_cleanse(text.data(), text.size()); }
};

int fail(const std::string& why) {
  std::fprintf(stderr, "tcpms-passwd: %s\n", why.c_str());
  return kExitError;
}

// The password from --stdin or the terminal; an error message otherwise.
std::string get_password(bool from_stdin, Secret& pw) {
  if (from_stdin) {
    if (!read_line(pw.text)) return "no password on stdin";
  } else {
    if (!::isatty(STDIN_FILENO)) return "stdin is not a terminal; use --stdin to read the password from it";
    Secret again;
    if (!prompt_no_echo("Password: ", pw.text) || !prompt_no_echo("Reenter password: ", again.text))
      return "no password entered";
    if (pw.text != again.text) return "passwords do not match";
  }
  if (pw.text.empty()) return "empty password";
  if (pw.text.size() > kMaxPasswordBytes) return "password longer than 65535 bytes";
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  using namespace tcpms::auth;
  CLI::App app{"tcpms-passwd: add, update or delete a user in a tcpms/Mosquitto password file "
               "(PBKDF2-SHA512, '$7$' format)."};
  app.footer(
      "Examples:\n"
      "  tcpms-passwd -c /etc/tcpms/passwd alice      create the file with one user (prompts)\n"
      "  tcpms-passwd /etc/tcpms/passwd bob           add or update bob (prompts)\n"
      "  echo secret | tcpms-passwd --stdin FILE bob  read the password from stdin\n"
      "  tcpms-passwd -D /etc/tcpms/passwd bob        delete bob\n"
      "Send SIGHUP to tcpms-server to reload the file.\n"
      "Exit status: 0 ok, 1 error, 64 bad usage.");
  std::string file, user;
  bool create = false, remove = false, from_stdin = false;
  uint32_t iterations = kDefaultIterations;
  app.add_option("FILE", file, "Password file")->required();
  app.add_option("USER", user, "Username to add, update or delete")->required();
  auto* c = app.add_flag("-c,--create", create, "Create a new file (replaces an existing one)");
  auto* d = app.add_flag("-D,--delete", remove, "Delete USER from the file");
  auto* s = app.add_flag("--stdin", from_stdin, "Read the password from stdin (first line)");
  auto* i = app.add_option("-I,--iterations", iterations, "PBKDF2 iterations for the new hash")
                ->check(CLI::Range(uint32_t{1000}, kMaxIterations))
                ->capture_default_str();
  d->excludes(c)->excludes(s)->excludes(i);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  if (std::string why = username_problem(user); !why.empty()) {
    std::fprintf(stderr, "tcpms-passwd: %s\n", why.c_str());
    return kExitUsage;
  }
  // An MQTT user name is a UTF-8 string [MQTT-1.5.3-1]: the broker's codec refuses a CONNECT
  // whose name is not, so a user written with one could never log in. The codec's own check
  // decides, so the two cannot disagree.
  if (tcpms::mqtt::validate_utf8(user) != tcpms::mqtt::Utf8Status::kValid) {
    std::fprintf(stderr, "tcpms-passwd: username is not valid UTF-8 (MQTT user names are UTF-8 "
                         "strings; such a user could never log in)\n");
    return kExitUsage;
  }

  PasswordFile pwfile;
  if (!create) {
    auto text = read_text_file(file);
    if (!text) {
      bool missing = ::access(file.c_str(), F_OK) != 0 && errno == ENOENT;
      return fail(text.error() + (missing && !remove ? " (use -c to create it)" : ""));
    }
    auto parsed = PasswordFile::parse(*text, file);
    if (!parsed) return fail(parsed.error() + "; file left unchanged");
    pwfile = std::move(*parsed);
  }

  if (remove) {
    if (!pwfile.remove(user)) return fail(file + ": user '" + user + "' not found");
  } else {
    Secret pw;
    if (std::string why = get_password(from_stdin, pw); !why.empty()) return fail(why);
    auto hash = make_password_hash(pw.text, iterations);
    if (!hash) return fail(hash.error());
    pwfile.set(user, *hash);
  }
  if (std::string why = write_file_atomic(file, pwfile.to_string(), 0600); !why.empty())
    return fail(why);
  return 0;
}
