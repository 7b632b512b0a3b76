// EventLoop, the upgrade handover (docs/upgrade.md): connections leaving for the process that
// replaces this one (parked, then released or resumed), and arriving from the one it replaces.
//
// Why park instead of taking the connection out at once: until the new process says it took a
// connection, the old one must be able to serve it on exactly as before (roll back, never
// drop). A parked connection keeps its slot, descriptor, buffers and protocol state; it is
// only out of the epoll set and the timer wheel, and output produced for it meanwhile is held
// in its queue instead of written. Releasing it is a close without goodbyes; resuming it is
// registering it again.
#include <sys/epoll.h>
#include <sys/socket.h>

#include <spdlog/spdlog.h>

#include "net/loop_core.h"
#include "net/pending_input.h"
#include "net/transport.h"
#include "tcpms/event_loop.h"
#include "websocket/handover_state.h"

namespace tcpms {

using net::LoopCore;

void EventLoop::hold_input_for_handover(bool hold) {
  assert_in_loop_thread();
  for (auto& h : handlers_) h->hold_input_for_handover(hold);
}

bool EventLoop::scan_done(uint32_t cursor) const noexcept { return cursor >= core_->slots_created; }

namespace {

static_assert(net::handover::kMaxWebSocketStashBytes == ws::kMaxControlFrameBytes);
static_assert(net::handover::kMaxPartialRecordBytes == tls13::kMaxRecordBytes);

// The transport of `c` as it can travel: past its handshakes, not closing, and holding only
// what `transports` lets a successor be told of: a PROXY header's client address, a
// listener's cap; then TLS 1.3 records the engine keeps itself (not OpenSSL: TLS 1.2,
// another suite) and WebSocket framing. Nothing for any other, which stays.
std::optional<HandedTransport> travelling_transport(const LoopCore& core, const net::Transport& t,
                                                    TravellingTransports transports) {
  constexpr uint8_t kClosing = net::Transport::kCloseSent | net::Transport::kCloseReceived |
                               net::Transport::kTlsCloseSent;
  if (t.stage != net::Stage::kOpen || (t.flags & kClosing) || t.config == nullptr ||
      transports == TravellingTransports::kNone)
    return std::nullopt;
  const TransportOptions& o = t.config->options;
  const bool framed = o.tls || o.websocket;
  if (framed && transports != TravellingTransports::kAll) return std::nullopt;
  if (o.tls && t.records() == nullptr) return std::nullopt;  // its state is inside OpenSSL
  if (t.stash != nullptr && !o.websocket) return std::nullopt;
  for (size_t i = 0; i < core.listeners.size(); ++i) {
    if (core.listeners[i].transport != t.config) continue;
    HandedTransport h;
    h.listener = static_cast<uint16_t>(i);
    h.has_peer = (t.flags & net::Transport::kHasPeer) != 0;
    h.peer_family = t.peer_family;
    h.peer_port = t.peer_port;
    h.peer_addr = t.peer_addr;
    if (o.tls) h.tls = net::export_records(*t.records());
    if (o.websocket) {
      const ByteView kept = t.stash != nullptr ? ByteView(t.stash->data(), t.stash->size) : ByteView{};
      h.websocket = ws::export_state(t.ws, kept);
    }
    return h;
  }
  return std::nullopt;  // an outbound connection's
}

}  // namespace

size_t EventLoop::park_for_handover(size_t max, uint32_t& cursor, std::vector<HandedConnection>& out,
                                    TravellingTransports transports) {
  assert_in_loop_thread();
  size_t parked = 0;
  // Connections in the middle of something the engine itself runs stay: a transport that
  // keeps state inside OpenSSL or is still in a handshake (and any, with a successor that
  // cannot be told of it), a closing or lingering one is nearly gone, a connecting one is
  // ours (outbound), a paused one is held by its protocol (a rate limit). One whose peer sent
  // FIN and that its handler kept open (MQTT while input is held) moves: the socket reads
  // the FIN again in the new process, after the input that came before it, so a client that
  // left during the handover is seen leaving there (its DISCONNECT read first, or its will
  // published).
  constexpr uint16_t kStays = Connection::kClosing | Connection::kFlushThenClose |
                              Connection::kLingering | Connection::kConnecting |
                              Connection::kParked | Connection::kReadPausedByUser |
                              Connection::kAdmitting;
  for (; cursor < core_->slots_created && parked < max; ++cursor) {
    Connection& c = core_->slot(cursor);
    if (!(c.flags_ & Connection::kOpen) || (c.flags_ & kStays)) continue;
    HandedConnection h;
    if (c.flags_ & Connection::kTransport) {
      h.transport = travelling_transport(*core_, *static_cast<const net::Transport*>(c.user_), transports);
      if (!h.transport) continue;
    }
    if (!handlers_[c.handler_]->export_state(c, h.protocol_state)) continue;
    // Stop reading and writing: out of the epoll set, off the wheel.
    ::epoll_ctl(core_->epoll.get(), EPOLL_CTL_DEL, c.fd_.get(), nullptr);
    core_->wheel.cancel(cursor);
    c.flags_ |= Connection::kParked;
    h.id = c.id();
    h.fd = c.fd_.get();
    h.handler = c.handler_;
    h.idle_timeout_ms = c.timeout_ticks_ * config_.timer_tick_ms;
    if (c.in_ != nullptr) h.unread_input.assign(as_chars(c.in_->view()));
    if (c.out_ != nullptr) c.out_->copy_to(h.unsent_output);
    out.push_back(std::move(h));
    ++parked;
  }
  return parked;
}

void EventLoop::release_parked(ConnId id) {
  assert_in_loop_thread();
  Connection* c = find(id);
  if (c == nullptr || !(c->flags_ & Connection::kParked)) return;
  // Our copy of the descriptor is closed in the closing phase, with close(), never shutdown():
  // the socket stays open in the new process.
  release_output_queue(*c);  // the new process got these bytes in the handover
  schedule_close(*c, CloseReason::kHandedOver);
}

void EventLoop::resume_parked(ConnId id) {
  assert_in_loop_thread();
  Connection* c = find(id);
  if (c == nullptr || !(c->flags_ & Connection::kParked)) return;
  // Not read while parked: a FIN seen before is read again, after what was held.
  c->flags_ &= static_cast<uint16_t>(~(Connection::kParked | Connection::kPeerShutdown));
  epoll_event ev{};
  ev.events = net::kConnEvents;
  ev.data.u64 = id.value;
  if (::epoll_ctl(core_->epoll.get(), EPOLL_CTL_ADD, c->fd_.get(), &ev) != 0) {
    c->last_error_ = errno;
    schedule_close(*c, CloseReason::kIoError);
    return;
  }
  if (c->timeout_ticks_ != 0) {
    core_->wheel.sync_if_empty(now_tick());
    core_->wheel.schedule(c->slot_, now_tick() + c->timeout_ticks_);
  }
  flush(*c);  // output held while parked
  if (c->in_ != nullptr) c->flags_ |= Connection::kRedeliver;
  read_again_later(*c);  // what arrived meanwhile raised no event we saw
}

ConnId EventLoop::adopt_handed(UniqueFd fd, const HandedConnection& state, bool parked) {
  assert_in_loop_thread();
  if (state.handler >= handlers_.size()) return {};
  Connection* filled = fill_slot(std::move(fd), state.handler, 0, nullptr);
  if (filled == nullptr) return {};
  Connection& c = *filled;
  const uint32_t slot = c.slot_;
  auto give_back = [&] {
    if (c.flags_ & Connection::kTransport) free_transport(c);
    c.fd_.reset();  // close() only: the old process still holds the socket and serves it
    c.flags_ = 0;
    if (++c.generation_ == 0) c.generation_ = 1;
    core_->free_slots.push_back(slot);
    return ConnId{};
  };
  if (state.transport && !adopt_transport(c, *state.transport)) return give_back();
  if (!handlers_[state.handler]->import_state(c, as_bytes(state.protocol_state))) return give_back();
  if (!state.unread_input.empty() &&
      !net::pending_append(c.in_, as_bytes(state.unread_input), state.unread_input.size())) {
    handlers_[state.handler]->on_handed_over(c);
    return give_back();
  }
  const ConnId id = ConnId::make(index_, slot, c.generation_);
  if (parked) {
    c.flags_ |= Connection::kParked;  // resume_parked adds it to the epoll set
  } else {
    epoll_event ev{};
    ev.events = net::kConnEvents;
    ev.data.u64 = id.value;
    if (::epoll_ctl(core_->epoll.get(), EPOLL_CTL_ADD, c.fd_.get(), &ev) != 0) {
      handlers_[state.handler]->on_handed_over(c);
      net::pending_free(c.in_);
      return give_back();
    }
  }
  ++live_;
  stats_.connections.add();
  if (c.in_ != nullptr) {
    stats_.pending_input_bytes.add(c.in_->size);
    stats_.conns_with_input.add();
    c.flags_ |= Connection::kRedeliver;
  }
  if (core_->shared_count != nullptr) {
    core_->shared_count->fetch_add(1, std::memory_order_relaxed);
    c.flags_ |= Connection::kCounted;
  }
  if (state.idle_timeout_ms != 0) {
    set_conn_timeout(c, state.idle_timeout_ms, false);
    if (parked) core_->wheel.cancel(slot);  // resume_parked schedules it
  }
  // The old process's unsent output goes before anything this one produces (held while
  // parked: write_raw queues it).
  if (!state.unsent_output.empty()) {
    ByteView part = as_bytes(state.unsent_output);
    write_raw(c, &part, 1, nullptr, false);
  }
  if (!parked) read_again_later(c);  // input the old process left unread, and whatever came since
  return id;
}

bool EventLoop::adopt_transport(Connection& c, const HandedTransport& h) {
  if (h.listener >= core_->listeners.size()) return false;
  const net::TransportConfig* cfg = core_->listeners[h.listener].transport;
  // The same index is the same listener (one configuration); one that differs in TLS or
  // WebSocket is another, and the connection's bytes would not be its.
  if (cfg == nullptr || (cfg->options.tls != nullptr) != h.tls.has_value() ||
      cfg->options.websocket != h.websocket.has_value())
    return false;
  net::TlsRecordsPtr records;
  if (h.tls) {
    records.reset(new net::TlsRecords);
    if (!net::import_records(*h.tls, *records)) return false;
  }
  auto* t = new net::Transport;
  t->user = c.user_;
  t->config = cfg;
  c.user_ = t;
  c.flags_ |= Connection::kTransport;
  stats_.transport_connections.add();
  if (h.has_peer) {
    t->flags |= net::Transport::kHasPeer;
    t->peer_family = h.peer_family;
    t->peer_port = h.peer_port;
    t->peer_addr = h.peer_addr;
  }
  if (records != nullptr) {
    t->records_ = records.release();  // free_transport frees it from here on
    t->flags |= net::Transport::kHandshakeDone | net::Transport::kOwnRecords;
  }
  if (h.websocket) {
    // Checked before it is let near the receiver: another process's word, and websocket_input
    // relies on kept bytes being an incomplete frame.
    if (const char* why = ws::import_state(*h.websocket, !cfg->client, t->ws)) {
      spdlog::warn("loop {}: handover: refusing a websocket connection's state: {}", index_, why);
      return false;  // the caller frees the transport
    }
    const std::string_view kept = h.websocket->stash;
    if (!kept.empty() && !net::pending_append(t->stash, as_bytes(kept), ws::kMaxControlFrameBytes))
      return false;  // the caller frees the transport
  }
  if (cfg->listener_count != nullptr) {  // the listener's cap counts it here now
    cfg->listener_count->fetch_add(1, std::memory_order_relaxed);
    t->flags |= net::Transport::kCounted;
  }
  return true;
}

std::vector<int> EventLoop::listener_fds() const {
  std::vector<int> fds;
  for (const auto& l : core_->listeners) fds.push_back(l.fd.get());  // -1 once closed
  return fds;
}

void EventLoop::set_accepting(bool on) {
  assert_in_loop_thread();
  for (size_t i = 0; i < core_->listeners.size(); ++i) {
    auto& l = core_->listeners[i];
    if (!l.fd || l.paused || l.held) continue;
    if (on) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = ConnId::make(index_, static_cast<uint32_t>(i), 0).value;
      ::epoll_ctl(core_->epoll.get(), EPOLL_CTL_ADD, l.fd.get(), &ev);
    } else {
      ::epoll_ctl(core_->epoll.get(), EPOLL_CTL_DEL, l.fd.get(), nullptr);
    }
  }
}

void EventLoop::close_listeners() {
  assert_in_loop_thread();
  for (auto& l : core_->listeners) {
    if (!l.fd) continue;
    ::epoll_ctl(core_->epoll.get(), EPOLL_CTL_DEL, l.fd.get(), nullptr);
    l.fd.reset();  // the new process holds the same socket: its accept queue survives
  }
}

}  // namespace tcpms
