// Connection: one TCP connection, as a handler sees it during a callback.
//
// Connections live in their loop's slab and are only touched on that loop's thread; other
// threads name them by ConnId and go through Server::send_to / EventLoop::post. The layout
// is kept small on purpose (about 72 bytes): an idle connection is this struct and nothing
// else; no buffer, no string, no std::function. Input and output buffers exist only while a
// partial frame or unsent output does, and are returned as soon as they empty.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "tcpms/bytes.h"
#include "tcpms/conn_id.h"
#include "tcpms/handler.h"
#include "tcpms/shared_bytes.h"
#include "tcpms/unique_fd.h"

namespace tcpms {

namespace net {
class LoopCore;
class OutQueue;
struct PendingInput;

// Intrusive hook for the loop's timer wheel (src/net/timer_wheel.h). Links are slot indices,
// not pointers: 16 bytes instead of 24, and stable across slab growth.
// Connections with a transport (TLS, WebSocket, PROXY header: src/net/transport.h) keep the
// handler's pointer here, first, so that user_data() stays one load and a branch.
struct TransportBase {
  void* user = nullptr;
};

struct TimerHook {
  uint32_t prev = 0;
  uint32_t next = 0;
  uint32_t deadline_tick = 0;
  uint16_t bucket = 0;  // 0: not in the wheel
};
}  // namespace net

class Connection {
 public:
  Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  ConnId id() const noexcept;
  EventLoop& loop() const noexcept { return *loop_; }
  int fd() const noexcept { return fd_.get(); }
  // errno of the failure that closed the connection (or failed its connect), else 0.
  int last_error() const noexcept { return last_error_; }
  bool open() const noexcept { return (flags_ & kOpen) != 0 && (flags_ & kClosing) == 0; }
  // Which of its loop's handlers serves it (EventLoop::handler).
  uint8_t handler_index() const noexcept { return handler_; }
  // Being handed to the process replacing this one (EventLoop::park_for_handover).
  bool parked() const noexcept { return (flags_ & kParked) != 0; }

  // --- output -----------------------------------------------------------------------------
  // Writes now; only what the kernel does not take is queued. False once the connection is
  // closing or failed (the bytes are dropped and the close is already scheduled).
  bool send(ByteView data);
  bool sendv(std::span<const ByteView> parts);
  // Writes `head` then `body`; if queued, `body` is kept by reference, not copied.
  bool send_shared(ByteView head, const SharedBytes& body);
  // Appends to the output queue and writes it before the loop next sleeps, so several
  // messages produced in one loop iteration leave in one write.
  bool enqueue(ByteView data);
  bool enqueue_shared(ByteView head, const SharedBytes& body);
  size_t pending_output_bytes() const noexcept;
  size_t pending_input_bytes() const noexcept;

  // --- flow control and timers ------------------------------------------------------------
  void pause_reading() noexcept;   // e.g. rate limits; resume_reading() continues
  void resume_reading() noexcept;
  // Idle deadline: on_timeout fires when the handler consumed no input for `ms` (0 disables).
  // Input it consumes (whole frames) pushes the deadline forward in O(1) without touching the
  // timer wheel; bytes it leaves pending (a partial frame) do not, so a peer cannot hold the
  // connection by trickling a frame it never finishes.
  void set_timeout(uint32_t ms) noexcept;
  // The deadline set_timeout set, in the loop's timer ticks as milliseconds (0: none).
  uint32_t timeout_ms() const noexcept;
  // Fixed deadline: on_timeout fires `ms` from now whatever arrives (a login that must be done
  // in time). set_timeout or set_deadline replace it; 0 disables.
  void set_deadline(uint32_t ms) noexcept;
  // The protocol has a whole login request and is working on it (MQTT: a CONNECT until its
  // CONNACK): counted against LoopConfig::max_admitting until set_timeout or the close. A
  // connection that has sent nothing, or half a request, is waiting on its peer, costs the
  // loop nothing, and is not counted (else silent sockets could stop the loop accepting).
  void begin_login() noexcept;

