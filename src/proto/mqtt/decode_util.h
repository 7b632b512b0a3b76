// Helpers shared by the decode_*.cc files. Internal.
#pragma once

#include "mqtt/byte_reader.h"
#include "mqtt/result.h"
#include "mqtt/utf8.h"

namespace tcpms::mqtt::detail {

// A length-prefixed UTF-8 string; false if truncated or not valid per [MQTT-1.5.3-1/2].
inline bool read_utf8(ByteReader& in, std::string_view& out) noexcept {
  Bytes b;
  if (!in.prefixed(b)) return false;
  out = as_chars(b);
  return validate_utf8(out) == Utf8Status::kValid;
}

// A non-zero Packet Identifier [MQTT-2.3.1-1]. Sets `err` and returns false otherwise.
inline bool read_packet_id(ByteReader& in, std::uint16_t& id, DecodeError& err) noexcept {
  if (!in.u16(id)) {
    err = malformed("Packet Identifier truncated");
    return false;
  }
  if (id == 0) {
    err = protocol_error("Packet Identifier is 0 [MQTT-2.3.1-1]");
    return false;
  }
  return true;
}

inline bool is_error(const DecodeError& e) noexcept { return e.code != ReasonCode::kSuccess; }

}  // namespace tcpms::mqtt::detail
