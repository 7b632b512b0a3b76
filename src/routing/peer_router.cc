#include "routing/peer_router.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <iterator>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "mqtt/properties.h"
#include "mqtt/topic.h"

namespace tcpms::routing {
namespace {

uint64_t steady_now_ms() { return broker::steady_ms(); }

uint64_t make_incarnation() {
  timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return (static_cast<uint64_t>(::getpid()) << 40) ^
         (static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec));
}

SharedBytes to_shared(const Frame& f) {
  thread_local std::string scratch;
  scratch.clear();
  encode(f, scratch);
  return SharedBytes::copy_of(as_bytes(scratch));
}

template <typename... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <typename... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

}  // namespace

PeerRouter::PeerRouter(broker::Broker& broker, Transport& transport, RouterOptions options)
    : broker_(broker),
      transport_(transport),
      options_(options),
      self_(transport.self()),
      peers_(std::min(transport.peer_slots(), kMaxPeers)),
      incarnation_(options.incarnation != 0 ? options.incarnation : make_incarnation()),
      interest_interval_ms_(options.interest_interval_ms != 0
                                ? options.interest_interval_ms
                                : std::max<uint32_t>(2, static_cast<uint32_t>(peers_) * 5 / 2)),
      hub_(peers_ > options.interest_relay_above ? PeerId{0} : kNoPeer),
      local_(options.interest, options.loops),
      remote_(transport.self(), std::min(transport.peer_slots(), kMaxPeers), options.interest.hashes,
              options.shared_interest),
      acks_(transport.self(), std::min(transport.peer_slots(), kMaxPeers), hub_),
      incarnations_(std::min(transport.peer_slots(), kMaxPeers), 0),
      drain_marks_(std::make_unique<std::atomic<uint32_t>[]>(peers_)) {
  // Our column (empty) is known to the other workers from the start, as a snapshot would
  // make it known to a peer.
  if (remote_.shared()) write_own_column(local_.snapshot());
  transport_.set_receiver(this);
}

// Requests still waiting are dropped unanswered: their callbacks post to loops that have
// stopped by now (the server goes before the broker that owns this router).
PeerRouter::~PeerRouter() = default;

// --- sending ----------------------------------------------------------------------------------

bool PeerRouter::send(PeerId to, SharedBytes frame) {
  if (to >= peers_ || to == self_) return false;
  if (transport_.send(to, std::move(frame))) return true;
  stats_.sends_failed.fetch_add(1, std::memory_order_relaxed);
  return false;
}

bool PeerRouter::send(PeerId to, const Frame& f) { return send(to, to_shared(f)); }

// --- pending requests -------------------------------------------------------------------------

uint64_t PeerRouter::add_pending(Pending p, uint32_t timeout_ms) {
  uint64_t id;
  const uint64_t due = steady_now_ms() + timeout_ms;
  {
    std::lock_guard lock(pending_mu_);
    id = next_request_++;
    pending_.emplace(id, std::move(p));
    deadlines_.push({due, id});
  }
  arm_deadline_timer(due);
  return id;
}

void PeerRouter::arm_deadline_timer(uint64_t due) {
  // One transport timer for the earliest deadline, not one per request: a request answered in
  // time then costs no timer firing (a wake-up of an otherwise idle process).
  uint64_t armed = timer_at_ms_.load(std::memory_order_relaxed);
  while (armed == 0 || due < armed) {
    if (timer_at_ms_.compare_exchange_weak(armed, due, std::memory_order_acq_rel)) {
      const uint64_t now = steady_now_ms();
      if (!transport_.run_after(static_cast<uint32_t>(due > now ? due - now : 0),
                                [this, due] { run_deadlines(due); })) {
        timer_at_ms_.store(0, std::memory_order_relaxed);
      }
      return;
    }
  }
}

void PeerRouter::run_deadlines(uint64_t fired_for) {
  uint64_t expected = fired_for;
  timer_at_ms_.compare_exchange_strong(expected, 0, std::memory_order_acq_rel);
  const uint64_t now = steady_now_ms();
  std::vector<uint64_t> due;
  uint64_t next = 0;
  {
    std::lock_guard lock(pending_mu_);
    while (!deadlines_.empty() && deadlines_.top().first <= now) {
      if (pending_.count(deadlines_.top().second)) due.push_back(deadlines_.top().second);
      deadlines_.pop();
    }
    // Deadlines of requests answered already go without a timer of their own.
    while (!deadlines_.empty() && !pending_.count(deadlines_.top().second)) deadlines_.pop();
    if (!deadlines_.empty()) next = deadlines_.top().first;
  }
  for (uint64_t id : due) expire(id);
  auto late = acks_.expired(now);
  if (!late.empty()) {
    stats_.subacks_unconfirmed.fetch_add(late.size(), std::memory_order_relaxed);
    spdlog::warn("routing: {} SUBACK(s) sent without every peer confirming the filter within {} ms",
                 late.size(), options_.claim_timeout_ms);
    resume_all(std::move(late));
  }
  if (auto held = acks_.next_deadline(); held && (next == 0 || *held < next)) next = *held;
  if (next != 0) arm_deadline_timer(next);
}

std::optional<PeerRouter::Pending> PeerRouter::take_pending(uint64_t request) {
  std::lock_guard lock(pending_mu_);
  auto it = pending_.find(request);
  if (it == pending_.end()) return std::nullopt;
  Pending p = std::move(it->second);
  pending_.erase(it);
  return p;
}

void PeerRouter::expire(uint64_t request, bool answer_may_come) {
  std::optional<Pending> p;
  {
    std::lock_guard lock(pending_mu_);
    auto it = pending_.find(request);
    if (it == pending_.end()) return;
    p = std::move(it->second);
    pending_.erase(it);
    // Under the same lock as the erase: an answer that comes from now on finds it.
    if (const auto* c = std::get_if<PendingClaim>(&*p); c && !c->answered && answer_may_come)
      remember_late_claim(request, *c);
  }
  std::visit(Overloaded{
                 [&](PendingClaim& c) {
                   // The home, or the session, did not come in time: the broker decides with
                   // what there is (a ticket if the home answered; no session): a clean
                   // CONNECT goes on, a persistent one is refused (session_moves.cc).
                   stats_.claims_timed_out.fetch_add(1, std::memory_order_relaxed);
                   if (!c.answered) c.result = Claim{};
                   c.result.timed_out = true;
                   spdlog::warn("routing: client '{}': {} did not answer within {} ms",
                                c.client_id, c.answered ? "the previous holder" : "its home",
                                c.timeout_ms);
                   c.done(std::move(c.result));
                 },
                 [&](PendingById& b) {
                   stats_.by_id_unknown.fetch_add(1, std::memory_order_relaxed);
                   if (b.done) b.done(PushOutcome::kUnknown);
                 },
                 [&](PendingDurable& d) {
                   const uint32_t n = d.waiting.count();
                   stats_.durable_unconfirmed.fetch_add(n, std::memory_order_relaxed);
                   spdlog::warn("routing: {} peer(s) did not confirm a publish durable within {} ms; "
                                "its publisher is disconnected unacknowledged",
                                n, options_.request_timeout_ms);
                   d.waiting.for_each([&](PeerId) { finish_durable(d.wait, false); });
                 },
             },
             *p);
}

