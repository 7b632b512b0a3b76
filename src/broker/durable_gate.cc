#include "broker/durable_gate.h"

#include <algorithm>

#include "broker/broker.h"

namespace tcpms::broker {

uint64_t DurableGate::hold(ConnId conn, ByteView head, const SharedBytes& body, uint64_t wait_seq,
                           uint32_t echoes) {
  held_.push_back(Held{conn, std::string(as_chars(head)), body, wait_seq, echoes});
  wanted_ = std::max(wanted_, wait_seq);
  return first_token_ + held_.size() - 1;
}

uint64_t DurableGate::hold_for_peer(uint16_t peer, uint64_t request, uint64_t wait_seq,
                                    uint32_t echoes) {
  Held h{ConnId{}, {}, {}, wait_seq, echoes};
  h.request = request;
  h.peer = peer;
  held_.push_back(std::move(h));
  ++peers_waiting_;
  wanted_ = std::max(wanted_, wait_seq);
  return first_token_ + held_.size() - 1;
}

DurableGate::Held* DurableGate::find(uint64_t token) {
  if (token < first_token_ || token - first_token_ >= held_.size()) return nullptr;
  return &held_[token - first_token_];
}

void DurableGate::echo(uint64_t token, uint64_t seq) {
  Held* h = find(token);
  if (h == nullptr) return;
  h->wait_seq = std::max(h->wait_seq, seq);
  wanted_ = std::max(wanted_, seq);
  ++h->answered;
}

void DurableGate::fail(uint64_t token) {
  Held* h = find(token);
  if (h == nullptr) return;
  h->failed = true;
  ++h->answered;
}

void DurableGate::complete(uint64_t token, uint64_t wait_seq, uint32_t echoes) {
  Held* h = find(token);
  if (h == nullptr) return;
  h->wait_seq = std::max(h->wait_seq, wait_seq);
  wanted_ = std::max(wanted_, wait_seq);
  h->echoes = echoes;
}

bool DurableGate::holds(ConnId conn) const noexcept {
  for (const Held& h : held_)
    if (h.peer == kNoPeer && h.conn == conn) return true;
  return false;
}

void DurableGate::release(uint64_t durable) {
  durable_ = std::max(durable_, durable);
  if (peers_waiting_ != 0) {
    // Answers to other processes name their request and need no order among the rest: each
    // goes as soon as what it answers for is durable. Behind a connection's acknowledgement
    // it could wait for ever: two processes each holding a PUBACK that waits for the other's
    // answer, each answer behind the other's PUBACK.
    for (Held& h : held_) {
      if (h.peer == kNoPeer || h.answered_peer || h.answered < h.echoes || h.wait_seq > durable_)
        continue;
      // What this process stored for the peer's publish is durable: the peer may acknowledge.
      if (!h.failed) broker_.router().durable_done(h.peer, h.request);
      h.answered_peer = true;
      --peers_waiting_;
    }
  }
  while (!held_.empty()) {
    Held& h = held_.front();
    if (h.peer != kNoPeer) {
      if (!h.answered_peer) break;
    } else if (h.answered < h.echoes || h.wait_seq > durable_) {
      break;
    } else if (Connection* c = loop_.find(h.conn)) {  // null once closing
      if (h.failed) {
        // Not known to be durable everywhere: no acknowledgement, and none after it on this
        // connection (they would be out of order): closed now, so find() no longer returns it
        // (a close after flush would still take what is enqueued meanwhile). The client sends
        // the message again.
        c->close(CloseReason::kProtocol);
      } else if (h.body.empty()) {
        c->enqueue(as_bytes(h.head));
      } else {
        c->enqueue_shared(as_bytes(h.head), h.body);
      }
    }
    held_.pop_front();
    ++first_token_;
  }
}

}  // namespace tcpms::broker
