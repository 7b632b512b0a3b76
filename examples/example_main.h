// What every example does around its handler, so each example shows only its protocol:
// take --listen HOST:PORT, start the server, print the "listening on HOST:PORT" line that
// scripts and tests parse, wait for SIGINT/SIGTERM on a signalfd, drain, exit 0.
#pragma once

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>

#include "tcpms/server.h"
#include "tcpms/signal_watcher.h"

namespace tcpms::examples {

// `started` runs once the loops are up (e.g. to post per-loop timers).
inline int serve(int argc, char** argv, HandlerFactory factory,
                 const std::function<void(Server&)>& started = nullptr) {
  std::string listen = "127.0.0.1:7000";
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
      listen = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--listen HOST:PORT]\n", argv[0]);
      return 64;
    }
  }
  std::string error;
  auto at = Endpoint::parse(listen, &error);
  if (!at) {
    std::fprintf(stderr, "%s: --listen: %s\n", argv[0], error.c_str());
    return 64;
  }
  SignalWatcher signals({SIGINT, SIGTERM});  // before any thread starts
  Server server(ServerConfig{});
  server.listen(*at, std::move(factory));
  if (std::string err = server.start(); !err.empty()) {
    std::fprintf(stderr, "%s: %s\n", argv[0], err.c_str());
    return 69;
  }
  if (started) started(server);
  std::printf("%s listening on %s\n", argv[0], server.listen_address(0).to_string().c_str());
  std::fflush(stdout);
  signals.wait(-1);
  server.drain(std::chrono::seconds(2));
  server.wait();
  return 0;
}

}  // namespace tcpms::examples
