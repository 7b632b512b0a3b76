"""Persistent sessions follow their client across worker processes (--processes 2): the
kernel spreads reconnects from fresh source ports over both workers, and each time the session
(subscription, queued QoS 1 messages) comes along [MQTT-3.2.2-2], [MQTT-4.4.0-1]. A clean
start on any worker discards it [MQTT-3.1.2-6]; a CONNECT on one worker takes over a
connection on the other [MQTT-3.1.4-2]; generated client ids never collide across workers."""
import os
import signal
import time

import crash_driver
from crash_driver import holder_of
from mqtt_raw import (CONNACK, DISCONNECT_PACKET, PUBACK, PUBLISH, RawClient, StartedClient,
                      ack_packet, connect_packet, connected, mqtt_server)


def worker_of(client, server_port, tries=50):
    """The pid of the worker process holding `client`'s connection (ss shows the server-side
    socket's owner; a connection not accepted yet has none: None after `tries`)."""
    local_port = client.sock.getsockname()[1]
    pid = holder_of(server_port, local_port, tries)
    if pid is not None:
        return int(pid)
    if tries < 50:
        return None
    raise AssertionError(f"no server socket for client port {local_port}")


def start_workers(*extra):
    return start_workers_n(2, *extra)


def start_workers_n(n, *extra):
    return mqtt_server("--processes", str(n), "--threads", "1", "--no-admin", *extra)


def client_away_from(srv, worker, timeout=5.0):
    """A connection (its CONNECT begun, not sent) held by a worker other than `worker`. A
    stopped worker does not accept, so a connection with no owner yet counts as its."""
    for _ in range(40):
        c = StartedClient(srv.port, timeout=timeout)
        if worker_of(c, srv.port, tries=10) not in (worker, None):
            return c
        c.close()
    raise AssertionError("no connection landed on the other worker")


def stop_clean(srv):
    """SIGTERM: every worker drains and exits 0 (the supervisor's status says so), with no
    sanitizer report in the output (the ASan build)."""
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(timeout=30) == 0, srv.output()[-3000:]
    out = srv.output()
    assert "Sanitizer" not in out and "runtime error" not in out, out[-3000:]


def wait_mesh(srv, n=2):
    crash_driver.wait_mesh(srv.port, n)


def park_session(srv, client_id, filters=()):
    """A persistent session left offline (subscribed to `filters`); returns the pid of the
    worker holding it."""
    c = RawClient(srv.port)
    assert c.connect(client_id, clean=False) == (False, 0)
    holder = worker_of(c, srv.port)
    if filters:
        assert c.subscribe(list(filters)) == [q for _, q in filters]
    c.send(DISCONNECT_PACKET)
    c.close()
    time.sleep(0.1)
    return holder


def connect_and_leave(port, client_id, clean):
    """CONNECT, then DISCONNECT; returns the CONNACK's session present flag."""
    c = RawClient(port)
    present, rc = c.connect(client_id, clean=clean)
    assert rc == 0
    c.send(DISCONNECT_PACKET)
    c.close()
    return present


def drain(c, want, got, timeout=5.0):
    """Reads QoS 1 PUBLISHes, acknowledging each, until every payload in `want` is in `got`.
    A payload seen before may come again only as a redelivery (DUP set)."""
    deadline = time.monotonic() + timeout
    while not want <= set(got):
        p = c.read(max(0.01, deadline - time.monotonic()))
        assert p.type == PUBLISH, p
        assert p.qos == 1
        if p.payload in got:
            assert p.dup, f"{p.payload!r} delivered twice without DUP"
        got.append(p.payload)
        c.send(ack_packet(PUBACK, p.pid))


