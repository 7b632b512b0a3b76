"""SUBSCRIBE / UNSUBSCRIBE / PUBLISH at QoS 0 (3.1.1 §3.3, §3.8, §3.10, §4.7): wildcards,
$-topics, one copy per client, delivery across loops, payload integrity, $SYS statistics."""
import subprocess
import time

from mqtt_raw import (PUBLISH, SUBACK, UNSUBACK, RawClient, connected, mqtt_server,
                      subscribe_packet, unsubscribe_packet)


def sub(port, client_id, filters):
    c = connected(port, client_id)
    codes = c.subscribe(filters)
    assert codes == [q for _, q in filters], codes  # one code per filter [MQTT-3.8.4-5]
    return c


def test_wildcards_and_dollar_topics():
    with mqtt_server("--threads", "2") as srv:
        s_hash = sub(srv.port, "s-hash", [("#", 0)])
        s_plus = sub(srv.port, "s-plus", [("sport/+/player1", 0)])
        s_sys = sub(srv.port, "s-sys", [("$SYS/#", 0)])
        pub = connected(srv.port, "pub")
        pub.publish("sport/tennis/player1", b"p1")
        pub.publish("$SYS/fake", b"no")  # clients may not publish into $SYS: dropped
        pub.publish("$internal/x", b"dollar")
        p = s_hash.expect(PUBLISH)
        assert (p.topic, p.payload, p.retain) == ("sport/tennis/player1", b"p1", False)
        # "#" does not match "$..." topics [MQTT-4.7.2-1].
        s_hash.expect_nothing(0.3)
        assert s_plus.expect(PUBLISH).topic == "sport/tennis/player1"
        s_sys.expect_nothing(0.3)
        pub.publish("sport/tennis/player1/extra", b"no")
        s_plus.expect_nothing(0.3)


def test_one_copy_per_client_at_highest_qos():
    # [MQTT-3.3.5-1]: overlapping subscriptions deliver once, at the maximum granted QoS.
    with mqtt_server("--threads", "1") as srv:
        s = sub(srv.port, "overlap", [("a/#", 0), ("a/+", 1), ("a/b", 0)])
        pub = connected(srv.port, "pub")
        pub.publish("a/b", b"x", qos=1)
        p = s.expect(PUBLISH)
        assert p.qos == 1
        s.expect_nothing(0.3)


def test_unsubscribe_stops_delivery():
    with mqtt_server("--threads", "1") as srv:
        s = sub(srv.port, "u", [("x/y", 0), ("x/z", 0)])
        s.send(unsubscribe_packet(7, ["x/y", "not/subscribed"]))
        assert s.expect(UNSUBACK).pid == 7  # UNSUBACK even for unknown filters [MQTT-3.10.4-5]
        pub = connected(srv.port, "pub")
        pub.publish("x/y", b"gone")
        pub.publish("x/z", b"kept")
        assert s.expect(PUBLISH).payload == b"kept"
        s.expect_nothing(0.3)


def test_resubscribe_replaces():
    # [MQTT-3.8.4-3]: the same filter again replaces the subscription; still one copy.
    with mqtt_server("--threads", "1") as srv:
        s = sub(srv.port, "re", [("r/1", 0)])
        assert s.subscribe([("r/1", 1)], pid=2) == [1]
        pub = connected(srv.port, "pub")
        pub.publish("r/1", b"m", qos=1)
        assert s.expect(PUBLISH).qos == 1
        s.expect_nothing(0.3)
        assert srv.metrics()["tcpms_mqtt_subscriptions"] == 1


def test_fanout_across_loops():
    # Subscribers land on different loops; each gets every message once, in order.
    with mqtt_server("--threads", "4") as srv:
        subs = [sub(srv.port, f"f{i}", [("fan/#", 0)]) for i in range(40)]
        pub = connected(srv.port, "pub")
        for k in range(20):
            pub.publish(f"fan/{k}", str(k).encode())
        for s in subs:
            got = [s.expect(PUBLISH).payload for _ in range(20)]
            assert got == [str(k).encode() for k in range(20)]
        m = srv.metrics()
        # One task per publish per other loop, not one per subscriber.
        assert m["tcpms_mqtt_cross_loop_posts_total"] <= 20 * 3


