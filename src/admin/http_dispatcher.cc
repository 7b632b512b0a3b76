#include "admin/http_dispatcher.h"

#include <algorithm>
#include <cstring>

namespace tcpms::admin {
namespace {

// A cpp-httplib Stream over a request held in memory: reads come from it, writes collect the
// answer. Nothing here touches a socket.
class MemoryStream final : public httplib::Stream {
 public:
  MemoryStream(std::string_view in, const std::string& ip, int port)
      : in_(in), ip_(ip), port_(port) {}

  bool is_readable() const override { return true; }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override {
    size_t n = std::min(size, in_.size());
    std::memcpy(ptr, in_.data(), n);
    in_.remove_prefix(n);
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    out_.append(ptr, size);
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = ip_;
    port = port_;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip.clear();
    port = 0;
  }
  // cpp-httplib compares the descriptor with FD_SETSIZE (for select()); there is none.
  socket_t socket() const override { return INVALID_SOCKET; }

  std::string take_output() { return std::move(out_); }

 private:
  std::string_view in_;
  std::string out_;
  const std::string& ip_;
  int port_;
};

}  // namespace

std::string HttpDispatcher::answer(std::string_view request, const std::string& peer_ip,
                                   int peer_port, bool& close) {
  MemoryStream stream(request, peer_ip, peer_port);
  bool closed = false;
  const bool ok = process_request(stream, close, closed, nullptr);
  close = close || closed || !ok;
  return stream.take_output();
}

}  // namespace tcpms::admin
