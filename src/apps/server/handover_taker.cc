#include "handover_taker.h"

#include <unistd.h>

#include <functional>

#include <fmt/format.h>

#include "net/socket.h"
#include "on_loop.h"

namespace tcpms::app {
namespace {
namespace hf = net::handover;
constexpr int kUntilHungUpMs = 24 * 3600 * 1000;
}  // namespace

bool same_listen_address(const Endpoint& configured, const std::string& theirs) {
  if (configured.to_string() == theirs) return true;
  auto t = Endpoint::parse(theirs);
  if (!t || configured.is_unix() || configured.port() != 0) return false;
  t->set_port(0);
  return t->to_string() == configured.to_string();
}

std::string changed_process_count(unsigned running, unsigned here) {
  auto processes = [](unsigned n) {
    return n > 1 ? fmt::format("{} worker processes", n) : std::string("1 process (no worker processes)");
  };
  return fmt::format("the running server has {}, this one {}: a changed process count cannot "
                     "hand over yet (restart instead)", processes(running), processes(here));
}

bool sent_by_supervisor(const std::vector<UniqueFd>& listener_fds) {
  for (const auto& fd : listener_fds)
    if (!net::is_listening(fd.get())) return true;
  return false;
}

std::string HandoverTaker::take_listeners(Server& server, const std::string& protocol,
                                          const std::vector<Listener>& listeners) {
  if (auto e = channel_.send(hf::Hello{hf::kLowestVersion, hf::kHighestVersion,
                                       static_cast<uint32_t>(::getpid())}, {});
      !e.empty())
    return "hello: " + e;
  auto r = channel_.receive(timeout_ms_);
  if (!r.ok()) return "waiting for the running server's welcome: " + r.error;
  if (auto* refuse = std::get_if<hf::Refuse>(&r.frame)) return "the running server refused: " + refuse->reason;
  auto* w = std::get_if<hf::Welcome>(&r.frame);
  if (w == nullptr) return "the running server did not answer with a Welcome";
  version_ = w->version;
  old_pid_ = static_cast<pid_t>(w->pid);
  const uint32_t their_loops = w->loops;
  if (w->protocol != protocol) {
    std::string why = fmt::format("the running server serves {}, this one {}", w->protocol, protocol);
    channel_.send(hf::Refuse{hf::RefuseCode::kProtocol, why}, {});
    return why;
  }
  auto l = channel_.receive(timeout_ms_);
  if (!l.ok()) return "waiting for the listeners: " + l.error;
  auto* frame = std::get_if<hf::Listeners>(&l.frame);
  if (frame == nullptr) return "expected the listeners";
  // A supervisor's reserved ports cannot be accepted from (this process would spin on
  // EINVAL), and it would wait for worker channels this process has not got.
  if (sent_by_supervisor(l.fds)) {
    std::string why = changed_process_count(their_loops, 1);
    channel_.send(hf::Refuse{hf::RefuseCode::kConfig, why}, {});
    return why;
  }
  // Same configuration, same listeners in the same order: an address that does not match is
  // refused rather than served on the wrong protocol or transport.
  std::vector<std::vector<UniqueFd>> by_listener(listeners.size());
  for (size_t i = 0; i < frame->entries.size(); ++i) {
    const auto& e = frame->entries[i];
    const bool same = e.index < listeners.size() && same_listen_address(listeners[e.index].at, e.address);
    if (!same) {
      std::string why = fmt::format("listener {} is {} there, {} here: start the new server with "
                                    "the same listeners", e.index, e.address,
                                    e.index < listeners.size() ? listeners[e.index].at.to_string() : "(none)");
      channel_.send(hf::Refuse{hf::RefuseCode::kConfig, why}, {});
      return why;
    }
    by_listener[e.index].push_back(std::move(l.fds[i]));
  }
  for (size_t i = 0; i < by_listener.size(); ++i)
    if (!by_listener[i].empty()) server.inherit_listeners(i, std::move(by_listener[i]));
  hf::Taken t;
  t.sequence = 0;
  t.taken.assign(frame->entries.size(), 1);
  if (auto e = channel_.send(t, {}, version_); !e.empty()) return "listeners taken: " + e;
  return {};
}

std::string HandoverTaker::take_connections(Server& server) {
  // Nothing is read here until the old process is done (Handler::hold_input_for_handover):
  // a client that connected here meanwhile must not publish to subscribers still there.
  auto hold_everywhere = [&server](bool hold) {
    for (size_t i = 0; i < server.loop_count(); ++i)
      run_on_loop(server.loop(i), [hold](EventLoop& loop) { loop.hold_input_for_handover(hold); });
  };
  hold_everywhere(true);
  struct Release {
    std::function<void(bool)> hold;
    ~Release() { hold(false); }
  } release{hold_everywhere};
  // From version 4 what is taken stays parked until Done is answered: until then the old
  // process may take it all back (it resumes them when this process dies or stops).
  const bool parked = version_ >= hf::kDoneAnsweredVersion;
  adopted_.assign(server.loop_count(), {});
  auto forget_adopted = [&] {
    for (size_t li = 0; li < adopted_.size(); ++li)
      run_on_loop(server.loop(li), [&](EventLoop& loop) {
        for (ConnId id : adopted_[li]) loop.release_parked(id);
      });
    taken_ = 0;
  };
  for (;;) {
    auto r = channel_.receive(timeout_ms_);
    if (!r.ok()) {
      if (parked) forget_adopted();
      return r.error;
    }
    if (std::holds_alternative<hf::Done>(r.frame)) {
      if (parked) {
        // Done asks whether we hold it all; the second Done commits. Between the two the old
        // process may wait for others (its supervisor, every worker's pair): only its hanging
        // up stops the wait.
        const hf::Done answer{static_cast<uint32_t>(taken_)};
        if (auto e = channel_.send(answer, {}, version_); !e.empty()) {
          forget_adopted();
          return "answering done: " + e;
        }
        auto commit = channel_.receive(kUntilHungUpMs);
        if (!commit.ok() || !std::holds_alternative<hf::Done>(commit.frame)) {
          forget_adopted();
          if (!commit.ok()) return "waiting for the commit: " + commit.error;
          if (auto* refuse = std::get_if<hf::Refuse>(&commit.frame)) return "not committed: " + refuse->reason;
          return "expected the commit";
        }
        if (auto e = channel_.send(answer, {}, version_); !e.empty()) {
          forget_adopted();
          return "answering the commit: " + e;
        }
        for (size_t li = 0; li < adopted_.size(); ++li)
          run_on_loop(server.loop(li), [&](EventLoop& loop) {
            for (ConnId id : adopted_[li]) loop.resume_parked(id);
          });
      }
      if (before_release_) before_release_();
      return {};
    }
    if (auto* st = std::get_if<hf::State>(&r.frame)) {
      hf::Taken answer;
      answer.sequence = st->sequence;
      for (const std::string& item : st->items)
        answer.taken.push_back(state_importer_ && state_importer_(as_bytes(item)) ? 1 : 0);
      state_items_ += st->items.size();
      if (auto e = channel_.send(answer, {}, version_); !e.empty()) return "answer: " + e;
      continue;
    }
    auto* batch = std::get_if<hf::Batch>(&r.frame);
    if (batch == nullptr) {
      if (parked) forget_adopted();
      return "expected a batch of connections or Done";
    }
    // Spread over the loops in turn; each loop adopts its share in one task.
    const size_t loops = server.loop_count();
    std::vector<std::vector<size_t>> share(loops);
    for (size_t i = 0; i < batch->connections.size(); ++i) share[next_loop_++ % loops].push_back(i);
    hf::Taken answer;
    answer.sequence = batch->sequence;
    answer.taken.assign(batch->connections.size(), 0);
    for (size_t li = 0; li < loops; ++li) {
      if (share[li].empty()) continue;
      run_on_loop(server.loop(li), [&](EventLoop& loop) {
        for (size_t i : share[li]) {
          const hf::ConnectionState& s = batch->connections[i];
          HandedConnection h;
          h.id = ConnId{s.old_id};
          h.handler = static_cast<uint8_t>(s.handler);
          h.idle_timeout_ms = s.idle_timeout_ms;
          h.unread_input = s.unread_input;
          h.unsent_output = s.unsent_output;
          h.protocol_state = s.protocol_state;
          h.transport = s.transport;
          if (s.handler >= 256) continue;
          const ConnId id = loop.adopt_handed(std::move(r.fds[i]), h, parked);
          if (!id.valid()) continue;
          answer.taken[i] = 1;
          if (parked) adopted_[li].push_back(id);
        }
      });
    }
    for (uint8_t v : answer.taken) taken_ += v;
    if (auto e = channel_.send(answer, {}, version_); !e.empty()) {
      if (parked) forget_adopted();
      return "answer: " + e;
    }
  }
}

}  // namespace tcpms::app
