"""A client that sends 64 MiB and reads slowly: the server pauses reading from it instead of
buffering, its memory stays bounded, and every byte comes back in order."""
import os
import socket
import threading
import time

from tcpms_harness import SANITIZED, echo_server, rss_bytes

TOTAL = 64 << 20
RSS_GROWTH_LIMIT = 64 << 20


def test_slow_reader_of_64_mib_gets_everything_in_order_with_bounded_server_memory():
    data = os.urandom(TOTAL)
    with echo_server("--threads", "1") as srv:
        base_rss = rss_bytes(srv.pid)
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        send_error = []

        def send():
            try:
                s.sendall(data)
            except OSError as e:
                send_error.append(e)

        sender = threading.Thread(target=send)
        sender.start()
        peak_rss = base_rss
        peak_pending = 0
        got = 0
        since_pause = 0
        view = memoryview(data)
        buf = bytearray(64 << 10)
        deadline = time.monotonic() + (120 if SANITIZED else 50)
        try:
            time.sleep(0.5)  # not reading at all: the server must stall on us
            m = srv.metrics()
            assert m["tcpms_backpressure_pauses_total"] >= 1
            assert 0 < m["tcpms_bytes_received_total"] < TOTAL
            while got < TOTAL:
                assert time.monotonic() < deadline, f"only {got} of {TOTAL} bytes back in time"
                n = s.recv_into(buf, 32 << 10)  # slow: small reads with pauses
                assert n > 0, f"EOF after {got} bytes"
                assert buf[:n] == view[got:got + n], f"echo differs in bytes {got}..{got + n}"
                got += n
                since_pause += n
                if since_pause >= 256 << 10:  # about 50 MB/s at most
                    since_pause = 0
                    time.sleep(0.005)
                    peak_rss = max(peak_rss, rss_bytes(srv.pid))
                if (got >> 20) != ((got - n) >> 20) and (got >> 20) % 8 == 0:
                    peak_pending = max(peak_pending, srv.metrics()["tcpms_pending_output_bytes"])
        finally:
            sender.join(timeout=10)
            s.close()
        assert not send_error, send_error
        assert got == TOTAL
        assert peak_rss - base_rss < RSS_GROWTH_LIMIT, \
            f"server RSS grew by {(peak_rss - base_rss) >> 20} MiB while echoing to a slow reader"
        # The queue stays near the high-water mark (1 MiB) plus one read, never the whole stream.
        assert peak_pending <= (1 << 20) + (64 << 10), peak_pending
        m = srv.metrics()
        assert m["tcpms_backpressure_pauses_total"] >= 2, "reading paused and resumed repeatedly"
        assert m["tcpms_bytes_sent_total"] == TOTAL
        srv.wait_for(lambda: srv.metrics()["tcpms_connections_with_output_queue"] == 0,
                     what="the output queue given back")
