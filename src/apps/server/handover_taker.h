// The new process's side of the upgrade handover (docs/upgrade.md): says which versions it
// speaks, takes the listening sockets before its loops start, then takes the connections
// batch by batch until Done, answering each batch with what it took.
//
// Thread rules: main's thread only.
#pragma once

#include <functional>

#include <string>
#include <vector>

#include "listeners.h"
#include "net/handover_channel.h"
#include "tcpms/server.h"

namespace tcpms::app {

// Whether the old process's listening address `theirs` is the one configured here (a
// configured port 0 matches whatever port the old process got for it).
bool same_listen_address(const Endpoint& configured, const std::string& theirs);

// Why two servers of different process counts do not hand over (1: a server without worker
// processes); both kinds of taker say it the same way.
std::string changed_process_count(unsigned running, unsigned here);

// Whether a Listeners frame's descriptors come from a supervisor: it hands over the ports it
// reserves for its workers (bound, not listening), a server of one process (or a worker) its
// loops' listening sockets. The Welcome alone cannot tell: its `loops` is a supervisor's
// process count but a process's loop count.
bool sent_by_supervisor(const std::vector<UniqueFd>& listener_fds);

class HandoverTaker {
 public:
  HandoverTaker(UniqueFd channel, uint32_t timeout_ms)
      : channel_(std::move(channel)), timeout_ms_(static_cast<int>(timeout_ms)) {}

  // Before Server::start: Hello, Welcome, the listeners (given to `server` to inherit).
  // Returns "" or why not (the old process is told, and keeps serving).
  std::string take_listeners(Server& server, const std::string& protocol,
                             const std::vector<Listener>& listeners);
  // After Server::start: the connections, until Done. Returns "" or why it stopped. From
  // handover version 4 nothing taken is served before Done, and on a stop it is all let go
  // (taken() is 0: the old process serves everything); up to 3, what was taken by then is
  // served here and the old process serves the rest.
  std::string take_connections(Server& server);
  // Installs one item of the protocol's state on no connection (State frames); false: refused.
  void set_state_importer(std::function<bool(ByteView item)> importer) {
    state_importer_ = std::move(importer);
  }
  // Runs once Done has come, before this process reads its clients' input (worker processes:
  // until the new workers' mesh is up and every peer's interest known; docs/upgrade.md).
  void set_before_release(std::function<void()> hook) { before_release_ = std::move(hook); }
  size_t state_items() const noexcept { return state_items_; }
  pid_t old_pid() const noexcept { return old_pid_; }
  size_t taken() const noexcept { return taken_; }

 private:
  net::HandoverChannel channel_;
  int timeout_ms_;
  uint16_t version_ = 0;
  pid_t old_pid_ = 0;
  size_t taken_ = 0;
  size_t next_loop_ = 0;
  std::vector<std::vector<ConnId>> adopted_;  // by loop, parked until Done (version 4 on)
  std::function<bool(ByteView)> state_importer_;
  std::function<void()> before_release_;
  size_t state_items_ = 0;
};

}  // namespace tcpms::app
