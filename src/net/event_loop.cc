#include "tcpms/event_loop.h"

#include <malloc.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <system_error>

#include <spdlog/spdlog.h>

#include "net/loop_core.h"
#include "net/socket.h"
#include "net/transport.h"
#include "tcpms/server.h"
#include "tcpms/worker_pool.h"

namespace tcpms {
namespace {

thread_local const EventLoop* t_current_loop = nullptr;

uint64_t monotonic_ms() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

uint64_t monotonic_ns() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// The clock of the last tick (a few ms coarse) at a few ns a read: enough to find an iteration
// of a second, cheap enough to read between every phase of every iteration.
uint64_t coarse_ns() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

constexpr int kMaxIov = 64;
constexpr uint32_t kFlushThenCloseLingerMs = 10000;  // a peer that never reads our last bytes
constexpr uint32_t kLingeringCloseMs = 2000;         // a peer that never sends its FIN
constexpr uint32_t kAcceptPauseMs = 100;
// A loop that spends a second on one iteration, or wakes a second after its timer was due,
// keeps every connection it holds waiting that long: logins time out, peers wait for answers.
// Both are counted and logged with where the time went, at most every 10 s per loop.
constexpr uint64_t kStallNs = 1'000'000'000;

CloseReason reason_for_errno(int err) noexcept {
  return (err == ECONNRESET || err == EPIPE) ? CloseReason::kPeerReset : CloseReason::kIoError;
}

}  // namespace

using net::LoopCore;
using net::kConnEvents;

EventLoop::EventLoop(uint32_t index, const LoopConfig& config, Server* server)
    : index_(index), config_(config), server_(server), core_(std::make_unique<LoopCore>()) {
  if (config_.timer_tick_ms == 0) config_.timer_tick_ms = 1;
  core_->epoll.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!core_->epoll) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = ConnId::make(index_, LoopCore::kWakeTag, 0).value;
  if (::epoll_ctl(core_->epoll.get(), EPOLL_CTL_ADD, core_->tasks.wake_fd(), &ev) != 0)
    throw std::system_error(errno, std::generic_category(), "epoll_ctl(eventfd)");
  now_ms_ = monotonic_ms();
  core_->wheel.sync_if_empty(now_tick());
}

EventLoop::~EventLoop() {
  // Close whatever is still open so handlers release their per-connection state.
  for (uint32_t s = 0; s < core_->slots_created; ++s) {
    Connection& c = core_->slot(s);
    if (c.flags_ & Connection::kOpen) {
      if (!(c.flags_ & Connection::kClosing)) schedule_close(c, CloseReason::kShutdown);
    }
  }
  std::vector<uint32_t> closing;
  closing.swap(core_->closing);
  for (uint32_t s : closing) {
    Connection& c = core_->slot(s);
    if (handler_knows(c)) handlers_[c.handler_]->on_close(c, c.close_reason_);
    if (c.flags_ & Connection::kTransport) free_transport(c);
    net::pending_free(c.in_);
    delete c.out_;
    c.out_ = nullptr;
    c.fd_.reset();
  }
}

bool EventLoop::in_loop_thread() const noexcept { return t_current_loop == this; }

void EventLoop::assert_in_loop_thread() const {
  assert(in_loop_thread() && "EventLoop method called from a thread that does not own it");
}

uint8_t EventLoop::add_handler(std::unique_ptr<Handler> handler) {
  if (handlers_.size() >= 255) throw std::length_error("too many handlers on one loop");
  handlers_.push_back(std::move(handler));
  return static_cast<uint8_t>(handlers_.size() - 1);
}

void EventLoop::add_listener(UniqueFd listen_fd, uint8_t handler,
                             const net::TransportConfig* transport) {
  uint32_t tag = static_cast<uint32_t>(core_->listeners.size());
  epoll_event ev{};
  ev.events = EPOLLIN;  // level-triggered: accepts are capped per wake-up, the rest stays ready
  ev.data.u64 = ConnId::make(index_, tag, 0).value;
  if (::epoll_ctl(core_->epoll.get(), EPOLL_CTL_ADD, listen_fd.get(), &ev) != 0)
    throw std::system_error(errno, std::generic_category(), "epoll_ctl(listener)");
  bool is_unix = net::local_endpoint(listen_fd.get()).is_unix();
  LoopCore::Listener l;
  l.fd = std::move(listen_fd);
  l.handler = handler;
  l.is_unix = is_unix;
  l.transport = transport;
  core_->listeners.push_back(std::move(l));
}

void EventLoop::set_outbound_transport(uint8_t handler, const net::TransportConfig* transport) {
  if (core_->outbound.size() <= handler) core_->outbound.resize(handler + 1u, nullptr);
  core_->outbound[handler] = transport;
}

void EventLoop::set_connection_cap(std::atomic<int64_t>* shared_count, int64_t max_connections) {
  core_->shared_count = shared_count;
  core_->max_connections = max_connections;
}

Connection& EventLoop::slot_ref(uint32_t slot) noexcept { return core_->slot(slot); }

Connection* EventLoop::find(ConnId id) noexcept {
  if (id.loop() != index_ || id.generation() == 0 || id.slot() >= core_->slots_created)
    return nullptr;
  Connection& c = core_->slot(id.slot());
  if (c.generation_ != id.generation() || !c.open()) return nullptr;
  return &c;
}

bool EventLoop::send_to(ConnId id, ByteView data) {
  Connection* c = find(id);
  if (c == nullptr) {
    stats_.stale_ids.add();
    return false;
  }
  return c->send(data);
}

bool EventLoop::close(ConnId id, CloseReason reason) {
  Connection* c = find(id);
  if (c == nullptr) {
    stats_.stale_ids.add();
    return false;
  }
  schedule_close(*c, reason);
  return true;
}

void EventLoop::for_each_connection(const std::function<void(Connection&)>& visit) {
  for (uint32_t s = 0; s < core_->slots_created; ++s) {
    Connection& c = core_->slot(s);
    if (c.open() && handler_sees(c)) visit(c);
  }
}

