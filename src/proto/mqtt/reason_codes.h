// MQTT 5.0 reason codes (5.0 §2.4) and the 3.1.1 CONNACK return codes (3.1.1 §3.2.2.3).
// The codec reports every decode error as a 5.0 reason code, whatever the protocol level, so the
// broker has one error vocabulary: with 5.0 peers it is sent in CONNACK/DISCONNECT, with 3.x
// peers it only picks the log level before the connection is closed.
#pragma once

#include <cstdint>

#include "mqtt/types.h"

namespace tcpms::mqtt {

enum class ReasonCode : std::uint8_t {
  kSuccess = 0x00,  // also Normal disconnection, Granted QoS 0
  kGrantedQoS1 = 0x01,
  kGrantedQoS2 = 0x02,
  kDisconnectWithWill = 0x04,
  kNoMatchingSubscribers = 0x10,
  kNoSubscriptionExisted = 0x11,
  kContinueAuthentication = 0x18,
  kReAuthenticate = 0x19,
  kUnspecifiedError = 0x80,
  kMalformedPacket = 0x81,
  kProtocolError = 0x82,
  kImplementationSpecificError = 0x83,
  kUnsupportedProtocolVersion = 0x84,
  kClientIdentifierNotValid = 0x85,
  kBadUserNameOrPassword = 0x86,
  kNotAuthorized = 0x87,
  kServerUnavailable = 0x88,
  kServerBusy = 0x89,
  kBanned = 0x8A,
  kServerShuttingDown = 0x8B,
  kBadAuthenticationMethod = 0x8C,
  kKeepAliveTimeout = 0x8D,
  kSessionTakenOver = 0x8E,
  kTopicFilterInvalid = 0x8F,
  kTopicNameInvalid = 0x90,
  kPacketIdentifierInUse = 0x91,
  kPacketIdentifierNotFound = 0x92,
  kReceiveMaximumExceeded = 0x93,
  kTopicAliasInvalid = 0x94,
  kPacketTooLarge = 0x95,
  kMessageRateTooHigh = 0x96,
  kQuotaExceeded = 0x97,
  kAdministrativeAction = 0x98,
  kPayloadFormatInvalid = 0x99,
  kRetainNotSupported = 0x9A,
  kQoSNotSupported = 0x9B,
  kUseAnotherServer = 0x9C,
  kServerMoved = 0x9D,
  kSharedSubscriptionsNotSupported = 0x9E,
  kConnectionRateExceeded = 0x9F,
  kMaximumConnectTime = 0xA0,
  kSubscriptionIdentifiersNotSupported = 0xA1,
  kWildcardSubscriptionsNotSupported = 0xA2,
};

// 3.1.1 CONNACK return codes (3.1 uses the same values).
enum class ConnectReturnCode : std::uint8_t {
  kAccepted = 0,
  kUnacceptableProtocolVersion = 1,  // [MQTT-3.1.2-2]
  kIdentifierRejected = 2,           // [MQTT-3.1.3-8], [MQTT-3.1.3-9]
  kServerUnavailable = 3,
  kBadUserNameOrPassword = 4,
  kNotAuthorized = 5,
};

// True if `code` may appear in a packet of `type` (5.0 tables in §3.2.2.2, §3.4.2.1, §3.5.2.1,
// §3.6.2.1, §3.7.2.1, §3.9.3, §3.11.3, §3.14.2.1, §3.15.2.1). A receiver that gets anything else
// treats it as a Protocol Error.
bool is_valid_reason_code(PacketType type, std::uint8_t code) noexcept;

// The closest 3.1.1 CONNACK return code for a 5.0 CONNACK reason. Reasons without a 3.1.1
// equivalent map to kServerUnavailable; note a 3.1.1 server answers a malformed CONNECT by
// closing without CONNACK [MQTT-3.1.4-1], so the broker should not encode those at all.
ConnectReturnCode to_connect_return_code(ReasonCode code) noexcept;
ReasonCode from_connect_return_code(ConnectReturnCode code) noexcept;

// A stable name for logs ("Malformed Packet"); "Unknown" for values outside the table.
const char* reason_code_name(ReasonCode code) noexcept;

inline constexpr std::uint8_t to_byte(ReasonCode c) noexcept { return static_cast<std::uint8_t>(c); }

}  // namespace tcpms::mqtt
