// Router: how messages leave and enter this process (worker processes on one box, nodes
// through Redis). The broker core calls these hooks and nothing else; the default routes
// nowhere, so a single process works with no configuration.
//
// Thread rules: hooks are called on loop threads, concurrently from several loops: an
// implementation must be thread-safe. Calls into the broker go through Broker's thread-safe
// entry points (deliver_remote, publish, send_to_client).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "broker/message.h"
#include "mqtt/types.h"
#include "tcpms/shared_bytes.h"

namespace tcpms::broker {

class Router {
 public:
  virtual ~Router() = default;

  // Filter accounting costs a process-wide map; the broker keeps it only if asked.
  virtual bool wants_filter_events() const { return false; }
  // `filter` gained its first subscriber in this process / lost its last.
  virtual void on_filter_added(std::string_view filter) {}
  virtual void on_filter_removed(std::string_view filter) {}

  // A publish from a local client (or the control plane), after local delivery. A remote
  // publish arriving is handed to Broker::deliver_remote, which does not call this again.
  virtual void on_local_publish(const Message& m) {}

  // A client with this id connected in this process (its CONNECT was accepted) / its
  // connection here closed. Lets a router keep a registry outside the process and close the
  // same id elsewhere (takeover across nodes).
  virtual void on_client_connected(std::string_view client_id) {}
  // `session_kept`: its persistent session stays here, offline, until on_session_ended.
  virtual void on_client_disconnected(std::string_view client_id, bool session_kept) {}
  // An offline session left this process: discarded, taken over by a clean connect, or
  // exported to another process. (A clean session ends with its connection: no call.)
  virtual void on_session_ended(std::string_view client_id) {}

  // Push to a client that is not in this process. True if routed somewhere; then `done`
  // (when set) runs exactly once, on any thread, with what became of it.
  enum class PushOutcome : uint8_t {
    kHeld,        // a process holding that client id took it
    kNoSuchClient,  // no process holds that id
    kUnknown,     // routed, but the router cannot tell (broadcast, or no answer in time)
  };
  using PushDone = std::function<void(PushOutcome)>;
  virtual bool push_to_client(std::string_view client_id, const SharedBytes& topic,
                              const SharedBytes& payload, mqtt::QoS qos, PushDone done) {
    return false;
  }

  // --- persistent sessions across processes ---------------------------------------------
  // True when a session absent from this process may be held by another one, so a CONNECT
  // with CleanSession 0 asks for it (fetch_session) before its CONNACK.
  virtual bool shares_sessions() const { return false; }
  // Asks the other processes for `client_id`'s session. The holder closes the client's
  // connection there (takeover), gives the session up (Broker::export_session) and sends its
  // image (broker/session_image.h). `done` runs exactly once, on any thread: with the image,
  // or nullopt when nobody holds one, nobody answered in time, or the router is cut off.
  using SessionDone = std::function<void(std::optional<std::string> image)>;
  virtual void fetch_session(std::string_view client_id, SessionDone done) {
    done(std::nullopt);
  }
};

}  // namespace tcpms::broker
