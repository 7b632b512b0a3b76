// One HTTP/1.1 response, as a worker's admin API writes it, read back by the front door
// (front_door.h). The bytes come from another process, so this is a parser like any other:
// pure, bounded, fuzzed (tests/fuzz/admin_http_reply_fuzz.cc).
//
//   "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
//
// The workers answer with Content-Length (cpp-httplib's set_content) and close the
// connection after the answer, so a body without Content-Length runs to the end of the
// bytes. Chunked bodies are refused: nothing on our side sends them.
//
// Thread rules: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tcpms::admin {

struct HttpReply {
  int status = 0;
  std::string body;
  // The headers worth passing on to the operator (Content-Type, Allow, Retry-After,
  // WWW-Authenticate), as they came.
  std::vector<std::pair<std::string, std::string>> headers;

  std::string header(std::string_view name) const;  // "" when absent
};

// The response in `bytes` (all of it: the connection has closed). nullopt, with `error` set,
// when it is not a complete HTTP/1.x response.
std::optional<HttpReply> parse_http_reply(std::string_view bytes, std::string* error = nullptr);

}  // namespace tcpms::admin
