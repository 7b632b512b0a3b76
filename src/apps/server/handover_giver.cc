#include "handover_giver.h"

#include <signal.h>
#include <unistd.h>

#include <future>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "net/handover_channel.h"
#include "on_loop.h"
#include "successor.h"

namespace tcpms::app {
namespace {

namespace hf = net::handover;

void set_accepting_everywhere(Server& server, bool on) {
  for (size_t i = 0; i < server.loop_count(); ++i)
    run_on_loop(server.loop(i), [on](EventLoop& loop) { loop.set_accepting(on); });
}

void hold_input_everywhere(Server& server, bool hold) {
  for (size_t i = 0; i < server.loop_count(); ++i)
    run_on_loop(server.loop(i), [hold](EventLoop& loop) { loop.hold_input_for_handover(hold); });
}

// Connections the successor took and this process still holds parked, by loop (handover
// version 4 on): they are let go only once Done is answered, and resumed on any stop before.
using Kept = std::vector<std::vector<ConnId>>;

void for_each_kept(Server& server, const Kept& kept, void (EventLoop::*what)(ConnId)) {
  for (size_t li = 0; li < kept.size(); ++li) {
    if (kept[li].empty()) continue;
    run_on_loop(server.loop(li), [&](EventLoop& loop) {
      for (ConnId id : kept[li]) (loop.*what)(id);
    });
  }
}

// The successor did not answer Done: what it took and we still hold is resumed (it never
// served them). If it then holds nothing it is stopped (it has only copies of our listeners);
// if it took connections before version 4 it keeps serving them, and we serve the rest. A
// successor we did not start (worker processes) stops by itself when the channel closes.
void give_up(GiverOutcome& out, Server& server, pid_t pid, bool ours, Kept& kept) {
  size_t resumed = 0;
  for (const auto& ids : kept) resumed += ids.size();
  for_each_kept(server, kept, &EventLoop::resume_parked);
  kept.assign(kept.size(), {});
  out.handed -= resumed;
  set_accepting_everywhere(server, true);
  hold_input_everywhere(server, false);
  std::string stopped;
  if (out.handed == 0 && pid > 0 && ours) {
    stopped = fmt::format(" (the new process, pid {}, {})", pid, stop_successor(pid));
    out.successor = -1;
  }
  spdlog::error("SIGUSR2: handover stopped: {}; this process (pid {}) keeps serving {} "
                "connection(s){}{}{}", out.error, ::getpid(), server.connection_count(),
                resumed != 0 ? fmt::format(", {} of them taken back from the new process", resumed) : "",
                out.handed != 0 ? fmt::format(", the new process (pid {}) the {} it took", pid, out.handed)
                                : "", stopped);
}

// One batch from one loop: park, send, wait for the answer, then release what was taken
// and resume the rest. False when the channel failed (everything of the batch resumed).
bool hand_batch(Server& server, EventLoop& loop, net::HandoverChannel& channel,
                const GiverConfig& config, uint16_t version, uint32_t sequence, uint32_t& cursor,
                bool& loop_done, GiverOutcome& out, std::vector<ConnId>* keep_taken) {
  std::vector<HandedConnection> parked;
  // A successor that cannot be told of a transport gets none: those connections stay here.
  const TravellingTransports transports = version >= hf::kTlsWebSocketVersion ? TravellingTransports::kAll
                                          : version >= hf::kTransportVersion ? TravellingTransports::kAddressOnly
                                                                              : TravellingTransports::kNone;
  const bool ran = run_on_loop(loop, [&](EventLoop& l) {
    l.park_for_handover(std::min<size_t>(config.batch, net::HandoverChannel::kMaxDescriptorsPerFrame),
                        cursor, parked, transports);
    loop_done = l.scan_done(cursor);
  });
  if (!ran) loop_done = true;  // a loop that stopped has nothing to hand over
  if (parked.empty()) return true;
  hf::Batch batch;
  batch.sequence = sequence;
  std::vector<int> fds;
  for (auto& h : parked) {
    hf::ConnectionState s;
    s.old_id = h.id.value;
    s.handler = h.handler;
    s.idle_timeout_ms = h.idle_timeout_ms;
    s.unread_input = std::move(h.unread_input);
    s.unsent_output = std::move(h.unsent_output);
    s.protocol_state = std::move(h.protocol_state);
    s.transport = std::move(h.transport);
    batch.connections.push_back(std::move(s));
    fds.push_back(h.fd);
  }
  std::vector<uint8_t> taken(parked.size(), 0);
  std::string err = channel.send(batch, fds, version);
  if (err.empty()) {
    auto r = channel.receive(static_cast<int>(config.timeout_ms));
    auto* t = r.ok() ? std::get_if<hf::Taken>(&r.frame) : nullptr;
    if (!r.ok()) err = r.error;
    else if (t == nullptr) err = "expected the answer to a batch, got another frame";
    else if (t->sequence != sequence || t->taken.size() != parked.size())
      err = "the answer does not match the batch sent";
    else taken = t->taken;
  }
  run_on_loop(loop, [&](EventLoop& l) {
    for (size_t i = 0; i < parked.size(); ++i) {
      if (!taken[i]) l.resume_parked(parked[i].id);
      else if (keep_taken != nullptr) keep_taken->push_back(parked[i].id);
      else l.release_parked(parked[i].id);
    }
  });
  for (uint8_t t : taken) (t ? out.handed : out.refused) += 1;
  if (!err.empty()) out.error = "batch " + std::to_string(sequence) + ": " + err;
  return err.empty();
}

// The state on no connection, in State frames of at most kStateFrameBytes, each answered.
// What the new process does not take is lost with this process: counted and logged.
std::string send_state(net::HandoverChannel& channel, const GiverConfig& config,
                       uint16_t version, uint32_t& sequence, GiverOutcome& out) {
  constexpr size_t kStateFrameBytes = 16u << 20;
  std::vector<std::string> items = config.state_items();
  size_t next = 0, refused = 0;
  while (next < items.size()) {
    hf::State st;
    st.sequence = sequence++;
    size_t bytes = 0;
    while (next < items.size() && (st.items.empty() || bytes + items[next].size() < kStateFrameBytes)) {
      bytes += items[next].size() + 4;
      st.items.push_back(std::move(items[next++]));
    }
    if (std::string e = channel.send(st, {}, version); !e.empty()) return e;
    auto r = channel.receive(static_cast<int>(config.timeout_ms));
    auto* t = r.ok() ? std::get_if<hf::Taken>(&r.frame) : nullptr;
    if (!r.ok()) return r.error;
    if (t == nullptr || t->sequence != st.sequence || t->taken.size() != st.items.size())
      return "the answer does not match the state sent";
    for (uint8_t v : t->taken) refused += v ? 0 : 1;
  }
  out.state_items = items.size();
  if (refused != 0)
    spdlog::error("SIGUSR2: the new process refused {} of {} item(s) of state on no connection; "
                  "they are lost with this process", refused, items.size());
  return {};
}

}  // namespace

GiverOutcome give_everything(Server& server, const GiverConfig& config,
                             const std::function<void()>& before_done, UniqueFd given) {
  GiverOutcome out;
  const bool ours = !given;
  pid_t pid = -1;
  if (ours) {
    Successor s = start_successor(config.binary, config.argv);
    if (!s.error.empty()) {
      out.error = "cannot start " + config.binary + ": " + s.error;
      spdlog::error("SIGUSR2: {}; nothing changed", out.error);
      return out;
    }
    pid = s.pid;
    given = std::move(s.channel);
    spdlog::info("SIGUSR2: started {} (pid {}) to take over", config.binary, pid);
  }
  out.successor = pid;
  net::HandoverChannel channel(std::move(given));
  Kept kept(server.loop_count());

  // Hello: which versions it speaks. Refused clearly when none is ours.
  auto hello = channel.receive(static_cast<int>(config.timeout_ms));
  const hf::Hello* h = hello.ok() ? std::get_if<hf::Hello>(&hello.frame) : nullptr;
  if (h != nullptr && !ours) out.successor = pid = static_cast<pid_t>(h->pid);
  if (h == nullptr) {
    out.error = hello.ok() ? "the new process did not start with a Hello" : "the new process: " + hello.error;
    give_up(out, server, pid, ours, kept);
    return out;
  }
  const uint16_t version = hf::negotiate(*h);
  if (version == 0) {
    out.error = fmt::format("the new process speaks handover versions {}-{}, this one {}-{}: no "
                            "version in common, refused", h->lowest, h->highest,
                            hf::kLowestVersion, hf::kHighestVersion);
    channel.send(hf::Refuse{hf::RefuseCode::kVersion, out.error}, {});
    give_up(out, server, pid, ours, kept);
    return out;
  }
  if (config.state_items && version < 2) {
    out.error = fmt::format("the new process speaks handover version {}, which cannot carry "
                            "{} state on no connection (2 can), refused", version, config.protocol);
    channel.send(hf::Refuse{hf::RefuseCode::kVersion, out.error}, {});
    give_up(out, server, pid, ours, kept);
    return out;
  }
  std::string err = channel.send(
      hf::Welcome{version, static_cast<uint32_t>(::getpid()),
                  static_cast<uint32_t>(server.loop_count()), config.protocol}, {}, version);

  // Listeners: every loop's socket, so no connection waiting in an accept queue is lost.
  if (err.empty()) {
    hf::Listeners l;
    std::vector<int> fds;
    for (auto [index, fd] : server.listening_descriptors()) {
      if (index >= config.client_listeners) continue;
      l.entries.push_back({static_cast<uint32_t>(index), server.listen_address(index).to_string()});
      fds.push_back(fd);
    }
    err = channel.send(l, fds, version);
    if (err.empty()) {
      auto r = channel.receive(static_cast<int>(config.timeout_ms));
      auto* t = r.ok() ? std::get_if<hf::Taken>(&r.frame) : nullptr;
      auto* refuse = r.ok() ? std::get_if<hf::Refuse>(&r.frame) : nullptr;
      if (!r.ok()) err = r.error;
      else if (refuse != nullptr) err = "the new process refused: " + refuse->reason;
      else if (t == nullptr || t->sequence != 0 || t->taken.size() != fds.size()) err = "unexpected answer to the listeners";
      else for (uint8_t v : t->taken) if (!v) err = "the new process did not take every listener";
    }
  }
  if (!err.empty()) {
    out.error = err;
    give_up(out, server, pid, ours, kept);
    return out;
  }
  // The new process accepts from now on; ours stay open (not accepting) until Done, so a
  // rollback can accept again.
  set_accepting_everywhere(server, false);
  spdlog::info("SIGUSR2: the new process (pid {}) accepts; handing over connections", pid);

  // No loop reads from here on (a protocol that needs it holds its input): every loop is held
  // before the first connection is parked, so nothing a client still here sends can reach a
  // connection already parked or gone. Tasks one loop posted to another before it was held
  // run before that loop's first park (each loop's tasks run in order).
  hold_input_everywhere(server, true);
  if (config.after_hold) {
    if (std::string e = config.after_hold(); !e.empty()) {
      out.error = e;
      give_up(out, server, pid, ours, kept);
      return out;
    }
  }
  const bool done_answered = version >= hf::kDoneAnsweredVersion;
  uint32_t sequence = 1;
  for (size_t i = 0; i < server.loop_count(); ++i) {
    uint32_t cursor = 0;
    bool loop_done = false;
    while (!loop_done) {
      if (!hand_batch(server, server.loop(i), channel, config, version, sequence++, cursor, loop_done, out,
                      done_answered ? &kept[i] : nullptr)) {
        give_up(out, server, pid, ours, kept);
        return out;
      }
    }
  }
  if (config.state_items) {
    if (std::string e = send_state(channel, config, version, sequence, out); !e.empty()) {
      out.error = "state: " + e;
      give_up(out, server, pid, ours, kept);
      return out;
    }
  }
  const hf::Done done{static_cast<uint32_t>(out.handed)};
  // Version 4: Done is first a question (did you take it all, and do you hold it parked?),
  // answered with Done; then, once the caller agrees, Done again commits, answered once more
  // just before the new process serves. Until that last answer, everything can come back.
  auto exchange_done = [&](const char* what) -> bool {
    if (err = channel.send(done, {}, version); !err.empty()) {
      out.error = std::string(what) + ": " + err;
      return false;
    }
    if (!done_answered) return true;
    auto r = channel.receive(static_cast<int>(config.timeout_ms));
    auto* d = r.ok() ? std::get_if<hf::Done>(&r.frame) : nullptr;
    if (d != nullptr && d->connections == out.handed) return true;
    out.error = !r.ok() ? fmt::format("waiting for the answer to {}: {}", what, r.error)
                        : fmt::format("the new process did not answer {} with what it took", what);
    // One that hung up serves nothing; one that did not answer in time may be about to:
    // it must be gone before they are resumed here.
    if (r.timed_out && pid > 0) ::kill(pid, SIGKILL);
    return false;
  };
  if (done_answered && !exchange_done("done")) {
    give_up(out, server, pid, ours, kept);
    return out;
  }
  if (config.before_commit) {
    if (std::string e = config.before_commit(); !e.empty()) {
      out.error = e;
      give_up(out, server, pid, ours, kept);
      return out;
    }
  }
  if (before_done) before_done();
  if (!exchange_done(done_answered ? "commit" : "done")) {
    give_up(out, server, pid, ours, kept);
    return out;
  }
  if (config.after_commit) config.after_commit();
  for_each_kept(server, kept, &EventLoop::release_parked);
  for (size_t i = 0; i < server.loop_count(); ++i)
    run_on_loop(server.loop(i), [](EventLoop& loop) { loop.close_listeners(); });
  out.completed = true;
  return out;
}

}  // namespace tcpms::app