def test_persistent_session_follows_its_client_across_workers():
    with start_workers() as srv:
        wait_mesh(srv)
        sub = connected(srv.port, "roamer", clean=False)
        assert sub.subscribe([("roam/#", 1)]) == [1]
        sub.send(DISCONNECT_PACKET)
        sub.close()
        time.sleep(0.1)
        workers, sent, got = set(), [], []
        n = 0
        for round_no in range(16):
            # Published while it is offline, from whichever worker the publisher lands on.
            pub = connected(srv.port, f"pub-{round_no}")
            for k in range(3):
                payload = f"m-{n}".encode()
                pub.publish("roam/x", payload, qos=1, pid=k + 1)
                sent.append(payload)
                n += 1
            pub.send(DISCONNECT_PACKET)
            pub.close()
            time.sleep(0.05)  # the publish crosses the mesh to the worker holding the session
            c = RawClient(srv.port)
            present, rc = c.connect("roamer", clean=False)
            assert rc == 0 and present, f"round {round_no}: session present {present}"
            workers.add(worker_of(c, srv.port))
            drain(c, set(sent), got)
            # Its subscription works while connected too.
            live = f"live-{round_no}".encode()
            other = connected(srv.port, f"live-pub-{round_no}")
            other.publish("roam/live", live, qos=1)
            sent.append(live)
            drain(c, {live}, got)
            other.close()
            c.send(DISCONNECT_PACKET)
            c.close()
            time.sleep(0.05)
        assert len(workers) == 2, "reconnects never landed on the other worker"
        # Every message exactly once (redeliveries carry DUP and were checked above).
        assert sorted(set(got)) == sorted(sent)

        # A clean start discards the session wherever it is [MQTT-3.1.2-6]...
        c = RawClient(srv.port)
        present, rc = c.connect("roamer", clean=True)
        assert rc == 0 and not present
        pub = connected(srv.port, "pub-after-clean")
        pub.publish("roam/x", b"not-for-you", qos=1)
        c.expect_nothing(0.5)  # the old subscription is gone
        c.send(DISCONNECT_PACKET)
        c.close()
        pub.close()
        time.sleep(0.1)
        # ...and a later persistent CONNECT finds nothing, on either worker.
        for _ in range(4):
            assert not connect_and_leave(srv.port, "roamer", clean=False)
            # That connect made a session again: clear it before the next try.
            assert not connect_and_leave(srv.port, "roamer", clean=True)
            time.sleep(0.05)
        stop_clean(srv)


def test_connect_on_one_worker_takes_over_the_other():
    with start_workers() as srv:
        wait_mesh(srv)
        # Open clients until two sit on different workers.
        first = connected(srv.port, "twin", clean=True)
        first_worker = worker_of(first, srv.port)
        second = client_away_from(srv, first_worker)
        assert second.connect("twin", clean=True) == (False, 0)
        first.expect_closed(5.0)  # [MQTT-3.1.4-2]
        second.ping()
        second.close()
        stop_clean(srv)


def test_generated_client_ids_differ_across_workers():
    with start_workers() as srv:
        wait_mesh(srv)
        # Empty ids, clean sessions: each worker numbers its own. Were the ids the same on both
        # workers, the second of a pair would take the first over (and close it).
        clients = []
        for _ in range(12):
            c = RawClient(srv.port)
            assert c.connect("", clean=True) == (False, 0)
            clients.append(c)
        assert len({worker_of(c, srv.port) for c in clients}) == 2
        time.sleep(0.5)
        for c in clients:
            c.ping()  # still connected
            c.close()
        stop_clean(srv)


def test_a_worker_that_does_not_answer_costs_the_fetch_timeout_only():
    with start_workers("--workers-session-fetch-timeout-ms", "3000") as srv:
        wait_mesh(srv)
        holder = park_session(srv, "sleeper")  # offline on one worker
        os.kill(holder, signal.SIGSTOP)  # its link stays up, but it answers nothing
        try:
            c = client_away_from(srv, holder)
            started = time.monotonic()
            c.send(connect_packet("sleeper", clean=False))
            p = c.expect(CONNACK, timeout=10)
            present, rc = bool(p.body[0] & 1), p.body[1]
        finally:
            os.kill(holder, signal.SIGCONT)
        waited = time.monotonic() - started
        # No answer within the fetch timeout (3 s here): refused, server unavailable, rather than
        # let in with an empty session while the stored one sits on the silent worker.
        assert rc == 3 and not present
        assert 2.5 < waited < 6, waited
        c.close()

        def session_found():
            d = RawClient(srv.port)
            try:
                return d.connect("sleeper", clean=False) == (True, 0)
            finally:
                d.close()
        srv.wait_for(session_found, 10, what="the session found once its holder answers again")
        stop_clean(srv)


