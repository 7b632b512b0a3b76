#include "mqtt/reason_codes.h"

#include <bitset>
#include <initializer_list>

namespace tcpms::mqtt {
namespace {

using CodeSet = std::bitset<256>;

CodeSet make(std::initializer_list<std::uint8_t> codes) {
  CodeSet s;
  for (auto c : codes) s.set(c);
  return s;
}

// 5.0 per-packet reason code tables. Built once (function-local statics are thread-safe).
const CodeSet& codes_for(PacketType t) noexcept {
  static const CodeSet connack = make({0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88,
                                       0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C,
                                       0x9D, 0x9F});
  static const CodeSet puback = make({0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99});
  static const CodeSet pubrel = make({0x00, 0x92});
  static const CodeSet suback = make({0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E,
                                      0xA1, 0xA2});
  static const CodeSet unsuback = make({0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91});
  static const CodeSet disconnect = make({0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B,
                                          0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97,
                                          0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0,
                                          0xA1, 0xA2});
  static const CodeSet auth = make({0x00, 0x18, 0x19});
  static const CodeSet none;
  switch (t) {
    case PacketType::kConnack: return connack;
    case PacketType::kPuback:
    case PacketType::kPubrec: return puback;
    case PacketType::kPubrel:
    case PacketType::kPubcomp: return pubrel;
    case PacketType::kSuback: return suback;
    case PacketType::kUnsuback: return unsuback;
    case PacketType::kDisconnect: return disconnect;
    case PacketType::kAuth: return auth;
    default: return none;
  }
}

}  // namespace

bool is_valid_reason_code(PacketType type, std::uint8_t code) noexcept {
  return codes_for(type).test(code);
}

ConnectReturnCode to_connect_return_code(ReasonCode code) noexcept {
  switch (code) {
    case ReasonCode::kSuccess: return ConnectReturnCode::kAccepted;
    case ReasonCode::kUnsupportedProtocolVersion: return ConnectReturnCode::kUnacceptableProtocolVersion;
    case ReasonCode::kClientIdentifierNotValid: return ConnectReturnCode::kIdentifierRejected;
    case ReasonCode::kBadUserNameOrPassword: return ConnectReturnCode::kBadUserNameOrPassword;
    case ReasonCode::kNotAuthorized:
    case ReasonCode::kBanned: return ConnectReturnCode::kNotAuthorized;
    default: return ConnectReturnCode::kServerUnavailable;
  }
}

ReasonCode from_connect_return_code(ConnectReturnCode code) noexcept {
  switch (code) {
    case ConnectReturnCode::kAccepted: return ReasonCode::kSuccess;
    case ConnectReturnCode::kUnacceptableProtocolVersion: return ReasonCode::kUnsupportedProtocolVersion;
    case ConnectReturnCode::kIdentifierRejected: return ReasonCode::kClientIdentifierNotValid;
    case ConnectReturnCode::kServerUnavailable: return ReasonCode::kServerUnavailable;
    case ConnectReturnCode::kBadUserNameOrPassword: return ReasonCode::kBadUserNameOrPassword;
    case ConnectReturnCode::kNotAuthorized: return ReasonCode::kNotAuthorized;
  }
  return ReasonCode::kServerUnavailable;
}

const char* reason_code_name(ReasonCode code) noexcept {
  switch (code) {
    case ReasonCode::kSuccess: return "Success";
    case ReasonCode::kGrantedQoS1: return "Granted QoS 1";
    case ReasonCode::kGrantedQoS2: return "Granted QoS 2";
    case ReasonCode::kDisconnectWithWill: return "Disconnect with Will Message";
    case ReasonCode::kNoMatchingSubscribers: return "No matching subscribers";
    case ReasonCode::kNoSubscriptionExisted: return "No subscription existed";
    case ReasonCode::kContinueAuthentication: return "Continue authentication";
    case ReasonCode::kReAuthenticate: return "Re-authenticate";
    case ReasonCode::kUnspecifiedError: return "Unspecified error";
    case ReasonCode::kMalformedPacket: return "Malformed Packet";
    case ReasonCode::kProtocolError: return "Protocol Error";
    case ReasonCode::kImplementationSpecificError: return "Implementation specific error";
    case ReasonCode::kUnsupportedProtocolVersion: return "Unsupported Protocol Version";
    case ReasonCode::kClientIdentifierNotValid: return "Client Identifier not valid";
    case ReasonCode::kBadUserNameOrPassword: return "Bad User Name or Password";
    case ReasonCode::kNotAuthorized: return "Not authorized";
    case ReasonCode::kServerUnavailable: return "Server unavailable";
    case ReasonCode::kServerBusy: return "Server busy";
    case ReasonCode::kBanned: return "Banned";
    case ReasonCode::kServerShuttingDown: return "Server shutting down";
    case ReasonCode::kBadAuthenticationMethod: return "Bad authentication method";
    case ReasonCode::kKeepAliveTimeout: return "Keep Alive timeout";
    case ReasonCode::kSessionTakenOver: return "Session taken over";
    case ReasonCode::kTopicFilterInvalid: return "Topic Filter invalid";
    case ReasonCode::kTopicNameInvalid: return "Topic Name invalid";
    case ReasonCode::kPacketIdentifierInUse: return "Packet Identifier in use";
    case ReasonCode::kPacketIdentifierNotFound: return "Packet Identifier not found";
    case ReasonCode::kReceiveMaximumExceeded: return "Receive Maximum exceeded";
    case ReasonCode::kTopicAliasInvalid: return "Topic Alias invalid";
    case ReasonCode::kPacketTooLarge: return "Packet too large";
    case ReasonCode::kMessageRateTooHigh: return "Message rate too high";
    case ReasonCode::kQuotaExceeded: return "Quota exceeded";
    case ReasonCode::kAdministrativeAction: return "Administrative action";
    case ReasonCode::kPayloadFormatInvalid: return "Payload format invalid";
    case ReasonCode::kRetainNotSupported: return "Retain not supported";
    case ReasonCode::kQoSNotSupported: return "QoS not supported";
    case ReasonCode::kUseAnotherServer: return "Use another server";
    case ReasonCode::kServerMoved: return "Server moved";
    case ReasonCode::kSharedSubscriptionsNotSupported: return "Shared Subscriptions not supported";
    case ReasonCode::kConnectionRateExceeded: return "Connection rate exceeded";
    case ReasonCode::kMaximumConnectTime: return "Maximum connect time";
    case ReasonCode::kSubscriptionIdentifiersNotSupported: return "Subscription Identifiers not supported";
    case ReasonCode::kWildcardSubscriptionsNotSupported: return "Wildcard Subscriptions not supported";
  }
  return "Unknown";
}

}  // namespace tcpms::mqtt
