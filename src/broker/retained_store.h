// RetainedStore: the last retained message per topic (3.1.1 §3.3.1.3), shared by all loops.
//
//   set("a/b", payload)    stores or replaces                      [MQTT-3.3.1-5]
//   set("a/b", empty)      clears; an empty payload is not stored  [MQTT-3.3.1-10], [MQTT-3.3.1-11]
//   match("a/#", visit)    what a new subscription receives         [MQTT-3.3.1-6]
//
// A tree of levels so a wildcard subscribe walks only the matching branches; "+"/"#" at the
// first level skip "$" topics [MQTT-4.7.2-1]. Retained writes are rare next to publishes, so
// one mutex guards it; readers copy out SharedBytes references and deliver outside the lock.
//
// Thread rules: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "broker/message.h"
#include "mqtt/types.h"
#include "tcpms/shared_bytes.h"

namespace tcpms::broker {

// A retained message is kept as it was published (retain set); an expired one is not
// delivered (the reader checks props.expires_at_ms).
using RetainedMessage = Message;

class RetainedStore {
 public:
  RetainedStore();
  ~RetainedStore();
  // Stores `payload` for `topic` (replacing), or clears the topic when the payload is empty.
  void set(const SharedBytes& topic, const SharedBytes& payload, mqtt::QoS qos,
           const MessageProps& props = {});
  void set(const Message& m) { set(m.topic, m.payload, m.qos, m.props); }
  // Appends every retained message whose topic matches `filter` (a valid filter) to `out`.
  void match(std::string_view filter, std::vector<RetainedMessage>& out) const;
  // Appends every retained message to `out`.
  void all(std::vector<RetainedMessage>& out) const;
  size_t size() const;
  size_t payload_bytes() const;

 private:
  struct Node {
    std::map<std::string, std::unique_ptr<Node>, std::less<>> children;
    RetainedMessage msg;
    bool has_msg = false;
  };
  void collect_all(const Node& n, std::vector<RetainedMessage>& out) const;
  void match_from(const Node& n, const std::vector<std::string_view>& levels, size_t i,
                  std::vector<RetainedMessage>& out) const;

  mutable std::mutex mu_;
  Node root_;
  size_t count_ = 0;
  size_t bytes_ = 0;
};

}  // namespace tcpms::broker
