"""The upgrade handover of a cluster node (SIGUSR2, `tcpms-server --upgrade`; docs/upgrade.md,
docs/cluster.md): the new process goes on as the same node (same slot, same incarnation, same
sender sequence numbers; it reads its stream from where the old process stopped; it knows
what the router knew: the other nodes' interest, the client ids homed here, shared groups).
The other nodes notice nothing, and nothing published across the upgrade is lost.

A real redis-server and two nodes, "a" (the one upgraded) and "b", fresh for each test: an
upgrade changes a node for good. Clients are raw sockets held from start to end, so that a
reconnect could not hide."""
import contextlib
import itertools
import json
import os
import shutil
import threading
import time
import types

import pytest

from mqtt_raw import (CONNACK, PUBACK, PUBLISH, RawClient, ack_packet, connect_packet,
                      connected, publish_packet)
from tcpms_harness import Server
from test_cluster import Redis, cluster_metric, free_port
from test_upgrade_handover import TIMEOUT, read_pid, stop_pid, wait_until
from test_upgrade_mqtt import upgrade, upgraded

pytestmark = pytest.mark.skipif(not shutil.which("redis-server"),
                                reason="needs redis-server (apt-get install redis-server)")

HERE = os.path.dirname(os.path.abspath(__file__))

# Long enough that a handover on a loaded machine does not outlast a's lease, short enough
# that b scans the leases (every third of it) several times while a test watches.
LEASE_S = 4

# What b logs when it takes a down, brings it up or sees it restart (src/cluster/
# redis_transport.cc, src/routing/peer_router.cc). A new incarnation of a causes some of them.
NOTICED = ("is down", "is up", "restarted", "told everything again",
           "telling it everything again", "joining again")
# b's counter that a restart of a moves. (Ids enrolled at b may move: the node that goes on
# tells b its Hello, interest and the ids it holds again, as the same incarnation, which b
# takes without forgetting anything.)
RESTART_METRICS = ("tcpms_routing_peers_restarted_total",)


# --- the nodes -----------------------------------------------------------------------------

def node(redis_port, name, *extra, env=None):
    return Server("--protocol", "mqtt", "--sys-interval", "0", "--threads", "2",
                  "--cluster", f"redis://127.0.0.1:{redis_port}", "--node-id", name,
                  "--cluster-lease-s", str(LEASE_S), *extra, env=env)


@contextlib.contextmanager
def two_nodes(tmp_path, *a_extra, env=None):
    """redis-server, node a (a pid file; an admin port of its own, which its successor binds
    again: 127.0.0.1:0 would give the new process another one) and node b, each seeing the
    other."""
    redis = Redis().start()
    pid_file = str(tmp_path / "a.pid")
    a = b = None
    try:
        a = node(redis.port, "a", "--pid-file", pid_file,
                 "--admin-listen", f"127.0.0.1:{free_port()}", *a_extra, env=env).__enter__()
        b = node(redis.port, "b").__enter__()
        for n in (a, b):
            n.wait_for(lambda n=n: cluster_metric(n, "tcpms_cluster_nodes_alive") == 1, TIMEOUT,
                       what="each node sees the other")
        wait_until(lambda: read_pid(pid_file) == a.pid, "a's pid file")
        yield types.SimpleNamespace(redis=redis, a=a, b=b, pid_file=pid_file)
    finally:
        if a is not None:
            successor = read_pid(pid_file)
            if successor not in (0, a.pid):
                stop_pid(successor)  # first: it holds a's output pipe open
            a.__exit__(None, None, None)
        if b is not None:
            b.__exit__(None, None, None)
        redis.stop()
    # Under ASan a report (a leak at exit included) only prints: fail on it here.
    for n in (a, b):
        assert "Sanitizer" not in n.output(), n.output()


def interest(n):
    return cluster_metric(n, "tcpms_cluster_nodes_with_interest")


def admin_up(n):
    try:
        return n.admin("/readyz", timeout=2)[0] == 200
    except OSError:
        return False


