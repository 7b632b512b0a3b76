// $SYS/ statistics topics, published as retained messages every --sys-interval seconds from
// the first loop (Mosquitto's names where they exist). Clients see them only by subscribing
// to "$SYS/..." explicitly: "#" and "+/..." do not match "$" topics [MQTT-4.7.2-1].
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace tcpms {
class Server;
}

namespace tcpms::broker {

class Broker;

// The (topic, value) pairs to publish now. Reads counters only (relaxed atomics).
std::vector<std::pair<std::string, std::string>> sys_topic_values(Broker& broker);

}  // namespace tcpms::broker
