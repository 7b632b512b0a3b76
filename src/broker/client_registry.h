// ClientRegistry: client id -> where its session lives (loop, connection), for every session
// in this process, connected or offline. Used for session takeover [MQTT-3.1.4-2], for pushing
// to one client by id, kicking, and listings.
//
// Sharded by hash of the client id, one mutex per shard, so CONNECT storms on different loops
// rarely meet on a lock. A shard is an open-addressing table of Session pointers (8 bytes a
// slot): the key is the session's own client id and the entry's fields live in the session
// (Session::reg), so a client costs no map node. An entry is always removed before its
// session is freed.
//
// Ownership protocol (see docs/mqtt.md, "Takeover across loops"): only the loop named in an
// entry may touch its session. A CONNECT on another loop asks that loop to hand the session
// over; the owner marks the entry in transit and names the new loop under the lock, then posts
// the session there; the new loop attaches it and clears the mark. A CONNECT that meets an
// entry in transit retries a moment later.
//
// Thread rules: every method may be called from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string_view>
#include <vector>

#include "tcpms/conn_id.h"

namespace tcpms::broker {

struct Session;

// True when claim ticket `a` is newer than `b` (tickets wrap: serial-number order).
inline bool newer_claim(uint32_t a, uint32_t b) noexcept { return static_cast<int32_t>(a - b) > 0; }

struct RegistryEntry {
  Session* session = nullptr;
  ConnId conn;            // invalid while the session is offline
  uint32_t loop = 0;      // loop index (EventLoop::index) owning the session
  bool in_transit = false;
  // The ticket of the claim this session was registered under with the router (0: none; see
  // Router::claim).
  uint32_t ticket = 0;
};

class ClientRegistry {
 public:
  static constexpr size_t kShards = 64;

  enum class ClaimKind : uint8_t {
    kCreated,  // no session existed: `fresh` was registered, owned by the caller's loop
    kLocal,    // a session exists on the caller's loop (entry.session)
    kRemote,   // a session exists on another loop (entry.loop)
    kBusy,     // that session is moving between loops: retry shortly
  };
  struct Claim {
    ClaimKind kind;
    RegistryEntry entry;
  };
  // Looks up `client_id`; if absent registers make() (a new Session with that id) for `loop`.
  Claim claim(std::string_view client_id, uint32_t loop, ConnId conn,
              const std::function<Session*()>& make);

  std::optional<RegistryEntry> find(std::string_view client_id) const;
  // The owner starts moving `s` to `to_loop`; false if the entry changed meanwhile.
  bool begin_handover(std::string_view client_id, Session* s, uint32_t from_loop,
                      uint32_t to_loop, ConnId new_conn);
  void finish_handover(std::string_view client_id, Session* s);
  // Records the router's ticket for the session's current registration.
  void set_ticket(std::string_view client_id, Session* s, uint32_t ticket);
  // The id's session, whichever it is now, takes `ticket` unless it has a newer one. False
  // when the id has no session here.
  bool raise_ticket(std::string_view client_id, uint32_t ticket);
  // Records the session's current connection (invalid id: offline).
  void set_conn(std::string_view client_id, Session* s, ConnId conn);
  // Removes the entry if it still names `s`.
  bool remove(std::string_view client_id, Session* s);
  // True if `s` is still registered as owned by `loop` and not in transit.
  bool owns(std::string_view client_id, Session* s, uint32_t loop) const;
  // Visits entries owned by `loop` (under each shard's lock: keep `visit` short).
  void for_each_owned_by(uint32_t loop, const std::function<void(const RegistryEntry&)>& visit) const;
  // Visits every entry (under each shard's lock: keep `visit` short).
  void for_each(const std::function<void(const RegistryEntry&)>& visit) const;
  size_t size() const;

 private:
  struct Shard {
    mutable std::mutex mu;
    std::vector<Session*> slots;  // power of two, at most 3/4 full; null: empty
    size_t count = 0;
    // Index of the slot holding `id`, or of the empty slot where it would go.
    size_t probe(std::string_view id, size_t hash) const noexcept;
    void insert(Session* s, size_t hash);
    void erase(size_t index) noexcept;
  };
  static size_t hash_of(std::string_view id) noexcept {
    return std::hash<std::string_view>{}(id);
  }
  Shard& shard_for(size_t hash) const noexcept { return shards_[hash % kShards]; }
  static RegistryEntry entry_of(const Session* s) noexcept;
  mutable std::array<Shard, kShards> shards_;
};

}  // namespace tcpms::broker
