// A live one-line progress display for a terminal: "\r" + text, redrawn at most every
// min_interval, ended with a newline by finish(). When the fd is not a terminal (a pipe, a file,
// CI logs) it stays silent, so redirected output holds only the final summary.
//
// Threads: not synchronised; the bench's main thread owns it.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tcpms::bench {

// What the bench shows while it runs.
struct ProgressStats {
  double elapsed_s = 0;
  std::int64_t connections_open = 0;
  std::int64_t connections_target = 0;  // 0: no target shown
  double ops_per_s = 0;
  std::int64_t errors = 0;
};

// "12.0s  conns 480,000/1,000,000  rate 95,400 ops/s  errors 3"
std::string format_progress(const ProgressStats& stats);

class ProgressLine {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kDefaultInterval{250};

  // Enabled when isatty(fd).
  explicit ProgressLine(int fd = STDOUT_FILENO, std::chrono::milliseconds min_interval = kDefaultInterval);
  // Enabled as given (tests, or a --progress/--no-progress flag).
  ProgressLine(int fd, bool enabled, std::chrono::milliseconds min_interval = kDefaultInterval);
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;
  ~ProgressLine() { finish(); }

  bool enabled() const { return enabled_; }

  // Redraws the line if enabled and min_interval has passed since the last redraw.
  // Returns whether it drew.
  bool update(std::string_view text) { return update(text, Clock::now()); }
  bool update(std::string_view text, Clock::time_point now);

  // Ends the line with a newline if anything was drawn since the last finish().
  void finish();

 private:
  void write_all(std::string_view bytes);

  int fd_;
  bool enabled_;
  std::chrono::milliseconds min_interval_;
  bool drawn_ = false;
  Clock::time_point last_draw_{};
  std::string line_;  // reused so a redraw does not allocate
};

}  // namespace tcpms::bench
