#include "broker/client_registry.h"

#include "broker/open_table.h"
#include "broker/session.h"

namespace tcpms::broker {

// Slot choice uses the hash bits above those that chose the shard.
size_t ClientRegistry::Shard::probe(std::string_view id, size_t hash) const noexcept {
  const size_t mask = slots.size() - 1;
  for (size_t i = (hash / kShards) & mask;; i = (i + 1) & mask) {
    const Session* s = slots[i];
    if (s == nullptr || s->client_id() == id) return i;
  }
}

void ClientRegistry::Shard::insert(Session* s, size_t hash) {
  if (slots.empty() || (count + 1) * 4 > slots.size() * 3) {
    std::vector<Session*> old(slots.empty() ? 16 : slots.size() * 2, nullptr);
    old.swap(slots);
    for (Session* o : old)
      if (o != nullptr) slots[probe(o->client_id(), hash_of(o->client_id()))] = o;
  }
  slots[probe(s->client_id(), hash)] = s;
  ++count;
}

void ClientRegistry::Shard::erase(size_t index) noexcept {
  backward_shift_erase(slots, index,
                       [](const Session* s) { return hash_of(s->client_id()) / kShards; });
  --count;
}

RegistryEntry ClientRegistry::entry_of(const Session* s) noexcept {
  return RegistryEntry{const_cast<Session*>(s), s->reg.conn, s->reg.loop, s->reg.in_transit,
                       s->reg.ticket};
}

ClientRegistry::Claim ClientRegistry::claim(std::string_view client_id, uint32_t loop,
                                            ConnId conn, const std::function<Session*()>& make) {
  const size_t h = hash_of(client_id);
  Shard& sh = shard_for(h);
  std::lock_guard lock(sh.mu);
  Session* s = sh.slots.empty() ? nullptr : sh.slots[sh.probe(client_id, h)];
  if (s == nullptr) {
    s = make();
    s->reg = Session::RegistryFields{conn, static_cast<uint16_t>(loop), false, 0};
    sh.insert(s, h);
    return {ClaimKind::kCreated, entry_of(s)};
  }
  if (s->reg.in_transit) return {ClaimKind::kBusy, entry_of(s)};
  if (s->reg.loop == loop) return {ClaimKind::kLocal, entry_of(s)};
  return {ClaimKind::kRemote, entry_of(s)};
}

namespace {
// The registered session for `id` in a locked shard, or null.
template <typename Shard>
Session* lookup(const Shard& sh, std::string_view id, size_t h) {
  return sh.slots.empty() ? nullptr : sh.slots[sh.probe(id, h)];
}
}  // namespace

std::optional<RegistryEntry> ClientRegistry::find(std::string_view client_id) const {
  const size_t h = hash_of(client_id);
  Shard& sh = shard_for(h);
  std::lock_guard lock(sh.mu);
  Session* s = lookup(sh, client_id, h);
  if (s == nullptr) return std::nullopt;
  return entry_of(s);
}

bool ClientRegistry::begin_handover(std::string_view client_id, Session* s, uint32_t from_loop,
                                    uint32_t to_loop, ConnId new_conn) {
  const size_t h = hash_of(client_id);
  Shard& sh = shard_for(h);
  std::lock_guard lock(sh.mu);
  if (lookup(sh, client_id, h) != s || s->reg.loop != from_loop || s->reg.in_transit) return false;
  s->reg = Session::RegistryFields{new_conn, static_cast<uint16_t>(to_loop), true, s->reg.ticket};
  return true;
}

void ClientRegistry::finish_handover(std::string_view client_id, Session* s) {
  const size_t h = hash_of(client_id);
  Shard& sh = shard_for(h);
  std::lock_guard lock(sh.mu);
  if (lookup(sh, client_id, h) == s) s->reg.in_transit = false;
}

void ClientRegistry::set_ticket(std::string_view client_id, Session* s, uint32_t ticket) {
  const size_t h = hash_of(client_id);
  Shard& sh = shard_for(h);
  std::lock_guard lock(sh.mu);
  if (lookup(sh, client_id, h) == s) s->reg.ticket = ticket;
}

bool ClientRegistry::raise_ticket(std::string_view client_id, uint32_t ticket) {
  const size_t h = hash_of(client_id);
  Shard& sh = shard_for(h);
  std::lock_guard lock(sh.mu);
  Session* s = lookup(sh, client_id, h);
  if (s == nullptr) return false;
  if (s->reg.ticket == 0 || newer_claim(ticket, s->reg.ticket)) s->reg.ticket = ticket;
  return true;
}

void ClientRegistry::set_conn(std::string_view client_id, Session* s, ConnId conn) {
  const size_t h = hash_of(client_id);
  Shard& sh = shard_for(h);
  std::lock_guard lock(sh.mu);
  if (lookup(sh, client_id, h) == s) s->reg.conn = conn;
}

bool ClientRegistry::remove(std::string_view client_id, Session* s) {
  const size_t h = hash_of(client_id);
  Shard& sh = shard_for(h);
  std::lock_guard lock(sh.mu);
  if (sh.slots.empty()) return false;
  size_t i = sh.probe(client_id, h);
  if (sh.slots[i] != s || s == nullptr) return false;
  sh.erase(i);
  return true;
}

bool ClientRegistry::owns(std::string_view client_id, Session* s, uint32_t loop) const {
  const size_t h = hash_of(client_id);
  Shard& sh = shard_for(h);
  std::lock_guard lock(sh.mu);
  return lookup(sh, client_id, h) == s && s->reg.loop == loop && !s->reg.in_transit;
}

void ClientRegistry::for_each_owned_by(uint32_t loop,
                                       const std::function<void(const RegistryEntry&)>& visit) const {
  for (auto& sh : shards_) {
    std::lock_guard lock(sh.mu);
    for (const Session* s : sh.slots)
      if (s != nullptr && s->reg.loop == loop && !s->reg.in_transit) visit(entry_of(s));
  }
}

void ClientRegistry::for_each(const std::function<void(const RegistryEntry&)>& visit) const {
  for (auto& sh : shards_) {
    std::lock_guard lock(sh.mu);
    for (const Session* s : sh.slots)
      if (s != nullptr) visit(entry_of(s));
  }
}

size_t ClientRegistry::size() const {
  size_t n = 0;
  for (auto& sh : shards_) {
    std::lock_guard lock(sh.mu);
    n += sh.count;
  }
  return n;
}

}  // namespace tcpms::broker
