#include "broker/broker.h"

#include <algorithm>
#include <condition_variable>
#include <ctime>
#include <tuple>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "broker/mqtt_handler.h"
#include "broker/session_store.h"
#include "store/store_writer.h"
#include "broker/sys_topics.h"
#include "mqtt/topic.h"

namespace tcpms::broker {
namespace {

uint64_t monotonic_ms() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

}  // namespace

const char* send_result_name(SendResult r) noexcept {
  switch (r) {
    case SendResult::kNotConnected: return "not_connected";
    case SendResult::kQueued: return "queued";
    case SendResult::kSent: return "sent";
    case SendResult::kRouted: return "routed";
    case SendResult::kInvalid: return "invalid";
  }
  return "unknown";
}

Broker::Broker(BrokerConfig config)
    : config_(std::move(config)),
      auth_(std::make_unique<Authenticator>()),
      acl_(std::make_unique<Authorizer>()),
      router_(std::make_unique<Router>()),
      client_log_(config_.client_log),
      start_ms_(monotonic_ms()) {
  if (config_.connects_per_s_per_source > 0) {
    auth::LoginThrottleConfig c;
    c.limits = {config_.connects_per_s_per_source, config_.connect_burst_per_source};
    c.max_entries = config_.connect_rate_sources;
    source_rate_ = std::make_unique<auth::LoginThrottle>(c);
  }
  if (config_.connects_per_s > 0) {
    total_rate_on_ = true;
    total_rate_ = auth::TokenBucket(config_.connect_burst, auth::TokenBucket::Clock::now());
  }
}

Broker::~Broker() = default;

void Broker::attach(Server& server) {
  server_ = &server;
  loop_base_ = server.config().loop_index_base;
  handlers_.assign(server.config().threads, nullptr);
  acl_->prepare_loops(server.config().threads);
}

HandlerFactory Broker::handler_factory() {
  return [this](EventLoop& loop) -> std::unique_ptr<Handler> {
    auto h = std::make_unique<MqttHandler>(*this, loop);
    size_t pos = loop.index() - loop_base_;
    if (pos >= handlers_.size()) handlers_.resize(pos + 1, nullptr);
    handlers_[pos] = h.get();
    if (pos == 0 && config_.sys_interval_ms != 0) {
      // $SYS/ statistics from the first loop, as retained messages (Mosquitto's layout).
      MqttHandler* raw = h.get();
      loop.post([raw, &loop, period = config_.sys_interval_ms] {
        raw->publish_sys();
        loop.run_every(period, [raw] { raw->publish_sys(); });
      });
    }
    return h;
  };
}

// What the store reads back, held until each loop's handler takes its share.
class Broker::Recovery : public store::RecoveryVisitor {
 public:
  Recovery(Broker& b, size_t loops) : per_loop_(std::max<size_t>(loops, 1)), broker_(b) {}
  void on_retained(std::string topic, store::RetainedRecord r) override {
    MessageProps props{r.properties, SessionStore::to_steady_ms(r.expires_at_ms)};
    broker_.retained_.set(SharedBytes::copy_of(as_bytes(topic)), r.payload, r.qos, props);
  }
  void on_session(store::RecoveredSession s) override {
    per_loop_[std::hash<std::string>{}(s.client_id) % per_loop_.size()].push_back(std::move(s));
  }
  void on_expired_session(store::RecoveredSession s) override {
    if (s.will) wills_.push_back(std::move(*s.will));
  }
  std::vector<std::vector<store::RecoveredSession>> per_loop_;
  std::vector<store::WillRecord> wills_;

