#include "cluster/redis_transport.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include <fmt/format.h>
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

namespace tcpms::cluster {
namespace {

using routing::kNoPeer;
using routing::PeerId;

constexpr uint32_t kBackoffMinMs = 100;
constexpr uint32_t kBackoffMaxMs = 2000;
constexpr size_t kBatch = 512;  // frames per pipelined round trip
constexpr int kPollMs = 200;    // XREAD BLOCK: the stream thread notices stop() within this

// Gives a node id its slot: the one it had, else the lowest free one. With ARGV[2] set, the
// slot this process already uses is re-asserted (Redis lost the hashes): -1 if another id
// took it meanwhile. -2: every slot is taken.
constexpr const char* kSlotScript = R"lua(
local s = redis.call('HGET', KEYS[1], ARGV[1])
if s then return tonumber(s) end
if ARGV[2] ~= '' then
  local owner = redis.call('HGET', KEYS[2], ARGV[2])
  if owner and owner ~= ARGV[1] then return -1 end
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
  return tonumber(ARGV[2])
end
for i = 0, tonumber(ARGV[3]) - 1 do
  if redis.call('HSETNX', KEYS[2], tostring(i), ARGV[1]) == 1 then
    redis.call('HSET', KEYS[1], ARGV[1], tostring(i))
    return i
  end
end
return -2
)lua";

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

std::string_view reply_str(const redisReply* r) {
  if (r == nullptr || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS)) return {};
  return {r->str, r->len};
}

}  // namespace

RedisTransport::RedisTransport(ClusterConfig config)
    : config_(std::move(config)),
      incarnation_(make_incarnation()),
      sender_tag_(config_.node_id + "/" + incarnation_),
      lease_(config_.lease_ms),
      outbox_(config_.outbox_capacity) {
  config_.max_nodes = std::clamp<uint32_t>(config_.max_nodes, 2, kMaxNodeSlots);
  config_.queue_capacity = std::max<size_t>(config_.queue_capacity, 2);
  if (config_.queue_high_water == 0 || config_.queue_high_water > config_.queue_capacity / 2)
    config_.queue_high_water = config_.queue_capacity / 2;
  for (auto& s : state_) s.store(PeerState::kDown, std::memory_order_relaxed);
}

RedisTransport::~RedisTransport() { stop(); }

// --- joining ----------------------------------------------------------------------------------

bool RedisTransport::take_slot(RedisConnection& c, std::string& error) {
  RedisReply r;
  const std::string want = ever_joined_ ? self_str_ : std::string();
  const std::string max = std::to_string(config_.max_nodes);
  if (!c.command({"EVAL", kSlotScript, "2", config_.prefix + "slot_of", config_.prefix + "node_of",
                  config_.node_id, want, max},
                 r)) {
    error = c.error();
    return false;
  }
  if (r.is_error()) {
    error = std::string(r.str());
    return false;
  }
  const long long slot = r.integer();
  if (slot == -2) {
    error = fmt::format("all {} node slots are taken by other node ids (cluster.max_nodes; the ids "
                        "are in {}slot_of)", config_.max_nodes, config_.prefix);
    return false;
  }
  if (slot == -1 || slot < 0 || (ever_joined_ && static_cast<PeerId>(slot) != self_)) {
    // Redis lost the slot hashes and another id took ours: two nodes now share a slot.
    spdlog::error("cluster: node '{}' holds slot {} but Redis gives it to another node id; restart "
                  "this node", config_.node_id, self_);
    return true;
  }
  self_ = static_cast<PeerId>(slot);
  self_str_ = std::to_string(self_);
  return true;
}

std::string RedisTransport::open() {
  const uint64_t give_up = now_ms() + config_.join_wait_ms;
  uint32_t backoff = kBackoffMinMs;
  std::string error;
  for (;;) {
    if (cmd_.connect(config_.redis, config_.redis_timeout_ms,
                     fmt::format("tcpms:{}:command", config_.node_id))) {
      if (take_slot(cmd_, error)) break;
      if (error.find("slots are taken") != std::string::npos) return error;
    } else {
      error = cmd_.error();
    }
    cmd_.close();
    if (now_ms() >= give_up)
      return fmt::format("cannot reach Redis at {} to join the cluster ({}); a node needs Redis "
                         "once at start to get its slot", config_.redis.to_string(), error);
    spdlog::warn("cluster: waiting for Redis at {} ({})", config_.redis.to_string(), error);
    ::usleep(backoff * 1000);
    backoff = std::min(backoff * 2, kBackoffMaxMs);
  }
  live_.store(uint64_t{1} << self_, std::memory_order_relaxed);
  {
    std::lock_guard lock(names_mu_);
    names_[self_] = config_.node_id;
  }
  spdlog::info("cluster: node '{}' is peer slot {}", config_.node_id, self_);
  return {};
}