# --- clients -------------------------------------------------------------------------------

_pids = itertools.count()


def publish(c, topic, payload):
    """QoS 1, waiting as long as a loaded machine may need for the PUBACK."""
    pid = next(_pids) % 65535 + 1
    c.send(publish_packet(topic, payload, qos=1, pid=pid))
    assert c.expect(PUBACK, timeout=TIMEOUT).pid == pid


def claim(port, client_id):
    """A persistent CONNECT, its CONNACK awaited as long as a takeover across nodes may take
    on a loaded machine. Returns (client, session present, return code)."""
    c = RawClient(port, timeout=TIMEOUT)
    c.send(connect_packet(client_id, clean=False))
    p = c.expect(CONNACK, timeout=TIMEOUT)
    return c, bool(p.body[0] & 1), p.body[1]


class Collector:
    """Reads a subscriber's socket on a thread: acknowledges each QoS 1 PUBLISH and keeps
    (topic, payload, dup). Anything else is an error: a client that stays connected across
    an upgrade sees no EOF and no packet but PUBLISHes (a CONNACK would be a reconnect)."""

    def __init__(self, client):
        self.client = client
        self.got = []
        self.errors = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                p = self.client.read(0.2)
            except TimeoutError:
                continue
            except (ConnectionError, OSError) as e:
                self.errors.append(f"connection lost: {e!r}")
                return
            if p.type != PUBLISH:
                self.errors.append(f"unexpected packet {p}")
                continue
            if p.qos == 1:
                self.client.send(ack_packet(PUBACK, p.pid))
            with self._lock:
                self.got.append((p.topic, p.payload, p.dup))

    def stop(self):
        """The socket is the test's again (a ping, say) once this returns."""
        self._stop.set()
        self._thread.join(timeout=5)

    def payloads(self, topic, dup=False):
        with self._lock:
            return [p for t, p, d in self.got if t == topic and d == dup]

    def has(self, topic, payload, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if payload in self.payloads(topic) or self.errors:
                break
            time.sleep(0.02)
        assert not self.errors, self.errors
        return payload in self.payloads(topic)

    def wait_for(self, topic, payload, what):
        assert self.has(topic, payload, TIMEOUT), f"{what}: {topic} {payload!r} did not arrive"


def until_it_crosses(pub, topic, collector, what):
    """Publishes probes until one arrives: at start-up a node may not know the other's
    interest (or shared group) yet. After an upgrade nothing may be relearnt: there one
    publish must arrive (Collector.wait_for)."""
    n = itertools.count()

    def once():
        payload = f"probe-{next(n)}".encode()
        publish(pub, topic, payload)
        return collector.has(topic, payload, timeout=0.5)
    wait_until(once, what)


class Sequence:
    """A publisher sending 0, 1, 2, ... (QoS 1) to one topic every `interval_s`, on a thread,
    until stopped; `check()` asserts that the subscriber got every number once, in order
    (a copy is allowed only as a DUP, a redelivery)."""

    def __init__(self, server, topic, interval_s=0.01):
        self.server, self.topic = server, topic
        self.client = connected(server.port, "seq-pub")
        self.sent = 0  # 0 .. sent-1 are acknowledged
        self.errors = []
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            while not self._stop.is_set():
                publish(self.client, self.topic, str(self.sent).encode())
                self.sent += 1
                time.sleep(self._interval_s)
        except Exception as e:  # noqa: BLE001 (reported by check)
            self.errors.append(repr(e))

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=TIMEOUT + 5)
        assert not self.errors, f"the publisher failed: {self.errors}; the end of its node's " \
            "log:\n" + "\n".join(self.server.output().splitlines()[-30:])
        self.client.close()
        return self.sent

    def check(self, collector):
        last = self.sent
        wait_until(lambda: str(last - 1).encode() in collector.payloads(self.topic)
                   or collector.errors, f"number {last - 1} (the last one sent) to arrive")
        assert not collector.errors, collector.errors
        got = [int(p) for p in collector.payloads(self.topic)]
        again = [int(p) for p in collector.payloads(self.topic, dup=True)]
        if got != list(range(last)):
            missing = sorted(set(range(last)) - set(got))
            doubled = sorted(n for n in set(got) if got.count(n) > 1)
            late = [got[i] for i in range(1, len(got)) if got[i] < got[i - 1]]
            raise AssertionError(f"{len(got)} of {last} numbers; missing {missing[:20]}, "
                                 f"doubled {doubled[:20]}, out of order {late[:20]}")
        assert set(again) <= set(got), f"DUP copies of numbers never delivered: {again}"


