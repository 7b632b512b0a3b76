// EventLoop: a reactor, exactly one per thread (muduo's rule). Edge-triggered epoll; one
// SO_REUSEPORT listener per loop per listening address; an eventfd-woken task queue for
// calls from other threads; a hashed timer wheel for per-connection deadlines.
//
// Thread rules: methods marked "any thread" may be called from anywhere; all others only on
// the loop's own thread (checked by assert_in_loop_thread in debug builds).
//
// One iteration of run(), in order (see docs/architecture.md):
//   1. epoll_wait (timeout 0 if work is pending, else until the next timer tick)
//   2. dispatch events: accepts, reads (at most kMaxReadsPerWakeup per connection; the rest
//      is put on the read-again list so one busy peer cannot starve the others), writes
//   3. read-again list
//   4. tasks posted from other threads
//   5. timers: the wheel (connection deadlines), then loop timers (run_after)
//   6. flush output enqueued during this iteration (one write per connection)
//   7. closing phase: on_close, free buffers, bump generation, return the slot
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "handover/handover_frame.h"
#include "tcpms/conn_id.h"
#include "tcpms/connection.h"
#include "tcpms/endpoint.h"
#include "tcpms/handler.h"
#include "tcpms/loop_stats.h"
#include "tcpms/unique_fd.h"

struct ssl_st;  // OpenSSL's SSL

namespace tcpms {

namespace ws {
enum class Opcode : uint8_t;
enum class CloseCode : uint16_t;
}

class Server;
namespace net {
class LoopCore;
struct TransportConfig;
struct Transport;
struct TlsBio;
}

struct LoopConfig {
  uint32_t timer_tick_ms = 100;              // wheel resolution
  uint32_t idle_timeout_ms = 0;              // default per-connection deadline (0: none)
  size_t output_high_water_bytes = 1 << 20;  // pause reading from a peer that does not read
  size_t output_low_water_bytes = 256 << 10;  // resume below this
  size_t output_hard_limit_bytes = 64 << 20;  // close past this (counted)
  size_t input_limit_bytes = 16 << 20;        // a partial frame may not grow past this
  bool tcp_nodelay = true;
  // Connections whose login request the protocol is working on (Connection::begin_login:
  // MQTT's CONNECT until CONNACK) on this loop, past which the loop stops accepting until a
  // quarter of them are through (0: no limit). Under a reconnect storm the rest wait in the
  // kernel's accept queue, where no deadline of ours runs, instead of being accepted faster
  // than they can be answered and cut at their deadline.
  uint32_t max_admitting = 0;
};

// A connection's transport as it travels with it (past its handshakes): the listener it came
// through, the client's address from a PROXY header, TLS 1.3 records the engine keeps itself
// and WebSocket framing. The handover frame's own struct: the engine fills and reads it.
using HandedTransport = net::handover::TransportState;

// Which transports a successor can be told of (from the handover version both speak).
enum class TravellingTransports : uint8_t {
  kNone,         // only connections without a transport move
  kAddressOnly,  // version 5: a PROXY header's address, a listener's cap
  kAll,          // version 6: also TLS 1.3 records and WebSocket framing
};

// A connection on its way to the process replacing this one (the upgrade handover,
// docs/upgrade.md): everything the engine and the protocol know of it, as data.
struct HandedConnection {
  ConnId id;                   // in the old process
  int fd = -1;                 // borrowed: still owned by the old process's slot
  uint8_t handler = 0;
  uint32_t idle_timeout_ms = 0;
  std::string unread_input;    // received, not consumed by the protocol (a partial frame)
  std::string unsent_output;   // produced, not yet taken by the kernel
  std::string protocol_state;  // Handler::export_state
  std::optional<HandedTransport> transport;
};

class EventLoop {
 public:
  using Task = std::function<void()>;
  static constexpr int kMaxReadsPerWakeup = 16;
  static constexpr int kMaxAcceptsPerWakeup = 64;
  static constexpr size_t kReadBufferBytes = 64 * 1024;

  EventLoop(uint32_t index, const LoopConfig& config, Server* server = nullptr);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  uint32_t index() const noexcept { return index_; }
  const LoopConfig& config() const noexcept { return config_; }
  const LoopStats& stats() const noexcept { return stats_; }
  Server* server() const noexcept { return server_; }

  // Runs until stop() or until a drain finishes. Call on the thread that owns this loop.
  void run();
  // Any thread.
  void stop();
  // Any thread: stop accepting, ask every handler to finish (on_shutdown), force-close what
  // is left after `deadline`, then return from run().
  void drain(std::chrono::milliseconds deadline);
  bool draining() const noexcept { return draining_.load(std::memory_order_relaxed); }

  // Any thread: run `task` on this loop. False only when the loop has stopped.
  bool post(Task task);