bool EventLoop::post(Task task) { return core_->tasks.push(std::move(task)); }

void EventLoop::stop() {
  stop_requested_.store(true, std::memory_order_relaxed);
  post([] {});  // wake epoll_wait
}

void EventLoop::drain(std::chrono::milliseconds deadline) {
  post([this, deadline] {
    if (draining_.exchange(true)) return;
    for (auto& l : core_->listeners) {
      ::epoll_ctl(core_->epoll.get(), EPOLL_CTL_DEL, l.fd.get(), nullptr);
      l.fd.reset();
    }
    // Connections still in a handshake have no handler to ask: they just go.
    for (uint32_t s = 0; s < core_->slots_created; ++s) {
      Connection& c = core_->slot(s);
      if (c.open() && !handler_sees(c)) schedule_close(c, CloseReason::kShutdown);
    }
    for_each_connection([this](Connection& c) {
      apply(c, handlers_[c.handler_]->on_shutdown(c), CloseReason::kShutdown);
    });
    run_after(static_cast<uint32_t>(deadline.count()), [this] {
      for_each_connection([this](Connection& c) { schedule_close(c, CloseReason::kShutdown); });
    });
  });
}

// --- timers ---------------------------------------------------------------------------------

uint64_t EventLoop::run_after(uint32_t delay_ms, Task task) {
  uint64_t id = core_->next_timer_id++;
  core_->timers.emplace(id, LoopCore::LoopTimer{0, std::move(task)});
  core_->timer_order.emplace(now_ms_ + delay_ms, id);
  return id;
}

uint64_t EventLoop::run_every(uint32_t period_ms, Task task) {
  uint64_t id = run_after(period_ms, std::move(task));
  core_->timers[id].period_ms = std::max<uint32_t>(period_ms, 1);
  return id;
}

void EventLoop::cancel_timer(uint64_t timer_id) {
  // The (due, id) entry stays in timer_order and is skipped when it comes due.
  core_->timers.erase(timer_id);
}

// The wheel tick of the loop's clock. Every connection deadline is armed from this, not from
// the wheel's own tick: the wheel advances only in the timer phase and not at all while it is
// empty, so on a loop that slept its tick lies in the past, and a deadline armed from it
// (a new connection's CONNECT timer, a keep-alive pushed by a packet) would already be due.
uint32_t EventLoop::now_tick() const noexcept {
  return static_cast<uint32_t>(now_ms_ / config_.timer_tick_ms);
}

void EventLoop::set_conn_timeout(Connection& c, uint32_t ms, bool fixed) {
  if (fixed) {
    c.flags_ |= Connection::kFixedDeadline;
  } else {
    c.flags_ &= static_cast<uint16_t>(~Connection::kFixedDeadline);
    set_admitting(c, false);  // logged in: an ordinary deadline from now on
  }
  if (ms == 0) {
    c.timeout_ticks_ = 0;
    core_->wheel.cancel(c.slot_);
    return;
  }
  c.timeout_ticks_ = (ms + config_.timer_tick_ms - 1) / config_.timer_tick_ms;
  core_->wheel.sync_if_empty(now_tick());
  core_->wheel.schedule(c.slot_, now_tick() + c.timeout_ticks_);
}

// --- closing --------------------------------------------------------------------------------

void EventLoop::schedule_close(Connection& c, CloseReason reason) {
  if (!(c.flags_ & Connection::kOpen) || (c.flags_ & Connection::kClosing)) return;
  if (c.flags_ & Connection::kTransport) transport_abort(c, reason);  // a last Close frame
  c.flags_ |= Connection::kClosing;
  c.close_reason_ = reason;
  core_->closing.push_back(c.slot_);
}

void EventLoop::apply(Connection& c, Action action, CloseReason reason) {
  switch (action) {
    case Action::kKeep:
      return;
    case Action::kClose:
      schedule_close(c, reason);
      return;
    case Action::kCloseAfterFlush:
      if (c.flags_ & (Connection::kClosing | Connection::kFlushThenClose)) return;
      if (c.flags_ & Connection::kTransport) transport_goodbye(c);  // Close frame, close_notify
      c.flags_ |= Connection::kFlushThenClose;
      c.close_reason_ = reason;
      if (c.out_ == nullptr || c.out_->empty()) {
        close_gracefully(c);
      } else {
        // Bound how long a peer that stops reading can keep us waiting.
        set_admitting(c, false);
        set_conn_timeout(c, kFlushThenCloseLingerMs, true);
      }
      return;
  }
}

// Our output is all with the kernel. close() now, with input unread (the peer kept sending
// while we flushed), would make the kernel answer with a reset, and a reset throws away what
// it has not delivered yet: the slow reader would lose the very bytes we flushed for it. So
// send FIN after the data (shutdown SHUT_WR), then read and discard until the peer's FIN, an
// error, or kLingeringCloseMs (nginx's lingering close). After the peer's FIN nothing more
// can arrive, so close at once.
void EventLoop::close_gracefully(Connection& c) {
  if (c.flags_ & Connection::kPeerShutdown) {
    schedule_close(c, c.close_reason_);
    return;
  }
  if (c.flags_ & Connection::kLingering) return;
  c.flags_ |= Connection::kLingering;
  ::shutdown(c.fd_.get(), SHUT_WR);
  set_admitting(c, false);
  set_conn_timeout(c, kLingeringCloseMs, true);
  // Discard in the read-again phase, not here: a handler may be calling us from on_data
  // with a view into the loop's read buffer still live.
  read_again_later(c);
}

void EventLoop::discard_input(Connection& c) {
  std::byte* buf = core_->read_buffer.get();
  for (int i = 0; i < kMaxReadsPerWakeup; ++i) {
    if (!c.open()) return;
    ssize_t n = ::recv(c.fd_.get(), buf, kReadBufferBytes, MSG_DONTWAIT);
    stats_.read_calls.add();
    if (n > 0) {
      stats_.bytes_in.add(static_cast<uint64_t>(n));  // no deadline extension: bounded wait
      continue;
    }
    if (n < 0 && errno == EAGAIN) return;
    if (n < 0 && errno == EINTR) continue;
    schedule_close(c, c.close_reason_);  // the peer's FIN, or an error: either way, done
    return;
  }
  read_again_later(c);
}

