"""Shared subscriptions ("$share/{group}/{filter}", MQTT 5.0 §4.8.2, honoured for 3.1.1 too):
each message goes to exactly one live member of the group, on one process (several loops) and
across worker processes; a member that goes away hands its unacknowledged QoS 1 messages to the
others; a stalled member gets no more while another can take them; no retained messages on a
shared subscribe; CONNACK announces the feature (5.0: Shared Subscription Available is left at
its default, 1); No Local on a shared subscription is a protocol error."""
import collections
import time

import struct

import pytest

from mqtt_raw import (CONNACK, PUBACK, PUBLISH, RawClient, ack_packet, connected, frame,
                      mqtt_server, s16)
from test_mqtt_12_session_workers import wait_mesh


def publish_topic(p):
    n = (p.body[0] << 8) | p.body[1]
    topic = p.body[2:2 + n].decode()
    rest = p.body[2 + n:]
    pid = None
    if p.qos:
        pid = (rest[0] << 8) | rest[1]
        rest = rest[2:]
    return topic, pid, bytes(rest)


def collect(members, want, ack=True, timeout=10.0, packets=None):
    """Reads PUBLISHes from every member until `want` payloads arrived in all; returns
    {payload: [member indexes]}. `packets`, if given, gets each (member index, PUBLISH)."""
    got = collections.defaultdict(list)
    deadline = time.monotonic() + timeout
    while sum(len(v) for v in got.values()) < want and time.monotonic() < deadline:
        for i, m in enumerate(members):
            try:
                p = m.read(0.02)
            except TimeoutError:
                continue
            assert p.type == PUBLISH, p
            _, pid, payload = publish_topic(p)
            got[payload].append(i)
            if packets is not None:
                packets.append((i, p))
            if ack and pid is not None:
                m.send(ack_packet(PUBACK, pid))
    return got


def servers():
    yield pytest.param(("--threads", "2"), 1, id="one-process-two-loops")
    yield pytest.param(("--processes", "3", "--threads", "1"), 3, id="three-worker-processes")


@pytest.mark.parametrize("args,processes", list(servers()))
def test_each_message_goes_to_exactly_one_member(args, processes):
    with mqtt_server(*args, "--no-admin") as srv:
        if processes > 1:
            wait_mesh(srv, processes)
        members = []
        for i in range(9):  # enough that the kernel spreads them over every process and loop
            c = connected(srv.port, f"worker-{i}")
            assert c.subscribe([("$share/pool/jobs/+", 1)]) == [1]
            members.append(c)
        # A plain subscriber on the same filter gets every message besides.
        watcher = connected(srv.port, "watcher")
        assert watcher.subscribe([("jobs/+", 1)]) == [1]
        time.sleep(0.3)
        pub = connected(srv.port, "producer")
        n = 90
        for k in range(n):
            pub.publish(f"jobs/{k % 3}", f"job-{k}".encode(), qos=1, pid=k % 60000 + 1)
        got = collect(members, n)
        assert sorted(got) == sorted(f"job-{k}".encode() for k in range(n)), "each job arrived"
        assert all(len(v) == 1 for v in got.values()), \
            {k: v for k, v in got.items() if len(v) != 1}
        per_member = collections.Counter(i for v in got.values() for i in v)
        assert len(per_member) >= 3, f"spread over members: {per_member}"
        seen = collect([watcher], n)
        assert len(seen) == n, "the plain subscription gets every message"
        for m in members:
            m.expect_nothing(0.2)  # and nothing more arrives later


@pytest.mark.parametrize("args,processes", list(servers()))
def test_a_member_that_goes_away_hands_its_unacknowledged_messages_over(args, processes):
    with mqtt_server(*args, "--no-admin") as srv:
        if processes > 1:
            wait_mesh(srv, processes)
        quitter = connected(srv.port, "quitter")
        assert quitter.subscribe([("$share/g/tasks", 1)]) == [1]
        stayers = []
        for i in range(4):
            c = connected(srv.port, f"stayer-{i}")
            assert c.subscribe([("$share/g/tasks", 1)]) == [1]
            stayers.append(c)
        time.sleep(0.3)
        pub = connected(srv.port, "producer")
        n = 40
        for k in range(n):
            pub.publish("tasks", f"t-{k}".encode(), qos=1, pid=k + 1)
        # The quitter reads its share without acknowledging any, then vanishes.
        held = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                p = quitter.read(0.3)
            except TimeoutError:
                break
            held.append(publish_topic(p)[2])
        assert held, "the quitter got some of them"
        quitter.close()
        got = collect(stayers, n - len(held) + len(held), timeout=10)
        # Everything arrives at the stayers: their own share and the quitter's unacknowledged ones.
        assert sorted(got) == sorted(f"t-{k}".encode() for k in range(n)), \
            f"missing {set(f't-{k}'.encode() for k in range(n)) - set(got)}"


def test_a_stalled_member_gets_no_more_while_another_can():
    with mqtt_server("--threads", "1", "--no-admin", "--max-inflight", "2") as srv:
        slow = connected(srv.port, "slow")
        assert slow.subscribe([("$share/g/work", 1)]) == [1]
        fast = connected(srv.port, "fast")
        assert fast.subscribe([("$share/g/work", 1)]) == [1]
        pub = connected(srv.port, "producer")
        for k in range(20):
            pub.publish("work", f"w-{k}".encode(), qos=1, pid=k + 1)
        got = collect([fast], 18, timeout=5)
        # The slow one never acknowledges: its window (2) fills and the rest go to the other.
        assert len(got) == 18, sorted(got)
        held = [publish_topic(slow.read(1))[2] for _ in range(2)]
        assert set(held) | set(got) == {f"w-{k}".encode() for k in range(20)}
        slow.expect_nothing(0.3)


def test_no_retained_on_a_shared_subscribe_and_no_local_is_refused():
    with mqtt_server("--no-admin") as srv:
        pub = connected(srv.port, "producer")
        pub.publish("kept/topic", b"retained-value", qos=1, retain=True)
        c = connected(srv.port, "sharer")
        assert c.subscribe([("$share/g/kept/#", 1)]) == [1]
        c.expect_nothing(0.3)  # 5.0 §4.8.2: retained messages are not sent to shared subscribers
        # 5.0 (raw bytes: paho 1.6 drops a DISCONNECT reason without properties): CONNACK
        # carries no "Shared Subscription Available 0"; No Local on a shared subscription is a
        # protocol error.
        v5 = RawClient(srv.port)
        v5.send(frame(0x10, s16("MQTT") + bytes([5, 0x02]) + struct.pack("!H", 60) + b"\x00" +
                      s16("v5-sharer")))
        ack = v5.expect(CONNACK)
        assert ack.body[1] == 0
        assert b"\x2a\x00" not in ack.body[3:], "Shared Subscription Available 0 is not sent"
        v5.send(frame(0x82, struct.pack("!H", 1) + b"\x00" + s16("$share/g/x") + bytes([0x01 | 0x04])))
        p = v5.read(5)
        assert p.type == 14 and p.body[:1] == b"\x82", p  # DISCONNECT, Protocol Error
        v5.expect_closed()
