"""PROXY protocol (v1 and v2) on a listener that asks for it (docs/transports.md, docs/auth.md):
the address in the header is the client's everywhere the broker looks (the admin client
list, the login throttle, the per-source connection limit); a connection without a header
there is closed; a header sent to a listener that did not ask is not trusted. HAProxy with
send-proxy-v2 in front, clients from different loopback addresses: one address failing its
logins does not lock out a correct password from another one behind the same balancer."""
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time

import pytest

from mqtt_raw import RawClient, connect_packet, mqtt_server
from tcpms_harness import binary

pytestmark = pytest.mark.skipif(not shutil.which("haproxy"), reason="needs haproxy")

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def add_user(path, user, password):
    subprocess.run([binary("tcpms-passwd"), "-c", "-I", "1000", "--stdin", str(path), user],
                   input=password + "\n", text=True, check=True, capture_output=True, timeout=30)


class HAProxy:
    """HAProxy in TCP mode sending a PROXY v2 header to `backend_port`."""

    def __init__(self, backend_port):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="tcpms-haproxy-")
        self.cfg = os.path.join(self.dir, "haproxy.cfg")
        with open(self.cfg, "w") as f:
            f.write(f"""global
  maxconn 1000
defaults
  mode tcp
  timeout connect 2s
  timeout client 1h
  timeout server 1h
frontend mqtt
  bind 127.0.0.1:{self.port}
  default_backend tcpms
backend tcpms
  server node1 127.0.0.1:{backend_port} send-proxy-v2
""")

    def __enter__(self):
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", self.cfg], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("haproxy did not start")

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("proxy")
    pw = d / "passwd"
    add_user(pw, "alice", "secret1")
    cfg = d / "proxy.toml"
    cfg.write_text('listen = "127.0.0.1:0"\n[[listeners]]\nbind = "127.0.0.1:0"\n'
                   'proxy_protocol = true\nhandshake_timeout_ms = 800\n')
    with mqtt_server("--config", str(cfg), "--password-file", str(pw), "--allow-anonymous",
                     "--auth-login-failure-burst", "3", "--auth-login-failures-per-s", "0.01",
                     "--threads", "2") as srv:
        srv.proxied = srv.port_of("proxy+tcp")
        yield srv


def clients(srv):
    status, body = srv.admin("/api/v1/clients")
    assert status == 200, body
    return {c["id"]: c for c in json.loads(body)["clients"]}


def v2_header(src, sport, dst="127.0.0.1", dport=1883):
    if ":" in src:
        body = (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, "::1") +
                struct.pack("!HH", sport, dport))
        return V2_SIG + bytes([0x21, 0x21]) + struct.pack("!H", len(body)) + body
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return V2_SIG + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def test_v1_and_v2_addresses_are_the_clients(server):
    a = RawClient(server.proxied)
    a.send(b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 1883\r\n" + connect_packet("via-v1"))
    a.expect(2)
    b = RawClient(server.proxied)
    b.send(v2_header("2001:db8::7", 6001) + connect_packet("via-v2"))
    b.expect(2)
    listed = clients(server)
    assert listed["via-v1"]["peer"] == "203.0.113.9:5555"
    assert listed["via-v2"]["peer"] == "[2001:db8::7]:6001"
    a.close()
    b.close()


def test_header_cut_across_reads(server):
    c = RawClient(server.proxied)
    wire = v2_header("198.51.100.20", 4242) + connect_packet("slow-header")
    for i in range(0, len(wire), 3):
        c.send(wire[i:i + 3])
        time.sleep(0.002)
    c.expect(2)
    assert clients(server)["slow-header"]["peer"] == "198.51.100.20:4242"
    c.close()


def test_no_header_on_a_proxy_listener_is_closed(server):
    before = server.metrics()["tcpms_proxy_refused_total"]
    c = RawClient(server.proxied)
    c.send(connect_packet("no-header"))
    c.expect_closed()
    # Silence is closed at the handshake deadline.
    s = socket.create_connection(("127.0.0.1", server.proxied), timeout=5)
    t0 = time.monotonic()
    assert s.recv(1) == b""
    assert time.monotonic() - t0 < 3
    assert server.metrics()["tcpms_proxy_refused_total"] == before + 2


def test_a_header_on_a_plain_listener_is_not_trusted(server):
    """A header sent where none was asked for is just bytes of MQTT, and bad ones."""
    c = RawClient(server.port)
    c.send(v2_header("203.0.113.66", 1) + connect_packet("spoofer-v2"))
    c.expect_closed()  # 0x0D: a reserved packet type
    c = RawClient(server.port)
    c.send(b"PROXY TCP4 203.0.113.66 127.0.0.1 1 1883\r\n" + connect_packet("spoofer-" + "x" * 64))
    c.expect_closed()  # "P": a PUBREC before CONNECT
    assert not [k for k in clients(server) if k.startswith("spoofer")]


def from_address(port, source, cid, **kw):
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    c = RawClient.over(s)
    c.sock.settimeout(5)
    return c, c.connect(cid, **kw)[1]


def test_through_haproxy_one_address_failing_does_not_lock_out_another(server):
    """The issue's case: behind a balancer every client used to share its address."""
    with HAProxy(server.proxied) as hp:
        for i in range(3):
            c, rc = from_address(hp.port, "127.0.0.2", f"guess{i}", username="alice", password="nope")
            assert rc == 4
            c.close()
        c, rc = from_address(hp.port, "127.0.0.2", "guess-more", username="alice", password="secret1")
        assert rc == 5, "127.0.0.2 is out of tokens"
        c.close()
        c, rc = from_address(hp.port, "127.0.0.3", "alice-elsewhere", username="alice",
                             password="secret1")
        assert rc == 0, "another address behind the same HAProxy still gets in"
        assert clients(server)["alice-elsewhere"]["peer"].startswith("127.0.0.3:")
        c.close()


def test_per_source_connect_limit_sees_the_proxy_address(tmp_path):
    cfg = tmp_path / "rate.toml"
    cfg.write_text('listen = "127.0.0.1:0"\n[[listeners]]\nbind = "127.0.0.1:0"\n'
                   'proxy_protocol = true\n')
    with mqtt_server("--config", str(cfg), "--mqtt-connects-per-s-per-source", "0.01",
                     "--mqtt-connect-burst-per-source", "2") as srv:
        with HAProxy(srv.port_of("proxy+tcp")) as hp:
            kept = []
            for i in range(2):
                c, rc = from_address(hp.port, "127.0.0.4", f"r{i}")
                assert rc == 0
                kept.append(c)
            s = socket.create_connection(("127.0.0.1", hp.port), source_address=("127.0.0.4", 0),
                                         timeout=5)
            s.sendall(connect_packet("r3"))
            assert s.recv(10) == b"", "the third from 127.0.0.4 is over its rate"
            c, rc = from_address(hp.port, "127.0.0.5", "other-source")
            assert rc == 0
            for k in kept + [c]:
                k.close()
