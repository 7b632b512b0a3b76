#include "broker/inflight.h"

#include <algorithm>
#include <utility>

namespace tcpms::broker {

namespace {

// What malloc adds to a block: an 8-byte chunk header, and rounding to 16 bytes.
constexpr size_t kAllocOverhead = 16;
// A queue entry beyond the OutMessage itself: a std::deque node keeps 9 entries in 512 bytes
// behind a map pointer (about 8 bytes an entry); the in-flight window is a std::vector whose
// capacity runs up to twice its size (half an entry each, on average).
constexpr size_t kEntryOverhead = sizeof(OutMessage) / 2 + 8;

size_t held(const SharedBytes& b) noexcept {
  return b.footprint() == 0 ? 0 : b.footprint() + kAllocOverhead;
}

}  // namespace

size_t held_bytes_of(const OutMessage& m) noexcept {
  return sizeof(OutMessage) + kEntryOverhead + held(m.topic) + held(m.payload) +
         held(m.props.wire) + held(m.sub_ids);
}

bool SessionQueues::id_in_use(uint16_t id) const noexcept {
  return std::any_of(inflight_.begin(), inflight_.end(),
                     [id](const OutMessage& m) { return m.packet_id == id; });
}

OutMessage& SessionQueues::start(OutMessage m) {
  // The window is small (tens), so a scan for a free id is cheaper than any index.
  do {
    if (++last_packet_id_ == 0) last_packet_id_ = 1;
  } while (id_in_use(last_packet_id_));
  m.packet_id = last_packet_id_;
  m.state = m.qos == mqtt::QoS::k2 ? OutMessage::State::kWaitPubrec : OutMessage::State::kWaitPuback;
  held_bytes_ += held_bytes_of(m);
  inflight_.push_back(std::move(m));
  return inflight_.back();
}

bool SessionQueues::restore_inflight(OutMessage m) {
  if (m.packet_id == 0 || id_in_use(m.packet_id) || m.state == OutMessage::State::kQueued)
    return false;
  if (m.state == OutMessage::State::kWaitPubcomp) {
    m.topic = SharedBytes();  // only the id matters from here on [MQTT-4.3.3-1]
    m.payload = SharedBytes();
  }
  held_bytes_ += held_bytes_of(m);
  inflight_.push_back(std::move(m));
  return true;
}

const OutMessage* SessionQueues::find(uint16_t id) const noexcept {
  for (const auto& m : inflight_)
    if (m.packet_id == id) return &m;
  return nullptr;
}

OutMessage* SessionQueues::find(uint16_t id) noexcept {
  return const_cast<OutMessage*>(std::as_const(*this).find(id));
}

bool SessionQueues::wrong_ack(mqtt::PacketType type, uint16_t id) const noexcept {
  const OutMessage* m = find(id);
  if (m == nullptr) return false;
  using S = OutMessage::State;
  switch (type) {
    case mqtt::PacketType::kPuback: return m->state != S::kWaitPuback;
    case mqtt::PacketType::kPubrec: return m->state == S::kWaitPuback;  // repeated: PUBREL again
    case mqtt::PacketType::kPubcomp: return m->state != S::kWaitPubcomp;
    default: return false;
  }
}

void SessionQueues::erase(OutMessage* m) {
  held_bytes_ -= held_bytes_of(*m);
  // Keep send order: redelivery after reconnect must follow the original order [MQTT-4.6.0-2].
  inflight_.erase(inflight_.begin() + (m - inflight_.data()));
}

bool SessionQueues::on_puback(uint16_t id) {
  OutMessage* m = find(id);
  if (m == nullptr || m->state != OutMessage::State::kWaitPuback) return false;
  erase(m);
  return true;
}

bool SessionQueues::on_pubrec(uint16_t id) {
  OutMessage* m = find(id);
  if (m == nullptr) return false;
  if (m->state == OutMessage::State::kWaitPubcomp) return true;  // PUBREC repeated: resend PUBREL
  if (m->state != OutMessage::State::kWaitPubrec) return false;
  m->state = OutMessage::State::kWaitPubcomp;
  // From here on only the packet id matters [MQTT-4.3.3-1]: release the shared bytes.
  held_bytes_ -= held_bytes_of(*m);
  m->payload = SharedBytes();
  m->topic = SharedBytes();
  m->props = MessageProps();
  m->sub_ids = SharedBytes();
  held_bytes_ += held_bytes_of(*m);
  return true;
}

bool SessionQueues::on_pubcomp(uint16_t id) {
  OutMessage* m = find(id);
  if (m == nullptr || m->state != OutMessage::State::kWaitPubcomp) return false;
  erase(m);
  return true;
}

bool SessionQueues::abandon(uint16_t id) {
  OutMessage* m = find(id);
  if (m == nullptr) return false;
  erase(m);
  return true;
}

bool SessionQueues::admits(const OutMessage& m, size_t max_bytes) const noexcept {
  if (max_bytes == 0 || (queued_.empty() && inflight_.empty())) return true;
  return held_bytes_ + held_bytes_of(m) <= max_bytes;
}

bool SessionQueues::enqueue(OutMessage m, size_t max_messages, size_t max_bytes) {
  if (queued_.size() >= max_messages || !admits(m, max_bytes)) return false;
  m.state = OutMessage::State::kQueued;
  held_bytes_ += held_bytes_of(m);
  queued_.push_back(std::move(m));
  return true;
}

OutMessage SessionQueues::pop_queued() {
  OutMessage m = std::move(queued_.front());
  queued_.pop_front();
  held_bytes_ -= held_bytes_of(m);
  return m;
}

size_t SessionQueues::clear() {
  size_t n = queued_.size();
  inflight_.clear();
  queued_.clear();
  incoming_.clear();
  held_bytes_ = 0;
  return n;
}

bool SessionQueues::incoming_seen(uint16_t id) const noexcept {
  return std::find(incoming_.begin(), incoming_.end(), id) != incoming_.end();
}

void SessionQueues::incoming_add(uint16_t id) { incoming_.push_back(id); }

bool SessionQueues::incoming_release(uint16_t id) {
  auto it = std::find(incoming_.begin(), incoming_.end(), id);
  if (it == incoming_.end()) return false;
  *it = incoming_.back();
  incoming_.pop_back();
  return true;
}

void SessionQueues::take_shared(uint32_t group, std::vector<OutMessage>& out, size_t& inflight) {
  inflight = 0;
  for (size_t i = 0; i < inflight_.size();) {
    OutMessage& m = inflight_[i];
    if (m.shared_group == group && m.state == OutMessage::State::kWaitPuback) {
      held_bytes_ -= held_bytes_of(m);
      m.state = OutMessage::State::kQueued;
      m.packet_id = 0;
      out.push_back(std::move(m));
      inflight_.erase(inflight_.begin() + static_cast<std::ptrdiff_t>(i));
      ++inflight;
    } else {
      ++i;
    }
  }
  for (auto it = queued_.begin(); it != queued_.end();) {
    if (it->shared_group == group) {
      held_bytes_ -= held_bytes_of(*it);
      out.push_back(std::move(*it));
      it = queued_.erase(it);
    } else {
      ++it;
    }
  }
}

std::vector<uint32_t> SessionQueues::shared_groups() const {
  std::vector<uint32_t> out;
  auto add = [&](uint32_t g) {
    if (g != 0 && std::find(out.begin(), out.end(), g) == out.end()) out.push_back(g);
  };
  for (const OutMessage& m : inflight_) add(m.shared_group);
  for (const OutMessage& m : queued_) add(m.shared_group);
  return out;
}

}  // namespace tcpms::broker
