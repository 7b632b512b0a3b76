#include "mqtt/property_builder.h"

#include <cstring>

#include "mqtt/byte_writer.h"

namespace tcpms::mqtt {

bool PropertyBuilder::reserve(std::size_t n) noexcept {
  if (!ok_ || buf_.size() - used_ < n) ok_ = false;
  return ok_;
}

PropertyBuilder& PropertyBuilder::add(PropertyId id, std::uint32_t value) noexcept {
  const PropertyType type = property_type(static_cast<std::uint8_t>(id));
  std::size_t width = 0;
  switch (type) {
    case PropertyType::kByte: width = value <= 0xFF ? 1 : 0; break;
    case PropertyType::kTwoByte: width = value <= 0xFFFF ? 2 : 0; break;
    case PropertyType::kFourByte: width = 4; break;
    case PropertyType::kVarInt: width = varint_size(value); break;
    default: break;
  }
  if (width == 0) ok_ = false;
  if (!reserve(1 + width)) return *this;
  detail::ByteWriter w(buf_.data() + used_);
  w.u8(static_cast<std::uint8_t>(id));
  switch (type) {
    case PropertyType::kByte: w.u8(static_cast<std::uint8_t>(value)); break;
    case PropertyType::kTwoByte: w.u16(static_cast<std::uint16_t>(value)); break;
    case PropertyType::kFourByte: w.u32(value); break;
    default: w.varint(value); break;
  }
  used_ += w.written();
  return *this;
}

PropertyBuilder& PropertyBuilder::add(PropertyId id, std::string_view value) noexcept {
  const PropertyType type = property_type(static_cast<std::uint8_t>(id));
  if (type != PropertyType::kUtf8 && type != PropertyType::kBinary) ok_ = false;
  if (value.size() > 0xFFFF) ok_ = false;
  if (!reserve(3 + value.size())) return *this;
  detail::ByteWriter w(buf_.data() + used_);
  w.u8(static_cast<std::uint8_t>(id));
  w.prefixed(value);
  used_ += w.written();
  return *this;
}

PropertyBuilder& PropertyBuilder::add_binary(PropertyId id, Bytes value) noexcept {
  return add(id, as_chars(value));
}

PropertyBuilder& PropertyBuilder::add_user_property(std::string_view name,
                                                    std::string_view value) noexcept {
  if (name.size() > 0xFFFF || value.size() > 0xFFFF) ok_ = false;
  if (!reserve(5 + name.size() + value.size())) return *this;
  detail::ByteWriter w(buf_.data() + used_);
  w.u8(static_cast<std::uint8_t>(PropertyId::kUserProperty));
  w.prefixed(name);
  w.prefixed(value);
  used_ += w.written();
  return *this;
}

PropertyBuilder& PropertyBuilder::add(const Property& p) noexcept {
  switch (property_type(static_cast<std::uint8_t>(p.id))) {
    case PropertyType::kByte:
    case PropertyType::kTwoByte:
    case PropertyType::kFourByte:
    case PropertyType::kVarInt:
      return add(p.id, p.number);
    case PropertyType::kUtf8:
      return add(p.id, p.text);
    case PropertyType::kBinary:
      return add_binary(p.id, p.binary);
    case PropertyType::kUtf8Pair:
      return add_user_property(p.text, p.text2);
    case PropertyType::kInvalid:
      break;
  }
  ok_ = false;
  return *this;
}

}  // namespace tcpms::mqtt
