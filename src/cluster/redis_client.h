// RedisConnection: one blocking hiredis connection, for use on one dedicated thread only.
//
// Blocking is the point: a cluster thread waits on Redis so that no loop thread ever does.
// Every read has a timeout (a Redis that hangs breaks the connection instead of the thread),
// and after any error the connection is dropped: hiredis contexts are not reusable after an
// error, and the caller reconnects with backoff.
//
//   RedisConnection c;
//   if (!c.connect(addr, 1000)) ...c.error()...
//   std::vector<RedisReply> replies;
//   c.pipeline({{"SET", "k", "v"}, {"GET", "k"}}, replies);   // one round trip
//
// Subscriber use: subscribe() then poll_message(timeout) until it returns an error.
//
// Thread rules: one thread per connection.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct redisContext;
struct redisReply;

namespace tcpms::cluster {

struct RedisAddress {
  std::string host;
  uint16_t port = 6379;
  std::string to_string() const { return host + ":" + std::to_string(port); }
};
// "redis://HOST:PORT", "redis://HOST" or "HOST:PORT"; nullopt with `error` set otherwise.
std::optional<RedisAddress> parse_redis_url(std::string_view url, std::string* error);

// One reply, owned. The accessors are safe on a null reply (a connection error).
class RedisReply {
 public:
  RedisReply() = default;
  explicit RedisReply(redisReply* r);
  bool ok() const noexcept;       // present and not an error reply
  bool is_error() const noexcept;
  bool is_nil() const noexcept;
  long long integer() const noexcept;
  std::string_view str() const noexcept;  // string, status or error text
  size_t size() const noexcept;           // array elements
  std::string_view element_str(size_t i) const noexcept;
  const redisReply* element(size_t i) const noexcept;
  // Element j of array element i (SCAN's key list).
  size_t nested_size(size_t i) const noexcept;
  std::string_view nested_str(size_t i, size_t j) const noexcept;
  const redisReply* raw() const noexcept { return r_.get(); }

 private:
  struct Free {
    void operator()(redisReply* r) const noexcept;
  };
  std::unique_ptr<redisReply, Free> r_;
};

// A command as its arguments (binary safe).
using RedisCommand = std::vector<std::string_view>;

class RedisConnection {
 public:
  RedisConnection();
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Connects with `timeout_ms` for the connect and for every later read/write; a `name`
  // (CLIENT SETNAME, spaces made '_') shows who is who in CLIENT LIST.
  bool connect(const RedisAddress& at, uint32_t timeout_ms, std::string_view name = {});
  void close() noexcept;
  bool connected() const noexcept { return c_ != nullptr; }
  const std::string& error() const noexcept { return error_; }

  // Sends every command, then reads every reply: one round trip. False (and closed) on a
  // connection error; error replies are replies, not failures.
  bool pipeline(const std::vector<RedisCommand>& commands, std::vector<RedisReply>& replies);
  bool command(const RedisCommand& cmd, RedisReply& reply);

  // Subscriber side: sends SUBSCRIBE for `channels` (replies arrive via poll_message).
  bool subscribe(const std::vector<std::string>& channels);
  // Waits up to `timeout_ms` for one pushed message. Returns a reply (channel message or
  // subscribe confirmation), an empty reply on timeout, or nullopt on a connection error.
  std::optional<RedisReply> poll_message(int timeout_ms);

  // Bytes written to / read from Redis on this connection (for per-message cost figures).
  uint64_t bytes_out() const noexcept { return bytes_out_; }

 private:
  bool fail(const char* what);
  redisContext* c_ = nullptr;
  std::string error_;
  uint64_t bytes_out_ = 0;
};

}  // namespace tcpms::cluster
