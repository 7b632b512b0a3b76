// HttpDispatcher: cpp-httplib's request parsing, routing and response writing, without its
// sockets. cpp-httplib serves each connection on a thread of its own and reads it there, so
// a client that sends slowly (or not at all) holds a thread; the admin server instead reads
// requests on its event loop (admin_connections.h) and hands this class a request that is
// already complete in memory. The answer comes back as bytes for the loop to write.
//
// Thread rules: configure routes (the httplib::Server methods) before the first answer();
// answer() may then run on many threads at once.
#pragma once

#include <string>
#include <string_view>

#include <httplib.h>

namespace tcpms::admin {

class HttpDispatcher : public httplib::Server {
 public:
  // Parses `request` (one whole request, as framed by frame_request), runs its route and
  // returns the response bytes. `close`: answer with "Connection: close"; set on return when
  // the connection must close after this answer (the client asked, or the request was bad).
  std::string answer(std::string_view request, const std::string& peer_ip, int peer_port,
                     bool& close);
};

}  // namespace tcpms::admin
