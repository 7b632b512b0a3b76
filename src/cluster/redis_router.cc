#include "cluster/redis_router.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>

#include <fmt/format.h>
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

namespace tcpms::cluster {
namespace {

constexpr uint32_t kBackoffMinMs = 100;
constexpr uint32_t kBackoffMaxMs = 2000;
constexpr size_t kBatch = 512;       // operations per pipelined round trip
constexpr size_t kSaddChunk = 512;   // members per SADD when rewriting a set
constexpr int kPollMs = 200;         // subscriber wake-up to notice stop()

uint64_t now_ms() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

uint64_t now_us() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

std::string make_incarnation() { return fmt::format("{}-{}", ::getpid(), now_us()); }

// Appends "SADD key m..." commands of at most kSaddChunk members each.
void add_sadds(std::vector<RedisCommand>& cmds, const std::string& key,
               const std::vector<std::string>& members) {
  for (size_t i = 0; i < members.size(); i += kSaddChunk) {
    RedisCommand c{"SADD", key};
    for (size_t j = i; j < std::min(members.size(), i + kSaddChunk); ++j) c.push_back(members[j]);
    cmds.push_back(std::move(c));
  }
}

}  // namespace

RedisRouter::RedisRouter(broker::Broker& broker, ClusterConfig config)
    : broker_(broker),
      config_(std::move(config)),
      ctl_channel_(config_.prefix + "ctl"),
      incarnation_(make_incarnation()),
      sender_tag_(config_.node_id + "/" + incarnation_),
      lease_(config_.node_id, config_.lease_ms),
      outbox_(config_.outbox_capacity) {}

RedisRouter::~RedisRouter() { stop(); }

void RedisRouter::start() {
  if (running_.exchange(true)) return;
  command_thread_ = std::thread([this] { command_main(); });
  subscriber_thread_ = std::thread([this] { subscriber_main(); });
  stream_thread_ = std::thread([this] { stream_main(); });
  // Give the first connection a moment, so a node that can reach Redis has loaded the routes
  // and retained messages before it says it is listening; one that cannot goes on alone.
  std::unique_lock lock(stop_mu_);
  stop_cv_.wait_for(lock, std::chrono::milliseconds(config_.redis_timeout_ms),
                    [this] { return first_attempt_done_; });
}

void RedisRouter::stop() {
  if (stopping_.exchange(true)) return;
  {
    std::lock_guard lock(queue_mu_);
  }
  queue_cv_.notify_all();
  {
    std::lock_guard lock(stop_mu_);
  }
  stop_cv_.notify_all();
  if (command_thread_.joinable()) command_thread_.join();
  if (subscriber_thread_.joinable()) subscriber_thread_.join();
  if (stream_thread_.joinable()) stream_thread_.join();
  // Nobody answers any more: the CONNECTs waiting go on without their session.
  std::vector<uint64_t> ids;
  {
    std::lock_guard lock(fetch_mu_);
    for (const auto& [id, f] : fetches_) ids.push_back(id);
  }
  for (uint64_t id : ids) end_fetch(id, std::nullopt, FetchEnd::kRedisDown);
}

// --- hooks (loop threads) -------------------------------------------------------------------

bool RedisRouter::enqueue(Op&& op, bool is_message) {
  std::unique_lock lock(queue_mu_);
  if (stopping_.load(std::memory_order_relaxed)) return false;
  const bool internal = op.kind == Op::kLoadNode || op.kind == Op::kForgetNode;
  if (queue_.size() >= config_.queue_capacity && !internal) {
    if (!is_message) rebuild_needed_ = true;  // the state change is redone by a rebuild
    return false;
  }
  queue_.push_back(std::move(op));
  metrics_.queue_depth.store(queue_.size(), std::memory_order_relaxed);
  lock.unlock();
  queue_cv_.notify_one();
  return true;
}

void RedisRouter::on_filter_added(std::string_view filter, uint32_t) {
  {
    // Several loops may each have the filter: the node has it once.
    std::lock_guard lock(filters_mu_);
    if (++filter_loops_[std::string(filter)] != 1) return;
    filters_.emplace(filter);
    metrics_.local_filters.store(filters_.size(), std::memory_order_relaxed);
  }
  if (!command_up_.load(std::memory_order_acquire)) return;  // rewritten on reconnection
  Op op(Op::kRouteAdd);
  op.key = std::string(filter);
  op.frame = std::make_shared<const std::string>(
      encode_event(FrameKind::kRouteAdd, config_.node_id, filter));
  enqueue(std::move(op), false);
}

void RedisRouter::on_filter_removed(std::string_view filter, uint32_t) {
  {
    std::lock_guard lock(filters_mu_);
    auto it = filter_loops_.find(std::string(filter));
    if (it == filter_loops_.end() || --it->second != 0) return;
    filter_loops_.erase(it);
    filters_.erase(std::string(filter));
    metrics_.local_filters.store(filters_.size(), std::memory_order_relaxed);
  }
  if (!command_up_.load(std::memory_order_acquire)) return;
  Op op(Op::kRouteRemove);
  op.key = std::string(filter);
  op.frame = std::make_shared<const std::string>(
      encode_event(FrameKind::kRouteRemove, config_.node_id, filter));
  enqueue(std::move(op), false);
}

void RedisRouter::on_local_publish(const broker::Message& m) {
  const SharedBytes& topic = m.topic;
  const SharedBytes& payload = m.payload;
  const mqtt::QoS qos = m.qos;
  const bool retain = m.retain;
  if (stopping_.load(std::memory_order_relaxed)) return;
  const std::string_view t = as_chars(topic.view());
  Op op(Op::kPublish);
  size_t targets = 0;
  if (retain) {
    // Every live node keeps every retained message, and the hash keeps it for late joiners.
    op.all = true;
    op.key = std::string(t);
    if (!payload.empty()) {
      op.retained_value.reserve(1 + payload.size());
      op.retained_value.push_back(static_cast<char>(qos));
      op.retained_value.append(as_chars(payload.view()));
    }
    targets = metrics_.nodes_alive.load(std::memory_order_relaxed);
  } else {
    if (route_count_.load(std::memory_order_relaxed) == 0) return;
    {
      std::shared_lock lock(routes_mu_);
      op.targets = routes_.match(t);
    }
    targets = op.targets.count();
    if (targets == 0) return;
  }
  if (!command_up_.load(std::memory_order_acquire)) {
    metrics_.dropped_redis_down.fetch_add(targets, std::memory_order_relaxed);
    return;
  }
  op.frame = std::make_shared<const std::string>(
      encode_message(FrameKind::kPublish, config_.node_id, {}, t, as_chars(payload.view()), qos, retain));
  if (!enqueue(std::move(op), true)) metrics_.dropped_queue_full.fetch_add(targets, std::memory_order_relaxed);
}

bool RedisRouter::push_to_client(std::string_view client_id, const broker::Message& m,
                                 PushDone done) {
  const SharedBytes& topic = m.topic;
  const SharedBytes& payload = m.payload;
  const mqtt::QoS qos = m.qos;
  // False (nothing routed, `done` not run) when Redis is down or the queue is full; otherwise
  // the command thread runs `done` after its lookup: kHeld, kNoSuchClient, or kUnknown when
  // the batch failed or the operation was dropped.
  if (!command_up_.load(std::memory_order_acquire)) {
    metrics_.dropped_redis_down.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  Op op(Op::kPush);
  op.key = std::string(client_id);
  op.frame = std::make_shared<const std::string>(
      encode_message(FrameKind::kPush, config_.node_id, client_id, as_chars(topic.view()),
                     as_chars(payload.view()), qos, false));
  op.done = OncePushDone(std::move(done));
  if (!enqueue(std::move(op), true)) {
    op.done.disarm();
    metrics_.dropped_queue_full.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void RedisRouter::claim(std::string_view client_id, bool persistent, ClaimDone done) {
  // A persistent CONNECT fetches its session first and announces itself after (the
  // announcement drops the id's session on every other node); a clean one announces at once.
  if (!persistent) {
    on_client_connected(client_id);
    done(Claim{});
    return;
  }
  fetch_session(client_id, [this, id = std::string(client_id), done = std::move(done)](
                               std::optional<std::string> image) {
    on_client_connected(id);
    Claim c;
    c.elsewhere = image.has_value();
    c.image = std::move(image);
    done(std::move(c));
  });
}

void RedisRouter::release(std::string_view client_id, uint32_t) { on_session_ended(client_id); }

void RedisRouter::enroll(std::string_view client_id, uint32_t) {
  on_client_disconnected(client_id, true);
}

void RedisRouter::on_client_connected(std::string_view client_id) {
  if (!command_up_.load(std::memory_order_acquire)) return;  // registered on reconnection
  {
    std::lock_guard lock(pending_mu_);
    pending_connects_.emplace(client_id);
  }
  Op op(Op::kClientAdd);
  op.key = std::string(client_id);
  op.frame = std::make_shared<const std::string>(
      encode_event(FrameKind::kConnected, config_.node_id, client_id));
  if (!enqueue(std::move(op), false)) {
    std::lock_guard lock(pending_mu_);
    pending_connects_.erase(std::string(client_id));
  }
}

void RedisRouter::on_client_disconnected(std::string_view client_id, bool session_kept) {
  if (!session_kept) {
    on_session_ended(client_id);
    return;
  }
  // An offline persistent session stays in the registry: a CONNECT elsewhere fetches it, a
  // push to it is queued in it. Usually it is there already (it connected here); a session
  // the broker adopted (a late image) was not: the SADD, idempotent, covers both. No notice:
  // nothing connected.
  if (!command_up_.load(std::memory_order_acquire)) return;  // rewritten on reconnection
  Op op(Op::kClientAdd);
  op.key = std::string(client_id);
  enqueue(std::move(op), false);
}

void RedisRouter::on_session_ended(std::string_view client_id) {
  if (!command_up_.load(std::memory_order_acquire)) return;  // rewritten on reconnection
  Op op(Op::kClientRemove);
  op.key = std::string(client_id);
  enqueue(std::move(op), false);
}

// --- sessions across nodes ------------------------------------------------------------------
//
// The requester (a loop's CONNECT with CleanSession 0) registers the fetch and queues a
// lookup; the command thread asks every live node's clients set in its next pipelined batch.
// Nobody: done(nullopt) at once. Holders: a kSessionRequest to each, in its node stream; the
// holder's stream thread calls Broker::export_session, whose callback queues the answer
// (kSession with the image, or kNoSession) to the requester's stream. The first image ends
// the fetch; so do "none" answers from every holder, or the deadline (checked by both Redis
// threads at least every kPollMs). An image arriving after its fetch ended is handed to
// Broker::adopt_session, which keeps it only if the id has no session here.

void RedisRouter::fetch_session(std::string_view client_id, SessionDone done) {
  if (stopping_.load(std::memory_order_relaxed) || !command_up_.load(std::memory_order_acquire)) {
    // Cut off: a CONNECT must not wait for a timeout to learn nothing.
    metrics_.fetch_redis_down.fetch_add(1, std::memory_order_relaxed);
    done(std::nullopt);
    return;
  }
  const uint64_t id = next_fetch_id_.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lock(fetch_mu_);
    fetches_.emplace(id, PendingFetch{std::string(client_id), std::move(done),
                                      now_ms() + config_.session_fetch_timeout_ms, -1});
    fetches_pending_.store(fetches_.size(), std::memory_order_relaxed);
  }
  Op op(Op::kFetch);
  op.key = std::string(client_id);
  op.fetch_id = id;
  // The payload is how long we wait: a holder reading the request later answers "none".
  op.frame = std::make_shared<const std::string>(
      encode_message(FrameKind::kSessionRequest, config_.node_id, client_id, std::to_string(id),
                     std::to_string(config_.session_fetch_timeout_ms), mqtt::QoS::k0, false));
  if (!enqueue(std::move(op), true)) end_fetch(id, std::nullopt, FetchEnd::kRedisDown);
}

bool RedisRouter::end_fetch(uint64_t id, std::optional<std::string> image, FetchEnd why) {
  SessionDone done;
  {
    std::lock_guard lock(fetch_mu_);
    auto it = fetches_.find(id);
    if (it == fetches_.end()) return false;
    done = std::move(it->second.done);
    fetches_.erase(it);
    fetches_pending_.store(fetches_.size(), std::memory_order_relaxed);
  }
  switch (why) {
    case FetchEnd::kFound: metrics_.fetch_found.fetch_add(1, std::memory_order_relaxed); break;
    case FetchEnd::kNone: metrics_.fetch_none.fetch_add(1, std::memory_order_relaxed); break;
    case FetchEnd::kTimeout: metrics_.fetch_timeout.fetch_add(1, std::memory_order_relaxed); break;
    case FetchEnd::kRedisDown: metrics_.fetch_redis_down.fetch_add(1, std::memory_order_relaxed); break;
  }
  if (done) done(std::move(image));  // outside the lock: it may post to a loop, or run there
  return true;
}

void RedisRouter::expire_fetches() {
  if (fetches_pending_.load(std::memory_order_relaxed) == 0) return;
  const uint64_t now = now_ms();
  std::vector<std::pair<uint64_t, std::string>> late;
  {
    std::lock_guard lock(fetch_mu_);
    for (const auto& [id, f] : fetches_)
      if (f.deadline_ms <= now) late.emplace_back(id, f.client_id);
  }
  for (auto& [id, client] : late) {
    if (end_fetch(id, std::nullopt, FetchEnd::kTimeout))
      spdlog::warn("cluster: no answer with client '{}''s session within {} ms; it connects without it",
                   client, config_.session_fetch_timeout_ms);
  }
}

void RedisRouter::answer_fetch(const std::string& requester, const std::string& client_id,
                               const std::string& request_id, std::optional<std::string> image) {
  Op op(Op::kSend);
  op.key = requester;
  op.frame = std::make_shared<const std::string>(
      encode_message(image ? FrameKind::kSession : FrameKind::kNoSession, config_.node_id, client_id,
                     request_id, image ? std::string_view(*image) : std::string_view(), mqtt::QoS::k0, false));
  if (command_up_.load(std::memory_order_acquire) && enqueue(std::move(op), true)) {
    if (image) metrics_.sessions_exported.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (image) {
    // It cannot leave: keep it here rather than lose it (the requester times out).
    metrics_.sessions_returned.fetch_add(1, std::memory_order_relaxed);
    broker_.adopt_session(client_id, std::move(*image));
  }
}

void RedisRouter::abandon(Op& op) {
  if (op.kind == Op::kFetch) {
    end_fetch(op.fetch_id, std::nullopt, FetchEnd::kRedisDown);
  } else if (op.kind == Op::kSend && op.frame) {
    auto f = decode_frame(*op.frame);
    if (f && f->kind == FrameKind::kSession) {
      metrics_.sessions_returned.fetch_add(1, std::memory_order_relaxed);
      broker_.adopt_session(f->arg, std::string(f->payload));
    }
    op.frame.reset();
  }
}

void RedisRouter::on_session_answer(const Frame& f) {
  uint64_t id = 0;
  auto [end, ec] = std::from_chars(f.topic.data(), f.topic.data() + f.topic.size(), id);
  if (ec != std::errc() || end != f.topic.data() + f.topic.size()) return;
  if (f.kind == FrameKind::kSession) {
    {
      std::lock_guard lock(fetch_mu_);
      auto it = fetches_.find(id);
      // A fetch of ours for another client under that request id (an answer addressed to
      // an earlier process under this node id): not its answer, but still a session that
      // left its node, so it goes to the broker below rather than nowhere.
      if (it != fetches_.end() && it->second.client_id != f.arg) id = 0;
    }
    if (id != 0 && end_fetch(id, std::string(f.payload), FetchEnd::kFound)) return;
    // Its fetch gave up (or another holder answered first): the broker keeps it if the id
    // has no session here, so a session that left its node is not lost.
    metrics_.sessions_late.fetch_add(1, std::memory_order_relaxed);
    spdlog::info("cluster: client '{}''s session from node '{}' came after its fetch ended; handed to "
                 "the broker", f.arg, f.node);
    broker_.adopt_session(f.arg, std::string(f.payload));
    return;
  }
  {
    std::lock_guard lock(fetch_mu_);
    auto it = fetches_.find(id);
    if (it == fetches_.end() || it->second.client_id != f.arg || it->second.awaiting <= 0) return;
    if (--it->second.awaiting > 0) return;  // other holders still to answer
  }
  end_fetch(id, std::nullopt, FetchEnd::kNone);
}

// --- command thread -------------------------------------------------------------------------

void RedisRouter::wait_backoff(uint32_t ms) {
  std::unique_lock lock(stop_mu_);
  stop_cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stopping_.load(); });
}

void RedisRouter::lost(const char* what) {
  metrics_.redis_errors.fetch_add(1, std::memory_order_relaxed);
  if (command_up_.exchange(false, std::memory_order_acq_rel)) {
    metrics_.command_link_up.store(false, std::memory_order_relaxed);
    down_since_ms_ = now_ms();
    dropped_at_down_ = metrics_.dropped_redis_down.load() + metrics_.dropped_failed.load();
    spdlog::warn("cluster: Redis at {} lost during {} ({}); local clients are still served, "
                 "nothing crosses to other nodes until it is back",
                 config_.redis.to_string(), what, cmd_.error());
  }
  cmd_.close();
}

void RedisRouter::drop_queued(const char* why) {
  std::deque<Op> dropped;
  {
    std::lock_guard lock(queue_mu_);
    dropped.swap(queue_);
    metrics_.queue_depth.store(0, std::memory_order_relaxed);
  }
  uint64_t messages = 0;
  for (Op& op : dropped) {
    if (op.kind == Op::kPublish) messages += op.all ? lease_.alive().size() : op.targets.count();
    if (op.kind == Op::kPush) ++messages;
    abandon(op);
  }
  if (messages != 0) {
    metrics_.dropped_redis_down.fetch_add(messages, std::memory_order_relaxed);
    spdlog::debug("cluster: {} queued messages dropped ({})", messages, why);
  }
}

bool RedisRouter::run(const std::vector<RedisCommand>& cmds, std::vector<RedisReply>& replies) {
  if (cmds.empty()) {
    replies.clear();
    return true;
  }
  const uint64_t t0 = now_us();
  if (!cmd_.pipeline(cmds, replies)) return false;
  metrics_.observe_latency_us(now_us() - t0);
  metrics_.redis_commands.fetch_add(cmds.size(), std::memory_order_relaxed);
  for (const auto& r : replies) {
    if (r.is_error()) {
      metrics_.redis_errors.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("cluster: Redis error reply: {}", r.str());
    }
  }
  return true;
}

void RedisRouter::first_attempt_over() {
  {
    std::lock_guard lock(stop_mu_);
    if (first_attempt_done_) return;
    first_attempt_done_ = true;
  }
  stop_cv_.notify_all();
}

void RedisRouter::command_main() {
  uint32_t backoff = kBackoffMinMs;
  bool ever_connected = false;
  std::vector<Op> batch;
  while (!stopping_) {
    if (!cmd_.connected()) {
      if (ever_connected || down_since_ms_ != 0) first_attempt_over();
      if (!cmd_.connect(config_.redis, config_.redis_timeout_ms, fmt::format("tcpms:{}:command", config_.node_id))) {
        metrics_.redis_errors.fetch_add(1, std::memory_order_relaxed);
        if (down_since_ms_ == 0) {
          down_since_ms_ = now_ms();
          dropped_at_down_ = metrics_.dropped_redis_down.load() + metrics_.dropped_failed.load();
          spdlog::warn("cluster: cannot reach Redis at {} ({}); serving local clients only, retrying",
                       config_.redis.to_string(), cmd_.error());
        }
        drop_queued("Redis down");
        wait_backoff(backoff);
        backoff = std::min(backoff * 2, kBackoffMaxMs);
        continue;
      }
      backoff = kBackoffMinMs;
      if (!rebuild()) {
        lost("rebuild");
        continue;
      }
      if (!flush_outbox()) {
        lost("resending failed batches");
        continue;
      }
      if (ever_connected) metrics_.redis_reconnects.fetch_add(1, std::memory_order_relaxed);
      if (down_since_ms_ != 0) {
        uint64_t dropped = metrics_.dropped_redis_down.load() + metrics_.dropped_failed.load() - dropped_at_down_;
        spdlog::info("cluster: Redis at {} {} after {} ms; {} messages could not cross meanwhile; "
                     "routes and registry rebuilt",
                     config_.redis.to_string(), ever_connected ? "back" : "reached",
                     now_ms() - down_since_ms_, dropped);
      } else {
        spdlog::info("cluster: node '{}' joined through Redis at {} ({} other nodes)", config_.node_id,
                     config_.redis.to_string(), lease_.alive().size());
      }
      ever_connected = true;
      down_since_ms_ = 0;
      command_up_.store(true, std::memory_order_release);
      metrics_.command_link_up.store(true, std::memory_order_relaxed);
      first_attempt_over();
    }
    batch.clear();
    bool reload = false, rebuild_now = false;
    {
      std::unique_lock lock(queue_mu_);
      uint64_t wait_ms = lease_.next_refresh_ms() > now_ms() ? lease_.next_refresh_ms() - now_ms() : 0;
      if (fetches_pending_.load(std::memory_order_relaxed) != 0) wait_ms = std::min<uint64_t>(wait_ms, kPollMs);
      queue_cv_.wait_for(lock, std::chrono::milliseconds(wait_ms), [&] {
        return stopping_.load() || !queue_.empty() || reload_remote_ || rebuild_needed_;
      });
      reload = std::exchange(reload_remote_, false);
      rebuild_now = std::exchange(rebuild_needed_, false);
      while (!queue_.empty() && batch.size() < kBatch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      metrics_.queue_depth.store(queue_.size(), std::memory_order_relaxed);
    }
    expire_fetches();
    const uint64_t now = now_ms();
    bool ok = true;
    // A rewrite after dropped state changes waits for the next refresh: under a connect storm
    // that overflows the queue, one rewrite per refresh period, not one per batch.
    rebuild_pending_ = rebuild_pending_ || rebuild_now;
    if (lease_.must_rebuild(now) || (rebuild_pending_ && lease_.refresh_due(now))) {
      rebuild_pending_ = false;
      ok = rebuild();
    } else {
      if (lease_.refresh_due(now)) ok = refresh();
      if (ok && reload) {
        std::vector<std::string> alive;
        ok = scan_nodes(alive);
        if (ok) {
          std::vector<std::string> left(lease_.alive().begin(), lease_.alive().end());
          lease_.clear();
          lease_.apply_scan(alive);
          std::vector<std::string> all(lease_.alive().begin(), lease_.alive().end());
          ok = load_nodes(all, left);
        }
      }
    }
    if (ok && !batch.empty()) ok = process(batch);
    if (!ok) {
      // Messages the failed round trip carried wait in the outbox for the reconnection (a
      // sender may have written some of them already: their sequence numbers let the
      // receivers drop the copies). Ops it never reached are lost.
      size_t kept = in_flight_.size(), dropped = 0;
      for (auto& item : in_flight_) dropped += outbox_.push(std::move(item));
      in_flight_.clear();
      metrics_.dropped_failed.fetch_add(dropped, std::memory_order_relaxed);
      metrics_.outbox_depth.store(outbox_.size(), std::memory_order_relaxed);
      if (kept != 0) spdlog::debug("cluster: {} messages of a failed batch kept for a retry", kept);
      for (Op& op : batch) abandon(op);
      lost("a batch");
    }
    batch.clear();  // answers pushes the failed batch left unanswered (kUnknown)
  }
  drop_queued("stopping");
  if (!outbox_.empty()) {
    // Stopped before Redis came back: those never cross.
    spdlog::warn("cluster: {} messages of failed batches not sent (stopping)", outbox_.size());
    metrics_.dropped_failed.fetch_add(outbox_.size(), std::memory_order_relaxed);
    outbox_.take(outbox_.size());
    metrics_.outbox_depth.store(0, std::memory_order_relaxed);
  }
  say_goodbye();
}

bool RedisRouter::scan_nodes(std::vector<std::string>& out) {
  out.clear();
  const std::string pattern = config_.prefix + "node:*";
  const size_t strip = config_.prefix.size() + 5;
  std::string cursor = "0";
  std::vector<RedisReply> r;
  do {
    if (!run({{"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"}}, r)) return false;
    if (r[0].size() != 2) return false;
    cursor = std::string(r[0].element_str(0));
    for (size_t i = 0; i < r[0].nested_size(1); ++i) {
      std::string_view k = r[0].nested_str(1, i);
      if (k.size() > strip) out.emplace_back(k.substr(strip));
    }
  } while (cursor != "0");
  return true;
}

bool RedisRouter::load_nodes(const std::vector<std::string>& load, const std::vector<std::string>& drop) {
  for (const auto& n : drop) {
    if (std::find(load.begin(), load.end(), n) != load.end()) continue;
    std::unique_lock lock(routes_mu_);
    uint16_t i = routes_.find_node(n);
    if (i != kNoNode) routes_.drop_node(i);
    route_count_.store(routes_.route_count(), std::memory_order_relaxed);
    metrics_.remote_routes.store(routes_.route_count(), std::memory_order_relaxed);
    spdlog::info("cluster: node '{}' left (lease expired or goodbye); its routes are dropped", n);
  }
  if (!load.empty()) {
    std::vector<RedisCommand> cmds;
    std::vector<std::string> keys;
    keys.reserve(load.size());
    for (const auto& n : load) keys.push_back(key("routes", n));
    for (const auto& k : keys) cmds.push_back({"SMEMBERS", k});
    std::vector<RedisReply> replies;
    if (!run(cmds, replies)) return false;
    for (size_t i = 0; i < load.size(); ++i) {
      std::vector<std::string> filters;
      for (size_t j = 0; j < replies[i].size(); ++j) filters.emplace_back(replies[i].element_str(j));
      std::unique_lock lock(routes_mu_);
      uint16_t idx = routes_.node_index(load[i]);
      if (idx == kNoNode) {
        spdlog::error("cluster: more than {} node names seen; node '{}' is not routed to", kMaxNodes, load[i]);
        continue;
      }
      routes_.replace_node(idx, filters);
      route_count_.store(routes_.route_count(), std::memory_order_relaxed);
      metrics_.remote_routes.store(routes_.route_count(), std::memory_order_relaxed);
    }
  }
  metrics_.nodes_alive.store(lease_.alive().size(), std::memory_order_relaxed);
  return true;
}

bool RedisRouter::rebuild() {
  metrics_.rebuilds.fetch_add(1, std::memory_order_relaxed);
  std::vector<std::string> filters;
  {
    std::lock_guard lock(filters_mu_);
    filters.assign(filters_.begin(), filters_.end());
  }
  std::vector<std::string> clients;
  // Every session here, connected or offline persistent: the registry is where pushes and
  // session fetches look.
  for (auto& c : broker_.list_clients(std::chrono::seconds(2))) clients.push_back(std::move(c.client_id));
  const std::string routes_key = key("routes", config_.node_id);
  const std::string clients_key = key("clients", config_.node_id);
  const std::string node_key = key("node", config_.node_id);
  const std::string lease = std::to_string(lease_.lease_ms());
  const std::string hello = encode_event(FrameKind::kHello, config_.node_id);
  // One transaction: a node reading our routes meanwhile sees the old set or the new one,
  // never the empty one between DEL and SADD.
  const std::string stream_key = key("stream", config_.node_id);
  std::vector<RedisCommand> cmds;
  cmds.push_back({"MULTI"});
  cmds.push_back({"DEL", routes_key, clients_key});
  // The first time in this process: what an earlier process with our node id left unread is
  // not for our subscribers. Later (Redis back, lease lost) the stream is ours: keep it.
  if (!joined_.load(std::memory_order_relaxed)) cmds.push_back({"DEL", stream_key});
  add_sadds(cmds, routes_key, filters);
  add_sadds(cmds, clients_key, clients);
  cmds.push_back({"PEXPIRE", routes_key, lease});
  cmds.push_back({"PEXPIRE", clients_key, lease});
  cmds.push_back({"SET", node_key, incarnation_, "PX", lease});
  cmds.push_back({"PUBLISH", ctl_channel_, hello});
  cmds.push_back({"EXEC"});
  std::vector<RedisReply> replies;
  if (!run(cmds, replies)) return false;
  if (!replies.back().ok() || replies.back().size() != cmds.size() - 2) {
    spdlog::warn("cluster: rewriting routes and registry failed: {}", replies.back().str());
    return false;
  }
  lease_.refreshed(now_ms());
  if (!joined_.exchange(true, std::memory_order_acq_rel)) {
    std::lock_guard lock(stop_mu_);  // wakes the stream thread waiting for it
  }
  stop_cv_.notify_all();
  {
    std::lock_guard lock(pending_mu_);
    pending_connects_.clear();
  }
  std::vector<std::string> alive;
  if (!scan_nodes(alive)) return false;
  std::vector<std::string> left(lease_.alive().begin(), lease_.alive().end());
  lease_.clear();
  lease_.apply_scan(alive);
  std::vector<std::string> all(lease_.alive().begin(), lease_.alive().end());
  if (!load_nodes(all, left)) return false;
  if (!retained_loaded_) {
    if (!load_retained()) return false;
    retained_loaded_ = true;
  }
  spdlog::debug("cluster: rebuilt {} filters and {} clients in Redis", filters.size(), clients.size());
  return true;
}

bool RedisRouter::refresh() {
  const std::string lease = std::to_string(lease_.lease_ms());
  std::vector<RedisReply> r;
  // SET ... GET answers nil when our key was gone: it expired (we were cut off longer than the
  // lease) or Redis lost its data; either way our sets may be gone too.
  if (!run({{"SET", key("node", config_.node_id), incarnation_, "PX", lease, "GET"},
            {"PEXPIRE", key("routes", config_.node_id), lease},
            {"PEXPIRE", key("clients", config_.node_id), lease},
            {"PEXPIRE", key("stream", config_.node_id), lease}},
           r))
    return false;
  if (r[0].is_nil()) {
    spdlog::warn("cluster: this node's lease was gone from Redis; rewriting routes and registry");
    return rebuild();
  }
  lease_.refreshed(now_ms());
  std::vector<std::string> alive;
  if (!scan_nodes(alive)) return false;
  auto change = lease_.apply_scan(alive);
  for (const auto& n : change.joined) spdlog::info("cluster: node '{}' joined", n);
  return load_nodes(change.joined, change.left);
}

bool RedisRouter::load_retained() {
  RedisReply r;
  if (!cmd_.command({"HGETALL", config_.prefix + "retained"}, r)) return false;
  size_t n = 0;
  for (size_t i = 0; i + 1 < r.size(); i += 2) {
    std::string_view topic = r.element_str(i), value = r.element_str(i + 1);
    if (value.size() < 2 || static_cast<uint8_t>(value[0]) > 2) continue;
    broker_.retained().set(SharedBytes::copy_of(as_bytes(topic)), SharedBytes::copy_of(as_bytes(value.substr(1))),
                           static_cast<mqtt::QoS>(value[0]));
    ++n;
  }
  if (n != 0) spdlog::info("cluster: loaded {} retained messages from Redis", n);
  return true;
}

void RedisRouter::add_xadd(std::vector<RedisCommand>& cmds, std::deque<std::string>& store,
                           const std::string& target, const std::string& frame, uint64_t seq) {
  const std::string& stream = store.emplace_back(key("stream", target));
  const std::string& max_len = store.emplace_back(std::to_string(config_.stream_max_len));
  const std::string& n = store.emplace_back(std::to_string(seq));
  cmds.push_back({"XADD", stream, "MAXLEN", "~", max_len, "*", "s", sender_tag_, "n", n, "f", frame});
  // A stream whose node died goes with its lease: its owner refreshes the TTL while alive,
  // and a sender whose XADD may have made it anew sets one, at most once per refresh period
  // and target (not once per message).
  const uint64_t now = now_ms();
  uint64_t& last = stream_ttl_set_ms_[target];
  if (last == 0 || now - last >= lease_.lease_ms() / 3) {
    last = now;
    cmds.push_back({"PEXPIRE", stream, store.emplace_back(std::to_string(lease_.lease_ms()))});
  }
}

bool RedisRouter::process(std::vector<Op>& batch) {
  std::vector<RedisCommand> cmds;
  std::deque<std::string> store;  // owns key names the commands point into (a deque never moves them)
  struct Lookup {
    size_t op;
    std::string node;
    size_t key;  // index in `store` of "clients:<node>"
  };
  std::vector<Lookup> lookups;  // one SISMEMBER per push or fetch and live node
  const std::string routes_key = key("routes", config_.node_id);
  const std::string clients_key = key("clients", config_.node_id);
  const std::string retained_key = config_.prefix + "retained";
  const std::string lease = std::to_string(lease_.lease_ms());
  in_flight_.clear();
  // Publishes (to a node's stream) kept for a retry if this round trip fails.
  auto send = [&](const std::string& target, const std::shared_ptr<const std::string>& frame, bool retry) {
    const uint64_t seq = ++seq_;
    add_xadd(cmds, store, target, *frame, seq);
    if (retry) in_flight_.push_back({target, frame, seq});
  };
  std::vector<Op*> internal;
  for (size_t i = 0; i < batch.size(); ++i) {
    Op& op = batch[i];
    switch (op.kind) {
      case Op::kPublish: {
        size_t sent = 0;
        if (op.all) {
          for (const auto& n : lease_.alive()) {
            send(n, op.frame, true);
            ++sent;
          }
          if (op.retained_value.empty()) {
            cmds.push_back({"HDEL", retained_key, op.key});
          } else {
            cmds.push_back({"HSET", retained_key, op.key, op.retained_value});
          }
        } else {
          std::vector<std::string> targets;
          {
            std::shared_lock lock(routes_mu_);
            for (size_t n = 0; n < routes_.node_names() && n < kMaxNodes; ++n)
              if (op.targets.test(n)) targets.emplace_back(routes_.node_name(static_cast<uint16_t>(n)));
          }
          for (const auto& n : targets) {
            send(n, op.frame, true);
            ++sent;
          }
        }
        metrics_.messages_out.fetch_add(sent, std::memory_order_relaxed);
        metrics_.bytes_out.fetch_add(sent * op.frame->size(), std::memory_order_relaxed);
        break;
      }
      case Op::kPush:
      case Op::kFetch:
        for (const auto& n : lease_.alive()) {
          store.push_back(key("clients", n));
          lookups.push_back({i, n, store.size() - 1});
        }
        break;
      case Op::kSend:
        // A session answer: not retried (a failure gives the image back to this broker).
        send(op.key, op.frame, false);
        break;
      case Op::kRouteAdd:
        cmds.push_back({"SADD", routes_key, op.key});
        cmds.push_back({"PEXPIRE", routes_key, lease});  // never a set without a lease
        cmds.push_back({"PUBLISH", ctl_channel_, *op.frame});
        break;
      case Op::kRouteRemove:
        cmds.push_back({"SREM", routes_key, op.key});
        cmds.push_back({"PUBLISH", ctl_channel_, *op.frame});
        break;
      case Op::kClientAdd:
        cmds.push_back({"SADD", clients_key, op.key});
        cmds.push_back({"PEXPIRE", clients_key, lease});
        if (op.frame) cmds.push_back({"PUBLISH", ctl_channel_, *op.frame});  // a connect
        break;
      case Op::kClientRemove:
        cmds.push_back({"SREM", clients_key, op.key});
        break;
      case Op::kLoadNode:
      case Op::kForgetNode:
        internal.push_back(&op);
        break;
    }
  }
  // Lookups for pushes and fetches go in the same round trip; what they send needs a second.
  const size_t first_lookup = cmds.size();
  for (const Lookup& l : lookups) cmds.push_back({"SISMEMBER", store[l.key], batch[l.op].key});
  std::vector<RedisReply> replies;
  if (!run(cmds, replies)) return false;
  in_flight_.clear();
  // Session answers went out with this round trip: a later failure must not take them back.
  for (Op& op : batch)
    if (op.kind == Op::kSend) op.frame.reset();
  if (!lookups.empty()) {
    cmds.clear();
    std::vector<size_t> held;  // batch indexes of pushes and fetches some node holds
    std::vector<int> holders(batch.size(), 0);
    for (size_t k = 0; k < lookups.size(); ++k) {
      if (replies[first_lookup + k].integer() != 1) continue;
      const Op& op = batch[lookups[k].op];
      // A fetch request is not retried: its CONNECT goes on without it meanwhile.
      send(lookups[k].node, op.frame, op.kind == Op::kPush);
      if (held.empty() || held.back() != lookups[k].op) held.push_back(lookups[k].op);
      ++holders[lookups[k].op];
      if (op.kind == Op::kPush) {
        metrics_.pushes_out.fetch_add(1, std::memory_order_relaxed);
        metrics_.messages_out.fetch_add(1, std::memory_order_relaxed);
        metrics_.bytes_out.fetch_add(op.frame->size(), std::memory_order_relaxed);
      }
    }
    // A fetch learns how many answers to wait for before its requests can be answered.
    {
      std::lock_guard lock(fetch_mu_);
      for (size_t i : held) {
        if (batch[i].kind != Op::kFetch) continue;
        auto it = fetches_.find(batch[i].fetch_id);
        if (it != fetches_.end()) it->second.awaiting = holders[i];
      }
    }
    // Pushes are answered once their XADD went out. A failed round trip leaves them to
    // OncePushDone's kUnknown (their messages to the outbox) and its fetches to abandon().
    if (!run(cmds, replies)) return false;
    in_flight_.clear();
    for (size_t i : held)
      if (batch[i].kind == Op::kPush) batch[i].done(PushOutcome::kHeld);
  }
  // Fetches no live node holds a session for: the CONNECT goes on now.
  for (Op& op : batch) {
    if (op.kind != Op::kFetch) continue;
    bool asked = false;
    {
      std::lock_guard lock(fetch_mu_);
      auto it = fetches_.find(op.fetch_id);
      asked = it == fetches_.end() || it->second.awaiting > 0;
    }
    if (!asked) end_fetch(op.fetch_id, std::nullopt, FetchEnd::kNone);
  }
  // Every push not held by a live node (none alive, or no set has the id).
  for (Op& op : batch) {
    if (op.kind != Op::kPush || !op.done.armed()) continue;
    metrics_.pushes_no_client.fetch_add(1, std::memory_order_relaxed);
    op.done(PushOutcome::kNoSuchClient);
  }
  for (Op* op : internal) {
    if (op->kind == Op::kLoadNode) {
      lease_.saw(op->key);
      if (!load_nodes({op->key}, {})) return false;
    } else {
      lease_.forget(op->key);
      if (!load_nodes({}, {op->key})) return false;
    }
  }
  return true;
}

bool RedisRouter::flush_outbox() {
  while (!outbox_.empty()) {
    auto items = outbox_.take(kBatch);
    std::vector<RedisCommand> cmds;
    std::deque<std::string> store;
    size_t sent = 0;
    for (const auto& item : items) {
      if (!lease_.is_alive(item.target)) {
        metrics_.dropped_failed.fetch_add(1, std::memory_order_relaxed);  // it left meanwhile
        continue;
      }
      add_xadd(cmds, store, item.target, *item.frame, item.seq);  // same sequence: no duplicate
      ++sent;
    }
    std::vector<RedisReply> replies;
    if (!run(cmds, replies)) {
      metrics_.dropped_failed.fetch_add(outbox_.put_back(std::move(items)), std::memory_order_relaxed);
      metrics_.outbox_depth.store(outbox_.size(), std::memory_order_relaxed);
      return false;
    }
    metrics_.outbox_retried.fetch_add(sent, std::memory_order_relaxed);
    metrics_.outbox_depth.store(outbox_.size(), std::memory_order_relaxed);
  }
  return true;
}

void RedisRouter::say_goodbye() {
  if (!cmd_.connected()) return;
  // Others drop our routes now instead of sending to us until the lease runs out.
  std::vector<RedisReply> r;
  run({{"DEL", key("routes", config_.node_id), key("clients", config_.node_id), key("node", config_.node_id),
        key("stream", config_.node_id)},
       {"PUBLISH", ctl_channel_, encode_event(FrameKind::kBye, config_.node_id)}},
      r);
  cmd_.close();
  command_up_.store(false);
  metrics_.command_link_up.store(false, std::memory_order_relaxed);
}

// --- subscriber and stream threads ----------------------------------------------------------

bool RedisRouter::connect_link(RedisConnection& c, std::string_view link, const std::vector<std::string>& channels,
                               uint32_t& backoff) {
  if (c.connect(config_.redis, config_.redis_timeout_ms, fmt::format("tcpms:{}:{}", config_.node_id, link)) &&
      (channels.empty() || c.subscribe(channels))) {
    backoff = kBackoffMinMs;
    return true;
  }
  c.close();
  metrics_.redis_errors.fetch_add(1, std::memory_order_relaxed);
  wait_backoff(backoff);
  backoff = std::min(backoff * 2, kBackoffMaxMs);
  return false;
}

void RedisRouter::subscriber_main() {
  RedisConnection sub;
  uint32_t backoff = kBackoffMinMs;
  bool warned = false;
  while (!stopping_) {
    if (!sub.connected()) {
      if (!connect_link(sub, "subscriber", {ctl_channel_}, backoff)) continue;
      warned = false;
      metrics_.subscriber_link_up.store(true, std::memory_order_relaxed);
      {
        std::lock_guard lock(pending_mu_);
        pending_connects_.clear();  // their notices may have passed while we were away
      }
      {
        std::lock_guard lock(queue_mu_);
        reload_remote_ = true;  // route events may have passed while we were away
      }
      queue_cv_.notify_one();
    }
    expire_fetches();
    auto m = sub.poll_message(kPollMs);
    if (!m) {
      metrics_.subscriber_link_up.store(false, std::memory_order_relaxed);
      metrics_.redis_errors.fetch_add(1, std::memory_order_relaxed);
      if (!warned) spdlog::warn("cluster: Redis subscription lost ({}); reconnecting", sub.error());
      warned = true;
      continue;
    }
    if (m->raw() == nullptr) continue;  // timeout
    if (m->size() == 3 && m->element_str(0) == "message") dispatch(m->element_str(1), m->element_str(2));
  }
}

// --- stream thread --------------------------------------------------------------------------

namespace {

std::string_view reply_str(const redisReply* r) {
  if (r == nullptr || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS)) return {};
  return {r->str, r->len};
}

}  // namespace

void RedisRouter::stream_main() {
  RedisConnection rd;
  DuplicateFilter seen;
  const std::string stream = key("stream", config_.node_id);
  const std::string block = std::to_string(kPollMs);
  std::string last_id = "0-0";  // the first rewrite emptied the stream: everything is ours
  uint32_t backoff = kBackoffMinMs;
  bool warned = false;
  while (!stopping_) {
    if (!joined_.load(std::memory_order_acquire)) {
      std::unique_lock lock(stop_mu_);
      stop_cv_.wait_for(lock, std::chrono::milliseconds(kPollMs),
                        [this] { return stopping_.load() || joined_.load(); });
      continue;
    }
    if (!rd.connected()) {
      if (!connect_link(rd, "stream", {}, backoff)) continue;
      warned = false;
      // A stream made anew (expired with a lapsed lease, Redis restarted empty or failed over
      // to a machine whose clock is behind) may number its entries below the last id read:
      // then everything in it is news. Redis answers an error for a missing key.
      RedisReply info;
      if (!rd.command({"XINFO", "STREAM", stream}, info)) {
        wait_backoff(kBackoffMinMs);  // the connection broke at once: no tight loop
        continue;
      }
      std::string_view generated;
      for (size_t k = 0; info.ok() && k + 1 < info.size(); k += 2)
        if (info.element_str(k) == "last-generated-id") generated = info.element_str(k + 1);
      if (!info.ok() || stream_id_less(generated, last_id)) last_id = "0-0";
      metrics_.stream_link_up.store(true, std::memory_order_relaxed);
    }
    // Returns within kPollMs when nothing comes (so stop() is noticed), at once otherwise.
    RedisReply r;
    if (!rd.command({"XREAD", "COUNT", "512", "BLOCK", block, "STREAMS", stream, last_id}, r)) {
      metrics_.stream_link_up.store(false, std::memory_order_relaxed);
      metrics_.redis_errors.fetch_add(1, std::memory_order_relaxed);
      if (!warned) spdlog::warn("cluster: reading this node's stream failed ({}); reconnecting", rd.error());
      warned = true;
      // What is sent meanwhile waits in the stream; no hurry to hammer a Redis in trouble.
      wait_backoff(kBackoffMinMs);
      continue;
    }
    if (r.is_nil()) continue;  // nothing within the block time
    if (r.is_error()) {
      metrics_.redis_errors.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("cluster: XREAD on {}: {}", stream, r.str());
      wait_backoff(backoff);
      continue;
    }
    // [[stream, [[id, [field, value, ...]], ...]]]
    const redisReply* streams = r.raw();
    uint64_t redis_now_ms = 0;  // Redis' clock, asked once per read that carries a request
    if (streams == nullptr || streams->type != REDIS_REPLY_ARRAY) continue;
    for (size_t i = 0; i < streams->elements; ++i) {
      const redisReply* s = streams->element[i];
      if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 || s->element[1]->type != REDIS_REPLY_ARRAY) continue;
      const redisReply* entries = s->element[1];
      for (size_t j = 0; j < entries->elements; ++j) {
        const redisReply* e = entries->element[j];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) continue;
        last_id = std::string(reply_str(e->element[0]));
        const redisReply* fields = e->element[1];
        if (fields->type != REDIS_REPLY_ARRAY) continue;
        std::string_view sender, seq, frame;
        for (size_t k = 0; k + 1 < fields->elements; k += 2) {
          std::string_view name = reply_str(fields->element[k]), value = reply_str(fields->element[k + 1]);
          if (name == "s") sender = value;
          if (name == "n") seq = value;
          if (name == "f") frame = value;
        }
        uint64_t n = 0;
        auto [end, ec] = std::from_chars(seq.data(), seq.data() + seq.size(), n);
        if (ec != std::errc() || end != seq.data() + seq.size() || sender.empty()) continue;
        metrics_.stream_entries_in.fetch_add(1, std::memory_order_relaxed);
        if (!seen.accept(sender, n)) {
          metrics_.stream_duplicates.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        if (frame.size() > 1 && static_cast<FrameKind>(frame[1]) == FrameKind::kSessionRequest &&
            stale_request(rd, e->element[0], frame, redis_now_ms))
          continue;
        dispatch(stream, frame);
      }
    }
  }
  metrics_.stream_link_up.store(false, std::memory_order_relaxed);
}

bool RedisRouter::stale_request(RedisConnection& rd, const redisReply* entry_id, std::string_view data,
                                uint64_t& redis_now_ms) {
  auto f = decode_frame(data);
  if (!f) return false;
  if (redis_now_ms == 0) {
    RedisReply t;
    // [seconds, microseconds]; a failure here shows on the next XREAD: honour the request.
    if (!rd.command({"TIME"}, t) || t.size() != 2) return false;
    uint64_t sec = 0, us = 0;
    std::from_chars(t.element_str(0).data(), t.element_str(0).data() + t.element_str(0).size(), sec);
    std::from_chars(t.element_str(1).data(), t.element_str(1).data() + t.element_str(1).size(), us);
    redis_now_ms = sec * 1000 + us / 1000;
  }
  uint64_t timeout_ms = config_.session_fetch_timeout_ms;
  std::from_chars(f->payload.data(), f->payload.data() + f->payload.size(), timeout_ms);
  if (!request_expired(reply_str(entry_id), redis_now_ms, timeout_ms)) return false;
  // Its CONNECT went on without it: exporting now would take the session from wherever the
  // client is by now, for a node that no longer waits.
  metrics_.session_requests_stale.fetch_add(1, std::memory_order_relaxed);
  spdlog::info("cluster: node '{}' asked for client '{}''s session more than {} ms ago; answered none",
               f->node, f->arg, timeout_ms);
  answer_fetch(std::string(f->node), std::string(f->arg), std::string(f->topic), std::nullopt);
  return true;
}

void RedisRouter::dispatch(std::string_view /*channel*/, std::string_view data) {
  auto f = decode_frame(data);
  if (!f) return;
  if (f->node == config_.node_id) {
    if (f->kind == FrameKind::kConnected) {
      std::lock_guard lock(pending_mu_);
      pending_connects_.erase(std::string(f->arg));
    }
    return;  // our own notices come back on ctl
  }
  switch (f->kind) {
    case FrameKind::kPublish:
      metrics_.messages_in.fetch_add(1, std::memory_order_relaxed);
      metrics_.bytes_in.fetch_add(data.size(), std::memory_order_relaxed);
      broker_.deliver_remote(broker::Message{SharedBytes::copy_of(as_bytes(f->topic)),
                                             SharedBytes::copy_of(as_bytes(f->payload)), {},
                                             f->qos, f->retain});
      return;
    case FrameKind::kPush:
      metrics_.messages_in.fetch_add(1, std::memory_order_relaxed);
      metrics_.bytes_in.fetch_add(data.size(), std::memory_order_relaxed);
      if (broker_.registry().find(f->arg).has_value()) {
        metrics_.pushes_in.fetch_add(1, std::memory_order_relaxed);
        broker_.send_to_local_client(
            f->arg, broker::Message{SharedBytes::copy_of(as_bytes(f->topic)),
                                    SharedBytes::copy_of(as_bytes(f->payload)), {}, f->qos, false});
      }
      return;
    case FrameKind::kRouteAdd:
    case FrameKind::kRouteRemove: {
      metrics_.route_events_in.fetch_add(1, std::memory_order_relaxed);
      std::unique_lock lock(routes_mu_);
      uint16_t idx = routes_.node_index(f->node);
      if (idx == kNoNode) return;
      if (f->kind == FrameKind::kRouteAdd) {
        routes_.add(idx, f->arg);
      } else {
        routes_.remove(idx, f->arg);
      }
      route_count_.store(routes_.route_count(), std::memory_order_relaxed);
      metrics_.remote_routes.store(routes_.route_count(), std::memory_order_relaxed);
      return;
    }
    case FrameKind::kHello:
    case FrameKind::kBye: {
      Op op(f->kind == FrameKind::kHello ? Op::kLoadNode : Op::kForgetNode);
      op.key = std::string(f->node);
      enqueue(std::move(op), false);
      return;
    }
    case FrameKind::kConnected: {
      {
        std::lock_guard lock(pending_mu_);
        // Ours connected after theirs in Redis' order: theirs is the one to close, over there.
        if (pending_connects_.count(std::string(f->arg)) != 0) return;
      }
      // Connected elsewhere: a session still here is stale, connected or offline. A clean
      // connect there discards it [MQTT-3.1.2-6]; a resuming one fetched it first, so what is
      // left here lost the race (its fetch timed out) and is discarded too.
      auto e = broker_.registry().find(f->arg);
      if (!e) return;
      if (e->conn.valid()) metrics_.takeover_kicks.fetch_add(1, std::memory_order_relaxed);
      metrics_.session_drops.fetch_add(1, std::memory_order_relaxed);
      // Ticket 0: this router registers no tickets, so it names the session here, whichever.
      broker_.surrender_session(f->arg, 0, false, [](std::optional<std::string>) {});
      spdlog::debug("cluster: client '{}' connected on node '{}': its session here is dropped", f->arg, f->node);
      return;
    }
    case FrameKind::kSessionRequest: {
      metrics_.session_requests_in.fetch_add(1, std::memory_order_relaxed);
      // Closes the client here if connected (takeover), removes the session; the callback
      // runs once, on a loop thread or this one.
      broker_.surrender_session(f->arg, 0, true, [this, requester = std::string(f->node), id = std::string(f->arg),
                                      request = std::string(f->topic)](std::optional<std::string> image) {
        answer_fetch(requester, id, request, std::move(image));
      });
      return;
    }
    case FrameKind::kSession:
    case FrameKind::kNoSession:
      on_session_answer(*f);
      return;
  }
}

}  // namespace tcpms::cluster