def test_a_large_queue_moves_in_one_image():
    with start_workers() as srv:
        wait_mesh(srv)
        holder = park_session(srv, "hoarder", [("big/#", 1)])
        pub = connected(srv.port, "big-pub")
        sent = []
        for i in range(1000):  # about 4 MB queued while offline
            payload = f"{i:06d}".encode() + bytes(4090)
            pub.publish("big/x", payload, qos=1, pid=(i % 60000) + 1)
            sent.append(payload)
        pub.close()
        time.sleep(0.3)
        # Pick a connection on the other worker before sending CONNECT.
        c = client_away_from(srv, holder, timeout=10)
        assert c.connect("hoarder", clean=False) == (True, 0)
        got = []
        drain(c, set(sent), got, timeout=20)
        assert got == sent  # in order, once
        c.close()
        stop_clean(srv)


def test_racing_connects_with_one_id_across_workers_leave_the_newest():
    """Issue 14, item 2: ten clients connect with one client id at the same moment, over
    three worker processes, again and again. Every CONNECT was valid, so each gets its CONNACK
    [MQTT-3.1.4-4]; exactly one connection survives (the one whose claim reached the id's home
    last) [MQTT-3.1.4-2], and every superseded one has its will published exactly once."""
    with start_workers_n(3) as srv:
        wait_mesh(srv, 3)
        wills = connected(srv.port, "will-watcher")
        assert wills.subscribe([("race/will/#", 1)]) == [1]
        for round_no in range(12):
            cid = f"racer-{round_no}"
            clients = [RawClient(srv.port) for _ in range(10)]
            packets = [connect_packet(cid, clean=True, will=(f"race/will/{round_no}/{k}",
                                                             str(k).encode(), 1, False))
                       for k in range(10)]
            for c, p in zip(clients, packets):  # as close together as one thread can
                c.send(p)
            survivors = []
            for k, c in enumerate(clients):
                p = c.expect(CONNACK)  # each one, even the ones taken over at once
                assert p.body[1] == 0, f"round {round_no}: CONNACK {p.body[1]}"
            time.sleep(0.3)
            for k, c in enumerate(clients):
                try:
                    c.ping()
                    survivors.append(k)
                except (ConnectionError, OSError, AssertionError):
                    pass
            assert len(survivors) == 1, f"round {round_no}: survivors {survivors}"
            # Every other connection's will, once; none for the survivor.
            got = []
            deadline = time.monotonic() + 5
            while len(got) < 9 and time.monotonic() < deadline:
                p = wills.read(max(0.01, deadline - time.monotonic()))
                assert p.type == PUBLISH
                topic_len = (p.body[0] << 8) | p.body[1]
                topic = p.body[2:2 + topic_len].decode()
                pid = (p.body[2 + topic_len] << 8) | p.body[3 + topic_len]
                wills.send(ack_packet(PUBACK, pid))
                got.append(int(topic.rsplit("/", 1)[1]))
            assert sorted(got) == sorted(k for k in range(10) if k != survivors[0]), \
                f"round {round_no}: wills {sorted(got)}, survivor {survivors}"
            wills.expect_nothing(0.2)
            for c in clients:
                c.close()
            time.sleep(0.2)  # the survivor's will (a close without DISCONNECT) goes out now
            p = wills.read(5)
            topic_len = (p.body[0] << 8) | p.body[1]
            assert p.body[2:2 + topic_len].decode().endswith(f"/{survivors[0]}")
            pid = (p.body[2 + topic_len] << 8) | p.body[3 + topic_len]
            wills.send(ack_packet(PUBACK, pid))