void RedisTransport::start() {
  if (running_.exchange(true)) return;
  timer_thread_ = std::thread([this] { timer_main(); });
  command_thread_ = std::thread([this] { command_main(); });
  stream_thread_ = std::thread([this] { stream_main(); });
  // The first join and scan, so the node knows its peers before it says it is listening.
  std::unique_lock lock(stop_mu_);
  stop_cv_.wait_for(lock, std::chrono::milliseconds(config_.redis_timeout_ms),
                    [this] { return first_attempt_done_; });
}

void RedisTransport::stop() {
  if (stopping_.exchange(true)) return;
  { std::lock_guard lock(queue_mu_); }
  queue_cv_.notify_all();
  { std::lock_guard lock(stop_mu_); }
  stop_cv_.notify_all();
  { std::lock_guard lock(timer_mu_); }
  timer_cv_.notify_all();
  if (command_thread_.joinable()) command_thread_.join();
  if (stream_thread_.joinable()) stream_thread_.join();
  if (timer_thread_.joinable()) timer_thread_.join();
  std::lock_guard lock(timer_mu_);
  timers_.clear();
}

// --- Transport (any thread) -------------------------------------------------------------------

routing::PeerId RedisTransport::home_of(std::string_view, uint64_t key) const {
  return rendezvous_home(key, live_.load(std::memory_order_acquire));
}

routing::PeerId RedisTransport::home_with(uint64_t key, routing::PeerId peer) const {
  if (peer >= kMaxNodeSlots) return kNoPeer;
  return rendezvous_home(key, live_.load(std::memory_order_acquire) | uint64_t{1} << peer);
}

bool RedisTransport::send(routing::PeerId to, SharedBytes frame) {
  if (to >= config_.max_nodes || to == self_ || stopping_.load(std::memory_order_relaxed)) return false;
  if (state_[to].load(std::memory_order_acquire) == PeerState::kDown) return false;
  if (!command_up_.load(std::memory_order_acquire)) {
    metrics_.dropped_redis_down.fetch_add(1, std::memory_order_relaxed);
    mark_lost(to);
    return false;
  }
  {
    std::lock_guard lock(queue_mu_);
    const PeerState s = state_[to].load(std::memory_order_acquire);
    if (s == PeerState::kDown) return false;
    if (queue_.size() + held_[to].size() >= config_.queue_capacity) {
      metrics_.dropped_queue_full.fetch_add(1, std::memory_order_relaxed);
      mark_lost(to);
      resend_wanted_.store(true, std::memory_order_relaxed);
      return false;
    }
    // While a peer is being told everything (on_peer_up), what other threads send it waits
    // until that telling is queued: it must come first (transport.h).
    if (s == PeerState::kOpening && opener_[to].load(std::memory_order_relaxed) != std::this_thread::get_id()) {
      held_[to].push_back({to, std::move(frame), false});
      return true;
    }
    queue_.push_back({to, std::move(frame), false});
    metrics_.queue_depth.store(queue_.size(), std::memory_order_relaxed);
  }
  queue_cv_.notify_one();
  return true;
}

bool RedisTransport::backed_up() const {
  return command_up_.load(std::memory_order_relaxed) &&
         metrics_.queue_depth.load(std::memory_order_relaxed) >= config_.queue_high_water;
}

bool RedisTransport::run_after(uint32_t delay_ms, std::function<void()> task) {
  if (stopping_.load(std::memory_order_relaxed)) return false;
  {
    std::lock_guard lock(timer_mu_);
    timers_.emplace(now_ms() + delay_ms, std::move(task));
  }
  timer_cv_.notify_one();
  return true;
}

void RedisTransport::timer_main() {
  std::unique_lock lock(timer_mu_);
  while (!stopping_.load()) {
    if (timers_.empty()) {
      timer_cv_.wait(lock, [this] { return stopping_.load() || !timers_.empty(); });
      continue;
    }
    const uint64_t due = timers_.begin()->first, now = now_ms();
    if (due > now) {
      timer_cv_.wait_for(lock, std::chrono::milliseconds(due - now));
      continue;
    }
    auto task = std::move(timers_.begin()->second);
    timers_.erase(timers_.begin());
    lock.unlock();
    task();
    lock.lock();
  }
}