void EventLoop::read_again_later(Connection& c) {
  if (c.flags_ & Connection::kReadAgain) return;
  c.flags_ |= Connection::kReadAgain;
  core_->read_again.push_back(c.slot_);
}

// --- output ---------------------------------------------------------------------------------

net::OutQueue& EventLoop::output_queue(Connection& c) {
  if (c.out_ == nullptr) {
    auto& spares = core_->spare_queues;
    if (!spares.empty()) {
      c.out_ = spares.back().release();
      spares.pop_back();
    } else {
      c.out_ = new net::OutQueue(core_->chunk_pool);
    }
    stats_.conns_with_output.add();
  }
  return *c.out_;
}

void EventLoop::release_output_queue(Connection& c) {
  if (c.out_ == nullptr) return;
  stats_.pending_output_bytes.sub(c.out_->bytes());
  c.out_->clear();
  if (core_->spare_queues.size() < 1024) {
    core_->spare_queues.emplace_back(c.out_);
  } else {
    delete c.out_;
  }
  c.out_ = nullptr;
  stats_.conns_with_output.sub();
}

// One send of `iov`. Returns the bytes written (0: the socket buffer is full), or -1
// after a fatal error, with the connection already scheduled to close. One part (an echo, a
// reply that fits in one buffer: the common case) goes by send(), not sendmsg(): the kernel
// then takes a single user buffer instead of copying in and checking an iovec array.
ssize_t EventLoop::send_iov(Connection& c, const iovec* iov, int n) {
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = static_cast<size_t>(n);
  for (;;) {
    ssize_t w = n == 1 ? ::send(c.fd_.get(), iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL | MSG_DONTWAIT)
                       : ::sendmsg(c.fd_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    stats_.write_calls.add();
    if (w >= 0) {
      stats_.bytes_out.add(static_cast<uint64_t>(w));
      return w;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return 0;
    c.last_error_ = errno;
    schedule_close(c, reason_for_errno(errno));
    return -1;
  }
}

bool EventLoop::write_parts(Connection& c, const ByteView* parts, size_t count,
                            const SharedBytes* body, bool defer) {
  if (c.flags_ & Connection::kTransport) {
    if (!c.open() || (c.flags_ & Connection::kLingering)) return false;
    return transport_output(c, parts, count, body, defer);
  }
  return write_raw(c, parts, count, body, defer);
}

bool EventLoop::write_raw(Connection& c, const ByteView* parts, size_t count,
                          const SharedBytes* body, bool defer) {
  if (!c.open() || (c.flags_ & Connection::kLingering)) return false;  // FIN already sent
  // A parked connection's socket may already be the new process's: hold the bytes.
  const bool parked = (c.flags_ & Connection::kParked) != 0;
  const bool queued = (c.out_ != nullptr && !c.out_->empty()) || parked;
  size_t total = body ? body->size() : 0;
  for (size_t i = 0; i < count; ++i) total += parts[i].size();
  if (total == 0) return true;

  size_t written = 0;
  if (!queued && !defer) {
    iovec iov[kMaxIov];
    int n = 0;
    for (size_t i = 0; i < count && n < kMaxIov - 1; ++i) {
      if (parts[i].empty()) continue;
      iov[n].iov_base = const_cast<std::byte*>(parts[i].data());
      iov[n++].iov_len = parts[i].size();
    }
    if (body && !body->empty()) {
      iov[n].iov_base = const_cast<std::byte*>(body->view().data());
      iov[n++].iov_len = body->size();
    }
    ssize_t w = send_iov(c, iov, n);
    if (w < 0) return false;
    written = static_cast<size_t>(w);
    if (written == total) return true;
  }

  // Queue what the kernel did not take, skipping the `written` bytes already sent.
  net::OutQueue& q = output_queue(c);
  size_t before = q.bytes();
  size_t skip = written;
  for (size_t i = 0; i < count; ++i) {
    ByteView p = parts[i];
    if (skip >= p.size()) {
      skip -= p.size();
      continue;
    }
    q.append(p.subspan(skip));
    skip = 0;
  }
  if (body && skip < body->size()) q.append_shared(*body, skip);
  stats_.pending_output_bytes.add(q.bytes() - before);
  if (defer && !parked && !(c.flags_ & Connection::kFlushScheduled)) {
    c.flags_ |= Connection::kFlushScheduled;
    core_->flush_list.push_back(c.slot_);
  }
  after_output_change(c);
  return c.open();
}

// Applies the output limits after the queue grew or shrank (Redis's
// checkClientOutputBufferLimits, with a pause before the hard limit).
void EventLoop::after_output_change(Connection& c) {
  // The memory held, not just the bytes counted: a queue of small headers each in its own
  // chunk, between shared payloads, holds far more than it has to send.
  size_t bytes = c.out_ ? c.out_->footprint() : 0;
  if (bytes > config_.output_hard_limit_bytes) {
    release_output_queue(c);
    schedule_close(c, CloseReason::kOutputOverflow);
    return;
  }
  if (bytes > config_.output_high_water_bytes && !(c.flags_ & Connection::kReadPausedByOutput)) {
    c.flags_ |= Connection::kReadPausedByOutput;
    stats_.backpressure_pauses.add();
  } else if (bytes <= config_.output_low_water_bytes &&
             (c.flags_ & Connection::kReadPausedByOutput)) {
    c.flags_ &= static_cast<uint16_t>(~Connection::kReadPausedByOutput);
    resume_reading(c);
    handlers_[c.handler_]->on_writable(c);
  }
}

void EventLoop::flush(Connection& c) {
  if (c.out_ == nullptr || (c.flags_ & Connection::kParked)) return;
  net::OutQueue& q = *c.out_;
  while (!q.empty()) {
    iovec iov[kMaxIov];
    int n = q.gather(iov, kMaxIov);
    size_t want = 0;
    for (int i = 0; i < n; ++i) want += iov[i].iov_len;
    ssize_t w = send_iov(c, iov, n);
    if (w < 0) {
      release_output_queue(c);
      return;
    }
    if (w == 0) break;  // EPOLLOUT (edge) will tell us when there is room
    q.consume(static_cast<size_t>(w));
    stats_.pending_output_bytes.sub(static_cast<uint64_t>(w));
    if (static_cast<size_t>(w) < want) break;  // socket buffer full
  }
  if (q.empty()) {
    release_output_queue(c);
    if (c.flags_ & Connection::kFlushThenClose) {
      close_gracefully(c);
      return;
    }
  }
  after_output_change(c);
}

void EventLoop::run_flush_list() {
  if (core_->flush_list.empty()) return;
  core_->scratch.clear();
  core_->scratch.swap(core_->flush_list);
  for (uint32_t s : core_->scratch) {
    Connection& c = core_->slot(s);
    c.flags_ &= static_cast<uint16_t>(~Connection::kFlushScheduled);
    if (c.open()) flush(c);
  }
}

// --- input ----------------------------------------------------------------------------------

void EventLoop::resume_reading(Connection& c) {
  if (c.flags_ & (Connection::kReadPausedByUser | Connection::kReadPausedByOutput)) return;
  if (!c.open()) return;
  // Bytes held for the handler while it was paused (it may have stopped consuming whole
  // frames) get presented again before anything new is read.
  if (c.in_ != nullptr) c.flags_ |= Connection::kRedeliver;
  // A FIN the handler kept the connection open after is read again (recv returns 0 for good)
  // and the handler asked again, after what it had not consumed.
  c.flags_ &= static_cast<uint16_t>(~Connection::kPeerShutdown);
  // Edge-triggered: data that arrived while paused raised no new event, so look now.
  read_again_later(c);
}

// The input limit bounds what a connection keeps between reads (a partial frame), not what
// one read brings: a read may hold the end of a frame plus the start of the next ones, so
// while the handler works the buffer may exceed the limit by at most one read.
bool EventLoop::deliver(Connection& c, ByteView fresh) {
  Handler& h = *handlers_[c.handler_];
  // Computed only when bytes are kept: the common read of whole frames pays nothing for it.
  auto limit_of = [&] {
    const size_t own = h.input_limit_bytes();
    return own != 0 ? own : config_.input_limit_bytes;
  };
  ByteView data = fresh;
  if (c.in_ != nullptr) {
    const size_t limit = limit_of();
    size_t before = c.in_->size;
    if (!net::pending_append(c.in_, fresh, limit + kReadBufferBytes)) {
      schedule_close(c, CloseReason::kInputOverflow);
      return false;
    }
    stats_.pending_input_bytes.add(c.in_->size - before);
    data = c.in_->view();
  }
  DataResult r = h.on_data(c, data);
  size_t consumed = std::min(r.consumed, data.size());
  // Activity is input the handler consumed (whole frames), not bytes that arrived: a partial
  // frame trickled a byte at a time must not keep an idle timeout from firing. The extension
  // is lazy: the wheel moves the node when its old bucket comes due.
  if (consumed != 0 && c.timeout_ticks_ != 0 && !(c.flags_ & Connection::kFixedDeadline))
    c.timer_.deadline_tick = now_tick() + c.timeout_ticks_;
  if (c.in_ != nullptr) {
    stats_.pending_input_bytes.sub(std::min<size_t>(consumed, c.in_->size));
    net::pending_consume(c.in_, consumed);
    if (c.in_ == nullptr) stats_.conns_with_input.sub();
  } else if (consumed < data.size() && !(c.flags_ & Connection::kClosing)) {
    ByteView rest = data.subspan(consumed);
    const size_t limit = limit_of();
    const bool paused = c.flags_ & Connection::kReadPausedByUser;  // see below
    if (!net::pending_append(c.in_, rest, paused ? limit + kReadBufferBytes : limit)) {
      schedule_close(c, CloseReason::kInputOverflow);
      return false;
    }
    stats_.pending_input_bytes.add(rest.size());
    stats_.conns_with_input.add();
  }
  // A partial frame larger than allowed. Not while the handler paused reading: then it may
  // have left whole frames (a rate limit), at most one read's worth, and reads no more.
  if (c.in_ != nullptr && c.in_->size > limit_of() &&
      !(c.flags_ & Connection::kReadPausedByUser)) {
    schedule_close(c, CloseReason::kInputOverflow);
    return false;
  }
  apply(c, r.action, CloseReason::kProtocol);
  return !(c.flags_ & (Connection::kClosing | Connection::kFlushThenClose));
}

void EventLoop::handle_read(Connection& c, bool peer_hung_up) {
  if (c.flags_ & Connection::kParked) return;  // resume_parked reads again
  if (c.flags_ & Connection::kLingering) {
    discard_input(c);
    return;
  }
  // Held input goes first, before whatever the socket has now, a FIN included: an epoll
  // event can come before the read-again list that was to present it.
  if ((c.flags_ & Connection::kRedeliver) && c.open()) {
    c.flags_ &= static_cast<uint16_t>(~Connection::kRedeliver);
    if (c.in_ != nullptr && !(c.flags_ & (Connection::kReadPausedByUser | Connection::kReadPausedByOutput |
                                          Connection::kFlushThenClose))) {
      if (!deliver(c, {})) return;
    }
  }
  std::byte* buf = core_->read_buffer.get();
  for (int i = 0; i < kMaxReadsPerWakeup; ++i) {
    if (!c.open() || (c.flags_ & (Connection::kFlushThenClose | Connection::kPeerShutdown |
                                  Connection::kReadPausedByUser |
                                  Connection::kReadPausedByOutput))) {
      return;
    }
    ssize_t n = ::recv(c.fd_.get(), buf, kReadBufferBytes, MSG_DONTWAIT);
    stats_.read_calls.add();
    if (n > 0) {
      stats_.bytes_in.add(static_cast<uint64_t>(n));
      if (c.flags_ & Connection::kTransport) {
        transport_input(c, MutableByteView{buf, static_cast<size_t>(n)});
        if (c.flags_ & (Connection::kClosing | Connection::kFlushThenClose)) return;
      } else if (!deliver(c, ByteView{buf, static_cast<size_t>(n)})) {
        return;
      }
      // A short read drained the socket: with edge-triggered epoll the next byte raises a
      // new event, so skip the recv that would only say EAGAIN. Not after a FIN, whose
      // event has been consumed and must still be read as 0.
      if (static_cast<size_t>(n) < kReadBufferBytes && !peer_hung_up) return;
      continue;
    }
    if (n == 0) {
      if (!handler_sees(c)) {
        transport_eof(c);
        return;
      }
      c.flags_ |= Connection::kPeerShutdown;
      apply(c, handlers_[c.handler_]->on_peer_shutdown(c), CloseReason::kPeerClosed);
      return;
    }
    if (errno == EAGAIN) return;
    if (errno == EINTR) continue;
    c.last_error_ = errno;
    schedule_close(c, reason_for_errno(errno));
    return;
  }
  // Cap reached: come back after everyone else had a turn (libuv's 32-reads rule).
  read_again_later(c);
}

void EventLoop::run_read_again() {
  if (core_->read_again.empty()) return;
  std::vector<uint32_t> batch;
  batch.swap(core_->read_again);
  for (uint32_t s : batch) {
    Connection& c = core_->slot(s);
    c.flags_ &= static_cast<uint16_t>(~Connection::kReadAgain);
    if (c.flags_ & Connection::kParked) continue;  // resume_parked puts it back on the list
    // Read to EAGAIN here, never stopping at a short read: a FIN whose edge was spent while
    // this connection was paused or capped raises no new event, so only a recv returning 0
    // can still find it (as if the peer had hung up).
    if (c.open()) handle_read(c, true);
  }
  if (core_->read_again.empty()) {
    batch.clear();
    core_->read_again.swap(batch);  // keep the capacity
  }
}

// --- accept and connect ---------------------------------------------------------------------

Connection* EventLoop::fill_slot(UniqueFd fd, uint8_t handler, uint16_t flags, void* user_data) {
  uint32_t slot;
  if (!core_->allocate_slot(slot)) return nullptr;
  Connection& c = core_->slot(slot);
  c.fd_ = std::move(fd);
  c.loop_ = this;
  c.slot_ = slot;
  c.flags_ = Connection::kOpen | flags;
  c.handler_ = handler;
  c.user_ = user_data;
  c.timeout_ticks_ = 0;
  c.last_error_ = 0;
  c.close_reason_ = CloseReason::kPeerClosed;
  return &c;
}

ConnId EventLoop::adopt(UniqueFd fd, uint8_t handler, bool connecting, void* user_data,
                        const net::TransportConfig* transport) {
  Connection* filled = fill_slot(std::move(fd), handler, connecting ? Connection::kConnecting : 0, user_data);
  if (filled == nullptr) return {};
  Connection& c = *filled;
  const uint32_t slot = c.slot_;
  ConnId id = ConnId::make(index_, slot, c.generation_);

  epoll_event ev{};
  ev.events = kConnEvents;  // registered once; EPOLLOUT is edge-triggered so it costs nothing
  ev.data.u64 = id.value;   // until a write has hit EAGAIN, and no epoll_ctl(MOD) is needed
  if (::epoll_ctl(core_->epoll.get(), EPOLL_CTL_ADD, c.fd_.get(), &ev) != 0) {
    c.last_error_ = errno;
    c.fd_.reset();
    c.flags_ = 0;
    core_->free_slots.push_back(slot);
    return {};
  }
  ++live_;
  stats_.connections.add();
  if (config_.idle_timeout_ms) set_conn_timeout(c, config_.idle_timeout_ms, false);
  if (transport != nullptr && !start_transport(c, *transport)) {
    schedule_close(c, CloseReason::kProtocol);
    return id;
  }
  // With a transport the handler hears of the connection once its handshakes are done.
  if (!connecting && handler_sees(c)) apply(c, handlers_[handler]->on_open(c), CloseReason::kProtocol);
  return id;
}

void EventLoop::pause_listener(uint32_t listener, int err) {
  auto& l = core_->listeners[listener];
  if (l.paused) return;
  l.paused = true;
  stats_.accept_paused.add();
  ::epoll_ctl(core_->epoll.get(), EPOLL_CTL_DEL, l.fd.get(), nullptr);
  if (now_ms_ - core_->last_accept_warning_ms >= 10000 || core_->last_accept_warning_ms == 0) {
    core_->last_accept_warning_ms = now_ms_;
    spdlog::critical("loop {}: accept failed ({}); pausing the listener for {} ms "
                     "(raise RLIMIT_NOFILE or lower --max-connections; see tcpms-doctor)",
                     index_, net::errno_text(err), kAcceptPauseMs);
  }
  // Pending connections stay in the kernel's accept queue and are served once descriptors
  // free up; nothing spins meanwhile (nginx's approach).
  run_after(kAcceptPauseMs, [this, listener] {
    auto& ls = core_->listeners[listener];
    if (!ls.paused || !ls.fd) return;
    ls.paused = false;
    if (ls.held) return;  // release_held_listeners adds it back
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = ConnId::make(index_, listener, 0).value;
    ::epoll_ctl(core_->epoll.get(), EPOLL_CTL_ADD, ls.fd.get(), &ev);
  });
}

void EventLoop::set_admitting(Connection& c, bool on) {
  const bool counted = (c.flags_ & Connection::kAdmitting) != 0;
  if (on == counted) return;
  if (on) {
    c.flags_ |= Connection::kAdmitting;
    ++core_->admitting;
    stats_.admitting.add();
    return;
  }
  c.flags_ &= static_cast<uint16_t>(~Connection::kAdmitting);
  ++core_->churn_since_trim;
  core_->last_churn_ms = now_ms_;
  --core_->admitting;
  stats_.admitting.sub();
  // Resume below three quarters, not at the first one through: accepting in batches, not one
  // connection per login.
  if (core_->listeners_held && core_->admitting <= config_.max_admitting / 4 * 3)
    release_held_listeners();
}

void EventLoop::hold_listeners() {
  if (core_->listeners_held) return;
  core_->listeners_held = true;
  stats_.accept_held.add();
  for (auto& l : core_->listeners) {
    if (!l.fd || l.paused || l.held || l.is_unix) continue;
    l.held = true;
    ::epoll_ctl(core_->epoll.get(), EPOLL_CTL_DEL, l.fd.get(), nullptr);
  }
}

void EventLoop::release_held_listeners() {
  core_->listeners_held = false;
  for (size_t i = 0; i < core_->listeners.size(); ++i) {
    auto& l = core_->listeners[i];
    if (!l.held) continue;
    l.held = false;
    if (!l.fd || l.paused) continue;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = ConnId::make(index_, static_cast<uint32_t>(i), 0).value;
    ::epoll_ctl(core_->epoll.get(), EPOLL_CTL_ADD, l.fd.get(), &ev);
  }
}

void EventLoop::handle_accept(uint32_t listener) {
  auto& l = core_->listeners[listener];
  for (int i = 0; i < kMaxAcceptsPerWakeup && l.fd && !l.paused; ++i) {
    // Worker-process links (Unix listeners) are never held: they are how logins finish.
    if (config_.max_admitting != 0 && core_->admitting >= config_.max_admitting && !l.is_unix) {
      hold_listeners();
      return;
    }
    UniqueFd fd(::accept4(l.fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) {
      int err = errno;
      switch (err) {
        case EAGAIN:
          return;
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
        case EPERM:
          stats_.accept_errors.add();
          continue;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
          pause_listener(listener, err);
          return;
        default:
          stats_.accept_errors.add();
          spdlog::error("loop {}: accept: {}", index_, net::errno_text(err));
          return;
      }
    }
    if (core_->shared_count != nullptr) {
      int64_t before = core_->shared_count->fetch_add(1, std::memory_order_relaxed);
      if (core_->max_connections > 0 && before >= core_->max_connections) {
        core_->shared_count->fetch_sub(1, std::memory_order_relaxed);
        stats_.rejected_over_limit.add();
        ++core_->cap_rejected_unlogged;
        if (core_->last_cap_warning_ms == 0 || now_ms_ - core_->last_cap_warning_ms >= 10000) {
          core_->last_cap_warning_ms = now_ms_;
          spdlog::warn("loop {}: max_connections ({}) reached; closed {} new connection(s) at "
                       "accept (raise --max-connections, or add processes or nodes)",
                       index_, core_->max_connections, core_->cap_rejected_unlogged);
          core_->cap_rejected_unlogged = 0;
        }
        continue;  // `fd` closes here: accept-and-close, as documented for the cap
      }
    }
    // A listener's own cap (ListenerOptions::max_connections), released in free_transport.
    std::atomic<int64_t>* listener_count = l.transport ? l.transport->listener_count : nullptr;
    if (listener_count != nullptr) {
      int64_t before = listener_count->fetch_add(1, std::memory_order_relaxed);
      if (l.transport->max_connections > 0 && before >= l.transport->max_connections) {
        listener_count->fetch_sub(1, std::memory_order_relaxed);
        if (core_->shared_count) core_->shared_count->fetch_sub(1, std::memory_order_relaxed);
        stats_.listener_rejected.add();
        continue;  // closed here, like the server-wide cap
      }
    }
    if (config_.tcp_nodelay && !l.is_unix) net::set_tcp_nodelay(fd.get());
    stats_.accepted.add();
    ConnId id = adopt(std::move(fd), l.handler, false, nullptr, l.transport);
    if (!id.valid()) {
      if (core_->shared_count) core_->shared_count->fetch_sub(1, std::memory_order_relaxed);
      if (listener_count) listener_count->fetch_sub(1, std::memory_order_relaxed);
      stats_.accept_errors.add();
    } else if (core_->shared_count) {
      // Released in run_closing. Set after on_open, which cannot have freed the slot yet.
      core_->slot(id.slot()).flags_ |= Connection::kCounted;
    }
  }
}

ConnId EventLoop::connect(const sockaddr_storage& target, const sockaddr_storage* source,
                          uint8_t handler, int& error, void* user_data) {
  auto inet_len = [](const sockaddr_storage& ss) -> socklen_t {
    return ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  };
  Endpoint to = Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&target), inet_len(target));
  if (source == nullptr) return connect(to, nullptr, handler, error, user_data);
  Endpoint from = Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(source), inet_len(*source));
  return connect(to, &from, handler, error, user_data);
}