# --- what b knows of a ---------------------------------------------------------------------

def lease_of(redis, name):
    """"<slot> <incarnation>" (docs/cluster.md)."""
    return redis.command("GET", f"tcpms:node:{name}")


def stream_entries(redis, name, slot):
    """The entries node `slot` wrote into `name`'s stream: [(id, {s, n, p, f | c})]."""
    out = []
    for entry_id, fields in redis.command("XRANGE", f"tcpms:stream:{name}", "-", "+"):
        f = dict(zip(fields[::2], fields[1::2]))
        if f.get("p") == slot:
            out.append((entry_id, f))
    return out


def stream_id(entry_id):
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)


class Unnoticed:
    """What b knows of a, taken before a's upgrade. `check()` asserts that b noticed nothing
    since: no log line about a going down, coming up or restarting; b's peer gauges never
    moved (sampled on a thread, so a down and up between two looks shows too); no peer
    restart in b's counters; a's lease the same (slot and incarnation); and what a wrote
    into b's stream since carries a's sender tag, goes on with its sequence numbers and has
    no "up" entry (the first thing a new incarnation sends)."""

    def __init__(self, pair):
        self.redis, self.b = pair.redis, pair.b
        self.lease = lease_of(self.redis, "a")
        assert self.lease, "a holds a lease"
        self.slot = self.lease.split()[0]
        self.mark = len(self.b.output().splitlines())
        self.counters = {m: cluster_metric(self.b, m) for m in RESTART_METRICS}
        before = stream_entries(self.redis, "b", self.slot)
        assert before, "a has written into b's stream (the checks before the upgrade)"
        self.last_id = before[-1][0]
        self.tag = before[-1][1]["s"]
        self.seq = max(int(f["n"]) for _, f in before)
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self):
        while not self._stop.wait(0.05):
            try:
                m = self.b.metrics()
            except (OSError, AssertionError):
                continue  # a slow answer is no finding
            self.samples.append((m.get("tcpms_cluster_nodes_alive", 0.0),
                                 m.get("tcpms_cluster_nodes_with_interest", 0.0)))

    def check(self):
        self._stop.set()
        self._thread.join(timeout=15)
        lines = self.b.output().splitlines()[self.mark:]
        noticed = [line for line in lines if any(p in line for p in NOTICED)]
        assert not noticed, "b noticed a's upgrade:\n" + "\n".join(noticed)
        assert self.samples, "b's metrics were read while a upgraded"
        assert set(self.samples) == {(1.0, 1.0)}, \
            f"b's (nodes alive, nodes with interest) moved: {sorted(set(self.samples))}"
        for m, before in self.counters.items():
            now = cluster_metric(self.b, m)
            assert now == before, f"b's {m} went from {before} to {now}; b's log since:\n" + \
                "\n".join(lines)
        assert lease_of(self.redis, "a") == self.lease, "a's lease (slot, incarnation) changed"
        after = [(i, f) for i, f in stream_entries(self.redis, "b", self.slot)
                 if stream_id(i) > stream_id(self.last_id)]
        assert after, "a wrote into b's stream after the upgrade"
        assert {f["s"] for _, f in after} == {self.tag}, "a sends under another sender tag"
        assert not [f for _, f in after if "c" in f], "a sent b an \"up\" entry"
        seqs = [int(f["n"]) for _, f in after]
        assert seqs[0] > self.seq and all(x < y for x, y in zip(seqs, seqs[1:])), \
            f"a's sequence numbers did not go on from {self.seq}: {seqs[:10]}"


