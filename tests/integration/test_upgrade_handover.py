"""The upgrade handover (SIGUSR2, `tcpms-server --upgrade`; docs/upgrade.md): a running server
hands its listeners and its connections to a new process. Clients keep their sockets: every
byte sent before, during and after arrives once, in order, with no reconnect. A new process
that fails halfway, speaks no common version, or sends garbage leaves every client with the
old process, which keeps accepting too."""
import os
import re
import signal
import socket
import subprocess
import time

from tcpms_harness import SANITIZED, binary, close_all, echo_all, echo_server, open_clients

TIMEOUT = 60.0 if SANITIZED else 20.0
HERE = os.path.dirname(os.path.abspath(__file__))


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def wait_until(predicate, what, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def stop_pid(pid):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    wait_until(lambda: not os.path.exists(f"/proc/{pid}") or
               open(f"/proc/{pid}/stat").read().split()[2] == "Z", f"pid {pid} to stop")


def fake_successor(tmp_path):
    """upgrade.binary for the misbehaving stand-ins of handover_fake.py."""
    path = tmp_path / "fake-successor"
    path.write_text(f"#!/bin/sh\nexec /usr/bin/python3 {HERE}/handover_fake.py\n")
    path.chmod(0o755)
    return str(path)


def payloads(n, tag):
    return [f"{tag}-{i}-".encode() * 50 for i in range(n)]


def test_echo_clients_keep_their_sockets_and_bytes_across_an_upgrade(tmp_path):
    pid_file = str(tmp_path / "tcpms.pid")
    with echo_server("--threads", "2", "--pid-file", pid_file, "--upgrade-batch", "7") as srv:
        wait_until(lambda: read_pid(pid_file) == srv.pid, "the pid file")
        clients = open_clients(srv.port, 40)
        assert echo_all(clients, payloads(40, "before")) == 40
        # One client does not read: its echo piles up in the server's output queue, which must
        # move with it (unsent output), and a half-read stream must continue where it was.
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 10)
        slow.connect(("127.0.0.1", srv.port))
        slow_data = os.urandom(4 << 20)
        slow.settimeout(TIMEOUT)
        sent = 0
        slow.setblocking(False)
        while sent < len(slow_data):
            try:
                sent += slow.send(slow_data[sent:sent + 65536])
            except BlockingIOError:
                break  # the server stopped reading from us: its queue is full
        slow.settimeout(TIMEOUT)

        up = subprocess.run([binary("tcpms-server"), "--upgrade", "--pid-file", pid_file],
                            capture_output=True, text=True, timeout=TIMEOUT)
        assert up.returncode == 0, up.stdout + up.stderr
        new_pid = read_pid(pid_file)
        assert new_pid != srv.pid and new_pid > 0
        assert f"took over from pid {srv.pid}" in up.stdout
        try:
            # The old process exits once it holds nothing; nobody was disconnected.
            assert srv.proc.wait(timeout=TIMEOUT) == 0
            out = srv.output()
            assert "handed over" in out, out
            assert "handover: took the listeners and 41 connection(s)" in out, out
            # Same sockets, still served (now by the new process), nothing lost or doubled.
            assert echo_all(clients, payloads(40, "after")) == 40
            # The slow client's bytes: everything it sent comes back, in order, exactly once.
            if sent < len(slow_data):
                slow.sendall(slow_data[sent:])
            slow.shutdown(socket.SHUT_WR)
            got = bytearray()
            while len(got) < len(slow_data):
                chunk = slow.recv(1 << 20)
                if not chunk:
                    break
                got += chunk
            assert len(got) == len(slow_data)
            assert bytes(got) == slow_data
            # New clients reach the new process on the same port.
            fresh = open_clients(srv.port, 5)
            assert echo_all(fresh, payloads(5, "fresh")) == 5
            close_all(fresh)
        finally:
            close_all(clients)
            slow.close()
            stop_pid(new_pid)


