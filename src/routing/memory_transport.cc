#include "routing/memory_transport.h"

namespace tcpms::routing {

MemoryFabric::MemoryFabric(uint32_t peers) : up_(peers, false) {
  for (uint32_t p = 0; p < peers; ++p)
    transports_.push_back(std::make_unique<MemoryTransport>(*this, static_cast<PeerId>(p)));
}

MemoryFabric::~MemoryFabric() = default;

bool MemoryFabric::send(PeerId from, PeerId to, SharedBytes frame) {
  std::lock_guard lock(mu_);
  if (to >= up_.size() || !up_[to] || !up_[from] || links_down_.count({from, to}) != 0) return false;
  queues_[{from, to}].push_back(std::move(frame));
  return true;
}

PeerId MemoryFabric::home_among_up(uint64_t key, PeerId self, PeerId also) const {
  std::lock_guard lock(mu_);
  PeerId best = kNoPeer;
  uint64_t best_score = 0;
  for (PeerId p = 0; p < up_.size(); ++p) {
    if (!up_[p] && p != self && p != also) continue;
    // Rendezvous hashing: the highest score of (key, peer) wins (a mix of both, splitmix64).
    uint64_t x = key ^ ((uint64_t{p} + 1) * 0x9E3779B97F4A7C15ull);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    x ^= x >> 31;
    if (best == kNoPeer || x > best_score) {
      best = p;
      best_score = x;
    }
  }
  return best;
}

void MemoryFabric::add_timer(uint64_t delay_ms, std::function<void()> task) {
  std::lock_guard lock(mu_);
  timers_.emplace(now_ms_ + delay_ms, std::move(task));
}

void MemoryFabric::set_up(PeerId p, bool up) {
  {
    std::lock_guard lock(mu_);
    up_[p] = up;
    if (!up) {
      for (auto it = queues_.begin(); it != queues_.end();) {
        if (it->first.first == p || it->first.second == p)
          it = queues_.erase(it);
        else
          ++it;
      }
    }
  }
  for (uint32_t q = 0; q < transports_.size(); ++q) {
    if (q == p) continue;
    Transport::Receiver* other = transports_[q]->receiver();
    Transport::Receiver* self = transports_[p]->receiver();
    if (up) {
      if (self != nullptr) self->on_peer_up(static_cast<PeerId>(q));
      if (other != nullptr) other->on_peer_up(p);
    } else if (other != nullptr) {
      other->on_peer_down(p);
    }
  }
}

void MemoryFabric::set_link_up(PeerId from, PeerId to, bool up) {
  {
    std::lock_guard lock(mu_);
    if (up) {
      links_down_.erase({from, to});
    } else {
      links_down_.insert({from, to});
      queues_.erase({from, to});
    }
  }
  if (Transport::Receiver* r = transports_[from]->receiver()) up ? r->on_peer_up(to) : r->on_peer_down(to);
}

void MemoryFabric::start() {
  {
    std::lock_guard lock(mu_);
    up_.assign(up_.size(), true);
  }
  for (uint32_t p = 0; p < transports_.size(); ++p)
    for (uint32_t q = 0; q < transports_.size(); ++q)
      if (p != q && transports_[p]->receiver() != nullptr)
        transports_[p]->receiver()->on_peer_up(static_cast<PeerId>(q));
}

size_t MemoryFabric::deliver(PeerId from, PeerId to, size_t max) {
  size_t n = 0;
  while (n < max) {
    SharedBytes frame;
    {
      std::lock_guard lock(mu_);
      auto it = queues_.find({from, to});
      if (it == queues_.end() || it->second.empty()) break;
      frame = std::move(it->second.front());
      it->second.pop_front();
    }
    if (Transport::Receiver* r = transports_[to]->receiver()) r->on_frame(from, frame.view());
    ++n;
  }
  return n;
}

bool MemoryFabric::run_due_timers() {
  bool ran = false;
  for (;;) {
    std::function<void()> task;
    {
      std::lock_guard lock(mu_);
      auto it = timers_.begin();
      if (it == timers_.end() || it->first > now_ms_) break;
      task = std::move(it->second);
      timers_.erase(it);
    }
    task();
    ran = true;
  }
  return ran;
}

size_t MemoryFabric::deliver_all(size_t max_rounds) {
  size_t total = 0;
  for (size_t round = 0; round < max_rounds; ++round) {
    bool any = run_due_timers();
    std::vector<std::pair<PeerId, PeerId>> pairs;
    {
      std::lock_guard lock(mu_);
      for (const auto& [k, q] : queues_)
        if (!q.empty()) pairs.push_back(k);
    }
    for (auto [from, to] : pairs) {
      size_t n = deliver(from, to);
      total += n;
      any = any || n != 0;
    }
    if (!any) break;
  }
  return total;
}

size_t MemoryFabric::queued(PeerId from, PeerId to) const {
  std::lock_guard lock(mu_);
  auto it = queues_.find({from, to});
  return it == queues_.end() ? 0 : it->second.size();
}

size_t MemoryFabric::queued() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [k, q] : queues_) n += q.size();
  return n;
}

void MemoryFabric::advance(uint64_t ms) {
  {
    std::lock_guard lock(mu_);
    now_ms_ += ms;
  }
  run_due_timers();
}

uint64_t MemoryFabric::now_ms() const {
  std::lock_guard lock(mu_);
  return now_ms_;
}

}  // namespace tcpms::routing
