// JSON in and out of the admin API, with one error shape everywhere: {"error": "..."} and a
// 4xx status. Also the payload encodings the push API accepts (UTF-8 text or base64).
//
// Thread rules: pure functions; called on the admin HTTP threads.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace tcpms::admin {

void reply_json(httplib::Response& res, int status, const nlohmann::json& body);
void reply_error(httplib::Response& res, int status, std::string_view message);

// The request body as a JSON object. On failure answers 400 ({"error": "bad JSON at byte 12:
// ..."}, or "expected a JSON object") and returns nullopt.
std::optional<nlohmann::json> parse_json_object(const httplib::Request& req,
                                                httplib::Response& res);

// Checks that `body` has only the `allowed` fields; else the error names the first other one.
std::string only_fields(const nlohmann::json& body, std::initializer_list<std::string_view> allowed);

// Decodes the "payload" field of `body` by its "encoding" ("utf-8", the default, or "base64")
// into `out`. Returns "" or the reason (missing, not a string, bad base64 at char N).
std::string decode_payload(const nlohmann::json& body, std::string& out);

// RFC 4648 base64 (padding optional, no whitespace). nullopt on a bad character or length;
// `bad_at` gets the offending position.
std::optional<std::string> base64_decode(std::string_view text, size_t* bad_at = nullptr);
std::string base64_encode(std::string_view bytes);

// Constant-time comparison for tokens (no early exit on the first differing byte).
bool same_secret(std::string_view a, std::string_view b) noexcept;

}  // namespace tcpms::admin