ConnId EventLoop::connect(const Endpoint& target, const Endpoint* source, uint8_t handler,
                          int& error, void* user_data) {
  UniqueFd fd(::socket(target.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    error = errno;
    return {};
  }
  if (source != nullptr && !target.is_unix()) {
    int one = 1;
    // Defer the port choice to connect(), where the kernel picks per 4-tuple, so each source
    // address gets its own ~28K ports instead of sharing one ephemeral range.
    ::setsockopt(fd.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&source->addr), source->len) != 0) {
      error = errno;
      return {};
    }
  }
  if (config_.tcp_nodelay && !target.is_unix()) net::set_tcp_nodelay(fd.get());
  int r = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&target.addr), target.len);
  if (r != 0 && errno != EINPROGRESS) {  // (a Unix socket says EAGAIN when its backlog is full)
    error = errno;
    return {};
  }
  stats_.connects_started.add();
  const net::TransportConfig* transport =
      handler < core_->outbound.size() ? core_->outbound[handler] : nullptr;
  ConnId id = adopt(std::move(fd), handler, r != 0, user_data, transport);
  if (id.valid() && r == 0 && transport != nullptr) {
    Connection& c = core_->slot(id.slot());
    if (c.open()) transport_connected(c);  // connected at once (a Unix socket)
  }
  if (!id.valid()) {
    error = ENOBUFS;
    return {};
  }
  error = 0;
  return id;
}

