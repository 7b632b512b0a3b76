#include "routing/interest_keys.h"

namespace tcpms::routing {
namespace {

constexpr uint64_t kExactSeed = 0x9e3779b97f4a7c15ull;
constexpr uint64_t kShapeSeed = 0xc2b2ae3d27d4eb4full;

inline uint64_t mix(uint64_t a, uint64_t b) noexcept {
  const unsigned __int128 r = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

inline uint64_t load_le(const char* p, size_t n) noexcept {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

}  // namespace

uint64_t key_hash(std::string_view s, uint64_t seed) noexcept {
  // Multiply-mix over 8-byte words (the wyhash idea); byte order fixed so every machine agrees.
  constexpr uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull,
                     k2 = 0x8ebc6af09c88c6e3ull;
  uint64_t h = mix(seed ^ k0, k1 ^ s.size());
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) h = mix(h ^ load_le(s.data() + i, 8), k1);
  h = mix(h ^ load_le(s.data() + i, s.size() - i), k2);
  return mix(h, k0 ^ k2);
}

uint64_t exact_topic_key(std::string_view topic) noexcept { return key_hash(topic, kExactSeed); }

uint64_t shape_key(Shape shape, std::string_view literals) noexcept {
  return key_hash(literals, kShapeSeed ^ mix(shape, kShapeSeed));
}

FilterKey filter_key(std::string_view filter) noexcept {
  Shape shape = 0;
  bool wildcard = false;
  uint32_t level = 0;
  std::string literals;
  size_t start = 0;
  for (;;) {
    const size_t slash = filter.find('/', start);
    const std::string_view l = filter.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (level >= kMaxShapeLevels) return {shape_key(kShapeEverything, {}), kShapeEverything};
    if (l == "#") {
      shape |= kShapeHashBit;
      wildcard = true;
    } else if (l == "+") {
      shape |= uint64_t{1} << (7 + level);
      wildcard = true;
    } else {
      if (!literals.empty() || level != 0) literals.push_back('/');
      literals.append(l);
    }
    ++level;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (!wildcard) return {exact_topic_key(filter), 0};
  shape |= level;
  return {shape_key(shape, literals), shape};
}

bool split_levels(std::string_view topic, std::string_view* levels, uint32_t max, uint32_t& count) {
  count = 0;
  size_t start = 0;
  for (;;) {
    const size_t slash = topic.find('/', start);
    if (count < max)
      levels[count] = topic.substr(
          start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    ++count;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return count <= max;
}

bool topic_shape_key(Shape shape, const std::string_view* levels, uint32_t count,
                     std::string& scratch, uint64_t& key) {
  const uint32_t n = shape_levels(shape);
  const bool hash = shape_has_hash(shape);
  // "#" matches zero or more levels, its parent included ("a/#" matches "a") [MQTT-4.7.1-2].
  if (hash ? count + 1 < n : count != n) return false;
  const uint32_t fixed = hash ? n - 1 : n;
  scratch.clear();
  for (uint32_t i = 0; i < fixed; ++i) {
    if (shape_plus_at(shape, i)) continue;
    if (!scratch.empty() || i != 0) scratch.push_back('/');
    scratch.append(levels[i]);
  }
  key = shape_key(shape, scratch);
  return true;
}

}  // namespace tcpms::routing
