// MemoryFabric and MemoryTransport: routers in one process, linked in memory, with the test
// deciding when each frame arrives and when time passes. Unit tests race takeovers and move
// sessions with them deterministically: frames wait in one queue per (sender, receiver) pair,
// in the order sent, until the test delivers them (all, one pair's, or one frame), and timers
// fire only when the test advances the fabric's clock.
//
// Thread rules: send and run_after from any thread (under the fabric's mutex); delivery and
// timers run on the thread that calls deliver*/advance (the test's), never under the mutex.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "routing/transport.h"

namespace tcpms::routing {

class MemoryTransport;

class MemoryFabric {
 public:
  explicit MemoryFabric(uint32_t peers);
  ~MemoryFabric();
  MemoryTransport& transport(PeerId p) { return *transports_.at(p); }
  uint32_t peers() const noexcept { return static_cast<uint32_t>(transports_.size()); }

  // Links: frames to a peer that is down are dropped (send returns false).
  void set_up(PeerId p, bool up);  // tells every other peer's receiver (on_peer_up/down)
  // One direction only, as the worker mesh's links are (each owned by its sender): frames
  // from `from` to `to` are dropped while it is down, and only `from` hears of it.
  void set_link_up(PeerId from, PeerId to, bool up);
  void start();                    // every peer up, on_peer_up for every pair

  // Delivers the frames queued from `from` to `to` (all of them, or at most `max`). Returns
  // how many.
  size_t deliver(PeerId from, PeerId to, size_t max = SIZE_MAX);
  // Delivers everything queued, including what deliveries and due timers send meanwhile,
  // until nothing is left (or `max_rounds`). Returns how many frames.
  size_t deliver_all(size_t max_rounds = 1000);
  size_t queued(PeerId from, PeerId to) const;
  size_t queued() const;
  // Homes that follow the peers up (as between cluster nodes: Transport::homes_move()), by
  // rendezvous hashing over them; off (the default): home_of over every peer, as between
  // worker processes. Set before start.
  void set_homes_follow_up(bool on) { homes_follow_up_ = on; }
  bool homes_follow_up() const noexcept { return homes_follow_up_; }
  // The home of `key` among the peers up, `self` and `also` counted as up.
  PeerId home_among_up(uint64_t key, PeerId self, PeerId also = kNoPeer) const;
  // Moves the clock and runs the timers that came due.
  void advance(uint64_t ms);
  uint64_t now_ms() const;

 private:
  friend class MemoryTransport;
  bool send(PeerId from, PeerId to, SharedBytes frame);
  void add_timer(uint64_t delay_ms, std::function<void()> task);
  bool run_due_timers();

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<MemoryTransport>> transports_;
  std::vector<bool> up_;
  std::set<std::pair<PeerId, PeerId>> links_down_;
  std::map<std::pair<PeerId, PeerId>, std::deque<SharedBytes>> queues_;
  std::multimap<uint64_t, std::function<void()>> timers_;
  uint64_t now_ms_ = 0;
  bool homes_follow_up_ = false;
};

class MemoryTransport final : public Transport {
 public:
  MemoryTransport(MemoryFabric& fabric, PeerId self) : fabric_(fabric), self_(self) {}
  void set_receiver(Receiver* r) override { receiver_ = r; }
  PeerId self() const override { return self_; }
  uint32_t peer_slots() const override { return fabric_.peers(); }
  bool send(PeerId to, SharedBytes frame) override { return fabric_.send(self_, to, std::move(frame)); }
  bool run_after(uint32_t delay_ms, std::function<void()> task) override {
    fabric_.add_timer(delay_ms, std::move(task));
    return true;
  }
  PeerId home_of(std::string_view client_id, uint64_t key) const override {
    return fabric_.homes_follow_up() ? fabric_.home_among_up(key, self_)
                                     : routing::home_of(client_id, peer_slots());
  }
  bool homes_move() const override { return fabric_.homes_follow_up(); }
  PeerId home_with(uint64_t key, PeerId peer) const override {
    return fabric_.home_among_up(key, self_, peer);
  }
  Receiver* receiver() const noexcept { return receiver_; }

 private:
  MemoryFabric& fabric_;
  PeerId self_;
  Receiver* receiver_ = nullptr;
};

}  // namespace tcpms::routing