def test_large_payload_intact():
    with mqtt_server("--threads", "2") as srv:
        subs = [sub(srv.port, f"big{i}", [("big", 0)]) for i in range(3)]
        data = bytes((i * 7) & 0xFF for i in range(300_000))
        pub = connected(srv.port, "pub")
        pub.publish("big", data)
        for s in subs:
            p = s.expect(PUBLISH, timeout=10)
            assert p.payload == data


def test_mosquitto_clients_wildcards():
    with mqtt_server("--threads", "2") as srv:
        port = str(srv.port)
        sub_proc = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-t", "home/+/temp",
                                     "-t", "home/kitchen/#", "-v", "-C", "3", "-W", "10"],
                                    stdout=subprocess.PIPE, text=True)
        srv.wait_for(lambda: srv.metrics().get("tcpms_mqtt_subscriptions", 0) == 2, what="sub")
        for topic in ("home/bath/temp", "home/kitchen/light/1", "home/bath/light", "home/kitchen/temp"):
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-t", topic, "-m", topic],
                           check=True, timeout=10)
        out, _ = sub_proc.communicate(timeout=15)
        assert out.splitlines() == ["home/bath/temp home/bath/temp",
                                    "home/kitchen/light/1 home/kitchen/light/1",
                                    "home/kitchen/temp home/kitchen/temp"]


def test_sys_topics():
    with mqtt_server("--threads", "2", "--sys-interval", "1") as srv:
        s = connected(srv.port, "sys-watch")
        s.subscribe([("$SYS/broker/clients/connected", 0), ("$SYS/broker/version", 0),
                     ("$SYS/broker/uptime", 0)])
        seen = {}
        deadline = time.monotonic() + 5
        while len(seen) < 3 and time.monotonic() < deadline:
            p = s.expect(PUBLISH, timeout=5)
            seen[p.topic] = p.payload.decode()
        assert seen["$SYS/broker/version"].startswith("tcpms")
        assert seen["$SYS/broker/uptime"].endswith("seconds")
        assert int(seen["$SYS/broker/clients/connected"]) >= 0
        # "#" never sees them [MQTT-4.7.2-1].
        h = connected(srv.port, "hash")
        h.subscribe([("#", 0)])
        h.expect_nothing(1.5)


def test_subscribe_refusals():
    with mqtt_server("--threads", "1") as srv:
        c = connected(srv.port, "refuse")
        # An invalid filter in the middle: 0x80 for it alone (shared subscriptions themselves
        # are granted in 3.1.1 too: test_mqtt_15_shared.py).
        c.send(subscribe_packet(3, [("ok/1", 1), ("$share/g/x/#/y", 0), ("ok/2", 2)]))
        p = c.expect(SUBACK)
        assert (p.pid, p.codes) == (3, [1, 0x80, 2])


def test_publish_skips_loops_without_a_match():
    # Push-to-device: each client subscribes to its own topic. A publish is posted only to
    # the loop holding that device (the per-loop summary), not to every loop.
    with mqtt_server("--threads", "4") as srv:
        devices = [sub(srv.port, f"dev{i}", [(f"devices/dev{i}/cmd", 0)]) for i in range(40)]
        pub = connected(srv.port, "ctl")
        for i in range(40):
            pub.publish(f"devices/dev{i}/cmd", f"for {i}".encode())
        for i, d in enumerate(devices):
            assert d.expect(PUBLISH).payload == f"for {i}".encode()
            d.expect_nothing(0.05)
        posts = srv.metrics()["tcpms_mqtt_cross_loop_posts_total"]
        assert posts <= 40 + 5, posts  # at most one other loop per publish (a few false positives)
