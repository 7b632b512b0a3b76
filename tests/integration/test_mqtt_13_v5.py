"""MQTT 5.0 in the broker: CONNECT/CONNACK properties, sessions with an expiry, message expiry,
properties forwarded (and stripped for 3.1.1), subscription options, topic aliases, will delay,
reason codes and server DISCONNECTs. Raw sockets for exact bytes, paho (MQTTv5) and
mosquitto_pub/sub -V mqttv5 for interop."""
import socket
import struct
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from mqtt_raw import (CONNACK, DISCONNECT, PUBACK, PUBCOMP, PUBLISH, PUBREC, SUBACK, UNSUBACK,
                      RawClient, connect_packet, frame, mqtt_server, s16, varint)

# --- 5.0 encoding helpers -------------------------------------------------------------------


def p_byte(pid, v):
    return bytes([pid, v])


def p_u16(pid, v):
    return bytes([pid]) + struct.pack("!H", v)


def p_u32(pid, v):
    return bytes([pid]) + struct.pack("!I", v)


def p_str(pid, s):
    return bytes([pid]) + s16(s)


def p_user(k, v):
    return b"\x26" + s16(k) + s16(v)


def with_len(props):
    return varint(len(props)) + props


def connect5(client_id, clean=True, keepalive=60, props=b"", will=None):
    """`will` is (topic, payload, qos, retain, will_props)."""
    flags = 0x02 if clean else 0
    payload = s16(client_id)
    if will:
        topic, msg, qos, retain, wprops = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += with_len(wprops) + s16(topic) + s16(msg)
    body = s16("MQTT") + bytes([5, flags]) + struct.pack("!H", keepalive) + with_len(props) + payload
    return frame(0x10, body)


def publish5(topic, payload, qos=0, pid=0, retain=False, props=b""):
    if isinstance(payload, str):
        payload = payload.encode()
    byte0 = 0x30 | (qos << 1) | (0x01 if retain else 0)
    body = s16(topic) + (struct.pack("!H", pid) if qos else b"") + with_len(props) + payload
    return frame(byte0, body)


def subscribe5(pid, entries, props=b""):
    """entries: (filter, options byte)."""
    body = struct.pack("!H", pid) + with_len(props) + b"".join(s16(f) + bytes([o]) for f, o in entries)
    return frame(0x82, body)


def unsubscribe5(pid, filters):
    return frame(0xA2, struct.pack("!H", pid) + with_len(b"") + b"".join(s16(f) for f in filters))


def ack5(ptype, pid, code=0):
    return frame((ptype << 4) | (0x02 if ptype == 6 else 0), struct.pack("!H", pid) + bytes([code]))


def opts(qos=0, no_local=False, rap=False, rh=0):
    return qos | (0x04 if no_local else 0) | (0x08 if rap else 0) | (rh << 4)


def read_varint(b, i):
    mult, n = 1, 0
    while True:
        x = b[i]
        n += (x & 0x7F) * mult
        mult *= 128
        i += 1
        if not x & 0x80:
            return n, i


def parse_props(b):
    """List of (id, value) in wire order."""
    out, i = [], 0
    while i < len(b):
        pid = b[i]
        i += 1
        if pid in (0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A):
            out.append((pid, b[i]))
            i += 1
        elif pid in (0x13, 0x21, 0x22, 0x23):
            out.append((pid, struct.unpack("!H", b[i:i + 2])[0]))
            i += 2
        elif pid in (0x02, 0x11, 0x18, 0x27):
            out.append((pid, struct.unpack("!I", b[i:i + 4])[0]))
            i += 4
        elif pid == 0x0B:
            v, i = read_varint(b, i)
            out.append((pid, v))
        elif pid == 0x26:
            n = struct.unpack("!H", b[i:i + 2])[0]
            k = b[i + 2:i + 2 + n].decode()
            i += 2 + n
            n = struct.unpack("!H", b[i:i + 2])[0]
            out.append((pid, (k, b[i + 2:i + 2 + n].decode())))
            i += 2 + n
        else:  # strings and binary
            n = struct.unpack("!H", b[i:i + 2])[0]
            out.append((pid, bytes(b[i + 2:i + 2 + n])))
            i += 2 + n
    return out


def props_of(body, i):
    n, j = read_varint(body, i)
    return parse_props(body[j:j + n]), j + n


