"""5,000 clients connected at once, all echoed byte for byte in interleaved rounds."""
from tcpms_harness import (SANITIZED, close_all, echo_all, echo_server, open_clients, payload,
                           raise_nofile_limit)

CLIENTS = 5000


def test_five_thousand_concurrent_clients_each_get_their_own_bytes_back():
    assert raise_nofile_limit() >= CLIENTS + 100, "need RLIMIT_NOFILE for 5,000 client sockets"
    timeout = 180.0 if SANITIZED else 60.0
    with echo_server("--threads", "2") as srv:
        socks = open_clients(srv.port, CLIENTS, timeout=timeout)
        try:
            srv.wait_for(lambda: srv.metrics()["tcpms_connections"] == CLIENTS, timeout=timeout,
                         what=f"{CLIENTS} open connections")
            m = srv.metrics()
            # SO_REUSEPORT spreads clients over both loops.
            assert m['tcpms_connections{loop="0"}'] > 0 and m['tcpms_connections{loop="1"}'] > 0
            # Round 1: every client at once, a different size each (1 B .. ~3 KiB).
            first = [payload(i, 1 + (i * 613) % 3000) for i in range(CLIENTS)]
            assert echo_all(socks, first, timeout) == CLIENTS
            # Round 2 on the same connections: nothing was closed or mixed up in between.
            second = [payload(i + 7, 100) for i in range(CLIENTS)]
            assert echo_all(socks, second, timeout) == CLIENTS
            m = srv.metrics()
            assert m["tcpms_connections"] == CLIENTS
            assert m["tcpms_connections_accepted_total"] == CLIENTS
            total = sum(map(len, first)) + sum(map(len, second))
            assert m["tcpms_bytes_received_total"] == total
            assert m["tcpms_bytes_sent_total"] == total
        finally:
            close_all(socks)
        srv.wait_for(lambda: srv.metrics()["tcpms_connections"] == 0, timeout=timeout,
                     what="every connection closed after the clients left")
        closed = srv.metrics()
        assert closed["tcpms_connections_closed_total"] == CLIENTS