void EventLoop::finish_connect(Connection& c) {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(c.fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) {
    c.last_error_ = err;
    schedule_close(c, CloseReason::kConnectFailed);
    return;
  }
  c.flags_ &= static_cast<uint16_t>(~Connection::kConnecting);
  if (c.flags_ & Connection::kTransport) {
    transport_connected(c);  // the handshakes first; on_open when they are done
    return;
  }
  apply(c, handlers_[c.handler_]->on_open(c), CloseReason::kProtocol);
}

// --- the loop -------------------------------------------------------------------------------

void EventLoop::dispatch(uint64_t tag, uint32_t events) {
  ConnId id{tag};
  if (id.generation() == 0) {
    if (id.slot() == net::LoopCore::kWakeTag) {
      core_->wake_pending = true;  // tasks run in their own phase
      return;
    }
    handle_accept(id.slot());
    return;
  }
  // A stale event for a slot closed earlier in this batch fails the generation check
  // (nginx's `instance` bit, widened to 32 bits).
  Connection* c = find(id);
  if (c == nullptr) return;
  if (c->flags_ & Connection::kConnecting) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    finish_connect(*c);
    if (!c->open()) return;
  }
  if ((events & EPOLLOUT) && c->out_ != nullptr) flush(*c);
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    handle_read(*c, (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0);
  }
}

