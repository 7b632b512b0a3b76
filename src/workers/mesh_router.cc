#include "workers/mesh_router.h"

#include <cstring>
#include <string>

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

}  // namespace

void MeshRouter::on_local_publish(const SharedBytes& topic, const SharedBytes& payload,
                                  mqtt::QoS qos, bool retain) {
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
    default:
      return;  // a newer worker's frame kind: ignore
  }
}

}  // namespace tcpms::workers