  // Registers a handler; returns its index for listeners and outbound connects.
  uint8_t add_handler(std::unique_ptr<Handler> handler);
  Handler& handler(uint8_t index) { return *handlers_.at(index); }
  // Adopts an already bound and listening socket for `handler`; its connections go through
  // `transport` first (TLS, WebSocket, PROXY header, a listener cap) when it is set. The
  // configuration must outlive the loop (Server keeps it).
  void add_listener(UniqueFd listen_fd, uint8_t handler,
                    const net::TransportConfig* transport = nullptr);
  // Outbound connections made for `handler` go through `transport` (tcpms-bench: TLS and
  // WebSocket clients).
  void set_outbound_transport(uint8_t handler, const net::TransportConfig* transport);
  void set_connection_cap(std::atomic<int64_t>* shared_count, int64_t max_connections);

  // Outbound connection (used by tcpms-bench). `source` may be null; with it the socket is
  // bound before connect with IP_BIND_ADDRESS_NO_PORT so the port is chosen at connect time
  // per 4-tuple (no ephemeral-port wall per source address). Returns an invalid id and sets
  // `error` (errno) when the connect fails at once; otherwise on_open or on_close(kConnectFailed)
  // follows.
  ConnId connect(const sockaddr_storage& target, const sockaddr_storage* source, uint8_t handler,
                 int& error, void* user_data = nullptr);
  // The same for any Endpoint, Unix sockets included (no source binding for those).
  ConnId connect(const Endpoint& target, const Endpoint* source, uint8_t handler, int& error,
                 void* user_data = nullptr);

  // Live connection by id, or null if it closed (or is closing).
  Connection* find(ConnId id) noexcept;
  bool send_to(ConnId id, ByteView data);        // counted no-op on a stale id
  bool close(ConnId id, CloseReason reason);     // counted no-op on a stale id
  size_t connection_count() const noexcept { return live_; }
  // Visits every open connection (admin listings, shutdown). Loop thread only.
  void for_each_connection(const std::function<void(Connection&)>& visit);

  // Loop timers, for rare events (listener re-arm, periodic protocol work). Connection
  // deadlines use Connection::set_timeout, which is cheaper.
  uint64_t run_after(uint32_t delay_ms, Task task);
  uint64_t run_every(uint32_t period_ms, Task task);
  void cancel_timer(uint64_t timer_id);

  // Loop thread: Handler::hold_input_for_handover on every handler of this loop.
  void hold_input_for_handover(bool hold);

  // --- the upgrade handover (docs/upgrade.md; event_loop_handover.cc). Loop thread only. ---
  // Parks up to `max` connections that can move to another process (open, not closing, no
  // transport or one of the `transports` that travel (HandedTransport), and the handler's
  // export_state agrees), scanning slots from `cursor` on (moved past what was scanned; the
  // scan is over when it returns 0 and cursor is past the slab).
  // A parked connection stays in its slot, neither read nor written nor timed, with its
  // bytes and descriptor where they were, until release_parked or resume_parked.
  size_t park_for_handover(size_t max, uint32_t& cursor, std::vector<HandedConnection>& out,
                           TravellingTransports transports = TravellingTransports::kNone);
  bool scan_done(uint32_t cursor) const noexcept;
  // The new process took it: frees the slot with Handler::on_handed_over (no on_close), and
  // closes this process's descriptor only (the socket lives on in the new process).
  void release_parked(ConnId id);
  // The new process did not take it: served here again as if nothing had happened.
  void resume_parked(ConnId id);
  // In the new process: a connection as it was in the old one. Its unsent output is written
  // first, its unread input presented before anything read from now on. Returns an invalid
  // id when the handler refuses its state (the descriptor is then closed here only).
  // `parked`: adopted parked, neither read nor written nor timed until resume_parked (the
  // old process can still take it back); release_parked then forgets it without a word.
  ConnId adopt_handed(UniqueFd fd, const HandedConnection& state, bool parked = false);
  // This loop's listening descriptors (borrowed; -1 once closed), in the order they were added.
  std::vector<int> listener_fds() const;
  // Stops or resumes accepting (the listeners leave or rejoin the epoll set).
  void set_accepting(bool on);
  // The new process accepts from now on: this loop's listeners are closed.
  void close_listeners();

  // Milliseconds of CLOCK_MONOTONIC, cached once per iteration.
  uint64_t now_ms() const noexcept { return now_ms_; }
  void assert_in_loop_thread() const;
  bool in_loop_thread() const noexcept;

 private:
  friend class Connection;
  friend class net::LoopCore;
  friend struct net::TlsBio;

