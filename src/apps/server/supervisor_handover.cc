#include "supervisor_handover.h"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "handover_taker.h"
#include "net/socket.h"
#include "successor.h"

namespace tcpms::app {
namespace {

namespace hf = net::handover;

// The workers hand over in parallel, each bounded by upgrade.timeout_ms per answer, not in
// total (a worker with many connections sends many batches): a worker that dies closes its
// socket, which ends the wait.
constexpr int kUntilClosedMs = 24 * 3600 * 1000;

// The Workers frame (version 3) is what a new supervisor needs; versions 1-2 have none.
constexpr uint16_t kWorkersVersion = 3;

// On a worker's control socket: Taken of this sequence, no entries, says "my successor took
// everything; commit or stop?" (await_commit). The supervisor answers Done or Refuse.
constexpr uint32_t kReadySequence = 0xFFFFFFFFu;

// Everything up to the workers' channels; "" or why it stopped (nothing changed then).
std::string agree(net::HandoverChannel& channel, const SupervisorGiverConfig& config,
                  uint16_t& version, std::vector<UniqueFd>& channels, uint32_t& epoch) {
  auto hello = channel.receive(static_cast<int>(config.timeout_ms));
  const hf::Hello* h = hello.ok() ? std::get_if<hf::Hello>(&hello.frame) : nullptr;
  if (h == nullptr)
    return hello.ok() ? "the new supervisor did not start with a Hello" : "the new supervisor: " + hello.error;
  version = hf::negotiate(*h);
  if (version < kWorkersVersion) {
    std::string why = fmt::format("the new server speaks handover versions {}-{}, this one {}-{}: "
                                  "worker processes need version {} on both sides, refused",
                                  h->lowest, h->highest, hf::kLowestVersion, hf::kHighestVersion,
                                  kWorkersVersion);
    channel.send(hf::Refuse{hf::RefuseCode::kVersion, why}, {});
    return why;
  }
  epoch = h->pid;
  // Welcome's `loops` is the process count here: the new supervisor refuses another.
  if (auto e = channel.send(hf::Welcome{version, static_cast<uint32_t>(::getpid()), config.processes,
                                        config.protocol}, {}, version);
      !e.empty())
    return "welcome: " + e;
  hf::Listeners l;
  for (size_t i = 0; i < config.addresses.size(); ++i)
    l.entries.push_back({static_cast<uint32_t>(i), config.addresses[i]});
  if (auto e = channel.send(l, config.reservations, version); !e.empty()) return "ports: " + e;
  auto r = channel.receive(static_cast<int>(config.timeout_ms));
  if (!r.ok()) return "the new supervisor: " + r.error;
  if (auto* refuse = std::get_if<hf::Refuse>(&r.frame)) return "the new server refused: " + refuse->reason;
  auto* t = std::get_if<hf::Taken>(&r.frame);
  if (t == nullptr || t->taken.size() != l.entries.size()) return "unexpected answer to the ports";
  auto w = channel.receive(static_cast<int>(config.timeout_ms));
  if (!w.ok()) return "waiting for the workers' channels: " + w.error;
  if (auto* refuse = std::get_if<hf::Refuse>(&w.frame)) return "the new server refused: " + refuse->reason;
  auto* workers = std::get_if<hf::Workers>(&w.frame);
  if (workers == nullptr || workers->indices.size() != config.processes)
    return "expected one channel per worker";
  for (uint32_t i = 0; i < config.processes; ++i)
    if (workers->indices[i] != i) return "the workers' channels are not in order";
  channels = std::move(w.fds);
  return {};
}

}  // namespace

std::string hand_workers_over(const SupervisorGiverConfig& config, std::span<const pid_t> pids,
                              std::span<const int> controls) {
  for (size_t i = 0; i < pids.size(); ++i) {
    if (pids[i] <= 0 || controls[i] < 0) {
      const std::string why = fmt::format("worker {} is not running (restarting); nothing changed, "
                                          "try again once it runs", i);
      spdlog::error("supervisor: SIGUSR2: {}", why);
      return why;
    }
  }
  Successor s = start_successor(config.binary, config.argv);
  if (!s.error.empty()) {
    const std::string why = fmt::format("cannot start {}: {}; nothing changed", config.binary, s.error);
    spdlog::error("supervisor: SIGUSR2: {}", why);
    return why;
  }
  spdlog::info("supervisor: SIGUSR2: started {} (pid {}) to take over {} workers", config.binary,
               s.pid, config.processes);
  net::HandoverChannel channel(std::move(s.channel));
  uint16_t version = 0;
  uint32_t epoch = 0;
  std::vector<UniqueFd> channels;
  if (std::string why = agree(channel, config, version, channels, epoch); !why.empty()) {
    const std::string how = stop_successor(s.pid);
    spdlog::error("supervisor: SIGUSR2: handover stopped: {}; nothing changed, every worker keeps "
                  "serving (the new server, pid {}, {})", why, s.pid, how);
    return "handover stopped: " + why + "; nothing changed";
  }
  // Each old worker gets its channel on its control socket, then SIGUSR2 to read it. Our
  // copies are dropped at once: a new worker that dies must leave its channel closed.
  std::vector<std::unique_ptr<net::HandoverChannel>> workers(config.processes);
  std::vector<std::string> outcome(config.processes);
  for (uint32_t i = 0; i < config.processes; ++i) {
    workers[i] = std::make_unique<net::HandoverChannel>(UniqueFd(::dup(controls[i])));
    const int fd = channels[i].get();
    std::string e = workers[i]->send(hf::Workers{epoch, {i}}, std::span<const int>(&fd, 1), version);
    channels[i].reset();
    if (e.empty() && ::kill(pids[i], SIGUSR2) != 0) e = "kill: " + net::errno_text(errno);
    if (!e.empty()) outcome[i] = "could not be told: " + e;
  }
  // Two rounds: every worker's successor takes everything (each worker says it is ready, or
  // why not); then all commit, or, if one is not ready, all take everything back.
  auto answer = [&](uint32_t i) {
    auto r = workers[i]->receive(kUntilClosedMs);
    if (!r.ok()) outcome[i] = "worker: " + r.error;
    else if (auto* refuse = std::get_if<hf::Refuse>(&r.frame)) outcome[i] = refuse->reason;
    return r;
  };
  std::string not_ready;
  for (uint32_t i = 0; i < config.processes; ++i) {
    if (!outcome[i].empty()) continue;
    auto r = answer(i);
    auto* t = r.ok() ? std::get_if<hf::Taken>(&r.frame) : nullptr;
    if (outcome[i].empty() && (t == nullptr || t->sequence != kReadySequence)) outcome[i] = "unexpected answer";
    if (!outcome[i].empty() && not_ready.empty()) not_ready = fmt::format("worker {}: {}", i, outcome[i]);
  }
  for (uint32_t i = 0; i < config.processes; ++i) {
    if (!outcome[i].empty()) continue;
    if (not_ready.empty()) workers[i]->send(hf::Done{0}, {}, kWorkersVersion);
    else workers[i]->send(hf::Refuse{hf::RefuseCode::kInternal, not_ready}, {});
  }
  uint32_t moved = 0;
  for (uint32_t i = 0; i < config.processes; ++i) {
    if (!outcome[i].empty()) continue;
    auto r = answer(i);
    if (auto* d = r.ok() ? std::get_if<hf::Done>(&r.frame) : nullptr) {
      ++moved;
      spdlog::info("supervisor: worker {} handed {} connection(s) over", i, d->connections);
    } else if (outcome[i].empty()) {
      outcome[i] = "unexpected answer";
    }
  }
  channel.send(hf::Done{moved}, {}, version);
  if (moved == config.processes) {
    spdlog::info("supervisor: SIGUSR2: handed over: supervisor pid {} has every worker's clients; "
                 "this one exits once its workers have", s.pid);
    return {};
  }
  std::string first_failure;
  for (uint32_t i = 0; i < config.processes; ++i) {
    if (outcome[i].empty()) continue;
    spdlog::error("supervisor: worker {} did not hand over: {}", i, outcome[i]);
    if (first_failure.empty()) first_failure = fmt::format("worker {}: {}", i, outcome[i]);
  }
  if (moved == 0) {
    spdlog::error("supervisor: SIGUSR2: handover stopped; every worker keeps serving (the new "
                  "supervisor, pid {}, stops)", s.pid);
    return "handover stopped (" + first_failure + "); every worker keeps serving";
  }
  // Some pairs moved and some did not (docs/upgrade.md, "Worker processes", rollback).
  spdlog::critical("supervisor: SIGUSR2: handover stopped halfway: {} of {} workers moved to "
                   "supervisor pid {}, the others stay here; MQTT routing between the two groups "
                   "does not work: restart or upgrade again once the cause is fixed",
                   moved, config.processes, s.pid);
  return fmt::format("handover stopped halfway ({}): {} of {} workers moved to supervisor pid {}; "
                     "MQTT routing between the two groups does not work: restart", first_failure,
                     moved, config.processes, s.pid);
}

std::string take_supervisor(net::HandoverChannel& channel, const std::string& protocol,
                            unsigned processes, uint32_t timeout_ms,
                            std::vector<Listener>& listeners, std::optional<Endpoint>& admin_at,
                            SupervisorTaking& out) {
  const int timeout = static_cast<int>(timeout_ms);
  if (auto e = channel.send(hf::Hello{hf::kLowestVersion, hf::kHighestVersion,
                                      static_cast<uint32_t>(::getpid())}, {});
      !e.empty())
    return "hello: " + e;
  auto r = channel.receive(timeout);
  if (!r.ok()) return "waiting for the running supervisor's welcome: " + r.error;
  if (auto* refuse = std::get_if<hf::Refuse>(&r.frame)) return "the running server refused: " + refuse->reason;
  auto* w = std::get_if<hf::Welcome>(&r.frame);
  if (w == nullptr) return "the running supervisor did not answer with a Welcome";
  const uint16_t version = w->version;
  out.old_pid = static_cast<pid_t>(w->pid);
  auto refuse = [&](hf::RefuseCode code, std::string why) {
    channel.send(hf::Refuse{code, why}, {});
    return why;
  };
  if (w->protocol != protocol)
    return refuse(hf::RefuseCode::kProtocol,
                  fmt::format("the running server serves {}, this one {}", w->protocol, protocol));
  const uint32_t their_processes = w->loops;
  auto l = channel.receive(timeout);
  if (!l.ok()) return "waiting for the ports: " + l.error;
  auto* ports = std::get_if<hf::Listeners>(&l.frame);
  // A server of one process sends its loops' listening sockets, and its Welcome's `loops` is
  // its loop count: it would take our Workers frame for the answer to its first batch.
  if (ports != nullptr && !sent_by_supervisor(l.fds))
    return refuse(hf::RefuseCode::kConfig, changed_process_count(1, processes));
  if (their_processes != processes)
    return refuse(hf::RefuseCode::kConfig, changed_process_count(their_processes, processes));
  const size_t want = listeners.size() + (admin_at && !admin_at->is_unix() ? 1 : 0);
  if (ports == nullptr || ports->entries.size() != want)
    return refuse(hf::RefuseCode::kConfig, "the ports there and here differ: start the new server "
                                           "with the same listeners and admin address");
  for (size_t i = 0; i < want; ++i) {
    Endpoint& configured = i < listeners.size() ? listeners[i].at : *admin_at;
    const std::string& theirs = ports->entries[i].address;
    if (!same_listen_address(configured, theirs))
      return refuse(hf::RefuseCode::kConfig,
                    fmt::format("port {} is {} there, {} here: start the new server with the same "
                                "listeners", i, theirs, configured.to_string()));
    configured = *Endpoint::parse(theirs);
  }
  out.reservations = std::move(l.fds);
  hf::Taken taken;
  taken.taken.assign(want, 1);
  if (auto e = channel.send(taken, {}, version); !e.empty()) return "ports taken: " + e;
  // One socket pair per worker: our end for the worker we fork, theirs for the old worker.
  hf::Workers workers;
  workers.epoch = static_cast<uint32_t>(::getpid());
  std::vector<UniqueFd> theirs;
  std::vector<int> fds;
  for (unsigned i = 0; i < processes; ++i) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
      return refuse(hf::RefuseCode::kInternal, "socketpair: " + net::errno_text(errno));
    out.worker_channels.emplace_back(pair[0]);
    theirs.emplace_back(pair[1]);
    fds.push_back(pair[1]);
    workers.indices.push_back(i);
  }
  if (auto e = channel.send(workers, fds, version); !e.empty()) return "workers: " + e;
  return {};
}

