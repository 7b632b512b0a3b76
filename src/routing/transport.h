// Transport: how the routing layer's frames (frame.h) travel between peers. Two are real:
// the worker mesh (src/workers/mesh_transport.h: Unix sockets between the processes of one
// server) and Redis streams (src/cluster: nodes on several machines); a third, in memory
// (memory_transport.h), lets unit tests run several routers in one process and decide when
// each frame arrives.
//
// What the routing layer needs from a transport, and no more:
// - send(peer, frame): the frame arrives whole and once, after every frame sent earlier to the
//   same peer (per-pair order), or not at all while the peer is down (then false, or lost
//   silently if the link breaks later: the layer copes with loss by its own timeouts and by
//   resending state when the peer comes back);
// - on_frame(from, bytes) for every frame that arrives, with the sender's id;
// - on_peer_up(peer) when frames can reach a peer again (a link made or remade): the layer
//   then sends what that peer must know of it (Hello first, then its interest and the client
//   ids homed there), which is why a transport must deliver frames sent from inside
//   on_peer_up before any other frame to that peer;
// - on_peer_down(peer) when they cannot;
// - timers, for requests that wait for an answer;
// - the home of a client id (directory.h). Over a fixed set of peers (the worker mesh) it is
//   home_of(id, peer_slots()) and never moves. Over peers that come and go (cluster nodes) a
//   transport decides it over the peers it knows to be up, and says so (homes_move()): the
//   layer then moves directory entries when a peer comes or goes (peer_router.h).
//
// Thread rules: send and run_after from any thread. The receiver's callbacks run on the
// transport's own thread(s), never while the transport holds a lock the receiver might need.
#pragma once

#include <cstdint>
#include <functional>

#include <string_view>

#include "routing/directory.h"
#include "routing/frame.h"
#include "tcpms/shared_bytes.h"

namespace tcpms::routing {

class Transport {
 public:
  class Receiver {
   public:
    virtual ~Receiver() = default;
    virtual void on_frame(PeerId from, ByteView frame) = 0;
    virtual void on_peer_up(PeerId peer) = 0;
    virtual void on_peer_down(PeerId peer) = 0;
  };

  virtual ~Transport() = default;
  // Set before start; the receiver outlives the transport's activity.
  virtual void set_receiver(Receiver* r) = 0;
  virtual PeerId self() const = 0;
  // Peer ids are below this; not all need exist or be up.
  virtual uint32_t peer_slots() const = 0;
  virtual bool send(PeerId to, SharedBytes frame) = 0;
  // True while frames wait to leave faster than they go: the sender should stop taking new
  // work that sends (publishers wait; TCP pushes back on them) rather than have send() refuse
  // frames once the queue is full. Read on every PUBLISH: an atomic load, no lock.
  virtual bool backed_up() const { return false; }
  // `task` runs on the transport's thread after `delay_ms`; false (task dropped) once stopping.
  virtual bool run_after(uint32_t delay_ms, std::function<void()> task) = 0;

  // The home of a client id; `key` is client_key(client_id) (directory.h). A transport whose
  // homes move decides by `key` alone (the directory keeps keys, not ids).
  virtual PeerId home_of(std::string_view client_id, uint64_t key) const {
    (void)key;
    return routing::home_of(client_id, peer_slots());
  }
  // True when homes follow the peers that are up (home_of changes as peers come and go).
  virtual bool homes_move() const { return false; }
  // True when a peer that goes down (for this side) also sees this side go down, so both
  // tell each other everything again when they are up: then what was known of it may be
  // forgotten. False for the worker mesh, where a link redialled by one side is a break only
  // that side saw.
  virtual bool down_is_mutual() const { return false; }
  // With homes_move(): the home `key` has with `peer` up too (the peer that just went down:
  // the ids it was home of are those for which this is `peer`). kNoPeer when not known.
  virtual PeerId home_with(uint64_t key, PeerId peer) const {
    (void)key;
    (void)peer;
    return kNoPeer;
  }
};

}  // namespace tcpms::routing
