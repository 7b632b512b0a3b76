// Where one HTTP/1.1 request ends in the bytes received so far, and whether it is acceptable,
// before any of it is handed to cpp-httplib. The admin server reads requests on its event loop
// and gives a worker thread only a request that is entirely in memory, so a slow or silent
// client costs a buffer, never a thread; this is what decides "entirely".
//
//   FramerState st;                       // one per request, kept between calls
//   FrameResult r = frame_request(buffered, st, limits);
//   kNeedMore: read on (r.wants_continue: answer "100 Continue" now)
//   kComplete: the request is buffered[0, r.request_bytes)
//   kError:    answer r.http_status with r.reason and close
//
// Checked here, so that nothing larger than the limits is ever buffered: the head's size
// (431), the declared Content-Length and the decoded size of a chunked body (413, as they
// arrive), chunk framing (400), Transfer-Encoding other than chunked (501), Content-Length
// together with Transfer-Encoding or two different Content-Lengths (400: the request could be
// read two ways, RFC 9112 §6.3). The request line and header syntax are cpp-httplib's job.
//
// Thread rules: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tcpms::admin {

struct FramerLimits {
  size_t max_head_bytes = 16 << 10;  // request line and headers (and a chunked body's trailers)
  size_t max_body_bytes = 1 << 20;   // the body as decoded (chunk framing not counted)
};

// Progress through one request; reset it (= {}) once a request is complete.
struct FramerState {
  enum class Body : uint8_t { kUnknown, kNone, kLength, kChunked };
  size_t scanned = 0;        // head bytes already searched for its end
  size_t head_end = 0;       // 0 until the head is complete, then the offset past it
  Body body = Body::kUnknown;
  uint64_t content_length = 0;
  size_t chunk_at = 0;       // chunked: where the next chunk-size line starts
  uint64_t decoded = 0;      // chunked: body bytes so far
  bool in_trailers = false;  // chunked: the last chunk came, trailers follow
};

enum class FrameStatus : uint8_t { kNeedMore, kComplete, kError };

struct FrameResult {
  FrameStatus status = FrameStatus::kNeedMore;
  size_t request_bytes = 0;     // kComplete
  int http_status = 0;          // kError: 400, 413, 431 or 501
  std::string_view reason;      // kError: a sentence for the answer (static text)
  bool wants_continue = false;  // kNeedMore: the head just completed with "Expect: 100-continue"
};

FrameResult frame_request(std::string_view buffered, FramerState& state, const FramerLimits& limits);

// Offset of the value of the first header `name` (case-insensitive) in `head` (which ends with
// its blank line), and its length without surrounding blanks; npos when absent.
struct HeaderValue {
  size_t at = std::string_view::npos;
  size_t size = 0;
};
HeaderValue find_header(std::string_view head, std::string_view name);

}  // namespace tcpms::admin
