"""Malformed packets (3.1.1 §2, §4.8): each closes only its own connection and is counted; a
bystander on the same loop keeps working. Mosquitto's 01-bad-initial-packets idea: a huge
declared length costs no memory."""
import pytest

from mqtt_raw import (PUBLISH, RawClient, connect_packet, connected, frame, mqtt_server,
                      publish_packet, s16)
from tcpms_harness import rss_bytes

# (name, bytes sent after a good CONNECT)
AFTER_CONNECT = [
    ("reserved type 0", b"\x00\x00"),
    ("reserved type 15 (AUTH in 3.1.1)", b"\xf0\x00"),
    ("PUBLISH QoS 3", b"\x36\x05\x00\x01ta\x00\x01"),
    ("PUBLISH DUP on QoS 0", b"\x38\x04\x00\x01tx"),
    ("PUBLISH wildcard topic", publish_packet("a/+", b"x")),
    ("PUBLISH topic not UTF-8", frame(0x30, b"\x00\x02\xc3\x28x")),
    ("PUBLISH QoS 1 packet id 0", frame(0x32, s16("t") + b"\x00\x00")),
    ("SUBSCRIBE wrong flags", frame(0x80, b"\x00\x01" + s16("a") + b"\x00")),
    ("SUBSCRIBE no filters", frame(0x82, b"\x00\x01")),
    ("SUBSCRIBE QoS 3", frame(0x82, b"\x00\x01" + s16("a") + b"\x03")),
    ("UNSUBSCRIBE wrong flags", frame(0xA0, b"\x00\x01" + s16("a"))),
    ("PUBREL wrong flags", frame(0x60, b"\x00\x01")),
    ("PINGREQ with a body", b"\xc0\x01\x00"),
    ("remaining length 5 bytes", b"\x30\xff\xff\xff\xff\x01"),
    ("CONNACK from a client", b"\x20\x02\x00\x00"),
    ("PUBACK too short", b"\x40\x01\x00"),
]


@pytest.fixture(scope="module")
def srv():
    with mqtt_server("--threads", "1") as s:
        yield s


@pytest.mark.parametrize("name,data", AFTER_CONNECT, ids=[n for n, _ in AFTER_CONNECT])
def test_violation_closes_only_that_connection(srv, name, data):
    bystander = connected(srv.port, "bystander-" + name.replace(" ", "_")[:20])
    bystander.subscribe([("by/#", 0)])
    before = srv.metrics()["tcpms_mqtt_protocol_violations_total"]
    bad = connected(srv.port, "bad")
    bad.send(data)
    bad.expect_closed()  # [MQTT-4.8.0-1]
    srv.wait_for(lambda: srv.metrics()["tcpms_mqtt_protocol_violations_total"] == before + 1,
                 what="violation counted")
    pub = connected(srv.port, "pub")
    pub.publish("by/x", b"still here")
    assert bystander.expect(PUBLISH).payload == b"still here"
    bystander.ping()
    pub.close()
    bystander.close()


@pytest.mark.parametrize("data", [
    b"\x10\x00",  # empty CONNECT
    frame(0x10, s16("MQTT") + b"\x04\x03\x00\x3c" + s16("r")),  # reserved flag [MQTT-3.1.2-3]
    frame(0x10, s16("MQTT") + b"\x04\x42\x00\x3c" + s16("p")),  # password without user name
    frame(0x10, s16("MQTT") + b"\x04\x1a\x00\x3c" + s16("w")),  # will QoS 3 [MQTT-3.1.2-14]
    connect_packet("x") + b"junk" if False else frame(0x10, s16("MQTT") + b"\x04\x02\x00\x3c" + s16("x") + b"junk"),
], ids=["empty", "reserved-flag", "password-no-user", "will-qos3", "trailing-bytes"])
def test_malformed_connect_closed_without_connack(srv, data):
    c = RawClient(srv.port)
    c.send(data)
    c.expect_closed()  # no CONNACK [MQTT-3.1.4-1]


def test_huge_declared_lengths_cost_no_memory(srv):
    rss0 = rss_bytes(srv.pid)
    socks = []
    for i in range(200):
        c = RawClient(srv.port)
        # First packet declares ~256 MiB and sends 1 KiB of it.
        c.send(b"\x10\xff\xff\xff\x7f" + b"\x00" * 1024)
        socks.append(c)
    for c in socks:
        c.expect_closed()  # over --max-packet-size: closed at the fixed header
    assert rss_bytes(srv.pid) - rss0 < 8 * 1024 * 1024
