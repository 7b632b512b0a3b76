"""Persistent sessions (3.1.1 §3.1.2.4, §4.1, §4.4) and takeover (§3.1.4): subscriptions and
QoS 1/2 messages kept while offline, redelivery with DUP, session takeover on the same loop
and across loops, CleanSession 1 discarding state, the queue bound."""
import time

from mqtt_raw import (DISCONNECT_PACKET, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, RawClient,
                      ack_packet, connected, mqtt_server)


def test_offline_messages_delivered_on_resume():
    with mqtt_server("--threads", "4") as srv:
        c = connected(srv.port, "persist", clean=False)
        c.subscribe([("p/#", 2)])
        c.send(DISCONNECT_PACKET)
        c.expect_closed()
        srv.wait_for(lambda: srv.metrics()["tcpms_mqtt_sessions_offline"] == 1, what="offline")
        pub = connected(srv.port, "p-pub")
        pub.publish("p/0", b"qos0 not kept", qos=0)
        pub.publish("p/1", b"one", qos=1, pid=1)
        pub.publish("p/2", b"two", qos=2, pid=2)
        srv.wait_for(lambda: srv.metrics()["tcpms_mqtt_queued_messages"] == 2, what="queued")
        # Reconnect (likely on another loop: 4 loops) [MQTT-3.1.2-4].
        c = RawClient(srv.port)
        assert c.connect("persist", clean=False) == (True, 0)  # [MQTT-3.2.2-2]
        p1 = c.expect(PUBLISH)
        p2 = c.expect(PUBLISH)
        assert (p1.payload, p1.qos, p2.payload, p2.qos) == (b"one", 1, b"two", 2)
        c.send(ack_packet(PUBACK, p1.pid))
        c.send(ack_packet(PUBREC, p2.pid))
        assert c.expect(PUBREL).pid == p2.pid
        c.send(ack_packet(PUBCOMP, p2.pid))
        c.expect_nothing(0.3)
        # The subscription survived too.
        pub.publish("p/3", b"live", qos=1, pid=3)
        assert c.expect(PUBLISH).payload == b"live"


def test_unacknowledged_redelivered_with_dup():
    with mqtt_server("--threads", "3") as srv:
        c = connected(srv.port, "dup", clean=False)
        c.subscribe([("d", 2)])
        pub = connected(srv.port, "d-pub")
        pub.publish("d", b"q1", qos=1, pid=1)
        pub.publish("d", b"q2", qos=2, pid=2)
        pub.publish("d", b"q2b", qos=2, pid=3)
        a, b, d = c.expect(PUBLISH), c.expect(PUBLISH), c.expect(PUBLISH)
        c.send(ack_packet(PUBREC, d.pid))  # third: PUBREC sent, PUBCOMP pending
        assert c.expect(PUBREL).pid == d.pid
        c.close()  # abnormal loss, nothing else acknowledged
        time.sleep(0.2)
        c = RawClient(srv.port)
        assert c.connect("dup", clean=False) == (True, 0)
        # Same ids, DUP set, original order; then the PUBREL again [MQTT-4.4.0-1].
        r1, r2, r3 = c.read(), c.read(), c.read()
        assert (r1.type, r1.pid, r1.dup, r1.payload) == (PUBLISH, a.pid, True, b"q1")
        assert (r2.type, r2.pid, r2.dup, r2.payload) == (PUBLISH, b.pid, True, b"q2")
        assert (r3.type, r3.pid) == (PUBREL, d.pid)
        c.send(ack_packet(PUBACK, a.pid))
        c.send(ack_packet(PUBREC, b.pid))
        assert c.expect(PUBREL).pid == b.pid
        c.send(ack_packet(PUBCOMP, b.pid))
        c.send(ack_packet(PUBCOMP, d.pid))
        srv.wait_for(lambda: srv.metrics()["tcpms_mqtt_inflight_messages"] == 0, what="done")