class Pub5:
    def __init__(self, p):
        b = p.body
        self.qos = (p.flags >> 1) & 3
        self.retain = bool(p.flags & 1)
        self.dup = bool(p.flags & 8)
        n = struct.unpack("!H", b[:2])[0]
        self.topic = b[2:2 + n].decode()
        i = 2 + n
        self.pid = 0
        if self.qos:
            self.pid = struct.unpack("!H", b[i:i + 2])[0]
            i += 2
        self.props, i = props_of(b, i)
        self.payload = bytes(b[i:])


class V5(RawClient):
    def connect5(self, client_id, **kw):
        """Returns (session_present, reason, properties dict)."""
        self.send(connect5(client_id, **kw))
        p = self.expect(CONNACK)
        props, _ = props_of(p.body, 2)
        return bool(p.body[0] & 1), p.body[1], dict(props)

    def read_pub(self, timeout=5.0):
        return Pub5(self.expect(PUBLISH, timeout))

    def ack_code(self, ptype, timeout=5.0):
        p = self.expect(ptype, timeout)
        return p.pid, (p.body[2] if len(p.body) > 2 else 0)

    def sub5(self, entries, pid=1, props=b""):
        self.send(subscribe5(pid, entries, props))
        p = self.expect(SUBACK)
        _, i = props_of(p.body, 2)
        return list(p.body[i:])

    def expect_disconnect(self, timeout=5.0):
        """The server's DISCONNECT reason code, then EOF."""
        p = self.expect(DISCONNECT, timeout)
        code = p.body[0] if p.body else 0
        self.expect_closed()
        return code


def v5(srv, client_id="", **kw):
    c = V5(srv.port)
    present, code, props = c.connect5(client_id, **kw)
    assert code == 0, code
    return c


# --- CONNECT / CONNACK ------------------------------------------------------------------------


def test_connack_properties_and_assigned_id():
    with mqtt_server("--threads", "1") as srv:
        c = V5(srv.port)
        present, code, props = c.connect5("")
        assert (present, code) == (False, 0)
        assigned = props[0x12].decode()  # Assigned Client Identifier [MQTT-3.2.2-16]
        assert assigned.startswith("tcpms-")
        assert props[0x21] == 20            # Receive Maximum = --max-inflight
        assert props[0x27] == 1 << 20       # Maximum Packet Size
        assert props[0x22] == 16            # Topic Alias Maximum
        assert 0x29 not in props  # Subscription Identifiers available (the default)
        assert 0x2A not in props  # shared subscriptions available: the default, not sent
        c.send(b"\xc0\x00")
        c.expect(13)
        # A named client gets no Assigned Client Identifier; 5.0 allows an empty id with
        # Clean Start 0 too.
        _, code, props = V5(srv.port).connect5("named")
        assert code == 0 and 0x12 not in props
        _, code, props = V5(srv.port).connect5("", clean=False)
        assert code == 0 and 0x12 in props


def test_connect_refusals_use_5_0_reason_codes():
    with mqtt_server("--threads", "1", "--auth-user", "u:p", "--deny-anonymous",
                     "--max-client-id-len", "8") as srv:
        c = V5(srv.port)
        # An Authentication Method we do not support: 0x8C.
        _, code, _ = c.connect5("a", props=p_str(0x15, "SCRAM-SHA-1"))
        assert code == 0x8C
        c.expect_closed()
        # Anonymous refused: 0x87 (3.1.1 would say 5); id too long: 0x85.
        c = V5(srv.port)
        _, code, _ = c.connect5("anon")
        assert code in (0x86, 0x87)
        c.expect_closed()
        c = V5(srv.port)
        _, code, _ = c.connect5("much-too-long-id")
        assert code == 0x85
        c.expect_closed()


def test_receive_maximum_caps_our_inflight_window():
    with mqtt_server("--threads", "1") as srv:
        sub = v5(srv, "rm-sub", props=p_u16(0x21, 2))
        assert sub.sub5([("rm/t", opts(1))]) == [1]
        pub = v5(srv, "rm-pub")
        for i in range(5):
            pub.send(publish5("rm/t", f"m{i}", qos=1, pid=i + 1))
            assert pub.ack_code(PUBACK) == (i + 1, 0)
        got = [sub.read_pub(), sub.read_pub()]
        sub.expect_nothing(0.5)  # the client said 2 [MQTT-3.3.4-9]
        sub.send(ack5(PUBACK, got[0].pid))
        assert sub.read_pub().payload == b"m2"
        sub.expect_nothing(0.3)


