// UTF-8 Encoded String checks (3.1.1 §1.5.3, 5.0 §1.5.4). Every string field the decoder
// returns has passed validate_utf8(); payloads are binary and are not checked here.
#pragma once

#include <cstdint>
#include <string_view>

namespace tcpms::mqtt {

enum class Utf8Status : std::uint8_t {
  kValid,
  // Not well-formed per RFC 3629: bad lead or continuation byte, truncated sequence, overlong
  // (non-shortest) form, a surrogate U+D800..U+DFFF, or a value above U+10FFFF.
  // [MQTT-1.5.3-1] (3.1.1) / [MQTT-1.5.4-1] (5.0): the receiver closes the connection.
  kIllFormed,
  // U+0000 encoded as 0x00. [MQTT-1.5.3-2] / [MQTT-1.5.4-2]. (The overlong form 0xC0 0x80 is
  // kIllFormed.)
  kNullCharacter,
};

// The mandatory checks. U+FEFF (0xEF 0xBB 0xBF) is valid and is kept as is: the decoder returns
// views, so it can never skip or strip it [MQTT-1.5.3-3] / [MQTT-1.5.4-3].
Utf8Status validate_utf8(std::string_view s) noexcept;

// The "SHOULD NOT" code points: controls U+0001..U+001F and U+007F..U+009F, and Unicode
// non-characters (U+FDD0..U+FDEF, U+xFFFE, U+xFFFF). A receiver MAY close the connection on
// them; that is broker policy, so this is a separate, optional check. Assumes `s` is valid.
bool has_discouraged_code_points(std::string_view s) noexcept;

}  // namespace tcpms::mqtt
