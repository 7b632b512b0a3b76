"""Start and stop: SIGTERM drains (output already owed to a client reaches it) and exits 0;
bad flags exit 64 and a port in use exits 69, each with a message that says why."""
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from tcpms_harness import SANITIZED, binary, echo_server

TIMEOUT = 60.0 if SANITIZED else 20.0


def test_sigterm_delivers_pending_output_then_exits_zero():
    data = os.urandom(8 << 20)
    with echo_server("--threads", "1", "--drain-timeout-ms", "10000") as srv:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 10)
        s.settimeout(TIMEOUT)
        s.connect(("127.0.0.1", srv.port))

        def send():
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the server stops reading while it drains; it may reset us at the end

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        # Wait until the server has stalled on us with echo output queued.
        srv.wait_for(lambda: srv.metrics()["tcpms_pending_output_bytes"] > 0, timeout=TIMEOUT,
                     what="output queued for the slow client")
        srv.wait_for(lambda: stable(srv, "tcpms_bytes_received_total"), timeout=TIMEOUT,
                     what="reading paused")
        owed = int(srv.metrics()["tcpms_bytes_received_total"])  # echo owes all of it back
        assert 0 < owed < len(data)

        srv.proc.send_signal(signal.SIGTERM)
        got = bytearray()
        while True:
            chunk = s.recv(1 << 20)  # a reset here means the drain lost bytes it owed us
            if not chunk:
                break
            got += chunk
        assert len(got) >= owed, f"drain delivered {len(got)} of the {owed} bytes owed"
        assert bytes(got) == data[:len(got)]
        assert srv.proc.wait(timeout=TIMEOUT) == 0
        s.close()
        out = srv.output()
        assert "draining" in out and "stopped" in out


def stable(srv, metric):
    a = srv.metrics()[metric]
    time.sleep(0.3)
    return srv.metrics()[metric] == a


def test_sigterm_with_idle_clients_exits_zero_promptly():
    with echo_server("--threads", "2") as srv:
        clients = [srv.connect() for _ in range(20)]
        for c in clients:
            c.sendall(b"hi")
            assert c.recv(2) == b"hi"
        start = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        for c in clients:
            assert c.recv(16) == b"", "a drained client sees EOF"
            c.close()
        assert srv.proc.wait(timeout=TIMEOUT) == 0
        assert time.monotonic() - start < 4.0


def run_server(*args):
    return subprocess.run([binary("tcpms-server"), "--protocol", "echo", *args], capture_output=True, text=True,
                          timeout=TIMEOUT)


@pytest.mark.parametrize("args, says", [
    (["--no-such-flag"], "no-such-flag"),
    (["--threads", "many"], "threads"),
    (["--listen", "not-an-address"], "--listen"),
    (["--protocol", "gopher"], "protocol"),
    (["--output-high-water", "1000", "--output-hard-limit", "10"], "output-hard-limit"),
])
def test_bad_flags_exit_64_with_a_message(args, says):
    r = run_server(*args, "--no-admin")
    assert r.returncode == 64, (r.returncode, r.stdout, r.stderr)
    assert says in (r.stdout + r.stderr), r.stdout + r.stderr


@pytest.mark.parametrize("which", ["--listen", "--admin-listen"])
def test_port_in_use_exits_69_and_says_so(which):
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        args = [which, f"127.0.0.1:{port}"]
        args += ["--admin-listen", "127.0.0.1:0"] if which == "--listen" else ["--listen",
                                                                             "127.0.0.1:0"]
        r = run_server(*args)
        out = r.stdout + r.stderr
        assert r.returncode == 69, (r.returncode, out)
        assert str(port) in out and "in use" in out.lower(), out
        # Named, and refused at once: a live holder is not waited for (port_wait_ms).
        assert f"held by pid {os.getpid()} (" in out and "waiting up to" not in out, out
    finally:
        taken.close()