void PeerRouter::finish_durable(const broker::DurableWait& wait, bool ok) {
  if (wait.loop_waits()) broker_.durable_answered(wait.loop, wait.token, ok);
  // A peer's shared message we passed on: our answer is the third peer's.
  if (wait.peer_waits()) reply(wait.peer, wait.request, ok ? ReplyStatus::kDone : ReplyStatus::kFailed);
}

bool PeerRouter::answer_durable(uint64_t request, PeerId from, bool ok) {
  broker::DurableWait wait;
  {
    std::lock_guard lock(pending_mu_);
    auto it = pending_.find(request);
    if (it == pending_.end()) return false;
    auto* d = std::get_if<PendingDurable>(&it->second);
    if (d == nullptr) return false;
    if (!d->waiting.has(from)) return true;  // answered already, or never asked
    d->waiting.remove(from);
    wait = d->wait;
    if (d->waiting.empty()) pending_.erase(it);
  }
  if (!ok) stats_.durable_unconfirmed.fetch_add(1, std::memory_order_relaxed);
  finish_durable(wait, ok);
  return true;
}

// --- interest ---------------------------------------------------------------------------------

void PeerRouter::on_filter_added(std::string_view filter, uint32_t loop) {
  local_.add(filter, loop);
  maybe_grow_interest();
  schedule_interest_flush();
}

void PeerRouter::on_filter_removed(std::string_view filter, uint32_t loop) {
  local_.remove(filter, loop);
  schedule_interest_flush();
}

bool PeerRouter::when_filters_known(std::function<void()> resume) {
  const uint64_t due = steady_now_ms() + options_.claim_timeout_ms;
  if (!acks_.hold(local_.generation(), due, std::move(resume))) return false;
  stats_.subacks_held.fetch_add(1, std::memory_order_relaxed);
  arm_deadline_timer(due);
  schedule_interest_flush();  // the mark that asks the peers goes with the next update
  return true;
}

void PeerRouter::resume_all(std::vector<InterestAcks::Resume> resumes) {
  for (auto& r : resumes) r();
}

void PeerRouter::schedule_interest_flush() {
  schedule_spaced(flush_scheduled_, last_flush_ms_, &PeerRouter::flush_interest);
}

void PeerRouter::schedule_spaced(std::atomic<bool>& scheduled, std::atomic<uint64_t>& last_ms,
                                 void (PeerRouter::*task)()) {
  // An update goes to every peer, so its cost grows with their number: updates are spaced by
  // at least interest_interval_ms_ (more peers, longer), and everything that changed meanwhile
  // goes in one. A change after a quiet spell goes at once, in the same loop iteration, so
  // the peers hear of a subscription no later than its SUBACK leaves; under a subscription
  // storm it waits up to the interval.
  if (scheduled.exchange(true, std::memory_order_acq_rel)) return;
  const uint64_t now = steady_now_ms();
  const uint64_t due = last_ms.load(std::memory_order_relaxed) + interest_interval_ms_;
  const uint32_t delay = now >= due ? 0 : static_cast<uint32_t>(due - now);
  if (!transport_.run_after(delay, [this, &scheduled, &last_ms, task] {
        scheduled.store(false, std::memory_order_release);
        last_ms.store(steady_now_ms(), std::memory_order_relaxed);
        (this->*task)();
      }))
    scheduled.store(false, std::memory_order_release);
}

void PeerRouter::flush_interest() {
  uint64_t covers = 0;
  std::string update;
  if (remote_.shared()) {
    std::lock_guard lock(own_column_mu_);
    update = local_.take_update(&covers);
    write_own_column(update);
    own_column_covers_.store(covers, std::memory_order_release);
    // The others read our column where it was just written: a delta would travel to every
    // worker for nothing (none applies another's frame). A snapshot still goes, because a
    // larger one is what makes the others grow to its size (maybe_grow_interest); the mark
    // below still goes, because held SUBACKs wait for its answers.
    if (peek_kind(as_bytes(update)) != FrameKind::kInterestSnapshot) update.clear();
  } else {
    update = local_.take_update(&covers);
  }
  // Behind the update (per-pair order), the question the held SUBACKs wait on.
  const std::optional<uint64_t> mark = acks_.mark_due(covers);
  if (update.empty() && !mark) return;
  if (!update.empty()) stats_.interest_updates_sent.fetch_add(1, std::memory_order_relaxed);
  if (hub_ == self_) {
    if (!update.empty()) queue_relay(self_, as_bytes(update));
    if (mark) {
      {
        std::lock_guard lock(relay_mu_);
        relay_marks_.emplace_back(self_, *mark);
      }
      schedule_spaced(relay_scheduled_, last_relay_ms_, &PeerRouter::flush_relay);
    }
    return;
  }
  std::vector<SharedBytes> frames;
  if (!update.empty()) frames.push_back(SharedBytes::copy_of(as_bytes(update)));
  if (mark) frames.push_back(to_shared(InterestMark{*mark}));
  // Through the hub. If it is down the update is lost: when it comes back it gets a snapshot.
  for (PeerId p = 0; p < peers_; ++p)
    if (p != self_ && (hub_ == kNoPeer || p == hub_))
      for (const SharedBytes& f : frames) send(p, f);
}

void PeerRouter::queue_relay(PeerId origin, ByteView frame) {
  bool full;
  {
    std::lock_guard lock(relay_mu_);
    append_relay_entry(relay_entries_, origin, frame);
    full = ++relay_count_ == UINT16_MAX;
  }
  if (full) {
    flush_relay();  // a frame holds at most 65,535 entries
    return;
  }
  schedule_spaced(relay_scheduled_, last_relay_ms_, &PeerRouter::flush_relay);
}

void PeerRouter::flush_relay() {
  std::lock_guard sending(relay_send_mu_);
  std::string entries;
  uint16_t count;
  std::vector<std::pair<PeerId, uint64_t>> marks;
  {
    std::lock_guard lock(relay_mu_);
    entries.swap(relay_entries_);
    count = std::exchange(relay_count_, uint16_t{0});
    marks.swap(relay_marks_);
  }
  // The subscribers' marks received so far came behind their updates, which are in these
  // entries or in an earlier relay: the round's mark, last, covers them.
  if (const auto round = acks_.hub_round(std::move(marks))) {
    append_relay_entry(entries, self_, as_bytes(encode(InterestMark{*round})));
    ++count;
  }
  if (count == 0) return;
  SharedBytes frame = to_shared(InterestRelay{as_bytes(entries), count});
  for (PeerId p = 0; p < peers_; ++p)
    if (p != self_) send(p, frame);
}

void PeerRouter::on_interest_frame(PeerId origin, ByteView bytes, const Frame& f) {
  if (const auto* s = std::get_if<InterestSnapshot>(&f)) on_interest(origin, *s);
  if (const auto* d = std::get_if<InterestDelta>(&f)) on_interest(origin, *d);
  if (hub_ == self_ && origin != self_) queue_relay(origin, bytes);
}