# --- the set-up tests 1 and 3 share --------------------------------------------------------

def subscribers_on_both(pair):
    """SA on a ("a/#"), SB on b ("b/#"), a shared-group member on b, all persistent, each read
    by a Collector; a publisher on each node. Returns once publishes cross both ways and a
    publish on a reaches b's group."""
    a, b = pair.a, pair.b
    sa = connected(a.port, "sa", clean=False)
    assert sa.subscribe([("a/#", 1)]) == [1]
    sb = connected(b.port, "sb", clean=False)
    assert sb.subscribe([("b/#", 1)]) == [1]
    sg = connected(b.port, "sg", clean=False)
    assert sg.subscribe([("$share/g/s/#", 1)]) == [1]
    wait_until(lambda: interest(a) == 1 and interest(b) == 1, "each node sees the other's interest")
    c = types.SimpleNamespace(sa=Collector(sa), sb=Collector(sb), sg=Collector(sg),
                              pa=connected(a.port, "pa"), pb=connected(b.port, "pb"))
    until_it_crosses(c.pb, "a/x", c.sa, "b to a")
    until_it_crosses(c.pa, "b/x", c.sb, "a to b")
    until_it_crosses(c.pa, "s/x", c.sg, "a to b's shared group")
    return c


def publish_until(sequence, collector, since, then):
    """Lets the sequence run on: 50 more numbers delivered and `then` seconds since `since`
    (b scans a's lease every third of LEASE_S: a changed one would be seen by then)."""
    n = len(collector.payloads(sequence.topic))
    wait_until(lambda: len(collector.payloads(sequence.topic)) >= n + 50
               and time.monotonic() >= since + then, "the sequence to go on")


def still_connected(clients, collectors):
    """Same sockets, never closed, never a CONNACK; each still answers a ping."""
    for col in collectors:
        col.stop()
        assert not col.errors, col.errors
    for c in clients:
        c.ping()


# --- the tests -----------------------------------------------------------------------------


def crosses_both_ways(c, payload):
    """One publish each way, not retried: a's to b's subscriber and to b's shared group, b's
    to a's subscriber. Each must arrive at once, with nothing relearnt first."""
    publish(c.pa, "b/x", payload)
    c.sb.wait_for("b/x", payload, "a's publish to b's subscriber")
    publish(c.pa, "s/x", payload)
    c.sg.wait_for("s/x", payload, "a's publish to b's shared group")
    publish(c.pb, "a/y", payload)
    c.sa.wait_for("a/y", payload, "b's publish to a's subscriber")

# With a store on a (every-message), a's persistent subscriber's session and what is queued
# for it are written there, and the store moves to the new process with the node.
@pytest.mark.parametrize("store", [False, True], ids=["memory", "store"])
def test_a_cluster_node_upgrades_without_the_other_nodes_noticing(tmp_path, store):
    a_extra = ("--persistence-dir", str(tmp_path / "store")) if store else ()
    with two_nodes(tmp_path, *a_extra) as pair:
        a, b = pair.a, pair.b
        c = subscribers_on_both(pair)
        unnoticed = Unnoticed(pair)
        seq = Sequence(b, "a/seq")  # b -> a's stream, across the whole upgrade
        wait_until(lambda: len(c.sa.payloads("a/seq")) >= 20, "the sequence to cross")

        new_pid = upgraded(a, pid_file=pair.pid_file)
        assert a.proc.wait(timeout=TIMEOUT) == 0  # the old process is gone
        done = time.monotonic()
        # At once, from the connections that moved: one publish each, no probing. The new
        # process knows b's interest and b's shared group: nothing was relearnt.
        crosses_both_ways(c, b"after the upgrade")
        # A client new to the new process claims its id (at its home, either node) and publishes.
        fresh = connected(a.port, "fresh-on-a")
        publish(fresh, "b/x", b"from a new client")
        c.sb.wait_for("b/x", b"from a new client", "a new client's publish to b")

        publish_until(seq, c.sa, done, LEASE_S)
        seq.stop()
        seq.check(c.sa)
        still_connected([c.sa.client, c.sb.client, c.sg.client, c.pa, c.pb], [c.sa, c.sb, c.sg])
        unnoticed.check()
        # The new process is the one serving, and it too sees b as it did.
        wait_until(lambda: admin_up(a), "the new process's admin API")
        status, body = a.admin("/api/v1/clients/sa")
        assert status == 200 and json.loads(body)["connected"] is True, body
        assert cluster_metric(a, "tcpms_cluster_nodes_alive") == 1
        assert read_pid(pair.pid_file) == new_pid
        for client in (fresh, c.sa.client, c.sb.client, c.sg.client, c.pa, c.pb):
            client.close()