 private:
  Broker& broker_;
};

store::RecoveryVisitor& Broker::recovery_visitor() {
  if (!recovery_) recovery_ = std::make_unique<Recovery>(*this, handlers_.size());
  return *recovery_;
}

std::vector<store::RecoveredSession> Broker::take_recovered(uint32_t loop_index) {
  const size_t pos = loop_index - loop_base_;
  if (!recovery_ || pos >= recovery_->per_loop_.size()) return {};
  return std::move(recovery_->per_loop_[pos]);
}

void Broker::after_recovery() {
  if (!recovery_) return;
  for (MqttHandler* h : handlers_)
    if (h != nullptr) h->loop().post([h] { h->announce_recovered(); });
  if (!handlers_.empty() && handlers_[0] != nullptr && !recovery_->wills_.empty()) {
    // Delayed wills of sessions that expired while the server was down: owed since their
    // session ended [MQTT-3.1.3-9].
    MqttHandler* h = handlers_[0];
    h->loop().post([h, wills = std::move(recovery_->wills_)] {
      for (const store::WillRecord& w : wills) {
        MessageProps props{w.properties, w.expiry_s != 0 ? steady_ms() + uint64_t{w.expiry_s} * 1000 : 0};
        h->route(Message{w.topic, w.payload, props, w.qos, w.retain}, false);
      }
    });
  }
  recovery_.reset();
}

MqttHandler* Broker::handler_for(uint32_t loop_index) const noexcept {
  if (loop_index < loop_base_ || loop_index - loop_base_ >= handlers_.size()) return nullptr;
  return handlers_[loop_index - loop_base_];
}

namespace {
bool publishable(std::string_view topic, mqtt::QoS qos, uint32_t max_levels) {
  // $SYS/ is the broker's own: the API may not publish there, as clients may not.
  return static_cast<uint8_t>(qos) <= 2 && !is_sys_topic(topic) &&
         mqtt::validate_topic_name(topic, max_levels) == mqtt::TopicError::kOk;
}
}  // namespace

bool Broker::publish(std::string_view topic, ByteView payload, mqtt::QoS qos, bool retain) {
  if (handlers_.empty() || !publishable(topic, qos, config_.max_topic_levels)) return false;
  MqttHandler* h = handlers_[next_loop_.fetch_add(1, std::memory_order_relaxed) % handlers_.size()];
  if (h == nullptr) return false;
  SharedBytes t = SharedBytes::copy_of(as_bytes(topic));
  SharedBytes p = SharedBytes::copy_of(payload);
  return h->loop().post([h, m = Message{std::move(t), std::move(p), {}, qos, retain}] {
    h->route(m, false);
  });
}

PublishOutcome Broker::publish_counted(std::string_view topic, ByteView payload, mqtt::QoS qos,
                                       bool retain, std::chrono::milliseconds timeout) {
  PublishOutcome out;
  if (handlers_.empty() || !publishable(topic, qos, config_.max_topic_levels)) return out;
  MqttHandler* h = handlers_[next_loop_.fetch_add(1, std::memory_order_relaxed) % handlers_.size()];
  if (h == nullptr) return out;
  auto tally = std::make_shared<DeliveryTally>();
  SharedBytes t = SharedBytes::copy_of(as_bytes(topic));
  SharedBytes p = SharedBytes::copy_of(payload);
  out.accepted = h->loop().post([h, tally, m = Message{std::move(t), std::move(p), {}, qos, retain}] {
    h->route(m, false, nullptr, tally);
  });
  if (out.accepted) out.counted = tally->wait(timeout, out.receivers);
  return out;
}

SendResult Broker::send_to_client(std::string_view client_id, std::string_view topic,
                                  ByteView payload, mqtt::QoS qos, Router::PushDone routed) {
  if (!publishable(topic, qos, config_.max_topic_levels)) return SendResult::kInvalid;
  Message m{SharedBytes::copy_of(as_bytes(topic)), SharedBytes::copy_of(payload), {}, qos, false};
  if (!registry_.find(client_id)) {
    return router_->push_to_client(client_id, m, std::move(routed)) ? SendResult::kRouted
                                                                     : SendResult::kNotConnected;
  }
  return send_to_local_client(client_id, m);
}

SendResult Broker::send_to_local_client(std::string_view client_id, const Message& m) {
  auto e = registry_.find(client_id);
  if (!e) return SendResult::kNotConnected;
  MqttHandler* h = handler_for(e->loop);
  if (h == nullptr) return SendResult::kNotConnected;
  const bool connected = e->conn.valid() || e->in_transit;
  if (!connected && m.qos == mqtt::QoS::k0) return SendResult::kNotConnected;  // QoS 0 is not kept
  // The answer reflects the registry now; the delivery happens on the session's loop, which
  // checks again that it still owns the session.
  h->loop().post([h, id = std::string(client_id), s = e->session, m] { h->push_to_client(id, s, m); });
  return connected ? SendResult::kSent : SendResult::kQueued;
}

bool Broker::kick(std::string_view client_id, Router::PushDone routed) {
  if (kick_local(client_id)) return true;
  if (registry_.find(client_id)) return false;  // here, but offline: nothing to disconnect
  return router_->kick_client(client_id, std::move(routed));
}

bool Broker::kick_local(std::string_view client_id) {
  auto e = registry_.find(client_id);
  if (!e || !e->conn.valid()) return false;
  MqttHandler* h = handler_for(e->loop);
  if (h == nullptr) return false;
  return h->loop().post([h, id = std::string(client_id), s = e->session] { h->kick(id, s); });
}

void Broker::surrender_session(std::string_view client_id, uint32_t ticket, bool want_image,
                               SessionDone done) {
  surrender_session(client_id, ticket, want_image, std::make_shared<SessionDoneOnce>(std::move(done)));
}

void Broker::surrender_session(std::string_view client_id, uint32_t ticket, bool want_image,
                               std::shared_ptr<SessionDoneOnce> done) {
  auto e = registry_.find(client_id);
  if (!e) {
    std::lock_guard lock(claiming_mu_);
    e = registry_.find(client_id);  // settled meanwhile?
    if (!e) {
      auto it = claiming_.find(std::string(client_id));
      if (it != claiming_.end()) {
        it->second.held.push_back({ticket, want_image, std::move(done)});
        return;  // sent again once the claim here is settled
      }
    }
  }
  MqttHandler* h = e ? handler_for(e->loop) : nullptr;
  if (h == nullptr) {
    (*done)(std::nullopt);  // no session here
    return;
  }
  // The session's loop does the work. If the post fails (loop stopping), the task and with it
  // the last reference to `done` are dropped, which answers nullopt.
  h->loop().post([h, id = std::string(client_id), s = e->session, ticket, want_image, done] {
    h->surrender_session(id, s, ticket, want_image, done);
  });
}

void Broker::claim_started(std::string_view client_id) {
  std::lock_guard lock(claiming_mu_);
  ++claiming_[std::string(client_id)].unsettled;
}

void Broker::claim_settled(std::string_view client_id) {
  std::vector<HeldSurrender> held;
  uint32_t late_ticket = 0;
  {
    std::lock_guard lock(claiming_mu_);
    auto it = claiming_.find(std::string(client_id));
    if (it == claiming_.end()) return;
    if (--it->second.unsettled != 0) return;
    held = std::move(it->second.held);
    late_ticket = it->second.late_ticket;
    claiming_.erase(it);
  }
  // Before the held requests: one the home sent after its late answer names that ticket.
  if (late_ticket != 0) settle_late_ticket(client_id, late_ticket);
  for (HeldSurrender& r : held) surrender_session(client_id, r.ticket, r.want_image, std::move(r.done));
}

bool Broker::adopt_session(std::string_view client_id, std::string image, uint32_t ticket) {
  if (handlers_.empty()) return false;
  if (registry_.find(client_id)) {
    // The client reconnected (here or through a fresh session) before its old state came
    // back: the state it has now wins.
    count_adopt_dropped();
    spdlog::warn("mqtt: late session image for '{}' dropped: the id has a session here",
                 client_id);
    return false;
  }
  // Any loop will do: the session's next CONNECT moves it wherever that lands.
  MqttHandler* h = adopting_handler(client_id);
  if (h == nullptr) return false;
  return h->loop().post([h, id = std::string(client_id), image = std::move(image), ticket]() mutable {
    h->adopt_session(id, std::move(image), ticket);
  });
}

MqttHandler* Broker::adopting_handler(std::string_view client_id) const noexcept {
  if (handlers_.empty()) return nullptr;
  return handlers_[std::hash<std::string_view>{}(client_id) % handlers_.size()];
}

void Broker::claim_answered_late(std::string_view client_id, uint32_t ticket) {
  // On the loop that adopts the id's late images: an image that came before this answer is
  // registered by then, and takes the ticket rather than being forgotten at its home.
  MqttHandler* h = adopting_handler(client_id);
  if (h != nullptr &&
      h->loop().post([this, id = std::string(client_id), ticket] { settle_late_ticket(id, ticket); }))
    return;
  settle_late_ticket(client_id, ticket);  // no loop running: nothing here can be adopted
}

void Broker::settle_late_ticket(std::string_view client_id, uint32_t ticket) {
  {
    std::lock_guard lock(claiming_mu_);
    auto it = claiming_.find(std::string(client_id));
    if (it != claiming_.end()) {
      // A CONNECT whose claim timed out may not have registered its session yet.
      uint32_t& late = it->second.late_ticket;
      if (late == 0 || newer_claim(ticket, late)) late = ticket;
      return;
    }
  }
  if (registry_.raise_ticket(client_id, ticket)) return;
  // Nothing here holds the id (a refused CONNECT, or a connection gone): the home's record
  // would send the next claim's request for the session here, where there is none. A release
  // for a ticket the home has replaced since is ignored there.
  if (router_ && router_->claims_client_ids()) router_->release(client_id, ticket);
}

void Broker::for_each_session(const std::function<void(std::string_view, uint32_t)>& visit) const {
  registry_.for_each([&](const RegistryEntry& e) { visit(e.session->client_id(), e.ticket); });
}

void Broker::set_ticket(std::string_view client_id, uint32_t ticket) {
  if (auto e = registry_.find(client_id)) registry_.set_ticket(client_id, e->session, ticket);
}

void Broker::walk_filters(std::function<void(std::string_view)> on_filter,
                          std::function<void(uint32_t)> on_done) {
  for (MqttHandler* h : handlers_) {
    if (h == nullptr) continue;
    const uint32_t pos = loop_position(h->loop().index());
    if (!h->loop().post([h, pos, on_filter, on_done] {
          h->walk_filters(on_filter);
          on_done(pos);
        }))
      on_done(pos);  // a stopping loop: nothing to walk
  }
}

void Broker::shared_arrived(uint16_t from, std::string_view share, std::string_view filter,
                            Message m, uint8_t hops, DurableWait wait) {
  uint32_t group = 0;
  uint16_t other = kLocalPeer;
  auto member = shared_.pick_here(share, filter, group, from, other);
  if (member) {
    MqttHandler* h = handler_for(member->loop);
    // (A task a stopping loop drops leaves `wait` unanswered: the asker's link drops with us.)
    if (h != nullptr) {
      h->loop().post([h, group, mm = *member, m = std::move(m), wait] {
        h->deliver_shared(group, mm, m, 0, wait, true);
      });
      return;
    }
  }
  // Nobody here any more: another process that has a member, if it has not been through too
  // many (a group that empties everywhere while its message travels ends here).
  if (other != kLocalPeer && hops < kMaxSharedHops) {
    const auto next_hops = static_cast<uint8_t>(hops + 1);
    if (!wait.any()) {
      router_->shared_deliver(other, share, filter, m, next_hops);
    } else if (!router_->shared_deliver_held(other, share, filter, m, next_hops, wait)) {
      router_->durable_done(wait.peer, wait.request);  // it went nowhere: nothing to wait for
    }
    return;
  }
  shared_dropped_.fetch_add(1, std::memory_order_relaxed);
  if (wait.peer_waits()) router_->durable_done(wait.peer, wait.request);
}

void Broker::for_each_retained(const std::function<void(const Message&)>& visit) const {
  std::vector<RetainedMessage> all;
  retained_.all(all);
  const uint64_t now = steady_ms();
  for (const RetainedMessage& m : all)
    if (m.props.expires_at_ms == 0 || m.props.expires_at_ms > now) visit(m);
}

namespace {

// Runs `work(h, out)` on the loop of each handler in `targets` and gathers what they append,
// waiting up to `timeout` (a loop that does not answer in time is left out).
template <typename T, typename Work>
std::vector<T> gather(const std::vector<MqttHandler*>& targets, Work work,
                      std::chrono::milliseconds timeout) {
  struct Gather {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<T> out;
    size_t pending = 0;
  };
  auto g = std::make_shared<Gather>();
  for (MqttHandler* h : targets) {
    if (h == nullptr) continue;
    {
      std::lock_guard lock(g->mu);
      ++g->pending;
    }
    bool ok = h->loop().post([h, g, work] {
      std::vector<T> mine;
      work(h, mine);
      std::lock_guard lock(g->mu);
      for (auto& x : mine) g->out.push_back(std::move(x));
      if (--g->pending == 0) g->cv.notify_all();
    });
    if (!ok) {
      std::lock_guard lock(g->mu);
      --g->pending;
    }
  }
  std::unique_lock lock(g->mu);
  g->cv.wait_for(lock, timeout, [&] { return g->pending == 0; });
  return std::move(g->out);
}

}  // namespace

std::vector<ClientInfo> Broker::list_clients(std::chrono::milliseconds timeout) {
  return gather<ClientInfo>(
      handlers_, [](MqttHandler* h, std::vector<ClientInfo>& out) { h->collect_clients(out); },
      timeout);
}

std::vector<ClientInfo> Broker::describe_clients(const std::vector<std::string>& client_ids,
                                                 bool with_subscriptions,
                                                 std::chrono::milliseconds timeout) {
  // One task per loop holding some of them.
  std::vector<std::vector<std::pair<std::string, Session*>>> by_loop(handlers_.size());
  std::vector<MqttHandler*> targets;
  for (const std::string& id : client_ids) {
    auto e = registry_.find(id);
    if (!e || handler_for(e->loop) == nullptr) continue;
    by_loop[e->loop - loop_base_].emplace_back(id, e->session);
  }
  auto wanted = std::make_shared<decltype(by_loop)>(std::move(by_loop));
  for (size_t i = 0; i < handlers_.size(); ++i)
    if (!(*wanted)[i].empty()) targets.push_back(handlers_[i]);
  auto out = gather<ClientInfo>(
      targets,
      [wanted, with_subscriptions, base = loop_base_](MqttHandler* h, std::vector<ClientInfo>& mine) {
        for (const auto& [id, s] : (*wanted)[h->loop().index() - base])
          if (auto ci = h->describe_client(id, s, with_subscriptions)) mine.push_back(std::move(*ci));
      },
      timeout);
  // In the order asked.
  std::vector<ClientInfo> ordered;
  ordered.reserve(out.size());
  for (const std::string& id : client_ids) {
    auto it = std::find_if(out.begin(), out.end(), [&](const ClientInfo& c) { return c.client_id == id; });
    if (it != out.end()) ordered.push_back(std::move(*it));
  }
  return ordered;
}

SessionDeleteResult Broker::delete_session(std::string_view client_id,
                                           std::chrono::milliseconds timeout) {
  auto e = registry_.find(client_id);
  MqttHandler* h = e ? handler_for(e->loop) : nullptr;
  if (h == nullptr) return SessionDeleteResult::kNotFound;
  if (e->conn.valid()) return SessionDeleteResult::kConnected;
  auto result = gather<SessionDeleteResult>(
      {h},
      [id = std::string(client_id), s = e->session](MqttHandler* holder,
                                                     std::vector<SessionDeleteResult>& out) {
        out.push_back(holder->delete_session(id, s));
      },
      timeout);
  return result.empty() ? SessionDeleteResult::kUnavailable : result.front();
}

std::vector<SubscriptionInfo> Broker::find_subscriptions(std::string_view filter, bool match_topic,
                                                         size_t limit,
                                                         std::chrono::milliseconds timeout) {
  auto out = gather<SubscriptionInfo>(
      handlers_,
      [f = std::string(filter), match_topic, limit](MqttHandler* h, std::vector<SubscriptionInfo>& mine) {
        h->collect_subscriptions(f, match_topic, limit, mine);
      },
      timeout);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a.client_id, a.filter) < std::tie(b.client_id, b.filter);
  });
  if (out.size() > limit) out.resize(limit);
  return out;
}

