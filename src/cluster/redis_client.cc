#include "cluster/redis_client.h"

#include <poll.h>
#include <sys/time.h>

#include <charconv>
#include <cstring>

#include <hiredis/hiredis.h>

namespace tcpms::cluster {

std::optional<RedisAddress> parse_redis_url(std::string_view url, std::string* error) {
  auto fail = [&](const char* why) -> std::optional<RedisAddress> {
    if (error) *error = std::string(why) + " (want redis://HOST:PORT): '" + std::string(url) + "'";
    return std::nullopt;
  };
  if (url.starts_with("redis://")) {
    url.remove_prefix(8);
  } else if (url.find("://") != std::string_view::npos) {
    return fail("only redis:// is supported (no TLS or unix sockets)");
  }
  while (!url.empty() && url.back() == '/') url.remove_suffix(1);
  if (url.empty()) return fail("no host");
  RedisAddress a;
  size_t colon = url.rfind(':');
  if (colon == std::string_view::npos) {
    a.host = std::string(url);
    return a;
  }
  std::string_view port = url.substr(colon + 1);
  unsigned v = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
  if (ec != std::errc() || end != port.data() + port.size() || v == 0 || v > 65535)
    return fail("bad port");
  a.host = std::string(url.substr(0, colon));
  if (a.host.empty()) return fail("no host");
  a.port = static_cast<uint16_t>(v);
  return a;
}

// --- RedisReply ---------------------------------------------------------------------------

void RedisReply::Free::operator()(redisReply* r) const noexcept { freeReplyObject(r); }
RedisReply::RedisReply(redisReply* r) : r_(r) {}
bool RedisReply::ok() const noexcept { return r_ && r_->type != REDIS_REPLY_ERROR; }
bool RedisReply::is_error() const noexcept { return !r_ || r_->type == REDIS_REPLY_ERROR; }
bool RedisReply::is_nil() const noexcept { return r_ && r_->type == REDIS_REPLY_NIL; }
long long RedisReply::integer() const noexcept {
  return r_ && r_->type == REDIS_REPLY_INTEGER ? r_->integer : 0;
}
std::string_view RedisReply::str() const noexcept {
  if (!r_ || r_->str == nullptr) return {};
  return {r_->str, r_->len};
}
size_t RedisReply::size() const noexcept {
  return r_ && r_->type == REDIS_REPLY_ARRAY ? r_->elements : 0;
}
const redisReply* RedisReply::element(size_t i) const noexcept {
  return i < size() ? r_->element[i] : nullptr;
}
std::string_view RedisReply::element_str(size_t i) const noexcept {
  const redisReply* e = element(i);
  if (e == nullptr || e->str == nullptr) return {};
  return {e->str, e->len};
}

size_t RedisReply::nested_size(size_t i) const noexcept {
  const redisReply* e = element(i);
  return e != nullptr && e->type == REDIS_REPLY_ARRAY ? e->elements : 0;
}
std::string_view RedisReply::nested_str(size_t i, size_t j) const noexcept {
  if (j >= nested_size(i)) return {};
  const redisReply* e = element(i)->element[j];
  if (e == nullptr || e->str == nullptr) return {};
  return {e->str, e->len};
}

// --- RedisConnection ----------------------------------------------------------------------

RedisConnection::RedisConnection() = default;
RedisConnection::~RedisConnection() { close(); }

void RedisConnection::close() noexcept {
  if (c_ != nullptr) redisFree(c_);
  c_ = nullptr;
}

bool RedisConnection::fail(const char* what) {
  error_ = std::string(what) + ": " + (c_ != nullptr && c_->errstr[0] ? c_->errstr : "connection lost");
  close();
  return false;
}

bool RedisConnection::connect(const RedisAddress& at, uint32_t timeout_ms, std::string_view name) {
  close();
  timeval tv{static_cast<time_t>(timeout_ms / 1000), static_cast<suseconds_t>((timeout_ms % 1000) * 1000)};
  c_ = redisConnectWithTimeout(at.host.c_str(), at.port, tv);
  if (c_ == nullptr) {
    error_ = "connect: out of memory";
    return false;
  }
  if (c_->err) return fail("connect");
  if (redisSetTimeout(c_, tv) != REDIS_OK) return fail("set timeout");
  redisEnableKeepAlive(c_);
  if (!name.empty()) {
    std::string n(name);
    for (char& ch : n)
      if (ch == ' ' || ch == '\n' || ch == '\r') ch = '_';
    RedisReply r;
    if (!command({"CLIENT", "SETNAME", n}, r)) return false;
  }
  return true;
}

bool RedisConnection::pipeline(const std::vector<RedisCommand>& commands,
                               std::vector<RedisReply>& replies) {
  replies.clear();
  if (c_ == nullptr) return false;
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& cmd : commands) {
    argv.clear();
    lens.clear();
    for (std::string_view a : cmd) {
      argv.push_back(a.data());
      lens.push_back(a.size());
      bytes_out_ += a.size();
    }
    if (redisAppendCommandArgv(c_, static_cast<int>(argv.size()), argv.data(), lens.data()) != REDIS_OK)
      return fail("append");
  }
  replies.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    void* r = nullptr;
    if (redisGetReply(c_, &r) != REDIS_OK || r == nullptr) return fail("read");
    replies.emplace_back(static_cast<redisReply*>(r));
  }
  return true;
}

bool RedisConnection::command(const RedisCommand& cmd, RedisReply& reply) {
  std::vector<RedisReply> replies;
  if (!pipeline({cmd}, replies)) return false;
  reply = std::move(replies[0]);
  return true;
}

bool RedisConnection::subscribe(const std::vector<std::string>& channels) {
  if (c_ == nullptr) return false;
  std::vector<const char*> argv{"SUBSCRIBE"};
  std::vector<size_t> lens{9};
  for (const auto& ch : channels) {
    argv.push_back(ch.data());
    lens.push_back(ch.size());
  }
  if (redisAppendCommandArgv(c_, static_cast<int>(argv.size()), argv.data(), lens.data()) != REDIS_OK)
    return fail("subscribe");
  // Flush now: the replies come back through poll_message.
  int done = 0;
  while (!done) {
    if (redisBufferWrite(c_, &done) != REDIS_OK) return fail("subscribe");
  }
  return true;
}

std::optional<RedisReply> RedisConnection::poll_message(int timeout_ms) {
  if (c_ == nullptr) return std::nullopt;
  void* r = nullptr;
  // A reply may already sit parsed in the reader from the last read.
  if (redisGetReplyFromReader(c_, &r) != REDIS_OK) {
    fail("read");
    return std::nullopt;
  }
  if (r != nullptr) return RedisReply(static_cast<redisReply*>(r));
  pollfd p{c_->fd, POLLIN, 0};
  int n = ::poll(&p, 1, timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return RedisReply();
    fail("poll");
    return std::nullopt;
  }
  if (n == 0) return RedisReply();
  // Readable: this read does not block.
  if (redisBufferRead(c_) != REDIS_OK) {
    fail("read");
    return std::nullopt;
  }
  if (redisGetReplyFromReader(c_, &r) != REDIS_OK) {
    fail("read");
    return std::nullopt;
  }
  return RedisReply(static_cast<redisReply*>(r));
}

}  // namespace tcpms::cluster
