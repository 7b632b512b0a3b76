// How a protocol plugs into the engine (modelled on gnet's EventHandler).
//
// A Handler is created once per loop (by a HandlerFactory) and is only ever called on that
// loop's thread, so it needs no locks for per-loop state. It returns an Action instead of
// closing from inside a callback; the engine owns sockets, buffers and timers, the protocol
// owns its state machine, the codec owns the bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "tcpms/bytes.h"

namespace tcpms {

class Connection;
class EventLoop;

enum class Action : uint8_t {
  kKeep,             // carry on
  kClose,            // close now; unsent output is discarded
  kCloseAfterFlush,  // stop reading, send what is queued, then close
};

// Why a connection ended; counted per loop (LoopStats::closed_by_reason) and exported.
enum class CloseReason : uint8_t {
  kPeerClosed,      // orderly EOF from the peer (after our output was flushed)
  kPeerReset,       // ECONNRESET / EPIPE
  kIoError,         // any other socket error
  kIdleTimeout,     // the connection's timer expired and the handler chose to close
  kProtocol,        // the handler returned kClose (bad input, protocol decision)
  kOutputOverflow,  // unsent output passed the hard limit (slow consumer)
  kInputOverflow,   // a partial frame grew past the input limit
  kKicked,          // closed by id from elsewhere (admin API, session takeover)
  kShutdown,        // server draining or stopping
  kConnectFailed,   // outbound connect did not complete
  kHandedOver,      // moved to the process that replaced this one (SIGUSR2, docs/upgrade.md)
  kCount
};

std::string_view close_reason_name(CloseReason r) noexcept;

// What on_data returns: how many bytes of `data` it consumed (whole frames), and what next.
// Unconsumed bytes are kept by the engine and presented again, followed by new bytes.
struct DataResult {
  size_t consumed = 0;
  Action action = Action::kKeep;
};

class Handler {
 public:
  virtual ~Handler() = default;

  // A connection was accepted (or an outbound connect completed).
  virtual Action on_open(Connection& conn) { return Action::kKeep; }

  // Bytes arrived. `data` is a view into the loop's shared read buffer (or the connection's
  // pending bytes followed by new ones) and is valid only during the call.
  virtual DataResult on_data(Connection& conn, ByteView data) = 0;

  // The peer sent FIN. The default answers what is queued, then closes. A handler that keeps
  // the connection (kKeep) is asked again once its reading resumes (resume_reading, or the
  // connection resumed or adopted in an upgrade handover): a FIN reads again as end of input.
  virtual Action on_peer_shutdown(Connection& conn) { return Action::kCloseAfterFlush; }

  // The connection's timer expired: no input consumed for its set_timeout, or its
  // set_deadline came.
  virtual Action on_timeout(Connection& conn) { return Action::kClose; }

  // Output that had been held back by backpressure drained below the low-water mark.
  virtual void on_writable(Connection& conn) {}

  // The server is draining: the default flushes and closes.
  virtual Action on_shutdown(Connection& conn) { return Action::kCloseAfterFlush; }

  // Last call for this connection: release per-connection state (Connection::user_data).
  virtual void on_close(Connection& conn, CloseReason reason) {}

  // How large a partial frame this handler's connections may keep; 0: the loop's
  // LoopConfig::input_limit_bytes. For a protocol whose frames are bounded differently from
  // the server's clients (links between worker processes beside MQTT clients). Asked only
  // when a connection keeps bytes, never per read of whole frames.
  virtual size_t input_limit_bytes() const noexcept { return 0; }

  // --- the upgrade handover (SIGUSR2; docs/upgrade.md) -----------------------------------
  // May this connection move to the process replacing this one, and with what state? Appends
  // the protocol's per-connection state to `state` and returns true; false keeps it here
  // until it closes (the default: a protocol opts in once it can rebuild its state).
  virtual bool export_state(Connection& conn, std::string& state) { return false; }
  // In the new process: the connection arrives with what export_state wrote. False refuses
  // it (the old process then serves it on); nothing was sent to the peer either way.
  virtual bool import_state(Connection& conn, ByteView state) { return false; }
  // In the old process: the new one took the connection. Release the per-connection state
  // without any of the protocol's goodbyes (it did not close: it moved). Instead of on_close.
  virtual void on_handed_over(Connection& conn) {}
  // In the old process: from `hold` true until false (a rollback), the handover is moving
  // connections and the protocol consumes no input on any of them (on_data returns 0; the
  // engine keeps the bytes, which travel as unread input). A protocol whose connections
  // affect each other (MQTT: a publish here, its subscriber moved) needs this; echo does not.
  // Once the handover is done it stays held: what did not move is closed.
  virtual void hold_input_for_handover(bool hold) {}
};

using HandlerFactory = std::function<std::unique_ptr<Handler>(EventLoop&)>;

}  // namespace tcpms
