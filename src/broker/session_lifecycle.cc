// MqttHandler, a session's life on its loop: the connection detaching (wills), clean
// sessions ending, persistent ones going offline, 5.0 session expiry and delayed wills, and a
// takeover.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "broker/mqtt_handler.h"

namespace tcpms::broker {

using mqtt::ReasonCode;

void MqttHandler::detach_connection(Session& s, bool publish, std::string_view why) {
  if (s.conn != nullptr) {
    broker_.client_log().disconnected(*s.conn, s.client_id(), why);
    s.conn->set_user_data(nullptr);
    s.conn = nullptr;
    stats_.sessions_connected.sub();
  }
  std::unique_ptr<Will> will = s.take_will();
  if (s.disconnected || !publish) will.reset();
  // A shared subscription member that leaves or goes offline: the others take what it had not
  // received yet (5.0 §4.8.2).
  redistribute_shared(s, 0);
  if (s.clean) {
    discard_session(&s);  // a clean session lasts as long as its connection [MQTT-3.1.2-6]
  } else {
    s.offline = true;
    stats_.sessions_offline.add();
    broker_.registry().set_conn(s.client_id(), &s, ConnId{});
    if (s.extra) {
      s.extra->topic_aliases.reset();
    }
    // 5.0: a will with a delay waits while the session lives [MQTT-3.1.3-9].
    if (will && will->delay_s != 0) s.extra_ref().delayed_will = std::move(will);
    arm_offline_timers(s);
    if (store_) {
      store_->save_session(s);  // offline from now: its expiry counts from here
      if (s.extra && s.extra->delayed_will)
        store_->will_saved(s, *s.extra->delayed_will, s.extra->will_at_ms);
    }
  }
  // After the session is settled, so the will cannot come back to it.
  publish_will(std::move(will));
}

void MqttHandler::reset_session(Session& s) {
  leave_all_shared(s);
  // Everything it had is gone, on disk too (a clean start, its end, a move elsewhere).
  if (store_) store_->drop_session(s);
  remove_subscriptions(s);
  if (s.has_queues()) {
    stats_.queued_messages.sub(static_cast<int64_t>(s.queues_->queued_count()));
    stats_.inflight_messages.sub(static_cast<int64_t>(s.queues_->inflight_count()));
    s.queues_.reset();
  }
}

void MqttHandler::discard_session(Session* s) {
  reset_session(*s);
  if (s->offline) {
    s->offline = false;
    stats_.sessions_offline.sub();
  }
  offline_timers_.disarm(*s);
  // A will still waiting for its delay goes out when the session ends [MQTT-3.1.3-9].
  std::unique_ptr<Will> will = s->extra ? std::move(s->extra->delayed_will) : nullptr;
  auto e = broker_.registry().find(s->client_id());
  const bool registered = e && e->session == s;
  broker_.registry().remove(s->client_id(), s);
  // The id's home forgets it (a release for a ticket the home no longer has is ignored).
  if (registered && broker_.router().claims_client_ids())
    broker_.router().release(s->client_id(), e->ticket);
  delete s;
  publish_will(std::move(will));
}

void MqttHandler::publish_will(std::unique_ptr<Will> will) {
  if (!will) return;
  MessageProps props;
  props.wire = will->props;
  // The will's Message Expiry Interval starts when it is published.
  if (will->expiry_s != 0) props.expires_at_ms = steady_ms() + uint64_t{will->expiry_s} * 1000;
  route(Message{will->topic, will->payload, std::move(props), will->qos, will->retain}, false);
}

void MqttHandler::flush_delayed_will(Session& s) {
  if (!s.extra || !s.extra->delayed_will) return;
  if (store_) store_->will_deleted(s);
  publish_will(std::move(s.extra->delayed_will));
}

void MqttHandler::arm_offline_timers(Session& s) {
  if (!s.extra || !s.is_v5()) return;
  SessionExtra& x = *s.extra;
  const uint64_t now = steady_ms();
  // 0xFFFFFFFF: the session does not expire (5.0 §3.1.2.11.2).
  x.expires_at_ms =
      x.session_expiry_s != 0xFFFFFFFFu ? now + uint64_t{x.session_expiry_s} * 1000 : 0;
  // The will waits for its delay or the session's end, whichever comes first [MQTT-3.1.3-9].
  x.will_at_ms = x.delayed_will ? now + uint64_t{x.delayed_will->delay_s} * 1000 : 0;
  offline_timers_.arm(s);
  arm_offline_loop_timer();
}

void MqttHandler::arm_offline_loop_timer() {
  const uint64_t due = offline_timers_.next_due();
  if (due == 0 || (offline_timer_at_ms_ != 0 && offline_timer_at_ms_ <= due)) return;
  // One loop timer for the earliest deadline; one armed for a later deadline still fires and
  // finds nothing due.
  offline_timer_at_ms_ = due;
  const uint64_t now = steady_ms();
  const uint64_t delay_ms = std::min<uint64_t>(due > now ? due - now : 0, kMaxLoopTimerMs);
  loop_.run_after(static_cast<uint32_t>(delay_ms), [this, due] {
    if (offline_timer_at_ms_ == due) offline_timer_at_ms_ = 0;
    run_offline_timers();
  });
}

void MqttHandler::run_offline_timers() {
  // While the upgrade handover holds input nothing is published from here either: a will
  // would reach no subscriber already moved (the sessions travel with the time left, and the
  // new process runs their timers; a rollback runs them here at once).
  if (held_for_handover_) return;
  const uint64_t now = steady_ms();
  while (Session* s = offline_timers_.pop_due(now)) {
    SessionExtra& x = *s->extra;
    if (x.expires_at_ms != 0 && x.expires_at_ms <= now) {
      spdlog::debug("mqtt: session '{}' expired", s->client_id());
      discard_session(s);  // its delayed will goes out with it
      continue;
    }
    x.will_at_ms = 0;
    flush_delayed_will(*s);
    offline_timers_.arm(*s);  // for its expiry, if it has one
  }
  arm_offline_loop_timer();
}

}  // namespace tcpms::broker
