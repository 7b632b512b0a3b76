// mqtt-storm: N MQTT clients that hold their connections and reconnect on their own when the
// server drops them, as real devices do after a server crash; it measures how the server
// takes the reconnect storm. The driver of one event loop (see docs/bench.md, "mqtt-storm").
//
// Client i of the run (global number) connects as client_id(run, "-", i) (MQTT 3.1.1, clean
// session, no keep-alive) and subscribes to tb/<run>/storm/<i> at QoS 0; the same id and topic
// on every reconnect.
//
// Stages, each loop on its own:
//   1. setup: connect and subscribe every client (at most --max-pending attempts in flight);
//      a failed attempt is retried (counted as setup_attempt_fail.<cause>). Once all of the
//      loop's clients are subscribed it writes "<clients>" to <--ready-file>.<first client
//      number> (through a rename, so a reader never sees half a file): the script that kills
//      the server sums these files.
//   2. hold: nothing is sent; the loop waits for its connections to drop.
//   3. storm: a client whose connection drops reconnects at once (no pacing, no cap: the
//      worst case; --storm-max-pending caps the attempts in flight, for when the bench cannot
//      keep up: a loop that starts 18,000 connects in one go sends their CONNECTs seconds
//      late, and a server's CONNECT deadline closes them, which real devices, each with its
//      own CPU, would not cause), sends CONNECT and, once accepted, SUBSCRIBE; back at the SUBACK
//      A failed attempt (refused, reset, timed out, CONNACK refusal...) is counted as
//      attempt_fail.<cause> and retried after an exponential backoff with jitter
//      (--retry-min doubling up to --retry-max, each delay drawn in [d/2, d]), as client
//      libraries do. The loop is done once every client has dropped and is back, or
//      --storm-timeout seconds after its first drop (clients not back are failures).
// A failed attempt is not a failure of the run: a client that comes back in the end is a
// success. Failures (fail.<cause>) are clients that were never subscribed, never dropped, or
// not back in time.
//
// Times: drop and back instants are recorded as CLOCK_BOOTTIME nanoseconds since the parent
// bench process started (the same epoch in every worker process), so the merged histograms'
// min and max give the first drop and the last return across the whole run.
//
// Threads: the loop's thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "workload.h"

namespace tcpms::benchapp {

struct StormOptions {
  double retry_min_s = 0.1;      // first backoff after a failed attempt
  double retry_max_s = 5;        // backoff cap
  double storm_timeout_s = 120;  // give up on clients not back this long after the first drop
  int64_t storm_max_pending = 0; // reconnect attempts in flight per process (0: no cap)
  std::string ready_file;        // prefix of the per-loop "all subscribed" files (empty: none)
};

// Start of the run on CLOCK_BOOTTIME, in ns: the parent bench process's start time, which
// every worker process reads the same from /proc (0 when it cannot be read).
uint64_t storm_epoch_ns(const CommonOptions& c);

std::unique_ptr<LoopDriver> make_storm_driver(const DriverContext& ctx, const StormOptions& o);

}  // namespace tcpms::benchapp