// --- peers ------------------------------------------------------------------------------------

std::string RedisTransport::name_of(routing::PeerId peer) const {
  std::lock_guard lock(names_mu_);
  return names_[peer];
}

void RedisTransport::peer_down_locked(routing::PeerId peer, bool coming_back) {
  if (state_[peer].load(std::memory_order_relaxed) == PeerState::kDown) return;
  {
    std::lock_guard lock(queue_mu_);
    state_[peer].store(PeerState::kDown, std::memory_order_release);
    held_[peer].clear();
  }
  // A peer taken down only to be brought up again at once (it restarted, or said "up") keeps
  // its place in the homes: the ids it is home of do not move away and back.
  if (!coming_back) live_.fetch_and(~(uint64_t{1} << peer), std::memory_order_acq_rel);
  lost_[peer].store(false, std::memory_order_relaxed);
  metrics_.nodes_alive.fetch_sub(1, std::memory_order_relaxed);
  if (coming_back)
    spdlog::debug("cluster: node '{}' (slot {}) is told everything again", name_of(peer), peer);
  else
    spdlog::info("cluster: node '{}' (slot {}) is down", name_of(peer), peer);
  if (receiver_) receiver_->on_peer_down(peer);
}

void RedisTransport::peer_up_locked(routing::PeerId peer, bool tell) {
  const bool was_up = state_[peer].load(std::memory_order_relaxed) != PeerState::kDown;
  {
    std::lock_guard lock(queue_mu_);
    opener_[peer].store(std::this_thread::get_id(), std::memory_order_relaxed);
    state_[peer].store(PeerState::kOpening, std::memory_order_release);
    // "up" first: the peer forgets what it knew of us before the rest arrives.
    if (tell) queue_.push_back({peer, SharedBytes(), true});
  }
  queue_cv_.notify_one();
  live_.fetch_or(uint64_t{1} << peer, std::memory_order_acq_rel);
  lost_[peer].store(false, std::memory_order_relaxed);
  if (!was_up) {
    metrics_.nodes_alive.fetch_add(1, std::memory_order_relaxed);
    spdlog::info("cluster: node '{}' (slot {}) is up", name_of(peer), peer);
  }
  if (receiver_) receiver_->on_peer_up(peer);
  {
    // What other threads sent meanwhile goes after the telling, in the order they sent it.
    std::lock_guard lock(queue_mu_);
    for (Outgoing& o : held_[peer]) queue_.push_back(std::move(o));
    held_[peer].clear();
    state_[peer].store(PeerState::kUp, std::memory_order_release);
  }
  queue_cv_.notify_one();
}

void RedisTransport::resend_to_lost() {
  if (!resend_wanted_.exchange(false, std::memory_order_acq_rel) || !command_up_.load()) return;
  // After a lapsed lease the others may have taken this node down and moved its homes: what
  // this node knew of each of them (its directory's entries they held included) goes too, and
  // both sides tell each other everything.
  const bool rejoined = rejoined_.exchange(false, std::memory_order_acq_rel);
  std::lock_guard lock(members_mu_);
  for (PeerId p = 0; p < config_.max_nodes; ++p) {
    if (p == self_ || state_[p].load(std::memory_order_relaxed) != PeerState::kUp) continue;
    if (!lost_[p].exchange(false, std::memory_order_relaxed) && !rejoined) continue;
    spdlog::info("cluster: frames to node '{}' were lost; telling it everything again", name_of(p));
    if (rejoined) peer_down_locked(p, true);
    peer_up_locked(p, true);
  }
}

// --- command thread ---------------------------------------------------------------------------

void RedisTransport::wait_backoff(uint32_t ms) {
  std::unique_lock lock(stop_mu_);
  stop_cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stopping_.load(); });
}

void RedisTransport::first_attempt_over() {
  {
    std::lock_guard lock(stop_mu_);
    if (first_attempt_done_) return;
    first_attempt_done_ = true;
  }
  stop_cv_.notify_all();
}

