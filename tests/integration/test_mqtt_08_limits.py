"""Limits, each with a clear refusal: packet size (close), client id length (CONNACK 0x02),
topic levels (SUBACK 0x80 / close), in-flight window and queue bound (see 03/06), and the slow
consumer: QoS 0 to it dropped and counted, publisher and other subscribers unaffected."""
import time

from mqtt_raw import (PUBACK, PUBLISH, RawClient, connected, mqtt_server, publish_packet)


def test_max_packet_size():
    with mqtt_server("--threads", "1", "--max-packet-size", "1024") as srv:
        s = connected(srv.port, "ps-sub")
        s.subscribe([("ps", 0)])
        c = connected(srv.port, "ps-pub")
        c.publish("ps", b"x" * 900)
        assert len(s.expect(PUBLISH).payload) == 900
        c.send(publish_packet("ps", b"x" * 1100))
        c.expect_closed()
        s.expect_nothing(0.3)
        s.ping()


def test_max_client_id_len():
    with mqtt_server("--threads", "1", "--max-client-id-len", "23") as srv:
        assert RawClient(srv.port).connect("a" * 23) == (False, 0)
        c = RawClient(srv.port)
        assert c.connect("a" * 24) == (False, 2)
        c.expect_closed()


def test_max_topic_levels():
    with mqtt_server("--threads", "1", "--max-topic-levels", "4") as srv:
        c = connected(srv.port, "lv")
        assert c.subscribe([("a/b/c/d", 0), ("a/b/c/d/e", 0), ("a/+/#", 1)]) == [0, 0x80, 1]
        c.publish("a/b/c/d", b"ok")
        assert c.expect(PUBLISH).topic == "a/b/c/d"
        c.expect_nothing(0.3)  # two matching filters, one copy [MQTT-3.3.5-1]


def test_max_topic_levels_publish_refused():
    with mqtt_server("--threads", "1", "--max-topic-levels", "3") as srv:
        c = connected(srv.port, "lvp")
        c.send(publish_packet("a/b/c/d", b"deep"))
        c.expect_closed()
        assert srv.metrics()["tcpms_mqtt_publishes_refused_total"] == 1


def test_slow_consumer_drops_qos0_only_for_itself():
    with mqtt_server("--threads", "2", "--max-queued-bytes", "65536") as srv:
        slow = RawClient(srv.port, rcvbuf=4096)  # subscribes, then never reads
        assert slow.connect("slow") == (False, 0)
        slow.subscribe([("flood", 0)])
        fast = connected(srv.port, "fast")
        fast.subscribe([("flood", 0)])
        pub = connected(srv.port, "flooder")
        payload = b"z" * 4000
        batches, per_batch = 250, 10  # 10 MB: far past the slow client's kernel buffers
        t0 = time.monotonic()
        for b in range(batches):
            for i in range(per_batch):
                pub.send(publish_packet("flood", payload))
            for i in range(per_batch):  # the fast subscriber keeps up and gets every one
                assert fast.expect(PUBLISH).payload == payload
        pub.publish("flood", b"end", qos=1, pid=9)  # the publisher was never held up
        assert fast.expect(PUBLISH).payload == b"end"
        assert time.monotonic() - t0 < 30
        m = srv.metrics()
        assert m["tcpms_mqtt_qos0_dropped_slow_total"] > 0
        assert m["tcpms_connections_closed_total"] == 0  # nobody was disconnected
        # The slow client is still connected and, once it reads, gets whole packets.
        p = slow.expect(PUBLISH)
        assert p.topic == "flood"


def test_slow_consumer_qos1_waits_in_session():
    with mqtt_server("--threads", "1", "--max-queued-bytes", "32768", "--max-inflight", "100",
                     "--max-queued-messages", "10000") as srv:
        slow = RawClient(srv.port, rcvbuf=4096)
        assert slow.connect("slow1") == (False, 0)
        slow.subscribe([("q", 1)])
        pub = connected(srv.port, "q-pub")
        n = 300
        for i in range(n):
            pub.send(publish_packet("q", i.to_bytes(4, "big") + b"y" * 4000, qos=1, pid=i + 1))
        for i in range(n):
            assert pub.expect(PUBACK).pid == i + 1
        # Now read everything: no QoS 1 message is lost, order kept.
        seen = []
        while len(seen) < n:
            p = slow.expect(PUBLISH, timeout=10)
            seen.append(int.from_bytes(p.payload[:4], "big"))
            slow.send(bytes([0x40, 2]) + p.pid.to_bytes(2, "big"))
        assert seen == list(range(n))
        assert srv.metrics()["tcpms_mqtt_queue_dropped_total"] == 0
