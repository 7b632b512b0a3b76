// The running server's side of the upgrade handover (SIGUSR2; docs/upgrade.md): starts its
// successor, hands it the listening sockets, then every connection that can move, loop by
// loop, in batches; keeps serving whatever was not taken.
//
// Runs on main's thread (the signal loop), which waits for each answer with a deadline; the
// loops keep serving meanwhile, and only the connections of the batch in flight are parked.
// What is never done: drop a connection. A connection is released here only after the
// successor said it took it (from handover version 4: only after it answered Done, before
// which it serves none of them); anything parked and not confirmed is resumed.
//
// Thread rules: main's thread only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tcpms/server.h"
#include "tcpms/unique_fd.h"

namespace tcpms::app {

struct GiverConfig {
  std::string binary;              // the successor's program
  std::vector<std::string> argv;   // its command line
  std::string protocol;            // "echo", "mqtt": the successor must serve the same
  size_t client_listeners = 0;     // listeners 0..n-1 are the clients' (others: internal)
  uint32_t timeout_ms = 60000;     // per answer
  size_t batch = 200;
  // The protocol's state on no connection (MQTT: offline sessions, retained messages), as
  // State frame items, collected once every connection has moved (input held); unset: none.
  // Needs handover version 2: a successor speaking only 1 is refused before anything moves.
  std::function<std::vector<std::string>()> state_items;
  // Runs once every loop holds its input, before the first connection is parked; "" or why
  // the handover must stop (everything resumes). Worker processes: the mesh's drain.
  std::function<std::string()> after_hold;
  // Runs once every connection and the state were taken, before Done; "" or why the handover
  // must stop (everything resumes, from handover version 4 also what was taken). Worker
  // processes: every worker's pair must be this far (the supervisor decides).
  std::function<std::string()> before_commit;
  // Runs as soon as the commit is answered (nothing can come back any more), before the
  // connections the successor took are let go here: what it must have at once (the store).
  std::function<void()> after_commit;
};

struct GiverOutcome {
  bool completed = false;      // the successor has the listeners and said Done
  pid_t successor = -1;        // still running (completed, or it holds connections it took)
  size_t handed = 0;           // connections the successor took
  size_t refused = 0;          // connections it did not take (served on here)
  size_t state_items = 0;      // GiverConfig::state_items sent
  std::string error;           // why it stopped early, if it did
};

// `before_done` runs just before the final Done frame (the old process lets go of what the
// new one must bind itself: the admin port). With `channel` (worker processes: the
// supervisors set it up) the successor is already running on its other end and is not ours
// to start or stop; without it, `config.binary` is started.
GiverOutcome give_everything(Server& server, const GiverConfig& config,
                             const std::function<void()>& before_done, UniqueFd channel = {});

}  // namespace tcpms::app
