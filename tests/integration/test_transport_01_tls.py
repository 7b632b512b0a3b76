"""MQTT over TLS with real clients (docs/transports.md): mosquitto_pub/sub with --cafile,
--cert/--key over TLS 1.2 and 1.3, paho's tls_set, mutual TLS with every way a client
certificate can be wrong (missing, expired, revoked, from another CA), the certificate
identity as user name under an ACL, plain bytes and silence on a TLS port, and what an idle
TLS connection costs. Certificates are made by the test with the openssl CLI."""
import os
import queue
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from mqtt_raw import CONNACK, PINGREQ_PACKET, PINGRESP, RawClient, connect_packet, mqtt_server
from tcpms_harness import SANITIZED, labelled, raise_nofile_limit, rss_bytes
from tls_certs import Pki


@pytest.fixture(scope="module")
def pki():
    p = Pki()
    yield p
    p.cleanup()


def config(pki, extra_listeners="", top=""):
    """A config file: a plain listener, a TLS one, a mutual-TLS one taking the certificate's
    CN as user name, a mutual-TLS one with a CRL, one taking the SAN as user name, and a TLS
    one with a short handshake deadline."""
    text = f"""{top}
listen = "127.0.0.1:0"
[[listeners]]
bind = "127.0.0.1:0"
tls.cert_file = "{pki.server_cert}"
tls.key_file = "{pki.server_key}"
[[listeners]]
bind = "127.0.0.1:0"
tls.cert_file = "{pki.server_cert}"
tls.key_file = "{pki.server_key}"
tls.ca_file = "{pki.ca.cert}"
tls.require_client_cert = true
tls.identity_as_username = true
[[listeners]]
bind = "127.0.0.1:0"
tls.cert_file = "{pki.server_cert}"
tls.key_file = "{pki.server_key}"
tls.ca_file = "{pki.ca.cert}"
tls.crl_file = "{pki.crl}"
tls.require_client_cert = true
[[listeners]]
bind = "127.0.0.1:0"
tls.cert_file = "{pki.server_cert}"
tls.key_file = "{pki.server_key}"
tls.ca_file = "{pki.ca.cert}"
tls.require_client_cert = true
tls.identity_as_username = true
tls.identity_field = "san"
[[listeners]]
bind = "127.0.0.1:0"
handshake_timeout_ms = 600
tls.cert_file = "{pki.server_cert}"
tls.key_file = "{pki.server_key}"
{extra_listeners}
"""
    f = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False, dir=pki.root)
    f.write(text)
    f.close()
    return f.name


@pytest.fixture(scope="module")
def server(pki):
    acl = os.path.join(pki.root, "acl")
    with open(acl, "w") as f:
        # Anonymous clients: read everything, write where the tests publish anonymously.
        f.write("topic read #\ntopic readwrite tls/#\ntopic readwrite paho/#\n"
                "user alice\ntopic readwrite alice/#\n"
                "user alice@example.com\ntopic readwrite san/#\n")
    with mqtt_server("--config", config(pki), "--acl-file", acl, "--threads", "2") as srv:
        srv.tls, srv.mtls, srv.crl_port, srv.san_port, srv.quick_port = (
            srv.port_of("tls", i) for i in range(5))
        yield srv


def mosquitto(tool, port, *args, timeout=10):
    return subprocess.run([tool, "-h", "localhost", "-p", str(port), *args],
                          capture_output=True, text=True, timeout=timeout)


def failures(srv, cause):
    return labelled(srv.metrics(), "tcpms_tls_handshake_failures_total", cause=cause)


