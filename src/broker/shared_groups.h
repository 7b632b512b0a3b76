// SharedGroups: the process's shared subscriptions ("$share/{group}/{filter}", MQTT 5.0 §4.8.2;
// honoured for 3.1.1 clients too, as Mosquitto and EMQX do) and which other processes have
// members of each group.
//
// Each message matching a group goes to exactly one member (5.0 §4.8.2): the process where it
// is published picks, round robin over the group's members here and the other processes that
// have members (they tell every process when they gain their first member of a group or lose
// their last: Router::on_shared_group). A message picked for another process goes there
// (Router::shared_deliver), which picks one of its own members. A member that is offline or
// stalled (its output backlogged, its QoS 1/2 window full and a queue behind it) is skipped for
// the next one while another can take it; a member that leaves or goes offline hands its
// queued and unacknowledged messages of the group to the others (at least once: one it had
// received but not acknowledged may arrive twice).
//
// Costs: nothing for a publish while no group exists (one relaxed load); otherwise the topic is
// matched against each distinct shared filter (shared filters are few: a deployment has a
// handful of worker pools). A member costs one entry (24 bytes) in its group and one in its
// session's list.
//
// Thread rules: every method may be called from any thread (one mutex). A member's Session is
// only touched on its loop; others keep its pointer to compare and to post there, and check
// is_member() on that loop before using it (a member leaves on its own loop, before its session
// is freed).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mqtt/types.h"

namespace tcpms::broker {

struct Session;

inline constexpr uint16_t kLocalPeer = 0xFFFF;

class SharedGroups {
 public:
  struct Member {
    Session* session = nullptr;
    uint32_t loop = 0;  // EventLoop::index of the session's loop
    mqtt::QoS qos = mqtt::QoS::k0;
    uint8_t options = 0;       // SubRecord options (Retain As Published)
    uint32_t subscription_id = 0;
  };
  // Where one message goes for one group: a member here, or a peer that has members.
  struct Choice {
    uint32_t group = 0;
    uint16_t peer = kLocalPeer;  // kLocalPeer: `member`
    Member member;
    std::string share;   // for a peer
    std::string filter;
  };

  // --- members here (their loops) ---
  struct Joined {
    uint32_t group = 0;
    bool first_here = false;  // the router tells the peers
    bool replaced = false;    // the session was a member already (QoS and options updated)
  };
  Joined join(std::string_view share, std::string_view filter, const Member& m);
  // False if `s` was not a member. `last_here`: the group has no member here any more.
  bool leave(uint32_t group, const Session* s, bool* last_here);
  bool is_member(uint32_t group, const Session* s) const;
  // The group's id, share name and filter (for a session's listings and images).
  bool describe(uint32_t group, std::string& share, std::string& filter) const;

  // --- members elsewhere (the router) ---
  void set_remote(uint16_t peer, std::string_view share, std::string_view filter, bool has);
  void forget_peer(uint16_t peer);
  // (share, filter) of every group with a member here, for a peer that comes up.
  std::vector<std::pair<std::string, std::string>> local_groups() const;
  // (share, filter) of every group `peer` has members of (an upgrade hands them over).
  std::vector<std::pair<std::string, std::string>> remote_groups(uint16_t peer) const;

  bool any() const noexcept { return groups_count_.load(std::memory_order_relaxed) != 0; }

  // One choice per group whose filter matches `topic`, round robin over its members here and
  // its peers.
  void choose(std::string_view topic, std::vector<Choice>& out);
  // For a message of `group` that cannot go to `exclude` (stalled, offline, leaving): the next
  // member here after it, or a peer, or nothing. `tried` counts members already tried here, so
  // a round ends.
  std::optional<Choice> next(uint32_t group, const Session* exclude, uint32_t tried);
  // A member here for a message a peer picked this process for; `group` gets the group's id.
  // Nothing when no member is here any more (then `other_peer` names another that has one).
  std::optional<Member> pick_here(std::string_view share, std::string_view filter, uint32_t& group,
                                  uint16_t exclude_peer, uint16_t& other_peer);
  size_t members_here(uint32_t group) const;
  // Other processes known to have members of the group.
  size_t peers_of(std::string_view share, std::string_view filter) const;
  size_t group_count() const noexcept { return groups_count_.load(std::memory_order_relaxed); }

 private:
  struct Group {
    uint32_t id = 0;
    std::string share, filter;
    std::vector<Member> members;  // here
    std::vector<uint16_t> peers;  // elsewhere, sorted
    size_t next = 0;              // round robin over members then peers
  };
  Group* find(std::string_view share, std::string_view filter);
  Group& get(std::string_view share, std::string_view filter);
  void drop_if_empty(Group& g);

  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Group>, std::less<>> by_name_;
  std::unordered_map<uint32_t, Group*> by_id_;
  uint32_t next_id_ = 1;
  std::atomic<size_t> groups_count_{0};
};

}  // namespace tcpms::broker
