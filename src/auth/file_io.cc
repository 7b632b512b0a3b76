#include "auth/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

namespace tcpms::auth {
namespace {

constexpr size_t kMaxFileBytes = 64u << 20;

std::string why(const std::string& path, int err) { return path + ": " + std::strerror(err); }

// Closes on scope exit; the library has no dependency on tcpms::net's UniqueFd.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

Result<std::string> read_text_file(const std::string& path) {
  using R = Result<std::string>;
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) return R::fail(why(path, errno));
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) return R::fail(why(path, errno));
  if (!S_ISREG(st.st_mode)) return R::fail(path + ": not a regular file");
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(f.fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return R::fail(why(path, errno));
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > kMaxFileBytes)
      return R::fail(path + ": larger than 64 MiB");
    out.append(buf, static_cast<size_t>(n));
  }
  return R::ok(std::move(out));
}

std::string write_file_atomic(const std::string& path, const std::string& contents, mode_t mode) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path target = path;
  if (fs::is_symlink(target, ec)) {
    target = fs::canonical(target, ec);
    if (ec) return path + ": " + ec.message();
  }
  fs::path dir = target.parent_path();
  if (dir.empty()) dir = ".";
  std::string tmpl = (dir / ("." + target.filename().string() + ".tmp.XXXXXX")).string();
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  Fd f{::mkstemp(name.data())};  // O_EXCL, mode 0600
  if (f.fd < 0) return why(path, errno);
  std::string tmp(name.data());
  auto fail = [&](int err) {
    ::unlink(tmp.c_str());
    return why(path, err);
  };
  if (::fchmod(f.fd, mode) != 0) return fail(errno);
  if (!write_all(f.fd, contents.data(), contents.size())) return fail(errno);
  if (::fsync(f.fd) != 0) return fail(errno);
  if (::close(f.fd) != 0) {
    f.fd = -1;
    return fail(errno);
  }
  f.fd = -1;
  if (::rename(tmp.c_str(), target.c_str()) != 0) return fail(errno);
  // Make the rename itself durable; failing here leaves the new file in place, so no error.
  Fd d{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (d.fd >= 0) ::fsync(d.fd);
  return {};
}

}  // namespace tcpms::auth
