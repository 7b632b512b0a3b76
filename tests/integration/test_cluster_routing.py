"""The cluster on the one routing layer (docs/cluster.md): what crosses between nodes now that
they route with PeerRouter, as worker processes do. A real redis-server and two tcpms nodes,
each with its own store and persistence.sync = every-message. MQTT 5.0 properties (user
properties, message expiry, subscription identifiers) across nodes; a 5.0 persistent session
moving to the other node; shared subscriptions across nodes (each message once, to one member;
a member that leaves gets no more); a QoS 1 publish whose PUBACK waits for the other node's
store; client-id homes following a node that joins and one that is killed; a node killed -9
coming back with its sessions from its store, found from the other nodes."""
import collections
import shutil
import tempfile
import time

import pytest

from mqtt_raw import PUBACK, PUBLISH, ack_packet, connected
from test_cluster import LEASE_S, NODE_CONFIG, Redis, cluster_metric, wait_until
from test_mqtt_13_v5 import V5, opts, p_str, p_u32, p_user, publish5, v5
from test_mqtt_15_shared import collect
from tcpms_harness import Server

pytestmark = pytest.mark.skipif(not shutil.which("redis-server"),
                                reason="needs redis-server (apt-get install redis-server)")


def node(redis_port, name, store):
    return Server("--protocol", "mqtt", "--sys-interval", "0", "--threads", "2",
                  "--cluster", f"redis://127.0.0.1:{redis_port}", "--node-id", name,
                  "--cluster-lease-s", str(LEASE_S), "--config", NODE_CONFIG.name,
                  "--persistence-dir", store, "--persistence-sync", "every-message")


@pytest.fixture(scope="module")
def pair():
    redis = Redis().start()
    stores = [tempfile.mkdtemp(prefix="tcpms-cluster-store-") for _ in range(2)]
    nodes = {}
    try:
        for name, store in zip(("a", "b"), stores):
            nodes[name] = node(redis.port, name, store).__enter__()
        for n in nodes.values():
            n.wait_for(lambda n=n: cluster_metric(n, "tcpms_cluster_nodes_alive") == 1, 10,
                       what="each node sees the other")
        yield {**nodes, "redis": redis}
    finally:
        for n in nodes.values():
            n.__exit__(None, None, None)
        redis.stop()
        for s in stores:
            shutil.rmtree(s, ignore_errors=True)
    for name, n in nodes.items():
        assert "Sanitizer" not in n.output(), f"{name}:\n{n.output()}"


def interest(n):
    return cluster_metric(n, "tcpms_cluster_nodes_with_interest")


def test_v5_properties_cross_nodes(pair):
    a, b = pair["a"], pair["b"]
    sub = v5(b, "p5-sub")
    assert sub.sub5([("p5/#", opts(1))], props=b"\x0b\x07") == [1]  # Subscription Identifier 7
    wait_until(lambda: interest(a) == 1, 5, "a sees b's interest")
    pub = v5(a, "p5-pub")
    props = (p_u32(0x02, 60) + p_str(0x03, "text/plain") + p_str(0x08, "reply/here") +
             p_str(0x09, b"\x01\x02corr") + p_user("k", "1") + p_user("k2", "2") + p_user("k", "3"))
    pub.send(publish5("p5/x", "hello", qos=1, pid=3, props=props))
    assert pub.ack_code(PUBACK) == (3, 0)
    m = sub.read_pub()
    assert (m.topic, m.payload, m.qos) == ("p5/x", b"hello", 1)
    got = dict((k, v) for k, v in m.props if k != 0x26)
    assert 58 <= got[0x02] <= 60  # Message Expiry Interval, counted down across the hop
    assert got[0x03] == b"text/plain" and got[0x08] == b"reply/here" and got[0x09] == b"\x01\x02corr"
    assert got[0x0B] == 7  # the receiving subscription's identifier, added on b
    assert [v for k, v in m.props if k == 0x26] == [("k", "1"), ("k2", "2"), ("k", "3")]  # in order
    sub.send(ack_packet(PUBACK, m.pid))
    sub.send(b"\xe0\x00")
    sub.close()
    pub.close()


