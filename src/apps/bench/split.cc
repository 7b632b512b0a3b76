#include "split.h"

#include <algorithm>

namespace tcpms::benchapp {

Share split_share(const Share& whole, int parts, int index) {
  Share s;
  parts = std::max(parts, 1);
  const int64_t base = whole.count / parts;
  const int64_t extra = whole.count % parts;
  s.count = base + (index < extra ? 1 : 0);
  s.offset = whole.offset + base * index + std::min<int64_t>(index, extra);
  s.rate = whole.rate / parts;
  s.max_pending = std::max<int64_t>(whole.max_pending / parts, 1);
  s.unlimited = whole.unlimited;
  return s;
}

int processes_needed(int64_t peak_connections, int64_t nofile) {
  const int64_t per_process = nofile - kReservedFds;
  if (nofile <= 0 || per_process <= 0 || peak_connections <= per_process) return 1;
  return static_cast<int>((peak_connections + per_process - 1) / per_process);
}

}  // namespace tcpms::benchapp