bool wait_for_supervisor_verdict(net::HandoverChannel& channel, unsigned processes, pid_t old_pid) {
  auto r = channel.receive(kUntilClosedMs);
  auto* d = r.ok() ? std::get_if<hf::Done>(&r.frame) : nullptr;
  if (d != nullptr && d->connections == processes) {
    spdlog::info("handover: every worker took over from supervisor pid {}", old_pid);
    return true;
  }
  spdlog::error("handover: {} of {} workers took over from supervisor pid {}{}; the pid file "
                "stays the old supervisor's", d != nullptr ? d->connections : 0, processes, old_pid,
                r.ok() ? std::string() : " (" + r.error + ")");
  return false;
}

std::optional<UniqueFd> worker_channel_from_supervisor(net::HandoverChannel& control,
                                                       uint32_t& epoch, std::string& error) {
  // The supervisor wrote the channel before its SIGUSR2: it is there at once, or never.
  auto r = control.receive(1000);
  auto* w = r.ok() ? std::get_if<hf::Workers>(&r.frame) : nullptr;
  if (w == nullptr || r.fds.size() != 1) {
    error = "no handover channel from the supervisor (send SIGUSR2 to the supervisor, not to a "
            "worker)";
    return std::nullopt;
  }
  epoch = w->epoch;
  return std::move(r.fds[0]);
}

std::string await_commit(net::HandoverChannel& control) {
  if (auto e = control.send(hf::Taken{kReadySequence, {}}, {}, kWorkersVersion); !e.empty())
    return "telling the supervisor: " + e;
  auto r = control.receive(kUntilClosedMs);
  if (!r.ok()) return "waiting for the supervisor's word: " + r.error;
  if (std::holds_alternative<hf::Done>(r.frame)) return {};
  if (auto* refuse = std::get_if<hf::Refuse>(&r.frame)) return "the supervisor stopped the handover: " + refuse->reason;
  return "unexpected word from the supervisor";
}

void report_to_supervisor(net::HandoverChannel& control, bool completed, size_t handed,
                          const std::string& error) {
  if (completed) control.send(hf::Done{static_cast<uint32_t>(handed)}, {}, kWorkersVersion);
  else control.send(hf::Refuse{hf::RefuseCode::kInternal, error}, {});
}

}  // namespace tcpms::app
