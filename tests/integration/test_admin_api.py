"""Admin HTTP API on tcpms-server --protocol echo: health, readiness while draining, metrics
(checked by promtool), the push API by connection id (raw send, kick, listing, paging),
stats, and the error answers (400 bad JSON, 401 token, 404, 405, 413, 501)."""
import base64
import json
import shutil
import signal
import socket
import subprocess
import time

import pytest

from tcpms_harness import echo_server, open_clients, close_all, labelled, recv_exactly


def call(srv, path, method="GET", body=None, token=None, raw=None):
    """(status, parsed JSON or text, headers) from the admin API."""
    import urllib.request
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    req = urllib.request.Request(f"http://127.0.0.1:{srv.admin_port}{path}", method=method,
                                 data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, text, hdrs = r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        status, text, hdrs = e.code, e.read().decode(), dict(e.headers)
    try:
        return status, json.loads(text), hdrs
    except ValueError:
        return status, text, hdrs


def connection_ids(srv):
    status, page, _ = call(srv, "/api/v1/clients?limit=1000")
    assert status == 200, page
    return [c["id"] for c in page["clients"]]


def wait_clients(srv, n):
    srv.wait_for(lambda: len(connection_ids(srv)) == n, what=f"{n} clients listed")


def test_health_ready_and_unknown_paths():
    with echo_server() as srv:
        assert srv.admin("/healthz") == (200, "ok\n")
        assert srv.admin("/readyz") == (200, "ready\n")
        status, body, _ = call(srv, "/no/such/thing")
        assert status == 404 and body == {"error": "no such endpoint: /no/such/thing"}
        status, body, headers = call(srv, "/api/v1/publish")
        assert status == 405 and "not allowed" in body["error"]
        assert headers["Allow"] == "POST"
        status, body, headers = call(srv, "/api/v1/stats", method="DELETE")
        assert status == 405 and headers["Allow"] == "GET"
        status, body, headers = call(srv, "/api/v1/clients/1", method="PUT", body={})
        assert status == 405 and headers["Allow"] == "GET, DELETE"


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed")
def test_metrics_pass_promtool():
    with echo_server() as srv:
        socks = open_clients(srv.port, 3)
        try:
            status, text = srv.admin("/metrics")
            assert status == 200
            check = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                                   capture_output=True, timeout=30)
            assert check.returncode == 0, check.stdout + check.stderr
            assert srv.metrics()["tcpms_connections"] == 3
        finally:
            close_all(socks)


def test_raw_send_by_connection_id():
    with echo_server() as srv:
        a, b = srv.connect(), srv.connect()
        try:
            wait_clients(srv, 2)
            a.sendall(b"mark")
            assert recv_exactly(a, 4) == b"mark"
            # Which listed id is `a`? The one whose peer port is a's local port.
            _, page, _ = call(srv, "/api/v1/clients")
            by_port = {int(c["peer"].rsplit(":", 1)[1]): c for c in page["clients"]}
            ca = by_port[a.getsockname()[1]]
            assert ca["connected"] and ca["protocol"] and ca["pending_output_bytes"] == 0
            status, body, _ = call(srv, f"/api/v1/clients/{ca['id']}")
            assert status == 200 and body["id"] == ca["id"] and body["conn_id"] == int(ca["id"])

            status, body, _ = call(srv, f"/api/v1/clients/{ca['id']}/send",
                                   method="POST", body={"payload": "hello over http\n"})
            assert status == 200 and body["status"] == "sent", body
            assert recv_exactly(a, 16) == b"hello over http\n"
            binary = bytes(range(256))
            status, body, _ = call(srv, f"/api/v1/clients/{ca['id']}/send", method="POST",
                                   body={"payload": base64.b64encode(binary).decode(),
                                         "encoding": "base64"})
            assert status == 200, body
            assert recv_exactly(a, 256) == binary
            b.settimeout(0.3)
            with pytest.raises(socket.timeout):
                b.recv(1)  # only `a` got it
        finally:
            a.close()
            b.close()


def test_kick_closes_the_connection():
    with echo_server() as srv:
        s = srv.connect()
        try:
            wait_clients(srv, 1)
            [cid] = connection_ids(srv)
            status, body, _ = call(srv, f"/api/v1/clients/{cid}", method="DELETE")
            assert status == 200 and body["status"] == "kicked"
            s.settimeout(5)
            assert s.recv(1) == b""
            wait_clients(srv, 0)
            status, body, _ = call(srv, f"/api/v1/clients/{cid}", method="DELETE")
            assert status == 404 and "no open connection" in body["error"]
            status, body, _ = call(srv, f"/api/v1/clients/{cid}")
            assert status == 404
            status, body, _ = call(srv, f"/api/v1/clients/{cid}/send", method="POST",
                                   body={"payload": "x"})
            assert status == 404
            assert labelled(srv.metrics(), "tcpms_connections_closed_total", reason="kicked") == 1
        finally:
            s.close()


