"""CONNECT / CONNACK (3.1.1 §3.1, §3.2): every return code, 3.1 clients, the first-packet and
second-CONNECT rules, the CONNECT deadline, PINGREQ and DISCONNECT."""
import subprocess
import time

from mqtt_raw import (CONNACK, PINGRESP, DISCONNECT_PACKET, RawClient, connect_packet,
                      connected, frame, mqtt_server, publish_packet)


def test_accepted_and_session_present():
    with mqtt_server("--threads", "2") as srv:
        c = RawClient(srv.port)
        # Clean session: session present 0 [MQTT-3.2.2-1].
        assert c.connect("c01-a") == (False, 0)
        c.ping()  # [MQTT-3.12.4-1]
        c.send(DISCONNECT_PACKET)
        c.expect_closed()
        # A persistent session that did not exist: present 0 [MQTT-3.2.2-3]; then 1 [MQTT-3.2.2-2].
        c = RawClient(srv.port)
        assert c.connect("c01-b", clean=False) == (False, 0)
        c.send(DISCONNECT_PACKET)
        c.expect_closed()
        c = RawClient(srv.port)
        assert c.connect("c01-b", clean=False) == (True, 0)
        c.close()


def test_unacceptable_protocol_version_rc1():
    with mqtt_server("--threads", "1") as srv:
        for name, level in (("MQTT", 6), ("MQTT", 2), ("MQIsdp", 4)):
            c = RawClient(srv.port)
            c.send(connect_packet("v", name=name, level=level))
            p = c.expect(CONNACK)
            assert p.body == b"\x00\x01", (name, level, p.body)  # [MQTT-3.1.2-2]
            c.expect_closed()  # [MQTT-3.2.2-5]


def test_mqtt5_is_answered_in_its_own_form():
    # 5.0 is supported (test_mqtt_13_v5.py); a 5.0 CONNACK carries properties.
    with mqtt_server("--threads", "1") as srv:
        c = RawClient(srv.port)
        # 5.0 CONNECT: properties length 0 after keep-alive.
        body = b"\x00\x04MQTT\x05\x02\x00\x3c\x00" + b"\x00\x02v5"
        c.send(frame(0x10, body))
        p = c.expect(CONNACK)
        assert p.body[:2] == b"\x00\x00"
        assert len(p.body) > 3  # Property Length and properties follow


def test_mqtt31_accepted():
    with mqtt_server("--threads", "1") as srv:
        c = RawClient(srv.port)
        assert c.connect("old-client", name="MQIsdp", level=3) == (False, 0)
        c.ping()
        # 3.1 requires a client id: an empty one is rejected with 0x02.
        c2 = RawClient(srv.port)
        assert c2.connect("", name="MQIsdp", level=3) == (False, 2)
        c2.expect_closed()
    # And a real 3.1 client.
    with mqtt_server("--threads", "1") as srv:
        r = subprocess.run(["mosquitto_pub", "-V", "mqttv31", "-h", "127.0.0.1", "-p", str(srv.port),
                            "-t", "x", "-m", "y", "-i", "m31"], capture_output=True, timeout=10)
        assert r.returncode == 0, r.stderr


def test_identifier_rejected_rc2():
    with mqtt_server("--threads", "1", "--max-client-id-len", "8") as srv:
        # Zero-byte id with CleanSession 0 [MQTT-3.1.3-8].
        c = RawClient(srv.port)
        assert c.connect("", clean=False) == (False, 2)
        c.expect_closed()
        # Longer than --max-client-id-len [MQTT-3.1.3-9].
        c = RawClient(srv.port)
        assert c.connect("123456789") == (False, 2)
        c.expect_closed()
        # Zero-byte id with CleanSession 1: the server assigns one [MQTT-3.1.3-6].
        c = RawClient(srv.port)
        assert c.connect("") == (False, 0)
        c.ping()


def test_bad_credentials_rc4_not_authorized_rc5_and_accept():
    with mqtt_server("--threads", "2", "--auth-user", "alice:secret",
                     "--deny-anonymous") as srv:
        c = RawClient(srv.port)
        assert c.connect("a1", username="alice", password="wrong") == (False, 4)
        c.expect_closed()
        c = RawClient(srv.port)
        assert c.connect("a2", username="bob", password="secret") == (False, 4)
        c.expect_closed()
        c = RawClient(srv.port)
        assert c.connect("a3") == (False, 5)  # anonymous refused
        c.expect_closed()
        c = RawClient(srv.port)
        assert c.connect("a4", username="alice", password="secret") == (False, 0)
        # Packets pipelined right behind the CONNECT wait for the (offloaded) check.
        c.send(publish_packet("t", b"x", qos=1, pid=5))
        assert c.read().type == 4
        m = srv.metrics()
        assert m["tcpms_mqtt_connects_refused_total"] >= 3


def test_first_packet_must_be_connect_and_only_once():
    with mqtt_server("--threads", "1") as srv:
        c = RawClient(srv.port)
        c.send(publish_packet("t", b"x"))
        c.expect_closed()  # [MQTT-3.1.0-1]
        c = connected(srv.port, "twice")
        c.send(connect_packet("twice"))
        c.expect_closed()  # [MQTT-3.1.0-2]
        m = srv.metrics()
        assert m["tcpms_mqtt_protocol_violations_total"] >= 2


def test_connect_deadline():
    with mqtt_server("--threads", "1", "--connect-timeout", "1") as srv:
        c = RawClient(srv.port)
        t0 = time.monotonic()
        c.expect_closed(timeout=5)
        assert 0.8 <= time.monotonic() - t0 <= 3.5
        assert srv.metrics()["tcpms_mqtt_connect_timeouts_total"] == 1


def test_a_client_slow_to_speak_is_measured_from_its_first_byte():
    """The kernel holds an MQTT connection that has sent nothing for up to the connect deadline
    (TCP_DEFER_ACCEPT): the server has not accepted it, and the deadline runs from the client's
    first byte. A client that sends its CONNECT 2.5 s after its handshake, past a 2 s deadline
    counted from the handshake, is answered, not cut; one that never speaks is still closed."""
    with mqtt_server("--threads", "1", "--connect-timeout", "2") as srv:
        accepted = srv.metrics().get("tcpms_connections_accepted_total", 0)
        slow = RawClient(srv.port, timeout=10)
        silent = RawClient(srv.port, timeout=10)
        time.sleep(1.0)
        assert srv.metrics().get("tcpms_connections_accepted_total", 0) == accepted
        time.sleep(1.5)
        assert slow.connect("slow-to-speak") == (False, 0)
        slow.ping()
        silent.expect_closed(timeout=10)
        m = srv.metrics()
        assert m["tcpms_mqtt_connect_timeouts_total"] == 1  # the silent one only
        slow.close()


def test_paho_connects():
    import paho.mqtt.client as paho
    with mqtt_server("--threads", "2") as srv:
        cl = paho.Client(client_id="paho-01", protocol=paho.MQTTv311)
        rcs = []
        cl.on_connect = lambda c, u, f, rc: rcs.append(rc)
        cl.connect("127.0.0.1", srv.port, keepalive=30)
        cl.loop_start()
        deadline = time.monotonic() + 5
        while not rcs and time.monotonic() < deadline:
            time.sleep(0.02)
        cl.disconnect()
        cl.loop_stop()
        assert rcs == [0]
