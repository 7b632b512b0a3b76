#include "broker/client_registry.h"

#include "broker/session.h"

namespace tcpms::broker {

ClientRegistry::Claim ClientRegistry::claim(std::string_view client_id, uint32_t loop,
                                            ConnId conn, const std::function<Session*()>& make) {
  Shard& sh = shard_for(client_id);
  std::lock_guard lock(sh.mu);
  auto it = sh.map.find(client_id);
  if (it == sh.map.end()) {
    Session* s = make();
    // Key the entry by the session's own copy of the id, which lives as long as the entry.
    sh.map.emplace(s->client_id(), RegistryEntry{s, conn, loop, false});
    return {ClaimKind::kCreated, RegistryEntry{s, conn, loop, false}};
  }
  const RegistryEntry& e = it->second;
  if (e.in_transit) return {ClaimKind::kBusy, e};
  if (e.loop == loop) return {ClaimKind::kLocal, e};
  return {ClaimKind::kRemote, e};
}

std::optional<RegistryEntry> ClientRegistry::find(std::string_view client_id) const {
  Shard& sh = shard_for(client_id);
  std::lock_guard lock(sh.mu);
  auto it = sh.map.find(client_id);
  if (it == sh.map.end()) return std::nullopt;
  return it->second;
}

bool ClientRegistry::begin_handover(std::string_view client_id, Session* s, uint32_t from_loop,
                                    uint32_t to_loop, ConnId new_conn) {
  Shard& sh = shard_for(client_id);
  std::lock_guard lock(sh.mu);
  auto it = sh.map.find(client_id);
  if (it == sh.map.end()) return false;
  RegistryEntry& e = it->second;
  if (e.session != s || e.loop != from_loop || e.in_transit) return false;
  e.loop = to_loop;
  e.conn = new_conn;
  e.in_transit = true;
  return true;
}

void ClientRegistry::finish_handover(std::string_view client_id, Session* s) {
  Shard& sh = shard_for(client_id);
  std::lock_guard lock(sh.mu);
  auto it = sh.map.find(client_id);
  if (it != sh.map.end() && it->second.session == s) it->second.in_transit = false;
}

void ClientRegistry::set_conn(std::string_view client_id, Session* s, ConnId conn) {
  Shard& sh = shard_for(client_id);
  std::lock_guard lock(sh.mu);
  auto it = sh.map.find(client_id);
  if (it != sh.map.end() && it->second.session == s) it->second.conn = conn;
}

bool ClientRegistry::remove(std::string_view client_id, Session* s) {
  Shard& sh = shard_for(client_id);
  std::lock_guard lock(sh.mu);
  auto it = sh.map.find(client_id);
  if (it == sh.map.end() || it->second.session != s) return false;
  sh.map.erase(it);
  return true;
}

bool ClientRegistry::owns(std::string_view client_id, Session* s, uint32_t loop) const {
  Shard& sh = shard_for(client_id);
  std::lock_guard lock(sh.mu);
  auto it = sh.map.find(client_id);
  return it != sh.map.end() && it->second.session == s && it->second.loop == loop &&
         !it->second.in_transit;
}

void ClientRegistry::for_each_owned_by(uint32_t loop,
                                       const std::function<void(const RegistryEntry&)>& visit) const {
  for (auto& sh : shards_) {
    std::lock_guard lock(sh.mu);
    for (const auto& [_, e] : sh.map)
      if (e.loop == loop && !e.in_transit) visit(e);
  }
}

size_t ClientRegistry::size() const {
  size_t n = 0;
  for (auto& sh : shards_) {
    std::lock_guard lock(sh.mu);
    n += sh.map.size();
  }
  return n;
}

}  // namespace tcpms::broker
