#include "cluster/frame.h"

namespace tcpms::cluster {
namespace {

void put_str(std::string& out, std::string_view s) {
  out.push_back(static_cast<char>(s.size() & 0xff));
  out.push_back(static_cast<char>((s.size() >> 8) & 0xff));
  out.append(s);
}

bool take_str(std::string_view& in, std::string_view& out) {
  if (in.size() < 2) return false;
  size_t n = static_cast<uint8_t>(in[0]) | static_cast<size_t>(static_cast<uint8_t>(in[1])) << 8;
  if (in.size() < 2 + n) return false;
  out = in.substr(2, n);
  in.remove_prefix(2 + n);
  return true;
}

}  // namespace

std::string encode_frame(const Frame& f) {
  std::string out;
  out.reserve(9 + f.node.size() + f.arg.size() + f.topic.size() + f.payload.size());
  out.push_back(static_cast<char>(kFrameVersion));
  out.push_back(static_cast<char>(f.kind));
  out.push_back(static_cast<char>(static_cast<uint8_t>(f.qos) | (f.retain ? 4 : 0)));
  put_str(out, f.node);
  put_str(out, f.arg);
  put_str(out, f.topic);
  out.append(f.payload);
  return out;
}

std::string encode_event(FrameKind kind, std::string_view node, std::string_view arg) {
  Frame f;
  f.kind = kind;
  f.node = node;
  f.arg = arg;
  return encode_frame(f);
}

std::string encode_message(FrameKind kind, std::string_view node, std::string_view arg,
                           std::string_view topic, std::string_view payload, mqtt::QoS qos,
                           bool retain) {
  Frame f;
  f.kind = kind;
  f.node = node;
  f.arg = arg;
  f.topic = topic;
  f.payload = payload;
  f.qos = qos;
  f.retain = retain;
  return encode_frame(f);
}

std::optional<Frame> decode_frame(std::string_view in) {
  if (in.size() < 3 || static_cast<uint8_t>(in[0]) != kFrameVersion) return std::nullopt;
  Frame f;
  f.kind = static_cast<FrameKind>(in[1]);
  auto flags = static_cast<uint8_t>(in[2]);
  if ((flags & 3) > 2) return std::nullopt;
  f.qos = static_cast<mqtt::QoS>(flags & 3);
  f.retain = (flags & 4) != 0;
  in.remove_prefix(3);
  if (!take_str(in, f.node) || !take_str(in, f.arg) || !take_str(in, f.topic)) return std::nullopt;
  f.payload = in;
  return f;
}

}  // namespace tcpms::cluster
