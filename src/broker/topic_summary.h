// TopicSummary: a few hundred bytes per loop that other loops read to skip it for a publish it
// cannot match (the "small shared summary" of docs/mqtt.md). A filter is summarized by its
// first two levels:
//   "+/..." or "#"            -> a count of root wildcards (matches every non-$ topic)
//   "a", "a/+...", "a/#"      -> bit A(a)
//   "a/b", "a/b/..."          -> bit B(a, b)
// and a topic "t1/t2/..." may match only if root wildcards exist (and t1 is not a $-topic
// [MQTT-4.7.2-1]), or bit A(t1) or bit B(t1, t2) is set. Bits are Bloom-style (4096 of them):
// a false positive costs one needless task, never a lost message. So a publish to
// "devices/<id>/cmd" is posted only to the loop(s) holding that device's subscription.
//
// Thread rules: add/remove on the owning loop's thread; may_match from any thread (relaxed
// atomics: a publish racing a subscribe on another loop may miss it, as it may miss it anyway).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

namespace tcpms::broker {

class TopicSummary {
 public:
  static constexpr size_t kBits = 4096;

  // `l1`, `l2`: the filter's first two levels (`l2` empty and `has_l2` false for one level).
  void add(std::string_view l1, bool has_l2, std::string_view l2) { change(l1, has_l2, l2, +1); }
  void remove(std::string_view l1, bool has_l2, std::string_view l2) { change(l1, has_l2, l2, -1); }
  bool may_match(std::string_view topic) const noexcept;

 private:
  static size_t bit_a(std::string_view l1) noexcept;
  static size_t bit_b(std::string_view l1, std::string_view l2) noexcept;
  void change(std::string_view l1, bool has_l2, std::string_view l2, int delta);
  bool test(size_t bit) const noexcept {
    return (bits_[bit / 64].load(std::memory_order_relaxed) >> (bit % 64)) & 1;
  }

  std::array<std::atomic<uint64_t>, kBits / 64> bits_{};
  std::atomic<uint32_t> root_wildcards_{0};
  std::array<uint32_t, kBits> counts_{};  // owner thread only
};

}  // namespace tcpms::broker
