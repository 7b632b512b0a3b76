"""The examples are real servers: each prints the harness's "listening on" line, takes
--listen, serves its protocol, and exits 0 on SIGTERM."""
import subprocess
import time

import pytest

from tcpms_harness import SANITIZED, Server, binary, recv_exactly

TIMEOUT = 30.0 if SANITIZED else 10.0


def example(name):
    return Server("--listen", "127.0.0.1:0", binary_name=f"example_{name}")


def read_line(f):
    line = f.readline()
    assert line.endswith("\n"), f"connection ended mid-line: {line!r}"
    return line[:-1]


def test_echo_example_echoes():
    with example("echo") as srv:
        with srv.connect(timeout=TIMEOUT) as s:
            s.sendall(b"hello example")
            assert recv_exactly(s, 13) == b"hello example"
    assert srv.proc.wait(timeout=TIMEOUT) == 0


def test_line_service_answers_each_line_and_keeps_partial_lines():
    with example("line_service") as srv:
        with srv.connect(timeout=TIMEOUT) as s:
            f = s.makefile("r", encoding="utf-8", newline="\n")
            # Several lines in one write, answered in order.
            s.sendall(b"PING\nECHO hi there\nUPPER shout\r\nNOPE\n")
            assert [read_line(f) for _ in range(4)] == ["PONG", "hi there", "SHOUT",
                                                         "ERR unknown command"]
            # One line in pieces: nothing is answered until its "\n" arrives.
            s.sendall(b"UPP")
            time.sleep(0.1)
            s.sendall(b"ER part")
            time.sleep(0.1)
            s.setblocking(False)
            with pytest.raises(BlockingIOError):
                s.recv(1)  # no answer to half a line
            s.setblocking(True)
            s.settimeout(TIMEOUT)
            s.sendall(b"ial\nPING\n")
            assert read_line(f) == "PARTIAL"
            assert read_line(f) == "PONG"
            s.sendall(b"QUIT\nPING\n")  # nothing after QUIT is answered
            assert read_line(f) == "BYE"
            assert f.readline() == "", "QUIT closes the connection"
            f.close()
        with srv.connect(timeout=TIMEOUT) as s:
            s.sendall(b"x" * 10000)  # no newline, past the line limit
            f = s.makefile("r", encoding="utf-8", newline="\n")
            assert read_line(f) == "ERR line too long"
            assert f.readline() == ""
            f.close()
    assert srv.proc.wait(timeout=TIMEOUT) == 0


def test_push_example_sends_ticks_to_every_client_each_second():
    with example("push_every_second") as srv:
        clients = [srv.connect(timeout=TIMEOUT) for _ in range(3)]
        files = [c.makefile("r", encoding="utf-8", newline="\n") for c in clients]
        start = time.monotonic()
        first = [read_line(f) for f in files]
        second = [read_line(f) for f in files]
        took = time.monotonic() - start
        for a, b in zip(first, second):
            assert a.startswith("tick ") and b.startswith("tick ")
            assert int(b.split()[1]) == int(a.split()[1]) + 1, (a, b)
        assert 0.5 < took < 3.5, f"two ticks took {took:.2f} s"
        # The count covers every client on that loop.
        assert sum(int(line.split()[2]) for line in set(second)) >= 1
        for f, c in zip(files, clients):
            f.close()  # the socket's descriptor stays open while its file object does
            c.close()
    assert srv.proc.wait(timeout=TIMEOUT) == 0


@pytest.mark.parametrize("name", ["line_service", "push_every_second"])
def test_examples_reject_bad_arguments(name):
    r = subprocess.run([binary(f"example_{name}"), "--bogus"], capture_output=True, text=True,
                       timeout=TIMEOUT)
    assert r.returncode == 64 and "usage" in r.stderr
