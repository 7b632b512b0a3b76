"""The upgrade handover of MQTT (SIGUSR2, `tcpms-server --upgrade`; docs/upgrade.md): every
connected client keeps its TCP connection and its session: subscriptions (5.0 Subscription
Identifiers too), the QoS 1 message in flight, its inbound Topic Aliases, its keep-alive. Raw
sockets, so that a reconnect could not hide: one socket per client from start to end."""
import json
import signal
import subprocess

from mqtt_raw import (CONNACK, DISCONNECT_PACKET, PUBACK, PUBLISH, RawClient, ack_packet,
                      connect_packet, connected, mqtt_server, publish_packet)
from tcpms_harness import binary
from test_mqtt_13_v5 import V5, ack5, opts, p_u16, p_u32, publish5
from test_upgrade_handover import TIMEOUT, fake_successor, read_pid, stop_pid, wait_until


def upgrade(pid_file):
    return subprocess.run([binary("tcpms-server"), "--upgrade", "--pid-file", pid_file],
                          capture_output=True, text=True, timeout=TIMEOUT)


def upgraded(srv, pid_file):
    """Runs `tcpms-server --upgrade`, which must succeed; the new server's pid."""
    up = upgrade(pid_file)
    assert up.returncode == 0, up.stdout + up.stderr
    new_pid = read_pid(pid_file)
    assert new_pid not in (0, srv.pid)
    return new_pid


def offline(srv, client_id):
    status, body = srv.admin(f"/api/v1/clients/{client_id}")
    return status == 200 and json.loads(body)["connected"] is False


def sub_ids(pub):
    return [v for k, v in pub.props if k == 0x0B]


def test_mqtt_clients_keep_their_connections_and_sessions_across_an_upgrade(tmp_path):
    pid_file = str(tmp_path / "tcpms.pid")
    # A window of 1: a message after the upgrade can reach the 3.1.1 subscriber only once the
    # one in flight before it is acknowledged, so the window itself must have moved.
    with mqtt_server("--threads", "2", "--pid-file", pid_file, "--upgrade-batch", "2",
                     "--max-inflight", "1") as srv:
        wait_until(lambda: read_pid(pid_file) == srv.pid, "the pid file")
        sub311 = connected(srv.port, "sub311", clean=False)
        assert sub311.subscribe([("t/#", 1)]) == [1]
        sub5 = V5(srv.port)
        _, code, _ = sub5.connect5("sub5", clean=False, props=p_u32(0x11, 600))
        assert code == 0
        assert sub5.sub5([("t/#", opts(1))], props=b"\x0b\x07") == [1]  # Subscription Id 7
        pub5 = V5(srv.port)
        assert pub5.connect5("pub5")[1] == 0
        ka = connected(srv.port, "ka", keepalive=8)  # closed 12 s after its last packet

        # Topic Alias 3 defined before the upgrade.
        pub5.send(publish5("t/a", b"before", qos=1, pid=1, props=p_u16(0x23, 3)))
        assert pub5.ack_code(PUBACK) == (1, 0)
        before = sub311.expect(PUBLISH)
        assert (before.topic, before.payload, before.qos) == ("t/a", b"before", 1)
        # ... left unacknowledged: in flight across the upgrade.
        got = sub5.read_pub()
        assert (got.topic, got.payload, sub_ids(got)) == ("t/a", b"before", [7])
        sub5.send(ack5(PUBACK, got.pid))
        ka.ping()
        # Connected, its CONNECT begun but not finished: the partial packet moves with the
        # connection. (A connection that has sent nothing at all is not accepted yet, as an
        # MQTT listener takes a connection with its first bytes: it moves with the listener.)
        idle = RawClient(srv.port)
        idle_connect = connect_packet("idle")
        idle.send(idle_connect[:3])

        new_pid = upgraded(srv, pid_file)
        try:
            assert srv.proc.wait(timeout=TIMEOUT) == 0
            out = srv.output()
            assert "handover: took the listeners and 5 connection(s)" in out, out
            # The alias is known to the new process: a publish by alias alone is routed.
            pub5.send(publish5("", b"after", qos=1, pid=2, props=p_u16(0x23, 3)))
            assert pub5.ack_code(PUBACK) == (2, 0)
            got = sub5.read_pub()
            assert (got.topic, got.payload, sub_ids(got)) == ("t/a", b"after", [7])
            sub5.send(ack5(PUBACK, got.pid))
            # The 3.1.1 subscriber's window is full with the message from before: it gets the
            # new one after acknowledging that one, on the same socket.
            sub311.expect_nothing(0.5)
            sub311.send(ack_packet(PUBACK, before.pid))
            after = sub311.expect(PUBLISH)
            assert (after.topic, after.payload, after.dup) == ("t/a", b"after", False)
            assert after.pid != before.pid
            sub311.send(ack_packet(PUBACK, after.pid))
            # The client that had not finished its CONNECT does it now, to the new process.
            idle.send(idle_connect[3:])
            connack = idle.expect(CONNACK)
            assert connack.body[1] == 0
            idle.ping()
            # Keep-alive still enforced: ka answers while it pings, is closed once it stops.
            ka.ping()
            ka.expect_closed(timeout=TIMEOUT + 12)
            # The session is the same session: a reconnect finds it present.
            sub311.send(DISCONNECT_PACKET)
            sub311.expect_closed()
            again = RawClient(srv.port)
            present, rc = again.connect("sub311", clean=False)
            assert (present, rc) == (True, 0)
            again.close()
        finally:
            for c in (sub311, sub5, pub5, ka, idle):
                c.close()
            stop_pid(new_pid)


