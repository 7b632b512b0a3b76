#include "admin/http_reply.h"

#include <charconv>
#include <strings.h>

namespace tcpms::admin {
namespace {

constexpr std::string_view kKept[] = {"Content-Type", "Allow", "Retry-After", "WWW-Authenticate"};

bool same_name(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::nullopt_t fail(std::string* error, const char* why) {
  if (error) *error = why;
  return std::nullopt;
}

}  // namespace

std::string HttpReply::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (same_name(k, name)) return v;
  return {};
}

std::optional<HttpReply> parse_http_reply(std::string_view bytes, std::string* error) {
  const size_t head_end = bytes.find("\r\n\r\n");
  if (head_end == std::string_view::npos) return fail(error, "the answer ends inside its head");
  std::string_view head = bytes.substr(0, head_end + 2);  // every line ends with CRLF
  std::string_view rest = bytes.substr(head_end + 4);

  const size_t line_end = head.find("\r\n");
  std::string_view status_line = head.substr(0, line_end);
  head.remove_prefix(line_end + 2);
  // "HTTP/1.1 200 OK": the version, a space, three digits, then a space or the end.
  if (status_line.size() < 12 || !status_line.starts_with("HTTP/1.") || status_line[8] != ' ' ||
      (status_line.size() > 12 && status_line[12] != ' '))
    return fail(error, "not an HTTP/1.x status line");
  HttpReply reply;
  auto [end, ec] = std::from_chars(status_line.data() + 9, status_line.data() + 12, reply.status);
  if (ec != std::errc() || end != status_line.data() + 12 || reply.status < 100 || reply.status > 599)
    return fail(error, "bad status code");

  std::optional<size_t> length;
  while (!head.empty()) {
    const size_t eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    head.remove_prefix(eol + 2);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return fail(error, "a header line without a name");
    std::string_view name = line.substr(0, colon), value = trim(line.substr(colon + 1));
    if (same_name(name, "Content-Length")) {
      size_t n = 0;
      auto [p, e] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (e != std::errc() || p != value.data() + value.size() || value.empty() ||
          (length && *length != n))
        return fail(error, "bad Content-Length");
      length = n;
    } else if (same_name(name, "Transfer-Encoding")) {
      return fail(error, "Transfer-Encoding is not expected from a worker");
    }
    for (std::string_view kept : kKept)
      if (same_name(name, kept)) reply.headers.emplace_back(std::string(kept), std::string(value));
  }
  if (length) {
    if (rest.size() < *length) return fail(error, "the answer ends inside its body");
    rest = rest.substr(0, *length);
  }
  reply.body = std::string(rest);
  return reply;
}

}  // namespace tcpms::admin
