// MqttHandler, shared subscriptions ("$share/{group}/{filter}", shared_groups.h): joining and
// leaving a group, picking one member per message (here, on another loop, or in another
// process through the router), skipping members that are offline or stalled, and handing a
// leaving member's unacknowledged messages to the others.
#include <spdlog/spdlog.h>

#include "broker/mqtt_handler.h"
#include "mqtt/topic.h"

namespace tcpms::broker {

using mqtt::QoS;

std::string subscribed_filter(const SharedSub& sub) {
  std::string out;
  out.reserve(mqtt::kSharePrefix.size() + sub.share.size() + 1 + sub.filter.size());
  out.append(mqtt::kSharePrefix).append(sub.share).append(1, '/').append(sub.filter);
  return out;
}

bool MqttHandler::add_shared(Session& s, std::string_view share, std::string_view filter, QoS qos,
                             uint8_t options, uint32_t subscription_id) {
  SharedGroups::Member m{&s, loop_.index(), qos, options, subscription_id};
  SharedGroups::Joined j = broker_.shared().join(share, filter, m);
  SessionExtra& x = s.extra_ref();
  if (!x.shared) x.shared = std::make_unique<std::vector<SharedSub>>();
  bool replaced = false;
  for (SharedSub& e : *x.shared) {
    if (e.group == j.group) {
      e.qos = qos;
      e.options = options;
      e.subscription_id = subscription_id;
      replaced = true;
    }
  }
  if (!replaced) {
    x.shared->push_back(SharedSub{j.group, std::string(share), std::string(filter), qos, options,
                                  subscription_id});
    stats_.subscriptions.add();
  }
  if (j.first_here) broker_.router().on_shared_group(share, filter, true);
  return replaced;
}

bool MqttHandler::remove_shared(Session& s, std::string_view share, std::string_view filter) {
  if (!s.extra || !s.extra->shared) return false;
  std::vector<SharedSub>& subs = *s.extra->shared;
  for (size_t i = 0; i < subs.size(); ++i) {
    if (subs[i].share != share || subs[i].filter != filter) continue;
    SharedSub gone = std::move(subs[i]);
    subs.erase(subs.begin() + static_cast<std::ptrdiff_t>(i));
    if (subs.empty()) s.extra->shared.reset();
    leave_group(s, gone);
    // What it had of the group and has not received goes to the others (5.0 §4.8.2).
    redistribute_shared(s, gone.group);
    return true;
  }
  return false;
}

void MqttHandler::leave_group(Session& s, const SharedSub& sub) {
  bool last = false;
  // On the session's loop, before it is freed: a message posted to it meanwhile finds it no
  // longer a member and goes to the next one.
  if (!broker_.shared().leave(sub.group, &s, &last)) return;
  stats_.subscriptions.sub();
  if (last) broker_.router().on_shared_group(sub.share, sub.filter, false);
}

void MqttHandler::leave_all_shared(Session& s) {
  if (!s.extra || !s.extra->shared) return;
  std::vector<SharedSub> subs = std::move(*s.extra->shared);
  s.extra->shared.reset();
  for (const SharedSub& sub : subs) leave_group(s, sub);
}

bool MqttHandler::available_for(Session& s, QoS qos) {
  if (s.conn == nullptr) return false;  // offline: the others first
  if (s.conn->pending_output_bytes() > cfg_.max_queued_bytes) return false;  // backlogged
  if (qos == QoS::k0) return true;
  return !s.has_queues() || (!s.queues_->has_queued() && s.queues_->window_has_room(window(s)));
}

void MqttHandler::dispatch_shared(const SharedGroups::Choice& c, const Message& m, uint32_t tried,
                                  const DurableWait& wait, bool from_peer) {
  if (c.peer != kLocalPeer) {
    if (!wait.any()) {
      broker_.router().shared_deliver(c.peer, c.share, c.filter, m, 0);
    } else if (!broker_.router().shared_deliver_held(c.peer, c.share, c.filter, m, 0, wait)) {
      answer_wait(wait, false);  // no answer will come from there
    }
    return;
  }
  if (c.member.loop == loop_.index()) {
    deliver_shared(c.group, c.member, m, tried, wait, from_peer);
    return;
  }
  MqttHandler* h = broker_.handler_for(c.member.loop);
  const bool posted = h != nullptr && h->loop().post([h, group = c.group, member = c.member, m,
                                                      tried, wait, from_peer] {
    h->deliver_shared(group, member, m, tried, wait, from_peer);
  });
  if (!posted && wait.any()) answer_wait(wait, false);
}

void MqttHandler::deliver_shared(uint32_t group, const SharedGroups::Member& member,
                                 const Message& m, uint32_t tried, const DurableWait& wait,
                                 bool from_peer) {
  // The member may have left since it was picked (its loop is this one: if it is still a member
  // now, its session is alive).
  if (!broker_.shared().is_member(group, member.session)) {
    if (auto next = broker_.shared().next(group, nullptr, tried))
      dispatch_shared(*next, m, tried + 1, wait, from_peer);
    else if (wait.any())
      answer_wait(wait, false);  // nobody to take it
    return;
  }
  Session& s = *member.session;
  const QoS granted = min_qos(m.qos, member.qos);
  if (!available_for(s, granted)) {
    // Offline or stalled: the next member, while a round of the group's members is not over.
    auto next = broker_.shared().next(group, &s, tried);
    if (next && (next->peer == kLocalPeer || !from_peer)) {
      stats_.shared_skipped.add();
      dispatch_shared(*next, m, tried + 1, wait, from_peer);
      return;
    }
  }
  // Retained publishes reach shared members with RETAIN 0 unless Retain As Published.
  const bool retain = m.retain && (member.options & kSubRetainAsPublished);
  const uint32_t id = member.subscription_id;
  stats_.shared_deliveries.add();
  deliver(s, m, granted, retain, id != 0 ? subscription_id_props(std::span(&id, 1)) : SharedBytes(),
          group);
  if (wait.any()) answer_wait(wait, true);
}

void MqttHandler::redistribute_shared(Session& s, uint32_t only_group) {
  if (!s.has_queues()) return;
  for (uint32_t group : s.queues_->shared_groups()) {
    if (only_group != 0 && group != only_group) continue;
    // Only when another member can take them; else they stay with this one.
    if (!broker_.shared().next(group, &s, 0)) continue;
    std::vector<OutMessage> out;
    size_t inflight = 0;
    s.queues_->take_shared(group, out, inflight);
    stats_.inflight_messages.sub(static_cast<int64_t>(inflight));
    stats_.queued_messages.sub(static_cast<int64_t>(out.size() - inflight));
    for (OutMessage& msg : out) {
      auto next = broker_.shared().next(group, &s, 0);
      if (!next) {
        queue_message(s, std::move(msg));  // the others left meanwhile: it stays here
        continue;
      }
      stats_.shared_redistributed.add();
      Message m = msg;  // as this member got it: its QoS is at most the publish's
      m.retain = false;
      if (!store_ || !s.stored || msg.store_seq == 0) {
        dispatch_shared(*next, m, 1);
        continue;
      }
      // No longer this session's, but its stored copy stays until the member that takes it
      // has its own (the publisher was acknowledged long ago: a crash in between must not
      // lose it). Recorded before the dispatch, which may answer at once (same loop).
      const uint64_t id = next_handoff_++;
      handoffs_.emplace(id, HandOff{std::string(s.client_id()), &s, std::move(msg), group});
      dispatch_shared(*next, m, 1, DurableWait::for_handoff(loop_.index(), id));
    }
  }
  s.trim();
}

void MqttHandler::handoff_answered(uint64_t token, bool ok) {
  auto it = handoffs_.find(token & ~DurableWait::kHandOff);
  if (it == handoffs_.end()) return;
  HandOff h = std::move(it->second);
  handoffs_.erase(it);
  const uint64_t old_seq = h.message.store_seq, old_body = h.message.store_body;
  if (ok) {
    // The taker has its copy: submitted to this store already (it is one log, committed in
    // order, so this delete cannot be durable before that write), or committed by the other
    // process (its answer comes after its commit under every-message).
    store_->message_gone(h.client_id, old_seq, old_body);
    return;
  }
  // Nobody took it, or the process it went to did not confirm (down, or no answer within the
  // router's request timeout: it may have it after all, and the member here gets it again,
  // a duplicate QoS 1 allows). Its stored copy is still here.
  Session* s = broker_.registry().owns(h.client_id, h.session, loop_.index()) ? h.session : nullptr;
  stats_.shared_handoffs_returned.add();
  if (s == nullptr) {
    // The session ended (its stored messages went with it) or moved to another loop (its
    // copy stays on disk for the next restart): the group gets the message again.
    Message m = h.message;
    m.retain = false;
    if (auto next = broker_.shared().next(h.group, nullptr, 0)) dispatch_shared(*next, m, 1);
    return;
  }
  // Back to its member, stored anew (the session may have been reset and stored again since,
  // which dropped the old row), then the old copy goes: in this order, so one is always there.
  OutMessage m = std::move(h.message);
  m.store_seq = 0;
  m.store_body = 0;
  queue_message(*s, std::move(m));
  store_->message_gone(h.client_id, old_seq, old_body);
  if (s->conn != nullptr) pump(*s);
}

uint32_t MqttHandler::route_shared(const Message& m, const DurableWait& wait) {
  thread_local std::vector<SharedGroups::Choice> choices;
  choices.clear();
  broker_.shared().choose(as_chars(m.topic.view()), choices);
  for (const SharedGroups::Choice& c : choices) dispatch_shared(c, m, 0, wait);
  return static_cast<uint32_t>(choices.size());
}

}  // namespace tcpms::broker
