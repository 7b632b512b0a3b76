#include "admin/http_json.h"

#include <httplib.h>

namespace tcpms::admin {

void reply_json(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  // Invalid UTF-8 in client-provided strings (ids, topics) is replaced, not thrown.
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                  "application/json");
}

void reply_error(httplib::Response& res, int status, std::string_view message) {
  reply_json(res, status, nlohmann::json{{"error", message}});
}

std::optional<nlohmann::json> parse_json_object(const httplib::Request& req,
                                                httplib::Response& res) {
  nlohmann::json body;
  try {
    body = nlohmann::json::parse(req.body);
  } catch (const nlohmann::json::parse_error& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 1, column 9: ...".
    std::string what = e.what();
    size_t at = what.find("parse error");
    reply_error(res, 400, "bad JSON (byte " + std::to_string(e.byte) + "): " +
                              (at == std::string::npos ? what : what.substr(at)));
    return std::nullopt;
  } catch (const nlohmann::json::exception& e) {
    // The other parse failures: a number out of range ("1e400": out_of_range.406), ...
    std::string what = e.what();
    size_t at = what.find("] ");
    reply_error(res, 400, "bad JSON: " + (at == std::string::npos ? what : what.substr(at + 2)));
    return std::nullopt;
  }
  if (!body.is_object()) {
    reply_error(res, 400, "expected a JSON object");
    return std::nullopt;
  }
  return body;
}

std::string only_fields(const nlohmann::json& body,
                        std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : body.items()) {
    bool known = false;
    for (auto a : allowed) known = known || a == key;
    if (!known) {
      std::string list;
      for (auto a : allowed) list += std::string(list.empty() ? "" : ", ") + std::string(a);
      return "unknown field \"" + key + "\" (expected: " + list + ")";
    }
  }
  return {};
}

std::string decode_payload(const nlohmann::json& body, std::string& out) {
  auto payload = body.find("payload");
  if (payload == body.end()) return "missing \"payload\"";
  if (!payload->is_string()) return "\"payload\" must be a string";
  std::string encoding = "utf-8";
  if (auto e = body.find("encoding"); e != body.end()) {
    if (!e->is_string()) return "\"encoding\" must be \"utf-8\" or \"base64\"";
    encoding = e->get<std::string>();
  }
  const auto& text = payload->get_ref<const std::string&>();
  if (encoding == "utf-8" || encoding == "utf8") {
    out = text;  // the JSON parser already checked it is UTF-8
    return {};
  }
  if (encoding == "base64") {
    size_t bad_at = 0;
    auto bytes = base64_decode(text, &bad_at);
    if (!bytes) return "\"payload\" is not valid base64 (at character " + std::to_string(bad_at) + ")";
    out = std::move(*bytes);
    return {};
  }
  return "\"encoding\" must be \"utf-8\" or \"base64\", got \"" + encoding + "\"";
}

namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int sextet(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;  // '-' and '_': the URL-safe alphabet
  if (c == '/' || c == '_') return 63;
  return -1;
}
}  // namespace

std::optional<std::string> base64_decode(std::string_view text, size_t* bad_at) {
  size_t end = text.size();
  while (end > 0 && text.size() - end < 2 && text[end - 1] == '=') --end;
  // Padding, when present, makes the length a multiple of 4; one leftover character cannot
  // encode a byte.
  bool padded = end != text.size();
  if ((padded && text.size() % 4 != 0) || end % 4 == 1) {
    if (bad_at) *bad_at = end;
    return std::nullopt;
  }
  std::string out;
  out.reserve(end / 4 * 3 + 2);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < end; ++i) {
    int v = sextet(text[i]);
    if (v < 0) {
      if (bad_at) *bad_at = i;
      return std::nullopt;
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t n = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out.push_back(kAlphabet[(n >> s) & 63]);
  }
  if (size_t left = bytes.size() - i; left) {
    uint32_t n = uint8_t(bytes[i]) << 16;
    if (left == 2) n |= uint8_t(bytes[i + 1]) << 8;
    out.push_back(kAlphabet[(n >> 18) & 63]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(left == 2 ? kAlphabet[(n >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

bool same_secret(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;  // the length is not the secret
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace tcpms::admin
