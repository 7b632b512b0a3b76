// Standard base64 (RFC 4648 §4, with '=' padding), as Mosquitto's password files use it.
// Our own because OpenSSL's EVP_DecodeBlock skips whitespace and counts padding as output
// bytes; a password file must be decoded strictly.
// Thread rules: pure functions, callable from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tcpms::auth {

std::string base64_encode(std::span<const uint8_t> bytes);
// nullopt for anything but canonical padded base64 (length a multiple of 4, '=' only at the end).
std::optional<std::vector<uint8_t>> base64_decode(std::string_view text);

}  // namespace tcpms::auth
