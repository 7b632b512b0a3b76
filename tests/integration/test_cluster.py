"""Cluster through Redis (docs/cluster.md): a real redis-server, three tcpms nodes and HAProxy
on loopback, driven by paho, mosquitto_pub/sub and raw sockets. Publish anywhere, delivered
everywhere (wildcards, QoS 1/2, retained); push to a client id through another node's HTTP
API (200 held, 404 nowhere); takeover across nodes; persistent sessions following their
client to another node (queued and in-flight messages included, through HAProxy too) and
discarded everywhere by a clean connect; a blip of a node's stream or command connection
(nothing lost or doubled); a node killed -9 (the others keep serving, its keys expire by
lease); Redis frozen past its timeouts, then stopped and restarted mid-traffic (local
delivery never stops, cross-node delivery comes back). The nodes route with the same layer as
worker processes (routing::PeerRouter over the Redis transport): where a session or a
subscription is, is asked of the nodes' admin APIs, not of Redis.

The tests share one cluster and run in file order: the last three break it on purpose."""
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

import paho.mqtt.client as mqtt
import pytest

from mqtt_raw import (DISCONNECT_PACKET, PUBACK, PUBLISH, RawClient, ack_packet, connected,
                      publish_packet)
from tcpms_harness import Server

LEASE_S = 2

pytestmark = pytest.mark.skipif(
    not (shutil.which("redis-server") and shutil.which("haproxy")),
    reason="needs redis-server and haproxy (apt-get install redis-server haproxy)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out: {what}")


class Redis:
    """redis-server on a free loopback port, no persistence: a restart starts empty, which is
    the worst case for the nodes (everything must be rebuilt)."""

    def __init__(self):
        self.port = free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self._ping(), 10, "redis-server answering PING")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def _ping(self):
        try:
            return self.command("PING") == "PONG"
        except OSError:
            return False

    def command(self, *args):
        """One command, simple replies only (status, integer, bulk, array of bulks)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            out = f"*{len(args)}\r\n" + "".join(f"${len(str(a).encode())}\r\n{a}\r\n" for a in args)
            s.sendall(out.encode())
            f = s.makefile("rb")
            return self._read(f)

    def _read(self, f):
        line = f.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else f.read(n + 2)[:-2].decode(errors="replace")
        if kind == b"*":
            return [self._read(f) for _ in range(int(rest))]
        raise RuntimeError(f"unexpected reply {line!r}")


# Every node has a plain listener (tests that talk to one node directly) and one that
# expects HAProxy's PROXY v2 header, as deploy/haproxy.cfg sets it up: clients through the
# balancer keep their own addresses on the nodes.
NODE_CONFIG = tempfile.NamedTemporaryFile("w", prefix="tcpms-node-", suffix=".toml", delete=False)
NODE_CONFIG.write('[[listeners]]\nbind = "127.0.0.1:0"\nproxy_protocol = true\n')
NODE_CONFIG.close()


def node(redis_port, name, threads=2, *extra):
    return Server("--protocol", "mqtt", "--sys-interval", "0", "--threads", str(threads),
                  "--cluster", f"redis://127.0.0.1:{redis_port}", "--node-id", name,
                  "--cluster-lease-s", str(LEASE_S), "--config", NODE_CONFIG.name, *extra)


HAPROXY_CFG = """global
  maxconn 4096
defaults
  mode tcp
  timeout connect 2s
  timeout client 1h
  timeout server 1h
frontend mqtt
  bind 127.0.0.1:{port}
  default_backend tcpms
