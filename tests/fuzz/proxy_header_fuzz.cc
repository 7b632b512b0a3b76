// libFuzzer target for the PROXY header parser.
//
// Invariants checked (a violation aborts):
//  - parse() reads nothing outside the input (ASan); a complete header's size is inside the
//    input and at most kMaxHeaderBytes; a v1 header ends in CRLF;
//  - every proper prefix of a complete header is kNeedMore (no early decision, and the parser
//    never needs bytes after the header to decide);
//  - addresses are AF_INET or AF_INET6 exactly when has_addresses says so, and re-encoding
//    them and parsing again gives the same addresses.
#include <netinet/in.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "proxy/proxy_header.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

bool same(const sockaddr_storage& a, const sockaddr_storage& b) {
  size_t n = a.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  return a.ss_family == b.ss_family && std::memcmp(&a, &b, n) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tcpms;
  using namespace tcpms::proxy;
  ByteView in(reinterpret_cast<const std::byte*>(data), size);
  Result r = parse(in);
  if (r.status != Status::kComplete) return 0;
  const Header& h = r.header;
  check(h.size > 0 && h.size <= size && h.size <= kMaxHeaderBytes);
  if (h.version == 1) check(data[h.size - 2] == '\r' && data[h.size - 1] == '\n');
  for (size_t n : {size_t{0}, h.size / 2, h.size - 1}) {
    check(parse(in.first(n)).status == Status::kNeedMore);
  }
  if (!h.has_addresses) return 0;
  check(h.source.ss_family == AF_INET || h.source.ss_family == AF_INET6);
  check(h.source.ss_family == h.destination.ss_family);
  std::byte out[kMaxHeaderBytes];
  for (int v : {1, 2}) {
    size_t n = v == 1 ? encode_v1(h.source, h.destination, out) : encode_v2(h.source, h.destination, out);
    check(n > 0);
    Result again = parse(ByteView(out, n));
    check(again.status == Status::kComplete && again.header.size == n);
    check(same(again.header.source, h.source) && same(again.header.destination, h.destination));
  }
  return 0;
}