void EventLoop::run_timers() {
  core_->wheel.advance(now_tick(), [this](uint32_t slot) {
    Connection& c = core_->slot(slot);
    if (!c.open() || (c.flags_ & Connection::kParked)) return;  // resume_parked re-arms it
    if (c.flags_ & Connection::kLingering) {
      schedule_close(c, c.close_reason_);  // all was sent; the peer just never sent its FIN
      return;
    }
    if (c.flags_ & Connection::kFlushThenClose) {
      schedule_close(c, CloseReason::kIdleTimeout);
      return;
    }
    if (!handler_sees(c)) {
      transport_timeout(c);  // a handshake past its deadline
      return;
    }
    Action a = handlers_[c.handler_]->on_timeout(c);
    if (a == Action::kKeep) {
      // From the loop's clock: after a stall the wheel is still catching up on old ticks.
      if (c.timeout_ticks_ && c.open() && !core_->wheel.scheduled(slot))
        core_->wheel.schedule(slot, now_tick() + c.timeout_ticks_);
      return;
    }
    apply(c, a, CloseReason::kIdleTimeout);
  });

  while (!core_->timer_order.empty() && core_->timer_order.begin()->first <= now_ms_) {
    auto [due, id] = *core_->timer_order.begin();
    core_->timer_order.erase(core_->timer_order.begin());
    auto it = core_->timers.find(id);
    if (it == core_->timers.end()) continue;  // cancelled
    if (it->second.period_ms == 0) {
      Task task = std::move(it->second.task);
      core_->timers.erase(it);
      task();
    } else {
      core_->timer_order.emplace(now_ms_ + it->second.period_ms, id);
      // Run the stored task itself, not a copy, so state a mutable lambda keeps carries over
      // to the next period. It is moved out while it runs because it may cancel its own
      // timer (erasing the map entry); it goes back only if the timer still exists.
      Task task = std::move(it->second.task);
      task();
      if (auto again = core_->timers.find(id); again != core_->timers.end())
        again->second.task = std::move(task);
    }
  }
}

