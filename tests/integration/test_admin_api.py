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
