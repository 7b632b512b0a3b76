"""QoS 1 and 2 in both directions (3.1.1 §4.3): the handshakes, duplicates, the in-flight
window, and end to end with paho and mosquitto clients."""
import subprocess
import threading
import time

from mqtt_raw import (PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, ack_packet, connected,
                      mqtt_server, publish_packet)


def test_qos1_both_directions():
    with mqtt_server("--threads", "2") as srv:
        s = connected(srv.port, "q1-sub")
        assert s.subscribe([("q1/#", 1)]) == [1]
        pub = connected(srv.port, "q1-pub")
        pub.publish("q1/a", b"one", qos=1, pid=10)  # PUBACK with the same id [MQTT-4.3.2-2]
        p = s.expect(PUBLISH)
        assert (p.qos, p.payload, p.dup) == (1, b"one", False)
        assert p.pid != 0
        s.send(ack_packet(PUBACK, p.pid))
        # Downgrade: a QoS 1 subscription gets a QoS 2 publish at QoS 1.
        pub.publish("q1/b", b"two", qos=2, pid=11)
        p = s.expect(PUBLISH)
        assert p.qos == 1
        s.send(ack_packet(PUBACK, p.pid))
        srv.wait_for(lambda: srv.metrics()["tcpms_mqtt_inflight_messages"] == 0, what="acks")


def test_qos2_both_directions_full_handshake():
    with mqtt_server("--threads", "2") as srv:
        s = connected(srv.port, "q2-sub")
        assert s.subscribe([("q2", 2)]) == [2]
        pub = connected(srv.port, "q2-pub")
        pub.send(publish_packet("q2", b"exactly-once", qos=2, pid=77))
        assert pub.expect(PUBREC).pid == 77
        # The same PUBLISH again (DUP) before PUBREL: acknowledged, not delivered twice.
        pub.send(publish_packet("q2", b"exactly-once", qos=2, pid=77, dup=True))
        assert pub.expect(PUBREC).pid == 77
        pub.send(ack_packet(PUBREL, 77))
        assert pub.expect(PUBCOMP).pid == 77
        p = s.expect(PUBLISH)
        assert (p.qos, p.payload) == (2, b"exactly-once")
        s.expect_nothing(0.3)
        s.send(ack_packet(PUBREC, p.pid))
        rel = s.expect(PUBREL)  # [MQTT-4.3.3-1]
        assert rel.pid == p.pid and rel.flags == 0x2
        s.send(ack_packet(PUBCOMP, p.pid))
        srv.wait_for(lambda: srv.metrics()["tcpms_mqtt_inflight_messages"] == 0, what="complete")
        # A PUBREL for an unknown id still gets PUBCOMP.
        pub.send(ack_packet(PUBREL, 999))
        assert pub.expect(PUBCOMP).pid == 999


def test_inflight_window():
    with mqtt_server("--threads", "1", "--max-inflight", "3") as srv:
        s = connected(srv.port, "window")
        s.subscribe([("w", 1)])
        pub = connected(srv.port, "w-pub")
        for i in range(10):
            pub.publish("w", str(i).encode(), qos=1, pid=i + 1)
        got = [s.expect(PUBLISH) for _ in range(3)]
        s.expect_nothing(0.4)  # the window is full: the rest wait in the session
        assert srv.metrics()["tcpms_mqtt_queued_messages"] == 7
        received = [p.payload for p in got]
        pending = list(got)
        while len(received) < 10:
            p = pending.pop(0)
            s.send(ack_packet(PUBACK, p.pid))
            n = s.expect(PUBLISH)
            received.append(n.payload)
            pending.append(n)
        assert received == [str(i).encode() for i in range(10)]  # order kept [MQTT-4.6.0-2]
        for p in pending:
            s.send(ack_packet(PUBACK, p.pid))
        srv.wait_for(lambda: srv.metrics()["tcpms_mqtt_inflight_messages"] == 0, what="acks")


def test_paho_qos2_end_to_end():
    import paho.mqtt.client as paho
    with mqtt_server("--threads", "4") as srv:
        got = []
        done = threading.Event()
        sub = paho.Client(client_id="paho-sub", protocol=paho.MQTTv311)
        subscribed = threading.Event()

        def on_message(c, u, msg):
            got.append((msg.topic, msg.payload, msg.qos))
            if len(got) == 50:
                done.set()
        sub.on_message = on_message
        sub.on_subscribe = lambda *a: subscribed.set()
        sub.connect("127.0.0.1", srv.port)
        sub.subscribe("e2e/#", qos=2)
        sub.loop_start()
        assert subscribed.wait(5)
        pub = paho.Client(client_id="paho-pub", protocol=paho.MQTTv311)
        pub.connect("127.0.0.1", srv.port)
        pub.loop_start()
        infos = [pub.publish(f"e2e/{i % 3}", f"m{i}".encode(), qos=2) for i in range(50)]
        for info in infos:
            info.wait_for_publish(timeout=10)
            assert info.is_published()
        assert done.wait(10), f"got {len(got)}"
        assert [p for _, p, _ in got] == [f"m{i}".encode() for i in range(50)]
        assert all(q == 2 for _, _, q in got)
        pub.loop_stop()
        sub.loop_stop()
        pub.disconnect()
        sub.disconnect()


def test_mosquitto_qos_levels():
    with mqtt_server("--threads", "2") as srv:
        port = str(srv.port)
        sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-t", "mq", "-q", "2",
                                "-C", "3", "-W", "10"], stdout=subprocess.PIPE, text=True)
        srv.wait_for(lambda: srv.metrics().get("tcpms_mqtt_subscriptions", 0) == 1, what="sub")
        for q in (0, 1, 2):
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-t", "mq", "-m", f"q{q}",
                            "-q", str(q)], check=True, timeout=10)
        out, _ = sub.communicate(timeout=15)
        assert out.split() == ["q0", "q1", "q2"]
        m = srv.metrics()
        assert m['tcpms_mqtt_packets_received_total{type="pubrel"}'] == 1
        assert m['tcpms_mqtt_packets_sent_total{type="pubrel"}'] == 1
