"""One front door for --processes P (issue 15): one admin port answers for every worker.
Clients spread over three workers are listed together and paged, looked up, pushed to and
kicked by client id whichever worker holds them; a publish counts the receivers on every
worker; /metrics and /api/v1/stats add the workers up (and pass promtool); sessions and
retained messages are handled on the worker that has them; no worker opens an admin port of
its own; the port comes back when worker 0 restarts, and /readyz says draining on SIGTERM."""
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt

from tcpms_harness import Server, labelled

PROCESSES = 3


def api(srv, path, method="GET", body=None):
    return srv.api(path, method, body)


class Client:
    """A paho client that records what it receives and when it is disconnected."""

    def __init__(self, cid, port, clean=True):
        self.cid = cid
        self.got = []
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.c = mqtt.Client(client_id=cid, clean_session=clean)
        self.c.on_connect = lambda *a: self.connected.set()
        self.c.on_disconnect = lambda *a: self.disconnected.set()
        self.c.on_message = lambda cl, u, m: self.got.append((m.topic, m.payload))
        self.c.reconnect_delay_set(60, 60)  # a kicked client stays away
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert self.connected.wait(10), cid

    def stop(self):
        self.c.disconnect()
        self.c.loop_stop()


def children(pid):
    out = subprocess.run(["ps", "--ppid", str(pid), "-o", "pid="], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def listening_ports(pids):
    """TCP ports any of `pids` listens on (ss names the owning processes)."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout
    ports = set()
    for line in out.splitlines():
        if any(f"pid={p}," in line for p in pids):
            ports.add(int(line.split()[3].rsplit(":", 1)[1]))
    return ports


def test_one_admin_port_answers_for_every_worker():
    with Server("--protocol", "mqtt", "--processes", str(PROCESSES), "--threads", "1",
                "--drain-announce-ms", "3000") as srv:
        srv.wait_for(lambda: srv.admin("/readyz")[0] == 200, what="every worker ready")
        srv.wait_for(lambda: srv.metrics().get("tcpms_mesh_links_up") == PROCESSES * (PROCESSES - 1),
                     what="the workers' mesh")
        # Only the listener and the one admin port: no worker has an admin port of its own.
        workers = children(srv.pid)
        assert len(workers) == PROCESSES
        assert listening_ports(workers) == {srv.port, srv.admin_port}

        ids = [f"dev-{i:02d}" for i in range(15)]
        clients = {cid: Client(cid, srv.port) for cid in ids}
        for c in clients.values():
            c.c.subscribe("all/news", qos=1)
        srv.wait_for(lambda: api(srv, "/api/v1/stats")[1]["protocol_stats"]["subscriptions"] == len(ids),
                     what="every subscription counted")

        # One list over every worker, paged in client-id order.
        status, page = api(srv, "/api/v1/clients?limit=1000")
        assert status == 200, page
        assert [c["id"] for c in page["clients"]] == ids and page["next_cursor"] is None
        loop_of = {c["id"]: c["loop"] for c in page["clients"]}  # one loop per worker here
        assert len(set(loop_of.values())) > 1, f"all clients on one worker: {loop_of}"
        seen, cursor = [], ""
        while True:
            status, page = api(srv, f"/api/v1/clients?limit=4{'&cursor=' + cursor if cursor else ''}")
            assert status == 200 and len(page["clients"]) <= 4, page
            seen += [c["id"] for c in page["clients"]]
            if page["next_cursor"] is None:
                break
            cursor = page["next_cursor"]
        assert seen == ids
        assert api(srv, "/api/v1/clients?limit=0")[0] == 400  # the workers' own checks

        # A client on another worker than the front door's: looked up, pushed to.
        far = [cid for cid in ids if loop_of[cid] != 0]
        assert far, loop_of
        target = far[0]
        status, info = api(srv, f"/api/v1/clients/{target}")
        assert status == 200 and info["connected"] and info["loop"] == loop_of[target], info
        assert [s["filter"] for s in info["subscriptions"]] == ["all/news"]
        assert api(srv, f"/api/v1/clients/{target}/subscriptions")[1]["subscriptions"][0]["filter"] == "all/news"
        assert api(srv, "/api/v1/clients/nobody")[0] == 404
        status, body = api(srv, f"/api/v1/clients/{target}/send", "POST",
                           {"topic": "direct", "payload": "only you", "qos": 1})
        assert status == 200, body
        srv.wait_for(lambda: ("direct", b"only you") in clients[target].got, what="the push by id")
        assert api(srv, "/api/v1/clients/nobody/send", "POST", {"topic": "d", "payload": "x"})[0] == 404

        # A publish reaches the subscribers of every worker, and says so.
        status, body = api(srv, "/api/v1/publish", "POST", {"topic": "all/news", "payload": "hello"})
        assert status == 200 and body["receivers"] == len(ids), body
        srv.wait_for(lambda: all(("all/news", b"hello") in c.got for c in clients.values()),
                     what="every subscriber getting the publish")
        status, body = api(srv, "/api/v1/subscriptions?topic=all/news")
        assert sorted(s["client_id"] for s in body["subscriptions"]) == ids, body
        assert api(srv, "/api/v1/publish", "POST", {"topic": "a/+", "payload": "x"})[0] == 400

        # The server's figures are the workers' sums.
        samples = srv.metrics()
        assert samples["tcpms_mqtt_sessions_connected"] == len(ids)
        mesh_links = 2 * samples["tcpms_mesh_links_up"]  # each link is a connection at both ends
        assert samples["tcpms_connections"] == len(ids) + mesh_links
        assert labelled(samples, "tcpms_process_resident_memory_bytes") > 0
        assert len([k for k in samples if k.startswith("tcpms_process_resident_memory_bytes{")]) == PROCESSES
        if shutil.which("promtool"):
            text = srv.admin("/metrics")[1]
            check = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                                   capture_output=True, timeout=30)
            assert check.returncode == 0, check.stdout + check.stderr
        status, stats = api(srv, "/api/v1/stats")
        assert stats["connections"] == len(ids) + mesh_links
        assert stats["protocol_stats"]["sessions_connected"] == len(ids)
        assert len(stats["loops"]) == PROCESSES and stats["ready"] is True
        assert [w["index"] for w in stats["workers"]] == list(range(PROCESSES))

        # Kick a client on another worker.
        victim = far[-1]
        status, body = api(srv, f"/api/v1/clients/{victim}", "DELETE")
        assert status == 200, body
        assert clients[victim].disconnected.wait(5), "the kicked client is still connected"
        srv.wait_for(lambda: api(srv, f"/api/v1/clients/{victim}")[0] == 404, what="the kicked client gone")

        # An offline persistent session on another worker: listed, deleted there.
        keeper = None
        for i in range(20):
            c = Client(f"keeper-{i}", srv.port, clean=False)
            c.c.subscribe("keep/me", qos=1)
            srv.wait_for(lambda: api(srv, f"/api/v1/clients/{c.cid}")[0] == 200, what="keeper")
            if api(srv, f"/api/v1/clients/{c.cid}")[1]["loop"] != 0:
                keeper = c
                break
            c.stop()
            api(srv, f"/api/v1/sessions/{c.cid}", "DELETE")
        assert keeper is not None
        assert api(srv, f"/api/v1/sessions/{keeper.cid}", "DELETE")[0] == 409  # connected
        keeper.stop()
        srv.wait_for(lambda: keeper.cid in [s["id"] for s in api(srv, "/api/v1/sessions")[1]["sessions"]],
                     what="the offline session listed")
        status, body = api(srv, f"/api/v1/clients/{keeper.cid}/send", "POST",
                           {"topic": "keep/me", "payload": "later", "qos": 1})
        assert status == 202, body
        assert api(srv, f"/api/v1/sessions/{keeper.cid}", "DELETE")[0] == 200
        assert api(srv, f"/api/v1/sessions/{keeper.cid}", "DELETE")[0] == 404

        # Retained messages: every worker holds each; a delete removes every copy.
        assert api(srv, "/api/v1/publish", "POST",
                   {"topic": "cfg/x", "payload": "v1", "retain": True})[0] == 200
        srv.wait_for(lambda: labelled(srv.metrics(), "tcpms_mqtt_retained_messages") ==
                     PROCESSES * api(srv, "/api/v1/stats")[1]["protocol_stats"]["retained"],
                     what="the retained message on every worker")
        assert api(srv, "/api/v1/retained/cfg/x")[1]["payload"] == "v1"
        assert api(srv, "/api/v1/retained/cfg/x", "DELETE")[0] == 200
        assert api(srv, "/api/v1/retained/cfg/x")[0] == 404
        per_worker = [v for k, v in srv.metrics().items()
                      if k.startswith("tcpms_mqtt_retained_messages{")]
        assert len(set(per_worker)) == 1, per_worker

        for c in clients.values():
            if c.cid != victim:
                c.stop()

        # Worker 0 serves the port: killed, it is restarted and the port comes back.
        holder = [p for p in children(srv.pid) if srv.admin_port in listening_ports([p])]
        assert len(holder) == 1
        os.kill(holder[0], signal.SIGKILL)
        srv.wait_for(lambda: srv.admin_port in listening_ports(children(srv.pid)) and
                     holder[0] not in children(srv.pid), what="the admin port back")
        srv.wait_for(lambda: srv.admin("/readyz")[0] == 200, what="ready again")

        # SIGTERM: not ready while the workers still accept (drain.announce_ms).
        srv.proc.send_signal(signal.SIGTERM)
        srv.wait_for(lambda: srv.admin("/readyz")[0] == 503, what="draining", timeout=3)


def test_raw_connections_of_every_worker_by_connection_id():
    """Echo: the connections of both workers in one list (paged by loop and slot), and a raw
    send and a kick by connection id reach the worker that holds it."""
    with Server("--protocol", "echo", "--processes", "2", "--threads", "1") as srv:
        srv.wait_for(lambda: srv.admin("/readyz")[0] == 200, what="every worker ready")
        # The mesh links are listed connections too: let them settle before paging.
        srv.wait_for(lambda: srv.metrics().get("tcpms_mesh_links_up") == 2, what="the workers' mesh")
        socks = [srv.connect() for _ in range(12)]
        try:
            def clients():
                status, page = srv.api("/api/v1/clients?limit=1000")
                assert status == 200, page
                return page["clients"]
            # The workers' mesh links are engine connections too (Unix peers "@tcpms-...").
            mine = {f"127.0.0.1:{s.getsockname()[1]}" for s in socks}
            srv.wait_for(lambda: len([c for c in clients() if c["peer"] in mine]) == 12,
                         what="every connection listed")
            assert all(c["peer"] in mine or "\0" not in c["peer"] for c in clients())
            ours = [c for c in clients() if c["peer"] in mine]
            assert len({c["loop"] for c in ours}) == 2, ours  # both workers hold some
            seen, cursor = [], None
            while True:
                status, page = srv.api("/api/v1/clients?limit=5" + (f"&cursor={cursor}" if cursor else ""))
                seen += [c["id"] for c in page["clients"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert seen == [c["id"] for c in clients()]
            far = next(c for c in ours if c["loop"] == 1)
            sock = next(s for s in socks if f"127.0.0.1:{s.getsockname()[1]}" == far["peer"])
            status, body = srv.api(f"/api/v1/clients/{far['id']}/send", "POST", {"payload": "hi\n"})
            assert status == 200, body
            sock.settimeout(5)
            assert sock.recv(16) == b"hi\n"
            assert srv.api(f"/api/v1/clients/{far['id']}", "DELETE")[0] == 200
            assert sock.recv(16) == b""
        finally:
            for s in socks:
                s.close()


ASK_WORKER = r"""
import os, socket, sys
name, uid = sys.argv[1], int(sys.argv[2])
if uid != os.geteuid():
    os.setuid(uid)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect("\0" + name)
try:
    s.sendall(b"GET /api/v1/stats HTTP/1.1\r\nHost: w\r\nConnection: close\r\n\r\n")
    print(s.recv(64).decode(errors="replace").split("\r\n")[0])
except OSError as e:
    print("error", e)
"""


def test_a_workers_own_api_refuses_another_user():
    """The workers' own admin APIs are on abstract Unix sockets, which have no permissions:
    a peer of another uid (not root) is closed at once, the server's own uid is answered."""
    if os.geteuid() != 0:
        import pytest
        pytest.skip("needs root to connect as another user")
    with Server("--protocol", "mqtt", "--processes", "2", "--threads", "1") as srv:
        srv.wait_for(lambda: srv.admin("/readyz")[0] == 200, what="every worker ready")

        def ask(uid):
            out = subprocess.run([sys.executable, "-c", ASK_WORKER, f"tcpms-{srv.pid}-admin-1", str(uid)],
                                 capture_output=True, text=True, timeout=20)
            assert out.returncode == 0, out.stderr
            return out.stdout.strip()

        assert ask(os.geteuid()) == "HTTP/1.1 200 OK"
        assert ask(65534) in ("", "error [Errno 104] Connection reset by peer",
                              "error [Errno 32] Broken pipe"), "another user was answered"
        assert api(srv, "/api/v1/stats")[0] == 200  # the front door still reaches worker 1


def test_an_unanswering_worker_is_not_taken_for_no_such_client():
    """While a worker is stalled (it may hold the id), a lookup by id that nobody answering
    holds is 503 naming it, not 404; and merged lists name it."""
    with Server("--protocol", "mqtt", "--processes", "3", "--threads", "1") as srv:
        srv.wait_for(lambda: srv.admin("/readyz")[0] == 200, what="every worker ready")
        stalled = next(p for p in children(srv.pid) if srv.admin_port not in listening_ports([p]))
        os.kill(stalled, signal.SIGSTOP)
        try:
            for method, path in [("GET", "/api/v1/clients/nobody"), ("DELETE", "/api/v1/clients/nobody"),
                                 ("DELETE", "/api/v1/sessions/nobody")]:
                status, body = api(srv, path, method)
                assert status == 503, (path, status, body)
                assert len(body["workers_unanswered"]) == 1 and body["workers_unanswered"][0] != 0, body
                assert body["worker_errors"][0]["status"] == 0, body
            # A push asks only the id's home, which knows where the id is: 404 from a live
            # home, 503 (not 200, not 404) when the home is the stalled worker.
            home_stalled = None
            for i in range(40):
                status, body = api(srv, f"/api/v1/clients/nobody-{i}/send", "POST", {"topic": "t", "payload": "x"})
                assert status in (404, 503), body
                if status == 503:
                    home_stalled = body
                    break
            assert home_stalled is not None, "no id had its home on the stalled worker"
            status, body = api(srv, "/api/v1/clients")
            assert status == 200 and len(body["workers_unanswered"]) == 1, body
        finally:
            os.kill(stalled, signal.SIGCONT)
        assert api(srv, "/api/v1/clients/nobody")[0] == 404


def test_publish_counts_every_workers_receivers_of_a_long_topic():
    """The other workers count their receivers from a POST body: a topic longer than a
    worker's header limit (16 KiB) is counted on every worker, not silently left out."""
    with Server("--protocol", "mqtt", "--processes", "3", "--threads", "1") as srv:
        srv.wait_for(lambda: srv.admin("/readyz")[0] == 200, what="every worker ready")
        clients = [Client(f"wide-{i}", srv.port) for i in range(9)]
        try:
            for c in clients:
                c.c.subscribe("#", qos=0)
            srv.wait_for(lambda: api(srv, "/api/v1/stats")[1]["protocol_stats"]["subscriptions"] == 9,
                         what="every subscription counted")
            loops = {c["loop"] for c in api(srv, "/api/v1/clients")[1]["clients"]}
            assert len(loops) > 1, loops
            topic = "long/" + "x" * 20000
            status, body = api(srv, "/api/v1/publish", "POST", {"topic": topic, "payload": "p"})
            assert status == 200, body
            assert body["receivers"] == 9 and "workers_unanswered" not in body, \
                {k: v for k, v in body.items() if k != "topic"}
            status, body = api(srv, "/api/v1/receivers", "POST", {"topic": topic})
            assert status == 200 and body["receivers"] == 9, body
            assert api(srv, "/api/v1/receivers?topic=a/b")[1]["receivers"] == 9
        finally:
            for c in clients:
                c.stop()


def test_a_tap_through_the_front_door_sees_every_worker():
    """A publish from a client on worker 1 or 2, with no subscriber anywhere, is routed to no
    other worker; a tap through the front door still sees it (it taps every worker), and
    keeps doing so after that worker restarts."""
    with Server("--protocol", "mqtt", "--processes", "3", "--threads", "1") as srv:
        srv.wait_for(lambda: srv.admin("/readyz")[0] == 200, what="every worker ready")
        status, tap = api(srv, "/api/v1/taps", "POST", {"filter": "tap/#"})
        assert status == 201 and tap["messages"] == [], tap
        seen = []

        def read():
            nonlocal tap
            status, body = api(srv, f"/api/v1/taps/{tap['id']}?after={tap['next']}")
            assert status == 200, body
            seen.extend(body["messages"])
            tap = body
            return body

        def far_client(prefix):
            for i in range(30):
                c = Client(f"{prefix}-{i}", srv.port)
                loop = api(srv, f"/api/v1/clients/{c.cid}")[1]["loop"]
                if loop != 0:
                    return c, loop
                c.stop()
            raise AssertionError("no client landed on another worker than 0")

        pub, loop = far_client("pub")
        pub.c.publish("tap/far", b"from afar", qos=1).wait_for_publish(5)
        srv.wait_for(lambda: read() and any(m["topic"] == "tap/far" for m in seen), what="the tap seeing it")
        m = next(m for m in seen if m["topic"] == "tap/far")
        assert m["payload"] == "from afar" and m["worker"] == loop, m
        assert [m["seq"] for m in seen] == list(range(1, len(seen) + 1))
        assert read()["messages"] == []  # nothing twice

        # That worker restarts: its part of the tap is opened again at the next read.
        pub.stop()
        pid = worker_pid(srv.pid, loop)
        os.kill(pid, signal.SIGKILL)
        srv.wait_for(lambda: worker_pid(srv.pid, loop) not in (None, pid), what="the worker restarted")
        srv.wait_for(lambda: srv.admin("/readyz")[0] == 200, what="ready again")
        srv.wait_for(lambda: loop in read().get("workers_reopened", []), what="its tap opened again")
        again = None
        for i in range(30):
            c = Client(f"again-{i}", srv.port)
            if api(srv, f"/api/v1/clients/{c.cid}")[1]["loop"] == loop:
                again = c
                break
            c.stop()
        assert again is not None, "no client landed on the restarted worker"
        again.c.publish("tap/again", b"still seen", qos=1).wait_for_publish(5)
        srv.wait_for(lambda: read() and any(m["topic"] == "tap/again" for m in seen), what="the tap after the restart")
        again.stop()
        assert api(srv, f"/api/v1/taps/{tap['id']}", "DELETE")[0] == 200
        assert api(srv, f"/api/v1/taps/{tap['id']}")[0] == 404


def worker_pid(supervisor, index):
    """The pid of worker `index` of `supervisor`: the process listening on its admin socket."""
    out = subprocess.run(["ss", "-Hxlp"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if f"@tcpms-{supervisor}-admin-{index} " in line and "pid=" in line:
            return int(line.split("pid=")[1].split(",")[0])
    return None
