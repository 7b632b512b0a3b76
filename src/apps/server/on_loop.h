// Runs a function on a loop's thread and waits for it: main's thread uses it during the
// upgrade handover, where each step needs the loop's answer before the next.
#pragma once

#include <future>

#include "tcpms/event_loop.h"

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

}  // namespace tcpms::app
