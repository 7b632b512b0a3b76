"""MQTT over WebSocket (RFC 6455, docs/transports.md): paho with transport="websockets", plain
and over TLS, both directions and messages larger than a frame; and raw sockets for what
paho never sends: MQTT packets cut across frames and frames cut across reads, fragmented
messages with a ping between the fragments, the close handshake, and each refusal (an HTTP
error for a bad Upgrade, a close code for a bad frame)."""
import base64
import os
import queue
import socket
import struct
import tempfile
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from mqtt_raw import connect_packet, publish_packet, subscribe_packet, mqtt_server
from tcpms_harness import labelled
from tls_certs import Pki

KEY = base64.b64encode(b"0123456789abcdef").decode()


@pytest.fixture(scope="module")
def pki():
    p = Pki()
    yield p
    p.cleanup()


@pytest.fixture(scope="module")
def server(pki):
    path = os.path.join(pki.root, "ws.toml")
    with open(path, "w") as f:
        f.write(f"""
listen = "127.0.0.1:0"
[[listeners]]
bind = "127.0.0.1:0"
websocket = true
websocket_max_frame_bytes = 1048576
[[listeners]]
bind = "127.0.0.1:0"
websocket = true
websocket_path = "/custom"
tls.cert_file = "{pki.server_cert}"
tls.key_file = "{pki.server_key}"
""")
    with mqtt_server("--config", path, "--threads", "2") as srv:
        srv.ws = srv.port_of("websocket")
        srv.wss = srv.port_of("websocket+tls")
        yield srv


def paho_client(port, cid, pki=None, path="/mqtt"):
    got = queue.Queue()
    c = mqtt.Client(client_id=cid, transport="websockets")
    c.ws_set_options(path=path)
    if pki:
        c.tls_set(ca_certs=pki.ca.cert)
    c.on_message = lambda c_, u, m: got.put((m.topic, m.payload))
    ready = threading.Event()
    c.on_connect = lambda *a: ready.set()
    c.connect("localhost", port, 30)
    c.loop_start()
    assert ready.wait(5), "no CONNACK over WebSocket"
    return c, got


@pytest.mark.parametrize("secure", [False, True])
def test_paho_over_websocket(server, pki, secure):
    port, path = (server.wss, "/custom") if secure else (server.ws, "/mqtt")
    sub, got = paho_client(port, f"ws-sub-{secure}", pki if secure else None, path)
    pub, _ = paho_client(port, f"ws-pub-{secure}", pki if secure else None, path)
    try:
        done = threading.Event()
        sub.on_subscribe = lambda *a: done.set()
        sub.subscribe("ws/#", 1)
        assert done.wait(5)
        payloads = [b"small", os.urandom(70_000), os.urandom(300_000)]
        for i, p in enumerate(payloads):
            pub.publish(f"ws/{i}", p, qos=1).wait_for_publish(5)
        for i, p in enumerate(payloads):
            assert got.get(timeout=10) == (f"ws/{i}", p)
    finally:
        for c in (sub, pub):
            c.disconnect()
            c.loop_stop()


# --- raw WebSocket client -------------------------------------------------------------------

def upgrade_request(path="/mqtt", extra="Sec-WebSocket-Protocol: mqtt\r\n", version="13"):
    return (f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n"
            f"Sec-WebSocket-Version: {version}\r\n{extra}\r\n").encode()


def frame(opcode, payload, fin=True, mask=True, rsv=0):
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class WsRaw:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def recv_until(self, pred, timeout=5):
        deadline = time.monotonic() + timeout
        while not pred(self.buf):
            self.s.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk

    def handshake(self, request=None):
        self.s.sendall(request or upgrade_request())
        self.recv_until(lambda b: b"\r\n\r\n" in b)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head.decode()

    def read_frame(self, timeout=5):
        def complete(b):
            if len(b) < 2:
                return False
            n = b[1] & 0x7F
            off = 2 + (2 if n == 126 else 8 if n == 127 else 0)
            if len(b) < off:
                return False
            if n == 126:
                n = struct.unpack("!H", b[2:4])[0]
            elif n == 127:
                n = struct.unpack("!Q", b[2:10])[0]
            return len(b) >= off + n
        self.recv_until(complete, timeout)
        b = self.buf
        assert not b[1] & 0x80, "server frames are never masked"
        n, off = b[1] & 0x7F, 2
        if n == 126:
            n, off = struct.unpack("!H", b[2:4])[0], 4
        elif n == 127:
            n, off = struct.unpack("!Q", b[2:10])[0], 10
        payload = b[off:off + n]
        self.buf = b[off + n:]
        return b[0] & 0x0F, payload

    def closed(self, timeout=5):
        try:
            self.recv_until(lambda b: False, timeout)
        except (ConnectionError, OSError) as e:
            return not isinstance(e, socket.timeout)
        return False