def test_message_expiry_on_the_other_node(pair):
    """Queued on b for an offline 5.0 session: a message whose expiry runs out while it waits
    is dropped there; the other arrives with its expiry counted down."""
    a, b = pair["a"], pair["b"]
    c = v5(b, "mx5", clean=False, props=p_u32(0x11, 60))
    assert c.sub5([("mx5/t", opts(1))]) == [1]
    c.send(b"\xe0\x00")
    c.close()
    wait_until(lambda: interest(a) == 1, 5, "a sees b's interest")
    pub = v5(a, "mx5-pub")
    pub.send(publish5("mx5/t", "short", qos=1, pid=1, props=p_u32(0x02, 1)))
    pub.send(publish5("mx5/t", "long", qos=1, pid=2, props=p_u32(0x02, 60)))
    pub.ack_code(PUBACK)
    pub.ack_code(PUBACK)
    time.sleep(2.2)
    c = V5(b.port)
    present, code, _ = c.connect5("mx5", clean=False, props=p_u32(0x11, 60))
    assert (present, code) == (True, 0)
    m = c.read_pub()
    assert m.payload == b"long"  # "short" expired while it waited [MQTT-3.3.2-5]
    assert 55 <= dict(m.props)[0x02] <= 58  # [MQTT-3.3.2-6]
    c.send(ack_packet(PUBACK, m.pid))
    c.expect_nothing(0.3)
    c.close()
    v5(b, "mx5", clean=True).close()
    pub.close()


def test_v5_session_moves_to_the_other_node(pair):
    a, b = pair["a"], pair["b"]
    c = v5(a, "roam5", clean=False, props=p_u32(0x11, 300))
    assert c.sub5([("r5/#", opts(1))], props=b"\x0b\x05") == [1]
    c.send(b"\xe0\x00")  # DISCONNECT: the session stays on a for 300 s
    c.close()
    wait_until(lambda: interest(b) == 1, 5, "b sees a's interest")
    pub = v5(b, "roam5-pub")
    for i in range(3):
        pub.send(publish5("r5/t", f"m{i}", qos=1, pid=i + 1, props=p_user("i", str(i))))
        pub.ack_code(PUBACK)
    wait_until(lambda: cluster_metric(a, "tcpms_routing_publishes_received_total") >= 3, 5,
               "the publishes reached a's session")
    moved = cluster_metric(b, "tcpms_routing_sessions_moved_in_total")
    c = V5(b.port)
    present, code, props = c.connect5("roam5", clean=False, props=p_u32(0x11, 300))
    assert (present, code) == (True, 0)  # the session came from a
    for i in range(3):
        m = c.read_pub()
        assert (m.payload, m.qos) == (f"m{i}".encode(), 1)
        assert (0x0B, 5) in m.props  # its subscription identifier came along
        assert (0x26, ("i", str(i))) in m.props
        c.send(ack_packet(PUBACK, m.pid))
    c.expect_nothing(0.3)
    assert cluster_metric(b, "tcpms_routing_sessions_moved_in_total") == moved + 1
    status, _ = a.admin("/api/v1/clients/roam5")
    assert status == 404  # a gave it up
    # Its subscription is on b now: a publish on a crosses to it.
    wait_until(lambda: interest(a) == 1, 5, "a sees the subscription on b")
    pub2 = v5(a, "roam5-pub2")
    pub2.send(publish5("r5/t", "after", qos=1, pid=9))
    pub2.ack_code(PUBACK)
    m = c.read_pub()
    assert m.payload == b"after" and (0x0B, 5) in m.props
    c.send(ack_packet(PUBACK, m.pid))
    c.send(b"\xe0\x00")
    c.close()
    v5(b, "roam5", clean=True).close()
    pub.close()
    pub2.close()


