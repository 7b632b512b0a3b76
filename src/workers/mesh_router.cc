#include "workers/mesh_router.h"

#include <algorithm>
#include <ctime>
#include <cstring>
#include <string>

#include <spdlog/spdlog.h>

namespace tcpms::workers {
namespace {

void put_u16(std::string& out, size_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>((v >> 8) & 0xff));
}

// Reads a u16-length-prefixed string; false if the body is too short.
bool take_str(ByteView& in, std::string_view& out) {
  if (in.size() < 2) return false;
  size_t n = static_cast<size_t>(in[0]) | static_cast<size_t>(in[1]) << 8;
  if (in.size() < 2 + n) return false;
  out = as_chars(in.subspan(2, n));
  in = in.subspan(2 + n);
  return true;
}

// Little-endian integers, as every frame body on the mesh uses.
template <typename T>
void put_le(std::string& out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

template <typename T>
bool take_le(ByteView& in, T& v) {
  if (in.size() < sizeof(T)) return false;
  v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<T>(in[i]) << (8 * i));
  in = in.subspan(sizeof(T));
  return true;
}

// The body of kSessionFetch and kConnected: [u64 head][u32 worker][client id to the end].
std::string id_body(uint64_t head, unsigned worker, std::string_view client_id) {
  std::string body;
  put_le<uint64_t>(body, head);
  put_le<uint32_t>(body, worker);
  body.append(client_id);
  return body;
}

bool take_id_body(ByteView body, uint64_t& head, uint32_t& worker, std::string& client_id) {
  if (!take_le(body, head) || !take_le(body, worker)) return false;
  client_id = std::string(as_chars(body));
  return true;
}

// CLOCK_MONOTONIC is one clock for every process on the box, so two workers' connect times
// compare.
uint64_t monotonic_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

MeshRouter* mesh_router_of(broker::Broker& broker) {
  return dynamic_cast<MeshRouter*>(&broker.router());
}

}  // namespace

void MeshRouter::on_client_connected(std::string_view client_id) {
  if (mesh_.count() <= 1) return;
  const uint64_t now = monotonic_ns();
  {
    std::lock_guard lock(mu_);
    prune_recent(now);
    recent_[std::string(client_id)] = now;
    recent_order_.emplace_back(now, std::string(client_id));
  }
  mesh_.broadcast(kConnected, as_bytes(id_body(now, mesh_.self(), client_id)));
}

void MeshRouter::prune_recent(uint64_t now_ns) {
  while (!recent_order_.empty() && now_ns - recent_order_.front().first > kRecentConnectMs * 1000000) {
    auto it = recent_.find(recent_order_.front().second);
    if (it != recent_.end() && it->second == recent_order_.front().first) recent_.erase(it);
    recent_order_.pop_front();
  }
}

void MeshRouter::fetch_session(std::string_view client_id, SessionDone done) {
  const unsigned peers = mesh_.count() > 1 ? mesh_.count() - 1 : 0;
  if (peers == 0) {
    done(std::nullopt);
    return;
  }
  uint64_t request;
  {
    std::lock_guard lock(mu_);
    request = next_request_++;
    fetches_.emplace(request, Fetch{std::move(done), peers});
  }
  if (!mesh_.run_after(kSessionFetchTimeoutMs, [this, request] { expire(request); })) {
    expire(request);  // the mesh is stopping: no answer will come
    return;
  }
  // Peers whose link is down never get the request: stop waiting for them at once rather
  // than at the timeout (a worker restarting).
  mesh_.broadcast(kSessionFetch, as_bytes(id_body(request, mesh_.self(), client_id)),
                  [this, request, peers](unsigned reached) {
                    std::optional<std::string> none;
                    answered(request, peers - std::min(reached, peers), none);
                  });
}

void MeshRouter::expire(uint64_t request) {
  SessionDone done;
  {
    std::lock_guard lock(mu_);
    auto it = fetches_.find(request);
    if (it == fetches_.end()) return;
    done = std::move(it->second.done);
    fetches_.erase(it);
  }
  done(std::nullopt);  // not everyone answered in time: go on without a session
}

void MeshRouter::on_fetch(broker::Broker& broker, ByteView body) {
  uint64_t request = 0;
  uint32_t from = 0;
  std::string id;
  if (!take_id_body(body, request, from, id) || from >= mesh_.count()) return;
  // Takes the client over here if connected and gives the session up; answers either way.
  broker.export_session(id, [this, from, request, id](std::optional<std::string> image) {
    answer(from, request, id, image);
  });
}

void MeshRouter::answer(unsigned to, uint64_t request, std::string_view client_id,
                        const std::optional<std::string>& image) {
  std::string body;
  body.reserve(8 + 1 + 2 + client_id.size() + (image ? image->size() : 0));
  put_le<uint64_t>(body, request);
  body.push_back(static_cast<char>(image ? kImageInline : kNoImage));
  put_u16(body, client_id.size());
  body.append(client_id);
  if (image) body.append(*image);
  mesh_.send(to, kSessionImage, as_bytes(body));
}