backend tcpms
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
{servers}
"""


class HAProxy:
    def __init__(self, nodes):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="tcpms-haproxy-")
        servers = "\n".join(
            f"  server {name} 127.0.0.1:{n.port_of('proxy+tcp')} send-proxy-v2 "
            f"check port {n.admin_port} inter 300ms fall 2 rise 1"
            for name, n in nodes.items())
        self.cfg = os.path.join(self.dir, "haproxy.cfg")
        with open(self.cfg, "w") as f:
            f.write(HAPROXY_CFG.format(port=self.port, servers=servers))
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", self.cfg],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False
        wait_until(up, 10, "haproxy listening")
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Paho:
    """A paho client on a background thread; messages land in a queue. No automatic
    reconnection matters here: a kicked client would otherwise take its id back."""

    def __init__(self, port, client_id="", clean=True):
        self.msgs = queue.Queue()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.c = mqtt.Client(client_id=client_id, clean_session=clean)
        self.c.on_connect = lambda c, u, f, rc: self.connected.set()
        self.c.on_subscribe = lambda c, u, mid, q: self.subscribed.set()
        self.c.on_message = lambda c, u, m: self.msgs.put((m.topic, m.payload, m.qos, m.retain))
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        assert self.connected.wait(5), "no CONNACK"

    def sub(self, filt, qos=0):
        self.subscribed.clear()
        self.c.subscribe(filt, qos)
        assert self.subscribed.wait(5), "no SUBACK"

    def pub(self, topic, payload, qos=0, retain=False):
        self.c.publish(topic, payload, qos, retain).wait_for_publish(5)

    def get(self, timeout=5.0):
        return self.msgs.get(timeout=timeout)

    def drain(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            out.append(self.msgs.get(timeout=max(0.01, deadline - time.monotonic())))
        return out

    def nothing(self, timeout=0.5):
        try:
            m = self.msgs.get(timeout=timeout)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected message {m}")

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def cluster_metric(n, name):
    return n.metrics().get(name, 0.0)


def interest(n):
    """How many other nodes `n` would send a matching publish to (their interest bitmaps
    have a subscription): where the old router counted (node, filter) routes."""
    return cluster_metric(n, "tcpms_cluster_nodes_with_interest")


def publishes_out(n):
    return cluster_metric(n, "tcpms_routing_publishes_sent_total")


def routes_settled(nodes, filters_each):
    """Every node sees interest at each other node with filters (`filters_each[other]` > 0)."""
    def check():
        for name, n in nodes.items():
            want = sum(1 for k, v in filters_each.items() if k != name and v > 0)
            if interest(n) != want:
                return False
        return True
    return check


@pytest.fixture(scope="module")
def cluster():
    redis = Redis().start()
    nodes = {}
    try:
        for name in ("n1", "n2", "n3"):
            nodes[name] = node(redis.port, name).__enter__()
        for n in nodes.values():
            n.wait_for(lambda n=n: cluster_metric(n, "tcpms_cluster_nodes_alive") == 2, 10,
                       what="every node sees the two others")
        with HAProxy(nodes) as proxy:
            yield {"redis": redis, "nodes": nodes, "proxy": proxy}
    finally:
        for n in nodes.values():
            n.__exit__(None, None, None)
        redis.stop()
    # Under ASan a report (a leak at exit included) only prints: fail on it here.
    for name, n in nodes.items():
        assert "Sanitizer" not in n.output(), f"{name}:\n{n.output()}"


def test_cross_node_publish_with_wildcards(cluster):
    n1, n2, n3 = (cluster["nodes"][k] for k in ("n1", "n2", "n3"))
    s2 = Paho(n2.port)
    s2.sub("home/+/temp")
    s3 = Paho(n3.port)
    s3.sub("home/#")
    local = Paho(n1.port)
    local.sub("home/kitchen/temp")
    wait_until(lambda: interest(n1) == 2, 5, "n1 has 2 routes")
    out_before = publishes_out(n1)
    pub = Paho(n1.port)
    pub.pub("home/kitchen/temp", b"21.5", qos=0)
    assert s2.get()[:2] == ("home/kitchen/temp", b"21.5")
    assert s3.get()[:2] == ("home/kitchen/temp", b"21.5")
    assert local.get()[:2] == ("home/kitchen/temp", b"21.5")
    pub.pub("home/kitchen/humidity", b"40")  # only "home/#" on n3 matches
    assert s3.get()[:2] == ("home/kitchen/humidity", b"40")
    s2.nothing()
    # A topic nobody elsewhere wants crosses to no node: no Redis traffic for it.
    pub.pub("office/door", b"open")
    time.sleep(0.3)
    assert publishes_out(n1) - out_before == 3  # 2 + 1 + 0
    # "$" topics do not match "#" [MQTT-4.7.2-1], across nodes too.
    pub.pub("$app/x", b"y")
    s3.nothing(0.3)
    for c in (s2, s3, local, pub):
        c.close()
    wait_until(routes_settled(cluster["nodes"], {"n1": 0, "n2": 0, "n3": 0}), 5,
               "routes removed when the subscribers left")


def test_qos1_and_qos2_across_nodes(cluster):
    n1, n2 = cluster["nodes"]["n1"], cluster["nodes"]["n2"]
    sub = Paho(n2.port, client_id="qos-sub")
    sub.sub("q/#", qos=2)
    wait_until(lambda: interest(n1) == 1, 5, "route on n1")
    pub = Paho(n1.port)
    for i in range(30):
        pub.pub(f"q/{i % 3}", f"m{i}".encode(), qos=1 + i % 2)
    got = sub.drain(30)
    assert sorted(p for _, p, _, _ in got) == sorted(f"m{i}".encode() for i in range(30))
    # Granted QoS 2: each arrives with the QoS it was published with (1 or 2), exactly once.
    assert {(p, q) for _, p, q, _ in got} == {(f"m{i}".encode(), 1 + i % 2) for i in range(30)}
    sub.nothing(0.3)
    # Per publisher, topic and QoS, order holds across the node boundary (§4.6).
    for t in range(3):
        for q in (1, 2):
            assert [p for topic, p, qos, _ in got if topic == f"q/{t}" and qos == q] == \
                [f"m{i}".encode() for i in range(30) if i % 3 == t and 1 + i % 2 == q]
    sub.close()
    pub.close()


def test_retained_across_nodes_and_for_a_node_joining_later(cluster):
    nodes = cluster["nodes"]
    pub = Paho(nodes["n1"].port)
    pub.pub("status/door", b"closed", qos=1, retain=True)
    pub.close()
    for name in ("n2", "n3"):
        s = Paho(nodes[name].port)
        wait_until(lambda s=s: (s.sub("status/+"), _retained(s))[1], 5, f"retained on {name}")
        s.close()
    # A node that starts afterwards loads the retained hash from Redis.
    with node(cluster["redis"].port, "n4") as n4:
        s = Paho(n4.port)
        s.sub("status/#")
        topic, payload, _, retain = s.get()
        assert (topic, payload, retain) == ("status/door", b"closed", True)
        s.close()
    # n4 said goodbye on SIGTERM: the others forget it at once, not at lease expiry.
    wait_until(lambda: cluster_metric(nodes["n1"], "tcpms_cluster_nodes_alive") == 2, 3, "n4 gone")
    # Clearing it (empty retained payload) also crosses.
    pub = Paho(nodes["n2"].port)
    pub.pub("status/door", b"", qos=1, retain=True)
    pub.close()
    s = Paho(nodes["n3"].port)
    time.sleep(0.3)
    s.sub("status/#")
    s.nothing(0.5)
    s.close()


def _retained(s):
    try:
        topic, payload, _, retain = s.get(0.3)
    except queue.Empty:
        return False
    return (topic, payload, retain) == ("status/door", b"closed", True)


def test_push_by_client_id_through_another_nodes_api(cluster):
    n1, n3 = cluster["nodes"]["n1"], cluster["nodes"]["n3"]
    dev = connected(n3.port, "device-42")
    dev.subscribe([("unrelated", 0)])  # not subscribed to the pushed topic: p2p still arrives
    wait_until(lambda: registered(cluster, "n3", "device-42"), 3, "device-42 on n3")
    status, body = n1.admin("/api/v1/clients/device-42/send", method="POST",
                            body=json.dumps({"topic": "cmd/reboot", "payload": "now"}).encode())
    assert status == 200, body
    p = dev.expect(PUBLISH)
    assert b"cmd/reboot" in p.body and p.body.endswith(b"now")
    assert cluster_metric(n1, "tcpms_routing_by_id_requests_total") >= 1
    assert "holds it" in body, body
    # Unknown everywhere: the id's home knows no holder, and the API waits for that answer:
    # 404, as for an id unknown on one node.
    status, body = n1.admin("/api/v1/clients/nobody/send", method="POST",
                            body=json.dumps({"topic": "x", "payload": "y"}).encode())
    assert status == 404, body
    dev.expect_nothing(0.3)
    dev.close()
    # Gone from n3: a push to it now finds no holder either.
    wait_until(lambda: not registered(cluster, "n3", "device-42"), 3, "device-42 gone from n3")
    status, body = n1.admin("/api/v1/clients/device-42/send", method="POST",
                            body=json.dumps({"topic": "x", "payload": "y"}).encode())
    assert status == 404, body


def test_takeover_across_nodes(cluster):
    n1, n2 = cluster["nodes"]["n1"], cluster["nodes"]["n2"]
    first = connected(n1.port, "same-id")
    # The id's home orders the two claims: the first was answered before its CONNACK.
    second = connected(n2.port, "same-id")
    first.expect_closed(3)  # [MQTT-3.1.4-2], across nodes
    second.ping()  # the newer connection stays
    assert sum(cluster_metric(n, "tcpms_routing_surrenders_total") for n in cluster["nodes"].values()) >= 1
    wait_until(lambda: not registered(cluster, "n1", "same-id"), 3, "n1 no longer holds same-id")
    second.close()


def test_generated_client_ids_do_not_collide_across_nodes(cluster):
    n1, n2 = cluster["nodes"]["n1"], cluster["nodes"]["n2"]
    a = connected(n1.port, "")  # [MQTT-3.1.3-6]: the server assigns one
    b = connected(n2.port, "")
    wait_until(lambda: any(i.startswith("tcpms-n1-") for i in client_ids(cluster, "n1"))
               and any(i.startswith("tcpms-n2-") for i in client_ids(cluster, "n2")),
               5, "both connected, each with its node in the id")
    time.sleep(0.2)  # their claims went to their homes: neither closed the other
    a.ping()
    b.ping()
    a.close()
    b.close()


def registered(cluster, node_name, client_id):
    """The node holds a session for the id (connected or offline)."""
    status, _ = cluster["nodes"][node_name].admin(f"/api/v1/clients/{client_id}")
    return status == 200


def has_route(cluster, node_name, filt):
    """A session on the node subscribes to exactly `filt`."""
    status, body = cluster["nodes"][node_name].admin(
        "/api/v1/subscriptions?filter=" + urllib.parse.quote(filt, safe=""))
    return status == 200 and len(json.loads(body)["subscriptions"]) > 0


def client_ids(cluster, node_name):
    status, body = cluster["nodes"][node_name].admin("/api/v1/clients?state=all&limit=1000")
    assert status == 200, body
    return [c["id"] for c in json.loads(body)["clients"]]


def offline_on(n, client_id):
    status, body = n.admin(f"/api/v1/clients/{client_id}")
    return status == 200 and json.loads(body)["connected"] is False


def leave(c):
    """A clean DISCONNECT: the will is not sent, a persistent session stays."""
    c.send(DISCONNECT_PACKET)
    c.close()


def take_publishes(c, n, ack=True):
    out = []
    for _ in range(n):
        p = c.expect(PUBLISH)
        if ack and p.qos == 1:
            c.send(ack_packet(PUBACK, p.pid))
        out.append(p)
    return out


def test_persistent_session_follows_its_client_to_another_node(cluster):
    n1, n2, n3 = (cluster["nodes"][k] for k in ("n1", "n2", "n3"))
    c = RawClient(n1.port)
    assert c.connect("roamer", clean=False) == (False, 0)
    assert c.subscribe([("roam/#", 1)]) == [1]
    wait_until(lambda: has_route(cluster, "n1", "roam/#") and registered(cluster, "n1", "roamer"), 5,
               "n1 holds roamer with its subscription")
    leave(c)
    wait_until(lambda: offline_on(n1, "roamer"), 5, "roamer offline on n1")
    # Offline, its session stays on n1 (the id's home says so to a CONNECT elsewhere).
    assert registered(cluster, "n1", "roamer")
    # Published through n3 while it is away: they cross to n1 and queue in its session there.
    in_before = cluster_metric(n1, "tcpms_cluster_messages_in_total")
    wait_until(lambda: interest(n3) >= 1, 5, "n3 knows the route")
    pub = connected(n3.port, "roam-pub")
    for i in range(10):
        pub.publish("roam/x", f"m{i}".encode(), qos=1, pid=i + 1)
    wait_until(lambda: cluster_metric(n1, "tcpms_cluster_messages_in_total") >= in_before + 10, 5,
               "the 10 messages reached n1")
    # Back, on n2: its session comes along, the 10 messages in order, each once.
    c2 = RawClient(n2.port)
    assert c2.connect("roamer", clean=False) == (True, 0)
    got = take_publishes(c2, 10)
    assert [p.payload for p in got] == [f"m{i}".encode() for i in range(10)]
    c2.expect_nothing(0.5)
    assert cluster_metric(n2, "tcpms_routing_sessions_moved_in_total") >= 1
    # n1 gave it up: no registration, no route there any more; n2 has both.
    wait_until(lambda: not registered(cluster, "n1", "roamer") and registered(cluster, "n2", "roamer"), 5,
               "the session moved to n2")
    wait_until(lambda: not has_route(cluster, "n1", "roam/#") and has_route(cluster, "n2", "roam/#"), 5,
               "the route moved to n2")
    wait_until(lambda: interest(n3) == 1, 5, "n3 sees one route")
    out_n1 = publishes_out(n3)
    pub.publish("roam/x", b"after", qos=1, pid=11)
    assert take_publishes(c2, 1)[0].payload == b"after"
    c2.expect_nothing(0.3)
    assert publishes_out(n3) == out_n1 + 1  # to n2 only
    leave(c2)
    pub.close()
    # Tidy: a clean connect discards it (tested on its own below).
    connected(n2.port, "roamer", clean=True).close()


def test_takeover_while_connected_moves_inflight_messages(cluster):
    n1, n2 = cluster["nodes"]["n1"], cluster["nodes"]["n2"]
    a = RawClient(n1.port)
    assert a.connect("mover", clean=False) == (False, 0)
    assert a.subscribe([("mv/#", 1)]) == [1]
    wait_until(lambda: registered(cluster, "n1", "mover"), 5, "n1 registers mover")
    pub = connected(n1.port, "mv-pub")
    for i in range(3):
        pub.publish("mv/t", f"f{i}".encode(), qos=1, pid=i + 1)
    first = take_publishes(a, 3, ack=False)  # in flight on n1: never acknowledged
    assert [p.payload for p in first] == [b"f0", b"f1", b"f2"]
    b = RawClient(n2.port)
    assert b.connect("mover", clean=False) == (True, 0)
    a.expect_closed(3)  # [MQTT-3.1.4-2], across nodes
    # Redelivered by n2 with DUP set [MQTT-4.4.0-1], in order, then nothing more.
    again = take_publishes(b, 3)
    assert [(p.payload, p.dup) for p in again] == [(b"f0", True), (b"f1", True), (b"f2", True)]
    b.expect_nothing(0.5)
    wait_until(lambda: not registered(cluster, "n1", "mover") and registered(cluster, "n2", "mover"), 5,
               "the registration moved to n2")
    # The subscription came along: a publish on n1 crosses to it on n2.
    wait_until(lambda: has_route(cluster, "n2", "mv/#"), 5, "mv/# routed to n2")
    wait_until(lambda: interest(n1) >= 1, 5, "n1 sees the route")
    pub.publish("mv/t", b"later", qos=1, pid=9)
    assert take_publishes(b, 1)[0].payload == b"later"
    leave(b)
    pub.close()
    connected(n2.port, "mover", clean=True).close()


def test_clean_connect_elsewhere_discards_the_session_everywhere(cluster):
    n1, n2, n3 = (cluster["nodes"][k] for k in ("n1", "n2", "n3"))
    c = RawClient(n2.port)
    assert c.connect("wiper", clean=False) == (False, 0)
    assert c.subscribe([("wp/#", 1)]) == [1]
    leave(c)
    wait_until(lambda: offline_on(n2, "wiper") and registered(cluster, "n2", "wiper"), 5,
               "wiper offline on n2, still registered")
    d = RawClient(n3.port)
    assert d.connect("wiper", clean=True) == (False, 0)
    # n2 discards its offline session [MQTT-3.1.2-6]: registration and route go.
    wait_until(lambda: not registered(cluster, "n2", "wiper") and not has_route(cluster, "n2", "wp/#"), 5,
               "n2 discarded wiper's session")
    status, _ = n2.admin("/api/v1/clients/wiper")
    assert status == 404
    leave(d)
    wait_until(lambda: not registered(cluster, "n3", "wiper"), 5, "n3 forgot the clean session")
    # Nothing anywhere now: a persistent CONNECT on n1 starts fresh, without waiting for the
    # claim timeout (the home knows no holder, so nobody is asked).
    moved_before = cluster_metric(n1, "tcpms_routing_sessions_moved_in_total")
    e = RawClient(n1.port)
    t0 = time.monotonic()
    assert e.connect("wiper", clean=False) == (False, 0)
    assert time.monotonic() - t0 < 1.0
    assert cluster_metric(n1, "tcpms_routing_sessions_moved_in_total") == moved_before
    e.close()
    connected(n1.port, "wiper", clean=True).close()


def test_entries_written_straight_into_a_stream_are_checked(cluster):
    """Written straight into n1's stream: malformed entries are refused and counted, an entry
    whose sender already delivered that sequence number is dropped (what a retried batch
    leaves), a frame that does not decode is counted by the router, and n1 goes on serving."""
    redis, n1 = cluster["redis"], cluster["nodes"]["n1"]
    c = RawClient(n1.port)
    assert c.connect("checked", clean=False) == (False, 0)
    bad = cluster_metric(n1, "tcpms_cluster_stream_bad_total")
    dups = cluster_metric(n1, "tcpms_cluster_stream_duplicates_total")
    frames_bad = cluster_metric(n1, "tcpms_routing_frames_bad_total")
    redis.command("XADD", "tcpms:stream:n1", "*", "s", "nobody", "n", "1", "p", "1", "f", "x")  # no '/'
    redis.command("XADD", "tcpms:stream:n1", "*", "s", "n9/1", "n", "x", "p", "1", "f", "x")  # sequence
    redis.command("XADD", "tcpms:stream:n1", "*", "s", "n9/1", "n", "1", "p", "999", "f", "x")  # slot
    wait_until(lambda: cluster_metric(n1, "tcpms_cluster_stream_bad_total") == bad + 3, 5, "3 refused")
    redis.command("XADD", "tcpms:stream:n1", "*", "s", "n9/1", "n", "5", "p", "1", "f", "\x63junk")
    redis.command("XADD", "tcpms:stream:n1", "*", "s", "n9/1", "n", "5", "p", "1", "f", "\x63junk")
    wait_until(lambda: cluster_metric(n1, "tcpms_cluster_stream_duplicates_total") == dups + 1, 5,
               "the second copy dropped")
    wait_until(lambda: cluster_metric(n1, "tcpms_routing_frames_bad_total") +
               cluster_metric(n1, "tcpms_routing_frames_unknown_total") >= frames_bad + 1, 5,
               "the junk frame refused by the router")
    c.ping()
    leave(c)
    connected(n1.port, "checked", clean=True).close()


def kill_redis_client(cluster, name):
    """CLIENT KILL the connection a node named `name` (CLIENT SETNAME); True if found."""
    for line in cluster["redis"].command("CLIENT", "LIST").splitlines():
        fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        if fields.get("name") == name:
            cluster["redis"].command("CLIENT", "KILL", "ID", fields["id"])
            return True
    return False


def test_cross_node_delivery_survives_a_blip_of_the_receivers_connection(cluster):
    n1, n2 = cluster["nodes"]["n1"], cluster["nodes"]["n2"]
    sub = connected(n2.port, "blip-sub")
    assert sub.subscribe([("blip/#", 1)]) == [1]
    wait_until(lambda: has_route(cluster, "n2", "blip/#"), 5, "blip/# routed to n2")
    wait_until(lambda: interest(n1) >= 1, 5, "n1 sees the route")
    pub = connected(n1.port, "blip-pub")
    errors = cluster_metric(n2, "tcpms_cluster_redis_errors_total")
    # n2's reading connection goes; it reconnects after a backoff. What n1 sends meanwhile
    # waits in n2's stream (pub/sub would have dropped it).
    assert kill_redis_client(cluster, "tcpms:n2:stream")
    for i in range(20):
        pub.publish("blip/t", f"b{i}".encode(), qos=1, pid=i + 1)
    got = take_publishes(sub, 20)
    assert [p.payload for p in got] == [f"b{i}".encode() for i in range(20)]
    sub.expect_nothing(0.3)
    assert cluster_metric(n2, "tcpms_cluster_redis_errors_total") > errors  # the blip happened
    # n1's command connection goes: the batch that meets the broken connection is kept and
    # sent again after the reconnection (same sequence numbers: never twice).
    reconnects = cluster_metric(n1, "tcpms_cluster_redis_reconnects_total")
    assert kill_redis_client(cluster, "tcpms:n1:command")
    pub.publish("blip/t", b"kept", qos=1, pid=30)
    assert take_publishes(sub, 1)[0].payload == b"kept"
    wait_until(lambda: cluster_metric(n1, "tcpms_cluster_redis_reconnects_total") > reconnects, 5,
               "n1 reconnected")
    pub.publish("blip/t", b"next", qos=1, pid=31)
    assert take_publishes(sub, 1)[0].payload == b"next"
    sub.expect_nothing(0.3)
    assert cluster_metric(n2, "tcpms_cluster_stream_entries_in_total") >= 22
    # The stream lives no longer than its node's lease (refreshed while n2 is alive).
    assert 0 < cluster["redis"].command("PTTL", "tcpms:stream:n2") <= LEASE_S * 1000
    leave(sub)
    leave(pub)


def test_through_haproxy_every_client_hears_every_publish(cluster):
    proxy, nodes = cluster["proxy"], cluster["nodes"]
    subs = [Paho(proxy.port, client_id=f"hp-{i}") for i in range(6)]
    for s in subs:
        s.sub("fleet/+/cmd", qos=1)
    # Round robin spread them: every node holds some.
    for n in nodes.values():
        assert cluster_metric(n, "tcpms_mqtt_sessions_connected") >= 1
    wait_until(routes_settled(nodes, {"n1": 1, "n2": 1, "n3": 1}), 5, "routes everywhere")
    pub = Paho(proxy.port)
    pub.pub("fleet/7/cmd", b"go", qos=1)
    for s in subs:
        assert s.get()[:3] == ("fleet/7/cmd", b"go", 1)
    # Every one of them reached its node through a PROXY v2 header (send-proxy-v2), so the
    # nodes saw the clients' addresses, not HAProxy's.
    assert sum(cluster_metric(n, "tcpms_proxy_headers_total") for n in nodes.values()) >= 7
    assert all(cluster_metric(n, "tcpms_proxy_refused_total") == 0 for n in nodes.values())
    for s in subs + [pub]:
        s.close()


def test_mosquitto_clients_through_haproxy_keep_their_session(cluster):
    """The issue's scenario with stock clients: a persistent mosquitto_sub through HAProxy,
    gone while mosquitto_pub sends through HAProxy (each publish on the next node), back
    through HAProxy (wherever it lands): every message once."""
    proxy, nodes = cluster["proxy"], cluster["nodes"]
    port = str(proxy.port)
    sub = ["mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-i", "mq-roamer", "-c", "-q", "1",
           "-t", "hp/roam/#"]
    subprocess.run(sub + ["-E"], check=True, timeout=10)  # subscribes, disconnects, session stays
    holder = [name for name in nodes if registered(cluster, name, "mq-roamer")]
    assert len(holder) == 1, holder
    for name in nodes:
        wait_until(lambda name=name: name == holder[0] or interest(nodes[name]) >= 1,
                   5, f"{name} routes hp/roam/# to {holder[0]}")
    for i in range(10):
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-q", "1", "-t", f"hp/roam/{i}",
                        "-m", f"m{i}"], check=True, timeout=10)
    def queued():
        status, body = nodes[holder[0]].admin("/api/v1/clients/mq-roamer")
        return json.loads(body)["details"]["queued"] if status == 200 else -1
    wait_until(lambda: queued() == 10, 5, "the 10 messages queued in its offline session")
    out = subprocess.run(sub + ["-v", "-C", "10", "-W", "10"], capture_output=True, text=True, timeout=20)
    got = sorted(out.stdout.split("\n")[:-1])
    assert got == sorted(f"hp/roam/{i} m{i}" for i in range(10)), (out.stdout, out.stderr)
    landed = [name for name in nodes if registered(cluster, name, "mq-roamer")]
    assert len(landed) == 1, landed
    subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-i", "mq-roamer", "-t", "x", "-E"],
                   check=True, timeout=10)  # a clean session ends it everywhere
    wait_until(lambda: not any(registered(cluster, name, "mq-roamer") for name in nodes), 5,
               "mq-roamer's session discarded")


def test_kill_9_of_a_node(cluster):
    nodes, proxy = cluster["nodes"], cluster["proxy"]
    n1, n2, n3 = nodes["n1"], nodes["n2"], nodes["n3"]
    s2 = Paho(n2.port)
    s2.sub("k/#")
    s3 = Paho(n3.port)
    s3.sub("k/#")
    wait_until(lambda: interest(n1) == 2, 5, "2 routes on n1")
    n3.kill()  # SIGKILL: no goodbye
    killed = time.monotonic()
    pub = Paho(n1.port)
    pub.pub("k/1", b"still", qos=1)
    assert s2.get()[:2] == ("k/1", b"still")  # the others keep serving at once
    # Its lease runs out; the others drop its routes and stop sending to it.
    wait_until(lambda: cluster_metric(n1, "tcpms_cluster_nodes_alive") == 1
               and interest(n1) == 1, LEASE_S * 3,
               "n3's routes expired")
    assert time.monotonic() - killed < LEASE_S * 2 + 1
    # Its lease key and stream expire in Redis (a sender refreshed the stream's TTL a moment
    # after the lease).
    wait_until(lambda: cluster["redis"].command("EXISTS", "tcpms:node:n3") == 0, LEASE_S + 1,
               "tcpms:node:n3 expired")
    wait_until(lambda: cluster["redis"].command("EXISTS", "tcpms:stream:n3") == 0, LEASE_S + 1,
               "tcpms:stream:n3 expired")
    out = publishes_out(n1)
    pub.pub("k/2", b"after", qos=1)
    assert s2.get()[:2] == ("k/2", b"after")
    time.sleep(0.2)
    assert publishes_out(n1) - out == 1  # to n2 only
    # HAProxy's health check takes n3 out: new clients through it all land on live nodes.
    time.sleep(1.0)
    fresh = [Paho(proxy.port) for _ in range(4)]
    for c in fresh:
        c.close()
    for c in (s2, pub):
        c.close()
    s3.c.loop_stop()  # its node is gone


def test_redis_hangs_longer_than_the_timeouts(cluster):
    """SIGSTOP on redis-server: replies time out (2 s) on every node's three connections. A
    resuming CONNECT, a push and a publish all answer in bounded time meanwhile; once Redis
    runs again (the 2 s leases have lapsed in its clock), the nodes rewrite their state and
    cross-node delivery resumes."""
    redis, nodes = cluster["redis"], cluster["nodes"]
    n1, n2 = nodes["n1"], nodes["n2"]
    sub = connected(n2.port, "hang-sub")
    assert sub.subscribe([("hang/#", 1)]) == [1]
    wait_until(lambda: has_route(cluster, "n2", "hang/#"), 5, "hang/# routed to n2")
    wait_until(lambda: interest(n1) >= 1, 5, "n1 sees the route")
    pub = connected(n1.port, "hang-pub")
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        c = RawClient(n1.port, timeout=10)
        # Its home (another node) cannot answer: a persistent CONNECT is refused, server
        # unavailable, rather than let in with an empty session.
        assert c.connect("hang-resumer", clean=False)[1] == 3
        assert time.monotonic() - t0 < 8
        t0 = time.monotonic()
        status, _ = n1.admin("/api/v1/clients/hang-sub/send", method="POST",
                             body=json.dumps({"topic": "x", "payload": "y"}).encode())
        # Whatever it learnt, within its bound: 503 when the id's home did not answer (the
        # push may or may not be delivered), as with worker processes.
        assert status in (200, 404, 503)
        assert time.monotonic() - t0 < 8
        pub.publish("hang/t", b"during", qos=1, pid=1)  # the local handshake never waits
        c.close()
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: cluster_metric(n1, 'tcpms_cluster_redis_up{node="n1",link="command"}') == 1
               and interest(n1) >= 1, 15, "n1 back with n2's route")
    while True:  # "during" may or may not have crossed (it met the hang): not asserted
        try:
            p = sub.read(0.5)
        except TimeoutError:
            break
        if p.type == PUBLISH and p.qos == 1:
            sub.send(ack_packet(PUBACK, p.pid))
    pub.publish("hang/t", b"after", qos=1, pid=2)
    assert take_publishes(sub, 1)[0].payload == b"after"
    for n in (n1, n2):
        assert n.proc.poll() is None
    leave(sub)
    leave(pub)
    connected(n1.port, "hang-resumer", clean=True).close()


def test_redis_stopped_and_restarted_mid_traffic(cluster):
    redis, nodes = cluster["redis"], cluster["nodes"]
    n1, n2 = nodes["n1"], nodes["n2"]
    local = Paho(n1.port)
    local.sub("r/#")
    remote = Paho(n2.port)
    remote.sub("r/#")
    wait_until(lambda: interest(n1) == 1, 5, "route on n1")
    pub = Paho(n1.port)
    pub.pub("r/0", b"before", qos=1)
    assert local.get()[:2] == ("r/0", b"before")
    assert remote.get()[:2] == ("r/0", b"before")

    redis.stop()
    wait_until(lambda: cluster_metric(n1, 'tcpms_cluster_redis_up{node="n1",link="command"}') == 0,
               5, "n1 notices Redis is gone")
    # Local delivery never stops; what would cross is counted, not queued forever.
    for i in range(5):
        pub.pub(f"r/{i}", f"down{i}".encode(), qos=1)
        assert local.get()[:2] == (f"r/{i}", f"down{i}".encode())
    assert cluster_metric(n1, "tcpms_cluster_dropped_total") >= 1
    # A subscription made while Redis is away is published when it returns.
    late = Paho(n2.port)
    late.sub("late/topic")

    redis.start()  # same port, empty: every node joins again and tells the others everything
    for name, n in (("n1", n1), ("n2", n2)):
        wait_until(lambda n=n, name=name: cluster_metric(n, 'tcpms_cluster_redis_up{node="%s",link="command"}' % name) == 1
                   and cluster_metric(n, "tcpms_cluster_nodes_alive") == 1 and interest(n) == 1, 10,
                   "the nodes see each other's interest again")
    while not remote.msgs.empty():
        remote.msgs.get()

    def crosses(client, topic, payload):
        """Published until it arrives: the nodes' state crosses again shortly after Redis."""
        pub.pub(topic, payload, qos=0)
        try:
            return client.get(0.3)[:2] == (topic, payload)
        except queue.Empty:
            return False
    wait_until(lambda: crosses(remote, "r/9", b"after"), 10, "r/9 crosses again")
    # The subscription made while Redis was away reached n1 with n2's state.
    wait_until(lambda: crosses(late, "late/topic", b"hi"), 10, "late/topic crosses")
    assert cluster_metric(n1, "tcpms_cluster_redis_reconnects_total") >= 1
    assert "could not cross meanwhile" in n1.output()
    for c in (local, remote, pub, late):
        c.close()