def test_maximum_packet_size_drops_what_would_not_fit():
    with mqtt_server("--threads", "1") as srv:
        sub = v5(srv, "mps-sub", props=p_u32(0x27, 64))
        assert sub.sub5([("mps/t", opts(1))]) == [1]
        pub = v5(srv, "mps-pub")
        pub.send(publish5("mps/t", b"x" * 100, qos=1, pid=1))
        pub.send(publish5("mps/t", b"small", qos=1, pid=2))
        m = sub.read_pub()
        assert m.payload == b"small"  # the big one is dropped for it [MQTT-3.1.2-25]
        sub.expect_nothing(0.3)


def test_inflight_too_big_for_the_new_connection_is_given_up_not_held():
    # A QoS 1 message in flight when the client left, reconnecting with a Maximum Packet Size
    # below it: it cannot be resent [MQTT-3.1.2-25], so it must not hold the window (Receive
    # Maximum 1) and block what comes after it.
    with mqtt_server("--threads", "1") as srv:
        sub = v5(srv, "mps-re", clean=False, props=p_u32(0x11, 60) + p_u16(0x21, 1))
        assert sub.sub5([("mpsre/t", opts(1))]) == [1]
        pub = v5(srv, "mps-re-pub")
        pub.send(publish5("mpsre/t", b"x" * 200, qos=1, pid=1))
        pub.ack_code(PUBACK)
        assert sub.read_pub().payload == b"x" * 200  # never acknowledged
        sub.close()
        time.sleep(0.3)
        sub = V5(srv.port)
        present, code, _ = sub.connect5("mps-re", clean=False,
                                        props=p_u32(0x11, 60) + p_u16(0x21, 1) + p_u32(0x27, 64))
        assert (present, code) == (True, 0)
        pub.send(publish5("mpsre/t", b"after", qos=1, pid=2))
        pub.ack_code(PUBACK)
        assert sub.read_pub().payload == b"after"


# --- sessions ---------------------------------------------------------------------------------


def test_session_expiry_keeps_the_session_then_drops_it():
    with mqtt_server("--threads", "2") as srv:
        c = v5(srv, "exp", clean=False, props=p_u32(0x11, 2))
        assert c.sub5([("exp/t", opts(1))]) == [1]
        c.send(b"\xe0\x00")
        c.expect_closed()
        pub = v5(srv, "exp-pub")
        pub.send(publish5("exp/t", "kept", qos=1, pid=1))
        pub.ack_code(PUBACK)
        c = V5(srv.port)
        present, code, _ = c.connect5("exp", clean=False, props=p_u32(0x11, 2))
        assert (present, code) == (True, 0)
        assert c.read_pub().payload == b"kept"
        c.close()  # a network loss: the session stays for 2 s
        time.sleep(3.5)
        c = V5(srv.port)
        present, code, _ = c.connect5("exp", clean=False, props=p_u32(0x11, 2))
        assert (present, code) == (False, 0)  # expired
        # Expiry 0 (the default): the session ends with the connection.
        c.close()
        c = v5(srv, "zero", clean=False)
        c.sub5([("z/t", opts(1))])
        c.close()
        time.sleep(0.3)
        present, _, _ = V5(srv.port).connect5("zero", clean=False)
        assert present is False


def test_disconnect_may_shorten_expiry_but_not_set_it_after_zero():
    with mqtt_server("--threads", "1") as srv:
        c = v5(srv, "dx", clean=False, props=p_u32(0x11, 60))
        c.sub5([("dx/t", opts(1))])
        c.send(frame(0xE0, b"\x00" + with_len(p_u32(0x11, 0))))  # end it now
        c.expect_closed()
        time.sleep(0.2)
        present, _, _ = V5(srv.port).connect5("dx", clean=False, props=p_u32(0x11, 60))
        assert present is False
        c = v5(srv, "dz", clean=False)
        c.send(frame(0xE0, b"\x00" + with_len(p_u32(0x11, 30))))
        assert c.expect_disconnect() == 0x82  # [MQTT-3.14.2-2]


# --- PUBLISH properties -----------------------------------------------------------------------