@pytest.mark.parametrize("version", ["tlsv1.2", "tlsv1.3"])
def test_mosquitto_clients_over_tls(server, pki, version):
    topic = f"tls/{version}"
    sub = subprocess.Popen(["mosquitto_sub", "-h", "localhost", "-p", str(server.tls), "--cafile",
                            pki.ca.cert, "--tls-version", version, "-t", topic, "-C", "2", "-v"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # the subscriber's TLS handshake and SUBSCRIBE
        for i in range(2):
            r = mosquitto("mosquitto_pub", server.tls, "--cafile", pki.ca.cert, "--tls-version",
                          version, "-t", topic, "-m", f"m{i}", "-q", "1")
            assert r.returncode == 0, r.stderr
        out, err = sub.communicate(timeout=10)
    finally:
        sub.kill()
    assert out.split("\n")[:2] == [f"{topic} m0", f"{topic} m1"], err


def test_wrong_ca_on_the_client_fails_and_is_counted(server, pki):
    before = failures(server, "peer_alert")
    r = mosquitto("mosquitto_pub", server.tls, "--cafile", pki.rogue.cert, "-t", "x", "-m", "y")
    assert r.returncode != 0
    assert "TLS error" in r.stderr or "certificate verify failed" in r.stderr, r.stderr
    server.wait_for(lambda: failures(server, "peer_alert") > before, what="peer_alert counted")


def test_paho_tls_set(server, pki):
    got = queue.Queue()
    c = mqtt.Client(client_id="paho-tls")
    c.tls_set(ca_certs=pki.ca.cert)
    c.on_message = lambda c_, u, m: got.put(m.payload)
    done = threading.Event()
    c.on_subscribe = lambda *a: done.set()
    c.connect("localhost", server.tls, 30)
    c.loop_start()
    try:
        c.subscribe("paho/tls", 1)
        assert done.wait(5)
        big = os.urandom(200_000)  # many TLS records both ways
        c.publish("paho/tls", big, qos=1).wait_for_publish(5)
        assert got.get(timeout=10) == big
    finally:
        c.disconnect()
        c.loop_stop()


def test_mutual_tls_identity_is_the_user_name(server, pki):
    """alice's certificate lets her publish to alice/#, and only there (ACL on her CN); the
    user name and password in CONNECT are ignored."""
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(server.port), "-t", "#",
                            "-v", "-W", "6"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        for topic in ("bob/x", "alice/x"):
            r = mosquitto("mosquitto_pub", server.mtls, "--cafile", pki.ca.cert, "--cert",
                          pki.alice[0], "--key", pki.alice[1], "-u", "bob", "-P", "wrong", "-t",
                          topic, "-m", "from-alice")
            assert r.returncode == 0, r.stderr
        out, _ = sub.communicate(timeout=10)
    finally:
        sub.kill()
    assert "alice/x from-alice" in out
    assert "bob/x" not in out


def test_identity_from_the_subject_alternative_name(server, pki):
    """tls.identity_field = "san": alice's certificate names alice@example.com, whose ACL block
    allows san/#; her CN's block (alice/#) does not apply on this listener."""
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(server.port), "-t", "#",
                            "-v", "-W", "6"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        for topic in ("alice/y", "san/y"):
            r = mosquitto("mosquitto_pub", server.san_port, "--cafile", pki.ca.cert, "--cert",
                          pki.alice[0], "--key", pki.alice[1], "-t", topic, "-m", "by-san")
            assert r.returncode == 0, r.stderr
        out, _ = sub.communicate(timeout=10)
    finally:
        sub.kill()
    assert "san/y by-san" in out
    assert "alice/y" not in out


@pytest.mark.parametrize("who,cause", [
    (None, "no_client_cert"),
    ("expired", "client_cert_expired"),
    ("mallory", "client_cert_untrusted"),
])
def test_mutual_tls_refusals_are_counted_by_cause(server, pki, who, cause):
    args = ["--cafile", pki.ca.cert]
    if who == "expired":
        args += ["--cert", pki.expired[0], "--key", pki.expired[1]]
    elif who == "mallory":
        args += ["--cert", pki.mallory[0], "--key", pki.mallory[1]]
    before = failures(server, cause)
    r = mosquitto("mosquitto_pub", server.mtls, *args, "-t", "x", "-m", "y")
    assert r.returncode != 0
    server.wait_for(lambda: failures(server, cause) == before + 1, what=f"{cause} counted")
    line = {"no_client_cert": "no_client_cert", "client_cert_expired": "certificate has expired",
            "client_cert_untrusted": "client_cert_untrusted"}[cause]
    assert line in server.output()


def test_revoked_certificate_is_refused_by_the_crl(server, pki):
    before = failures(server, "client_cert_revoked")
    r = mosquitto("mosquitto_pub", server.crl_port, "--cafile", pki.ca.cert, "--cert",
                  pki.revoked[0], "--key", pki.revoked[1], "-t", "x", "-m", "y")
    assert r.returncode != 0
    server.wait_for(lambda: failures(server, "client_cert_revoked") == before + 1, what="revoked")
    r = mosquitto("mosquitto_pub", server.crl_port, "--cafile", pki.ca.cert, "--cert", pki.bob[0],
                  "--key", pki.bob[1], "-t", "x", "-m", "y")
    assert r.returncode == 0, r.stderr


def test_plain_mqtt_on_a_tls_port_and_silence_are_closed(server):
    before = failures(server, "not_tls")
    c = RawClient(server.tls)
    c.send(connect_packet("plain"))
    c.expect_closed()
    server.wait_for(lambda: failures(server, "not_tls") == before + 1, what="not_tls")
    # Nothing at all: closed at the listener's handshake deadline (600 ms), counted.
    before = failures(server, "timeout")
    s = socket.create_connection(("127.0.0.1", server.quick_port))
    s.settimeout(5)
    t0 = time.monotonic()
    assert s.recv(10) == b""
    assert 0.4 < time.monotonic() - t0 < 3
    server.wait_for(lambda: failures(server, "timeout") == before + 1, what="timeout counted")


def tls_client(port, pki, version=None, session=None):
    ctx = ssl.create_default_context(cafile=pki.ca.cert)
    if version:
        ctx.maximum_version = version
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx, ctx.wrap_socket(s, server_hostname="localhost", session=session)


def test_alpn_mqtt_and_session_resumption(server, pki):
    ctx = ssl.create_default_context(cafile=pki.ca.cert)
    ctx.set_alpn_protocols(["mqtt"])
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # resumption visible at once (1.3 tickets lag)
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", server.tls)), server_hostname="localhost")
    assert s.selected_alpn_protocol() == "mqtt"
    c = RawClient.over(s)
    assert c.connect("alpn")[1] == 0
    session = s.session
    s.close()
    before = labelled(server.metrics(), "tcpms_tls_handshakes_total", kind="resumed")
    s2 = ctx.wrap_socket(socket.create_connection(("127.0.0.1", server.tls)),
                         server_hostname="localhost", session=session)
    assert s2.session_reused
    assert RawClient.over(s2).connect("alpn2")[1] == 0
    s2.close()
    assert labelled(server.metrics(), "tcpms_tls_handshakes_total", kind="resumed") == before + 1


@pytest.mark.skipif(SANITIZED, reason="ASan's redzones and quarantine change what memory costs")
def test_idle_tls_connections_hold_no_openssl_state(server, pki):
    """500 idle TLS 1.3 clients: after each handshake the server keeps only the connection's
    traffic keys and frees OpenSSL's SSL, so it grows by a few hundred bytes of keys plus the
    client's own state: not by the ~15 KB an SSL object costs in OpenSSL 3.0, nor the ~48 KB
    with its record buffers kept."""
    raise_nofile_limit(4000)
    n = 500
    warm = [tls_client(server.tls, pki)[1] for _ in range(20)]
    for i, s in enumerate(warm):
        RawClient.over(s).connect(f"warm{i}")
    time.sleep(0.5)
    before = rss_bytes(server.pid)
    socks = []
    try:
        for i in range(n):
            s = tls_client(server.tls, pki)[1]
            c = RawClient.over(s)
            assert c.connect(f"idle{i}", keepalive=0)[1] == 0
            socks.append(c)
        # Every one is still served (a PINGREQ each), then they go quiet.
        for c in socks[::50]:
            c.send(PINGREQ_PACKET)
            c.expect(PINGRESP)
        time.sleep(1.0)
        per_conn = (rss_bytes(server.pid) - before) / n
        print(f"RSS per idle TLS connection: {per_conn:.0f} bytes")
        assert per_conn < 6_000, per_conn
        assert server.metrics()["tcpms_tls_openssl_connections"] == 0
    finally:
        for c in socks + [RawClient.over(s) for s in warm]:
            c.close()
