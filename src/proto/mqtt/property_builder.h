// Builds a property list into caller-provided memory (a stack array is typical: a CONNACK's
// properties are a few dozen bytes). No allocation; overflow or a type mismatch is sticky and
// reported by ok(), so a chain of add() calls needs one check at the end.
// Not validated against a packet context: the caller decides which properties it sends.
// A builder is a plain stack object: use it from the thread that owns its buffer.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "mqtt/properties.h"

namespace tcpms::mqtt {

class PropertyBuilder {
 public:
  explicit PropertyBuilder(std::span<std::byte> buffer) noexcept : buf_(buffer) {}

  // For Byte, Two Byte, Four Byte and Variable Byte Integer properties; the width comes from
  // the identifier. A value that does not fit the width marks the builder failed.
  PropertyBuilder& add(PropertyId id, std::uint32_t value) noexcept;
  // For UTF-8 string and Binary Data properties (the caller guarantees UTF-8 validity).
  PropertyBuilder& add(PropertyId id, std::string_view value) noexcept;
  PropertyBuilder& add_binary(PropertyId id, Bytes value) noexcept;
  PropertyBuilder& add_user_property(std::string_view name, std::string_view value) noexcept;
  // Appends a decoded property as it was (forwarding: User Properties keep their order).
  PropertyBuilder& add(const Property& p) noexcept;

  bool ok() const noexcept { return ok_; }
  std::size_t size() const noexcept { return used_; }
  // The list built so far; empty if !ok().
  Properties properties() const noexcept {
    return ok_ ? Properties(Bytes(buf_.data(), used_)) : Properties();
  }

 private:
  bool reserve(std::size_t n) noexcept;
  std::span<std::byte> buf_;
  std::size_t used_ = 0;
  bool ok_ = true;
};

}  // namespace tcpms::mqtt