def test_properties_forwarded_to_5_0_and_stripped_for_3_1_1():
    with mqtt_server("--threads", "2") as srv:
        s5 = v5(srv, "p-s5")
        assert s5.sub5([("props/#", opts(1))]) == [1]
        s3 = RawClient(srv.port)
        s3.connect("p-s3")
        assert s3.subscribe([("props/#", 1)]) == [1]
        pub = v5(srv, "p-pub")
        props = (p_byte(0x01, 1) + p_str(0x03, "text/plain") + p_str(0x08, "reply/here") +
                 p_str(0x09, b"\x01\x02corr") + p_user("a", "1") + p_user("b", "2") + p_user("a", "3"))
        pub.send(publish5("props/x", "hello", qos=1, pid=7, props=props))
        assert pub.ack_code(PUBACK) == (7, 0)
        m = s5.read_pub()
        assert m.payload == b"hello"
        assert m.props == [(0x01, 1), (0x03, b"text/plain"), (0x08, b"reply/here"),
                           (0x09, b"\x01\x02corr"), (0x26, ("a", "1")), (0x26, ("b", "2")),
                           (0x26, ("a", "3"))]
        p = s3.expect(PUBLISH)
        assert p.topic == "props/x" and p.payload == b"hello"  # no properties in 3.1.1


def test_paho_v5_round_trip_with_user_properties():
    with mqtt_server("--threads", "1") as srv:
        got = []
        ev = threading.Event()
        sub = mqtt.Client(client_id="paho-sub", protocol=mqtt.MQTTv5)
        sub.on_message = lambda c, u, m: (got.append(m), ev.set())
        sub.connect("127.0.0.1", srv.port)
        sub.loop_start()
        sub.subscribe("paho/t", options=SubscribeOptions(qos=1))
        time.sleep(0.3)
        pub = mqtt.Client(client_id="paho-pub", protocol=mqtt.MQTTv5)
        pub.connect("127.0.0.1", srv.port)
        pub.loop_start()
        pp = Properties(PacketTypes.PUBLISH)
        pp.UserProperty = [("k", "v"), ("k2", "v2")]
        pp.ResponseTopic = "paho/reply"
        pp.CorrelationData = b"abc"
        pub.publish("paho/t", b"hi", qos=1, properties=pp).wait_for_publish()
        assert ev.wait(5)
        m = got[0]
        assert m.payload == b"hi"
        assert m.properties.UserProperty == [("k", "v"), ("k2", "v2")]
        assert m.properties.ResponseTopic == "paho/reply"
        assert m.properties.CorrelationData == b"abc"
        for c in (sub, pub):
            c.disconnect()
            c.loop_stop()


def test_message_expiry_drops_waiting_messages_and_counts_down():
    with mqtt_server("--threads", "1") as srv:
        c = v5(srv, "mx", clean=False, props=p_u32(0x11, 60))
        c.sub5([("mx/t", opts(1))])
        c.close()
        time.sleep(0.2)
        pub = v5(srv, "mx-pub")
        pub.send(publish5("mx/t", "short", qos=1, pid=1, props=p_u32(0x02, 1)))
        pub.send(publish5("mx/t", "long", qos=1, pid=2, props=p_u32(0x02, 60)))
        pub.ack_code(PUBACK)
        pub.ack_code(PUBACK)
        time.sleep(2.2)
        c = V5(srv.port)
        present, _, _ = c.connect5("mx", clean=False, props=p_u32(0x11, 60))
        assert present
        m = c.read_pub()
        assert m.payload == b"long"  # "short" expired while waiting [MQTT-3.3.2-5]
        expiry = dict(m.props)[0x02]
        assert 55 <= expiry <= 58  # decremented by the time it waited [MQTT-3.3.2-6]
        c.expect_nothing(0.3)


# --- subscription options ---------------------------------------------------------------------


def test_no_local_and_retain_as_published():
    with mqtt_server("--threads", "2") as srv:
        c = v5(srv, "nl")
        assert c.sub5([("nl/t", opts(0, no_local=True))]) == [0]
        c.send(publish5("nl/t", "mine"))
        c.expect_nothing(0.4)  # [MQTT-3.8.3-3]
        other = v5(srv, "nl-other")
        other.send(publish5("nl/t", "theirs"))
        assert c.read_pub().payload == b"theirs"

        rap = v5(srv, "rap")
        assert rap.sub5([("rap/t", opts(0, rap=True))]) == [0]
        plain = v5(srv, "plain")
        assert plain.sub5([("rap/t", opts(0))]) == [0]
        other.send(publish5("rap/t", "r", retain=True))
        assert rap.read_pub().retain is True     # [MQTT-3.3.1-13]
        assert plain.read_pub().retain is False  # [MQTT-3.3.1-12]
        other.send(publish5("rap/t", b"", retain=True))  # clear it
        rap.read_pub()
        plain.read_pub()


