// PUBLISH: 3.1.1 §3.3, 5.0 §3.3. The hot path: two passes over the topic (UTF-8, structure),
// none over the payload, no allocation.
#include "mqtt/decode_util.h"
#include "mqtt/decoder.h"
#include "mqtt/fixed_header.h"
#include "mqtt/topic.h"

namespace tcpms::mqtt {

Decoded<Publish> decode_publish(std::uint8_t flags, Bytes body, ProtocolVersion v) noexcept {
  // Normally already done by decode_fixed_header; repeated so a direct caller is safe too.
  if (DecodeError e = check_fixed_header_flags(PacketType::kPublish, flags); detail::is_error(e)) return e;
  Publish p;
  p.dup = (flags & 0x08u) != 0;
  p.qos = static_cast<QoS>((flags >> 1) & 0x03u);
  p.retain = (flags & 0x01u) != 0;

  detail::ByteReader in(body);
  if (!detail::read_utf8(in, p.topic)) {
    return malformed("PUBLISH Topic Name truncated or not UTF-8 [MQTT-3.3.2-1]");
  }
  // The identifier is present only for QoS 1 and 2 [MQTT-2.3.1-5] and is non-zero [MQTT-2.3.1-1].
  if (p.qos != QoS::k0) {
    DecodeError err;
    if (!detail::read_packet_id(in, p.packet_id, err)) return err;
  }
  if (is_v5(v)) {
    auto props = decode_properties(in, PropertyContext::kPublish);
    if (!props) return props.error();
    p.properties = *props;
  }
  if (p.topic.empty()) {
    // 5.0 §3.3.2.1: an empty Topic Name is how a Topic Alias is used after it is set up.
    if (!is_v5(v)) return DecodeError{ReasonCode::kTopicNameInvalid, "empty Topic Name [MQTT-4.7.3-1]"};
    if (!p.properties.find(PropertyId::kTopicAlias)) {
      return protocol_error("empty Topic Name without a Topic Alias");
    }
  } else if (TopicError e = validate_topic_name(p.topic); e != TopicError::kOk) {
    // Wildcards [MQTT-3.3.2-2], U+0000 [MQTT-4.7.3-2].
    return DecodeError{ReasonCode::kTopicNameInvalid, topic_error_name(e)};
  }
  p.payload = in.rest();  // may be empty (5.0 §3.3.3, 3.1.1 §3.3.3)
  return p;
}

}  // namespace tcpms::mqtt
