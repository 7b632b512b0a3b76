"""Idle connections: the idle timeout closes the quiet ones only, and quiet connections own
no input or output buffer (the engine's idle-memory rule, checked through /metrics)."""
import socket
import time

from tcpms_harness import (SANITIZED, close_all, echo_all, echo_server, labelled, open_clients,
                           payload, raise_nofile_limit, recv_exactly)

TIMEOUT = 120.0 if SANITIZED else 30.0
BUFFER_GAUGES = ("tcpms_pending_input_bytes", "tcpms_pending_output_bytes",
                 "tcpms_connections_with_input_buffer", "tcpms_connections_with_output_queue")


def test_idle_timeout_closes_the_idle_client_and_not_the_active_one():
    with echo_server("--idle-timeout", "1", "--threads", "1") as srv:
        idle = srv.connect()
        active = srv.connect()
        start = time.monotonic()
        idle_closed_at = None
        idle.setblocking(False)
        while time.monotonic() - start < 3.0:
            active.sendall(b"ping")
            assert recv_exactly(active, 4) == b"ping", "the active client was cut off"
            if idle_closed_at is None:
                try:
                    if idle.recv(16) == b"":
                        idle_closed_at = time.monotonic() - start
                except BlockingIOError:
                    pass
            time.sleep(0.2)
        assert idle_closed_at is not None, "the idle client was never closed"
        assert 0.9 <= idle_closed_at <= 2.0, f"closed after {idle_closed_at:.2f} s, timeout is 1 s"
        active.sendall(b"still here")
        assert recv_exactly(active, 10) == b"still here"
        m = srv.metrics()
        assert labelled(m, "tcpms_connections_closed_total", reason="idle_timeout") == 1
        assert m["tcpms_connections"] == 1
        idle.close()
        active.close()


def stalling_client(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    return s


def feed(socks):
    """Writes to each socket until the kernel refuses more; never reads."""
    for s in socks:
        try:
            while True:
                s.send(b"y" * 65536)
        except BlockingIOError:
            pass
    return True


def test_quiet_connections_hold_no_buffers():
    raise_nofile_limit()
    clients = 1000
    with echo_server("--threads", "2", "--output-high-water", "65536") as srv:
        socks = open_clients(srv.port, clients, timeout=TIMEOUT)
        try:
            assert echo_all(socks, [payload(i, 20000) for i in range(clients)], TIMEOUT) == clients
            # Make the gauges move first, so a gauge stuck at 0 cannot pass: 50 more clients
            # with tiny receive buffers send without reading, so the server queues output.
            stalled = [stalling_client(srv.port) for _ in range(50)]
            socks += stalled
            srv.wait_for(lambda: feed(stalled) and srv.metrics()[
                "tcpms_connections_with_output_queue"] >= len(stalled) // 2,
                timeout=TIMEOUT, what="output queued for the stalled clients")
            busy = srv.metrics()
            assert busy["tcpms_pending_output_bytes"] > 0
            # Now they read what came back, and everyone goes quiet.
            for s in stalled:
                s.setblocking(True)
                s.settimeout(TIMEOUT)
                s.shutdown(socket.SHUT_WR)
                while s.recv(1 << 20):
                    pass
            quiet = socks[:clients]
            srv.wait_for(lambda: srv.metrics()["tcpms_connections"] == len(quiet),
                         timeout=TIMEOUT, what="the stalled clients finished")
            time.sleep(0.3)
            m = srv.metrics()
            assert m["tcpms_connections"] == len(quiet)
            for gauge in BUFFER_GAUGES:
                assert m[gauge] == 0, f"{gauge} is {m[gauge]} with {len(quiet)} quiet clients"
        finally:
            close_all(socks)