void PeerRouter::on_interest_relay(PeerId from, const InterestRelay& f) {
  f.for_each([&](const InterestRelay::Entry& e) {
    if (e.origin == self_ || e.origin >= peers_) return;
    auto inner = decode(e.frame);
    if (inner && std::holds_alternative<InterestMark>(*inner)) {
      // The hub's round: everything before it in this relay (and earlier ones) is applied.
      if (e.origin == from) send(from, Frame(InterestApplied{std::get<InterestMark>(*inner).number}));
      return;
    }
    if (!inner || !(std::holds_alternative<InterestSnapshot>(*inner) ||
                    std::holds_alternative<InterestDelta>(*inner))) {
      stats_.frames_bad.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (const auto* s = std::get_if<InterestSnapshot>(&*inner)) on_interest(e.origin, *s);
    if (const auto* d = std::get_if<InterestDelta>(&*inner)) on_interest(e.origin, *d);
  });
}

void PeerRouter::on_interest_mark(PeerId from, const InterestMark& f) {
  if (hub_ != self_) {
    // Its updates before this mark are applied (frames from one peer are handled in order).
    send(from, Frame(InterestApplied{f.number}));
    return;
  }
  // The hub answers once every peer has the relay that carries the update.
  {
    std::lock_guard lock(relay_mu_);
    relay_marks_.emplace_back(from, f.number);
  }
  schedule_spaced(relay_scheduled_, last_relay_ms_, &PeerRouter::flush_relay);
}

void PeerRouter::on_interest_applied(PeerId from, const InterestApplied& f) {
  if (hub_ == self_) {
    send_answers(acks_.hub_round_applied(from, f.number));
    return;
  }
  resume_all(acks_.applied(from, f.number));
}

void PeerRouter::send_answers(const std::vector<InterestAcks::Answer>& answers) {
  for (const InterestAcks::Answer& a : answers) {
    if (a.to == self_)
      resume_all(acks_.applied(self_, a.generation));
    else
      send(a.to, Frame(InterestApplied{a.generation}));
  }
}

void PeerRouter::maybe_grow_interest() {
  // Everyone grows to the largest size any peer uses, so one table serves them all.
  const uint32_t want = std::max(local_.wanted_slots(), remote_.largest_slots());
  if (want <= local_.slots() || growing_.exchange(true, std::memory_order_acq_rel)) return;
  if (!local_.begin_rebuild(want)) {
    growing_.store(false, std::memory_order_release);
    return;
  }
  stats_.interest_rebuilds.fetch_add(1, std::memory_order_relaxed);
  spdlog::debug("routing: interest bitmap grows to {} slots ({} filters)", want, local_.filters());
  broker_.walk_filters([this](std::string_view filter) { local_.add_walked(filter); },
                       [this](uint32_t loop) {
                         if (!local_.walk_done(loop)) return;
                         growing_.store(false, std::memory_order_release);
                         schedule_interest_flush();  // the snapshot at the new size
                       });
}

void PeerRouter::write_own_column(const std::string& update) {
  if (update.empty()) return;
  auto f = decode(as_bytes(update));
  if (const auto* s = f ? std::get_if<InterestSnapshot>(&*f) : nullptr) remote_.apply(self_, *s);
  if (const auto* d = f ? std::get_if<InterestDelta>(&*f) : nullptr) remote_.apply(self_, *d);
}

void PeerRouter::on_interest(PeerId from, const InterestSnapshot& f) {
  remote_.apply(from, f);
  if (f.slots > local_.slots()) maybe_grow_interest();
}

void PeerRouter::on_interest(PeerId from, const InterestDelta& f) {
  // A delta at another size than the column we hold is one sent before the snapshot that
  // follows it: dropping it loses nothing.
  remote_.apply(from, f);
}

// --- publishes --------------------------------------------------------------------------------

PeerSet PeerRouter::publish_targets(const broker::Message& m) const {
  PeerSet targets;
  if (m.retain) {
    // Every peer keeps every retained message.
    for (PeerId p = 0; p < peers_; ++p)
      if (p != self_) targets.add(p);
  } else {
    remote_.match(as_chars(m.topic.view()), targets);
  }
  return targets;
}

void PeerRouter::on_local_publish(const broker::Message& m) {
  const PeerSet targets = publish_targets(m);
  if (targets.empty()) {
    stats_.publishes_unmatched.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  SharedBytes frame = to_shared(Publish{view_of(m, steady_now_ms())});
  targets.for_each([&](PeerId p) {
    if (send(p, frame)) stats_.publishes_sent.fetch_add(1, std::memory_order_relaxed);
  });
}

uint32_t PeerRouter::on_local_publish_held(const broker::Message& m, uint32_t loop,
                                           uint64_t token) {
  PeerSet targets = publish_targets(m);
  if (targets.empty()) {
    stats_.publishes_unmatched.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }
  // Registered before it is sent: an answer may come back before the sends are done.
  const uint64_t request = add_pending(
      PendingDurable{broker::DurableWait::for_loop(loop, token), targets}, options_.request_timeout_ms);
  SharedBytes frame = to_shared(DurablePublish{request, 0, {}, {}, view_of(m, steady_now_ms())});
  uint32_t asked = 0;
  PeerSet unsent;
  targets.for_each([&](PeerId p) {
    if (send(p, frame)) {
      ++asked;
      stats_.publishes_sent.fetch_add(1, std::memory_order_relaxed);
    } else {
      unsent.add(p);  // down: nothing of it is there to wait for
    }
  });
  stats_.durable_asked.fetch_add(asked, std::memory_order_relaxed);
  if (!unsent.empty()) {
    // Nothing to wait for from those, unless their going down answered meanwhile (then that
    // answer counts as theirs).
    std::lock_guard lock(pending_mu_);
    auto it = pending_.find(request);
    auto* d = it == pending_.end() ? nullptr : std::get_if<PendingDurable>(&it->second);
    unsent.for_each([&](PeerId p) {
      if (d != nullptr && d->waiting.has(p))
        d->waiting.remove(p);
      else
        ++asked;
    });
    if (d != nullptr && d->waiting.empty()) pending_.erase(it);
  }
  return asked;
}

bool PeerRouter::acceptable(PeerId from, const MessageView& m) {
  const broker::BrokerConfig& cfg = broker_.config();
  if (mqtt::validate_topic_name(m.topic, cfg.max_topic_levels) != mqtt::TopicError::kOk ||
      (!m.props.empty() &&
       !mqtt::decode_property_list(m.props, mqtt::PropertyContext::kPublish).ok())) {
    stats_.frames_bad.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("routing: publish from peer {} refused: bad topic or properties", from);
    return false;
  }
  stats_.publishes_received.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void PeerRouter::on_publish(PeerId from, const Publish& f) {
  if (acceptable(from, f.message)) broker_.deliver_remote(message_of(f.message, steady_now_ms()));
}

void PeerRouter::on_durable_publish(PeerId from, const DurablePublish& f) {
  if (!acceptable(from, f.message)) {
    reply(from, f.request, ReplyStatus::kFailed);  // not stored here: the publisher must not ack
    return;
  }
  const auto wait = broker::DurableWait::for_peer(from, f.request);
  if (f.shared()) {
    stats_.shared_received.fetch_add(1, std::memory_order_relaxed);
    broker_.shared_arrived(from, f.group, f.filter, message_of(f.message, steady_now_ms()), f.hops,
                           wait);
    return;
  }
  broker_.deliver_remote(message_of(f.message, steady_now_ms()), wait);
}

void PeerRouter::durable_done(uint16_t peer, uint64_t request) {
  send(peer, Frame(Reply{request, ReplyStatus::kDone, {}}));
}

// --- client ids: the claimer's side -----------------------------------------------------------

void PeerRouter::claim(std::string_view client_id, bool persistent, ClaimDone done) {
  stats_.claims.fetch_add(1, std::memory_order_relaxed);
  const PeerId home = home_of_id(client_id);
  PendingClaim c;
  c.client_id = std::string(client_id);
  c.done = std::move(done);
  c.home = home;
  const uint32_t timeout_ms = persistent && options_.persistent_claim_timeout_ms != 0
                                  ? options_.persistent_claim_timeout_ms
                                  : options_.claim_timeout_ms;
  c.timeout_ms = timeout_ms;
  const uint64_t request = add_pending(std::move(c), timeout_ms);
  if (home == self_) {
    home_claim(self_, request, client_id, persistent);
    return;
  }
  stats_.claims_remote.fetch_add(1, std::memory_order_relaxed);
  if (!send(home, Frame(ClaimRequest{request, persistent ? ClaimRequest::kPersistent : uint8_t{0},
                                       client_id}))) {
    // The home is down: go on at once rather than at the timeout.
    expire(request, false);
  }
}

void PeerRouter::remember_late_claim(uint64_t request, const PendingClaim& c) {
  late_claims_[request] = LateClaim{c.client_id, c.home};
  // Request ids grow: the first is the oldest.
  if (late_claims_.size() > kLateClaimsKept) late_claims_.erase(late_claims_.begin());
}

void PeerRouter::on_claim_answer(PeerId from, const ClaimAnswer& f) {
  std::optional<std::string> settle;  // a claim that stopped waiting: its id, settled now
  {
    std::lock_guard lock(pending_mu_);
    auto it = pending_.find(f.request);
    if (it == pending_.end()) {
      settle = late_answer(f);
      if (!settle) return;
    } else {
      auto* c = std::get_if<PendingClaim>(&it->second);
      if (c == nullptr || c->answered) return;
      c->answered = true;
      c->result.ticket = f.ticket;
      c->result.elsewhere = f.previous != kNoPeer && f.previous != self_;
      c->image_expected = (f.flags & ClaimAnswer::kImageComing) != 0;
    }
  }
  if (settle) {
    broker_.claim_answered_late(*settle, f.ticket);
    return;
  }
  maybe_finish_claim(f.request);
}

std::optional<std::string> PeerRouter::late_answer(const ClaimAnswer& f) {
  auto late = late_claims_.find(f.request);
  if (late == late_claims_.end()) return std::nullopt;
  stats_.claims_answered_late.fetch_add(1, std::memory_order_relaxed);
  if ((f.flags & ClaimAnswer::kImageComing) != 0 && !late->second.image_arrived) {
    late->second.ticket = f.ticket;  // the session takes it when it comes (on_session_image)
    return std::nullopt;
  }
  std::string id = std::move(late->second.client_id);
  late_claims_.erase(late);
  return id;
}

uint32_t PeerRouter::late_session(const SessionImage& f) {
  auto late = late_claims_.find(f.request);
  if (late == late_claims_.end() || late->second.client_id != f.client_id) return 0;
  if (late->second.ticket == 0) {  // its answer is still to come, and settles it then
    late->second.image_arrived = true;
    return 0;
  }
  const uint32_t ticket = late->second.ticket;
  late_claims_.erase(late);
  return ticket;
}

void PeerRouter::on_session_image(PeerId from, const SessionImage& f) {
  const bool has = (f.flags & SessionImage::kHasImage) != 0;
  bool matched = false;
  uint32_t late_ticket = 0;  // the home's, when its answer to a claim that stopped waiting came first
  {
    std::lock_guard lock(pending_mu_);
    auto it = pending_.find(f.request);
    auto* c = it == pending_.end() ? nullptr : std::get_if<PendingClaim>(&it->second);
    if (c != nullptr && c->client_id == f.client_id && !c->image_arrived) {
      c->image_arrived = true;
      if (has) c->result.image = std::string(as_chars(f.image));
      matched = true;
    } else {
      late_ticket = late_session(f);
    }
  }
  if (matched) {
    maybe_finish_claim(f.request);
    return;
  }
  if (!has) {  // a late "none": nothing to keep, but a ticket to settle
    if (late_ticket != 0) broker_.claim_answered_late(f.client_id, late_ticket);
    return;
  }
  // Its claim gave up before it came: the broker keeps it if the id has no session here, so a
  // session that left its holder is not lost.
  stats_.sessions_late.fetch_add(1, std::memory_order_relaxed);
  spdlog::warn("routing: session of client '{}' from peer {} came after its claim ended; "
               "handed to the broker",
               f.client_id, from);
  if (!broker_.adopt_session(f.client_id, std::string(as_chars(f.image)), late_ticket) &&
      late_ticket != 0)
    broker_.claim_answered_late(f.client_id, late_ticket);  // the session here takes it
}

void PeerRouter::maybe_finish_claim(uint64_t request) {
  std::optional<Pending> p;
  {
    std::lock_guard lock(pending_mu_);
    auto it = pending_.find(request);
    if (it == pending_.end()) return;
    auto* c = std::get_if<PendingClaim>(&it->second);
    if (c == nullptr || !c->answered || (c->image_expected && !c->image_arrived)) return;
    p = std::move(it->second);
    pending_.erase(it);
  }
  auto& c = std::get<PendingClaim>(*p);
  if (c.result.image) stats_.sessions_moved_in.fetch_add(1, std::memory_order_relaxed);
  c.done(std::move(c.result));
}

// --- client ids: the home's side --------------------------------------------------------------

void PeerRouter::on_claim(PeerId from, const ClaimRequest& f) {
  if (home_of_id(f.client_id) != self_ && !transport_.homes_move()) {
    stats_.frames_bad.fetch_add(1, std::memory_order_relaxed);
    return;  // a peer with another view of the peers: not ours to answer
  }
  home_claim(from, f.request, f.client_id, (f.flags & ClaimRequest::kPersistent) != 0);
}

void PeerRouter::home_claim(PeerId claimer, uint64_t request, std::string_view client_id,
                            bool persistent) {
  Directory::ClaimResult r;
  {
    std::lock_guard lock(dir_mu_);
    r = directory_.claim(client_key(client_id), claimer);
  }
  ClaimAnswer answer;
  answer.request = request;
  answer.ticket = r.ticket;
  if (r.previous) {
    answer.previous = r.previous->holder;
    answer.previous_ticket = r.previous->ticket;
  }
  if (r.previous && r.previous->holder != claimer) {
    stats_.surrenders.fetch_add(1, std::memory_order_relaxed);
    Surrender s;
    s.request = request;
    s.to = claimer;
    s.ticket = r.previous->ticket;
    s.flags = persistent ? Surrender::kWantImage : 0;
    s.client_id = client_id;
    bool asked;
    if (r.previous->holder == self_) {
      on_surrender(self_, s);
      asked = true;
    } else {
      asked = send(r.previous->holder, Frame(s));
    }
    // The claimer waits for the session only if it was asked for and the holder can be reached.
    if (persistent && asked) answer.flags |= ClaimAnswer::kImageComing;
  }
  if (claimer == self_) {
    on_claim_answer(self_, answer);
    return;
  }
  SharedBytes frame = to_shared(Frame(answer));
  if (!send(claimer, frame)) hold_answer(claimer, std::move(frame));
}

void PeerRouter::hold_answer(PeerId to, SharedBytes frame) {
  uint64_t incarnation;
  {
    std::lock_guard lock(dir_mu_);
    incarnation = incarnations_[to];
  }
  const uint64_t now = steady_now_ms();
  std::lock_guard lock(held_mu_);
  // Those of peers that never came back go once no claim can wait for them.
  std::erase_if(held_answers_, [&](const HeldAnswer& a) { return now - a.held_at_ms > answer_useful_ms(); });
  if (held_answers_.size() >= kMaxHeldAnswers) return;  // dropped: the claim times out
  held_answers_.push_back({to, incarnation, now, std::move(frame)});
}

uint64_t PeerRouter::answer_useful_ms() const noexcept {
  return std::max(options_.claim_timeout_ms, options_.persistent_claim_timeout_ms);
}

void PeerRouter::send_held_answers(PeerId to) {
  std::vector<HeldAnswer> mine;
  {
    std::lock_guard lock(held_mu_);
    if (held_answers_.empty()) return;
    auto split = std::stable_partition(held_answers_.begin(), held_answers_.end(),
                                       [to](const HeldAnswer& a) { return a.to != to; });
    std::move(split, held_answers_.end(), std::back_inserter(mine));
    held_answers_.erase(split, held_answers_.end());
  }
  uint64_t incarnation;
  {
    std::lock_guard lock(dir_mu_);
    incarnation = incarnations_[to];
  }
  const uint64_t now = steady_now_ms();
  for (HeldAnswer& a : mine) {
    // Another incarnation's request ids are not these: its answer would complete the wrong
    // claim.
    if (a.incarnation != incarnation || now - a.held_at_ms > answer_useful_ms()) continue;
    send(to, std::move(a.frame));
  }
}

// --- client ids: the holder's side ------------------------------------------------------------

void PeerRouter::on_surrender(PeerId from, const Surrender& f) {
  const bool want = (f.flags & Surrender::kWantImage) != 0;
  broker_.surrender_session(
      f.client_id, f.ticket, want,
      [this, want, to = f.to, request = f.request, id = std::string(f.client_id)](
          std::optional<std::string> image) {
        if (!want || to == kNoPeer) return;
        SessionImage answer;
        answer.request = request;
        answer.client_id = id;
        if (image) {
          answer.flags = SessionImage::kHasImage;
          answer.image = as_bytes(*image);
        }
        if (to == self_) {
          on_session_image(self_, answer);
          return;
        }
        if (!send(to, Frame(answer)) && image) {
          // It cannot leave: keep it here rather than lose it.
          broker_.adopt_session(id, std::move(*image));
        }
      });
}

void PeerRouter::release(std::string_view client_id, uint32_t ticket) {
  const PeerId home = home_of_id(client_id);
  if (home == self_) {
    std::lock_guard lock(dir_mu_);
    directory_.release(client_key(client_id), self_, ticket);
    return;
  }
  send(home, Frame(Release{ticket, client_id}));
}

void PeerRouter::enroll(std::string_view client_id, uint32_t ticket) {
  const PeerId home = home_of_id(client_id);
  if (home == self_) {
    on_register(self_, Register{ticket, client_id});
    return;
  }
  send(home, Frame(Register{ticket, client_id}));
}

void PeerRouter::on_release(PeerId from, const Release& f) {
  std::lock_guard lock(dir_mu_);
  directory_.release(client_key(f.client_id), from, f.ticket);
}

void PeerRouter::on_register(PeerId from, const Register& f) {
  std::optional<Directory::Entry> loser;
  {
    std::lock_guard lock(dir_mu_);
    loser = directory_.enroll(client_key(f.client_id), from, f.ticket);
  }
  stats_.enrolled.fetch_add(1, std::memory_order_relaxed);
  if (!loser) return;
  // Two peers held the id while its home was away: the older session goes.
  Surrender s;
  s.to = kNoPeer;
  s.ticket = loser->ticket;
  s.client_id = f.client_id;
  if (loser->holder == self_)
    on_surrender(self_, s);
  else
    send(loser->holder, Frame(s));
}

void PeerRouter::enroll_at(PeerId peer) {
  std::vector<std::pair<std::string, uint32_t>> held;
  broker_.for_each_session([&](std::string_view id, uint32_t ticket) {
    if (home_of_id(id) == peer) held.emplace_back(std::string(id), ticket);
  });
  for (const auto& [id, ticket] : held) {
    if (peer == self_) on_register(self_, Register{ticket, id});
    else send(peer, Frame(Register{ticket, id}));
  }
}

size_t PeerRouter::directory_size() const {
  std::lock_guard lock(dir_mu_);
  return directory_.size();
}

// --- the upgrade handover of a cluster node ----------------------------------------------------

RouterImage PeerRouter::export_image() {
  RouterImage image;
  image.incarnation = incarnation_;
  for (PeerId p = 0; p < peers_; ++p) {
    if (p == self_) continue;
    RouterImage::Peer peer;
    peer.peer = p;
    {
      std::lock_guard lock(dir_mu_);
      peer.incarnation = incarnations_[p];
    }
    peer.column = remote_.column_snapshot(p);
    peer.shared_groups = broker_.shared().remote_groups(p);
    if (peer.incarnation != 0 || !peer.column.empty() || !peer.shared_groups.empty())
      image.peers.push_back(std::move(peer));
  }
  broker_.for_each_session([&](std::string_view id, uint32_t ticket) {
    if (ticket != 0) image.held.emplace_back(std::string(id), ticket);
  });
  std::lock_guard lock(dir_mu_);
  image.ticket_counter = directory_.ticket_counter();
  image.directory.reserve(directory_.size());
  directory_.for_each([&](uint64_t key, const Directory::Entry& e) {
    image.directory.push_back({key, e.holder, e.ticket});
  });
  return image;
}

void PeerRouter::continue_from(const RouterImage& image) {
  incarnation_ = image.incarnation;
  retained_asked_.store(true);
  for (const RouterImage::Peer& p : image.peers) {
    if (p.peer >= peers_ || p.peer == self_) continue;
    {
      std::lock_guard lock(dir_mu_);
      incarnations_[p.peer] = p.incarnation;
    }
    if (!p.column.empty()) {
      auto f = decode(as_bytes(p.column));
      if (const auto* snapshot = f ? std::get_if<InterestSnapshot>(&*f) : nullptr)
        on_interest(p.peer, *snapshot);
    }
    for (const auto& [share, filter] : p.shared_groups) broker_.shared().set_remote(p.peer, share, filter, true);
  }
  // The sessions came before this image, without their tickets: the homes' entries name them
  // by these, and a surrender must match.
  for (const auto& [id, ticket] : image.held) broker_.set_ticket(id, ticket);
  std::lock_guard lock(dir_mu_);
  for (const RouterImage::Entry& e : image.directory)
    if (e.holder < peers_) directory_.enroll(e.key, e.holder, e.ticket);
  directory_.continue_tickets_from(image.ticket_counter);
}

// --- requests by client id --------------------------------------------------------------------

bool PeerRouter::route_by_id(std::string_view client_id, ByIdOp op, std::string body,
                             PushDone done) {
  stats_.by_id_requests.fetch_add(1, std::memory_order_relaxed);
  const PeerId home = home_of_id(client_id);
  PendingById b;
  b.done = std::move(done);
  b.target = home;
  const uint64_t request = add_pending(std::move(b), options_.request_timeout_ms);
  ById f;
  f.request = request;
  f.reply_to = self_;
  f.op = op;
  f.client_id = client_id;
  f.body = as_bytes(body);
  if (home == self_) {
    on_by_id(self_, f);
    return true;
  }
  if (!send(home, Frame(f))) {
    take_pending(request);  // not routed: the caller is told by the return value
    return false;
  }
  return true;
}

bool PeerRouter::push_to_client(std::string_view client_id, const broker::Message& m,
                                PushDone done) {
  return route_by_id(client_id, ByIdOp::kPush,
                     encode_message_body(view_of(m, steady_now_ms())), std::move(done));
}

bool PeerRouter::kick_client(std::string_view client_id, PushDone done) {
  return route_by_id(client_id, ByIdOp::kKick, {}, std::move(done));
}

void PeerRouter::on_by_id(PeerId from, const ById& f) {
  if (f.hops == 0) {
    // At the home: forward to the holder, or answer that nobody holds the id.
    if (home_of_id(f.client_id) != self_ && !transport_.homes_move()) {
      stats_.frames_bad.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    std::optional<Directory::Entry> e;
    {
      std::lock_guard lock(dir_mu_);
      e = directory_.find(client_key(f.client_id));
    }
    if (!e) {
      reply(f.reply_to, f.request, ReplyStatus::kNoSuchClient);
      return;
    }
    if (e->holder != self_) {
      ById next = f;
      next.hops = 1;
      if (!send(e->holder, Frame(next))) reply(f.reply_to, f.request, ReplyStatus::kFailed);
      return;
    }
  }
  execute_by_id(f.reply_to, f.request, f.op, f.client_id, f.body);
}

void PeerRouter::execute_by_id(PeerId reply_to, uint64_t request, ByIdOp op,
                               std::string_view client_id, ByteView body) {
  ReplyStatus status = ReplyStatus::kFailed;
  switch (op) {
    case ByIdOp::kPush: {
      auto m = decode_message_body(body);
      if (!m || mqtt::validate_topic_name(m->topic, broker_.config().max_topic_levels) !=
                    mqtt::TopicError::kOk) {
        stats_.frames_bad.fetch_add(1, std::memory_order_relaxed);
        break;
      }
      switch (broker_.send_to_local_client(client_id, message_of(*m, steady_now_ms()))) {
        case broker::SendResult::kSent: status = ReplyStatus::kDone; break;
        case broker::SendResult::kQueued: status = ReplyStatus::kQueued; break;
        case broker::SendResult::kNotConnected: status = ReplyStatus::kNoSuchClient; break;
        default: status = ReplyStatus::kFailed; break;
      }
      break;
    }
    case ByIdOp::kKick:
      status = broker_.kick_local(client_id) ? ReplyStatus::kDone : ReplyStatus::kNoSuchClient;
      break;
    case ByIdOp::kInfo:
    case ByIdOp::kDropSession:
      status = ReplyStatus::kFailed;  // not sent by this version
      break;
  }
  reply(reply_to, request, status);
}

void PeerRouter::reply(PeerId to, uint64_t request, ReplyStatus status) {
  if (to == self_) {
    finish_by_id(request, status);
    return;
  }
  send(to, Frame(Reply{request, status, {}}));
}

void PeerRouter::on_reply(PeerId from, const Reply& f) {
  if (answer_durable(f.request, from, f.status == ReplyStatus::kDone)) return;
  finish_by_id(f.request, f.status);
}

void PeerRouter::finish_by_id(uint64_t request, ReplyStatus status) {
  auto p = take_pending(request);
  if (!p) return;
  auto* b = std::get_if<PendingById>(&*p);
  if (b == nullptr || !b->done) return;
  switch (status) {
    case ReplyStatus::kDone: b->done(PushOutcome::kHeld); break;
    case ReplyStatus::kQueued: b->done(PushOutcome::kQueued); break;
    case ReplyStatus::kNoSuchClient: b->done(PushOutcome::kNoSuchClient); break;
    case ReplyStatus::kFailed: b->done(PushOutcome::kUnknown); break;
  }
}

// --- shared subscriptions -------------------------------------------------------------------

void PeerRouter::on_shared_group(std::string_view share, std::string_view filter, bool joined) {
  SharedBytes frame = to_shared(SharedGroup{joined, share, filter});
  for (PeerId p = 0; p < peers_; ++p)
    if (p != self_) send(p, frame);
}

void PeerRouter::shared_deliver(uint16_t peer, std::string_view share, std::string_view filter,
                                const broker::Message& m, uint8_t hops) {
  if (send(peer, Frame(SharedDeliver{hops, share, filter, view_of(m, steady_now_ms())})))
    stats_.shared_sent.fetch_add(1, std::memory_order_relaxed);
}

bool PeerRouter::shared_deliver_held(uint16_t peer, std::string_view share,
                                     std::string_view filter, const broker::Message& m,
                                     uint8_t hops, const broker::DurableWait& wait) {
  PeerSet to;
  to.add(peer);
  const uint64_t request = add_pending(PendingDurable{wait, to}, options_.request_timeout_ms);
  if (send(peer, Frame(DurablePublish{request, hops, share, filter, view_of(m, steady_now_ms())}))) {
    stats_.shared_sent.fetch_add(1, std::memory_order_relaxed);
    stats_.durable_asked.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  // Not sent: nothing to wait for, unless the peer's going down answered it meanwhile.
  return !take_pending(request).has_value();
}

void PeerRouter::on_shared_group_frame(PeerId from, const SharedGroup& f) {
  broker_.shared().set_remote(from, f.group, f.filter, f.joined);
}

void PeerRouter::on_shared_deliver(PeerId from, const SharedDeliver& f) {
  if (mqtt::validate_topic_name(f.message.topic, broker_.config().max_topic_levels) !=
          mqtt::TopicError::kOk ||
      (!f.message.props.empty() &&
       !mqtt::decode_property_list(f.message.props, mqtt::PropertyContext::kPublish).ok())) {
    stats_.frames_bad.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  stats_.shared_received.fetch_add(1, std::memory_order_relaxed);
  broker_.shared_arrived(from, f.group, f.filter, message_of(f.message, steady_now_ms()), f.hops);
}

// --- queries between peers --------------------------------------------------------------------

void PeerRouter::on_query(PeerId from, const Query& f) {
  if (f.what == QueryWhat::kRetained) {
    // Retained messages for a peer that started: sent as ordinary retained publishes.
    broker_.for_each_retained([&](const broker::Message& m) {
      send(from, Frame(Publish{view_of(m, steady_now_ms())}));
    });
  }
}

void PeerRouter::sync_retained_from(PeerId peer) {
  if (retained_asked_.exchange(true)) return;
  send(peer, Frame(Query{0, QueryWhat::kRetained, {}}));
}

// --- peers ------------------------------------------------------------------------------------

void PeerRouter::on_peer_up(PeerId peer) {
  if (peer >= peers_ || peer == self_) return;
  // With shared tables, our column is current before the peer hears of us (a worker taking
  // over in an upgrade reads no input before every Hello: docs/upgrade.md).
  if (remote_.shared()) flush_interest();
  // What the peer must know of us, Hello first (the transport keeps this order).
  send(peer, Frame(Hello{incarnation_, local_.slots(), options_.interest.hashes}));
  send_held_answers(peer);
  if (remote_.shared()) {
    // The peer reads our column (and every other) in the shared region: no column travels,
    // and none is relayed, which with N workers coming up together would be N x N columns.
    // A peer that came up at a larger size makes us grow now, as its snapshot would have.
    maybe_grow_interest();
    if (hub_ == kNoPeer || peer == hub_)
      resume_all(acks_.peer_up(peer, own_column_covers_.load(std::memory_order_acquire)));
    else if (hub_ == self_)
      send_answers(acks_.hub_peer_up(peer));
    else
      resume_all(acks_.peer_up(peer, 0));
  } else if (hub_ == kNoPeer || peer == hub_) {
    // Our column, to the peer itself or to the hub (which passes it on to everyone).
    uint64_t covers = 0;
    send(peer, SharedBytes::copy_of(as_bytes(local_.snapshot(&covers))));
    resume_all(acks_.peer_up(peer, covers));
  } else if (hub_ == self_) {
    // The hub gives a peer that comes up every column it knows, its own included.
    std::string entries;
    uint16_t n = 0;
    const std::string own = local_.snapshot();
    append_relay_entry(entries, self_, as_bytes(own));
    ++n;
    for (PeerId q = 0; q < peers_; ++q) {
      if (q == self_ || q == peer) continue;
      const std::string column = remote_.column_snapshot(q);
      if (column.empty()) continue;
      append_relay_entry(entries, q, as_bytes(column));
      ++n;
    }
    send(peer, Frame(InterestRelay{as_bytes(entries), n}));
    send_answers(acks_.hub_peer_up(peer));
  } else {
    resume_all(acks_.peer_up(peer, 0));  // not one whose answer counts here (the hub's does)
  }
  for (const auto& [share, filter] : broker_.shared().local_groups())
    send(peer, Frame(SharedGroup{true, share, filter}));
  if (transport_.homes_move()) rehome_after_up();
  enroll_at(peer);
  sync_retained_from(peer);
}

void PeerRouter::rehome_after_up() {
  // Ids whose home is now the peer that came up: their holders enroll there (enroll_at), so
  // the entries here would only go stale.
  std::lock_guard lock(dir_mu_);
  directory_.forget_if([this](uint64_t key) { return transport_.home_of({}, key) != self_; });
}

void PeerRouter::rehome_after_down(PeerId peer) {
  // What it held, as far as this home knows, is not known any more: a node that went is gone
  // with its clients, and one that comes back enrolls what it still holds (enroll_at).
  {
    std::lock_guard lock(dir_mu_);
    directory_.forget_holder(peer);
  }
  // Ids held here whose home was the peer that went: enrolled at their new home (its
  // directory knew them; the new one does not).
  std::vector<std::pair<std::string, uint32_t>> moved;
  broker_.for_each_session([&](std::string_view id, uint32_t ticket) {
    if (transport_.home_with(client_key(id), peer) == peer) moved.emplace_back(std::string(id), ticket);
  });
  for (const auto& [id, ticket] : moved) enroll(id, ticket);
}

uint32_t PeerRouter::peers_with_interest() {
  uint32_t n = 0;
  for (PeerId p = 0; p < peers_; ++p)
    if (p != self_ && remote_.has_interest(p)) ++n;
  return n;
}

void PeerRouter::on_peer_down(PeerId peer) {
  if (peer >= peers_ || peer == self_) return;
  // Its interest column stays: it is the peer's, not this link's. A link can break and be
  // made again while both processes live (the worker mesh redials it), and only this side
  // sees that: the peer's own link to us (or to the hub) stays up, so it never sends its
  // column again, and a column forgotten here would stay empty for good (issue 15). Frames
  // for it are dropped while it is down; a peer that restarted says so in its Hello (a new
  // incarnation), which forgets the column before its new one arrives. Between cluster nodes a
  // down is seen by both sides (a lapsed lease; both resend everything when up again), and a
  // node that is gone must stop drawing publishes: there the column goes. Its shared groups
  // go either way: a member there must not be picked while it cannot be reached.
  if (transport_.down_is_mutual()) remote_.forget(peer);
  // SUBACKs stop waiting for it (it gets everything again when it is back).
  if (hub_ == self_)
    send_answers(acks_.hub_peer_down(peer));
  else
    resume_all(acks_.peer_down(peer));
  broker_.shared().forget_peer(peer);
  if (transport_.homes_move()) rehome_after_down(peer);
  // Requests waiting on it fail now rather than at their timeouts.
  std::vector<uint64_t> waiting, durable;
  {
    std::lock_guard lock(pending_mu_);
    for (const auto& [id, p] : pending_) {
      if (const auto* c = std::get_if<PendingClaim>(&p); c && c->home == peer && !c->answered)
        waiting.push_back(id);
      if (const auto* b = std::get_if<PendingById>(&p); b && b->target == peer) waiting.push_back(id);
      if (const auto* d = std::get_if<PendingDurable>(&p); d && d->waiting.has(peer))
        durable.push_back(id);
    }
  }
  for (uint64_t id : waiting) expire(id);
  // Publishes it had not confirmed durable: their publishers are not acknowledged.
  for (uint64_t id : durable) answer_durable(id, peer, false);
  if (!durable.empty())
    spdlog::warn("routing: peer {} went down with {} publishes not confirmed durable; their "
                 "publishers are disconnected unacknowledged", peer, durable.size());
}

void PeerRouter::on_hello(PeerId from, const Hello& f) {
  size_t forgotten = 0;
  bool restarted = false;
  {
    std::lock_guard lock(dir_mu_);
    const uint64_t before = incarnations_[from];
    incarnations_[from] = f.incarnation;
    if (before != 0 && before != f.incarnation) {
      // It restarted: what it held is gone (it enrolls what it kept), its filters too.
      restarted = true;
      forgotten = directory_.forget_holder(from);
    }
  }
  if (restarted) {
    {
      std::lock_guard lock(pending_mu_);  // it forgot them: no answer will come
      std::erase_if(late_claims_, [from](const auto& late) { return late.second.home == from; });
    }
    stats_.peers_restarted.fetch_add(1, std::memory_order_relaxed);
    remote_.forget(from);
    broker_.shared().forget_peer(from);
    spdlog::info("routing: peer {} restarted; {} client ids it held forgotten", from, forgotten);
  }
}

// --- the upgrade handover with worker processes ----------------------------------------------

void PeerRouter::send_drain_marks(uint32_t epoch) {
  // Through the transport like every frame before it, so it leaves after them (peer_mesh.h).
  SharedBytes frame = to_shared(DrainMark{epoch});
  for (PeerId p = 0; p < peers_; ++p)
    if (p != self_) send(p, frame);
}

bool PeerRouter::drained(uint32_t epoch) const {
  for (PeerId p = 0; p < peers_; ++p)
    if (p != self_ && drain_marks_[p].load(std::memory_order_acquire) != epoch) return false;
  return true;
}

bool PeerRouter::knows_every_peer() {
  for (PeerId p = 0; p < peers_; ++p) {
    if (p == self_) continue;
    {
      std::lock_guard lock(dir_mu_);
      if (incarnations_[p] == 0) return false;
    }
    if (!remote_.knows(p)) return false;
  }
  return true;
}

// --- receiving --------------------------------------------------------------------------------

void PeerRouter::on_frame(PeerId from, ByteView bytes) {
  if (from >= peers_ || from == self_) return;
  auto f = decode(bytes);
  if (!f) {
    if (peek_kind(bytes).has_value() &&
        static_cast<uint8_t>(*peek_kind(bytes)) > static_cast<uint8_t>(FrameKind::kLastKind)) {
      stats_.frames_unknown.fetch_add(1, std::memory_order_relaxed);  // a newer peer's kind
    } else {
      stats_.frames_bad.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("routing: malformed frame from peer {} ({} bytes) dropped", from, bytes.size());
    }
    return;
  }
  std::visit(Overloaded{
                 [&](const Hello& x) { on_hello(from, x); },
                 [&](const Publish& x) { on_publish(from, x); },
                 [&](const InterestSnapshot&) { on_interest_frame(from, bytes, *f); },
                 [&](const InterestDelta&) { on_interest_frame(from, bytes, *f); },
                 [&](const InterestRelay& x) { on_interest_relay(from, x); },
                 [&](const ClaimRequest& x) { on_claim(from, x); },
                 [&](const ClaimAnswer& x) { on_claim_answer(from, x); },
                 [&](const Surrender& x) { on_surrender(from, x); },
                 [&](const SessionImage& x) { on_session_image(from, x); },
                 [&](const Release& x) { on_release(from, x); },
                 [&](const Register& x) { on_register(from, x); },
                 [&](const ById& x) { on_by_id(from, x); },
                 [&](const Reply& x) { on_reply(from, x); },
                 [&](const Query& x) { on_query(from, x); },
                 [&](const QueryAnswer&) {},
                 [&](const SharedGroup& x) { on_shared_group_frame(from, x); },
                 [&](const SharedDeliver& x) { on_shared_deliver(from, x); },
                 [&](const DurablePublish& x) { on_durable_publish(from, x); },
                 [&](const InterestMark& x) { on_interest_mark(from, x); },
                 [&](const InterestApplied& x) { on_interest_applied(from, x); },
                 [&](const DrainMark& x) { drain_marks_[from].store(x.epoch, std::memory_order_release); },
             },
             *f);
}

// --- metrics ----------------------------------------------------------------------------------

void PeerRouter::render_metrics(std::string& out) const {
  struct Family {
    const char* name;
    const char* help;
    std::atomic<uint64_t> RouterStats::*field;
  };
  static const Family kCounters[] = {
      {"tcpms_routing_publishes_sent_total", "Publishes sent to peers with a matching interest.",
       &RouterStats::publishes_sent},
      {"tcpms_routing_publishes_received_total", "Publishes received from peers.",
       &RouterStats::publishes_received},
      {"tcpms_routing_publishes_local_only_total",
       "Publishes no peer had an interest in (nothing crossed).", &RouterStats::publishes_unmatched},
      {"tcpms_routing_claims_total", "CONNECTs that claimed their client id.", &RouterStats::claims},
      {"tcpms_routing_claims_remote_total", "Claims whose home was another peer.",
       &RouterStats::claims_remote},
      {"tcpms_routing_claims_timed_out_total",
       "Claims that went on without an answer (home or previous holder unreachable).",
       &RouterStats::claims_timed_out},
      {"tcpms_routing_claims_answered_late_total",
       "Home answers that came after their claim had timed out (their ticket is settled).",
       &RouterStats::claims_answered_late},
      {"tcpms_routing_surrenders_total", "Holders asked to give a client id up (as its home).",
       &RouterStats::surrenders},
      {"tcpms_routing_sessions_moved_in_total", "Sessions that came from another peer.",
       &RouterStats::sessions_moved_in},
      {"tcpms_routing_sessions_late_total",
       "Sessions that came after their claim gave up (handed to the broker).",
       &RouterStats::sessions_late},
      {"tcpms_routing_by_id_requests_total", "Pushes and kicks by client id sent to a home.",
       &RouterStats::by_id_requests},
      {"tcpms_routing_by_id_unanswered_total", "Requests by client id with no answer in time.",
       &RouterStats::by_id_unknown},
      {"tcpms_routing_frames_bad_total", "Frames from peers that did not decode or were refused.",
       &RouterStats::frames_bad},
      {"tcpms_routing_frames_unknown_total", "Frames of a kind this version does not know.",
       &RouterStats::frames_unknown},
      {"tcpms_routing_sends_failed_total", "Frames not sent: the peer was down.",
       &RouterStats::sends_failed},
      {"tcpms_routing_interest_updates_sent_total", "Interest deltas and snapshots sent.",
       &RouterStats::interest_updates_sent},
      {"tcpms_routing_interest_rebuilds_total", "Times this peer's interest bitmap grew.",
       &RouterStats::interest_rebuilds},
      {"tcpms_routing_enrolled_total", "Client ids enrolled by peers at this home after a restart.",
       &RouterStats::enrolled},
      {"tcpms_routing_peers_restarted_total", "Peers seen restarting.", &RouterStats::peers_restarted},
      {"tcpms_routing_shared_sent_total",
       "Shared subscription messages sent to a peer picked for one of its members.",
       &RouterStats::shared_sent},
      {"tcpms_routing_shared_received_total",
       "Shared subscription messages a peer picked this process for.", &RouterStats::shared_received},
      {"tcpms_routing_durable_asked_total",
       "Publishes sent to a peer that answers once its store has them (every-message sync).",
       &RouterStats::durable_asked},
      {"tcpms_routing_durable_unconfirmed_total",
       "Of those, the ones a peer never confirmed (down or late): the publisher was disconnected.",
       &RouterStats::durable_unconfirmed},
      {"tcpms_routing_subacks_held_total",
       "SUBACKs held until every peer had applied the interest update with their filters.",
       &RouterStats::subacks_held},
      {"tcpms_routing_subacks_unconfirmed_total",
       "Of those, the ones sent at the deadline without every peer's answer.",
       &RouterStats::subacks_unconfirmed},
  };
  auto family = [&](const char* name, const char* help, const char* type, uint64_t v) {
    fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name,
                   type, name, v);
  };
  for (const Family& f : kCounters)
    family(f.name, f.help, "counter", (stats_.*f.field).load(std::memory_order_relaxed));
  family("tcpms_routing_directory_entries", "Client ids whose home is this peer.", "gauge",
         directory_size());
  family("tcpms_routing_interest_slots", "Slots of this peer's interest bitmap.", "gauge",
         local_.slots());
  family("tcpms_routing_interest_table_bytes",
         "Memory of the peers' interest bitmaps held here (shared by worker processes: worker 0 "
         "counts them).",
         "gauge", remote_.table_bytes());
}

}  // namespace tcpms::routing
