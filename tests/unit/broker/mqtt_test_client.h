// A blocking MQTT 3.1.1 client on a raw socket for broker unit tests that run a real Server
// on loopback: sends encoded packets, reads whole frames (5 s receive timeout).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <utility>
#include <vector>

#include "mqtt/codec.h"

namespace tcpms::broker::testing {

class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    EXPECT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  }
  ~Client() { ::close(fd_); }
  template <typename P>
  void send(const P& p, mqtt::ProtocolVersion v = mqtt::ProtocolVersion::kV311) {
    std::vector<std::byte> buf(mqtt::encoded_size(p, v));
    ASSERT_EQ(mqtt::encode(p, v, buf), buf.size());
    send_bytes(buf);
  }
  void send_bytes(const std::vector<std::byte>& buf) {
    ASSERT_EQ(::send(fd_, buf.data(), buf.size(), 0), static_cast<ssize_t>(buf.size()));
  }
  void send_connect(const char* id, bool clean) {
    mqtt::Connect c;
    c.client_id = id;
    c.clean_start = clean;
    c.keep_alive_s = 60;
    std::vector<std::byte> buf(mqtt::encoded_size(c));
    ASSERT_EQ(mqtt::encode(c, buf), buf.size());
    send_bytes(buf);
  }
  // Next packet: type and body; type 0 on EOF or timeout.
  std::pair<mqtt::PacketType, std::vector<std::byte>> read() {
    for (;;) {
      auto f = mqtt::next_frame(in_, 0);
      if (f.status == mqtt::FrameStatus::kComplete) {
        std::vector<std::byte> body(f.body.begin(), f.body.end());
        auto type = f.header.type;
        in_.erase(in_.begin(), in_.begin() + f.header.packet_size());
        return {type, body};
      }
      std::byte tmp[4096];
      ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n <= 0) return {mqtt::PacketType{}, {}};
      in_.insert(in_.end(), tmp, tmp + n);
    }
  }
  // read() with a shorter receive timeout (type 0 when nothing came).
  std::pair<mqtt::PacketType, std::vector<std::byte>> read_for(std::chrono::milliseconds wait) {
    timeval tv{static_cast<time_t>(wait.count() / 1000),
               static_cast<suseconds_t>((wait.count() % 1000) * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    auto r = read();
    timeval five{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &five, sizeof five);
    return r;
  }
  mqtt::Publish read_publish(uint8_t flags_qos1 = 0x02) {
    auto [type, body] = read();
    EXPECT_EQ(type, mqtt::PacketType::kPublish);
    body_ = body;
    auto p = mqtt::decode_publish(flags_qos1, body_, mqtt::ProtocolVersion::kV311);
    EXPECT_TRUE(p.ok());
    return *p;
  }

 private:
  int fd_ = -1;
  std::vector<std::byte> in_;
  std::vector<std::byte> body_;
};

}  // namespace tcpms::broker::testing
