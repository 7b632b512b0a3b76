#include "benchkit/progress.h"

#include <cerrno>

#include <fmt/format.h>

namespace tcpms::bench {

std::string format_progress(const ProgressStats& stats) {
  std::string out = fmt::format("{:7.1f}s  conns {}", stats.elapsed_s,
                                fmt::group_digits(stats.connections_open));
  if (stats.connections_target > 0) {
    out += fmt::format("/{}", fmt::group_digits(stats.connections_target));
  }
  out += fmt::format("  rate {} ops/s  errors {}",
                     fmt::group_digits(static_cast<std::int64_t>(stats.ops_per_s)),
                     fmt::group_digits(stats.errors));
  return out;
}

ProgressLine::ProgressLine(int fd, std::chrono::milliseconds min_interval)
    : ProgressLine(fd, ::isatty(fd) == 1, min_interval) {}

ProgressLine::ProgressLine(int fd, bool enabled, std::chrono::milliseconds min_interval)
    : fd_(fd), enabled_(enabled), min_interval_(min_interval) {}

bool ProgressLine::update(std::string_view text, Clock::time_point now) {
  if (!enabled_) return false;
  if (drawn_ && now - last_draw_ < min_interval_) return false;
  // Carriage return, the text, then "erase to end of line" for a shorter line than the last.
  line_.clear();
  line_ += '\r';
  line_ += text;
  line_ += "\x1b[K";
  write_all(line_);
  drawn_ = true;
  last_draw_ = now;
  return true;
}

void ProgressLine::finish() {
  if (!drawn_) return;
  write_all("\n");
  drawn_ = false;
}

void ProgressLine::write_all(std::string_view bytes) {
  while (!bytes.empty()) {
    const auto n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      enabled_ = false;  // the terminal went away; stay quiet from now on
      return;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace tcpms::bench
