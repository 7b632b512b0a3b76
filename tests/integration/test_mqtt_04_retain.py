"""Retained messages (3.1.1 §3.3.1.3): set, replace, clear with an empty payload, delivered on
subscribe with RETAIN 1, live deliveries with RETAIN 0, wildcards and $-topics."""
import subprocess

from mqtt_raw import PUBLISH, PUBACK, ack_packet, connected, mqtt_server


def test_set_replace_clear():
    with mqtt_server("--threads", "2") as srv:
        pub = connected(srv.port, "r-pub")
        pub.publish("r/a", b"first", qos=1, retain=True)
        pub.publish("r/a", b"second", qos=1, retain=True)  # replaces [MQTT-3.3.1-5]
        s = connected(srv.port, "r-sub1")
        s.subscribe([("r/a", 1)])
        p = s.expect(PUBLISH)
        assert (p.payload, p.retain, p.qos) == (b"second", True, 1)  # [MQTT-3.3.1-8]
        s.send(ack_packet(PUBACK, p.pid))
        s.expect_nothing(0.3)
        # A live delivery to an existing subscriber has RETAIN 0 [MQTT-3.3.1-9].
        pub.publish("r/a", b"third", retain=True)
        p = s.expect(PUBLISH)
        assert (p.payload, p.retain) == (b"third", False)
        # Empty payload clears; it is itself delivered to current subscribers.
        pub.publish("r/a", b"", retain=True)  # [MQTT-3.3.1-10]
        assert s.expect(PUBLISH).payload == b""
        srv.wait_for(lambda: srv.metrics()["tcpms_mqtt_retained_messages"] == 0, what="cleared")
        s2 = connected(srv.port, "r-sub2")
        s2.subscribe([("r/#", 0)])
        s2.expect_nothing(0.4)  # nothing stored [MQTT-3.3.1-11]


def test_wildcards_qos_and_dollar():
    with mqtt_server("--threads", "3", "--sys-interval", "1") as srv:
        pub = connected(srv.port, "rw-pub")
        for t in ("h/1/t", "h/2/t", "h/2/x", "other"):
            pub.publish(t, t.encode(), qos=2, pid=3, retain=True)
        s = connected(srv.port, "rw-sub")
        s.subscribe([("h/+/t", 0)])
        got = sorted(s.expect(PUBLISH).topic for _ in range(2))
        assert got == ["h/1/t", "h/2/t"]
        s.expect_nothing(0.3)
        # "#" gets all four (QoS limited to the grant) but no retained $SYS topics.
        s2 = connected(srv.port, "rw-all")
        srv.wait_for(lambda: srv.metrics()["tcpms_mqtt_retained_messages"] > 4, what="$SYS retained")
        s2.subscribe([("#", 1)])
        got = []
        for _ in range(4):
            p = s2.expect(PUBLISH)
            assert p.retain and p.qos == 1
            got.append(p.topic)
            s2.send(ack_packet(PUBACK, p.pid))
        assert sorted(got) == ["h/1/t", "h/2/t", "h/2/x", "other"]
        s2.expect_nothing(0.3)  # [MQTT-4.7.2-1]
        s3 = connected(srv.port, "rw-sys")
        s3.subscribe([("$SYS/broker/version", 0)])
        assert s3.expect(PUBLISH).retain


def test_mosquitto_retained():
    with mqtt_server("--threads", "2") as srv:
        port = str(srv.port)
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-t", "status/dev1", "-m", "online",
                        "-r", "-q", "1"], check=True, timeout=10)
        r = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-t", "status/#", "-C", "1",
                            "-v", "-W", "5"], capture_output=True, text=True, timeout=10)
        assert r.stdout.strip() == "status/dev1 online"
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-t", "status/dev1", "-r", "-n"],
                       check=True, timeout=10)
        r = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-t", "status/#", "-C", "1",
                            "-W", "1"], capture_output=True, text=True, timeout=10)
        assert r.stdout == ""
