// What every process of an mqtt-reach run agrees on without talking: the topics of client i,
// the random K clients the admin API pushes to, and the reports the loops exchange through the
// broker (mqtt_reach_driver.h).
//
// Threads: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tcpms::benchapp {

// Payload sequence numbers (mqtt_payload.h's `seq` field) of the messages a client gets.
inline constexpr uint32_t kReachPublishSeq = 0;  // published to its topic
inline constexpr uint32_t kReachPushSeq = 1;     // pushed by client id through the admin API
// The stream stage's message m of a loop (stream_ledger.h) has kReachStreamSeq + m.
inline constexpr uint32_t kReachStreamSeq = 2;

// "reach/<client id>": the topic client `client_id` subscribes to and is published to.
std::string reach_topic(std::string_view client_id);
// "reach/<client id>/push": the topic of the message the admin API pushes to it (no
// subscription needed: a push by id reaches the client whatever it subscribed).
std::string reach_push_topic(std::string_view client_id);

// K distinct client numbers out of [0, n), sorted, drawn with a PRNG seeded by `seed` (Floyd's
// algorithm: O(K) whatever n). Every process computes the same set from the same seed.
// K > n gives all n.
std::vector<uint64_t> choose_push_targets(uint64_t seed, uint64_t n, uint64_t k);

// How many of `sorted` lie in [first, first + count).
uint64_t count_in_range(const std::vector<uint64_t>& sorted, uint64_t first, uint64_t count);

// A loop's report once its clients got (or gave up on) their published message: its client
// count, how many got it, and the CLOCK_MONOTONIC times its publishing began and its last
// delivery arrived. Sent as text in a retained message.
struct ReachReport {
  uint64_t clients = 0;
  uint64_t delivered = 0;
  uint64_t first_publish_ns = 0;
  uint64_t last_delivery_ns = 0;
  friend bool operator==(const ReachReport&, const ReachReport&) = default;
};
std::string format_report(const ReachReport& r);
std::optional<ReachReport> parse_report(std::string_view text);

}  // namespace tcpms::benchapp
