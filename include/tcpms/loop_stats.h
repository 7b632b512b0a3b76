// Per-loop counters. Written only by the owning loop thread (relaxed single-writer stores,
// no locked instructions on the hot path); read by any thread for metrics.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

#include "tcpms/handler.h"

namespace tcpms {

class Counter {
 public:
  void add(uint64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void sub(uint64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }
  void set(uint64_t n) noexcept { v_.store(n, std::memory_order_relaxed); }
  uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// Why TLS handshakes fail, as counted in LoopStats::tls_failures and logged.
enum class TlsFailure : uint8_t {
  kTimeout,
  kEof,                  // the peer closed mid-handshake
  kNotTls,               // plain bytes (MQTT, HTTP) on a TLS port
  kVersion,              // no protocol version in common
  kCipher,               // no cipher or group in common
  kNoClientCert,
  kClientCertExpired,
  kClientCertRevoked,
  kClientCertUntrusted,  // does not chain to tls.ca_file
  kClientCertInvalid,    // any other verification failure
  kPeerAlert,            // the peer refused (our certificate, usually)
  kOther,
  kCount
};
// "timeout", "eof", "not_tls", ...: the label in /metrics and the word in the log line.
std::string_view tls_failure_name(TlsFailure f) noexcept;

struct LoopStats {
  Counter connections;           // gauge: open right now
  Counter accepted;
  Counter rejected_over_limit;   // accepted then closed at once: --max-connections reached
  Counter accept_errors;         // ECONNABORTED and friends
  Counter accept_paused;         // times the listener paused on EMFILE/ENFILE/ENOBUFS
  Counter accept_held;           // times accepting paused: LoopConfig::max_admitting reached
  Counter admitting;             // gauge: connections under their first fixed deadline
  Counter connects_started;      // outbound
  Counter bytes_in;
  Counter bytes_out;
  Counter read_calls;
  Counter write_calls;
  Counter backpressure_pauses;   // reading paused because output passed the high-water mark
  Counter stale_ids;             // sends/closes for a ConnId that no longer exists
  Counter tasks_run;
  Counter loop_iterations;
  Counter busy_ns;               // time spent outside epoll_wait, for per-loop load
  Counter longest_iteration_ns;  // gauge: the longest time spent outside epoll_wait at once
  Counter stalls;                // iterations of a second or more (logged, with their phases)
  Counter late_wakeups;          // epoll_wait returned a second or more after its timeout
  Counter pending_input_bytes;   // gauge: bytes held for partial frames
  Counter pending_output_bytes;  // gauge: bytes queued for slow sockets
  Counter conns_with_input;      // gauge: connections that own an input buffer
  Counter conns_with_output;     // gauge: connections that own an output queue
  std::array<Counter, static_cast<size_t>(CloseReason::kCount)> closed_by_reason;

  // Transports (TLS, WebSocket, PROXY header; src/net/transport.cc).
  Counter transport_connections;      // gauge: connections with transport state
  Counter tls_handshakes;             // completed, full
  Counter tls_resumed;                // completed by resuming a session (ticket)
  std::array<Counter, static_cast<size_t>(TlsFailure::kCount)> tls_failures;
  Counter tls_openssl_connections;    // gauge: TLS connections holding an OpenSSL SSL
  Counter tls_key_updates;            // TLS 1.3 KeyUpdates received after the handshake
  Counter tls_record_errors;          // closed for a bad record or a fatal alert after it
  Counter ws_upgrades;                // WebSocket handshakes completed
  Counter ws_refused;                 // Upgrade requests answered with an HTTP error
  Counter ws_protocol_errors;         // connections closed with a WebSocket close code >= 1002
  Counter ws_pings;                   // pings answered
  Counter proxy_headers;              // PROXY headers accepted
  Counter proxy_refused;              // connections closed for a missing or bad header
  Counter handshake_timeouts;         // any transport's handshake past its deadline
  Counter listener_rejected;          // over a listener's own max_connections
};

}  // namespace tcpms
