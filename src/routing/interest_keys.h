// Interest keys: how a topic filter and a topic map to the slots of the interest bitmaps
// (local_interest.h, remote_interest.h).
//
// A filter without wildcards is one key: its text. A filter with wildcards has a shape — how
// many levels it has, which of them are "+", whether it ends in "#" — and is keyed by its shape
// and its literal levels ("dev/+/cmd": shape 3 levels with "+" at 1, literals "dev", "cmd").
// A topic is looked up by its own text (the exact filters) and, for every shape some peer
// uses that fits its length, by that shape and the topic's levels where the shape has
// literals. The shapes in use are few (a deployment has a handful of subscription patterns),
// so a publish costs one key per shape plus one, and a filter like "dev/<id>/+" never
// matches another client's topics. The answer may say yes for a peer with no match (a false
// positive costs one message the peer drops) but never no for a peer with one.
//
// A shape fits in 64 bits: levels (6 bits), "#" (1 bit), a bit per "+" level (57 levels).
// A filter with more levels than that is keyed as if it were "#" (it matches everything for
// the purpose of routing; the receiving peer's tree decides).
//
// A key is a 64-bit hash; its slots in a bitmap of `slots` bits are (h1 + i * h2) scaled to
// [0, slots) for i < hashes (double hashing, Kirsch and Mitzenmacher). The hash is fixed (not
// std::hash), so every process, of any build, computes the same slots.
//
// Thread rules: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tcpms::routing {

using Shape = uint64_t;  // 0: no wildcard
inline constexpr uint32_t kMaxShapeLevels = 57;
inline constexpr Shape kShapeHashBit = uint64_t{1} << 6;

inline uint32_t shape_levels(Shape s) noexcept { return static_cast<uint32_t>(s & 63); }
inline bool shape_has_hash(Shape s) noexcept { return (s & kShapeHashBit) != 0; }
inline bool shape_plus_at(Shape s, uint32_t level) noexcept { return (s >> (7 + level)) & 1; }
// The shape "#": matches any topic.
inline constexpr Shape kShapeEverything = 1 | kShapeHashBit;

struct FilterKey {
  uint64_t hash = 0;
  Shape shape = 0;  // 0: an exact filter
};

uint64_t key_hash(std::string_view text, uint64_t seed) noexcept;
FilterKey filter_key(std::string_view filter) noexcept;
uint64_t exact_topic_key(std::string_view topic) noexcept;
uint64_t shape_key(Shape shape, std::string_view literals) noexcept;

// The i-th slot of key `h` in a bitmap of `slots` bits.
inline uint32_t key_slot(uint64_t h, uint32_t i, uint32_t slots) noexcept {
  const uint32_t h1 = static_cast<uint32_t>(h);
  const uint32_t h2 = static_cast<uint32_t>(h >> 32) | 1u;
  const uint32_t x = h1 + i * h2;
  return static_cast<uint32_t>((static_cast<uint64_t>(x) * slots) >> 32);
}

// Splits `topic` into levels (into `levels`, views into the topic); false if it has more
// levels than `max` (then only the exact key applies... and every shape with "#" at level 0).
bool split_levels(std::string_view topic, std::string_view* levels, uint32_t max, uint32_t& count);

// The key of `shape` for a topic already split into `levels`, or nullopt-like false when the
// shape does not fit the topic's length.
bool topic_shape_key(Shape shape, const std::string_view* levels, uint32_t count,
                     std::string& scratch, uint64_t& key);

}  // namespace tcpms::routing