def test_retain_handling():
    with mqtt_server("--threads", "1") as srv:
        pub = v5(srv, "rh-pub")
        pub.send(publish5("rh/t", "kept", qos=1, pid=1, retain=True))
        pub.ack_code(PUBACK)
        c = v5(srv, "rh")
        assert c.sub5([("rh/t", opts(1, rh=2))]) == [1]
        c.expect_nothing(0.3)  # 2: never
        assert c.sub5([("rh/t", opts(1, rh=1))], pid=2) == [1]
        c.expect_nothing(0.3)  # 1: only for a new subscription; this one existed
        c2 = v5(srv, "rh2")
        assert c2.sub5([("rh/#", opts(1, rh=1))]) == [1]
        m = c2.read_pub()
        assert m.payload == b"kept" and m.retain
        assert c.sub5([("rh/t", opts(1, rh=0))], pid=3) == [1]
        assert c.read_pub().payload == b"kept"  # 0: on every subscribe


# --- topic aliases ----------------------------------------------------------------------------


def test_inbound_topic_alias():
    with mqtt_server("--threads", "1") as srv:
        sub = v5(srv, "ta-sub")
        sub.sub5([("ta/#", opts(0))])
        pub = v5(srv, "ta-pub")
        pub.send(publish5("ta/long/topic", "one", props=p_u16(0x23, 3)))
        pub.send(publish5("", "two", props=p_u16(0x23, 3)))
        pub.send(publish5("ta/other", "three", props=p_u16(0x23, 3)))  # redefined
        pub.send(publish5("", "four", props=p_u16(0x23, 3)))
        got = [sub.read_pub() for _ in range(4)]
        assert [(m.topic, m.payload) for m in got] == [
            ("ta/long/topic", b"one"), ("ta/long/topic", b"two"),
            ("ta/other", b"three"), ("ta/other", b"four")]
        assert all(0x23 not in dict(m.props) for m in got)
        bad = v5(srv, "ta-bad")
        bad.send(publish5("ta/x", "x", props=p_u16(0x23, 17)))  # over our maximum of 16
        assert bad.expect_disconnect() == 0x94
        bad = v5(srv, "ta-bad2")
        bad.send(publish5("", "x", props=p_u16(0x23, 2)))  # never defined
        assert bad.expect_disconnect() == 0x82


# --- wills ------------------------------------------------------------------------------------


def test_will_delay():
    with mqtt_server("--threads", "1") as srv:
        w = v5(srv, "wd-watch")
        w.sub5([("wd/#", opts(0))])
        # Delay 2 s, session 10 s: published 2 s after the loss.
        c = v5(srv, "wd1", clean=False, props=p_u32(0x11, 10),
               will=("wd/1", "gone", 0, False, p_u32(0x18, 2) + p_user("w", "1")))
        t0 = time.monotonic()
        c.close()
        m = w.read_pub(timeout=5)
        assert m.topic == "wd/1" and m.payload == b"gone" and dict(m.props)[0x26] == ("w", "1")
        assert time.monotonic() - t0 >= 1.8
        # Back within the delay: no will [MQTT-3.1.3-9].
        c = v5(srv, "wd2", clean=False, props=p_u32(0x11, 10),
               will=("wd/2", "gone", 0, False, p_u32(0x18, 2)))
        c.close()
        time.sleep(0.5)
        c = V5(srv.port)
        assert c.connect5("wd2", clean=False, props=p_u32(0x11, 10))[0] is True
        w.expect_nothing(2.5)
        # Session shorter than the delay: the will goes when the session ends.
        c3 = v5(srv, "wd3", clean=False, props=p_u32(0x11, 1),
                will=("wd/3", "gone", 0, False, p_u32(0x18, 30)))
        t0 = time.monotonic()
        c3.close()
        m = w.read_pub(timeout=5)
        assert m.topic == "wd/3" and time.monotonic() - t0 < 4