def test_accept_headers(server):
    c = WsRaw(server.ws)
    head = c.handshake()
    assert head.startswith("HTTP/1.1 101 ")
    assert "Sec-WebSocket-Accept: " + base64.b64encode(__import__("hashlib").sha1(
        (KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode() in head
    assert "Sec-WebSocket-Protocol: mqtt" in head


def test_mqtt_bytes_in_any_split(server):
    """A CONNECT cut over three frames, the frames sent a byte at a time, a fragmented
    SUBSCRIBE with a ping between its fragments, then a PUBLISH to ourselves."""
    c = WsRaw(server.ws)
    c.handshake()
    conn = connect_packet("split")
    wire = frame(2, conn[:3], fin=False) + frame(0, conn[3:9], fin=False) + frame(0, conn[9:])
    for i in range(len(wire)):
        c.s.sendall(wire[i:i + 1])
        time.sleep(0.001)
    op, p = c.read_frame()
    assert op == 2 and p == b"\x20\x02\x00\x00"  # CONNACK
    sub = subscribe_packet(1, [("w/t", 0)])
    c.s.sendall(frame(2, sub[:4], fin=False) + frame(9, b"are-you-there") + frame(0, sub[4:]))
    assert c.read_frame() == (10, b"are-you-there")  # pong, same payload
    op, p = c.read_frame()
    assert op == 2 and p[0] == 0x90  # SUBACK
    # Two whole MQTT packets in one frame.
    c.s.sendall(frame(2, publish_packet("w/t", b"a") + publish_packet("w/t", b"b")))
    got = b""
    while got.count(b"w/t") < 2:
        got += c.read_frame()[1]
    assert got.endswith(b"b")


def test_close_handshake_echoes_the_code(server):
    c = WsRaw(server.ws)
    c.handshake()
    c.s.sendall(frame(2, connect_packet("closer")))
    c.read_frame()
    c.s.sendall(frame(8, struct.pack("!H", 1000) + b"bye"))
    op, p = c.read_frame()
    assert op == 8 and p[:2] == struct.pack("!H", 1000)
    assert c.closed()


def test_an_mqtt_protocol_error_still_gets_a_close_frame(server):
    """The broker closes at once on a malformed CONNECT [MQTT-3.1.4-1]; over WebSocket the
    client still gets a Close frame rather than a dropped connection (a browser's 1006). The
    engine cannot tell a violation from a DISCONNECT, so the code is 1000 either way."""
    c = WsRaw(server.ws)
    c.handshake()
    c.s.sendall(frame(2, b"\x10\x00"))  # a malformed CONNECT
    op, p = c.read_frame()
    assert op == 8 and struct.unpack("!H", p[:2])[0] == 1000
    assert c.closed()


def test_mqtt_disconnect_gets_a_normal_close(server):
    """A clean MQTT DISCONNECT: the server answers Close 1000, then closes."""
    c = WsRaw(server.ws)
    c.handshake()
    c.s.sendall(frame(2, connect_packet("leaver")))
    c.read_frame()
    c.s.sendall(frame(2, b"\xe0\x00"))  # DISCONNECT
    op, p = c.read_frame()
    assert op == 8 and struct.unpack("!H", p[:2])[0] == 1000
    assert c.closed()


@pytest.mark.parametrize("wire,code", [
    (frame(1, b"text"), 1003),                     # MQTT needs binary frames
    (frame(2, b"x", mask=False), 1002),            # a client must mask
    (frame(2, b"x", rsv=0x40), 1002),              # no extension was agreed
    (frame(0, b"x"), 1002),                        # continuation without a message
    (frame(9, b"p" * 126), 1002),                  # control frame over 125 bytes
    (frame(8, b"\x03"), 1002),                     # Close with a 1-byte payload
    (frame(8, struct.pack("!H", 1005)), 1002),     # a code never sent on the wire
    (frame(8, struct.pack("!H", 1000) + b"\xc0\x80"), 1007),  # reason not UTF-8
    (frame(2, b"x" * 1048577), 1009),              # over websocket_max_frame_bytes
])
def test_bad_frames_get_close_codes(server, wire, code):
    before = server.metrics().get("tcpms_websocket_protocol_errors_total", 0)
    c = WsRaw(server.ws)
    c.handshake()
    c.s.sendall(wire[:20000])  # the oversized frame is refused from its header
    op, p = c.read_frame()
    assert op == 8 and struct.unpack("!H", p[:2])[0] == code, p
    assert c.closed()
    assert server.metrics()["tcpms_websocket_protocol_errors_total"] == before + 1


@pytest.mark.parametrize("request_bytes,status", [
    (upgrade_request(path="/nope"), 404),
    (upgrade_request(version="8"), 426),
    (upgrade_request(extra="Sec-WebSocket-Protocol: chat\r\n"), 400),
    (b"POST /mqtt HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    (b"GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n", 426),      # plain HTTP, no Upgrade
    (connect_packet("raw-mqtt"), 400),                     # MQTT without the Upgrade
    (b"GET /mqtt HTTP/1.1\r\nX: " + b"a" * 9000, 431),
])
def test_bad_upgrades_get_http_errors(server, request_bytes, status):
    c = WsRaw(server.ws)
    c.s.sendall(request_bytes)
    c.recv_until(lambda b: b"\r\n\r\n" in b)
    assert c.buf.startswith(f"HTTP/1.1 {status} ".encode()), c.buf[:80]
    assert b"Connection: close" in c.buf
    assert c.closed()


def test_idle_websocket_connections_keep_no_buffers(server):
    """Fifty quiet WebSocket clients: no pending input or output anywhere in the engine."""
    clients = []
    for i in range(50):
        c = WsRaw(server.ws)
        c.handshake()
        c.s.sendall(frame(2, connect_packet(f"idle-ws-{i}", keepalive=0)))
        assert c.read_frame()[0] == 2
        clients.append(c)
    time.sleep(0.3)
    m = server.metrics()
    assert m["tcpms_pending_input_bytes"] == 0
    assert m["tcpms_connections_with_input_buffer"] == 0
    assert m["tcpms_connections_with_output_queue"] == 0
    assert m["tcpms_transport_connections"] >= 50
    for c in clients:
        c.s.close()
