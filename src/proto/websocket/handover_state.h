// A WebSocket receiver's state as it travels in the upgrade handover (docs/upgrade.md, "TLS
// and WebSocket connections"): a ReceiverState (frame.h) and the bytes its caller kept for it
// (a frame header or control frame a read cut short), out of one process and into the one
// replacing it.
//
// The import trusts nothing: the state comes from another process, possibly another release.
// It accepts exactly the states receive() can leave behind, so the receiver (and the
// engine's stash handling, src/net/transport.cc websocket_input, which relies on a kept
// frame being incomplete) meets nothing it could not have made itself. Fuzzed with the
// receiver behind it (tests/fuzz/websocket_handover_fuzz.cc).
//
// Thread rules: pure functions.
#pragma once

#include "handover/handover_frame.h"
#include "tcpms/bytes.h"
#include "websocket/frame.h"

namespace tcpms::ws {

// `stash`: the bytes kept for `state` (empty for none).
net::handover::WebSocketState export_state(const ReceiverState& state, ByteView stash);

// Null with `state` filled in when `s` is a state receive() can leave behind on a connection
// whose frames are masked as `expect_masked` says; otherwise what is inconsistent, and `state`
// untouched. The kept bytes are s.stash, for the caller to keep as it keeps its own.
const char* import_state(const net::handover::WebSocketState& s, bool expect_masked,
                         ReceiverState& state) noexcept;

}  // namespace tcpms::ws
