// The admin request framer against arbitrary bytes: fed whole and in two pieces, it must
// agree with itself, never claim a request longer than its input, and never accept more body
// than the limit.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "admin/http_framer.h"

using namespace tcpms::admin;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  FramerLimits lim;
  lim.max_head_bytes = 512;
  lim.max_body_bytes = 256;
  FramerState whole;
  FrameResult a = frame_request(text, whole, lim);
  if (a.status == FrameStatus::kComplete && a.request_bytes > size) std::abort();
  if (a.status == FrameStatus::kComplete && a.request_bytes > lim.max_head_bytes + 2 * lim.max_body_bytes + (64 << 10) + 2100)
    std::abort();
  // Incrementally: the same verdict once all bytes are in.
  FramerState split;
  FrameResult b{};
  size_t cut = size / 2;
  b = frame_request(text.substr(0, cut), split, lim);
  if (b.status == FrameStatus::kNeedMore) b = frame_request(text, split, lim);
  if (b.status != FrameStatus::kNeedMore && a.status != FrameStatus::kNeedMore) {
    // A complete request seen early stays complete with the same length.
    if (a.status == FrameStatus::kComplete && b.status == FrameStatus::kComplete &&
        a.request_bytes != b.request_bytes)
      std::abort();
  }
  return 0;
}