void EventLoop::run_closing() {
  while (!core_->closing.empty()) {
    std::vector<uint32_t> batch;
    batch.swap(core_->closing);
    for (uint32_t s : batch) {
      Connection& c = core_->slot(s);
      // on_close may close other connections; they join the next round of this loop. A
      // connection that never got through its handshakes was never the handler's.
      if (c.close_reason_ == CloseReason::kHandedOver) {
        handlers_[c.handler_]->on_handed_over(c);  // it moved: no goodbyes
      } else if (handler_knows(c)) {
        handlers_[c.handler_]->on_close(c, c.close_reason_);
      }
      if (c.flags_ & Connection::kTransport) free_transport(c);
      set_admitting(c, false);
      core_->wheel.cancel(s);
      if (c.in_ != nullptr) {
        stats_.pending_input_bytes.sub(c.in_->size);
        stats_.conns_with_input.sub();
        net::pending_free(c.in_);
      }
      release_output_queue(c);
      c.fd_.reset();  // also removes it from the epoll set
      if ((c.flags_ & Connection::kCounted) && core_->shared_count)
        core_->shared_count->fetch_sub(1, std::memory_order_relaxed);
      c.user_ = nullptr;
      c.flags_ = 0;
      if (++c.generation_ == 0) c.generation_ = 1;  // 0 tags listeners and the wake-up fd
      core_->free_slots.push_back(s);
      --live_;
      stats_.connections.sub();
      stats_.closed_by_reason[static_cast<size_t>(c.close_reason_)].add();
      ++core_->churn_since_trim;
      core_->last_churn_ms = now_ms_;
    }
  }
}