def test_shared_subscription_across_nodes(pair):
    """Members on both nodes, publishers on both: each message once, to one member; a member
    that leaves gets no more, and the others get everything."""
    a, b = pair["a"], pair["b"]
    members = [connected(a.port, "sh-a1"), connected(a.port, "sh-a2"), connected(b.port, "sh-b1"),
               connected(b.port, "sh-b2")]
    for m in members:
        assert m.subscribe([("$share/g/sh/+", 1)]) == [1]
    time.sleep(0.5)  # the group's members are announced to the other node
    pubs = [connected(a.port, "sh-pa"), connected(b.port, "sh-pb")]
    n = 80
    for k in range(n):
        pubs[k % 2].publish(f"sh/{k % 4}", f"job-{k}".encode(), qos=1, pid=k + 1)
    got = collect(members, n)
    assert sorted(got) == sorted(f"job-{k}".encode() for k in range(n)), "each job arrived"
    assert all(len(v) == 1 for v in got.values()), {k: v for k, v in got.items() if len(v) != 1}
    per_member = collections.Counter(i for v in got.values() for i in v)
    assert len(per_member) >= 2, per_member
    assert {0, 1} & set(per_member) and {2, 3} & set(per_member), f"both nodes' members: {per_member}"
    for m in members:
        m.expect_nothing(0.2)
    # b's members leave: everything goes to a's, none twice, none lost.
    for m in members[2:]:
        m.send(b"\xe0\x00")
        m.close()
    time.sleep(0.5)
    for k in range(n, n + 40):
        pubs[k % 2].publish(f"sh/{k % 4}", f"job-{k}".encode(), qos=1, pid=k + 1)
    got = collect(members[:2], 40)
    assert sorted(got) == sorted(f"job-{k}".encode() for k in range(n, n + 40))
    assert all(len(v) == 1 for v in got.values())
    # One that comes back without subscribing gets nothing of the group.
    back = connected(b.port, "sh-b1")
    pubs[0].publish("sh/0", b"one-more", qos=1, pid=200)
    assert list(collect(members[:2], 1)) == [b"one-more"]
    back.expect_nothing(0.5)
    for c in members[:2] + pubs + [back]:
        c.close()


def test_every_message_sync_puback_waits_for_the_other_nodes_store(pair):
    """With persistence.sync = every-message on both nodes, a QoS 1 publish on a whose only
    subscriber is a persistent session on b is PUBACKed after b stored it (a DurablePublish
    answered after b's commit): the PUBACK comes, the message arrives, both nodes stay up."""
    a, b = pair["a"], pair["b"]
    sub = connected(b.port, "dur-sub", clean=False)
    assert sub.subscribe([("dur/#", 1)]) == [1]
    wait_until(lambda: interest(a) == 1, 5, "a sees b's interest")
    asked = cluster_metric(a, "tcpms_routing_durable_asked_total")
    pub = connected(a.port, "dur-pub")
    for i in range(5):
        pub.publish("dur/t", f"d{i}".encode(), qos=1, pid=i + 1)  # returns on its PUBACK
    assert cluster_metric(a, "tcpms_routing_durable_asked_total") >= asked + 5
    assert cluster_metric(a, "tcpms_routing_durable_unconfirmed_total") == 0
    for i in range(5):
        p = sub.expect(PUBLISH)
        assert p.payload == f"d{i}".encode()
        sub.send(ack_packet(PUBACK, p.pid))
    for n in (a, b):
        assert n.proc.poll() is None
        status, _ = n.admin("/readyz")
        assert status == 200
    sub.close()
    pub.close()
    connected(b.port, "dur-sub", clean=True).close()