def test_listing_pages_visit_every_connection_once():
    with echo_server("--threads", "2") as srv:
        socks = open_clients(srv.port, 25)
        try:
            wait_clients(srv, 25)
            seen, cursor, pages = [], None, 0
            while True:
                path = "/api/v1/clients?limit=7" + (f"&cursor={cursor}" if cursor else "")
                status, page, _ = call(srv, path)
                assert status == 200, page
                assert len(page["clients"]) <= 7
                seen += [c["id"] for c in page["clients"]]
                pages += 1
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert pages == 4
            assert len(seen) == 25 and len(set(seen)) == 25
            for bad in ("0", "1001", "x", "-1"):
                status, body, _ = call(srv, f"/api/v1/clients?limit={bad}")
                assert status == 400 and "limit" in body["error"]
        finally:
            close_all(socks)


def test_bad_requests_get_json_errors():
    with echo_server("--threads", "1") as srv:
        s = srv.connect()
        try:
            wait_clients(srv, 1)
            [cid] = connection_ids(srv)
            send = f"/api/v1/clients/{cid}/send"
            status, body, _ = call(srv, send, method="POST", raw=b'{"payload": "x",')
            assert status == 400 and body["error"].startswith("bad JSON (byte 17): parse error at line 1, column 17"), body
            status, body, _ = call(srv, send, method="POST", raw=b"[1, 2]")
            assert status == 400 and body["error"] == "expected a JSON object"
            status, body, _ = call(srv, send, method="POST", body={"payload": "x", "extra": 1})
            assert status == 400 and 'unknown field "extra"' in body["error"]
            status, body, _ = call(srv, send, method="POST", body={})
            assert status == 400 and body["error"] == 'missing "payload"'
            status, body, _ = call(srv, send, method="POST",
                                   body={"payload": "@@@", "encoding": "base64"})
            assert status == 400 and "not valid base64 (at character 0)" in body["error"]
            status, body, _ = call(srv, send, method="POST",
                                   body={"payload": "x", "encoding": "latin1"})
            assert status == 400 and "encoding" in body["error"]
            status, body, _ = call(srv, "/api/v1/clients/not-a-number/send", method="POST",
                                   body={"payload": "x"})
            assert status == 400 and "numeric id" in body["error"]
            status, body, _ = call(srv, send, method="POST", raw=b"x" * (2 << 20))
            assert status == 413 and "larger than" in body["error"]
            # Echo has no topics: publish and send-by-topic are 501 with a pointer to raw sends.
            status, body, _ = call(srv, "/api/v1/publish", method="POST",
                                   body={"topic": "a/b", "payload": "x", "qos": 1})
            assert status == 501 and "no topics" in body["error"]
            status, body, _ = call(srv, send, method="POST", body={"topic": "a", "payload": "x"})
            assert status == 501
            status, body, _ = call(srv, "/api/v1/publish", method="POST",
                                   body={"topic": "a", "payload": "x", "qos": 3})
            assert status == 400 and "qos" in body["error"]
            status, body, _ = call(srv, "/api/v1/publish", method="POST", body={"payload": "x"})
            assert status == 400 and body["error"] == 'missing "topic"'
            status, body, _ = call(srv, "/api/v1/publish", method="POST",
                                   body={"topic": "a", "payload": "x", "retain": "yes"})
            assert status == 400 and "retain" in body["error"]
            # The connection is untouched by all of that.
            s.sendall(b"still here")
            assert recv_exactly(s, 10) == b"still here"
        finally:
            s.close()


def test_token_is_required_when_set():
    with echo_server("--admin-token", "T0ken") as srv:
        status, body, headers = call(srv, "/api/v1/stats")
        assert status == 401 and body == {"error": "missing or wrong bearer token"}
        assert headers["WWW-Authenticate"] == "Bearer"
        assert call(srv, "/api/v1/stats", token="wrong")[0] == 401
        assert call(srv, "/api/v1/stats", token="T0ken2")[0] == 401
        assert call(srv, "/metrics")[0] == 401
        assert call(srv, "/api/v1/clients", method="DELETE")[0] == 401
        status, body, _ = call(srv, "/api/v1/stats", token="T0ken")
        assert status == 200 and body["connections"] == 0
        assert call(srv, "/metrics", token="T0ken")[0] == 200
        # Liveness and the (data-free) dashboard page need no token.
        assert srv.admin("/healthz") == (200, "ok\n")
        assert call(srv, "/")[0] == 200


