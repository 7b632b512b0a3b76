// Runs a function on a loop's thread and waits for it, or runs what was posted to every loop:
// main's thread uses them during the upgrade handover, where each step needs the loops'
// answer before the next.
#pragma once

#include <future>

#include "tcpms/event_loop.h"
#include "tcpms/server.h"

namespace tcpms::app {

// False when the loop has stopped (the function did not run).
template <typename F>
bool run_on_loop(EventLoop& loop, F&& f) {
  std::promise<void> done;
  auto finished = done.get_future();
  if (!loop.post([&loop, &f, &done] {
        f(loop);
        done.set_value();
      }))
    return false;
  finished.wait();
  return true;
}

// Runs what was posted to the loops before the call, and what that posted in turn: once input
// is held, what was read before the hold reaches the sessions before any of them is parked.
// A round runs an empty task on each loop in turn, after everything queued there before it,
// so each round carries every task one hop further. Why three: a message from another
// process reaches its subscribers' sessions in two hops (the loop of its topic,
// Broker::deliver_remote; then its subscribers' loops, MqttHandler::route), and the third
// carries one more, such as a shared message passed on to the next member's loop because the
// member picked has left or is stalled (MqttHandler::dispatch_shared). A message passed on
// more often than that is not waited for.
inline void run_posted_hops(Server& server) {
  constexpr int kRounds = 3;
  for (int round = 0; round < kRounds; ++round)
    for (size_t i = 0; i < server.loop_count(); ++i) run_on_loop(server.loop(i), [](EventLoop&) {});
}

}  // namespace tcpms::app
