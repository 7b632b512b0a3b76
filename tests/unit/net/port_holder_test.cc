// Who holds a port (src/net/port_holder.h): a live holder is named and refused at once; a
// listener no process has open (what a killed process's is while the kernel closes it) is
// waited for, and named for what it is when the wait runs out.
#include "net/port_holder.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <gtest/gtest.h>

#include "net/socket.h"

namespace tcpms::net {
namespace {

// A loopback TCP listener on a port the kernel picks.
UniqueFd listen_loopback(Endpoint& at) {
  at = *Endpoint::parse("127.0.0.1:0");
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&at.addr), at.len), 0);
  EXPECT_EQ(::listen(fd.get(), 1), 0);
  at.set_port(local_endpoint(fd.get()).port());
  return fd;
}

TEST(PortHolder, ALiveHolderIsNamedAndRefusedAtOnce) {
  Endpoint at;
  UniqueFd listener = listen_loopback(at);
  PortHolders holders = find_port_holders(at.port());
  ASSERT_TRUE(holders.listening);
  ASSERT_EQ(holders.found.size(), 1u);
  EXPECT_EQ(holders.found[0].pid, ::getpid());
  EXPECT_FALSE(holders.found[0].exiting);
  EXPECT_TRUE(holders.any_live());
  EXPECT_NE(holders.describe().find("pid " + std::to_string(::getpid()) + " ("), std::string::npos);

  std::string holder;
  // An hour of patience: a live holder is not waited for, so this returns.
  EXPECT_EQ(wait_port_free(at, std::chrono::hours(1), holder), EADDRINUSE);
  EXPECT_NE(holder.find("pid " + std::to_string(::getpid())), std::string::npos) << holder;
}

TEST(PortHolder, AListenerNoProcessHasOpenIsWaitedForThenNamed) {
  Endpoint at;
  UniqueFd listener = listen_loopback(at);
  // In flight in a Unix socket message (SCM_RIGHTS), the listener is in no descriptor table.
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  UniqueFd a(pair[0]), b(pair[1]);
  char byte = 'x';
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  int fd = listener.get();
  std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  ASSERT_EQ(::sendmsg(a.get(), &msg, 0), 1);
  listener = UniqueFd();

  PortHolders holders = find_port_holders(at.port());
  EXPECT_TRUE(holders.listening);
  EXPECT_TRUE(holders.found.empty());
  EXPECT_FALSE(holders.any_live());
  std::string holder;
  EXPECT_EQ(wait_port_free(at, std::chrono::milliseconds(100), holder), EADDRINUSE);
  EXPECT_NE(holder.find("no process has open"), std::string::npos) << holder;

  b = UniqueFd();  // the message, and the listener in it, go
  EXPECT_EQ(wait_port_free(at, std::chrono::milliseconds(0), holder), 0);
}

}  // namespace
}  // namespace tcpms::net
