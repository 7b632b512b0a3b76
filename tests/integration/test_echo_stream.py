"""The byte stream itself: arbitrary splits and coalescing, half-close, and a peer that
resets in the middle of a transfer while others carry on."""
import random
import socket
import struct
import threading
import time

import pytest

from tcpms_harness import SANITIZED, echo_server, labelled, recv_exactly

TIMEOUT = 60.0 if SANITIZED else 20.0


@pytest.fixture(scope="module")
def srv():
    with echo_server("--threads", "2") as s:
        yield s


def client(srv, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(TIMEOUT)
    s.connect(("127.0.0.1", srv.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_until_eof(s):
    out = bytearray()
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            return bytes(out)
        out += chunk


def send_in_random_pieces(s, data, rng):
    """Writes `data` cut at random points, sometimes pausing so pieces leave separately and
    sometimes not, so the kernel coalesces them."""
    i = 0
    while i < len(data):
        n = rng.choice([1, 2, 3, 7, 100, 1000, 4096, 65536, 200000])
        s.sendall(data[i:i + n])
        i += n
        if rng.random() < 0.2:
            time.sleep(rng.random() / 500)


def test_messages_split_and_coalesced_arbitrarily_come_back_as_one_ordered_stream(srv):
    failures = []

    def run(seed):
        rng = random.Random(seed)
        data = rng.randbytes(rng.randint(1, 3 << 20))
        with client(srv) as s:
            sender = threading.Thread(target=send_in_random_pieces, args=(s, data, rng))
            sender.start()
            got = bytearray()
            try:
                while len(got) < len(data):
                    # Read in random sizes too, so reads straddle what was written.
                    chunk = s.recv(rng.choice([1, 5, 333, 8192, 1 << 20]))
                    if not chunk:
                        break
                    got += chunk
            finally:
                sender.join()
            if bytes(got) != data:
                failures.append((seed, len(got), len(data)))

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, f"streams that came back wrong (seed, got, sent): {failures}"


def test_many_tiny_messages_in_one_write_come_back_complete(srv):
    with client(srv) as s:
        lines = b"".join(b"msg %d\n" % i for i in range(20000))
        s.sendall(lines)  # one write; the server sees one or a few large reads
        assert recv_exactly(s, len(lines)) == lines


@pytest.mark.parametrize("size", [0, 1, 10, 8 << 20])
def test_half_close_gets_every_byte_back_then_eof(srv, size):
    data = random.Random(size).randbytes(size)
    with client(srv) as s:
        def send_then_shut():
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send_then_shut)
        sender.start()
        got = recv_until_eof(s)  # raises on a reset or a timeout
        sender.join()
        assert len(got) == len(data)
        assert got == data


def test_a_client_that_resets_mid_write_costs_only_its_own_connection(srv):
    before = srv.metrics()
    stop = threading.Event()
    errors = []
    rounds = [0] * 4

    def steady(k):
        rng = random.Random(k)
        try:
            with client(srv) as s:
                while not stop.is_set():
                    msg = rng.randbytes(rng.randint(1, 50000))
                    s.sendall(msg)
                    assert recv_exactly(s, len(msg)) == msg
                    rounds[k] += 1
        except Exception as e:  # reported below, with the client's number
            errors.append((k, repr(e)))

    others = [threading.Thread(target=steady, args=(k,)) for k in range(4)]
    for t in others:
        t.start()
    # The rude client: a small receive buffer and no reading, so the server has echo output
    # queued for it, then a reset (SO_LINGER 0) while bytes are still flowing both ways.
    for _ in range(3):
        rude = client(srv, rcvbuf=4096)
        rude.setblocking(False)
        sent = 0
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and sent < (8 << 20):
            try:
                sent += rude.send(b"x" * 65536)
            except BlockingIOError:
                time.sleep(0.01)
        rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        rude.close()
    time.sleep(0.5)
    stop.set()
    for t in others:
        t.join()
    assert not errors, errors
    assert all(r > 0 for r in rounds), rounds
    srv.wait_for(lambda: labelled(srv.metrics(), "tcpms_connections_closed_total",
                                  reason="peer_reset")
                 + labelled(srv.metrics(), "tcpms_connections_closed_total", reason="io_error")
                 >= labelled(before, "tcpms_connections_closed_total", reason="peer_reset")
                 + labelled(before, "tcpms_connections_closed_total", reason="io_error") + 3,
                 what="three resets counted")
    # And the server still serves new clients.
    with client(srv) as s:
        s.sendall(b"after the resets")
        assert recv_exactly(s, 16) == b"after the resets"
    assert srv.proc.poll() is None
