#include "admin/http_framer.h"

#include <algorithm>

namespace tcpms::admin {
namespace {

constexpr std::string_view kCrlf = "\r\n";
constexpr size_t kMaxChunkLine = 1024;  // hex size plus chunk extensions
// Chunk framing a chunked body may add to its decoded size: without a bound, one-byte chunks
// with long extensions would buffer a thousand times the body limit.
constexpr size_t kMaxChunkOverhead = 64 << 10;

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool same_word(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

FrameResult error(int status, std::string_view reason) {
  FrameResult r;
  r.status = FrameStatus::kError;
  r.http_status = status;
  r.reason = reason;
  return r;
}

FrameResult complete(size_t bytes) {
  FrameResult r;
  r.status = FrameStatus::kComplete;
  r.request_bytes = bytes;
  return r;
}

// Decides how the body is framed once the head is known; an error result, or kNeedMore.
FrameResult read_head(std::string_view head, FramerState& st, const FramerLimits& lim) {
  bool have_length = false;
  uint64_t length = 0;
  bool chunked = false;
  bool have_te = false;
  // Every header line after the request line.
  size_t pos = head.find(kCrlf) + 2;
  while (pos + 2 <= head.size()) {
    size_t end = head.find(kCrlf, pos);
    std::string_view line = head.substr(pos, end - pos);
    pos = end + 2;
    if (line.empty()) break;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;  // cpp-httplib's call
    std::string_view name = line.substr(0, colon);
    std::string_view value = trim(line.substr(colon + 1));
    if (same_word(name, "content-length")) {
      uint64_t v = 0;
      if (value.empty() || value.size() > 19) return error(400, "bad Content-Length");
      for (char c : value) {
        if (c < '0' || c > '9') return error(400, "bad Content-Length");
        v = v * 10 + static_cast<uint64_t>(c - '0');
      }
      if (have_length && v != length) return error(400, "two different Content-Length headers");
      have_length = true;
      length = v;
    } else if (same_word(name, "transfer-encoding")) {
      if (have_te || !same_word(value, "chunked"))
        return error(501, "only Transfer-Encoding: chunked is supported");
      have_te = chunked = true;
    }
  }
  if (have_length && chunked)
    return error(400, "Content-Length together with Transfer-Encoding");
  if (have_length && length > lim.max_body_bytes) return error(413, "request body too large");
  st.content_length = length;
  st.body = chunked ? FramerState::Body::kChunked
                    : (length > 0 ? FramerState::Body::kLength : FramerState::Body::kNone);
  st.chunk_at = st.head_end;
  FrameResult r;
  if (st.body != FramerState::Body::kNone) {
    HeaderValue expect = find_header(head, "expect");
    r.wants_continue = expect.at != std::string_view::npos &&
                       same_word(head.substr(expect.at, expect.size), "100-continue");
  }
  return r;
}

// Chunks from st.chunk_at on: complete, an error, or kNeedMore with the progress kept.
FrameResult read_chunks(std::string_view buf, FramerState& st, const FramerLimits& lim) {
  const size_t raw_limit = lim.max_body_bytes + std::max(kMaxChunkOverhead, lim.max_body_bytes);
  for (;;) {
    if (std::min(buf.size(), st.chunk_at + kMaxChunkLine + 2) - st.head_end > raw_limit)
      return error(413, "request body too large (chunk framing included)");
    size_t line_end = buf.find(kCrlf, st.chunk_at);
    if (line_end == std::string_view::npos) {
      if (buf.size() - st.chunk_at > kMaxChunkLine) return error(400, "chunk size line too long");
      return {};
    }
    if (line_end - st.chunk_at > kMaxChunkLine) return error(400, "chunk size line too long");
    std::string_view line = buf.substr(st.chunk_at, line_end - st.chunk_at);
    uint64_t size = 0;
    size_t digits = 0;
    for (; digits < line.size(); ++digits) {
      char c = lower(line[digits]);
      int v = c >= '0' && c <= '9' ? c - '0' : (c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1);
      if (v < 0) break;
      if (size > (lim.max_body_bytes >> 4) + 1) return error(413, "request body too large");
      size = size * 16 + static_cast<uint64_t>(v);
    }
    std::string_view rest = trim(line.substr(digits));
    if (digits == 0 || (!rest.empty() && rest.front() != ';')) return error(400, "bad chunk size");
    if (size == 0) {
      // The last chunk; trailers are not accepted (cpp-httplib does not read them either).
      if (buf.size() < line_end + 4) return {};
      if (buf.substr(line_end + 2, 2) != kCrlf) return error(400, "chunked trailers are not supported");
      return complete(line_end + 4);
    }
    if (st.decoded + size > lim.max_body_bytes) return error(413, "request body too large");
    size_t data_end = line_end + 2 + static_cast<size_t>(size);
    if (buf.size() < data_end + 2) return {};
    if (buf.substr(data_end, 2) != kCrlf) return error(400, "chunk data not followed by CRLF");
    st.decoded += size;
    st.chunk_at = data_end + 2;
  }
}

}  // namespace

HeaderValue find_header(std::string_view head, std::string_view name) {
  size_t pos = head.find(kCrlf);
  while (pos != std::string_view::npos && pos + 2 < head.size()) {
    pos += 2;
    size_t end = head.find(kCrlf, pos);
    if (end == std::string_view::npos || end == pos) break;
    std::string_view line = head.substr(pos, end - pos);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos && same_word(line.substr(0, colon), name)) {
      std::string_view value = trim(line.substr(colon + 1));
      return {value.empty() ? pos + colon + 1 : static_cast<size_t>(value.data() - head.data()),
              value.size()};
    }
    pos = end;
  }
  return {};
}

FrameResult frame_request(std::string_view buf, FramerState& st, const FramerLimits& lim) {
  if (st.head_end == 0) {
    size_t from = st.scanned >= 3 ? st.scanned - 3 : 0;
    size_t end = buf.find("\r\n\r\n", from);
    if (end == std::string_view::npos) {
      if (buf.size() > lim.max_head_bytes) return error(431, "request head too large");
      st.scanned = buf.size();
      return {};
    }
    if (end + 4 > lim.max_head_bytes) return error(431, "request head too large");
    st.head_end = end + 4;
    FrameResult head = read_head(buf.substr(0, st.head_end), st, lim);
    if (head.status == FrameStatus::kError) return head;
    if (st.body == FramerState::Body::kNone) return complete(st.head_end);
    if (head.wants_continue && buf.size() == st.head_end) return head;
  }
  switch (st.body) {
    case FramerState::Body::kNone:
      return complete(st.head_end);
    case FramerState::Body::kLength:
      if (buf.size() - st.head_end >= st.content_length)
        return complete(st.head_end + static_cast<size_t>(st.content_length));
      return {};
    case FramerState::Body::kChunked:
      return read_chunks(buf, st, lim);
    case FramerState::Body::kUnknown:
      break;
  }
  return {};
}

}  // namespace tcpms::admin