def ids_by_home(pair, holder, prefix):
    """Connects persistent clients prefix-0, prefix-1, ... to `holder` until one id has its
    home on each node (the node whose directory gained the entry is the home). Returns
    ({"a": (id, client), "b": (id, client)}, [the other clients, left connected])."""
    nodes = {"a": pair.a, "b": pair.b}

    def entries():
        return {k: cluster_metric(n, "tcpms_routing_directory_entries") for k, n in nodes.items()}
    found, others = {}, []
    for i in range(64):
        before = entries()
        cid = f"{prefix}-{i}"
        c = connected(holder.port, cid, clean=False)
        assert c.subscribe([(f"dev/{cid}/#", 1)]) == [1]
        wait_until(lambda: sum(entries().values()) == sum(before.values()) + 1,
                   f"{cid} entered at its home")
        home = next(k for k, v in entries().items() if v > before[k])
        if home in found:
            others.append(c)
        else:
            found[home] = (cid, c)
        if len(found) == 2:
            return found, others
    raise AssertionError(f"64 ids and not one homed on each node: {found}")


def receives(c, topic, payload):
    p = c.expect(PUBLISH, timeout=TIMEOUT)
    if p.qos == 1:
        c.send(ack_packet(PUBACK, p.pid))
    assert (p.topic, p.payload) == (topic, payload), p


def test_the_directory_moves_with_the_node(tmp_path):
    """Each id below is held on one node and homed on a or on b (both cases, since a's
    directory holds the ids homed at a, and b's entries name a as a holder). After a's
    upgrade, a CONNECT elsewhere still takes over the right connection and session, and a
    push by id through b finds a client held on a."""
    with two_nodes(tmp_path) as pair:
        a, b = pair.a, pair.b
        on_b, others_b = ids_by_home(pair, b, "on-b")
        on_a, others_a = ids_by_home(pair, a, "on-a")
        pushed, others_p = ids_by_home(pair, a, "push")

        upgraded(a, pid_file=pair.pid_file)
        assert a.proc.wait(timeout=TIMEOUT) == 0
        pub_a, pub_b = connected(a.port, "dir-pub-a"), connected(b.port, "dir-pub-b")

        # Pushed by client id through b's admin API to clients a held before the upgrade (same
        # sockets).
        for home, (cid, c) in pushed.items():
            push = json.dumps({"topic": f"push/{cid}", "payload": "hi"}).encode()
            status, body = b.admin(f"/api/v1/clients/{cid}/send", method="POST", body=push)
            assert status == 200, f"{cid}, homed on {home}: {status} {body}"
            receives(c, f"push/{cid}", b"hi")
        def taken_over(held, node, pub):
            """Each id of `held` connects to `node`: its old connection is closed, and its
            session (its subscription) comes along."""
            for home, (cid, old) in held.items():
                new, present, rc = claim(node.port, cid)
                assert (present, rc) == (True, 0), f"{cid}, homed on {home}: session present"
                old.expect_closed(TIMEOUT)
                publish(pub, f"dev/{cid}/cmd", b"to " + cid.encode())
                receives(new, f"dev/{cid}/cmd", b"to " + cid.encode())
                new.close()
        # Held on b, connecting to the new process.
        taken_over(on_b, a, pub_a)
        # Held on a since before the upgrade (in the new process now), connecting to b: the
        # new process closes its connection and hands the session over.
        taken_over(on_a, b, pub_b)
        for c in [pub_a, pub_b] + others_b + others_a + others_p + [c for _, c in pushed.values()]:
            c.close()