std::vector<RetainedMessage> Broker::retained_matching(std::string_view filter) const {
  std::vector<RetainedMessage> out;
  retained_.match(filter, out);
  return out;
}

std::optional<RetainedMessage> Broker::retained_get(std::string_view topic) const {
  return retained_.get(topic);
}

bool Broker::retained_delete(std::string_view topic) {
  if (is_sys_topic(topic)) return false;
  return retained_.erase(topic);
}

void Broker::deliver_remote(Message m, DurableWait wait) {
  if (handlers_.empty()) return;
  // One loop per topic, so messages on a topic arrive in the order they were sent (ordered
  // topics, MQTT 3.1.1 §4.6); round robin over loops could swap two of them.
  size_t pick = std::hash<std::string_view>{}(as_chars(m.topic.view())) % handlers_.size();
  MqttHandler* h = handlers_[pick];
  if (h == nullptr) return;
  // A task dropped by a stopping loop leaves the asker without an answer: its link drops
  // with this process, and that fails the wait there.
  if (wait.peer_waits())
    h->loop().post([h, m = std::move(m), wait] { h->route_for_peer(m, wait.peer, wait.request); });
  else
    h->loop().post([h, m = std::move(m)] { h->route(m, true); });
}

void Broker::durable_answered(uint32_t loop, uint64_t token, bool ok, uint64_t seq) {
  MqttHandler* h = handler_for(loop);
  if (h != nullptr) h->loop().post([h, token, ok, seq] { h->gate_answer(token, ok, seq); });
}

