"""Persistence (persistence.dir, docs/persistence.md): what survives a restart and kill -9,
the proof under load (crash_driver.py), damaged stores, and worker processes."""
import asyncio
import glob
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from crash_driver import drive, kill9_whole
from mqtt_raw import (DISCONNECT_PACKET, PUBACK, PUBLISH, UNSUBACK, RawClient, StartedClient,
                      mqtt_server, publish_packet, unsubscribe_packet)
from tcpms_harness import SANITIZED, binary
from test_mqtt_12_session_workers import client_away_from, wait_mesh, worker_of
from test_mqtt_13_v5 import V5, Pub5, opts, p_u32, publish5, v5
from test_mqtt_15_shared import collect


@pytest.fixture
def store_dir():
    d = tempfile.mkdtemp(prefix="tcpms-persist-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def persistent(store, *args, **kwargs):
    return mqtt_server("--threads", "2", "--persistence-dir", store, *args, **kwargs)


def crash_args(**kw):
    class A:
        server = binary("tcpms-server")
        subscribers, qos, kills, seconds, rate = 1000, 1, 20, 1.5, 20
        drain_timeout, store, keep, offline, shared = 60, None, False, 0, False
        server_arg = ["--threads", "2"]
    for k, v in kw.items():
        setattr(A, k, v)
    return A


# --- the proof under load ---------------------------------------------------------------------


def test_kill9_under_load_loses_no_acknowledged_qos1_message():
    # 1,000 persistent QoS 1 subscribers, a steady stream, 20 kills: every message the
    # publisher got a PUBACK for reaches every subscriber, in order (crash_driver.py).
    n, kills = (1000, 20) if not SANITIZED else (200, 5)
    assert asyncio.run(drive(crash_args(subscribers=n, kills=kills))) == 0


def test_kill9_under_load_qos2_exactly_once():
    n, kills = (200, 6) if not SANITIZED else (50, 3)
    assert asyncio.run(drive(crash_args(subscribers=n, qos=2, kills=kills, rate=30))) == 0


def test_kill9_of_worker_processes_loses_no_acknowledged_message():
    # --processes 3: persistent QoS 1 subscribers on both workers but the publisher's
    # (checked after each reconnect), half of them offline while the publisher streams, kill -9
    # of every process mid-stream. A PUBACK leaves only once each worker the message went to
    # has it in its store, so every acknowledged message reaches every subscriber after the
    # restarts (without that wait, a kill between the PUBACK and the other worker's commit
    # loses the message for the offline ones).
    n, kills, rate = (8, 6, 1000) if not SANITIZED else (6, 3, 300)
    args = crash_args(subscribers=n, offline=n // 2, kills=kills, rate=rate, seconds=1.5,
                      drain_timeout=30,
                      server_arg=["--processes", "3", "--threads", "1"])
    assert asyncio.run(drive(args)) == 0


def test_kill9_of_worker_processes_loses_no_acknowledged_shared_message():
    # The same with the subscribers in one shared group, all offline while the publisher
    # streams: each message is queued for one member on another worker, and its PUBACK waits
    # for that worker's commit (a DurablePublish for the group).
    n, kills, rate = (6, 5, 500) if not SANITIZED else (4, 3, 200)
    args = crash_args(subscribers=n, offline=n, shared=True, kills=kills, rate=rate,
                      seconds=1.5, drain_timeout=30,
                      server_arg=["--processes", "3", "--threads", "1"])
    assert asyncio.run(drive(args)) == 0


def test_publishers_on_two_workers_never_wait_for_each_other(store_dir):
    # every-message, two workers, each with a persistent QoS 1 subscriber and a publisher whose
    # messages go to both. A PUBACK waits for the other worker's answer that its store has the
    # message; that answer must not wait behind a PUBACK of its own worker, or each worker
    # waits for the other (until the 5 s request timeout disconnects both publishers).
    with mqtt_server("--processes", "2", "--threads", "1", "--persistence-dir", store_dir) as srv:
        wait_mesh(srv)
        sub0 = RawClient(srv.port)
        assert sub0.connect("sub0", clean=False) == (False, 0)
        w0 = worker_of(sub0, srv.port)
        sub1 = client_away_from(srv, w0)
        assert sub1.connect("sub1", clean=False) == (False, 0)
        w1 = worker_of(sub1, srv.port)
        subs = [sub0, sub1]
        for s in subs:
            assert s.subscribe([("t/#", 1)]) == [1]
        pubs = [client_away_from(srv, w1), client_away_from(srv, w0)]  # on w0, on w1
        for k, p in enumerate(pubs):
            p.connect(f"pub{k}")
        n = 100
        for i in range(n):  # both streams in flight at once
            for k, p in enumerate(pubs):
                p.send(publish_packet(f"t/{k}", f"{k}-{i}".encode(), 1, i + 1))
        for p in pubs:
            assert sorted(p.expect(PUBACK, 30).pid for _ in range(n)) == list(range(1, n + 1))
        for s in subs:
            got = set()
            while len(got) < 2 * n:
                got.add(read_pub(s, 30).payload)
        for c in subs + pubs:
            c.close()


# --- what survives ----------------------------------------------------------------------------


def read_pub(c, timeout=5.0):
    p = c.expect(PUBLISH, timeout)
    if p.qos:
        c.send(bytes([0x40 if p.qos == 1 else 0x50, 2]) + p.pid.to_bytes(2, "big"))
    return p


def test_session_subscriptions_queue_and_retained_survive_kill9(store_dir):
    with persistent(store_dir) as srv:
        c = RawClient(srv.port)
        c.connect("keeper", clean=False)
        c.subscribe([("k/#", 1)])
        c.close()
        time.sleep(0.2)
        p = RawClient(srv.port)
        p.connect("pub")
        for i in range(5):
            p.publish("k/t", f"m{i}".encode(), qos=1, pid=i + 1)
        p.publish("k/retained", b"r", qos=1, pid=9, retain=True)
        srv.kill()
    with persistent(store_dir) as srv:
        assert "recovered 1 sessions, 1 subscriptions, 6 queued" in srv.output()
        c = RawClient(srv.port)
        assert c.connect("keeper", clean=False) == (True, 0)  # session present
        got = [read_pub(c).payload for _ in range(6)]
        assert got == [b"m0", b"m1", b"m2", b"m3", b"m4", b"r"]
        c.close()
        n = RawClient(srv.port)
        n.connect("late")
        n.subscribe([("k/retained", 0)])
        assert read_pub(n).payload == b"r"
        # A clean start ends the stored session, on disk too.
        c = RawClient(srv.port)
        assert c.connect("keeper", clean=True) == (False, 0)
        c.close()
    with persistent(store_dir) as srv:
        assert "recovered 0 sessions" in srv.output()


def test_in_flight_messages_come_back_with_dup_and_their_ids(store_dir):
    with persistent(store_dir) as srv:
        c = RawClient(srv.port)
        c.connect("inflight", clean=False)
        c.subscribe([("f/t", 1)])
        p = RawClient(srv.port)
        p.connect("pub")
        p.publish("f/t", b"x", qos=1, pid=1)
        m = c.expect(PUBLISH)  # not acknowledged
        srv.kill()
    with persistent(store_dir) as srv:
        c = RawClient(srv.port)
        assert c.connect("inflight", clean=False) == (True, 0)
        again = c.expect(PUBLISH)
        assert again.dup and again.pid == m.pid and again.payload == b"x"  # [MQTT-4.4.0-1]


def test_v5_session_expiry_counts_across_a_restart(store_dir):
    with persistent(store_dir) as srv:
        a = v5(srv, "v5-short", clean=False, props=p_u32(0x11, 2))
        a.sub5([("e/t", opts(1))])
        b = v5(srv, "v5-long", clean=False, props=p_u32(0x11, 3600))
        b.sub5([("e/t", opts(1))])
        a.close()
        b.close()
        time.sleep(0.3)
        pub = v5(srv, "v5-pub")
        pub.send(publish5("e/t", "kept", qos=1, pid=1))
        pub.ack_code(PUBACK)
        srv.kill()
    time.sleep(2.5)  # the short session expires while the server is down
    with persistent(store_dir) as srv:
        assert "1 expired sessions reclaimed" in srv.output()
        c = V5(srv.port)
        assert c.connect5("v5-long", clean=False, props=p_u32(0x11, 3600))[0] is True
        assert c.read_pub().payload == b"kept"
        c = V5(srv.port)
        assert c.connect5("v5-short", clean=False, props=p_u32(0x11, 2))[0] is False


def test_delayed_will_survives_and_goes_out_after_restart(store_dir):
    with persistent(store_dir) as srv:
        c = v5(srv, "wd", clean=False, props=p_u32(0x11, 60),
               will=("wd/1", "gone", 0, False, p_u32(0x18, 3)))
        c.close()  # a loss: the will waits 3 s
        time.sleep(0.5)
        srv.kill()
    with persistent(store_dir) as srv:
        w = v5(srv, "wd-watch")
        w.sub5([("wd/#", opts(0))])
        m = w.read_pub(timeout=6)
        assert m.topic == "wd/1" and m.payload == b"gone"


# --- damaged stores ---------------------------------------------------------------------------


def fill(store_dir, n=300):
    with persistent(store_dir) as srv:
        for i in range(n):
            c = RawClient(srv.port)
            c.connect(f"s{i}", clean=False)
            c.subscribe([(f"d/{i}", 1)])
            c.close()
        p = RawClient(srv.port)
        p.connect("pub")
        p.publish("d/retained", b"r", qos=1, pid=1, retain=True)


def damage(store_dir, how):
    db = os.path.join(store_dir, "store.db")
    size = os.path.getsize(db)
    with open(db, "r+b") as f:
        if how == "truncate":
            f.truncate(size // 2)
        elif how == "zero":
            f.write(b"\0" * size)
        elif how == "garble":
            rnd = random.Random(17)
            for _ in range(8):
                f.seek(rnd.randrange(0, size - 256))
                f.write(bytes(rnd.randrange(256) for _ in range(256)))
    for extra in ("store.db-wal", "store.db-shm"):
        p = os.path.join(store_dir, extra)
        if how == "garble" and os.path.exists(p):
            with open(p, "r+b") as f:
                f.seek(min(100, os.path.getsize(p) // 2))
                f.write(os.urandom(64))


@pytest.mark.parametrize("how", ["truncate", "zero", "garble"])
def test_a_damaged_store_is_kept_aside_and_the_server_starts(store_dir, how):
    fill(store_dir)
    damage(store_dir, how)
    with persistent(store_dir) as srv:
        out = srv.output()
        c = RawClient(srv.port)  # it serves
        c.connect("after")
        c.close()
    if how != "garble":  # garbling may land in free pages: then nothing is damaged
        assert "was damaged" in out, out
        assert glob.glob(os.path.join(store_dir, "damaged-*", "store.db")), out
    # The next start finds a sound store.
    with persistent(store_dir) as srv:
        assert "was damaged" not in srv.output()


@pytest.mark.parametrize("how", ["truncate", "zero"])
def test_refuse_mode_stops_cleanly_on_a_damaged_store(store_dir, how):
    fill(store_dir, 50)
    damage(store_dir, how)
    r = subprocess.run([binary("tcpms-server"), "--listen", "127.0.0.1:0", "--no-admin",
                        "--persistence-dir", store_dir, "--persistence-on-damage", "refuse"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 69, r.stdout + r.stderr  # EX_UNAVAILABLE, not a signal
    assert "damaged" in r.stdout + r.stderr and "refuse" in r.stdout + r.stderr
    assert not glob.glob(os.path.join(store_dir, "damaged-*"))


def test_a_second_server_on_the_same_store_is_refused(store_dir):
    with persistent(store_dir):
        r = subprocess.run([binary("tcpms-server"), "--listen", "127.0.0.1:0", "--no-admin",
                            "--persistence-dir", store_dir], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 69
        assert "in use by another process" in r.stdout + r.stderr


def test_bad_sync_setting_is_a_usage_error(store_dir):
    r = subprocess.run([binary("tcpms-server"), "--persistence-dir", store_dir,
                        "--persistence-sync", "sometimes"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 64
    assert "every-message" in r.stdout + r.stderr


@pytest.mark.parametrize("sync", ["50ms", "off"])
def test_other_sync_modes_keep_what_a_clean_stop_wrote(store_dir, sync):
    with persistent(store_dir, "--persistence-sync", sync) as srv:
        c = RawClient(srv.port)
        c.connect("m", clean=False)
        c.subscribe([("s/t", 1)])
        c.close()
        p = RawClient(srv.port)
        p.connect("pub")
        p.publish("s/t", b"v", qos=1, pid=1)
    with persistent(store_dir, "--persistence-sync", sync) as srv:
        c = RawClient(srv.port)
        assert c.connect("m", clean=False) == (True, 0)
        assert read_pub(c).payload == b"v"


# --- worker processes -------------------------------------------------------------------------


def test_worker_processes_keep_their_sessions_across_a_restart(store_dir):
    ids = [f"w{i}" for i in range(12)]
    with mqtt_server("--processes", "2", "--threads", "1", "--persistence-dir", store_dir) as srv:
        for cid in ids:
            c = RawClient(srv.port)
            c.connect(cid, clean=False)
            c.subscribe([("w/all", 1)])
            c.close()
        time.sleep(0.3)
        p = RawClient(srv.port)
        p.connect("pub")
        p.publish("w/all", b"hello", qos=1, pid=1)
        time.sleep(0.5)  # the other worker delivers it through the mesh
    assert sorted(os.listdir(store_dir)) == ["worker-0", "worker-1"]
    with mqtt_server("--processes", "2", "--threads", "1", "--persistence-dir", store_dir) as srv:
        # The workers' mesh links come up within a few hundred ms of their start; a persistent
        # CONNECT landing on the worker without its session before then finds no one to ask
        # (docs/persistence.md, "Worker processes").
        time.sleep(1.5)
        for cid in ids:
            # Whichever worker the reconnect lands on, the session (held by one of them on
            # disk) follows it there.
            c = RawClient(srv.port)
            assert c.connect(cid, clean=False) == (True, 0), cid
            assert read_pub(c).payload == b"hello"
            c.close()


def test_a_worker_that_cannot_open_its_store_stops_the_server(store_dir):
    # worker-1's directory is locked by a single-process server: that worker exits 69 at start,
    # and restarting it would fail the same way forever, so the supervisor stops every worker
    # and exits with the worker's status.
    os.makedirs(os.path.join(store_dir, "worker-1"))
    with persistent(os.path.join(store_dir, "worker-1")):
        r = subprocess.run([binary("tcpms-server"), "--listen", "127.0.0.1:0", "--no-admin",
                            "--processes", "2", "--threads", "1", "--persistence-dir", store_dir],
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 69, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "in use by another process" in out and "stopping the server" in out, out


# --- shared subscriptions ---------------------------------------------------------------------


def group_collect(members, want):
    """(member index, PUBLISH) of the `want` first publishes the members got (acknowledged);
    a 5.0 member's as Pub5."""
    got = []
    collect(members, want, packets=got)
    return [(i, Pub5(p) if isinstance(members[i], V5) else p) for i, p in got]


def test_shared_subscriptions_of_persistent_sessions_survive_kill9(store_dir):
    # A 5.0 session (Retain As Published, Subscription Identifier 7) and a 3.1.1 session in one
    # group; after kill -9 and a restart both are members again without subscribing, and each
    # message reaches exactly one of them.
    group = "$share/workers/jobs/+"
    with persistent(store_dir) as srv:
        a = v5(srv, "sh-v5", clean=False, props=p_u32(0x11, 3600))
        assert a.sub5([(group, opts(1, rap=True))], props=b"\x0b\x07") == [1]
        b = RawClient(srv.port)
        b.connect("sh-311", clean=False)
        assert b.subscribe([(group, 1)]) == [1]
        time.sleep(0.3)  # a SUBACK is not held for the store: its commit follows shortly
        srv.kill()
    with persistent(store_dir) as srv:
        assert "recovered 2 sessions, 2 subscriptions" in srv.output()
        pub = RawClient(srv.port)
        pub.connect("sh-pub")
        # Only the 3.1.1 member is back: the offline 5.0 member is skipped for it.
        b = RawClient(srv.port)
        assert b.connect("sh-311", clean=False) == (True, 0)
        for i in range(4):
            pub.publish("jobs/early", f"e{i}".encode(), qos=1, pid=i + 1)
        got = group_collect([b], 4)
        assert sorted(p.payload for _, p in got) == [b"e0", b"e1", b"e2", b"e3"]
        # Both members: each message exactly once, to one of them.
        a = V5(srv.port)
        assert a.connect5("sh-v5", clean=False, props=p_u32(0x11, 3600))[0] is True
        n = 20
        for i in range(n):
            pub.publish("jobs/x", f"m{i}".encode(), qos=1, pid=i + 10, retain=(i == 0))
        got = group_collect([a, b], n)
        payloads = sorted(p.payload for _, p in got)
        assert payloads == sorted(f"m{i}".encode() for i in range(n)), got
        by = [i for i, _ in got]
        assert by.count(0) > 0 and by.count(1) > 0, by  # both are in the group
        for i, p in got:
            if i == 0:  # the 5.0 options came back too
                assert [v for k, v in p.props if k == 0x0B] == [7]
                assert p.retain == (p.payload == b"m0")  # Retain As Published
        a.expect_nothing()
        b.expect_nothing()
        # Unsubscribing is kept too: after the next restart the 3.1.1 session is alone.
        b.send(unsubscribe_packet(5, [group]))
        b.expect(UNSUBACK)
        time.sleep(0.3)
        srv.kill()
    with persistent(store_dir) as srv:
        assert "recovered 2 sessions, 1 subscriptions" in srv.output()
        a = V5(srv.port)
        assert a.connect5("sh-v5", clean=False, props=p_u32(0x11, 3600))[0] is True
        b = RawClient(srv.port)
        assert b.connect("sh-311", clean=False) == (True, 0)
        pub = RawClient(srv.port)
        pub.connect("sh-pub")
        for i in range(6):
            pub.publish("jobs/y", f"y{i}".encode(), qos=1, pid=i + 1)
        got = group_collect([a, b], 6)
        assert sorted(p.payload for _, p in got) == [f"y{i}".encode() for i in range(6)]
        assert {i for i, _ in got} == {0}
        b.expect_nothing()


def test_shared_members_come_back_in_their_worker_processes(store_dir):
    # Group members held by both workers of --processes 2, offline; after kill -9 of every
    # process and a restart, each worker has its members back and tells the other: a message
    # published on either worker reaches exactly one member, without anyone subscribing again.
    args = ("--processes", "2", "--threads", "1", "--no-admin", "--persistence-dir", store_dir)
    group = "$share/pool/w/+"
    ids = [f"shw-{i}" for i in range(6)]
    with mqtt_server(*args) as srv:
        wait_mesh(srv, 2)
        first = StartedClient(srv.port)
        held_by = worker_of(first, srv.port)
        for i, cid in enumerate(ids):
            # Alternately on either worker.
            c = first if i == 0 else (client_away_from(srv, held_by) if i % 2 else StartedClient(srv.port))
            if i % 2 == 0 and i != 0:
                while worker_of(c, srv.port) != held_by:
                    c.close()
                    c = StartedClient(srv.port)
            assert c.connect(cid, clean=False) == (False, 0)
            assert c.subscribe([(group, 1)]) == [1]
            c.send(DISCONNECT_PACKET)
            c.close()
        time.sleep(0.3)
        kill9_whole(srv.proc)
    with mqtt_server(*args) as srv:
        wait_mesh(srv, 2)
        out = srv.output()
        assert out.count("recovered 3 sessions, 3 subscriptions") == 2, out
        n = 12
        pubs = [StartedClient(srv.port)]  # publishers on both workers
        pubs.append(client_away_from(srv, worker_of(pubs[0], srv.port)))
        for k, p in enumerate(pubs):
            p.connect(f"shw-pub-{k}")
            for i in range(n // 2):
                p.publish("w/t", f"m{k * (n // 2) + i}".encode(), qos=1, pid=i + 1)
        time.sleep(0.5)
        members = []
        for cid in ids:
            c = RawClient(srv.port)
            assert c.connect(cid, clean=False) == (True, 0), cid
            members.append(c)
        got = group_collect(members, n)
        assert sorted(p.payload for _, p in got) == sorted(f"m{i}".encode() for i in range(n)), got
        for c in members:
            c.expect_nothing(0.3)


def test_a_message_handed_to_another_worker_stays_stored_until_that_worker_has_it(store_dir):
    # A member on worker A holds unacknowledged QoS 1 messages of its group (the publisher was
    # acknowledged: they are on A's disk) and goes offline; the group hands them to the other
    # member, on worker B. B is stopped (SIGSTOP: it gets the messages into its socket but
    # never commits them), then every process is killed. A's stored copies must still be
    # there: the member gets them back after the restart (docs/persistence.md, "Shared
    # groups"). Before the fix A deleted them at the hand-off, and they were lost.
    args = ("--processes", "2", "--threads", "1", "--no-admin", "--persistence-dir", store_dir)
    group = "$share/handoff/h/+"
    n = 6
    with mqtt_server(*args) as srv:
        wait_mesh(srv, 2)
        x = RawClient(srv.port)
        assert x.connect("ho-x", clean=False) == (False, 0)
        worker_a = worker_of(x, srv.port)
        assert x.subscribe([(group, 1)]) == [1]
        pub = RawClient(srv.port)
        pub.connect("ho-pub")
        for i in range(n):  # all of them to x, the group's only member; x acknowledges none
            pub.publish("h/t", f"m{i}".encode(), qos=1, pid=i + 1)
        y = client_away_from(srv, worker_a)
        worker_b = worker_of(y, srv.port)
        assert y.connect("ho-y", clean=False) == (False, 0)
        assert y.subscribe([(group, 1)]) == [1]
        time.sleep(0.5)  # worker A hears that B has a member
        os.kill(worker_b, signal.SIGSTOP)
        try:
            x.close()  # offline without DISCONNECT: its messages go to y, on B
            time.sleep(0.5)  # A commits whatever it does at the hand-off
        finally:
            kill9_whole(srv.proc)
    with mqtt_server(*args) as srv:
        wait_mesh(srv, 2)
        members = []
        for cid in ("ho-x", "ho-y"):
            c = RawClient(srv.port)
            assert c.connect(cid, clean=False) == (True, 0), cid
            members.append(c)
        seen = set()
        deadline = time.monotonic() + 10
        while len(seen) < n and time.monotonic() < deadline:
            seen |= set(collect(members, 1, timeout=0.5))
        # At least once (a copy B had stored and A had too would come twice: QoS 1 allows it).
        assert seen == {f"m{i}".encode() for i in range(n)}, sorted(seen)
