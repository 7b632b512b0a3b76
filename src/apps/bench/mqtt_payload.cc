#include "mqtt_payload.h"

#include <cstring>

#include <fmt/format.h>

#include "message.h"

namespace tcpms::benchapp {

void write_bench_payload(MutableByteView out, const BenchPayload& p) noexcept {
  write_message(out, p.publisher, p.seq, p.stamp);
}

std::optional<BenchPayload> read_bench_payload(ByteView in) noexcept {
  if (in.size() < kMessageHeaderBytes) return std::nullopt;
  BenchPayload p;
  std::memcpy(&p.publisher, in.data(), 4);
  std::memcpy(&p.seq, in.data() + 4, 4);
  auto stamp = check_message(in, p.publisher, p.seq);
  if (!stamp) return std::nullopt;
  p.stamp = *stamp;
  return p;
}

SeqVerdict check_sequence(uint32_t& next, uint32_t seq, uint32_t& gap) noexcept {
  gap = 0;
  if (seq == next) {
    ++next;
    return SeqVerdict::kInOrder;
  }
  if (seq > next) {
    gap = seq - next;
    next = seq + 1;
    return SeqVerdict::kAfterGap;
  }
  return SeqVerdict::kDuplicate;
}

std::string client_id(uint32_t run, std::string_view role, uint64_t n) {
  return fmt::format("tb{:x}{}{}", run, role, n);
}

uint64_t p2p_target(uint64_t i, uint64_t n) noexcept { return (i + n / 2) % n; }
uint64_t p2p_source(uint64_t i, uint64_t n) noexcept { return (i + n - n / 2) % n; }

}  // namespace tcpms::benchapp