def test_a_new_process_that_dies_halfway_leaves_every_client_with_the_old_one(tmp_path):
    pid_file = str(tmp_path / "tcpms.pid")
    with echo_server("--threads", "2", "--pid-file", pid_file, "--upgrade-batch", "5",
                     "--upgrade-binary", fake_successor(tmp_path),
                     env={"HANDOVER_FAKE": "die-after-listeners"}) as srv:
        clients = open_clients(srv.port, 30)
        assert echo_all(clients, payloads(30, "before")) == 30
        srv.proc.send_signal(signal.SIGUSR2)
        srv.wait_for(lambda: "handover stopped" in srv.output(), timeout=TIMEOUT,
                     what="the handover to stop")
        out = srv.output()
        assert "got frame kind 6 with 5 descriptors; dying" in out, out
        assert "keeps serving 30 connection(s)" in out, out
        assert srv.proc.poll() is None
        assert read_pid(pid_file) == srv.pid
        # Every client still served on its own socket, and the old process accepts again.
        assert echo_all(clients, payloads(30, "after")) == 30
        fresh = open_clients(srv.port, 5)
        assert echo_all(fresh, payloads(5, "fresh")) == 5
        close_all(fresh)
        close_all(clients)


def test_a_new_process_that_took_every_connection_and_dies_before_done_gives_them_all_back(tmp_path):
    # Handover version 4: the old process keeps what was taken parked until Done is answered.
    pid_file = str(tmp_path / "tcpms.pid")
    with echo_server("--threads", "2", "--pid-file", pid_file, "--upgrade-batch", "5",
                     "--upgrade-binary", fake_successor(tmp_path),
                     env={"HANDOVER_FAKE": "dies-at-done"}) as srv:
        clients = open_clients(srv.port, 30)
        assert echo_all(clients, payloads(30, "before")) == 30
        # Unanswered bytes in flight while the connections are parked on both sides.
        for i, c in enumerate(clients):
            c.sendall(f"during {i}\n".encode())
        srv.proc.send_signal(signal.SIGUSR2)
        srv.wait_for(lambda: "handover stopped" in srv.output(), timeout=TIMEOUT,
                     what="the handover to stop")
        out = srv.output()
        assert re.search(r"handover fake: took [1-9]\d* batches; dying at done", out), out
        assert "30 of them taken back from the new process" in out, out
        assert srv.proc.poll() is None
        assert read_pid(pid_file) == srv.pid
        # Every client is served on its own socket, its bytes from the handover answered once.
        for i, c in enumerate(clients):
            want = f"during {i}\n".encode()
            got = b""
            while len(got) < len(want):
                chunk = c.recv(len(want) - len(got))
                assert chunk, f"client {i} was disconnected"
                got += chunk
            assert got == want
        assert echo_all(clients, payloads(30, "after")) == 30
        close_all(clients)


def test_connections_the_new_process_does_not_take_stay_with_the_old_one(tmp_path):
    with echo_server("--threads", "2", "--upgrade-batch", "4",
                     "--upgrade-binary", fake_successor(tmp_path),
                     env={"HANDOVER_FAKE": "take-none"}) as srv:
        clients = open_clients(srv.port, 20)
        assert echo_all(clients, payloads(20, "before")) == 20
        srv.proc.send_signal(signal.SIGUSR2)
        srv.wait_for(lambda: "stay here until they close" in srv.output(), timeout=TIMEOUT,
                     what="the handover to finish")
        out = srv.output()
        fake_pid = int(out.split("fake-successor (pid ")[1].split(")")[0])
        try:
            assert "0 connection(s); 20 stay here until they close" in out, out
            assert "took none of" in out, out
            # Every client refused by the new process is served on by the old one.
            assert echo_all(clients, payloads(20, "after")) == 20
            assert srv.proc.poll() is None
            close_all(clients)
            # Once they are gone, the old process has nothing left and exits.
            assert srv.proc.wait(timeout=TIMEOUT) == 0
        finally:
            close_all(clients)
            os.kill(fake_pid, signal.SIGKILL)


def test_a_new_process_without_a_common_version_is_refused_clearly(tmp_path):
    pid_file = str(tmp_path / "tcpms.pid")
    with echo_server("--threads", "1", "--upgrade-binary", fake_successor(tmp_path),
                     "--pid-file", pid_file, env={"HANDOVER_FAKE": "version"}) as srv:
        clients = open_clients(srv.port, 10)
        wait_until(lambda: read_pid(pid_file) == srv.pid, "the pid file")
        # The operator's front end hears the refusal from the running server (F.upgrade), at
        # once rather than after its own wait for a new pid.
        up = subprocess.run([binary("tcpms-server"), "--upgrade", "--pid-file", pid_file],
                            capture_output=True, text=True, timeout=TIMEOUT)
        assert up.returncode == 1, up.stdout + up.stderr
        # "this one 1-N": N is this build's highest version.
        assert re.search(rf"pid {srv.pid} did not hand over: the new process speaks handover "
                         r"versions 7-9, this one 1-\d: no version in common", up.stderr), up.stderr
        out = srv.output()
        assert "handover stopped" in out, out
        assert re.search(r"speaks handover versions 7-9, this one 1-\d: no version in common, "
                         r"refused", out), out
        # The new process hears why too (it is given a moment to say so before it is stopped).
        srv.wait_for(lambda: "handover fake: refused (1): the new process speaks handover "
                             "versions 7-9" in srv.output(), timeout=TIMEOUT,
                     what="the new process to hear the refusal")
        assert echo_all(clients, payloads(10, "after")) == 10
        close_all(clients)


