"""Worker processes (--processes P): one server on one port across P processes, a supervisor
that restarts a worker that dies while the others keep their connections, SIGTERM drains all
of them, and MQTT publishes reach subscribers whichever worker holds them (PeerMesh)."""
import os
import signal
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from tcpms_harness import Server, binary, echo_all, open_clients, close_all, raise_nofile_limit, payload


def children(pid):
    out = subprocess.run(["ps", "--ppid", str(pid), "-o", "pid="], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def listeners(port):
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True)
    return len([l for l in out.stdout.splitlines() if l.strip()])


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out: {what}")


def test_workers_share_the_port_and_survive_a_killed_sibling():
    raise_nofile_limit()
    with Server("--protocol", "echo", "--processes", "3", "--threads", "1", "--no-admin") as srv:
        wait_until(lambda: len(children(srv.pid)) == 3 and listeners(srv.port) == 3, 10,
                   "3 workers listening")
        socks = open_clients(srv.port, 300)
        echo_all(socks, [payload(i, 32) for i in range(len(socks))])
        # Which worker holds each client: ss tells the owning pid of the server-side socket.
        victim = children(srv.pid)[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        # A new worker is accepting within a second.
        wait_until(lambda: victim not in children(srv.pid) and len(children(srv.pid)) == 3
                   and listeners(srv.port) == 3, 1.5, "a replacement worker listening")
        assert time.monotonic() - killed_at < 1.5
        # Clients of the other two workers still work; the killed worker's got EOF or reset.
        alive, lost = [], 0
        for s in socks:
            try:
                s.sendall(b"ping")
                s.settimeout(5)
                data = s.recv(4)
                if data == b"ping":
                    alive.append(s)
                else:
                    lost += 1
            except OSError:
                lost += 1
        assert len(alive) >= 100, f"only {len(alive)} survived"  # about 2/3 of 300
        assert lost > 0, "killing a worker should have cost its own clients"
        # New clients are served, by any worker.
        fresh = open_clients(srv.port, 60)
        echo_all(fresh, [payload(i, 16) for i in range(len(fresh))])
        close_all(socks + fresh)
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(timeout=30) == 0
        assert children(srv.pid) == []
    assert "restarting" in srv.output()


def test_port_in_use_is_refused_before_forking():
    with Server("--protocol", "echo", "--threads", "1", "--no-admin") as first:
        proc = subprocess.run(
            [first.args[0], "--protocol", "echo", "--processes", "2", "--no-admin",
             "--listen", f"127.0.0.1:{first.port}"], capture_output=True, text=True, timeout=30)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 69, out
        assert "in use" in out and f"held by pid {first.pid} (tcpms-server)" in out, out
        assert "waiting up to" not in out, out  # a live holder is refused at once


def kill_all_at_once(srv):
    """SIGKILL to the supervisor and every worker, as a crash or an OOM kill of the unit
    would; returns without waiting for the kernel to tear them down."""
    for pid in [srv.pid] + children(srv.pid):
        os.kill(pid, signal.SIGKILL)


def test_restart_at_once_after_kill_9_serves_clients():
    """bench/storm.sh's restart: a killed server's listeners hold the port until the kernel
    has closed every socket of its processes; the new server started at once waits for that
    (port_wait_ms) instead of failing with EADDRINUSE, on the admin port too."""
    raise_nofile_limit()
    with Server("--protocol", "echo", "--processes", "2", "--threads", "1") as old:
        wait_until(lambda: len(children(old.pid)) == 2 and listeners(old.port) >= 2, 10,
                   "2 workers listening")
        # Connections for the kernel to tear down: they keep the old listeners a while.
        socks = open_clients(old.port, 8000)
        echo_all(socks[:100], [payload(i, 16) for i in range(100)])
        kill_all_at_once(old)
        with Server("--protocol", "echo", "--processes", "2", "--threads", "1",
                    "--listen", f"127.0.0.1:{old.port}",
                    "--admin-listen", f"127.0.0.1:{old.admin_port}", start_timeout=60) as new:
            assert (new.port, new.admin_port) == (old.port, old.admin_port)
            close_all(socks)
            fresh = open_clients(new.port, 50)
            echo_all(fresh, [payload(i, 16) for i in range(len(fresh))])
            close_all(fresh)
            assert new.admin("/healthz")[0] == 200
        old.proc.wait(timeout=30)


def test_port_held_by_a_listener_no_process_has_open_is_waited_for():
    """What a killed process's listener is while the kernel closes it: a listening socket in
    no process's descriptor table. Here one travels in a Unix socket message (SCM_RIGHTS),
    so it stays exactly as long as the test wants: the server waits, then starts once the
    socket is gone."""
    import socket as sk
    held = sk.socket(sk.AF_INET, sk.SOCK_STREAM)
    held.setsockopt(sk.SOL_SOCKET, sk.SO_REUSEADDR, 1)
    held.bind(("127.0.0.1", 0))
    held.listen(1)
    port = held.getsockname()[1]
    a, b = sk.socketpair(sk.AF_UNIX, sk.SOCK_STREAM)
    sk.send_fds(a, [b"x"], [held.fileno()])
    held.close()  # now only the message in flight holds it
    proc = subprocess.Popen(
        [binary("tcpms-server"), "--protocol", "echo", "--processes", "2", "--threads", "1",
         "--no-admin", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "waiting up to" in line:
                break
        assert "waiting up to" in lines[-1], "".join(lines)
        assert f"127.0.0.1:{port}" in lines[-1] and "no process has open" in lines[-1], lines[-1]
        a.close()
        b.close()  # the message and the listener in it go
        for line in proc.stdout:
            lines.append(line)
            if "listening on" in line:
                break
        assert "listening on" in lines[-1], "".join(lines)
        fresh = open_clients(port, 20)
        echo_all(fresh, [payload(i, 16) for i in range(len(fresh))])
        close_all(fresh)
    finally:
        a.close()
        b.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_mqtt_publish_reaches_subscribers_on_every_worker():
    with Server("--protocol", "mqtt", "--processes", "2", "--threads", "1", "--no-admin") as srv:
        wait_until(lambda: listeners(srv.port) == 2, 10, "2 workers listening")
        time.sleep(0.5)  # mesh links dial every 200 ms until the peer listens
        received = {}
        lock = threading.Lock()
        subs = []
        # Enough subscribers that the kernel spreads them over both workers.
        for i in range(16):
            c = mqtt.Client(client_id=f"sub-{i}", clean_session=True)
            def on_message(client, userdata, msg, i=i):
                with lock:
                    received.setdefault(i, []).append(msg.payload)
            c.on_message = on_message
            c.connect("127.0.0.1", srv.port)
            c.subscribe("fleet/+/cmd", qos=1)
            c.loop_start()
            subs.append(c)
        time.sleep(0.5)
        pub = mqtt.Client(client_id="pub", clean_session=True)
        pub.connect("127.0.0.1", srv.port)
        pub.loop_start()
        for n in range(5):
            pub.publish(f"fleet/{n}/cmd", f"go-{n}".encode(), qos=1).wait_for_publish()
        wait_until(lambda: len(received) == 16 and all(len(v) == 5 for v in received.values()),
                   10, "every subscriber got all 5 messages")
        for v in received.values():
            assert v == [f"go-{n}".encode() for n in range(5)]
        # A publish at the packet limit crosses to the other worker whole, and the link
        # stays up for what follows.
        big = bytes(range(256)) * ((1048576 - 64) // 256)
        pub.publish("fleet/big/cmd", big, qos=1).wait_for_publish()
        pub.publish("fleet/after/cmd", b"after", qos=1).wait_for_publish()
        wait_until(lambda: all(len(v) == 7 for v in received.values()), 15,
                   "every subscriber got the packet-limit message and the one after it")
        for v in received.values():
            assert v[5] == big and v[6] == b"after"
        pub.loop_stop()
        for c in subs:
            c.loop_stop()
            c.disconnect()


@pytest.mark.parametrize("waits", [True, False])
def test_suback_waits_for_peers_setting_picks_the_path(waits):
    """mqtt.suback_waits_for_peers: on, a SUBACK for a new filter is held until the other
    worker has applied the interest update (counted in tcpms_routing_subacks_held_total);
    off, it goes at once and nothing is ever held. Either way the subscription works."""
    with Server("--protocol", "mqtt", "--processes", "2", "--threads", "1",
                f"--mqtt-suback-waits-for-peers={'true' if waits else 'false'}") as srv:
        srv.wait_for(lambda: srv.metrics().get("tcpms_mesh_links_up") == 2, what="the mesh up")
        received = []
        subs = []
        for i in range(8):  # spread over both workers by the kernel
            acked = threading.Event()
            c = mqtt.Client(client_id=f"sub-{i}", clean_session=True)
            c.on_subscribe = lambda *_a, ev=acked: ev.set()
            c.on_message = lambda _c, _u, m: received.append(m.topic)
            c.connect("127.0.0.1", srv.port)
            c.loop_start()
            c.subscribe(f"suback/{i}/#", qos=1)
            assert acked.wait(15), f"no SUBACK for client {i}\n{srv.output()}"
            subs.append(c)
        held = srv.metrics()["tcpms_routing_subacks_held_total"]
        if waits:
            assert held >= 1, held
        else:
            assert held == 0, held
        pub = mqtt.Client(client_id="pub", clean_session=True)
        pub.connect("127.0.0.1", srv.port)
        pub.loop_start()
        if waits:
            # The SUBACK's promise: a publish anywhere after it reaches the subscriber.
            for i in range(8):
                pub.publish(f"suback/{i}/x", b"m", qos=1).wait_for_publish()
            wait_until(lambda: len(set(received)) == 8, 10, "every subscriber got its message")
        else:
            # No such promise (the trade the setting makes): the interest arrives a little
            # later, so publish again to whoever has not had one yet.
            for _ in range(100):
                for i in range(8):
                    if f"suback/{i}/x" not in received:
                        pub.publish(f"suback/{i}/x", b"m", qos=1).wait_for_publish()
                time.sleep(0.1)
                if len(set(received)) == 8:
                    break
            assert len(set(received)) == 8, received
        pub.loop_stop()
        for c in subs + [pub]:
            c.loop_stop()
            c.disconnect()



# A claim's deadline shorter than the clients' 8 s reply timeout, so that a CONNECT that
# reached a running worker is answered (refused) before its client gives up.
FETCH_3S = ("--workers-session-fetch-timeout-ms", "3000")


def stored_sessions_then_a_stopped_worker(srv, ids):
    """Each id gets a stored session (one subscription, one QoS 1 message queued); then one
    worker is stopped (SIGSTOP, as a worker too busy to answer would be) while every id
    reconnects persistent at once, and resumed; returns what each reconnect got once
    everything the stopped worker owed has settled (every session stored and offline)."""
    from concurrent.futures import ThreadPoolExecutor
    from mqtt_raw import DISCONNECT_PACKET, RawClient, connected
    wait_until(lambda: len(children(srv.pid)) == 2 and listeners(srv.port) == 2, 10,
               "two workers listening")
    time.sleep(1)  # the mesh link between the workers
    for cid in ids:
        c = connected(srv.port, cid, clean=False)
        c.subscribe([(f"keep/{cid}", 1)])
        c.send(DISCONNECT_PACKET)
        c.close()
    pub = connected(srv.port, "keep-publisher")
    for n, cid in enumerate(ids, 1):
        pub.publish(f"keep/{cid}", b"queued", qos=1, pid=n)
    pub.send(DISCONNECT_PACKET)
    pub.close()
    links = srv.metrics().get("tcpms_connections", 0)  # the workers' mesh links

    def reconnect(cid):
        try:
            c = RawClient(srv.port, timeout=8)
            present, rc = c.connect(cid, clean=False)
            c.close()
            return "refused" if rc == 3 else ("present" if present else f"empty rc={rc}")
        except (OSError, AssertionError, TimeoutError):
            return "no answer"  # it reached the stopped worker
    victim = children(srv.pid)[1]
    os.kill(victim, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(len(ids)) as pool:
            outcomes = list(pool.map(reconnect, ids))
    finally:
        os.kill(victim, signal.SIGCONT)
    srv.wait_for(lambda: srv.metrics().get("tcpms_mqtt_sessions_offline") == len(ids)
                 and srv.metrics().get("tcpms_connections", 0) == links, 15,
                 what="every session stored and offline again")
    return outcomes




def test_persistent_client_whose_session_cannot_be_looked_for_is_refused_not_emptied():
    """A persistent CONNECT whose claim goes unanswered (its home, or the worker holding its
    session, stopped) gets CONNACK 3, server unavailable, never an empty session in place of
    its stored one, and every stored session is still stored once the worker runs again.
    (Before: such a CONNECT went on with a new empty session after the claim's 3 s
    deadline.)"""
    ids = [f"keep-{i}" for i in range(30)]
    with Server("--protocol", "mqtt", "--processes", "2", "--threads", "1",
                "--sys-interval", "0", *FETCH_3S) as srv:
        outcomes = stored_sessions_then_a_stopped_worker(srv, ids)
        assert not [o for o in outcomes if o.startswith("empty")], outcomes
        # 30 ids: some land on the running worker with their home or session on the other.
        assert "refused" in outcomes, outcomes
        assert (srv.metrics().get("tcpms_mqtt_connects_unclaimed_total", 0)
                == outcomes.count("refused"))


def test_every_session_comes_back_after_a_stopped_worker_resumes():
    """Once the stopped worker runs again, every stored session is found by its next CONNECT,
    wherever that lands, with its queued message: the home's answers that came after their
    claims had given up left their tickets with the sessions (before, the home's record and the
    session's ticket disagreed and some CONNECTs got an empty session)."""
    from mqtt_raw import DISCONNECT_PACKET, PUBACK, PUBLISH, RawClient, ack_packet
    ids = [f"back-{i}" for i in range(30)]
    with Server("--protocol", "mqtt", "--processes", "2", "--threads", "1",
                "--sys-interval", "0", *FETCH_3S) as srv:
        stored_sessions_then_a_stopped_worker(srv, ids)
        # Some ids are homed at the stopped worker and reconnected on the running one.
        assert srv.metrics().get("tcpms_routing_claims_answered_late_total", 0) > 0
        for cid in ids:
            c = RawClient(srv.port)
            present, rc = c.connect(cid, clean=False)
            assert (rc, present) == (0, True), cid
            p = c.expect(PUBLISH)
            assert (p.topic, p.payload) == (f"keep/{cid}", b"queued"), cid
            c.send(ack_packet(PUBACK, p.pid))
            c.send(DISCONNECT_PACKET)
            c.close()