void MeshRouter::on_image(broker::Broker& broker, ByteView body) {
  uint64_t request = 0;
  std::string_view id;
  if (!take_le(body, request) || body.empty()) return;
  const auto how = static_cast<uint8_t>(body[0]);
  body = body.subspan(1);
  if (!take_str(body, id) || how > kImageInline) return;
  std::optional<std::string> image;
  if (how == kImageInline) image = std::string(as_chars(body));
  if (answered(request, 1, image) || !image) return;
  // The fetch gave up (timeout) before this image came: keep it rather than lose it.
  spdlog::warn("mesh: session image for '{}' came after its fetch timed out; adopting it", id);
  broker.adopt_session(id, std::move(*image));
}

bool MeshRouter::answered(uint64_t request, unsigned answers, std::optional<std::string>& image) {
  SessionDone done;
  {
    std::lock_guard lock(mu_);
    auto it = fetches_.find(request);
    if (it == fetches_.end()) return false;  // done already (or timed out)
    Fetch& f = it->second;
    f.waiting -= std::min(answers, f.waiting);
    if (!image && f.waiting != 0) return true;  // others may still hold it
    done = std::move(f.done);
    fetches_.erase(it);
  }
  done(std::move(image));  // the first image, or nobody holds one
  return true;
}

void MeshRouter::on_connected(broker::Broker& broker, ByteView body) {
  uint64_t at = 0;
  uint32_t from = 0;
  std::string id;
  if (!take_id_body(body, at, from, id)) return;
  {
    std::lock_guard lock(mu_);
    prune_recent(monotonic_ns());
    auto it = recent_.find(id);
    // A connect of our own that is newer wins; equal times go to the higher worker index.
    if (it != recent_.end() && (it->second > at || (it->second == at && mesh_.self() > from)))
      return;
  }
  broker.drop_session(id);
}

void MeshRouter::on_local_publish(const broker::Message& m) {
  const SharedBytes& topic = m.topic;
  const SharedBytes& payload = m.payload;
  const mqtt::QoS qos = m.qos;
  const bool retain = m.retain;
  std::string body;
  body.reserve(3 + topic.size() + payload.size());
  body.push_back(static_cast<char>(static_cast<uint8_t>(qos) | (retain ? 4 : 0)));
  put_u16(body, topic.size());
  body.append(as_chars(topic.view()));
  body.append(as_chars(payload.view()));
  mesh_.broadcast(kPublish, as_bytes(body));
}

bool MeshRouter::push_to_client(std::string_view client_id, const SharedBytes& topic,
                                const SharedBytes& payload, mqtt::QoS qos, PushDone done) {
  if (mesh_.count() <= 1) return false;
  std::string body;
  body.push_back(static_cast<char>(qos));
  put_u16(body, client_id.size());
  body.append(client_id);
  put_u16(body, topic.size());
  body.append(as_chars(topic.view()));
  body.append(as_chars(payload.view()));
  mesh_.broadcast(kPush, as_bytes(body));
  if (done) done(PushOutcome::kUnknown);  // a broadcast: whoever holds it delivers
  return true;
}

std::string encode_raw_send(ConnId id, ByteView bytes) {
  std::string body(8, '\0');
  for (int i = 0; i < 8; ++i) body[i] = static_cast<char>((id.value >> (8 * i)) & 0xff);
  body.append(as_chars(bytes));
  return body;
}

void MeshRouter::receive(broker::Broker* broker, Server& server, uint8_t kind, ByteView body) {
  switch (kind) {
    case kPublish: {
      if (broker == nullptr || body.empty()) return;
      auto flags = static_cast<uint8_t>(body[0]);
      ByteView rest = body.subspan(1);
      std::string_view topic;
      if (!take_str(rest, topic) || (flags & 3) > 2) return;
      broker->deliver_remote(SharedBytes::copy_of(as_bytes(topic)), SharedBytes::copy_of(rest),
                             static_cast<mqtt::QoS>(flags & 3), (flags & 4) != 0);
      return;
    }
    case kPush: {
      if (broker == nullptr || body.empty()) return;
      auto qos = static_cast<uint8_t>(body[0]);
      ByteView rest = body.subspan(1);
      std::string_view client_id, topic;
      if (!take_str(rest, client_id) || !take_str(rest, topic) || qos > 2) return;
      // Only the worker that holds the client delivers; the rest find no such client.
      if (broker->registry().find(client_id).has_value()) {
        broker->send_to_client(client_id, topic, rest, static_cast<mqtt::QoS>(qos));
      }
      return;
    }
    case kRawSend:
    case kRawClose: {
      if (body.size() < 8) return;
      uint64_t v = 0;
      for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(body[i]) << (8 * i);
      if (kind == kRawSend) {
        server.send_to(ConnId{v}, body.subspan(8));
      } else {
        server.close(ConnId{v});
      }
      return;
    }
    case kSessionFetch:
    case kSessionImage:
    case kConnected: {
      MeshRouter* self = broker != nullptr ? mesh_router_of(*broker) : nullptr;
      if (self == nullptr) return;
      if (kind == kSessionFetch) self->on_fetch(*broker, body);
      if (kind == kSessionImage) self->on_image(*broker, body);
      if (kind == kConnected) self->on_connected(*broker, body);
      return;
    }
    default:
      return;  // a newer worker's frame kind: ignore
  }
}

}  // namespace tcpms::workers