def test_offline_sessions_retained_messages_and_delayed_wills_survive_an_upgrade(tmp_path):
    """State on no connection travels too (State frames, handover version 2): a persistent
    session whose client is away, with a QoS 1 message queued for it; a retained message; a
    5.0 will waiting for its delay."""
    pid_file = str(tmp_path / "tcpms.pid")
    with mqtt_server("--threads", "2", "--pid-file", pid_file) as srv:
        wait_until(lambda: read_pid(pid_file) == srv.pid, "the pid file")
        away = connected(srv.port, "away", clean=False)
        assert away.subscribe([("q/#", 1)]) == [1]
        away.send(DISCONNECT_PACKET)
        away.expect_closed()
        watcher = connected(srv.port, "watcher")
        assert watcher.subscribe([("wills/#", 1)]) == [1]
        pub = connected(srv.port, "pub")
        pub.publish("q/1", b"queued while away", qos=1, pid=1)
        pub.publish("r/1", b"kept", qos=1, pid=2, retain=True)
        # Session Expiry 600 s, Will Delay 3 s; the socket closes without DISCONNECT.
        dying = V5(srv.port)
        assert dying.connect5("dying", clean=False, props=p_u32(0x11, 600),
                              will=("wills/dying", b"gone", 1, False, p_u32(0x18, 3)))[1] == 0
        dying.close()
        wait_until(lambda: offline(srv, "dying"), "the 5.0 session to go offline")

        new_pid = upgraded(srv, pid_file)
        try:
            assert srv.proc.wait(timeout=TIMEOUT) == 0
            assert "item(s) of state on no connection" in srv.output()
            # The delayed will goes out from the new process (the watcher moved there).
            will = watcher.expect(PUBLISH, timeout=TIMEOUT)
            assert (will.topic, will.payload) == ("wills/dying", b"gone")
            watcher.send(ack_packet(PUBACK, will.pid))
            # The away client finds its session and the message queued for it.
            back = RawClient(srv.port)
            assert back.connect("away", clean=False) == (True, 0)
            got = back.expect(PUBLISH)
            assert (got.topic, got.payload, got.qos) == ("q/1", b"queued while away", 1)
            back.send(ack_packet(PUBACK, got.pid))
            # The retained message is there for a new subscriber.
            fresh = connected(srv.port, "fresh")
            fresh.subscribe([("r/#", 0)])
            kept = fresh.expect(PUBLISH)
            assert (kept.topic, kept.payload, kept.retain) == ("r/1", b"kept", True)
            back.close()
            fresh.close()
        finally:
            watcher.close()
            pub.close()
            stop_pid(new_pid)


def server_whose_upgrade_dies_when_released(tmp_path, release):
    """An MQTT server whose successor (a stand-in) takes the listeners and the first batch of
    one connection, then dies once `release` exists: the handover rolls back."""
    return mqtt_server("--threads", "1", "--upgrade-batch", "1",
                       "--upgrade-binary", fake_successor(tmp_path),
                       env={"HANDOVER_FAKE": "die-after-listeners",
                            "HANDOVER_FAKE_RELEASE": str(release)})


def upgrade_until_the_first_batch(srv):
    srv.proc.send_signal(signal.SIGUSR2)
    srv.wait_for(lambda: "got frame kind 6 with 1 descriptors" in srv.output(),
                 timeout=TIMEOUT, what="the first batch to be parked")


