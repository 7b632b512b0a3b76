// Thin socket helpers. Each returns the descriptor in a UniqueFd, or sets `err` to the errno
// captured at the failing call (libuv style: no exceptions, no errno read later).
#pragma once

#include <string>

#include "tcpms/endpoint.h"
#include "tcpms/unique_fd.h"

namespace tcpms::net {

// The kernel's accept-queue cap (net.core.somaxconn); listen() silently clamps to it.
int read_somaxconn();

// A non-blocking listening socket with SO_REUSEADDR and SO_REUSEPORT, bound and listening.
// `what` names the failing step ("bind", "listen") for error messages.
UniqueFd open_listener(const Endpoint& at, int backlog, uint32_t defer_accept_s, int& err,
                       const char*& what);

// 0 if nothing listens on `at` yet, else the errno of a plain (non-SO_REUSEPORT) bind. With
// SO_REUSEPORT a second server on the same port would silently share it; the first process of
// a server checks with this so only its own worker processes may share.
int probe_port_free(const Endpoint& at);

// A bound, non-listening SO_REUSEPORT socket: holds a port (choosing one for port 0) so
// that worker processes can bind it, while receiving no connections itself.
UniqueFd reserve_port(const Endpoint& at, int& err);

// Whether `fd` is a socket that listens (SO_ACCEPTCONN): a port reservation is not.
bool is_listening(int fd) noexcept;

// The locally bound address of a socket (to learn the port after binding port 0).
Endpoint local_endpoint(int fd);

void set_tcp_nodelay(int fd) noexcept;

std::string errno_text(int err);

}  // namespace tcpms::net
