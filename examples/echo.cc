// A whole echo server: the engine does sockets, buffers, backpressure and shutdown; the
// protocol (src/proto/echo/echo_handler.h) is one on_data that sends back what it got.
//   example_echo --listen 127.0.0.1:7000
#include "echo/echo_handler.h"
#include "example_main.h"

int main(int argc, char** argv) {
  return tcpms::examples::serve(argc, argv, [](tcpms::EventLoop&) {
    return std::make_unique<tcpms::echo::EchoHandler>();
  });
}