def test_disconnect_with_will_message():
    with mqtt_server("--threads", "1") as srv:
        w = v5(srv, "dw-watch")
        w.sub5([("dw/#", opts(0))])
        c = v5(srv, "dw1", will=("dw/1", "bye", 0, False, b""))
        c.send(frame(0xE0, b"\x04\x00"))  # 0x04 Disconnect with Will Message
        assert w.read_pub().topic == "dw/1"
        c = v5(srv, "dw2", will=("dw/2", "bye", 0, False, b""))
        c.send(frame(0xE0, b"\x00\x00"))  # normal: the will is discarded [MQTT-3.14.4-3]
        w.expect_nothing(0.5)


# --- reason codes -----------------------------------------------------------------------------


def test_reason_codes_in_acks():
    with mqtt_server("--threads", "1") as srv:
        c = v5(srv, "rc")
        codes = c.sub5([("ok/t", opts(2)), ("$share/g/t", opts(1)), ("bad/#/x", opts(0))])
        assert codes == [2, 1, 0x8F]  # a shared subscription is granted
        c.send(unsubscribe5(2, ["ok/t", "never/t"]))
        p = c.expect(UNSUBACK)
        _, i = props_of(p.body, 2)
        assert list(p.body[i:]) == [0x00, 0x11]
        c.send(publish5("$SYS/x", "no", qos=1, pid=3))
        assert c.ack_code(PUBACK) == (3, 0x87)
        c.send(publish5("$SYS/x", "no", qos=2, pid=4))
        assert c.ack_code(PUBREC) == (4, 0x87)
        c.send(ack5(6, 99))  # PUBREL for an id we never saw
        assert c.ack_code(PUBCOMP) == (99, 0x92)


def test_receive_maximum_exceeded_by_a_publisher():
    with mqtt_server("--threads", "1", "--max-inflight", "3") as srv:
        c = V5(srv.port)
        _, _, props = c.connect5("rx")
        assert props[0x21] == 3
        for pid in range(1, 4):
            c.send(publish5("rx/t", "x", qos=2, pid=pid))
            assert c.ack_code(PUBREC) == (pid, 0)
        c.send(publish5("rx/t", "x", qos=2, pid=4))  # no PUBREL yet: one too many
        assert c.expect_disconnect() == 0x93


# --- server DISCONNECT ------------------------------------------------------------------------


def test_server_disconnect_on_takeover_malformed_and_keepalive():
    with mqtt_server("--threads", "2") as srv:
        first = v5(srv, "tk")
        v5(srv, "tk")
        assert first.expect_disconnect() == 0x8E  # session taken over
        c = v5(srv, "mal")
        c.send(b"\x36\x00")  # PUBLISH with QoS 3: malformed
        assert c.expect_disconnect() == 0x81
        c = v5(srv, "mal2")
        c.send(b"\xf0\x00")  # AUTH: we announced no authentication method
        assert c.expect_disconnect() in (0x81, 0x82)
        c = v5(srv, "ka", keepalive=1)
        assert c.expect_disconnect(timeout=4) == 0x8D
        # A 3.1.1 client is still just closed.
        c3 = RawClient(srv.port)
        c3.connect("tk3")
        RawClient(srv.port).connect("tk3")
        with_dc = False
        try:
            p = c3.read(2)
            with_dc = p.type == DISCONNECT
        except (ConnectionError, OSError):
            pass
        assert not with_dc


def test_packet_too_large_gets_0x95():
    with mqtt_server("--threads", "1", "--max-packet-size", "1024") as srv:
        c = v5(srv, "big")
        c.send(publish5("big/t", b"x" * 2000))
        assert c.expect_disconnect() == 0x95


# --- interop ----------------------------------------------------------------------------------


def test_mosquitto_clients_v5():
    with mqtt_server("--threads", "2") as srv:
        sub = subprocess.Popen(["mosquitto_sub", "-V", "mqttv5", "-h", "127.0.0.1", "-p",
                                str(srv.port), "-t", "mq/#", "-C", "1", "-v", "-q", "1",
                                "-F", "%t %p %P"],
                               stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)
        subprocess.run(["mosquitto_pub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(srv.port),
                        "-t", "mq/x", "-m", "v5 hello", "-q", "1",
                        "-D", "publish", "user-property", "key", "val"], check=True, timeout=10)
        out, _ = sub.communicate(timeout=10)
        assert sub.returncode == 0
        assert out.startswith("mq/x v5 hello")
        assert "key:val" in out


