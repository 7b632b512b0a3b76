#include "routing/interest_acks.h"

#include <algorithm>
#include <limits>

namespace tcpms::routing {

namespace {
constexpr uint64_t kAll = std::numeric_limits<uint64_t>::max();
}

InterestAcks::InterestAcks(PeerId self, uint32_t peers, PeerId hub)
    : self_(self), peers_(peers), hub_(hub), up_(peers, 0), applied_(peers, 0),
      round_applied_(peers, 0) {}

bool InterestAcks::counts(PeerId p) const {
  // Directly, every peer that is up; through the hub, the hub's answer alone (for the hub
  // itself: its own rounds, recorded as its own answer, while any other peer is up).
  if (hub_ == kNoPeer) return p != self_ && up_[p];
  if (hub_ == self_) return p == self_;
  return p == hub_ && up_[p];
}

uint64_t InterestAcks::known_everywhere() const {
  if (hub_ == self_ && std::none_of(up_.begin(), up_.end(), [](uint8_t u) { return u != 0; }))
    return kAll;
  uint64_t known = kAll;
  for (PeerId p = 0; p < peers_; ++p)
    if (counts(p)) known = std::min(known, applied_[p]);
  return known;
}

std::vector<InterestAcks::Resume> InterestAcks::release_known() {
  std::vector<Resume> out;
  const uint64_t known = known_everywhere();
  while (!waits_.empty() && waits_.front().generation <= known) {
    out.push_back(std::move(waits_.front().resume));
    waits_.pop_front();
  }
  return out;
}

bool InterestAcks::hold(uint64_t generation, uint64_t due_ms, Resume resume) {
  std::lock_guard lock(mu_);
  if (generation <= known_everywhere()) return false;
  // Kept in order of generation and deadline (a wait that came later with a smaller number
  // waits as long as the one before it: later, never lost).
  if (!waits_.empty()) {
    generation = std::max(generation, waits_.back().generation);
    due_ms = std::max(due_ms, waits_.back().due_ms);
  }
  waits_.push_back({generation, due_ms, std::move(resume)});
  return true;
}

std::optional<uint64_t> InterestAcks::mark_due(uint64_t generation) {
  std::lock_guard lock(mu_);
  if (waits_.empty() || generation <= marked_) return std::nullopt;
  marked_ = generation;
  return generation;
}

std::vector<InterestAcks::Resume> InterestAcks::applied(PeerId from, uint64_t generation) {
  std::lock_guard lock(mu_);
  if (from >= peers_) return {};
  applied_[from] = std::max(applied_[from], generation);
  return release_known();
}

std::vector<InterestAcks::Resume> InterestAcks::peer_up(PeerId peer, uint64_t generation) {
  std::lock_guard lock(mu_);
  if (peer >= peers_ || peer == self_) return {};
  up_[peer] = 1;
  applied_[peer] = generation;
  return release_known();
}

std::vector<InterestAcks::Resume> InterestAcks::peer_down(PeerId peer) {
  std::lock_guard lock(mu_);
  if (peer >= peers_ || peer == self_) return {};
  up_[peer] = 0;
  return release_known();
}

std::vector<InterestAcks::Resume> InterestAcks::expired(uint64_t now_ms) {
  std::lock_guard lock(mu_);
  std::vector<Resume> out;
  while (!waits_.empty() && waits_.front().due_ms <= now_ms) {
    out.push_back(std::move(waits_.front().resume));
    waits_.pop_front();
  }
  return out;
}

std::optional<uint64_t> InterestAcks::next_deadline() const {
  std::lock_guard lock(mu_);
  if (waits_.empty()) return std::nullopt;
  return waits_.front().due_ms;
}

uint64_t InterestAcks::held() const {
  std::lock_guard lock(mu_);
  return waits_.size();
}

// --- the hub's side ---------------------------------------------------------------------------

uint64_t InterestAcks::round_everywhere() const {
  uint64_t known = kAll;
  for (PeerId p = 0; p < peers_; ++p)
    if (p != self_ && up_[p]) known = std::min(known, round_applied_[p]);
  return known;
}

std::vector<InterestAcks::Answer> InterestAcks::release_rounds() {
  std::vector<Answer> out;
  const uint64_t known = round_everywhere();
  while (!rounds_.empty() && rounds_.front().round <= known) {
    for (const auto& [to, generation] : rounds_.front().marks) out.push_back({to, generation});
    rounds_.pop_front();
  }
  return out;
}

std::optional<uint64_t> InterestAcks::hub_round(std::vector<std::pair<PeerId, uint64_t>> marks) {
  if (marks.empty()) return std::nullopt;
  std::lock_guard lock(mu_);
  rounds_.push_back({++round_, std::move(marks)});
  return round_;
}

std::vector<InterestAcks::Answer> InterestAcks::hub_round_applied(PeerId from, uint64_t round) {
  std::lock_guard lock(mu_);
  if (from >= peers_ || from == self_) return {};
  round_applied_[from] = std::max(round_applied_[from], std::min(round, round_));
  return release_rounds();
}

std::vector<InterestAcks::Answer> InterestAcks::hub_peer_up(PeerId peer) {
  std::lock_guard lock(mu_);
  if (peer >= peers_ || peer == self_) return {};
  up_[peer] = 1;
  round_applied_[peer] = round_;
  return release_rounds();
}

std::vector<InterestAcks::Answer> InterestAcks::hub_peer_down(PeerId peer) {
  std::lock_guard lock(mu_);
  if (peer >= peers_ || peer == self_) return {};
  up_[peer] = 0;
  return release_rounds();
}

}  // namespace tcpms::routing
