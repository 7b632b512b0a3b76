// Server push: every second, each loop sends "tick <n> <connections on this loop>\n" to every
// client it holds, over the client's own connection. Clients need not say anything (what
// they send is ignored). The timer is a per-loop run_every, posted to each loop once the
// server runs, so the push never crosses threads; from another thread one would use
// Server::send_to(ConnId) or EventLoop::post instead.
//   example_push_every_second --listen 127.0.0.1:7000
#include <string>

#include "example_main.h"

namespace {

using namespace tcpms;

class IgnoreInput final : public Handler {
 public:
  DataResult on_data(Connection&, ByteView data) override { return {data.size(), Action::kKeep}; }
};

void start_ticking(EventLoop& loop) {
  loop.run_every(1000, [&loop, n = uint64_t{0}]() mutable {
    std::string msg = "tick " + std::to_string(++n) + " " +
                      std::to_string(loop.connection_count()) + "\n";
    // send() writes at once; a client that stops reading gets its ticks queued, and past
    // the output hard limit it is closed (kOutputOverflow) rather than buffered forever.
    loop.for_each_connection([&](Connection& c) { c.send(as_bytes(msg)); });
  });
}

}  // namespace

int main(int argc, char** argv) {
  return tcpms::examples::serve(
      argc, argv, [](EventLoop&) { return std::make_unique<IgnoreInput>(); },
      [](Server& server) { server.post_to_all(start_ticking); });
}
