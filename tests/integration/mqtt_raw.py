"""MQTT 3.1.1 on a raw socket, for integration tests that need exact bytes: malformed packets,
unacknowledged QoS messages, DUP flags, takeovers. Packet layouts follow 3.1.1 §3.

Also `mqtt_server(...)`: tcpms-server speaking MQTT on a kernel-chosen loopback port."""
import socket
import struct
import time

from tcpms_harness import Server

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14


def mqtt_server(*args, **kwargs):
    """tcpms-server with the MQTT protocol; $SYS off unless asked, so tests see only their own
    traffic."""
    extra = [] if any(a.startswith("--sys-interval") for a in args) else ["--sys-interval", "0"]
    return Server("--protocol", "mqtt", *extra, *args, **kwargs)


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s16(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack("!H", len(b)) + b


def frame(byte0, body):
    return bytes([byte0]) + varint(len(body)) + body


def connect_packet(client_id, clean=True, keepalive=60, will=None, username=None, password=None,
                   name="MQTT", level=4):
    """`will` is (topic, payload, qos, retain)."""
    flags = 0x02 if clean else 0
    payload = s16(client_id)
    if will:
        topic, msg, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += s16(topic) + s16(msg)
    if username is not None:
        flags |= 0x80
        payload += s16(username)
    if password is not None:
        flags |= 0x40
        payload += s16(password)
    body = s16(name) + bytes([level, flags]) + struct.pack("!H", keepalive) + payload
    return frame(0x10, body)


def publish_packet(topic, payload, qos=0, pid=0, retain=False, dup=False):
    if isinstance(payload, str):
        payload = payload.encode()
    byte0 = 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = s16(topic) + (struct.pack("!H", pid) if qos else b"") + payload
    return frame(byte0, body)


def ack_packet(ptype, pid):
    return frame((ptype << 4) | (0x02 if ptype == PUBREL else 0), struct.pack("!H", pid))


def subscribe_packet(pid, filters):
    body = struct.pack("!H", pid) + b"".join(s16(f) + bytes([q]) for f, q in filters)
    return frame(0x82, body)


def unsubscribe_packet(pid, filters):
    return frame(0xA2, struct.pack("!H", pid) + b"".join(s16(f) for f in filters))


PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"


class Packet:
    def __init__(self, ptype, flags, body):
        self.type, self.flags, self.body = ptype, flags, body
        if ptype == PUBLISH:
            self.qos = (flags >> 1) & 3
            self.dup = bool(flags & 0x08)
            self.retain = bool(flags & 0x01)
            n = struct.unpack("!H", body[:2])[0]
            self.topic = body[2:2 + n].decode()
            rest = body[2 + n:]
            self.pid = struct.unpack("!H", rest[:2])[0] if self.qos else 0
            self.payload = rest[2:] if self.qos else rest
        elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK):
            self.pid = struct.unpack("!H", body[:2])[0]
            self.codes = list(body[2:])

    def __repr__(self):
        return f"Packet(type={self.type}, flags={self.flags:#x}, body={self.body[:40]!r})"


class RawClient:
    def __init__(self, port, timeout=5.0, rcvbuf=None):
        """`rcvbuf`: a small receive buffer (set before connect, so the window stays small)
        makes a slow consumer."""
        if rcvbuf:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect(("127.0.0.1", port))
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    @classmethod
    def over(cls, sock):
        """A client on a socket that is already connected (a TLS one, say)."""
        c = cls.__new__(cls)
        c.sock = sock
        c.buf = bytearray()
        return c

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no packet in time")
        self.sock.settimeout(left)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the server")
        self.buf += chunk

    def read(self, timeout=5.0):
        """The next packet; TimeoutError if none, ConnectionError on EOF."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                mult, length, i = 1, 0, 1
                complete = False
                while i < len(self.buf) and i <= 4:
                    b = self.buf[i]
                    length += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        complete = True
                        break
                if complete and len(self.buf) >= i + length:
                    byte0 = self.buf[0]
                    body = bytes(self.buf[i:i + length])
                    del self.buf[:i + length]
                    return Packet(byte0 >> 4, byte0 & 0x0F, body)
            self._fill(deadline)

    def expect(self, ptype, timeout=5.0):
        p = self.read(timeout)
        assert p.type == ptype, f"expected packet type {ptype}, got {p}"
        return p

    def expect_nothing(self, timeout=0.5):
        try:
            p = self.read(timeout)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected packet {p}")

    def expect_closed(self, timeout=5.0):
        """Asserts the server closes the connection (EOF or reset) within `timeout`."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.read(max(0.01, deadline - time.monotonic()))
        except (ConnectionError, OSError) as e:
            if isinstance(e, TimeoutError) or isinstance(e, socket.timeout):
                raise AssertionError("connection still open") from e
            return

    def connect(self, client_id, **kwargs):
        """Sends CONNECT, returns (session_present, return_code)."""
        self.send(connect_packet(client_id, **kwargs))
        p = self.expect(CONNACK)
        return bool(p.body[0] & 1), p.body[1]

    def subscribe(self, filters, pid=1):
        self.send(subscribe_packet(pid, filters))
        p = self.expect(SUBACK)
        assert p.pid == pid
        return p.codes

    def publish(self, topic, payload, qos=0, pid=1, retain=False):
        """Publishes and completes the handshake for its QoS."""
        self.send(publish_packet(topic, payload, qos, pid, retain))
        if qos == 1:
            assert self.expect(PUBACK).pid == pid
        elif qos == 2:
            assert self.expect(PUBREC).pid == pid
            self.send(ack_packet(PUBREL, pid))
            assert self.expect(PUBCOMP).pid == pid

    def ping(self):
        self.send(PINGREQ_PACKET)
        self.expect(PINGRESP)


class StartedClient(RawClient):
    """A RawClient that sends the first byte of its CONNECT as it connects, so that the server
    holds the connection before the CONNECT is complete: an MQTT listener accepts a connection
    only with its first bytes (TCP_DEFER_ACCEPT), and a test that asks which worker holds a
    connection needs it accepted. The CONNECT sent next goes without that byte."""

    def __init__(self, port, timeout=5.0):
        super().__init__(port, timeout=timeout)
        self.sock.sendall(b"\x10")
        self.started = True

    def send(self, data):
        if self.started:
            assert data[:1] == b"\x10", "the first packet of a StartedClient is its CONNECT"
            data, self.started = data[1:], False
        super().send(data)


def connected(port, client_id, **kwargs):
    c = RawClient(port)
    present, rc = c.connect(client_id, **kwargs)
    assert rc == 0, f"CONNACK {rc}"
    return c