// Logins and handshakes need memory for a moment (a pending CONNECT, its claim at the id's
// home, the frames and tasks of the round trip; a TLS handshake's record buffers, key shares
// and certificate messages, tens of KB) between the allocations that stay (the session, its
// subscriptions). After a storm the allocator keeps the transient part as free chunks among
// live ones: pages the process holds for nothing, and never gives back by itself (glibc only
// returns the top of a heap). Measured: 100,000 MQTT logins over 8 worker processes left 693
// bytes per client, 535 after a trim; 1,000 TLS handshakes in flight left 30 KB per idle
// connection instead of 15. So once a second at most, after a thousand logins or closes or
// any TLS handshake, and once more when a burst has been over for a second (what its last
// moments left), malloc_trim returns the free pages inside the heaps to the kernel, on the
// worker pool so that the loop does not wait for it.
void EventLoop::trim_after_churn() {
  using net::LoopCore;
  // Deliveries to thousands of clients in one iteration fill the output chunk pool to its
  // bounds; the chunks no write needed for a second go back to the allocator and count as
  // churn, so the trim below returns their pages (the pool holds up to 12 MiB a loop).
  auto& pool = core_->chunk_pool;
  if (pool.idle() > LoopCore::kKeepIdleLargeChunks + LoopCore::kKeepIdleSmallChunks) {
    if (now_ms_ - core_->last_shed_ms >= 1000) {
      core_->last_shed_ms = now_ms_;
      core_->churn_since_trim += static_cast<uint32_t>(
          pool.shed_unused(LoopCore::kKeepIdleLargeChunks, LoopCore::kKeepIdleSmallChunks));
    }
    if (!core_->shed_check_armed) {  // an idle loop may not wake by itself
      core_->shed_check_armed = true;
      run_after(1100, [this] { core_->shed_check_armed = false; });
    }
  }
  const uint32_t churn = core_->churn_since_trim;
  if (churn < LoopCore::kTrimChurnWhenQuiet) return;
  const bool burst_over = now_ms_ - core_->last_churn_ms >= 1000;
  const bool due = now_ms_ - core_->last_trim_ms >= 1000 && (churn >= LoopCore::kTrimChurn || burst_over);
  if (!due) {
    if (!core_->trim_check_armed) {  // an idle loop may not wake by itself to see the burst end
      core_->trim_check_armed = true;
      run_after(1100, [this] { core_->trim_check_armed = false; });
    }
    return;
  }
  core_->churn_since_trim = 0;
  core_->last_trim_ms = now_ms_;
  if (server_ != nullptr) {
    server_->workers().submit([] { ::malloc_trim(0); });
  } else {
    ::malloc_trim(0);
  }
}

int EventLoop::next_timeout_ms() const {
  if (!core_->read_again.empty() || !core_->closing.empty() || !core_->flush_list.empty())
    return 0;
  int64_t wait = -1;
  if (core_->wheel.size() > 0) {
    uint64_t next_tick_ms = (now_ms_ / config_.timer_tick_ms + 1) * config_.timer_tick_ms;
    wait = static_cast<int64_t>(next_tick_ms - now_ms_);
  }
  if (!core_->timer_order.empty()) {
    int64_t due = static_cast<int64_t>(core_->timer_order.begin()->first) -
                  static_cast<int64_t>(now_ms_);
    due = std::max<int64_t>(due, 0);
    wait = wait < 0 ? due : std::min(wait, due);
  }
  return static_cast<int>(wait);
}

void EventLoop::run() {
  t_current_loop = this;
  constexpr int kMaxEvents = 512;
  epoll_event events[kMaxEvents];
  for (;;) {
    const int timeout_ms = next_timeout_ms();
    const uint64_t wait_start = coarse_ns();
    int n = ::epoll_wait(core_->epoll.get(), events, kMaxEvents, timeout_ms);
    uint64_t busy_start = monotonic_ns();
    uint64_t mark = coarse_ns();
    now_ms_ = busy_start / 1000000;
    stats_.loop_iterations.add();
    if (n < 0 && errno != EINTR) {
      spdlog::critical("loop {}: epoll_wait: {}", index_, net::errno_text(errno));
      break;
    }
    if (n == 0 && timeout_ms >= 0) {
      const uint64_t asked = static_cast<uint64_t>(timeout_ms) * 1000000;
      if (mark - wait_start > asked + kStallNs) note_late_wakeup(mark - wait_start - asked);
    }
    IterationPhases phases{};
    phases.events = static_cast<uint32_t>(std::max(n, 0));
    auto lap = [&mark](uint64_t& into) {
      const uint64_t now = coarse_ns();
      into = now - mark;
      mark = now;
    };
    for (int i = 0; i < n; ++i) dispatch(events[i].data.u64, events[i].events);
    lap(phases.events_ns);
    run_read_again();
    lap(phases.read_again_ns);
    if (core_->wake_pending) {
      // Only when the eventfd fired: an iteration without posted tasks costs no read().
      core_->wake_pending = false;
      phases.tasks = core_->tasks.run_all();
      stats_.tasks_run.add(phases.tasks);
    }
    lap(phases.tasks_ns);
    run_timers();
    lap(phases.timers_ns);
    run_flush_list();
    lap(phases.flush_ns);
    run_closing();
    lap(phases.closing_ns);
    trim_after_churn();
    lap(phases.trim_ns);
    const uint64_t busy = monotonic_ns() - busy_start;
    stats_.busy_ns.add(busy);
    if (busy > stats_.longest_iteration_ns.get()) stats_.longest_iteration_ns.set(busy);
    if (busy >= kStallNs) note_stall(busy, phases);
    if (stop_requested_.load(std::memory_order_relaxed)) break;
    if (draining_.load(std::memory_order_relaxed) && live_ == 0) break;
  }
  core_->tasks.close();
  t_current_loop = nullptr;
}

void EventLoop::note_stall(uint64_t busy_ns, const IterationPhases& p) {
  stats_.stalls.add();
  if (core_->last_stall_warning_ms != 0 && now_ms_ - core_->last_stall_warning_ms < 10000) return;
  core_->last_stall_warning_ms = now_ms_;
  auto ms = [](uint64_t ns) { return ns / 1000000; };
  spdlog::warn("loop {}: one iteration took {} ms, and every connection of this loop waited: "
               "{} ms on {} events, {} ms reading again, {} ms on {} tasks, {} ms on timers, "
               "{} ms flushing, {} ms closing, {} ms trimming ({} such iterations so far)",
               index_, ms(busy_ns), ms(p.events_ns), p.events, ms(p.read_again_ns), ms(p.tasks_ns),
               p.tasks, ms(p.timers_ns), ms(p.flush_ns), ms(p.closing_ns), ms(p.trim_ns),
               stats_.stalls.get());
}

void EventLoop::note_late_wakeup(uint64_t late_ns) {
  stats_.late_wakeups.add();
  if (core_->last_stall_warning_ms != 0 && now_ms_ - core_->last_stall_warning_ms < 10000) return;
  core_->last_stall_warning_ms = now_ms_;
  spdlog::warn("loop {}: woke {} ms after its timer was due: the process waited that long for a "
               "CPU ({} such wake-ups so far)",
               index_, late_ns / 1000000, stats_.late_wakeups.get());
}

}  // namespace tcpms
