#include "benchkit/progress.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include <gtest/gtest.h>

namespace tcpms::bench {
namespace {

using namespace std::chrono_literals;

// Everything written to the read end of a pipe so far.
std::string drain(int fd) {
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  return out;
}

struct Pipe {
  Pipe() {
    EXPECT_EQ(::pipe2(fds, O_NONBLOCK), 0);
  }
  ~Pipe() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  int fds[2] = {-1, -1};
};

TEST(Progress, FormatsTheLine) {
  EXPECT_EQ(format_progress({12.0, 480'000, 1'000'000, 95'400.4, 3}),
            "   12.0s  conns 480,000/1,000,000  rate 95,400 ops/s  errors 3");
  EXPECT_EQ(format_progress({1.5, 7, 0, 0, 0}), "    1.5s  conns 7  rate 0 ops/s  errors 0");
}

TEST(Progress, QuietWhenNotATerminal) {
  Pipe pipe;
  {
    ProgressLine line(pipe.fds[1]);
    EXPECT_FALSE(line.enabled());
    EXPECT_FALSE(line.update("hello"));
    line.finish();
  }
  EXPECT_EQ(drain(pipe.fds[0]), "");
}

TEST(Progress, EnabledOnATerminal) {
  const int master = ::posix_openpt(O_RDWR | O_NOCTTY);
  if (master < 0) GTEST_SKIP() << "no pseudo-terminals here";
  ASSERT_EQ(::grantpt(master), 0);
  ASSERT_EQ(::unlockpt(master), 0);
  const int slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY);
  ASSERT_GE(slave, 0);
  EXPECT_TRUE(ProgressLine(slave).enabled());
  ::close(slave);
  ::close(master);
}

TEST(Progress, RedrawsAtMostOncePerInterval) {
  Pipe pipe;
  ProgressLine line(pipe.fds[1], true, 250ms);
  const auto t0 = ProgressLine::Clock::time_point{} + 10s;
  EXPECT_TRUE(line.update("one", t0));
  EXPECT_FALSE(line.update("two", t0 + 100ms));
  EXPECT_TRUE(line.update("three", t0 + 250ms));
  line.finish();
  line.finish();  // a second finish adds nothing
  EXPECT_EQ(drain(pipe.fds[0]), "\rone\x1b[K\rthree\x1b[K\n");
}

TEST(Progress, FinishWithoutUpdatesPrintsNothing) {
  Pipe pipe;
  { ProgressLine line(pipe.fds[1], true); }
  EXPECT_EQ(drain(pipe.fds[0]), "");
}

}  // namespace
}  // namespace tcpms::bench
