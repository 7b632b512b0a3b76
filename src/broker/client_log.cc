#include "broker/client_log.h"

#include <sys/un.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "tcpms/connection.h"
#include "tcpms/endpoint.h"

namespace tcpms::broker {
namespace {

// A JSON string literal: quoted and escaped; bytes that are not UTF-8 become U+FFFD. Used in
// both formats, so an id with quotes or control characters cannot forge a second line.
std::string quoted(std::string_view s) {
  return nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string peer_of(Connection& c) {
  sockaddr_storage ss{};
  if (!c.peer_address(ss)) return {};
  return ClientLog::peer_text(ss);
}

}  // namespace

ClientLog::ClientLog(ClientLogConfig config)
    : config_(config), bucket_(config.burst, auth::TokenBucket::Clock::now()) {}

std::string_view ClientLog::version_name(mqtt::ProtocolVersion v) noexcept {
  switch (v) {
    case mqtt::ProtocolVersion::kV31: return "3.1";
    case mqtt::ProtocolVersion::kV311: return "3.1.1";
    case mqtt::ProtocolVersion::kV5: return "5.0";
  }
  return "?";
}

std::string ClientLog::peer_text(const sockaddr_storage& peer) {
  if (peer.ss_family != AF_INET && peer.ss_family != AF_INET6) return peer.ss_family == AF_UNIX ? "unix" : "";
  return Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&peer), sizeof peer).to_string();
}

bool ClientLog::enabled() const {
  return config_.lines_per_s > 0 && spdlog::should_log(spdlog::level::info);
}

bool ClientLog::admit(uint64_t& dropped) {
  if (!enabled()) return false;
  std::lock_guard lock(mu_);
  if (!bucket_.try_take({config_.lines_per_s, config_.burst}, 1, auth::TokenBucket::Clock::now())) {
    ++dropped_;
    suppressed_total_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  dropped = dropped_;
  dropped_ = 0;
  return true;
}

void ClientLog::write(std::string_view message, std::initializer_list<Field> fields,
                      uint64_t dropped) {
  std::string line;
  if (config_.json) {
    line += kStructuredMark;
    line += "\"msg\":" + quoted(message);
    for (const Field& f : fields) {
      line += ",\"" + std::string(f.key) + "\":";
      line += f.number ? std::string(f.value) : quoted(f.value);
    }
    if (dropped) line += ",\"lines_dropped_before\":" + std::to_string(dropped);
  } else {
    line = std::string(message) + ":";
    for (const Field& f : fields) {
      line += ' ';
      line += f.key;
      line += ' ';
      line += f.number ? std::string(f.value) : quoted(f.value);
    }
    if (dropped) line += " (" + std::to_string(dropped) + " client lines dropped before this one by the rate limit)";
  }
  spdlog::info("{}", line);
}

void ClientLog::connected(Connection& c, std::string_view client_id, mqtt::ProtocolVersion version,
                          uint16_t keep_alive_s, bool session_present, std::string_view username) {
  uint64_t dropped = 0;
  if (!admit(dropped)) return;
  const std::string peer = peer_of(c);
  const std::string keep_alive = std::to_string(keep_alive_s);
  if (username.empty()) {
    write("client connected",
          {{"client_id", client_id}, {"peer", peer}, {"protocol", version_name(version)},
           {"keep_alive_s", keep_alive, true},
           {"session_present", session_present ? "true" : "false", true}},
          dropped);
  } else {
    write("client connected",
          {{"client_id", client_id}, {"peer", peer}, {"protocol", version_name(version)},
           {"keep_alive_s", keep_alive, true},
           {"session_present", session_present ? "true" : "false", true},
           {"username", username}},
          dropped);
  }
}

void ClientLog::disconnected(Connection& c, std::string_view client_id, std::string_view reason) {
  uint64_t dropped = 0;
  if (!admit(dropped)) return;
  write("client disconnected", {{"client_id", client_id}, {"peer", peer_of(c)}, {"reason", reason}},
        dropped);
}

void ClientLog::auth_failed(const sockaddr_storage& peer, std::string_view client_id,
                            std::string_view username, std::string_view reason) {
  uint64_t dropped = 0;
  if (!admit(dropped)) return;
  write("authentication failed",
        {{"client_id", client_id}, {"peer", peer_text(peer)}, {"username", username}, {"reason", reason}},
        dropped);
}

}  // namespace tcpms::broker
