"""Wills (3.1.1 §3.1.2.5) and keep-alive (§3.1.2.10): published on abnormal loss (killed
client, keep-alive expiry, protocol violation, takeover), not after DISCONNECT."""
import os
import signal
import subprocess
import sys
import time

from mqtt_raw import (DISCONNECT_PACKET, PUBLISH, RawClient, connected, mqtt_server)


def watcher(port, topic="will/#"):
    w = connected(port, "watcher")
    w.subscribe([(topic, 1)])
    return w


def test_will_on_killed_client():
    with mqtt_server("--threads", "2") as srv:
        w = watcher(srv.port)
        # A real client process holding a will, killed with SIGKILL: no DISCONNECT goes out.
        child = subprocess.Popen([sys.executable, "-c", f"""
import socket, sys, time
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
from mqtt_raw import RawClient
c = RawClient({srv.port})
assert c.connect("doomed", will=("will/doomed", b"gone", 1, False)) == (False, 0)
print("ready", flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGKILL)
        child.wait()
        p = w.expect(PUBLISH, timeout=5)  # [MQTT-3.1.2-8]
        assert (p.topic, p.payload, p.qos) == ("will/doomed", b"gone", 1)


def test_no_will_after_disconnect():
    with mqtt_server("--threads", "2") as srv:
        w = watcher(srv.port)
        c = connected(srv.port, "polite", will=("will/polite", b"x", 0, False))
        c.send(DISCONNECT_PACKET)  # the will is discarded [MQTT-3.14.4-3]
        c.expect_closed()
        w.expect_nothing(0.5)


def test_will_on_keepalive_expiry():
    with mqtt_server("--threads", "1") as srv:
        w = watcher(srv.port)
        c = connected(srv.port, "sleepy", keepalive=1, will=("will/sleepy", b"timeout", 0, True))
        t0 = time.monotonic()
        c.expect_closed(timeout=5)  # 1.5 x keep-alive without a packet [MQTT-3.1.2-24]
        elapsed = time.monotonic() - t0
        assert 1.3 <= elapsed <= 3.0, elapsed
        p = w.expect(PUBLISH)
        assert (p.topic, p.payload) == ("will/sleepy", b"timeout")
        assert srv.metrics()["tcpms_mqtt_keepalive_expired_total"] == 1
        # A retained will is stored like any retained publish.
        late = connected(srv.port, "late")
        late.subscribe([("will/sleepy", 0)])
        assert late.expect(PUBLISH).retain


def test_pings_keep_the_connection():
    with mqtt_server("--threads", "1") as srv:
        c = connected(srv.port, "pinger", keepalive=1)
        for _ in range(6):  # 3 s, twice the deadline
            time.sleep(0.5)
            c.ping()


def test_will_on_protocol_violation_and_takeover():
    with mqtt_server("--threads", "2") as srv:
        w = watcher(srv.port)
        c = connected(srv.port, "bad", will=("will/bad", b"violated", 0, False))
        c.send(b"\x00\x00")  # packet type 0 is reserved: malformed
        c.expect_closed()
        assert w.expect(PUBLISH).payload == b"violated"
        c1 = connected(srv.port, "twin", will=("will/twin", b"taken over", 0, False))
        c2 = connected(srv.port, "twin")
        c1.expect_closed()
        assert w.expect(PUBLISH).payload == b"taken over"
        c2.ping()
