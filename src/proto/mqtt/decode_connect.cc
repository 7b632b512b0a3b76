// CONNECT: 3.1 §"CONNECT", 3.1.1 §3.1, 5.0 §3.1.
#include "mqtt/decode_util.h"
#include "mqtt/decoder.h"
#include "mqtt/topic.h"

namespace tcpms::mqtt {
namespace {

using detail::ByteReader;

struct ConnectFlags {
  bool clean_start, will, will_retain, password, username;
  std::uint8_t will_qos;
};

ConnectFlags split_flags(std::uint8_t f) noexcept {
  return {(f & 0x02u) != 0, (f & 0x04u) != 0, (f & 0x20u) != 0, (f & 0x40u) != 0,
          (f & 0x80u) != 0, static_cast<std::uint8_t>((f >> 3) & 0x03u)};
}

// Rules on the flags byte alone (3.1.1 §3.1.2.3-§3.1.2.9, 5.0 §3.1.2.3-§3.1.2.9).
DecodeError check_flags(std::uint8_t raw, const ConnectFlags& f, ProtocolVersion v) noexcept {
  if ((raw & 0x01u) != 0) return malformed("CONNECT reserved flag is set [MQTT-3.1.2-3]");
  if (!f.will) {
    if (f.will_qos != 0) {
      return malformed("Will QoS without Will Flag [MQTT-3.1.2-11/13] (5.0: [MQTT-3.1.2-11])");
    }
    if (f.will_retain) {
      return malformed("Will Retain without Will Flag [MQTT-3.1.2-15] (5.0: [MQTT-3.1.2-13])");
    }
  } else if (f.will_qos == 3) {
    return malformed("Will QoS 3 [MQTT-3.1.2-14] (5.0: [MQTT-3.1.2-12])");
  }
  // 5.0 dropped this rule so a password can carry a token without a user name.
  if (!is_v5(v) && f.password && !f.username) {
    return protocol_error("Password Flag without User Name Flag [MQTT-3.1.2-22]");
  }
  return {};
}

Decoded<Will> read_will(ByteReader& in, const ConnectFlags& f, ProtocolVersion v) noexcept {
  Will w;
  w.qos = static_cast<QoS>(f.will_qos);
  w.retain = f.will_retain;
  if (is_v5(v)) {
    auto props = decode_properties(in, PropertyContext::kWill);
    if (!props) return props.error();
    w.properties = *props;
  }
  if (!detail::read_utf8(in, w.topic)) {
    return malformed("Will Topic truncated or not UTF-8 [MQTT-3.1.3-10]");
  }
  if (TopicError e = validate_topic_name(w.topic); e != TopicError::kOk) {
    return DecodeError{ReasonCode::kTopicNameInvalid, topic_error_name(e)};
  }
  if (!in.prefixed(w.payload)) return malformed("Will Message truncated");
  return w;
}

// Protocol Name and Level (3.1.1 §3.1.2.1-2, 5.0 §3.1.2.1-2; 3.1 used "MQIsdp" level 3).
std::optional<ProtocolVersion> read_version(ByteReader& in, bool& truncated) noexcept {
  Bytes name;
  std::uint8_t level = 0;
  truncated = !in.prefixed(name) || !in.u8(level);
  if (truncated) return std::nullopt;
  const std::string_view n = as_chars(name);
  if (n == "MQTT" && (level == 4 || level == 5)) return static_cast<ProtocolVersion>(level);
  if (n == "MQIsdp" && level == 3) return ProtocolVersion::kV31;
  return std::nullopt;
}

}  // namespace

std::optional<ProtocolVersion> peek_connect_version(Bytes body) noexcept {
  ByteReader in(body);
  bool truncated = false;
  return read_version(in, truncated);
}

Decoded<Connect> decode_connect(Bytes body) noexcept {
  ByteReader in(body);
  bool truncated = false;
  const auto version = read_version(in, truncated);
  if (truncated) return malformed("CONNECT protocol name or level truncated");
  if (!version) {
    return DecodeError{ReasonCode::kUnsupportedProtocolVersion,
                       "unsupported protocol name or level [MQTT-3.1.2-1], [MQTT-3.1.2-2]"};
  }
  Connect c;
  c.version = *version;

  std::uint8_t raw_flags = 0;
  if (!in.u8(raw_flags) || !in.u16(c.keep_alive_s)) return malformed("CONNECT variable header truncated");
  const ConnectFlags f = split_flags(raw_flags);
  if (DecodeError e = check_flags(raw_flags, f, c.version); detail::is_error(e)) return e;
  c.clean_start = f.clean_start;

  if (is_v5(c.version)) {
    auto props = decode_properties(in, PropertyContext::kConnect);
    if (!props) return props.error();
    c.properties = *props;
  }
  // Payload order is fixed: Client Identifier, Will, User Name, Password [MQTT-3.1.3-1].
  if (!detail::read_utf8(in, c.client_id)) {
    return malformed("Client Identifier truncated or not UTF-8 [MQTT-3.1.3-3], [MQTT-3.1.3-4]");
  }
  if (f.will) {
    auto will = read_will(in, f, c.version);
    if (!will) return will.error();
    c.will = *will;
  }
  if (f.username) {
    std::string_view user;
    if (!detail::read_utf8(in, user)) {
      return malformed("User Name truncated or not UTF-8 [MQTT-3.1.2-19], [MQTT-3.1.3-11]");
    }
    c.username = user;
  }
  if (f.password) {
    Bytes pass;
    if (in.prefixed(pass)) {
      c.password = pass;
    } else if (c.version != ProtocolVersion::kV31 || !in.empty()) {
      // Some 3.1 clients set the flag and send nothing; tolerate exactly that case.
      return malformed("Password truncated [MQTT-3.1.2-21]");
    }
  }
  if (!in.empty()) return malformed("bytes after the CONNECT payload");
  return c;
}

}  // namespace tcpms::mqtt