def test_a_publisher_faster_than_redis_waits_and_nothing_crosses_lost():
    """A node whose queue to Redis fills holds its publishers (reading pauses, TCP pushes
    back) instead of dropping frames: with a queue of 64 frames, 20,000 QoS 0 publishes sent
    in one burst all reach a subscriber on the other node, in order. (Before, the queue
    refused frames once full: most of the burst was lost.)"""
    redis = Redis().start()
    n1 = node(redis.port, "q1", 1, "--cluster-queue-frames", "64").__enter__()
    n2 = node(redis.port, "q2", 1, "--cluster-queue-frames", "64").__enter__()
    try:
        for n in (n1, n2):
            n.wait_for(lambda n=n: cluster_metric(n, "tcpms_cluster_nodes_alive") == 1, 10,
                       what="the nodes see each other")
        sub = connected(n2.port, "flood-sub")
        sub.subscribe([("flood/t", 0)])
        wait_until(lambda: interest(n1) == 1, 10, "n1 knows n2's filter")
        pub = connected(n1.port, "flood-pub")
        count = 20000
        pub.send(b"".join(publish_packet("flood/t", b"%d" % i) for i in range(count)))
        got = []
        while len(got) < count:
            p = sub.read(timeout=20)
            assert p.type == PUBLISH and p.topic == "flood/t", p
            got.append(int(p.payload))
        assert got == list(range(count))
        assert cluster_metric(n1, "tcpms_mqtt_publisher_link_waits_total") > 0
        assert cluster_metric(n1, 'tcpms_cluster_dropped_total{node="q1",reason="queue_full"}') == 0
        pub.close()
        sub.close()
    finally:
        n1.__exit__(None, None, None)
        n2.__exit__(None, None, None)
        redis.stop()