def test_garbage_on_the_handover_socket_is_an_error_not_a_crash(tmp_path):
    with echo_server("--threads", "1", "--upgrade-binary", fake_successor(tmp_path),
                     env={"HANDOVER_FAKE": "garbage"}) as srv:
        clients = open_clients(srv.port, 10)
        srv.proc.send_signal(signal.SIGUSR2)
        srv.wait_for(lambda: "handover stopped" in srv.output(), timeout=TIMEOUT,
                     what="the handover to stop")
        assert "frame longer than the handover allows" in srv.output()
        assert srv.proc.poll() is None
        assert echo_all(clients, payloads(10, "after")) == 10
        fresh = open_clients(srv.port, 2)
        assert echo_all(fresh, payloads(2, "fresh")) == 2
        close_all(fresh + clients)


def test_tls_13_connections_move_and_tls_12_ones_stay_with_the_old_process_until_they_close(tmp_path):
    """A TLS 1.3 connection past its handshake is its record keys and sequence numbers, which
    travel (handover version 6): the client keeps its socket, served by the new process. A
    TLS 1.2 connection's state is inside OpenSSL: it is not moved, and the old process serves
    it until it closes, then exits."""
    import ssl

    from tls_certs import Pki
    pki = Pki()
    try:
        conf = tmp_path / "tcpms.toml"
        conf.write_text('listen = "127.0.0.1:0"\n' + pki.listener())
        pid_file = str(tmp_path / "tcpms.pid")
        with echo_server("--config", str(conf), "--threads", "1", "--pid-file", pid_file) as srv:
            tls_port = srv.port_of("tls")
            ctx = ssl.create_default_context(cafile=pki.ca.cert)
            ctx12 = ssl.create_default_context(cafile=pki.ca.cert)
            ctx12.maximum_version = ssl.TLSVersion.TLSv1_2

            def tls_client(context):
                return context.wrap_socket(socket.create_connection(("127.0.0.1", tls_port),
                                                                    timeout=TIMEOUT),
                                           server_hostname="localhost")
            tls13, tls12 = tls_client(ctx), tls_client(ctx12)
            assert (tls13.version(), tls12.version()) == ("TLSv1.3", "TLSv1.2")
            for c in (tls13, tls12):
                c.sendall(b"before")
                assert c.recv(6) == b"before"
            plain = open_clients(srv.port, 3)
            srv.proc.send_signal(signal.SIGUSR2)
            wait_until(lambda: read_pid(pid_file) not in (0, srv.pid), "the new process")
            new_pid = read_pid(pid_file)
            try:
                srv.wait_for(lambda: "1 stay here until they close" in srv.output(),
                             timeout=TIMEOUT, what="the handover to finish")
                assert "handover: took the listeners and 4 connection(s)" in srv.output()
                assert echo_all(plain, payloads(3, "moved")) == 3
                # The TLS 1.2 client is still served by the old process, which runs on.
                tls12.sendall(b"during")
                assert tls12.recv(6) == b"during"
                assert srv.proc.poll() is None
                # New TLS clients reach the new process on the same port.
                fresh = tls_client(ctx)
                fresh.sendall(b"fresh!")
                assert fresh.recv(6) == b"fresh!"
                fresh.close()
                tls12.close()
                assert srv.proc.wait(timeout=TIMEOUT) == 0  # nothing left: the old one exits
                # The TLS 1.3 client, moved, is served by the new process alone now, records
                # of every size (several per message) included.
                for size in (1, 16384, 100_000):
                    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
                    tls13.sendall(data)
                    got = b""
                    while len(got) < size:
                        chunk = tls13.recv(65536)
                        assert chunk, "the moved TLS connection was closed"
                        got += chunk
                    assert got == data
                tls13.close()
            finally:
                close_all(plain)
                stop_pid(new_pid)
    finally:
        pki.cleanup()