def test_clean_session_discards_state():
    with mqtt_server("--threads", "2") as srv:
        c = connected(srv.port, "cs", clean=False)
        c.subscribe([("cs", 1)])
        c.close()
        pub = connected(srv.port, "cs-pub")
        pub.publish("cs", b"x", qos=1)
        c = RawClient(srv.port)
        assert c.connect("cs", clean=True) == (False, 0)  # [MQTT-3.1.2-6]
        c.expect_nothing(0.3)
        pub.publish("cs", b"y", qos=1)
        c.expect_nothing(0.3)  # the subscription went with the session
        c.close()
        srv.wait_for(lambda: srv.metrics()["tcpms_mqtt_registry_clients"] == 1, what="cleanup")


def test_takeover_same_and_other_loops():
    # [MQTT-3.1.4-2]: a CONNECT with an id in use disconnects the existing client.
    with mqtt_server("--threads", "4") as srv:
        first = connected(srv.port, "tk", clean=False)
        first.subscribe([("tk", 1)])
        for i in range(12):  # connections spread over loops: both paths get exercised
            nxt = RawClient(srv.port)
            assert nxt.connect("tk", clean=False) == (True, 0)
            first.expect_closed()
            first = nxt
        pub = connected(srv.port, "tk-pub")
        pub.publish("tk", b"after", qos=1)
        p = first.expect(PUBLISH)
        assert p.payload == b"after"
        first.send(ack_packet(PUBACK, p.pid))
        m = srv.metrics()
        assert m["tcpms_mqtt_takeovers_total"] == 12
        assert m["tcpms_mqtt_subscriptions"] == 1
        assert m["tcpms_mqtt_sessions_connected"] == 2


def test_concurrent_takeover_storm():
    # Many clients grabbing the same id at once: the broker ends with exactly one session
    # and no leaked subscriptions.
    with mqtt_server("--threads", "4") as srv:
        clients = []
        for i in range(30):
            c = RawClient(srv.port)
            c.send(__import__("mqtt_raw").connect_packet("storm", clean=False))
            clients.append(c)
        time.sleep(1.0)
        srv.wait_for(lambda: srv.metrics()["tcpms_mqtt_sessions_connected"] == 1, what="one left")
        m = srv.metrics()
        assert m["tcpms_mqtt_registry_clients"] == 1
        for c in clients:
            c.close()


def test_queue_bound_drops_counted():
    with mqtt_server("--threads", "2", "--max-queued-messages", "5") as srv:
        c = connected(srv.port, "bounded", clean=False)
        c.subscribe([("b", 1)])
        c.close()
        # The session must be offline before publishing, or the first messages go to the
        # closing connection instead of the queue (seen under CI load).
        srv.wait_for(lambda: srv.metrics()["tcpms_mqtt_sessions_connected"] == 0,
                     what="the subscriber's session offline")
        pub = connected(srv.port, "b-pub")
        for i in range(12):
            pub.publish("b", str(i).encode(), qos=1, pid=i + 1)
        srv.wait_for(lambda: srv.metrics()["tcpms_mqtt_queue_dropped_total"] == 7, what="drops")
        c = RawClient(srv.port)
        assert c.connect("bounded", clean=False) == (True, 0)
        got = []
        for _ in range(5):
            p = c.expect(PUBLISH)
            got.append(p.payload)
            c.send(ack_packet(PUBACK, p.pid))
        assert got == [str(i).encode() for i in range(5)]  # the oldest are kept
        c.expect_nothing(0.3)


def test_takeover_of_clean_sessions_same_loop():
    # One loop: the takeover path that frees the old clean session and starts a fresh one.
    with mqtt_server("--threads", "1") as srv:
        old = connected(srv.port, "clean-twin")
        old.subscribe([("ct", 0)])
        for _ in range(3):
            new = RawClient(srv.port)
            assert new.connect("clean-twin") == (False, 0)
            old.expect_closed()
            old = new
        old.ping()
        m = srv.metrics()
        assert m["tcpms_mqtt_subscriptions"] == 0  # the old session's subscription went with it
        assert m["tcpms_mqtt_registry_clients"] == 1