bool Broker::admit_connection(const sockaddr_storage& peer) {
  const auto now = auth::TokenBucket::Clock::now();
  if (total_rate_on_) {
    std::lock_guard lock(total_rate_mu_);
    if (!total_rate_.try_take({config_.connects_per_s, config_.connect_burst}, 1, now)) return false;
  }
  if (source_rate_) {
    auto key = auth::ip_key_from_sockaddr(reinterpret_cast<const sockaddr*>(&peer));
    if (key && !source_rate_->try_acquire(*key, now)) return false;
  }
  return true;
}

BrokerTotals Broker::totals() const {
  BrokerTotals t;
  auto v = [](const Counter& c) { return static_cast<int64_t>(c.get()); };
  for (MqttHandler* h : handlers_) {
    if (h == nullptr) continue;
    const BrokerStats& s = h->stats();
    t.sessions_connected += v(s.sessions_connected);
    t.sessions_offline += v(s.sessions_offline);
    t.subscriptions += v(s.subscriptions);
    t.messages_in += v(s.messages_in);
    t.messages_out += v(s.messages_out);
    t.dropped += v(s.qos0_dropped_slow) + v(s.queue_dropped);
    t.queued += v(s.queued_messages);
    t.inflight += v(s.inflight_messages);
    t.connects_refused += v(s.connects_refused);
    t.auth_refused += v(s.auth_refused);
    t.protocol_violations += v(s.protocol_violations);
  }
  return t;
}

