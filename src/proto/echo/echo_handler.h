// The echo protocol: every byte received is sent back, in order, on the same connection.
// It holds no per-connection state, so an idle echo connection costs only the engine's slot.
#pragma once

#include "tcpms/connection.h"
#include "tcpms/handler.h"

namespace tcpms::echo {

class EchoHandler final : public Handler {
 public:
  DataResult on_data(Connection& conn, ByteView data) override {
    // If the peer does not read, the engine queues the remainder and pauses reading from it
    // past the high-water mark, so a slow reader cannot make us buffer without bound.
    conn.send(data);
    return {data.size(), Action::kKeep};
  }
  // No state of its own: a connection moves to a new process with only the engine's bytes.
  bool export_state(Connection&, std::string&) override { return true; }
  bool import_state(Connection&, ByteView state) override { return state.empty(); }
};

}  // namespace tcpms::echo
