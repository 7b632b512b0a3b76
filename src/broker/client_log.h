// ClientLog: one info line per client connect (client id, peer, protocol, keep-alive), per
// disconnect (and why) and per authentication failure, rate-limited so that a connect storm
// or a password-guessing run cannot fill the disk.
//
// The limit is one token bucket for the process (`lines_per_s`, `burst`). Lines over it are
// counted and dropped; the next line that gets through says how many were dropped. The peer
// address costs a getpeername(), made only for a line that will be written.
//
// Two formats. Text (the default): `client connected: id "dev-1" peer 127.0.0.1:40122
// protocol 3.1.1 keep_alive 60s`. JSON (log.format = "json"): the line's fields as JSON
// members after kStructuredMark, which the app's JSON log formatter splices into the record
// it writes (`{"time":...,"level":"info","msg":"client connected","client_id":"dev-1",...}`).
//
// Thread rules: every method may be called from any thread (loop threads, worker threads).
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "auth/token_bucket.h"
#include "mqtt/types.h"

namespace tcpms {
class Connection;
}

namespace tcpms::broker {

// A log message that starts with this byte carries JSON members instead of text.
inline constexpr char kStructuredMark = '\x1e';

struct ClientLogConfig {
  bool json = false;
  double lines_per_s = 100;  // 0: no client event lines at all
  double burst = 1000;
};

class ClientLog {
 public:
  explicit ClientLog(ClientLogConfig config);

  void connected(Connection& c, std::string_view client_id, mqtt::ProtocolVersion version,
                 uint16_t keep_alive_s, bool session_present, std::string_view username);
  void disconnected(Connection& c, std::string_view client_id, std::string_view reason);
  // `peer` as ConnectInfo carries it (the connection may be gone by the time a worker answers).
  void auth_failed(const sockaddr_storage& peer, std::string_view client_id,
                   std::string_view username, std::string_view reason);

  // Whether lines are written at all (log level info or finer, and a rate above 0).
  bool enabled() const;
  uint64_t suppressed_total() const noexcept { return suppressed_total_.load(std::memory_order_relaxed); }

  // "3.1.1", "5.0", "3.1"
  static std::string_view version_name(mqtt::ProtocolVersion v) noexcept;
  // "host:port" ("[v6]:port"), "unix", or "" when unknown.
  static std::string peer_text(const sockaddr_storage& peer);

 private:
  // Takes a token; false when the line is over the rate (counted). `dropped` gets the lines
  // dropped since the last one written.
  bool admit(uint64_t& dropped);
  struct Field {
    std::string_view key;
    std::string_view value;
    bool number = false;
  };
  void write(std::string_view message, std::initializer_list<Field> fields, uint64_t dropped);

  const ClientLogConfig config_;
  std::mutex mu_;
  auth::TokenBucket bucket_;
  uint64_t dropped_ = 0;  // guarded by mu_
  std::atomic<uint64_t> suppressed_total_{0};
};

}  // namespace tcpms::broker
