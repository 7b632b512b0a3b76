#include "tcpms/connection.h"

#include <sys/ioctl.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <cstring>

#include "net/out_queue.h"
#include "net/pending_input.h"
#include "net/tls_context.h"
#include "net/transport.h"
#include "tcpms/event_loop.h"

namespace tcpms {

std::string_view close_reason_name(CloseReason r) noexcept {
  switch (r) {
    case CloseReason::kPeerClosed: return "peer_closed";
    case CloseReason::kPeerReset: return "peer_reset";
    case CloseReason::kIoError: return "io_error";
    case CloseReason::kIdleTimeout: return "idle_timeout";
    case CloseReason::kProtocol: return "protocol";
    case CloseReason::kOutputOverflow: return "output_overflow";
    case CloseReason::kInputOverflow: return "input_overflow";
    case CloseReason::kKicked: return "kicked";
    case CloseReason::kShutdown: return "shutdown";
    case CloseReason::kConnectFailed: return "connect_failed";
    case CloseReason::kHandedOver: return "handed_over";
    case CloseReason::kCount: break;
  }
  return "unknown";
}

ConnId Connection::id() const noexcept {
  return ConnId::make(loop_->index(), slot_, generation_);
}

bool Connection::send(ByteView data) { return loop_->write_parts(*this, &data, 1, nullptr, false); }

bool Connection::sendv(std::span<const ByteView> parts) {
  return loop_->write_parts(*this, parts.data(), parts.size(), nullptr, false);
}

bool Connection::send_shared(ByteView head, const SharedBytes& body) {
  return loop_->write_parts(*this, &head, 1, &body, false);
}

bool Connection::enqueue(ByteView data) {
  return loop_->write_parts(*this, &data, 1, nullptr, true);
}

bool Connection::enqueue_shared(ByteView head, const SharedBytes& body) {
  return loop_->write_parts(*this, &head, 1, &body, true);
}

size_t Connection::pending_output_bytes() const noexcept { return out_ ? out_->bytes() : 0; }
size_t Connection::pending_input_bytes() const noexcept { return in_ ? in_->size : 0; }

void Connection::pause_reading() noexcept { flags_ |= kReadPausedByUser; }

void Connection::resume_reading() noexcept {
  if (!(flags_ & kReadPausedByUser)) return;
  flags_ &= static_cast<uint16_t>(~kReadPausedByUser);
  loop_->resume_reading(*this);
}

void Connection::set_timeout(uint32_t ms) noexcept {
  // While closing after a flush the engine's own deadline bounds the wait; a late protocol
  // timer must not replace it.
  if (flags_ & (kFlushThenClose | kLingering)) return;
  loop_->set_conn_timeout(*this, ms, false);
}

void Connection::set_deadline(uint32_t ms) noexcept {
  if (flags_ & (kFlushThenClose | kLingering)) return;
  loop_->set_conn_timeout(*this, ms, true);
}

void Connection::begin_login() noexcept {
  if (flags_ & (kClosing | kFlushThenClose | kLingering)) return;
  loop_->set_admitting(*this, true);
}

uint32_t Connection::timeout_ms() const noexcept {
  return timeout_ticks_ * loop_->config().timer_tick_ms;
}

void Connection::close(CloseReason reason) noexcept { loop_->schedule_close(*this, reason); }

void Connection::close_after_flush(CloseReason reason) noexcept {
  loop_->apply(*this, Action::kCloseAfterFlush, reason);
}

size_t Connection::unread_bytes() const noexcept {
  int n = 0;
  if (::ioctl(fd_.get(), FIONREAD, &n) != 0 || n < 0) return 0;
  return static_cast<size_t>(n);
}

bool Connection::peer_address(sockaddr_storage& out) const noexcept {
  if (flags_ & kTransport) {
    // The PROXY header's source is the client; the socket's peer is only the balancer.
    const auto* t = static_cast<const net::Transport*>(user_);
    if (t->flags & net::Transport::kHasPeer) {
      std::memset(&out, 0, sizeof out);
      if (t->peer_family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&out);
        a->sin_family = AF_INET;
        a->sin_port = t->peer_port;
        std::memcpy(&a->sin_addr, t->peer_addr.data(), 4);
      } else {
        auto* a = reinterpret_cast<sockaddr_in6*>(&out);
        a->sin6_family = AF_INET6;
        a->sin6_port = t->peer_port;
        std::memcpy(&a->sin6_addr, t->peer_addr.data(), 16);
      }
      return true;
    }
  }
  socklen_t len = sizeof out;
  return ::getpeername(fd_.get(), reinterpret_cast<sockaddr*>(&out), &len) == 0;
}

bool Connection::is_tls() const noexcept {
  return (flags_ & kTransport) && static_cast<const net::Transport*>(user_)->tls();
}

bool Connection::is_websocket() const noexcept {
  return (flags_ & kTransport) && static_cast<const net::Transport*>(user_)->config->options.websocket;
}

std::string_view Connection::transport_name() const noexcept {
  if (!(flags_ & kTransport)) return "tcp";
  return static_cast<const net::Transport*>(user_)->config->name;
}

std::optional<std::string> Connection::certificate_identity() const {
  if (!(flags_ & kTransport)) return std::nullopt;
  const auto* t = static_cast<const net::Transport*>(user_);
  if (!t->tls() || !t->config->options.tls || t->config->client) return std::nullopt;
  const TlsServerSettings& s = t->config->options.tls->server_settings();
  if (!s.identity_as_username) return std::nullopt;
  if (const net::TlsRecords* r = t->records()) return r->identity;  // taken before the SSL went
  std::string id;
  if (!tcpms::certificate_identity(t->ssl(), s.identity_field, id)) id.clear();
  return id;
}

}  // namespace tcpms
