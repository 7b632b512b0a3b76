#include "admin/engine_push_target.h"

#include <charconv>

#include <nlohmann/json.hpp>

namespace tcpms::admin {
namespace {

PushResult unavailable() {
  return {PushStatus::kUnavailable, "the event loop did not answer in time (busy or stopping)", 0};
}

PushResult no_connection(ConnId id) {
  return {PushStatus::kNotFound, "no open connection " + std::to_string(id.value), 0};
}

// Cursor "<loop>.<slot>": the position of the last connection on the previous page.
bool parse_cursor(std::string_view text, uint32_t& loop, uint32_t& slot) {
  size_t dot = text.find('.');
  if (dot == std::string_view::npos) return false;
  auto a = std::from_chars(text.data(), text.data() + dot, loop);
  auto b = std::from_chars(text.data() + dot + 1, text.data() + text.size(), slot);
  return a.ec == std::errc() && a.ptr == text.data() + dot && b.ec == std::errc() &&
         b.ptr == text.data() + text.size();
}

}  // namespace

EnginePushTarget::EnginePushTarget(Server& server, std::string protocol,
                                   std::chrono::milliseconds timeout)
    : server_(server), protocol_(std::move(protocol)), timeout_(timeout) {}

std::optional<ConnId> EnginePushTarget::parse_conn_id(std::string_view text) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  ConnId id{v};
  if (!id.valid() || id.generation() == 0) return std::nullopt;
  return id;
}

ClientInfo EnginePushTarget::describe(Connection& c) const {
  ClientInfo info;
  info.id = std::to_string(c.id().value);
  info.conn_id = c.id().value;
  info.protocol = protocol_;
  sockaddr_storage peer{};
  if (c.peer_address(peer)) {
    info.peer = Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&peer), sizeof peer)
                    .to_string();
    // A Unix peer (a worker's mesh link) comes without its address length: its abstract name
    // is padded with NULs to the end of sun_path.
    if (peer.ss_family == AF_UNIX) info.peer.erase(info.peer.find_last_not_of('\0') + 1);
  }
  info.loop = c.id().loop();
  info.connected = true;
  info.pending_output_bytes = c.pending_output_bytes();
  info.pending_input_bytes = c.pending_input_bytes();
  return info;
}

PushResult EnginePushTarget::publish(const PublishRequest&) {
  return {PushStatus::kUnsupported,
          "the " + protocol_ + " protocol has no topics; write bytes to one connection with "
          "POST /api/v1/clients/{id}/send",
          0};
}

PushResult EnginePushTarget::send_to_client(std::string_view, const PublishRequest&) {
  return {PushStatus::kUnsupported,
          "the " + protocol_ + " protocol has no topics; leave out \"topic\" to write raw bytes "
          "to the connection",
          0};
}

PushResult EnginePushTarget::send_raw(ConnId id, ByteView bytes) {
  EventLoop* loop = server_.loop_of(id);
  if (loop == nullptr) return no_connection(id);
  auto sent = run_on_loop<bool>(
      *loop,
      [loop, id, data = std::string(as_chars(bytes))] {
        Connection* c = loop->find(id);
        return c != nullptr && c->send(as_bytes(data));
      },
      timeout_);
  if (!sent) return unavailable();
  if (!*sent) return no_connection(id);
  return {PushStatus::kDone, "wrote " + std::to_string(bytes.size()) + " bytes", 0};
}

ClientPage EnginePushTarget::list_clients(const ClientQuery& q) {
  ClientPage page;
  const size_t limit = q.limit;
  uint32_t start_loop = 0, after_slot = 0;
  bool have_cursor = !q.cursor.empty() && parse_cursor(q.cursor, start_loop, after_slot);
  if (!q.cursor.empty() && !have_cursor) return page;  // the API checks cursors before calling
  if (q.connected == false) return page;  // raw connections are connected or gone
  for (size_t i = 0; i < server_.loop_count() && page.clients.size() <= limit; ++i) {
    EventLoop& loop = server_.loop(i);
    if (have_cursor && loop.index() < start_loop) continue;
    bool skip = have_cursor && loop.index() == start_loop;
    size_t want = limit + 1 - page.clients.size();  // one more than needed: is there a next page?
    // Connections are visited in slot order, so "after this slot" is a stable position.
    auto part = run_on_loop<std::vector<ClientInfo>>(
        loop,
        [this, &loop, skip, after_slot, want, search = q.search] {
          std::vector<ClientInfo> out;
          loop.for_each_connection([&](Connection& c) {
            if (out.size() >= want || (skip && c.id().slot() <= after_slot)) return;
            ClientInfo info = describe(c);
            if (!search.empty() && info.id.find(search) == std::string::npos &&
                info.peer.find(search) == std::string::npos)
              return;
            out.push_back(std::move(info));
          });
          return out;
        },
        timeout_);
    if (!part) continue;  // a stopped loop has no clients to list
    for (auto& info : *part) page.clients.push_back(std::move(info));
  }
  if (page.clients.size() > limit) {
    page.clients.resize(limit);
    ConnId last{page.clients.back().conn_id};
    page.next_cursor = std::to_string(last.loop()) + "." + std::to_string(last.slot());
  }
  return page;
}

std::optional<ClientInfo> EnginePushTarget::client(std::string_view text) {
  auto id = parse_conn_id(text);
  EventLoop* loop = id ? server_.loop_of(*id) : nullptr;
  if (loop == nullptr) return std::nullopt;
  auto found = run_on_loop<std::optional<ClientInfo>>(
      *loop,
      [this, loop, id = *id]() -> std::optional<ClientInfo> {
        Connection* c = loop->find(id);
        if (c == nullptr) return std::nullopt;
        return describe(*c);
      },
      timeout_);
  return found ? *found : std::nullopt;
}

PushResult EnginePushTarget::kick(std::string_view text) {
  auto id = parse_conn_id(text);
  if (!id) return {PushStatus::kNotFound, "no connection '" + std::string(text) + "'", 0};
  EventLoop* loop = server_.loop_of(*id);
  if (loop == nullptr) return no_connection(*id);
  auto closed = run_on_loop<bool>(
      *loop,
      [loop, id = *id] {
        Connection* c = loop->find(id);
        if (c == nullptr) return false;
        c->close(CloseReason::kKicked);
        return true;
      },
      timeout_);
  if (!closed) return unavailable();
  if (!*closed) return no_connection(*id);
  return {PushStatus::kDone, "closed connection " + std::to_string(id->value), 0};
}

void EnginePushTarget::add_stats(nlohmann::json&) {}

}  // namespace tcpms::admin