  // Connection internals, called by Connection's methods.
  bool write_parts(Connection& c, const ByteView* parts, size_t count, const SharedBytes* body,
                   bool defer);
  // The socket-level write under write_parts: direct, with only the remainder queued.
  bool write_raw(Connection& c, const ByteView* parts, size_t count, const SharedBytes* body,
                 bool defer);
  void schedule_close(Connection& c, CloseReason reason);
  void apply(Connection& c, Action action, CloseReason reason);
  void close_gracefully(Connection& c);
  void discard_input(Connection& c);
  void read_again_later(Connection& c);
  // Counts `c` against config_.max_admitting (on) or stops counting it (off); idempotent.
  void set_admitting(Connection& c, bool on);
  void hold_listeners();
  void release_held_listeners();
  void set_conn_timeout(Connection& c, uint32_t ms, bool fixed);
  void resume_reading(Connection& c);
  Connection& slot_ref(uint32_t slot) noexcept;

  // Iteration phases and their helpers (event_loop.cc).
  uint32_t now_tick() const noexcept;
  int next_timeout_ms() const;
  void dispatch(uint64_t tag, uint32_t events);
  void handle_accept(uint32_t listener);
  void pause_listener(uint32_t listener, int err);
  // A free slot set up as an open connection on `fd` (accepted, connecting or handed over);
  // null when the slab is full.
  Connection* fill_slot(UniqueFd fd, uint8_t handler, uint16_t flags, void* user_data);
  ConnId adopt(UniqueFd fd, uint8_t handler, bool connecting, void* user_data,
               const net::TransportConfig* transport);
  void finish_connect(Connection& c);
  void handle_read(Connection& c, bool peer_hung_up);
  bool deliver(Connection& c, ByteView fresh);
  void flush(Connection& c);
  ssize_t send_iov(Connection& c, const struct iovec* iov, int n);
  void after_output_change(Connection& c);
  net::OutQueue& output_queue(Connection& c);
  void release_output_queue(Connection& c);
  void run_read_again();
  void run_flush_list();
  void run_timers();
  void run_closing();
  // Where one iteration's time went, for the log line of a stall.
  struct IterationPhases {
    uint64_t events_ns, read_again_ns, tasks_ns, timers_ns, flush_ns, closing_ns, trim_ns;
    uint32_t events;
    size_t tasks;
  };
  void note_stall(uint64_t busy_ns, const IterationPhases& phases);
  void note_late_wakeup(uint64_t late_ns);

  // Transports (transport.cc): the PROXY header, TLS and WebSocket between the socket and
  // the handler.
  // The handler has had on_open (no transport, or its handshakes are done).
  bool handler_sees(const Connection& c) const noexcept;
  // The handler is told of the close: it saw on_open, or it made the connection itself.
  bool handler_knows(const Connection& c) const noexcept;
  bool start_transport(Connection& c, const net::TransportConfig& config);
  void transport_connected(Connection& c);
  void transport_input(Connection& c, MutableByteView raw);
  bool transport_output(Connection& c, const ByteView* parts, size_t count,
                        const SharedBytes* body, bool defer);
  void transport_goodbye(Connection& c);
  void transport_abort(Connection& c, CloseReason reason);
  void transport_timeout(Connection& c);
  void transport_eof(Connection& c);
  void free_transport(Connection& c);
  // The upgrade handover: a connection's transport as the old process had it (past its
  // handshakes); false when this process's listener of that index cannot carry it.
  bool adopt_transport(Connection& c, const HandedTransport& h);
  bool tls_input(Connection& c, MutableByteView raw);
  bool tls_write(Connection& c, const ByteView* pieces, size_t count, bool defer);
  void tls_failed(Connection& c, int ssl_error, bool timeout_or_eof);
  void free_ssl(net::Transport& t);
  ::ssl_st* handshaking_ssl(const Connection& c) const noexcept;  // OpenSSL's SSL, until done
  // The TLS 1.3 record layer after the handshake (transport_tls13.cc).
  bool leave_openssl(Connection& c);
  void records_input(Connection& c, MutableByteView data);
  bool records_open(Connection& c, MutableByteView record);
  bool records_write(Connection& c, const ByteView* pieces, size_t count, bool defer);
  bool records_seal(Connection& c, uint8_t type, ByteView content, bool defer);
  void records_fail(Connection& c, uint8_t alert, const char* what);
  void plaintext_input(Connection& c, MutableByteView data);
  void websocket_input(Connection& c, MutableByteView data);
  bool websocket_control(Connection& c, ws::Opcode opcode, MutableByteView payload);
  bool send_ws_control(Connection& c, ws::Opcode opcode, ByteView payload);
  bool send_ws_close(Connection& c, ws::CloseCode code, std::string_view reason);
  void websocket_fail(Connection& c, int code, const char* what);
  void app_input(Connection& c, ByteView data);
  bool send_transport_bytes(Connection& c, ByteView bytes);
  void open_for_handler(Connection& c);
  void trim_after_churn();
  uint32_t index_;
  LoopConfig config_;
  Server* server_;
  std::vector<std::unique_ptr<Handler>> handlers_;
  std::unique_ptr<net::LoopCore> core_;
  LoopStats stats_;
  size_t live_ = 0;
  uint64_t now_ms_ = 0;
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> draining_{false};
};

}  // namespace tcpms