def test_stats_summary_moves_with_load():
    with echo_server("--threads", "2") as srv:
        status, first, _ = call(srv, "/api/v1/stats")
        assert status == 200
        for key in ("connections", "accepted_total", "accepted_per_s", "bytes_in_total",
                    "bytes_out_total", "bytes_in_per_s", "bytes_out_per_s", "rss_bytes",
                    "loops", "uptime_s", "protocol", "ready"):
            assert key in first, key
        assert first["connections"] == 0 and first["ready"] is True
        assert len(first["loops"]) == 2
        assert first["messages_in_per_s"] is None  # echo has no messages
        assert first["rss_bytes"] > 1 << 20
        socks = open_clients(srv.port, 20)
        try:
            for s in socks:
                s.setblocking(True)
                s.sendall(b"x" * 1000)
            for s in socks:
                recv_exactly(s, 1000)
            time.sleep(0.6)
            _, later, _ = call(srv, "/api/v1/stats")
            assert later["connections"] == 20
            assert later["accepted_total"] == 20
            assert later["bytes_in_total"] >= 20000 and later["bytes_out_total"] >= 20000
            assert later["accepted_per_s"] > 0 and later["bytes_in_per_s"] > 0
            assert sum(l["connections"] for l in later["loops"]) == 20
            assert all(0.0 <= l["busy_fraction"] <= 1.0 for l in later["loops"])
        finally:
            close_all(socks)


def test_readyz_is_503_while_draining():
    with echo_server("--drain-timeout-ms", "3000") as srv:
        # A client that never reads keeps the drain going: its echo cannot be flushed.
        s = srv.connect()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setblocking(False)
        sent = 0
        deadline = time.monotonic() + 10
        while sent < 8 << 20 and time.monotonic() < deadline:
            try:
                sent += s.send(b"z" * 65536)
            except BlockingIOError:
                time.sleep(0.01)
        assert srv.admin("/readyz")[0] == 200
        srv.proc.send_signal(signal.SIGTERM)
        srv.wait_for(lambda: srv.admin("/readyz")[0] == 503, timeout=2, what="readyz 503")
        status, text = srv.admin("/readyz")
        assert text == "draining\n"
        assert call(srv, "/api/v1/stats")[1]["ready"] is False
        assert srv.admin("/healthz")[0] == 200  # alive, just not taking new work
        s.close()
        assert srv.proc.wait(timeout=20) == 0


def healthz_ok(srv, timeout=1.0):
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.admin_port}/healthz", timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def test_slow_and_silent_sockets_do_not_stall_health_probes():
    """Issue 14 #6: eight sockets sending one header byte every 2 s made every /healthz fail,
    40 silent ones caused ~24 s of failures. Requests are read on the admin loop, slow ones
    time out, and past the per-source cap the oldest idle socket makes room."""
    with echo_server("--admin-request-timeout-ms", "1500",
                     "--admin-max-connections-per-source", "24") as srv:
        silent = [socket.create_connection(("127.0.0.1", srv.admin_port)) for _ in range(40)]
        slow = [socket.create_connection(("127.0.0.1", srv.admin_port)) for _ in range(8)]
        try:
            ok = failed = 0
            start = time.monotonic()
            while time.monotonic() - start < 4:
                for s in slow:
                    try:
                        s.send(b"G")
                    except OSError:
                        pass
                if healthz_ok(srv):
                    ok += 1
                else:
                    failed += 1
                time.sleep(0.2)
            assert failed == 0 and ok >= 15, (ok, failed)
            # The slow senders were closed by the request deadline, not served forever.
            for s in slow:
                s.settimeout(3)
                try:
                    while s.recv(4096):
                        pass
                except (ConnectionResetError, socket.timeout):
                    pass
            m = srv.metrics()
            assert m["tcpms_admin_request_timeouts_total"] + m["tcpms_admin_connections_evicted_total"] >= 8, m
            assert m["tcpms_admin_connections"] <= 24 + 2
        finally:
            close_all(silent + slow)