def test_a_publish_held_during_a_failed_upgrade_is_read_and_delivered_after_the_rollback(tmp_path):
    """While connections move nothing is read (so no publish can reach a subscriber already
    gone); if the new process dies, what was held is read then, on the same sockets."""
    release = tmp_path / "release"
    with server_whose_upgrade_dies_when_released(tmp_path, release) as srv:
        sub = connected(srv.port, "sub", clean=False)  # the first slot: the parked batch
        assert sub.subscribe([("h/#", 1)]) == [1]
        pub = connected(srv.port, "pub")
        upgrade_until_the_first_batch(srv)
        pub.send(publish_packet("h/1", b"held", qos=1, pid=5))
        pub.expect_nothing(0.5)  # held: not read, so not acknowledged
        release.write_text("go")
        srv.wait_for(lambda: "handover stopped" in srv.output(), timeout=TIMEOUT,
                     what="the rollback")
        assert pub.expect(PUBACK).pid == 5
        got = sub.expect(PUBLISH)
        assert (got.topic, got.payload, got.qos) == ("h/1", b"held", 1)
        sub.send(ack_packet(PUBACK, got.pid))
        pub.publish("h/2", b"after", qos=1, pid=6)
        assert sub.expect(PUBLISH).payload == b"after"
        assert srv.proc.poll() is None
        sub.close()
        pub.close()


def will_clients(port):
    """Two clients with wills: one that will vanish, one that will say DISCONNECT first."""
    vanishing = connected(port, "vanishing", will=("will/vanishing", b"gone", 1, False))
    polite = connected(port, "polite", will=("will/polite", b"never sent", 1, False))
    return vanishing, polite


def leave(vanishing, polite):
    vanishing.sock.close()  # no DISCONNECT: its will must go out [MQTT-3.1.2-8]
    polite.send(DISCONNECT_PACKET)  # its will must not [MQTT-3.14.4-3]
    polite.sock.close()


def only_the_vanished_will_arrives(srv, sub):
    got = sub.expect(PUBLISH)
    assert (got.topic, got.payload) == ("will/vanishing", b"gone")
    sub.send(ack_packet(PUBACK, got.pid))
    # Both left in the same moment; a marker published now comes next, not the other will.
    marker = connected(srv.port, "marker")
    marker.publish("will/marker", b"m", qos=1, pid=1)
    assert sub.expect(PUBLISH).topic == "will/marker"
    marker.close()


def test_clients_that_leave_while_input_is_held_are_seen_leaving_after_the_rollback(tmp_path):
    """A client that leaves while connections move is seen leaving once what it sent before
    is read: here after the rollback. The one that vanished has its will published; the one
    whose DISCONNECT was held unread has none."""
    release = tmp_path / "release"
    with server_whose_upgrade_dies_when_released(tmp_path, release) as srv:
        sub = connected(srv.port, "sub", clean=False)  # the first slot: the parked batch
        assert sub.subscribe([("will/#", 1)]) == [1]
        vanishing, polite = will_clients(srv.port)
        upgrade_until_the_first_batch(srv)
        leave(vanishing, polite)
        sub.expect_nothing(0.5)  # input held: neither leaving is acted on yet
        release.write_text("go")
        srv.wait_for(lambda: "handover stopped" in srv.output(), timeout=TIMEOUT,
                     what="the rollback")
        only_the_vanished_will_arrives(srv, sub)
        assert srv.proc.poll() is None
        sub.close()