  // Schedules a close after the current callback returns (never closes under the caller).
  void close(CloseReason reason = CloseReason::kProtocol) noexcept;
  void close_after_flush(CloseReason reason = CloseReason::kProtocol) noexcept;

  // The client's address: from the PROXY header on a listener that asked for one, else the
  // socket's peer (a syscall: connections do not store it).
  bool peer_address(sockaddr_storage& out) const noexcept;
  // Bytes the peer sent that are still in the kernel, unread (FIONREAD; a syscall). A deadline
  // that fires while the loop is behind can tell a silent peer from one not got to yet.
  size_t unread_bytes() const noexcept;

  // --- transport (TLS, WebSocket, PROXY; see include/tcpms/transport.h) -------------------
  bool has_transport() const noexcept { return (flags_ & kTransport) != 0; }
  bool is_tls() const noexcept;
  bool is_websocket() const noexcept;
  // The verified client certificate's identity (its CN, or first SAN: tls.identity_field)
  // when the listener takes identities as user names (tls.identity_as_username): nullopt
  // when it does not, "" when the certificate has no such identity.
  std::optional<std::string> certificate_identity() const;
  // "tcp", "tls", "websocket+tls", ...: the listener's transport, for logs and listings.
  std::string_view transport_name() const noexcept;

  // One pointer for the protocol's per-connection state; the handler owns what it points to
  // and frees it in on_close.
  void* user_data() const noexcept {
    return (flags_ & kTransport) ? static_cast<net::TransportBase*>(user_)->user : user_;
  }
  void set_user_data(void* p) noexcept {
    if (flags_ & kTransport) static_cast<net::TransportBase*>(user_)->user = p;
    else user_ = p;
  }
  template <typename T>
  T* user() const noexcept { return static_cast<T*>(user_); }

 private:
  friend class EventLoop;
  friend class net::LoopCore;

  enum Flags : uint16_t {
    kOpen = 1 << 0,
    kClosing = 1 << 1,          // close scheduled; callbacks will not run again
    kFlushThenClose = 1 << 2,   // kCloseAfterFlush in progress
    kReadPausedByUser = 1 << 3,
    kReadPausedByOutput = 1 << 4,
    kReadAgain = 1 << 5,        // on the loop's read-again list (ET: data may remain)
    kFlushScheduled = 1 << 6,   // on the loop's flush list
    kPeerShutdown = 1 << 7,     // FIN received
    kConnecting = 1 << 8,       // outbound connect in progress
    kCounted = 1 << 9,          // holds a unit of the process-wide connection cap
    kLingering = 1 << 10,       // output flushed and FIN sent: discarding input until the
                                // peer's FIN, so our close cannot turn into a reset
    kRedeliver = 1 << 11,       // reading resumed: present held input again before reading
    kFixedDeadline = 1 << 12,   // the timer is a set_deadline: input does not push it
    kTransport = 1 << 13,       // user_ points to a net::Transport (which holds the user's)
    kAdmitting = 1 << 14,       // begin_login: counted against LoopConfig::max_admitting
    kParked = 1 << 15,          // being handed to another process: not read, written or timed
  };

  EventLoop* loop_ = nullptr;
  net::PendingInput* in_ = nullptr;  // partial frame only
  net::OutQueue* out_ = nullptr;     // unsent output only
  void* user_ = nullptr;  // the handler's, or a net::Transport with kTransport
  UniqueFd fd_;  // reset in the loop's closing phase
  uint32_t slot_ = 0;
  uint32_t generation_ = 1;
  net::TimerHook timer_;
  uint32_t timeout_ticks_ = 0;  // the idle timeout (or fixed deadline), in wheel ticks
  uint16_t flags_ = 0;
  uint8_t handler_ = 0;
  CloseReason close_reason_ = CloseReason::kPeerClosed;
  int32_t last_error_ = 0;
};

// The idle-connection budget (docs/architecture.md): keep it in one cache line and a bit.
static_assert(sizeof(Connection) <= 72, "Connection grew: every byte costs 1 MB at 1M connections");

}  // namespace tcpms