def test_expired_retained_message_is_not_sent():
    with mqtt_server("--threads", "1") as srv:
        pub = v5(srv, "rx-pub")
        pub.send(publish5("rexp/short", "gone", qos=1, pid=1, retain=True, props=p_u32(0x02, 1)))
        pub.send(publish5("rexp/long", "here", qos=1, pid=2, retain=True, props=p_u32(0x02, 100)))
        pub.ack_code(PUBACK)
        pub.ack_code(PUBACK)
        time.sleep(2.2)
        c = v5(srv, "rx-sub")
        assert c.sub5([("rexp/#", opts(1))]) == [1]
        m = c.read_pub()
        assert (m.topic, m.payload, m.retain) == ("rexp/long", b"here", True)
        assert 95 <= dict(m.props)[0x02] <= 98
        c.expect_nothing(0.3)


def test_server_shutdown_says_0x8b():
    import signal
    with mqtt_server("--threads", "1") as srv:
        c = v5(srv, "sd")
        c3 = RawClient(srv.port)
        c3.connect("sd3")
        srv.proc.send_signal(signal.SIGTERM)
        assert c.expect_disconnect() == 0x8B
        try:  # a 3.1.1 client is just closed
            p = c3.read(5)
            assert p.type != DISCONNECT
        except (ConnectionError, OSError):
            pass
        srv.proc.wait(timeout=20)


def test_v5_with_worker_processes_takes_over_and_keeps_the_session():
    # A 5.0 session follows its client to whichever worker the reconnect lands on (the session
    # image carries the 5.0 state); the old connection hears 0x8E wherever it lived. Clients
    # connect right after start-up, before every link between the workers is up: the claims
    # made then wait for the link instead of being lost (two connections for one id).
    with mqtt_server("--processes", "2", "--threads", "1", "--no-admin") as srv:
        old = v5(srv, "pw", clean=False, props=p_u32(0x11, 60))
        for _ in range(6):
            new = V5(srv.port)
            present, code, _ = new.connect5("pw", clean=False, props=p_u32(0x11, 60))
            assert code == 0 and present
            assert old.expect_disconnect() == 0x8E
            old = new
        old.send(b"\xc0\x00")
        old.expect(13)  # still served


def sub_ids(m):
    return sorted(v for k, v in m.props if k == 0x0B)


def test_subscription_identifiers():
    with mqtt_server("--threads", "2") as srv:
        pub = v5(srv, "si-pub")
        pub.send(publish5("si/r", "ret", qos=1, pid=1, retain=True))
        pub.ack_code(PUBACK)
        c = v5(srv, "si", clean=False, props=p_u32(0x11, 60))
        assert c.sub5([("si/#", opts(1))], props=b"\x0b\x05") == [1]
        m = c.read_pub()
        assert m.topic == "si/r" and sub_ids(m) == [5]  # a retained message carries its id
        c.send(ack5(PUBACK, m.pid))
        assert c.sub5([("si/+", opts(1))], pid=2, props=b"\x0b\x81\x01") == [1]  # id 129
        m = c.read_pub()
        assert m.topic == "si/r" and sub_ids(m) == [129]  # only the new subscription's id
        c.send(ack5(PUBACK, m.pid))
        assert c.sub5([("si/x", opts(0, rh=2))], pid=3) == [0]  # no id
        pub.send(publish5("si/x", "both", qos=1, pid=2))
        pub.ack_code(PUBACK)
        m = c.read_pub()
        # One copy with the ids of every matching subscription [MQTT-3.3.4-4].
        assert m.payload == b"both" and sub_ids(m) == [5, 129]
        c.send(ack5(PUBACK, m.pid))
        c.expect_nothing(0.3)
        # Kept with a message queued for the offline session.
        c.close()
        time.sleep(0.3)
        pub.send(publish5("si/y", "later", qos=1, pid=3))
        pub.ack_code(PUBACK)
        c = V5(srv.port)
        assert c.connect5("si", clean=False, props=p_u32(0x11, 60))[0] is True
        m = c.read_pub()
        assert m.payload == b"later" and sub_ids(m) == [5, 129]
        c.send(ack5(PUBACK, m.pid))
        # Replacing a subscription without an id drops its id.
        assert c.sub5([("si/#", opts(1, rh=2))], pid=4) == [1]
        pub.send(publish5("si/z", "one", qos=1, pid=4))
        pub.ack_code(PUBACK)
        m = c.read_pub()
        assert m.payload == b"one" and sub_ids(m) == [129]
