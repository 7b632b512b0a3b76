#include "broker/durable_gate.h"

#include <algorithm>

namespace tcpms::broker {

uint64_t DurableGate::hold(ConnId conn, ByteView head, const SharedBytes& body, uint64_t wait_seq,
                           uint32_t echoes) {
  held_.push_back(Held{conn, std::string(as_chars(head)), body, wait_seq, echoes, 0});
  wanted_ = std::max(wanted_, wait_seq);
  return first_token_ + held_.size() - 1;
}

void DurableGate::echo(uint64_t token, uint64_t seq) {
  if (token < first_token_ || token - first_token_ >= held_.size()) return;
  Held& h = held_[token - first_token_];
  h.wait_seq = std::max(h.wait_seq, seq);
  wanted_ = std::max(wanted_, seq);
  ++h.answered;
}

void DurableGate::complete(uint64_t token, uint64_t wait_seq, uint32_t echoes) {
  if (token < first_token_ || token - first_token_ >= held_.size()) return;
  Held& h = held_[token - first_token_];
  h.wait_seq = std::max(h.wait_seq, wait_seq);
  wanted_ = std::max(wanted_, wait_seq);
  h.echoes = echoes;
}

void DurableGate::release(uint64_t durable) {
  durable_ = std::max(durable_, durable);
  while (!held_.empty()) {
    Held& h = held_.front();
    if (h.answered < h.echoes || h.wait_seq > durable_) break;
    if (Connection* c = loop_.find(h.conn)) {
      if (h.body.empty())
        c->enqueue(as_bytes(h.head));
      else
        c->enqueue_shared(as_bytes(h.head), h.body);
    }
    held_.pop_front();
    ++first_token_;
  }
}

}  // namespace tcpms::broker
