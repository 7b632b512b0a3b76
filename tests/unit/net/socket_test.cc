// Socket helpers (src/net/socket.h): is_listening tells a listener from a port reservation,
// which is how the upgrade handover tells a supervisor's ports from a process's listeners
// (src/apps/server/handover_taker.h, sent_by_supervisor).
#include "net/socket.h"

#include <sys/socket.h>

#include <gtest/gtest.h>

namespace tcpms::net {
namespace {

TEST(Socket, AReservedPortDoesNotListenAListenerDoes) {
  int err = 0;
  UniqueFd reservation = reserve_port(*Endpoint::parse("127.0.0.1:0"), err);
  ASSERT_TRUE(reservation) << errno_text(err);
  EXPECT_FALSE(is_listening(reservation.get()));

  const char* what = nullptr;
  UniqueFd listener = open_listener(*Endpoint::parse("127.0.0.1:0"), 16, 0, err, what);
  ASSERT_TRUE(listener) << what << ": " << errno_text(err);
  EXPECT_TRUE(is_listening(listener.get()));

  UniqueFd plain(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_FALSE(is_listening(plain.get()));
  EXPECT_FALSE(is_listening(-1));
}

}  // namespace
}  // namespace tcpms::net