# The failed upgrade's new process: a stand-in (handover_fake.py's frames) that says it speaks
# every version, so the running server picks its own highest and goes as far as it would with
# a real successor of the same build, whatever version a cluster node's state needs. It takes
# the listeners, then dies at the first batch (FAKE_DIES_AT=batch: while connections are
# parked), or takes every batch and State frame and dies at Done (=done: the node's state has
# gone, nothing is committed). Either way the old process must take everything back.
SUCCESSOR = """#!/usr/bin/python3
import os, socket, struct, sys
sys.path.insert(0, {here!r})
from handover_fake import frame, receive, take_all

sock = socket.socket(fileno=int(os.environ["TCPMS_HANDOVER_FD"]))
sock.sendall(frame(1, struct.pack("<HHI", 1, 0xFFFF, os.getpid())))
_, kind, body, _ = receive(sock)
if kind != 2:
    print(f"cluster fake: no Welcome (frame kind {{kind}})", flush=True)
    sys.exit(3)
version = struct.unpack_from("<H", body)[0]
_, kind, body, kept = receive(sock)
assert kind == 4, kind
n = struct.unpack_from("<I", body)[0]
sock.sendall(frame(5, struct.pack("<II", 0, n) + b"\\x01" * n, version))
taken = 0
while True:
    _, kind, body, fds = receive(sock)
    kept += fds  # held, never touched
    if os.environ["FAKE_DIES_AT"] == "done" and kind in (6, 8):
        take_all(sock, kind, body, version)
        taken += 1
        continue
    print(f"cluster fake: version {{version}}, {{taken}} frame(s) taken; dying at frame kind "
          f"{{kind}}", flush=True)
    sys.exit(3)
"""


@pytest.mark.parametrize("dies_at", ["batch", "done"])
def test_a_failed_cluster_upgrade_rolls_back(tmp_path, dies_at):
    successor = tmp_path / "successor.py"
    successor.write_text(SUCCESSOR.format(here=HERE))
    successor.chmod(0o755)
    with two_nodes(tmp_path, "--upgrade-binary", str(successor),
                   env={"FAKE_DIES_AT": dies_at}) as pair:
        a, b = pair.a, pair.b
        c = subscribers_on_both(pair)
        unnoticed = Unnoticed(pair)
        seq = Sequence(b, "a/seq")
        wait_until(lambda: len(c.sa.payloads("a/seq")) >= 20, "the sequence to cross")

        up = upgrade(pair.pid_file)
        assert up.returncode == 1, up.stdout + up.stderr
        a.wait_for(lambda: "handover stopped" in a.output() or "nothing changed" in a.output(),
                   timeout=TIMEOUT, what="the rollback")
        out = a.output()
        assert "handover stopped" in out, out
        # It got as far as the stand-in: not refused before anything moved.
        assert "cluster fake: version" in out, out
        if dies_at == "done":
            assert "dying at frame kind 7" in out and "taken back from the new process" in out, out
        done = time.monotonic()
        assert a.proc.poll() is None and read_pid(pair.pid_file) == a.pid
        # a serves on as before: publishes cross both ways, at once.
        crosses_both_ways(c, b"after the rollback")
        # Nothing b sent into a's stream while it was stopped was lost or read twice.
        publish_until(seq, c.sa, done, LEASE_S)
        seq.stop()
        seq.check(c.sa)
        still_connected([c.sa.client, c.sb.client, c.sg.client, c.pa, c.pb], [c.sa, c.sb, c.sg])
        unnoticed.check()
        for client in (c.sa.client, c.sb.client, c.sg.client, c.pa, c.pb):
            client.close()
