"""Limits: the connection cap sheds the extra client at once (counted), and running out of
descriptors pauses accepting without spinning or crashing, then recovers."""
import resource
import socket
import time

from tcpms_harness import SANITIZED, echo_server, cpu_seconds, recv_exactly

TIMEOUT = 60.0 if SANITIZED else 20.0


def echoes(s, msg=b"hello"):
    s.sendall(msg)
    return recv_exactly(s, len(msg)) == msg


def test_connection_cap_accepts_and_closes_the_one_too_many():
    cap = 5
    with echo_server("--max-connections", str(cap), "--threads", "2") as srv:
        clients = [srv.connect(timeout=TIMEOUT) for _ in range(cap)]
        assert all(echoes(c) for c in clients)
        extra = srv.connect(timeout=TIMEOUT)  # the handshake completes: the kernel accepts it
        try:
            extra.sendall(b"x")
            assert extra.recv(16) == b"", "the connection past the cap must be closed"
        except ConnectionResetError:
            pass  # closed with our byte unread: a reset is as good as an EOF here
        m = srv.metrics()
        assert m["tcpms_connections_rejected_total"] == 1
        assert m["tcpms_connections"] == cap
        assert all(echoes(c, b"still served") for c in clients)
        # A slot frees up when a client leaves; the next one is served.
        clients.pop().close()
        srv.wait_for(lambda: srv.metrics()["tcpms_connections"] == cap - 1, what="slot freed")
        newcomer = srv.connect(timeout=TIMEOUT)
        assert echoes(newcomer)
        assert srv.metrics()["tcpms_connections_rejected_total"] == 1
        for c in clients + [extra, newcomer]:
            c.close()


def low_nofile(limit):
    def apply():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    return apply


def test_running_out_of_descriptors_pauses_accept_without_spinning_and_recovers():
    # 64 descriptors, and a cap above that so accept() itself hits EMFILE.
    with echo_server("--threads", "1", "--max-connections", "1000",
                preexec_fn=low_nofile(64)) as srv:
        clients = []
        for _ in range(100):  # the kernel completes every handshake; the server cannot take all
            c = socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT)
            c.sendall(b"?")
            clients.append(c)
        # Which clients did the server take? Those whose byte came back.
        served, waiting = [], []
        time.sleep(0.5)
        for c in clients:
            c.setblocking(False)
            try:
                (served if c.recv(1) == b"?" else waiting).append(c)
            except BlockingIOError:
                waiting.append(c)
        assert served and waiting, (len(served), len(waiting))

        # Out of descriptors with connections pending: the loop must sleep, not spin.
        cpu_before = cpu_seconds(srv.pid)
        time.sleep(3.0)
        cpu_used = cpu_seconds(srv.pid) - cpu_before
        assert srv.proc.poll() is None, "the server died on EMFILE:\n" + srv.output()
        assert cpu_used < (0.6 if SANITIZED else 0.3), f"{cpu_used:.2f} s of CPU in 3 s: spinning"
        assert "accept failed" in srv.output()

        # Descriptors free up: the waiting clients are served from the accept queue.
        for c in served:
            c.close()
        for c in waiting:
            c.setblocking(True)
            c.settimeout(TIMEOUT)
            assert recv_exactly(c, 1) == b"?", "a client queued during EMFILE was never served"
        m = srv.metrics()
        assert m["tcpms_accept_paused_total"] > 0
        assert m["tcpms_connections"] == len(waiting)
        for c in waiting:
            assert echoes(c)
            c.close()
