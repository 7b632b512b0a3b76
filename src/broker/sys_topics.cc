#include "broker/sys_topics.h"

#include <ctime>

#include "broker/broker.h"
#include "broker/mqtt_handler.h"
#include "tcpms/server.h"

namespace tcpms::broker {

std::vector<std::pair<std::string, std::string>> sys_topic_values(Broker& broker) {
  int64_t connected = 0, offline = 0, subs = 0, msg_in = 0, msg_out = 0, dropped = 0, queued = 0;
  for (MqttHandler* h : broker.handlers()) {
    if (h == nullptr) continue;
    const BrokerStats& s = h->stats();
    connected += static_cast<int64_t>(s.sessions_connected.get());
    offline += static_cast<int64_t>(s.sessions_offline.get());
    subs += static_cast<int64_t>(s.subscriptions.get());
    msg_in += static_cast<int64_t>(s.messages_in.get());
    msg_out += static_cast<int64_t>(s.messages_out.get());
    dropped += static_cast<int64_t>(s.qos0_dropped_slow.get() + s.queue_dropped.get());
    queued += static_cast<int64_t>(s.queued_messages.get());
  }
  uint64_t bytes_in = 0, bytes_out = 0;
  Server& server = broker.server();
  for (size_t i = 0; i < server.loop_count(); ++i) {
    bytes_in += server.loop(i).stats().bytes_in.get();
    bytes_out += server.loop(i).stats().bytes_out.get();
  }
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t now_ms = static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
  uint64_t uptime_s = (now_ms - broker.start_time_ms()) / 1000;
  return {
      {"$SYS/broker/version", broker.config().version},
      {"$SYS/broker/uptime", std::to_string(uptime_s) + " seconds"},
      {"$SYS/broker/clients/connected", std::to_string(connected)},
      {"$SYS/broker/clients/disconnected", std::to_string(offline)},
      {"$SYS/broker/clients/total", std::to_string(connected + offline)},
      {"$SYS/broker/subscriptions/count", std::to_string(subs)},
      {"$SYS/broker/retained messages/count", std::to_string(broker.retained().size())},
      {"$SYS/broker/messages/received", std::to_string(msg_in)},
      {"$SYS/broker/messages/sent", std::to_string(msg_out)},
      {"$SYS/broker/messages/dropped", std::to_string(dropped)},
      {"$SYS/broker/messages/queued", std::to_string(queued)},
      {"$SYS/broker/bytes/received", std::to_string(bytes_in)},
      {"$SYS/broker/bytes/sent", std::to_string(bytes_out)},
  };
}

void MqttHandler::publish_sys() {
  for (auto& [topic, value] : sys_topic_values(broker_)) {
    // Each process publishes its own figures, so they are not routed to the others.
    route(Message{SharedBytes::copy_of(as_bytes(topic)), SharedBytes::copy_of(as_bytes(value)), {},
                  mqtt::QoS::k0, true},
          true);
  }
}

}  // namespace tcpms::broker