def test_chunked_body_over_the_limit_is_refused_as_it_arrives():
    """Issue 14 #7: with a token, a chunked body bypassed the 1 MiB limit (100 MiB accepted,
    554 MB RSS). It is counted as it arrives and refused with 413."""
    from tcpms_harness import rss_bytes
    with echo_server("--admin-token", "T") as srv:
        before = rss_bytes(srv.pid)
        s = socket.create_connection(("127.0.0.1", srv.admin_port))
        s.sendall(b"POST /api/v1/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer T\r\n"
                  b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n")
        chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
        sent = 0
        try:
            for _ in range(1600):  # 100 MiB if nobody stops it
                s.sendall(chunk)
                sent += 0x10000
        except OSError:
            pass
        s.settimeout(5)
        answer = b""
        try:
            while True:
                part = s.recv(65536)
                if not part:
                    break
                answer += part
        except (ConnectionResetError, socket.timeout):
            pass
        s.close()
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b"request body larger than 1048576 bytes" in answer
        assert rss_bytes(srv.pid) - before < 16 << 20
        assert healthz_ok(srv)


def test_json_numbers_out_of_range_are_a_400():
    """Issue 14 #7: {"qos": 1e400} answered 500 with an internal exception text."""
    with echo_server() as srv:
        status, body, _ = call(srv, "/api/v1/publish", method="POST",
                               raw=b'{"topic": "a", "payload": "x", "qos": 1e400}')
        assert status == 400, body
        assert "number overflow" in body["error"] and "exception" not in body["error"]


def test_a_second_server_cannot_share_the_admin_port():
    """cpp-httplib set SO_REUSEPORT on its listener, so two servers with the same
    --admin-listen both started and the kernel split the requests between them."""
    with echo_server("--threads", "1") as first:
        port = first.admin_port
        r = subprocess.run([first.args[0], "--protocol", "echo", "--listen", "127.0.0.1:0",
                            "--admin-listen", f"127.0.0.1:{port}"],
                           capture_output=True, text=True, timeout=30)
        out = r.stdout + r.stderr
        assert r.returncode == 69, out
        assert f"127.0.0.1:{port}" in out and "in use" in out and "--admin-listen" in out, out
        # Every request still reaches the first server.
        for _ in range(20):
            status, body, _ = call(first, "/api/v1/stats")
            assert status == 200 and len(body["loops"]) == 1


def test_readyz_turns_503_at_once_while_new_clients_are_still_accepted():
    """On SIGTERM an idle server used to exit ~4 ms later, before a balancer polling /readyz
    could see it go unready. Now /readyz says 503 at once and the listener keeps accepting
    (and serving) for drain.announce_ms before the drain."""
    with echo_server("--drain-announce-ms", "1500") as srv:
        srv.proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        srv.wait_for(lambda: srv.admin("/readyz")[0] == 503, timeout=1, interval=0.01, what="readyz 503")
        assert time.monotonic() - t0 < 0.5
        time.sleep(0.5)
        c = srv.connect(timeout=2)  # still accepted, and served
        c.sendall(b"late but welcome")
        assert recv_exactly(c, 16) == b"late but welcome"
        c.close()
        assert srv.proc.poll() is None
        assert srv.proc.wait(timeout=20) == 0
        assert time.monotonic() - t0 >= 1.4
        assert "still accepting for 1500 ms" in srv.output()


def test_a_second_signal_cuts_the_announcement_short():
    with echo_server("--drain-announce-ms", "60000") as srv:
        srv.proc.send_signal(signal.SIGTERM)
        srv.wait_for(lambda: "still accepting" in srv.output(), timeout=5)
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(timeout=10) == 0


def test_reaching_the_connection_cap_is_logged():
    """Issue 14 #13: hitting the connection cap logged nothing (descriptor exhaustion did)."""
    with echo_server("--max-connections", "2", "--threads", "1") as srv:
        socks = [srv.connect() for _ in range(4)]
        try:
            srv.wait_for(lambda: "max_connections (2) reached" in srv.output(), timeout=5)
            assert srv.metrics()["tcpms_connections_rejected_total"] >= 1
        finally:
            close_all(socks)


def start_on_unix_socket(path):
    """tcpms-server echo on a Unix socket (the harness parses HOST:PORT, which it has not)."""
    from tcpms_harness import binary
    proc = subprocess.Popen([binary("tcpms-server"), "--protocol", "echo", "--listen",
                             f"unix:{path}", "--no-admin"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "listening on" in line or "cannot listen" in line:
            break
    return proc, "".join(lines)


def test_a_stale_unix_socket_file_does_not_block_a_restart(tmp_path):
    """A Unix socket file left behind by a server that was killed made the next start fail
    with "Address already in use"."""
    path = tmp_path / "echo.sock"
    proc, out = start_on_unix_socket(path)
    assert "listening on" in out, out
    proc.kill()  # kill -9: the socket file stays behind
    proc.wait()
    assert path.exists()
    proc, out = start_on_unix_socket(path)
    try:
        assert "listening on" in out, out
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(path))
        s.sendall(b"back")
        assert recv_exactly(s, 4) == b"back"
        s.close()
        # A live server's socket is not taken away: a second one fails to start.
        other, out2 = start_on_unix_socket(path)
        assert other.wait(timeout=10) == 69 and "in use" in out2, out2
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