void RedisTransport::lost(const char* what) {
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

void RedisTransport::drop_queued() {
  std::deque<Outgoing> dropped;
  {
    std::lock_guard lock(queue_mu_);
    dropped.swap(queue_);
    metrics_.queue_depth.store(0, std::memory_order_relaxed);
  }
  for (const Outgoing& o : dropped) {
    if (!o.control) metrics_.dropped_redis_down.fetch_add(1, std::memory_order_relaxed);
    mark_lost(o.to);
  }
  if (!dropped.empty()) resend_wanted_.store(true, std::memory_order_relaxed);
}

bool RedisTransport::run(const std::vector<RedisCommand>& cmds, std::vector<RedisReply>& replies) {
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

bool RedisTransport::join() {
  metrics_.rebuilds.fetch_add(1, std::memory_order_relaxed);
  std::string error;
  if (!take_slot(cmd_, error)) return false;
  const std::string lease = std::to_string(lease_.lease_ms());
  std::vector<RedisCommand> cmds;
  const std::string stream_key = key("stream", config_.node_id);
  const std::string node_key = key("node", config_.node_id);
  const std::string value = self_str_ + " " + incarnation_;
  // The first time in this process: what an earlier process with our node id left unread is
  // not for us (its peers were told nothing about this incarnation). Later it is ours: kept.
  if (!joined_.load(std::memory_order_relaxed)) cmds.push_back({"DEL", stream_key});
  cmds.push_back({"SET", node_key, value, "PX", lease});
  std::vector<RedisReply> replies;
  if (!run(cmds, replies)) return false;
  lease_.refreshed(now_ms());
  ever_joined_ = true;
  if (!joined_.exchange(true, std::memory_order_acq_rel)) {
    std::lock_guard lock(stop_mu_);  // wakes the stream thread waiting for it
  }
  stop_cv_.notify_all();
  return true;
}

bool RedisTransport::refresh() {
  const std::string lease = std::to_string(lease_.lease_ms());
  std::vector<RedisReply> r;
  // SET ... GET answers nil when our key was gone: it expired (we were cut off longer than the
  // lease) or Redis lost its data. Either way the peers may have dropped us, or lost what we
  // sent: we join again and tell every peer "up".
  if (!run({{"SET", key("node", config_.node_id), self_str_ + " " + incarnation_, "PX", lease, "GET"},
            {"PEXPIRE", key("stream", config_.node_id), lease}},
           r))
    return false;
  if (r[0].is_nil()) {
    spdlog::warn("cluster: this node's lease was gone from Redis; joining again");
    if (!join()) return false;
    rejoined_.store(true, std::memory_order_relaxed);
    resend_wanted_.store(true, std::memory_order_relaxed);
  }
  lease_.refreshed(now_ms());
  return scan();
}

bool RedisTransport::scan() {
  const std::string pattern = config_.prefix + "node:*";
  std::string cursor = "0";
  std::vector<std::string> keys;
  std::vector<RedisReply> r;
  do {
    if (!run({{"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"}}, r)) return false;
    if (r[0].size() != 2) return false;
    cursor = std::string(r[0].element_str(0));
    for (size_t i = 0; i < r[0].nested_size(1); ++i) keys.emplace_back(r[0].nested_str(1, i));
  } while (cursor != "0");
  std::array<std::string, kMaxNodeSlots> names, incarnations;
  if (!keys.empty()) {
    RedisCommand mget{"MGET"};
    for (const auto& k : keys) mget.push_back(k);
    if (!run({mget}, r)) return false;
    const size_t strip = config_.prefix.size() + 5;
    for (size_t i = 0; i < keys.size() && i < r[0].size(); ++i) {
      auto v = parse_node_value(r[0].element_str(i), config_.max_nodes);
      if (!v || v->slot == self_ || keys[i].size() <= strip) continue;
      names[v->slot] = keys[i].substr(strip);
      incarnations[v->slot] = std::string(v->incarnation);
    }
  }
  std::lock_guard lock(members_mu_);
  for (PeerId p = 0; p < config_.max_nodes; ++p) {
    if (p == self_) continue;
    const bool up = state_[p].load(std::memory_order_relaxed) != PeerState::kDown;
    if (names[p].empty()) {
      if (up) peer_down_locked(p);  // its lease ran out, or it said goodbye
      continue;
    }
    const uint64_t bit = uint64_t{1} << p;
    const bool retell = (retell_ & bit) != 0;
    retell_ &= ~bit;
    if (up && incarnations_[p] == incarnations[p]) {
      // A node continued from an upgrade's handover tells its state again (its Hello, its
      // interest, the ids homed there) without the "up" that would make the peer forget it.
      if (retell) peer_up_locked(p, false);
      continue;
    }
    if (up) peer_down_locked(p, true);  // it restarted
    {
      std::lock_guard names_lock(names_mu_);
      names_[p] = names[p];
    }
    incarnations_[p] = incarnations[p];
    peer_up_locked(p, true);
  }
  return true;
}

void RedisTransport::add_xadd(std::vector<RedisCommand>& cmds, std::deque<std::string>& store,
                              const std::string& target, std::string_view frame, uint64_t seq,
                              bool control) {
  const std::string& stream = store.emplace_back(key("stream", target));
  const std::string& max_len = store.emplace_back(std::to_string(config_.stream_max_len));
  const std::string& n = store.emplace_back(std::to_string(seq));
  RedisCommand c{"XADD", stream, "MAXLEN", "~", max_len, "*", "s", sender_tag_, "n", n, "p", self_str_};
  if (control) {
    c.push_back("c");
    c.push_back("up");
  } else {
    c.push_back("f");
    c.push_back(frame);
  }
  cmds.push_back(std::move(c));
  // A stream whose node died goes with its lease: its owner refreshes the TTL while alive,
  // and a sender whose XADD may have made it anew sets one, at most once per refresh period
  // and target (not once per frame).
  const uint64_t now = now_ms();
  uint64_t& last = stream_ttl_set_ms_[target];
  if (last == 0 || now - last >= lease_.lease_ms() / 3) {
    last = now;
    cmds.push_back({"PEXPIRE", stream, store.emplace_back(std::to_string(lease_.lease_ms()))});
  }
}

bool RedisTransport::process(std::deque<Outgoing>& batch) {
  std::vector<RedisCommand> cmds;
  std::deque<std::string> store;  // owns strings the commands point into
  in_flight_.clear();
  for (const Outgoing& o : batch) {
    const std::string target = name_of(o.to);
    if (target.empty()) continue;
    const uint64_t seq = ++seq_;
    const std::string_view frame = as_chars(o.frame.view());
    add_xadd(cmds, store, target, frame, seq, o.control);
    // Kept for a retry if this round trip fails (same sequence: never delivered twice).
    in_flight_.push_back({target, o.control ? nullptr : std::make_shared<const std::string>(frame), seq,
                          o.control});
    if (!o.control) {
      metrics_.messages_out.fetch_add(1, std::memory_order_relaxed);
      metrics_.bytes_out.fetch_add(frame.size(), std::memory_order_relaxed);
    }
  }
  std::vector<RedisReply> replies;
  if (!run(cmds, replies)) return false;
  in_flight_.clear();
  return true;
}

bool RedisTransport::flush_outbox() {
  while (!outbox_.empty()) {
    auto items = outbox_.take(kBatch);
    std::vector<RedisCommand> cmds;
    std::deque<std::string> store;
    for (const auto& item : items)
      add_xadd(cmds, store, item.target, item.frame ? std::string_view(*item.frame) : std::string_view(),
               item.seq, item.control);
    std::vector<RedisReply> replies;
    if (!run(cmds, replies)) {
      metrics_.dropped_failed.fetch_add(outbox_.put_back(std::move(items)), std::memory_order_relaxed);
      metrics_.outbox_depth.store(outbox_.size(), std::memory_order_relaxed);
      return false;
    }
    metrics_.outbox_retried.fetch_add(items.size(), std::memory_order_relaxed);
    metrics_.outbox_depth.store(outbox_.size(), std::memory_order_relaxed);
  }
  return true;
}

void RedisTransport::command_main() {
  uint32_t backoff = kBackoffMinMs;
  bool ever_connected = false;
  std::deque<Outgoing> batch;
  while (!stopping_) {
    if (!cmd_.connected()) {
      if (ever_connected || down_since_ms_ != 0) first_attempt_over();
      if (!cmd_.connect(config_.redis, config_.redis_timeout_ms,
                        fmt::format("tcpms:{}:command", config_.node_id))) {
        metrics_.redis_errors.fetch_add(1, std::memory_order_relaxed);
        if (down_since_ms_ == 0) {
          down_since_ms_ = now_ms();
          dropped_at_down_ = metrics_.dropped_redis_down.load() + metrics_.dropped_failed.load();
          spdlog::warn("cluster: cannot reach Redis at {} ({}); serving local clients only, retrying",
                       config_.redis.to_string(), cmd_.error());
        }
        drop_queued();
        wait_backoff(backoff);
        backoff = std::min(backoff * 2, kBackoffMaxMs);
        continue;
      }
    }
    if (!command_up_.load(std::memory_order_acquire)) {
      backoff = kBackoffMinMs;
      // A lapsed lease (or a first join): the peers may have dropped us; tell them all.
      const bool rejoin = !ever_connected || lease_.must_rebuild(now_ms());
      if (!join()) {
        lost("joining");
        continue;
      }
      if (!flush_outbox()) {
        lost("resending failed batches");
        continue;
      }
      if (ever_connected) metrics_.redis_reconnects.fetch_add(1, std::memory_order_relaxed);
      if (rejoin && ever_connected) rejoined_.store(true, std::memory_order_relaxed);
      resend_wanted_.store(true, std::memory_order_relaxed);
      if (down_since_ms_ != 0) {
        const uint64_t dropped =
            metrics_.dropped_redis_down.load() + metrics_.dropped_failed.load() - dropped_at_down_;
        spdlog::info("cluster: Redis at {} {} after {} ms; {} messages could not cross meanwhile; "
                     "the nodes they were for are told everything again",
                     config_.redis.to_string(), ever_connected ? "back" : "reached",
                     now_ms() - down_since_ms_, dropped);
      } else {
        spdlog::info("cluster: node '{}' {} through Redis at {}", config_.node_id,
                     continued_ ? "goes on" : "joined", config_.redis.to_string());
      }
      ever_connected = true;
      down_since_ms_ = 0;
      command_up_.store(true, std::memory_order_release);
      metrics_.command_link_up.store(true, std::memory_order_relaxed);
      if (!scan()) {
        lost("scanning nodes");
        continue;
      }
      first_attempt_over();
    }
    resend_to_lost();
    batch.clear();
    {
      std::unique_lock lock(queue_mu_);
      const uint64_t now = now_ms();
      const uint64_t wait_ms = lease_.next_refresh_ms() > now ? lease_.next_refresh_ms() - now : 0;
      if (output_held_ && !output_parked_) {
        // Everything taken before has been written (or waits in the outbox): the handover
        // may read the sequence number now.
        output_parked_ = true;
        output_clean_ = outbox_.empty() && command_up_.load(std::memory_order_acquire);
        queue_cv_.notify_all();
      }
      queue_cv_.wait_for(lock, std::chrono::milliseconds(wait_ms), [&] {
        return stopping_.load() || (!queue_.empty() && !output_held_) ||
               resend_wanted_.load(std::memory_order_relaxed) || (output_held_ && !output_parked_);
      });
      while (!output_held_ && !queue_.empty() && batch.size() < kBatch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      metrics_.queue_depth.store(queue_.size(), std::memory_order_relaxed);
    }
    // The batch first: a refresh that fails after it loses nothing of it.
    bool ok = batch.empty() || process(batch);
    if (ok && lease_.refresh_due(now_ms())) ok = refresh();
    if (!ok) {
      // Frames the failed round trip carried wait in the outbox for the reconnection (Redis
      // may have written some of them already: their sequence numbers let the receivers drop
      // the copies). Frames of the batch it never reached are lost: their peers hear "up".
      size_t dropped = 0;
      for (auto& item : in_flight_) dropped += outbox_.push(std::move(item));
      in_flight_.clear();
      if (dropped != 0) {
        metrics_.dropped_failed.fetch_add(dropped, std::memory_order_relaxed);
        for (PeerId p = 0; p < config_.max_nodes; ++p)
          if (p != self_) mark_lost(p);
      }
      metrics_.outbox_depth.store(outbox_.size(), std::memory_order_relaxed);
      lost("a batch");
    }
  }
  {
    std::lock_guard lock(queue_mu_);
    queue_.clear();
  }
  if (!outbox_.empty()) {
    spdlog::warn("cluster: {} frames of failed batches not sent (stopping)", outbox_.size());
    metrics_.dropped_failed.fetch_add(outbox_.size(), std::memory_order_relaxed);
    outbox_.take(outbox_.size());
  }
  if (cmd_.connected() && !handed_over_.load()) {
    // Others drop us at their next scan instead of when the lease runs out.
    std::vector<RedisReply> r;
    run({{"DEL", key("node", config_.node_id), key("stream", config_.node_id)}}, r);
    cmd_.close();
  }
  command_up_.store(false);
  metrics_.command_link_up.store(false, std::memory_order_relaxed);
}

// --- stream thread ----------------------------------------------------------------------------

void RedisTransport::stream_main() {
  RedisConnection rd;
  DuplicateFilter& seen = seen_;
  const std::string stream = key("stream", config_.node_id);
  const std::string block = std::to_string(kPollMs);
  std::string& last_id = last_read_id_;
  uint32_t backoff = kBackoffMinMs;
  bool warned = false;
  std::vector<std::string_view> fields;
  while (!stopping_) {
    {
      // The handover holds the input: what was read is handled; nothing more is read until
      // it is released (a rollback) or this process stops (the new one reads on).
      std::unique_lock lock(stop_mu_);
      if (input_held_) {
        input_parked_ = true;
        stop_cv_.notify_all();
        stop_cv_.wait(lock, [this] { return stopping_.load() || !input_held_; });
        input_parked_ = false;
        continue;
      }
    }
    if (!joined_.load(std::memory_order_acquire)) {
      std::unique_lock lock(stop_mu_);
      stop_cv_.wait_for(lock, std::chrono::milliseconds(kPollMs),
                        [this] { return stopping_.load() || joined_.load(); });
      continue;
    }
    if (!rd.connected()) {
      if (!rd.connect(config_.redis, config_.redis_timeout_ms,
                      fmt::format("tcpms:{}:stream", config_.node_id))) {
        rd.close();
        metrics_.redis_errors.fetch_add(1, std::memory_order_relaxed);
        wait_backoff(backoff);
        backoff = std::min(backoff * 2, kBackoffMaxMs);
        continue;
      }
      backoff = kBackoffMinMs;
      warned = false;
      // A stream made anew (expired with a lapsed lease, Redis restarted empty or failed over
      // to a machine whose clock is behind) may number its entries below the last id read:
      // then everything in it is news. Redis answers an error for a missing key.
      RedisReply info;
      if (!rd.command({"XINFO", "STREAM", stream}, info)) {
        wait_backoff(kBackoffMinMs);
        continue;
      }
      std::string_view generated;
      for (size_t k = 0; info.ok() && k + 1 < info.size(); k += 2)
        if (info.element_str(k) == "last-generated-id") generated = info.element_str(k + 1);
      if (!info.ok() || stream_id_less(generated, last_id)) last_id = "0-0";
      metrics_.stream_link_up.store(true, std::memory_order_relaxed);
    }
    RedisReply r;
    if (!rd.command({"XREAD", "COUNT", "512", "BLOCK", block, "STREAMS", stream, last_id}, r)) {
      metrics_.stream_link_up.store(false, std::memory_order_relaxed);
      metrics_.redis_errors.fetch_add(1, std::memory_order_relaxed);
      if (!warned) spdlog::warn("cluster: reading this node's stream failed ({}); reconnecting", rd.error());
      warned = true;
      wait_backoff(kBackoffMinMs);  // what is sent meanwhile waits in the stream
      continue;
    }
    if (r.is_nil()) continue;
    if (r.is_error()) {
      metrics_.redis_errors.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("cluster: XREAD on {}: {}", stream, r.str());
      wait_backoff(backoff);
      continue;
    }
    // [[stream, [[id, [field, value, ...]], ...]]]
    const redisReply* streams = r.raw();
    if (streams == nullptr || streams->type != REDIS_REPLY_ARRAY) continue;
    for (size_t i = 0; i < streams->elements; ++i) {
      const redisReply* s = streams->element[i];
      if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 || s->element[1]->type != REDIS_REPLY_ARRAY) continue;
      const redisReply* entries = s->element[1];
      for (size_t j = 0; j < entries->elements; ++j) {
        const redisReply* e = entries->element[j];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) continue;
        last_id = std::string(reply_str(e->element[0]));
        const redisReply* f = e->element[1];
        if (f->type != REDIS_REPLY_ARRAY) continue;
        fields.clear();
        for (size_t k = 0; k < f->elements; ++k) fields.push_back(reply_str(f->element[k]));
        metrics_.stream_entries_in.fetch_add(1, std::memory_order_relaxed);
        auto entry = parse_entry(fields, config_.max_nodes);
        if (!entry || entry->slot == self_) {
          metrics_.stream_bad.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        if (!seen.accept(entry->sender, entry->seq)) {
          metrics_.stream_duplicates.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        if (entry->up) {
          // The sender (re)joined, or lost frames to us: what we knew of it goes, and we tell
          // it everything again (it does the same after this entry).
          std::lock_guard lock(members_mu_);
          if (state_[entry->slot].load(std::memory_order_relaxed) != PeerState::kDown)
            peer_down_locked(entry->slot, true);
          {
            std::lock_guard names_lock(names_mu_);
            names_[entry->slot] = std::string(entry->node());
          }
          incarnations_[entry->slot] = std::string(entry->incarnation());
          peer_up_locked(entry->slot, false);
          continue;
        }
        metrics_.messages_in.fetch_add(1, std::memory_order_relaxed);
        metrics_.bytes_in.fetch_add(entry->frame.size(), std::memory_order_relaxed);
        if (receiver_) receiver_->on_frame(entry->slot, as_bytes(entry->frame));
      }
    }
  }
  metrics_.stream_link_up.store(false, std::memory_order_relaxed);
}

// --- the upgrade handover ---------------------------------------------------------------------

void RedisTransport::hold_input() {
  std::unique_lock lock(stop_mu_);
  input_held_ = true;
  stop_cv_.notify_all();
  if (!stream_thread_.joinable()) return;
  // Within one XREAD BLOCK (kPollMs) and the handling of what it returned.
  stop_cv_.wait(lock, [this] { return input_parked_ || stopping_.load(); });
}

std::string RedisTransport::hold_output() {
  std::unique_lock lock(queue_mu_);
  output_held_ = true;
  output_parked_ = false;
  queue_cv_.notify_all();
  if (!command_thread_.joinable()) return "the cluster transport is not running";
  const auto limit = std::chrono::milliseconds(2 * config_.redis_timeout_ms + kPollMs);
  if (!queue_cv_.wait_for(lock, limit, [this] { return output_parked_ || stopping_.load(); }) ||
      stopping_.load())
    return fmt::format("Redis at {} did not take this node's last frames within {} ms",
                       config_.redis.to_string(), limit.count());
  if (!output_clean_)
    return fmt::format("Redis at {} is unreachable or frames wait for a retry: the node's "
                       "sequence cannot be handed over", config_.redis.to_string());
  return {};
}

NodeContinuation RedisTransport::continuation() const {
  NodeContinuation c;
  c.incarnation = incarnation_;
  c.slot = self_;
  {
    std::lock_guard lock(queue_mu_);  // the command thread is parked: seq_ is still
    c.seq = seq_;
  }
  {
    std::lock_guard lock(stop_mu_);  // the stream thread is parked
    c.last_read_id = last_read_id_;
    for (const auto& [sender, seq] : seen_.last()) c.seen.emplace_back(sender, seq);
  }
  std::lock_guard lock(members_mu_);
  for (PeerId p = 0; p < config_.max_nodes; ++p) {
    if (p == self_ || state_[p].load(std::memory_order_relaxed) == PeerState::kDown) continue;
    c.peers.push_back({p, name_of(p), incarnations_[p]});
  }
  return c;
}

void RedisTransport::release_holds() {
  {
    std::lock_guard lock(stop_mu_);
    input_held_ = false;
  }
  stop_cv_.notify_all();
  {
    std::lock_guard lock(queue_mu_);
    output_held_ = false;
    output_parked_ = false;
  }
  queue_cv_.notify_all();
}

void RedisTransport::stop_handed_over() {
  handed_over_.store(true);
  spdlog::info("cluster: node '{}' goes on in the new process (slot {}, incarnation {})",
               config_.node_id, self_, incarnation_);
  stop();
}

std::string RedisTransport::continue_from(const NodeContinuation& c) {
  if (running_.load()) return "the cluster transport is already running";
  if (c.slot != self_)
    return fmt::format("the old process was slot {} and Redis gives node '{}' slot {}", c.slot,
                       config_.node_id, self_);
  incarnation_ = c.incarnation;
  sender_tag_ = config_.node_id + "/" + incarnation_;
  seq_ = c.seq;
  last_read_id_ = c.last_read_id;
  for (const auto& [sender, seq] : c.seen) seen_.remember(sender, seq);
  // Our stream holds what the peers sent since the old process stopped reading: not emptied.
  joined_.store(true, std::memory_order_release);
  ever_joined_ = true;
  continued_ = true;
  std::lock_guard lock(members_mu_);
  for (const NodeContinuation::Peer& p : c.peers) {
    if (p.slot >= config_.max_nodes || p.slot == self_) continue;
    {
      std::lock_guard names_lock(names_mu_);
      names_[p.slot] = p.name;
    }
    incarnations_[p.slot] = p.incarnation;
    state_[p.slot].store(PeerState::kUp, std::memory_order_release);
    live_.fetch_or(uint64_t{1} << p.slot, std::memory_order_acq_rel);
    metrics_.nodes_alive.fetch_add(1, std::memory_order_relaxed);
    retell_ |= uint64_t{1} << p.slot;
  }
  spdlog::info("cluster: node '{}' goes on from the old process (slot {}, incarnation {}, {} "
               "node(s) up)", config_.node_id, self_, incarnation_, c.peers.size());
  return {};
}

}  // namespace tcpms::cluster
