#include "workers/peer_mesh.h"

#include <cstring>
#include <memory>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "tcpms/connection.h"
#include "tcpms/event_loop.h"

namespace tcpms::workers {
namespace {

constexpr size_t kFrameHeader = 5;

uint32_t read_le32(const std::byte* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

}  // namespace

// Receives frames from one peer (a link that peer dialled). The sender's index is not on the
// wire per frame: the first frame on a link is a hello carrying it.
class PeerMesh::InboundHandler final : public Handler {
 public:
  static constexpr uint8_t kHello = 0;
  static constexpr uint8_t kRouting = 1;
  explicit InboundHandler(PeerMesh& mesh) : mesh_(mesh) {}

  Action on_open(Connection& conn) override {
    conn.set_timeout(0);  // a quiet link is not an idle client: the server's idle timeout is not for it
    mesh_.inbound_open_.fetch_add(1, std::memory_order_relaxed);
    return Action::kKeep;
  }
  void on_close(Connection&, CloseReason) override {
    mesh_.inbound_open_.fetch_sub(1, std::memory_order_relaxed);
  }

  // A link carries whole frames up to kMaxFrameBytes (a session image, a publish at the MQTT
  // packet limit plus its header): the server's limit for client packets is not for it.
  size_t input_limit_bytes() const noexcept override { return kFrameHeader + kMaxFrameBytes; }

  DataResult on_data(Connection& conn, ByteView data) override {
    size_t used = 0;
    while (data.size() - used >= kFrameHeader) {
      const std::byte* p = data.data() + used;
      uint32_t len = read_le32(p);
      if (len > kMaxFrameBytes) {
        spdlog::error("mesh: frame of {} bytes from a peer; closing the link", len);
        return {used, Action::kClose};
      }
      if (data.size() - used < kFrameHeader + len) break;
      auto kind = static_cast<uint8_t>(p[4]);
      ByteView body{p + kFrameHeader, len};
      uintptr_t from = reinterpret_cast<uintptr_t>(conn.user_data());
      if (kind == kHello && len == 4) {
        conn.set_user_data(reinterpret_cast<void*>(uintptr_t{read_le32(body.data())} + 1));
      } else if (from != 0 && kind == kRouting && mesh_.receiver_ != nullptr) {
        mesh_.received_.fetch_add(1, std::memory_order_relaxed);
        mesh_.receiver_->on_frame(static_cast<routing::PeerId>(from - 1), body);
      }
      used += kFrameHeader + len;
    }
    return {used, Action::kKeep};
  }

 private:
  PeerMesh& mesh_;
};

// Owns the links this worker dialled; redials one when it breaks.
class PeerMesh::OutboundHandler final : public Handler {
 public:
  explicit OutboundHandler(PeerMesh& mesh) : mesh_(mesh) {}

  Action on_open(Connection& conn) override {
    unsigned peer = static_cast<unsigned>(reinterpret_cast<uintptr_t>(conn.user_data()));
    conn.set_timeout(0);  // it never reads, so an idle timeout would cut it every period
    // A Unix socket may connect at once, inside EventLoop::connect, before dial() stores the
    // id: store it here so that what on_peer_up sends finds the link.
    mesh_.outbound_[peer] = conn.id();
    mesh_.up_[peer] = true;
    std::byte hello[kFrameHeader + 4] = {std::byte{4}, {}, {}, {}, std::byte{InboundHandler::kHello}};
    uint32_t self = mesh_.self_;
    for (int i = 0; i < 4; ++i) hello[kFrameHeader + i] = std::byte(self >> (8 * i));
    conn.send(ByteView{hello, sizeof hello});
    if (!mesh_.ever_up_[peer]) {
      mesh_.ever_up_[peer] = true;
      Early early = std::move(mesh_.early_[peer]);
      mesh_.early_[peer] = Early{};
      for (const SharedBytes& f : early.frames) mesh_.send_now(peer, f);
    }
    mesh_.links_up_.fetch_add(1, std::memory_order_relaxed);
    spdlog::debug("mesh: link to worker {} up", peer);
    // Runs on the owner loop: what the receiver sends from here goes onto this link first.
    if (mesh_.receiver_ != nullptr) mesh_.receiver_->on_peer_up(static_cast<routing::PeerId>(peer));
    return Action::kKeep;
  }
  DataResult on_data(Connection&, ByteView data) override { return {data.size()}; }
  void on_close(Connection& conn, CloseReason reason) override {
    unsigned peer = static_cast<unsigned>(reinterpret_cast<uintptr_t>(conn.user_data()));
    if (peer < mesh_.outbound_.size() && mesh_.outbound_[peer] == conn.id()) {
      mesh_.outbound_[peer] = ConnId{};
      const bool was_up = mesh_.up_[peer];
      if (was_up) mesh_.links_up_.fetch_sub(1, std::memory_order_relaxed);
      mesh_.up_[peer] = false;
      // A link that was up and broke is worth a line: the peer died, or one side closed it
      // (output past its hard limit, a frame refused); it is redialled below.
      if (was_up && reason != CloseReason::kShutdown && !conn.loop().draining())
        spdlog::info("mesh: link to worker {} broke ({}); redialling", peer,
                     close_reason_name(reason));
      if (was_up && mesh_.receiver_ != nullptr)
        mesh_.receiver_->on_peer_down(static_cast<routing::PeerId>(peer));
    }
    if (reason == CloseReason::kShutdown || conn.loop().draining()) return;
    conn.loop().run_after(kRedialMs, [m = &mesh_, peer] { m->dial(peer); });
  }

