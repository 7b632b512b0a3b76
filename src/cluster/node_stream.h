// Node-directed messages (publishes, pushes, session moves) go through one Redis Stream per
// receiving node, "<prefix>stream:<node>", rather than pub/sub, so a message sent while the
// receiver's reading connection is down waits in the stream until it reads again
// (docs/cluster.md, "Why a stream per node"). The pure parts, one job each:
//
//   entry fields   s = sender tag ("<node>/<incarnation>"), n = sequence (decimal), p = the
//                  sender's peer slot (decimal), then f = a routing frame (src/routing/frame.h)
//                  or c = "up" (the sender (re)joined or lost frames to this node: forget
//                  what it said and tell it everything again; redis_transport.h)
//   parse_entry    receiver: those fields, checked (fuzzed: tests/fuzz/stream_entry_fuzz.cc)
//   NodeValue      a node's lease key holds "<slot> <incarnation>"
//   DuplicateFilter  receiver: drops an entry whose sequence a sender already delivered, which
//                    is what a batch retried after an ambiguous failure produces
//   Outbox           sender: messages of a batch that failed, kept (bounded, oldest dropped
//                    first) and sent again, in order, once Redis is back
//
// Thread rules: not thread-safe; each object belongs to one cluster thread.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tcpms::cluster {

// Entry ids are "<ms>-<seq>", ms in the Redis server's clock. Numeric order; an unparsable
// id sorts first.
bool stream_id_less(std::string_view a, std::string_view b);
// The ms part of an entry id (0 if unparsable).
uint64_t stream_id_ms(std::string_view id);
// A session request whose requester gave up: older than its timeout in Redis' own clock
// (TIME against the entry id), so no node's clock has to agree with another's.
inline bool request_expired(std::string_view entry_id, uint64_t redis_now_ms, uint64_t timeout_ms) {
  const uint64_t at = stream_id_ms(entry_id);
  return at != 0 && redis_now_ms > at && redis_now_ms - at > timeout_ms;
}

// One stream entry, its fields checked. Views into the reply it was parsed from.
struct StreamEntry {
  std::string_view sender;  // "<node>/<incarnation>"
  uint64_t seq = 0;
  uint16_t slot = 0;        // the sender's peer slot
  bool up = false;          // a control entry "up" (then `frame` is empty)
  std::string_view frame;   // a routing frame
  // The node name in the sender tag (before its last '/').
  std::string_view node() const { return sender.substr(0, sender.rfind('/')); }
  std::string_view incarnation() const {
    const size_t slash = sender.rfind('/');
    return slash == std::string_view::npos ? std::string_view{} : sender.substr(slash + 1);
  }
};
// `fields` alternates names and values as XREAD returns them. nullopt when a field is missing
// or malformed (a slot at or above `slots`, a sequence that is not a decimal number, neither
// or both of f and c, a sender tag without '/').
std::optional<StreamEntry> parse_entry(const std::vector<std::string_view>& fields, uint32_t slots);

// A node's lease key's value.
struct NodeValue {
  uint16_t slot = 0;
  std::string_view incarnation;
};
std::optional<NodeValue> parse_node_value(std::string_view v, uint32_t slots);

class DuplicateFilter {
 public:
  // True if `seq` is news from `sender` (and remembers it). A sender's sequence grows with
  // every message it sends to any node, so the ones one node sees grow too.
  bool accept(std::string_view sender, uint64_t seq);
  size_t senders() const noexcept { return last_.size(); }
  // Every sender's last sequence, and a filter made of them: what a process that goes on
  // reading this stream after an upgrade must remember (continuation.h).
  const std::unordered_map<std::string, uint64_t>& last() const noexcept { return last_; }
  void remember(std::string sender, uint64_t seq) { last_[std::move(sender)] = seq; }

 private:
  std::unordered_map<std::string, uint64_t> last_;
};

class Outbox {
 public:
  struct Item {
    std::string target;  // receiving node
    std::shared_ptr<const std::string> frame;
    uint64_t seq = 0;
    bool control = false;  // a control entry "up" (frame unused)
  };
  explicit Outbox(size_t capacity) : capacity_(capacity) {}
  // Appends; returns how many of the oldest items were dropped to stay within capacity.
  size_t push(Item item);
  bool empty() const noexcept { return items_.empty(); }
  size_t size() const noexcept { return items_.size(); }
  // Up to `max` items from the front, oldest first.
  std::deque<Item> take(size_t max);
  // Puts items taken back in front (their retry failed again), keeping order; returns how
  // many of the oldest were dropped to stay within capacity.
  size_t put_back(std::deque<Item> items);

 private:
  size_t trim();
  size_t capacity_;
  std::deque<Item> items_;
};

}  // namespace tcpms::cluster
