// PeerMesh: the links between the worker processes of one server on one box.
//
// Why Unix sockets and not Redis or shared memory: the workers are one server split only
// because of a per-process descriptor limit. They need no service to be running (make run
// stays one command), no configuration (names derive from the server's group name), and a
// message must cost one write per peer. Abstract Unix socket names (Linux) leave no files to
// clean up when a worker is killed -9.
//
// Worker i listens on "unix:@tcpms-<group>-<i>" and dials every other worker; it sends only on
// the links it dialled and receives only on the links it accepted, so each direction has one
// owner and no handshake is needed. A broken outbound link (its peer restarted) is redialled
// every 200 ms; frames sent while a link is down are dropped and counted. Frames are
// [u32 body length, little endian][u8 kind][body].
//
// Thread rules: construct and attach() before Server::start(); send/broadcast from any thread
// (they post to the loop that owns the links); the receive callback runs on that loop.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tcpms/bytes.h"
#include "tcpms/conn_id.h"
#include "tcpms/server.h"
#include "tcpms/shared_bytes.h"

namespace tcpms::workers {

class PeerMesh {
 public:
  static constexpr uint32_t kMaxFrameBytes = 64u << 20;
  static constexpr uint32_t kRedialMs = 200;

  // `from` is the sending worker's index.
  using Receive = std::function<void(unsigned from, uint8_t kind, ByteView body)>;

  PeerMesh(std::string group, unsigned self, unsigned count, Receive on_frame);
  PeerMesh(const PeerMesh&) = delete;
  PeerMesh& operator=(const PeerMesh&) = delete;

  // Adds the listener and the link handlers to `server` (before Server::start), then, once
  // the server runs, start() dials every peer.
  void attach(Server& server);
  void start();

  unsigned self() const noexcept { return self_; }
  unsigned count() const noexcept { return count_; }

  // Any thread. The frame is built once and shared by every link it goes to.
  void send(unsigned peer, uint8_t kind, ByteView body);
  void broadcast(uint8_t kind, ByteView body);
  // As broadcast; then `reached(n)` runs once on the mesh's loop with how many peers' links
  // took the frame (a peer whose link is down never sees it, so nobody should wait for its
  // answer). With the loop stopped, reached(0) runs at once on the caller's thread.
  void broadcast(uint8_t kind, ByteView body, std::function<void(unsigned reached)> reached);
  // Any thread: runs `task` on the mesh's loop in `delay_ms` (timeouts of requests between
  // workers). False when that loop has stopped; then `task` never runs.
  bool run_after(uint32_t delay_ms, std::function<void()> task);

  uint64_t frames_sent() const noexcept { return sent_.load(std::memory_order_relaxed); }
  uint64_t frames_received() const noexcept { return received_.load(std::memory_order_relaxed); }
  uint64_t frames_dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
  unsigned links_up() const noexcept { return links_up_.load(std::memory_order_relaxed); }
  void render_metrics(std::string& out) const;

  static std::string socket_name(const std::string& group, unsigned index);

 private:
  class InboundHandler;
  class OutboundHandler;
  friend class InboundHandler;
  friend class OutboundHandler;

  SharedBytes frame(uint8_t kind, ByteView body) const;
  // peer -1: everyone. `reached` (may be empty) gets how many links took the frame.
  void post_send(int peer, SharedBytes frame, std::function<void(unsigned)> reached = {});
  void dial(unsigned peer);                      // loop thread

  std::string group_;
  unsigned self_;
  unsigned count_;
  Receive on_frame_;
  Server* server_ = nullptr;
  EventLoop* owner_ = nullptr;   // the loop that dials and owns the outbound links
  uint8_t outbound_handler_ = 0;
  std::vector<ConnId> outbound_;  // by peer index; owner loop only
  std::vector<bool> up_;          // outbound link opened (on_open ran); owner loop only
  std::atomic<uint64_t> sent_{0}, received_{0}, dropped_{0};
  std::atomic<unsigned> links_up_{0};
};

}  // namespace tcpms::workers
