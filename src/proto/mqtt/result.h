// The decoder's small result type. The hot path throws nothing: a decode either yields a value
// or a DecodeError carrying the MQTT 5.0 reason code the broker should act on.
#pragma once

#include <utility>

#include "mqtt/reason_codes.h"

namespace tcpms::mqtt {

struct DecodeError {
  ReasonCode code = ReasonCode::kSuccess;
  // A static string for the log line ("PUBLISH topic contains a wildcard"); never owned.
  const char* what = "";
};

inline DecodeError malformed(const char* what) noexcept {
  return {ReasonCode::kMalformedPacket, what};
}
inline DecodeError protocol_error(const char* what) noexcept {
  return {ReasonCode::kProtocolError, what};
}

// Either a T or an error. T is a cheap view type (string_views and spans into the input), so
// holding both side by side costs less than std::variant's bookkeeping and keeps it trivial.
template <class T>
class [[nodiscard]] Decoded {
 public:
  Decoded(T value) noexcept : value_(std::move(value)) {}  // NOLINT: implicit by design
  Decoded(DecodeError error) noexcept : error_(error) {}   // NOLINT: implicit by design

  bool ok() const noexcept { return error_.code == ReasonCode::kSuccess; }
  explicit operator bool() const noexcept { return ok(); }

  const DecodeError& error() const noexcept { return error_; }
  const T& value() const& noexcept { return value_; }
  T& value() & noexcept { return value_; }
  const T& operator*() const noexcept { return value_; }
  const T* operator->() const noexcept { return &value_; }

 private:
  T value_{};
  DecodeError error_{};
};

}  // namespace tcpms::mqtt