void Broker::render_metrics(std::string& out) const {
  auto family = [&](const char* name, const char* type, const char* help) {
    fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  static const char* kTypes[] = {"reserved", "connect", "connack", "publish", "puback",
                                 "pubrec", "pubrel", "pubcomp", "subscribe", "suback",
                                 "unsubscribe", "unsuback", "pingreq", "pingresp",
                                 "disconnect", "auth"};
  for (int dir = 0; dir < 2; ++dir) {
    const char* name = dir == 0 ? "tcpms_mqtt_packets_received_total" : "tcpms_mqtt_packets_sent_total";
    family(name, "counter", dir == 0 ? "MQTT packets received, by type." : "MQTT packets sent, by type.");
    for (int t = 1; t < 16; ++t) {
      int64_t sum = 0;
      for (MqttHandler* h : handlers_)
        if (h) sum += static_cast<int64_t>((dir == 0 ? h->stats().packets_in : h->stats().packets_out)[t].get());
      fmt::format_to(std::back_inserter(out), "{}{{type=\"{}\"}} {}\n", name, kTypes[t], sum);
    }
  }
  struct Family {
    const char* name;
    const char* type;
    const char* help;
    Counter BrokerStats::*field;
  };
  static const Family kFamilies[] = {
      {"tcpms_mqtt_sessions_connected", "gauge", "Sessions with a connection.",
       &BrokerStats::sessions_connected},
      {"tcpms_mqtt_sessions_offline", "gauge", "Persistent sessions without a connection.",
       &BrokerStats::sessions_offline},
      {"tcpms_mqtt_subscriptions", "gauge", "Subscriptions.", &BrokerStats::subscriptions},
      {"tcpms_mqtt_queued_messages", "gauge", "QoS 1/2 messages waiting in sessions.",
       &BrokerStats::queued_messages},
      {"tcpms_mqtt_inflight_messages", "gauge", "QoS 1/2 messages sent and not yet acknowledged.",
       &BrokerStats::inflight_messages},
      {"tcpms_mqtt_messages_received_total", "counter", "PUBLISH packets from clients.",
       &BrokerStats::messages_in},
      {"tcpms_mqtt_messages_sent_total", "counter", "PUBLISH packets to clients.",
       &BrokerStats::messages_out},
      {"tcpms_mqtt_qos0_dropped_slow_total", "counter",
       "QoS 0 messages dropped because the subscriber's output backlog was over its bound.",
       &BrokerStats::qos0_dropped_slow},
      {"tcpms_mqtt_queue_dropped_total", "counter",
       "QoS 1/2 messages dropped for a session that held its limit (mqtt.max_queued_messages "
       "or mqtt.max_session_bytes).", &BrokerStats::queue_dropped},
      {"tcpms_mqtt_protocol_violations_total", "counter",
       "Connections closed for a protocol violation.", &BrokerStats::protocol_violations},
      {"tcpms_mqtt_takeovers_total", "counter",
       "Connections closed because a CONNECT with the same client id arrived.",
       &BrokerStats::takeovers},
      {"tcpms_mqtt_keepalive_expired_total", "counter", "Connections closed by keep-alive.",
       &BrokerStats::keepalive_expired},
      {"tcpms_mqtt_connect_timeouts_total", "counter", "Connections with no CONNECT in time.",
       &BrokerStats::connect_timeouts},
      {"tcpms_mqtt_login_timeouts_total", "counter",
       "CONNECTs received and not answered within mqtt.connect_timeout_s of their arrival "
       "(the server's own waits: authentication, the client id's claim, a session from elsewhere).",
       &BrokerStats::login_timeouts},
      {"tcpms_mqtt_connects_refused_total", "counter", "CONNACK with a non-zero return code.",
       &BrokerStats::connects_refused},
      {"tcpms_mqtt_connects_unclaimed_total", "counter",
       "Persistent CONNECTs refused with server unavailable because the client id's home (or "
       "its previous holder) did not answer in time: the stored session stays where it is.",
       &BrokerStats::claims_unanswered_refused},
      {"tcpms_mqtt_auth_refused_total", "counter",
       "CONNECTs refused by the authenticator or for a will topic the ACL refuses.",
       &BrokerStats::auth_refused},
      {"tcpms_mqtt_authorization_waits_total", "counter",
       "PUBLISH/SUBSCRIBE paused while their authorization was fetched (HTTP service).",
       &BrokerStats::authorization_waits},
      {"tcpms_mqtt_publishes_refused_total", "counter",
       "Connections closed for a PUBLISH over a limit.", &BrokerStats::refused_publishes},
      {"tcpms_mqtt_acl_publish_denied_total", "counter",
       "PUBLISH packets dropped because the ACL refused the topic (acknowledged, not delivered).",
       &BrokerStats::acl_publish_denied},
      {"tcpms_mqtt_acl_subscribe_denied_total", "counter",
       "Subscriptions refused (SUBACK 0x80) because the ACL refused the filter.",
       &BrokerStats::acl_subscribe_denied},
      {"tcpms_mqtt_sys_publish_denied_total", "counter",
       "PUBLISH packets to $SYS dropped (clients never publish there).",
       &BrokerStats::sys_publish_denied},
      {"tcpms_mqtt_subscriptions_over_limit_total", "counter",
       "Subscriptions refused (SUBACK 0x80) past mqtt.max_subscriptions_per_client.",
       &BrokerStats::subscriptions_over_limit},
      {"tcpms_mqtt_rate_limit_pauses_total", "counter",
       "Times reading from a client paused because it published over its rate.",
       &BrokerStats::rate_limit_pauses},
      {"tcpms_mqtt_publisher_link_waits_total", "counter",
       "Times reading from a publisher paused because the links to other nodes had more "
       "waiting than they could take (cluster: 4096 frames for Redis); nothing dropped.",
       &BrokerStats::link_waits},
      {"tcpms_mqtt_connects_over_rate_total", "counter",
       "Connections closed right after accept: over the per-source or overall connection rate.",
       &BrokerStats::connects_over_rate},
      {"tcpms_mqtt_session_fetches_total", "counter",
       "CONNECTs with CleanSession 0 that asked the other processes for their session.",
       &BrokerStats::session_fetches},
      {"tcpms_mqtt_sessions_imported_total", "counter",
       "Sessions that came from another process.", &BrokerStats::sessions_imported},
      {"tcpms_mqtt_sessions_exported_total", "counter",
       "Sessions given up to another process.", &BrokerStats::sessions_exported},
      {"tcpms_mqtt_session_images_bad_total", "counter",
       "Session images from another process that failed to decode (dropped).",
       &BrokerStats::session_images_bad},
      {"tcpms_mqtt_shared_deliveries_total", "counter",
       "Messages given to a member of a shared subscription ($share/...) here.",
       &BrokerStats::shared_deliveries},
      {"tcpms_mqtt_shared_skipped_total", "counter",
       "Shared subscription messages passed on because the picked member was offline or stalled.",
       &BrokerStats::shared_skipped},
      {"tcpms_mqtt_shared_redistributed_total", "counter",
       "Messages of a shared subscription member that left or went offline, given to another.",
       &BrokerStats::shared_redistributed},
      {"tcpms_mqtt_shared_handoffs_returned_total", "counter",
       "Of those, stored ones the taking member's process never confirmed stored (down, or no "
       "answer in time): back to the member that had them.",
       &BrokerStats::shared_handoffs_returned},
      {"tcpms_mqtt_cross_loop_posts_total", "counter",
       "Publishes posted to another loop (one task per loop, not per subscriber).",
       &BrokerStats::cross_loop_posts},
  };
  for (const Family& f : kFamilies) {
    family(f.name, f.type, f.help);
    for (MqttHandler* h : handlers_) {
      if (h == nullptr) continue;
      fmt::format_to(std::back_inserter(out), "{}{{loop=\"{}\"}} {}\n", f.name, h->loop().index(),
                     static_cast<int64_t>((h->stats().*f.field).get()));
    }
  }
  if (source_rate_) {
    family("tcpms_mqtt_connect_rate_sources", "gauge",
           "Source addresses tracked by the per-source connection rate limit.");
    fmt::format_to(std::back_inserter(out), "tcpms_mqtt_connect_rate_sources {}\n",
                   source_rate_->stats().entries);
  }
  auth_->render_metrics(out);
  acl_->render_metrics(out);
  family("tcpms_mqtt_retained_messages", "gauge", "Retained messages.");
  fmt::format_to(std::back_inserter(out), "tcpms_mqtt_retained_messages {}\n", retained_.size());
  family("tcpms_mqtt_session_images_dropped_total", "counter",
         "Session images from another process that came after their client had a session "
         "here again (dropped).");
  fmt::format_to(std::back_inserter(out), "tcpms_mqtt_session_images_dropped_total {}\n",
                 sessions_adopt_dropped());
  family("tcpms_mqtt_shared_groups", "gauge",
         "Shared subscription groups known here (with members here or in other processes).");
  fmt::format_to(std::back_inserter(out), "tcpms_mqtt_shared_groups {}\n", shared_.group_count());
  family("tcpms_mqtt_shared_dropped_total", "counter",
         "Shared subscription messages that found no member left anywhere.");
  fmt::format_to(std::back_inserter(out), "tcpms_mqtt_shared_dropped_total {}\n",
                 shared_dropped_.load(std::memory_order_relaxed));
  family("tcpms_mqtt_log_lines_dropped_total", "counter",
         "Client connect/disconnect/auth-failure log lines dropped by the rate limit.");
  fmt::format_to(std::back_inserter(out), "tcpms_mqtt_log_lines_dropped_total {}\n",
                 client_log_.suppressed_total());
  family("tcpms_mqtt_topic_taps", "gauge", "Topic viewer taps open (admin API).");
  fmt::format_to(std::back_inserter(out), "tcpms_mqtt_topic_taps {}\n", taps_.count());
  family("tcpms_mqtt_registry_clients", "gauge", "Client ids in the registry (all sessions).");
  fmt::format_to(std::back_inserter(out), "tcpms_mqtt_registry_clients {}\n", registry_.size());
  if (store_ != nullptr) {
    const store::WriterStats& w = store_->stats();
    auto counter = [&](const char* name, const char* help, uint64_t v) {
      family(name, "counter", help);
      fmt::format_to(std::back_inserter(out), "{} {}\n", name, v);
    };
    counter("tcpms_store_commits_total", "Group commits of the persistent store.", w.commits.load());
    counter("tcpms_store_writes_total", "Store operations committed.", w.ops.load());
    counter("tcpms_store_syncs_total", "fsyncs of the store (every-message commits, interval syncs).",
            w.syncs.load());
    counter("tcpms_store_commit_errors_total", "Store commits that failed (retried).",
            w.commit_errors.load());
    counter("tcpms_store_commit_seconds_total", "Time spent committing, fsync included.",
            w.commit_us_total.load() / 1000000);
    family("tcpms_store_queued_writes", "gauge", "Store operations waiting for the next commit.");
    fmt::format_to(std::back_inserter(out), "tcpms_store_queued_writes {}\n", w.queued_ops.load());
    family("tcpms_store_message_bodies", "gauge", "Message bodies on disk.");
    fmt::format_to(std::back_inserter(out), "tcpms_store_message_bodies {}\n", w.bodies.load());
  }
}

}  // namespace tcpms::broker