 private:
  PeerMesh& mesh_;
};

PeerMesh::PeerMesh(std::string group, unsigned self, unsigned count)
    : group_(std::move(group)),
      self_(self),
      count_(count),
      outbound_(count),
      up_(count, false),
      ever_up_(count, false),
      early_(count) {}

std::string PeerMesh::socket_name(const std::string& group, unsigned index) {
  return fmt::format("unix:@tcpms-{}-{}", group, index);
}

void PeerMesh::attach(Server& server) {
  server_ = &server;
  auto at = Endpoint::parse(socket_name(group_, self_));
  server.listen(*at, [this](EventLoop&) { return std::make_unique<InboundHandler>(*this); });
  outbound_handler_ = server.add_handler(
      [this](EventLoop&) { return std::make_unique<OutboundHandler>(*this); });
}

void PeerMesh::start() {
  owner_.store(&server_->loop(0), std::memory_order_release);
  owner_.load()->post([this] {
    for (unsigned p = 0; p < count_; ++p) dial(p);
  });
}

void PeerMesh::dial(unsigned peer) {
  EventLoop* owner = owner_.load(std::memory_order_acquire);
  if (peer == self_ || outbound_[peer].valid() || owner->draining()) return;
  auto at = Endpoint::parse(socket_name(group_, peer));
  int err = 0;
  ConnId id = owner->connect(*at, nullptr, outbound_handler_, err,
                              reinterpret_cast<void*>(uintptr_t{peer}));
  if (!id.valid()) {
    // Not listening yet (starting, or restarting after a crash): try again shortly.
    owner->run_after(kRedialMs, [this, peer] { dial(peer); });
    return;
  }
  outbound_[peer] = id;
}

bool PeerMesh::send_now(unsigned peer, const SharedBytes& frame) {
  EventLoop* owner = owner_.load(std::memory_order_acquire);
  Connection* c = outbound_[peer].valid() ? owner->find(outbound_[peer]) : nullptr;
  std::byte head[kFrameHeader];
  const uint32_t len = static_cast<uint32_t>(frame.size());
  for (int i = 0; i < 4; ++i) head[i] = std::byte(len >> (8 * i));
  head[4] = std::byte{InboundHandler::kRouting};
  // enqueue: frames produced in one loop iteration leave in one write per link; the frame is
  // shared by reference with every other link it goes to.
  if (c != nullptr && up_[peer] && c->enqueue_shared(ByteView(head, kFrameHeader), frame)) {
    sent_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  if (!ever_up_[peer] && early_[peer].bytes + frame.size() <= kEarlyBytesPerPeer) {
    early_[peer].bytes += frame.size();
    early_[peer].frames.push_back(frame);
    return true;
  }
  dropped_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

bool PeerMesh::send(routing::PeerId peer, SharedBytes frame) {
  EventLoop* owner = owner_.load(std::memory_order_acquire);
  if (peer == self_ || peer >= count_ || owner == nullptr || frame.size() > kMaxFrameBytes) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (owner->in_loop_thread()) return send_now(peer, frame);
  // From another loop: the owner loop sends it (in order with this thread's earlier sends).
  // Whether the link takes it is known only there, so the answer here is "handed over".
  return owner->post([this, peer, f = std::move(frame)] { send_now(peer, f); });
}

bool PeerMesh::run_after(uint32_t delay_ms, std::function<void()> task) {
  EventLoop* owner = owner_.load(std::memory_order_acquire);
  if (owner == nullptr) return false;
  EventLoop& loop = *owner;
  if (loop.in_loop_thread()) {
    loop.run_after(delay_ms, std::move(task));
    return true;
  }
  return loop.post([&loop, delay_ms, task = std::move(task)]() mutable {
    loop.run_after(delay_ms, std::move(task));
  });
}

void PeerMesh::render_metrics(std::string& out) const {
  fmt::format_to(std::back_inserter(out),
                 "# HELP tcpms_mesh_links_up Links to other worker processes that are up.\n"
                 "# TYPE tcpms_mesh_links_up gauge\ntcpms_mesh_links_up {}\n"
                 "# HELP tcpms_mesh_frames_total Frames between worker processes.\n"
                 "# TYPE tcpms_mesh_frames_total counter\n"
                 "tcpms_mesh_frames_total{{direction=\"sent\"}} {}\n"
                 "tcpms_mesh_frames_total{{direction=\"received\"}} {}\n"
                 "tcpms_mesh_frames_total{{direction=\"dropped\"}} {}\n",
                 links_up(), frames_sent(), frames_received(), frames_dropped());
}

}  // namespace tcpms::workers