def test_homes_follow_nodes_that_come_and_go(pair):
    """Client-id homes are rendezvous hashing over the live nodes. A node that joins becomes
    the home of some ids (their holders enroll them there); one that is killed hands them on
    (the holders enroll them at their new homes). Takeovers by id keep working across both
    changes, whichever node is an id's home."""
    a, b = pair["a"], pair["b"]
    ids = [f"home-{i}" for i in range(12)]
    on_a = {i: connected(a.port, i) for i in ids}
    store = tempfile.mkdtemp(prefix="tcpms-cluster-store-")
    try:
        with node(pair["redis"].port, "c", store) as c:
            for n in (a, b, c):
                wait_until(lambda n=n: cluster_metric(n, "tcpms_cluster_nodes_alive") == 2, 10,
                           "three nodes")
            # Some of the ids are homed on c now: a enrolled them there.
            wait_until(lambda: cluster_metric(c, "tcpms_routing_directory_entries") >= 1, 5,
                       "c is home of some of a's ids")
            on_b = {}
            for i in ids:
                on_b[i] = connected(b.port, i)
                on_a[i].expect_closed(3)  # [MQTT-3.1.4-2]: the home knew a held it
            c.kill()  # no goodbye: its lease runs out
            for n in (a, b):
                wait_until(lambda n=n: cluster_metric(n, "tcpms_cluster_nodes_alive") == 1, LEASE_S * 3,
                           "c's lease expired")
            # The ids c was home of have new homes, where b enrolled them.
            for i in ids:
                again = connected(a.port, i)
                on_b[i].expect_closed(3)
                again.close()
    finally:
        shutil.rmtree(store, ignore_errors=True)


def test_a_restarted_nodes_sessions_come_back_there_and_are_found_from_the_others(pair):
    """Issue 17 with the cluster: a node killed -9 comes back with its persistent sessions from
    its store, enrolls them at their homes and tells the others its interest again, so a
    publish on another node is queued for the offline session and the client, reconnecting
    on yet another node, gets its session (session present) with the message."""
    a, b = pair["a"], pair["b"]
    store = tempfile.mkdtemp(prefix="tcpms-cluster-store-")
    try:
        with node(pair["redis"].port, "c", store) as c:
            for n in (a, b, c):
                wait_until(lambda n=n: cluster_metric(n, "tcpms_cluster_nodes_alive") == 2, 10,
                           "three nodes")
            sub = v5(c, "comeback", clean=False, props=p_u32(0x11, 600))
            assert sub.sub5([("back/t", opts(1))]) == [1]
            # SUBACK is not held for the disk (docs/persistence.md); a PUBACK is, for every
            # write before it: once this one comes, the subscription is stored.
            sub.send(publish5("back/t", "first", qos=1, pid=1))
            m = sub.read_pub()  # its own copy comes first: the PUBACK waits for the disk
            sub.send(ack_packet(PUBACK, m.pid))
            sub.ack_code(PUBACK)
            sub.send(b"\xe0\x00")  # DISCONNECT: the session stays, offline, on c
            sub.close()
            c.kill()
            for n in (a, b):
                wait_until(lambda n=n: cluster_metric(n, "tcpms_cluster_nodes_alive") == 1,
                           LEASE_S * 3, "c's lease expired")
        with node(pair["redis"].port, "c", store) as c:
            for n in (a, b, c):
                wait_until(lambda n=n: cluster_metric(n, "tcpms_cluster_nodes_alive") == 2, 10,
                           "c is back")
            status, body = c.admin("/api/v1/sessions?q=comeback")
            assert status == 200 and '"comeback"' in body, "the session came back from c's store"
            wait_until(lambda: interest(a) >= 1, 5, "a sees the recovered subscription on c")
            pub = v5(a, "comeback-pub")
            pub.send(publish5("back/t", "while away", qos=1, pid=1))
            pub.ack_code(PUBACK)
            wait_until(lambda: cluster_metric(c, "tcpms_routing_publishes_received_total") >= 1, 5,
                       "the publish reached c's offline session")
            again = V5(b.port)
            present, code, _ = again.connect5("comeback", clean=False, props=p_u32(0x11, 600))
            assert (present, code) == (True, 0), "found on c from b"
            m = again.read_pub()
            if m.payload == b"first":  # its acknowledgement may not have reached the disk
                again.send(ack_packet(PUBACK, m.pid))  # before the kill: at least once
                m = again.read_pub()
            assert (m.payload, m.qos) == (b"while away", 1)
            again.send(ack_packet(PUBACK, m.pid))
            again.send(b"\xe0\x00")
            again.close()
            v5(b, "comeback", clean=True).close()
            pub.close()
    finally:
        shutil.rmtree(store, ignore_errors=True)
