// PeerMesh: the routing layer's transport between the worker processes of one server on one
// box (routing::Transport; the routing itself is routing::PeerRouter).
//
// Why Unix sockets and not Redis or shared memory: the workers are one server split only
// because of a per-process descriptor limit. They need no service to be running (make run
// stays one command), no configuration (names derive from the server's group name), and a
// frame must cost one write per peer. Abstract Unix socket names (Linux) leave no files to
// clean up when a worker is killed -9.
//
// Worker i listens on "unix:@tcpms-<group>-<i>" and dials every other worker; it sends only on
// the links it dialled and receives only on the links it accepted, so each direction has one
// owner and no handshake is needed. A broken outbound link (its peer restarted) is redialled
// every 200 ms; frames sent while a link is down are dropped and counted. On the wire:
// [u32 body length, little endian][u8 kind][body]; kind 0 is the link's hello (the sender's
// index), kind 1 a routing frame (src/routing/frame.h), carried as it is.
//
// Order: frames to one peer leave in the order they were sent. The receiver's on_peer_up runs
// on the owner loop as the link opens, and frames it sends from there go straight onto the
// link, before anything other threads posted (the routing layer's Hello comes first).
//
// Thread rules: construct and attach() before Server::start(); set_receiver before start();
// send/run_after from any thread (from another thread they post to the loop that owns the
// links); the receiver's callbacks run on the owner loop (links up and down) and on the loops
// that accepted the inbound links (frames).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "routing/transport.h"
#include "tcpms/bytes.h"
#include "tcpms/conn_id.h"
#include "tcpms/server.h"
#include "tcpms/shared_bytes.h"

namespace tcpms::workers {

class PeerMesh final : public routing::Transport {
 public:
  static constexpr uint32_t kMaxFrameBytes = 64u << 20;
  static constexpr uint32_t kRedialMs = 200;
  // Frames for a peer whose link has not come up yet since this worker started (workers start
  // at nearly the same moment and clients connect at once): held, up to this many bytes per
  // peer, and sent first when the link opens, so that a claim made in the first few hundred
  // ms is answered instead of lost. A link that was up and broke drops frames (the peer died;
  // the router's on_peer_down takes over).
  static constexpr size_t kEarlyBytesPerPeer = 16u << 20;

  PeerMesh(std::string group, unsigned self, unsigned count);
  PeerMesh(const PeerMesh&) = delete;
  PeerMesh& operator=(const PeerMesh&) = delete;

  // Adds the listener and the link handlers to `server` (before Server::start), then, once
  // the server runs, start() dials every peer.
  void attach(Server& server);
  void start();

  // --- routing::Transport ---
  void set_receiver(Receiver* r) override { receiver_ = r; }
  routing::PeerId self() const override { return static_cast<routing::PeerId>(self_); }
  uint32_t peer_slots() const override { return count_; }
  bool send(routing::PeerId to, SharedBytes frame) override;
  bool run_after(uint32_t delay_ms, std::function<void()> task) override;

  unsigned count() const noexcept { return count_; }
  uint64_t frames_sent() const noexcept { return sent_.load(std::memory_order_relaxed); }
  uint64_t frames_received() const noexcept { return received_.load(std::memory_order_relaxed); }
  uint64_t frames_dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
  unsigned links_up() const noexcept { return links_up_.load(std::memory_order_relaxed); }
  // Connections of the server that are this mesh's links (up outbound, open inbound): a
  // worker that handed its clients over waits only for the clients that stayed.
  unsigned links_open() const noexcept {
    return links_up_.load(std::memory_order_relaxed) + inbound_open_.load(std::memory_order_relaxed);
  }
  void render_metrics(std::string& out) const;

  static std::string socket_name(const std::string& group, unsigned index);

 private:
  class InboundHandler;
  class OutboundHandler;
  friend class InboundHandler;
  friend class OutboundHandler;

  // On the owner loop: the frame onto the peer's link, or dropped and counted.
  bool send_now(unsigned peer, const SharedBytes& frame);
  void dial(unsigned peer);  // owner loop

  std::string group_;
  unsigned self_;
  unsigned count_;
  Receiver* receiver_ = nullptr;
  Server* server_ = nullptr;
  // The loop that dials and owns the outbound links; set by start() (the loops exist then).
  std::atomic<EventLoop*> owner_{nullptr};
  uint8_t outbound_handler_ = 0;
  std::vector<ConnId> outbound_;  // by peer index; owner loop only
  std::vector<bool> up_;          // outbound link opened (on_open ran); owner loop only
  std::vector<bool> ever_up_;     // the link has opened at least once; owner loop only
  struct Early {
    std::vector<SharedBytes> frames;
    size_t bytes = 0;
  };
  std::vector<Early> early_;      // by peer index, until ever_up_; owner loop only
  std::atomic<uint64_t> sent_{0}, received_{0}, dropped_{0};
  std::atomic<unsigned> links_up_{0};
  std::atomic<unsigned> inbound_open_{0};
};

}  // namespace tcpms::workers
