// LoopCore: the private state of an EventLoop, kept out of the public header so that users
// of include/tcpms see the contract, not the machinery.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include <sys/epoll.h>

#include <openssl/bio.h>

#include "net/out_queue.h"
#include "net/pending_input.h"
#include "net/task_queue.h"
#include "net/timer_wheel.h"
#include "tls13/record.h"
#include "tcpms/connection.h"
#include "tcpms/unique_fd.h"

namespace tcpms::net {

struct TransportConfig;

// A connection's epoll registration, made once (edge-triggered; EPOLLOUT costs nothing until
// a write hits EAGAIN, so no epoll_ctl(MOD) per write).
inline constexpr uint32_t kConnEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

class LoopCore {
 public:
  // Connections live in fixed-size chunks so their addresses never move when the slab grows.
  static constexpr uint32_t kSlabChunkShift = 12;
  static constexpr uint32_t kSlabChunk = 1u << kSlabChunkShift;

  // Special epoll tags: a ConnId with generation 0 is never a connection.
  static constexpr uint32_t kWakeTag = ConnId::kMaxSlots - 1;

  struct SlotHook {
    LoopCore* core;
    TimerHook& operator()(uint32_t slot) const noexcept { return core->slot(slot).timer_; }
  };

  struct Listener {
    UniqueFd fd;
    uint8_t handler = 0;
    bool paused = false;
    bool held = false;     // out of the epoll set while too many connections are admitting
    bool is_unix = false;  // no TCP_NODELAY for accepted Unix sockets
    const TransportConfig* transport = nullptr;  // null: plain TCP, no cap of its own
  };

  struct LoopTimer {
    uint32_t period_ms = 0;  // 0: one-shot
    std::function<void()> task;
  };

  LoopCore() : wheel(1024, SlotHook{this}), read_buffer(new std::byte[65536]) {}
  ~LoopCore() {
    if (bio_method) BIO_meth_free(bio_method);
  }

  Connection& slot(uint32_t s) noexcept {
    return chunks[s >> kSlabChunkShift][s & (kSlabChunk - 1)];
  }
  // Returns a free slot index, growing the slab by one chunk if needed; false when full.
  bool allocate_slot(uint32_t& out) {
    if (!free_slots.empty()) {
      out = free_slots.back();
      free_slots.pop_back();
      return true;
    }
    if (slots_created == ConnId::kMaxSlots - 1) return false;  // last index is kWakeTag
    if ((slots_created >> kSlabChunkShift) == chunks.size()) {
      chunks.emplace_back(new Connection[kSlabChunk]);
    }
    out = slots_created++;
    return true;
  }

  UniqueFd epoll;
  TaskQueue tasks;
  std::vector<std::unique_ptr<Connection[]>> chunks;
  std::vector<uint32_t> free_slots;
  uint32_t slots_created = 0;

  // Work lists, processed in the iteration phases documented in event_loop.h.
  std::vector<uint32_t> closing;
  std::vector<uint32_t> read_again;
  std::vector<uint32_t> flush_list;
  std::vector<uint32_t> scratch;  // swap partner for the lists above

  TimerWheel<SlotHook> wheel;
  ChunkPool chunk_pool;
  std::vector<std::unique_ptr<OutQueue>> spare_queues;  // bounded cache of empty queues
  std::unique_ptr<std::byte[]> read_buffer;

  std::vector<Listener> listeners;
  std::atomic<int64_t>* shared_count = nullptr;
  int64_t max_connections = 0;
  uint64_t last_accept_warning_ms = 0;
  uint32_t admitting = 0;       // connections with Connection::kAdmitting
  bool listeners_held = false;  // some listener is held for admission (LoopConfig::max_admitting)
  uint64_t last_cap_warning_ms = 0;  // max_connections reached: logged at most every 10 s
  uint64_t last_stall_warning_ms = 0;  // a long iteration or a late wake-up: logged at most every 10 s
  uint64_t cap_rejected_unlogged = 0;
  bool wake_pending = false;  // the task queue's eventfd fired in this iteration

  // Transports (transport.cc). Buffers are made the first time a TLS connection needs them,
  // so a loop without TLS pays nothing.
  std::vector<const TransportConfig*> outbound;  // by handler index
  BIO_METHOD* bio_method = nullptr;              // the engine's BIO: OpenSSL reads `tls_in`
  ByteView tls_in;                               // ciphertext being fed to one SSL
  size_t tls_in_used = 0;
  bool tls_defer = false;                        // ciphertext written now goes out deferred
  std::unique_ptr<std::byte[]> plain_buffer;     // SSL_read target, kReadBufferBytes
  std::unique_ptr<std::byte[]> scratch_out;      // output gathered for one SSL_write / mask
  std::unique_ptr<tls13::Aead> aead;             // TLS 1.3 records sealed and opened here
  std::unique_ptr<std::byte[]> record_out;       // one sealed record, tls13::kMaxRecordBytes
  uint64_t ws_key_seed = 0;                      // client Sec-WebSocket-Key material
  // Memory given back after churn (EventLoop::trim_after_churn): a login or a close counts 1,
  // a TLS handshake (tens of KB of scratch) counts as a whole batch.
  static constexpr uint32_t kTrimChurn = 1000;
  static constexpr uint32_t kHandshakeChurn = kTrimChurn;
  static constexpr uint32_t kTrimChurnWhenQuiet = 64;  // a burst that ended
  uint32_t churn_since_trim = 0;
  uint64_t last_churn_ms = 0;
  bool trim_check_armed = false;  // a loop timer will look again (an idle loop may not wake)
  uint64_t last_trim_ms = 0;
  // Idle output chunks given back (ChunkPool::shed_unused) at most once a second, down to
  // these (a few hundred KB a loop instead of up to 12 MiB).
  static constexpr size_t kKeepIdleLargeChunks = 8;
  static constexpr size_t kKeepIdleSmallChunks = 64;
  uint64_t last_shed_ms = 0;
  bool shed_check_armed = false;

  std::map<uint64_t, LoopTimer> timers;              // by id
  std::set<std::pair<uint64_t, uint64_t>> timer_order;  // (due ms, id)
  uint64_t next_timer_id = 1;
};

}  // namespace tcpms::net
