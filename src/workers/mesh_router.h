// MeshRouter: the broker's Router across the worker processes of one server (PeerMesh).
// A local publish goes once to every other worker, which delivers it to its own subscribers
// (and keeps it if retained, so every worker holds every retained message); a push to a
// client id this worker does not hold goes to all of them and the one holding it delivers.
//
// Every publish is broadcast: with the few workers one box runs (tens), that costs one
// shared frame and one enqueue per peer. Filtering by the peers' subscriptions would save
// that at the price of a route table per peer; it is left for when a box runs many workers.
//
// Sessions follow their client (docs/mqtt.md, "Sessions across processes"):
// - fetch_session asks every other worker (kSessionFetch, with a request id and the asking
//   worker's index). Each answers kSessionImage with the session's image
//   (Broker::export_session: it takes the client over and gives the session up) or with
//   "none". The fetch completes on the first image, once every peer said none, or after
//   kSessionFetchTimeoutMs, exactly once (peers whose link is down are not waited for);
//   an image is one frame (images are capped by mqtt.max_session_image_bytes, far below
//   PeerMesh::kMaxFrameBytes, which the links accept); an image that comes later is adopted
//   (Broker::adopt_session) so it is not lost.
// - on_client_connected announces the id (kConnected, with the connect's monotonic time):
//   every other worker closes and discards what it holds for that id (takeover across
//   workers [MQTT-3.1.4-2], a clean start discards the old session [MQTT-3.1.2-6]). Of two
//   connects racing on two workers the later one wins: a worker ignores an announcement
//   older than a connect of its own for that id within the last kRecentConnectMs.
//
// Thread rules: the Router methods are called from loop threads; receive() from the mesh's
// loop. Pending fetches and recent connects are under one mutex.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "broker/broker.h"
#include "broker/router.h"
#include "workers/peer_mesh.h"

namespace tcpms::workers {

// How long a CONNECT waits for the other workers' answers before going on without its
// session (a worker that is restarting never answers).
inline constexpr uint32_t kSessionFetchTimeoutMs = 3000;
// How long a local connect is remembered to settle a race with another worker's connect.
inline constexpr uint64_t kRecentConnectMs = 5000;

class MeshRouter final : public broker::Router {
 public:
  enum Kind : uint8_t {
    kPublish = 1,
    kPush = 2,
    kRawSend = 3,
    kRawClose = 4,
    kSessionFetch = 5,  // [u64 request][u32 asking worker][id]
    kSessionImage = 6,  // [u64 request][u8 has image][u16 len][id][image]
    kConnected = 7,     // [u64 monotonic ns][u32 worker][id]
  };
  // kSessionImage's second field: how the image comes.
  enum ImageForm : uint8_t {
    kNoImage = 0,
    kImageInline = 1,   // the rest of the frame
  };

  explicit MeshRouter(PeerMesh& mesh) : mesh_(mesh) {}

  void on_local_publish(const broker::Message& m) override;
  bool push_to_client(std::string_view client_id, const SharedBytes& topic,
                      const SharedBytes& payload, mqtt::QoS qos, PushDone done) override;
  void on_client_connected(std::string_view client_id) override;
  bool shares_sessions() const override { return mesh_.count() > 1; }
  void fetch_session(std::string_view client_id, SessionDone done) override;

  // Frames arriving from other workers (PeerMesh's receive callback).
  static void receive(broker::Broker* broker, Server& server, uint8_t kind, ByteView body);

 private:
  struct Fetch {
    SessionDone done;
    unsigned waiting = 0;  // peers yet to answer
  };
  void on_fetch(broker::Broker& broker, ByteView body);
  void on_image(broker::Broker& broker, ByteView body);
  void on_connected(broker::Broker& broker, ByteView body);
  void answer(unsigned to, uint64_t request, std::string_view client_id,
              const std::optional<std::string>& image);
  void expire(uint64_t request);
  // `answers` more peers answered (or will never: link down), one perhaps with an image.
  // Completes the fetch on an image (moved out of `image`) or when nobody is left to answer.
  // False if the fetch was no longer waiting (`image` is left alone).
  bool answered(uint64_t request, unsigned answers, std::optional<std::string>& image);
  // Under mu_: forgets connects older than kRecentConnectMs.
  void prune_recent(uint64_t now_ns);

  PeerMesh& mesh_;
  std::mutex mu_;
  uint64_t next_request_ = 1;
  std::unordered_map<uint64_t, Fetch> fetches_;
  // Local connects of the last kRecentConnectMs: id -> monotonic ns, and their order.
  std::unordered_map<std::string, uint64_t> recent_;
  std::deque<std::pair<uint64_t, std::string>> recent_order_;
};

// Frame bodies, shared by the router and the engine-level raw push (apps/server).
std::string encode_raw_send(ConnId id, ByteView bytes);

}  // namespace tcpms::workers