def test_clients_that_leave_during_an_upgrade_are_seen_leaving_by_one_process(tmp_path):
    """Clients leaving while the upgrade runs, whenever exactly: before input is held (the old
    process sees them leave), while it is held (their sockets move and the new process reads
    their last bytes, then their FIN) or after. Either way the vanished client's will arrives
    once and the polite one's never."""
    pid_file = str(tmp_path / "tcpms.pid")
    with mqtt_server("--threads", "2", "--pid-file", pid_file, "--upgrade-batch", "1") as srv:
        wait_until(lambda: read_pid(pid_file) == srv.pid, "the pid file")
        sub = connected(srv.port, "sub", clean=False)
        assert sub.subscribe([("will/#", 1)]) == [1]
        idle = [connected(srv.port, f"idle{i}") for i in range(50)]  # a longer handover
        vanishing, polite = will_clients(srv.port)
        up = subprocess.Popen([binary("tcpms-server"), "--upgrade", "--pid-file", pid_file],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        leave(vanishing, polite)
        out, _ = up.communicate(timeout=TIMEOUT)
        assert up.returncode == 0, out
        new_pid = read_pid(pid_file)
        try:
            assert srv.proc.wait(timeout=TIMEOUT) == 0
            only_the_vanished_will_arrives(srv, sub)
            sub.ping()
        finally:
            for c in idle + [sub]:
                c.close()
            stop_pid(new_pid)


def test_tls_12_clients_stay_behind_and_find_their_sessions_in_the_new_process(tmp_path):
    """A TLS 1.2 connection cannot move (its state is OpenSSL's): once the others are parked,
    the old process closes it, a 5.0 client hearing DISCONNECT 0x8B, and its session travels
    as an offline one: the client reconnects to the new process on the same port and finds
    it, with what was published for it meanwhile."""
    import socket
    import ssl

    from tls_certs import Pki
    pki = Pki()
    try:
        conf = tmp_path / "tcpms.toml"
        conf.write_text('listen = "127.0.0.1:0"\n' + pki.listener())
        pid_file = str(tmp_path / "tcpms.pid")
        ctx = ssl.create_default_context(cafile=pki.ca.cert)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2

        def tls_v5(port):
            return V5.over(ctx.wrap_socket(socket.create_connection(("127.0.0.1", port),
                                                                    timeout=TIMEOUT),
                                           server_hostname="localhost"))

        with mqtt_server("--config", str(conf), "--threads", "1", "--pid-file", pid_file) as srv:
            wait_until(lambda: read_pid(pid_file) == srv.pid, "the pid file")
            tls_port = srv.port_of("tls")
            plain = connected(srv.port, "plain")
            behind = tls_v5(tls_port)
            assert behind.connect5("behind", clean=False, props=p_u32(0x11, 600))[1] == 0
            assert behind.sub5([("t/#", opts(1))]) == [1]
            new_pid = upgraded(srv, pid_file)
            try:
                assert behind.expect_disconnect(TIMEOUT) == 0x8B  # server shutting down
                assert srv.proc.wait(timeout=TIMEOUT) == 0
                plain.ping()  # moved: same socket, served by the new process
                plain.publish("t/x", b"while away", qos=1, pid=1)
                again = tls_v5(tls_port)
                present, code, _ = again.connect5("behind", clean=False, props=p_u32(0x11, 600))
                assert (present, code) == (True, 0)
                got = again.read_pub()
                assert (got.topic, got.payload) == ("t/x", b"while away")
                again.close()
            finally:
                plain.close()
                behind.close()
                stop_pid(new_pid)
    finally:
        pki.cleanup()


def test_tls_13_and_websocket_clients_keep_their_connections_across_an_upgrade(tmp_path):
    """TLS 1.3 records and WebSocket framing travel with the connection (handover version 6):
    a raw 5.0 client over TLS 1.3, paho over WebSocket and over WebSocket + TLS, and a raw
    WebSocket client whose PUBLISH frame is cut in half across the upgrade all keep their
    sockets; the old process exits with nothing left, and each client gets what is published
    afterwards with no reconnect (paho connected once, never disconnected)."""
    import socket
    import ssl
    import threading

    import paho.mqtt.client as mqtt
    from test_transport_03_websocket import WsRaw, frame as ws_frame
    from tls_certs import Pki
    pki = Pki()
    try:
        conf = tmp_path / "tcpms.toml"
        conf.write_text('listen = "127.0.0.1:0"\n' + pki.listener() +
                        '[[listeners]]\nbind = "127.0.0.1:0"\nwebsocket = true\n' +
                        pki.listener("websocket = true\n"))
        pid_file = str(tmp_path / "tcpms.pid")
        ctx = ssl.create_default_context(cafile=pki.ca.cert)
        pahos = []
        with mqtt_server("--config", str(conf), "--threads", "2", "--pid-file", pid_file) as srv:
            wait_until(lambda: read_pid(pid_file) == srv.pid, "the pid file")
            tls_sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", srv.port_of("tls")),
                                                                timeout=TIMEOUT),
                                       server_hostname="localhost")
            assert tls_sock.version() == "TLSv1.3"
            tls13 = V5.over(tls_sock)
            assert tls13.connect5("tls13", clean=False, props=p_u32(0x11, 600))[1] == 0
            assert tls13.sub5([("m/#", opts(1))]) == [1]

            def paho(port, cid, secure):
                events = {"connects": 0, "disconnects": 0, "got": [], "subscribed": threading.Event()}
                c = mqtt.Client(client_id=cid, transport="websockets")
                c.ws_set_options(path="/mqtt")
                if secure:
                    c.tls_set(ca_certs=pki.ca.cert)
                lock = threading.Lock()

                def on_connect(*a):
                    events["connects"] += 1
                    c.subscribe("m/#", 1)

                def on_message(c_, u, m):
                    with lock:
                        events["got"].append((m.topic, m.payload))
                c.on_connect = on_connect
                c.on_disconnect = lambda *a: events.__setitem__("disconnects", events["disconnects"] + 1)
                c.on_subscribe = lambda *a: events["subscribed"].set()
                c.on_message = on_message
                c.connect("localhost", port, 60)
                c.loop_start()
                assert events["subscribed"].wait(TIMEOUT), f"{cid}: no SUBACK"
                pahos.append(c)
                return events
            ws_events = paho(srv.port_of("websocket"), "paho-ws", False)
            wss_events = paho(srv.port_of("websocket+tls"), "paho-wss", True)

            raw = WsRaw(srv.port_of("websocket"))
            assert "101" in raw.handshake()
            raw.s.sendall(ws_frame(0x2, connect_packet("raw-ws")))
            opcode, connack = raw.read_frame()
            assert connack[:1] == b"\x20" and connack[3] == 0, connack
            cut = ws_frame(0x2, publish_packet("m/cut", b"across the upgrade", qos=1, pid=5))
            raw.s.sendall(cut[:len(cut) // 2])
            new_pid = upgraded(srv, pid_file)
            try:
                # Every connection moved: the old process has nothing left and exits.
                assert srv.proc.wait(timeout=TIMEOUT) == 0
                raw.s.sendall(cut[len(cut) // 2:])
                opcode, puback = raw.read_frame()
                assert puback == ack_packet(PUBACK, 5), puback
                pub = connected(srv.port, "after-pub")
                pub.publish("m/after", b"after the upgrade", qos=1, pid=1)
                for name in ("m/cut", "m/after"):
                    got = tls13.read_pub()
                    assert got.topic == name
                    tls13.send(ack_packet(PUBACK, got.pid))
                want = [("m/cut", b"across the upgrade"), ("m/after", b"after the upgrade")]
                for events in (ws_events, wss_events):
                    wait_until(lambda: len(events["got"]) >= 2, "paho's messages")
                    assert events["got"] == want
                    assert (events["connects"], events["disconnects"]) == (1, 0)
                tls13.ping()
                pub.close()
            finally:
                for c in pahos:
                    c.disconnect()
                    c.loop_stop()
                raw.s.close()
                tls13.close()
                stop_pid(new_pid)
    finally:
        pki.cleanup()


def test_clients_behind_a_proxy_keep_their_connections_and_their_addresses(tmp_path):
    """A connection that came through a PROXY header (a client behind HAProxy) holds, past its
    header, only the client's address and its listener: both travel with it (handover version
    5), so the client keeps its socket and the new process still knows it by the address the
    header gave (what ACLs, limits and the admin API see)."""
    import socket

    from test_transport_04_proxy import v2_header
    conf = tmp_path / "tcpms.toml"
    conf.write_text('listen = "127.0.0.1:0"\n[[listeners]]\nbind = "127.0.0.1:0"\n'
                    'proxy_protocol = true\n')
    pid_file = str(tmp_path / "tcpms.pid")
    with socket.socket() as s:  # the new process binds the admin port again: not port 0
        s.bind(("127.0.0.1", 0))
        admin_port = s.getsockname()[1]
    with mqtt_server("--config", str(conf), "--threads", "2", "--pid-file", pid_file,
                     "--admin-listen", f"127.0.0.1:{admin_port}") as srv:
        wait_until(lambda: read_pid(pid_file) == srv.pid, "the pid file")
        behind = RawClient(srv.port_of("proxy+tcp"))
        behind.send(v2_header("203.0.113.7", 4242) + connect_packet("behind-proxy", clean=False))
        assert behind.expect(CONNACK).body[1] == 0
        assert behind.subscribe([("p/#", 1)]) == [1]
        new_pid = upgraded(srv, pid_file)
        try:
            assert srv.proc.wait(timeout=TIMEOUT) == 0
            # The same socket, served by the new process (one that stayed would be closed).
            pub = connected(srv.port, "proxy-pub")
            pub.publish("p/x", b"after the upgrade", qos=1, pid=1)
            got = behind.expect(PUBLISH)
            assert (got.topic, got.payload) == ("p/x", b"after the upgrade")
            behind.send(ack_packet(PUBACK, got.pid))
            behind.ping()
            status, body = srv.admin("/api/v1/clients/behind-proxy")
            assert status == 200, body
            info = json.loads(body)
            assert info["connected"] is True and info["peer"] == "203.0.113.7:4242", info
            pub.close()
        finally:
            behind.close()
            stop_pid(new_pid)
