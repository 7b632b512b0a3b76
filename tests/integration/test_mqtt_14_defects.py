"""Regression tests for the defects of issue 14 that live in the engine and the broker, each
met as a client would meet it: raw sockets for exact bytes and timing of partial packets,
the real tcpms-server on kernel-chosen ports. One section per item of the issue."""
import socket
import struct
import time

from mqtt_raw import (CONNACK, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, RawClient,
                      connect_packet, connected, frame, mqtt_server, publish_packet)
from tcpms_harness import SANITIZED, rss_bytes
from test_mqtt_13_v5 import (V5, connect5, opts, p_str, p_u16, p_u32, props_of, publish5,
                             subscribe5, v5)

# --- item 1: a loop that slept past --connect-timeout ------------------------------------------


def connack_for_each(port, ids):
    """Opens one connection per id, all at once, then sends each its CONNECT; returns the ids
    that got no CONNACK."""
    clients = [RawClient(port) for _ in ids]
    missing = []
    try:
        for c, cid in zip(clients, ids):
            c.send(connect_packet(cid))
        for c, cid in zip(clients, ids):
            try:
                p = c.read(timeout=5)
                if p.type != CONNACK or p.body[1] != 0:
                    missing.append(cid)
            except (ConnectionError, OSError):
                missing.append(cid)
    finally:
        for c in clients:
            c.close()
    return missing


def test_a_server_left_idle_past_the_connect_timeout_answers_every_connect():
    # Two loops with nothing to time (no $SYS, no clients) sleep in epoll_wait; a new
    # connection's CONNECT deadline must count from its accept, not from when the loop last
    # looked at its timers.
    with mqtt_server("--threads", "2", "--connect-timeout", "2") as srv:
        for round_ in range(2):
            time.sleep(3)  # longer than the connect timeout, with no connection open
            ids = [f"idle-{round_}-{i}" for i in range(16)]
            assert connack_for_each(srv.port, ids) == [], srv.output()
        assert srv.metrics()["tcpms_mqtt_connect_timeouts_total"] == 0


# --- item 5: partial packets do not extend the CONNECT deadline or keep-alive ----------------


def trickle(sock, data, interval=0.25):
    """Sends `data` one byte per `interval` until the server closes the connection. Returns
    how many bytes went out before the close was seen (len(data) if it never closed)."""
    sock.settimeout(interval)
    for i in range(len(data)):
        try:
            sock.send(data[i:i + 1])
        except OSError:
            return i
        try:
            if sock.recv(4096) == b"":
                return i + 1
        except socket.timeout:
            pass
        except OSError:
            return i + 1
    return len(data)


def test_connect_sent_a_byte_at_a_time_is_cut_at_the_deadline():
    with mqtt_server("--threads", "1", "--connect-timeout", "1") as srv:
        packet = connect_packet("a-slow-client-id", keepalive=60)  # 30 bytes: 7.5 s at 4/s
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        sent = trickle(s, packet)
        s.close()
        assert sent < len(packet), "the server waited for the whole trickled CONNECT"
        assert srv.metrics()["tcpms_mqtt_connect_timeouts_total"] == 1


def test_a_packet_never_finished_does_not_extend_keep_alive():
    with mqtt_server("--threads", "1") as srv:
        c = connected(srv.port, "half-sent", keepalive=1)  # 1.5 s without a whole packet
        # A PUBLISH that declares 40 more bytes, then sends them a byte at a time (10 s).
        body = struct.pack("!H", 3) + b"a/b" + b"p" * 35
        header = bytes([0x30, len(body)])
        c.send(header)
        sent = trickle(c.sock, body)
        c.close()
        assert sent < len(body), "bytes of an unfinished packet kept the connection alive"
        assert srv.metrics()["tcpms_mqtt_keepalive_expired_total"] == 1


# --- item 3: connects racing for one client id ------------------------------------------------


def answers_ping(client):
    """PINGRESP: the connection is live; EOF or reset: the server closed it."""
    try:
        client.send(b"\xc0\x00")
        p = client.read(timeout=5)
    except (ConnectionError, OSError) as e:
        if isinstance(e, (TimeoutError, socket.timeout)):
            raise
        return False
    assert p.type == PINGRESP, p
    return True


def race_one_id(srv, watcher, rounds, clients_per_round, auth=()):
    """Each round, `clients_per_round` 3.1.1 clients send a CONNECT for the same id (each with a
    will of its own) at the same moment. Every one must get CONNACK 0 [MQTT-3.1.4-4] first;
    all but one are then disconnected [MQTT-3.1.4-2], and each of those wills goes out once."""
    kw = {"username": auth[0], "password": auth[1]} if auth else {}
    for r in range(rounds):
        clients = [RawClient(srv.port) for _ in range(clients_per_round)]
        packets = [connect_packet("race", will=("race/will", f"{r}-{i}", 0, False), **kw)
                   for i in range(clients_per_round)]
        for c, p in zip(clients, packets):
            c.send(p)
        for i, c in enumerate(clients):
            try:
                p = c.read(timeout=5)
            except (ConnectionError, OSError) as e:
                raise AssertionError(f"round {r}: client {i} closed without CONNACK ({e})")
            assert p.type == CONNACK and p.body[1] == 0, f"round {r}: client {i}: {p}"
        # Every CONNECT has been answered, so every takeover has happened: the superseded
        # connections read no more and are closing.
        open_ = [i for i, c in enumerate(clients) if answers_ping(c)]
        assert len(open_) == 1, f"round {r}: connections left open: {open_}"
        survivor = clients[open_[0]]
        wills = sorted(watcher.expect(PUBLISH).payload.decode() for _ in range(clients_per_round - 1))
        expected = sorted(f"{r}-{i}" for i in range(clients_per_round) if i != open_[0])
        assert wills == expected, f"round {r}: wills {wills}, expected {expected}"
        survivor.send(b"\xe0\x00")  # DISCONNECT: its will is discarded
        survivor.expect_closed()
        watcher.expect_nothing(0.3)
        for c in clients:
            c.close()


def test_racing_connects_on_one_loop_each_get_connack():
    with mqtt_server("--threads", "1") as srv:
        watcher = connected(srv.port, "race-watch")
        watcher.subscribe([("race/will", 0)])
        race_one_id(srv, watcher, rounds=5, clients_per_round=10)


def test_racing_connects_across_loops_and_authentication_each_get_connack():
    # Two loops (takeovers and handovers between them) and authentication on the worker pool
    # (CONNECTs finishing out of order).
    with mqtt_server("--threads", "2", "--auth-user", "u:p", "--deny-anonymous") as srv:
        watcher = connected(srv.port, "race-watch", username="u", password="p")
        watcher.subscribe([("race/will", 0)])
        race_one_id(srv, watcher, rounds=5, clients_per_round=10, auth=("u", "p"))


# --- item 8: MQTT 3.1 has no Session Present ----------------------------------------------------


def test_mqtt31_connack_never_sets_session_present():
    with mqtt_server("--threads", "1") as srv:
        kw = {"name": "MQIsdp", "level": 3, "clean": False}
        c = RawClient(srv.port)
        c.send(connect_packet("v31-persistent", **kw))
        assert c.expect(CONNACK).body == b"\x00\x00"
        c.send(b"\xe0\x00")
        c.expect_closed()
        # The session was kept (a 3.1.1 client would hear session present 1); 3.1's first
        # CONNACK byte is reserved and stays 0.
        c = RawClient(srv.port)
        c.send(connect_packet("v31-persistent", **kw))
        assert c.expect(CONNACK).body == b"\x00\x00"
        assert srv.metrics()["tcpms_mqtt_sessions_connected"] == 1


# --- item 11: MQTT 5.0 will delay, Response Topic, Topic Alias 0 --------------------------------


def test_topic_alias_0_gets_0x94():
    # "A Topic Alias value of 0 or greater than the Maximum Topic Alias is a Protocol Error,
    # the receiver uses DISCONNECT with Reason Code of 0x94" (5.0 §3.3.4).
    with mqtt_server("--threads", "1") as srv:
        c = v5(srv, "alias-zero")
        c.send(publish5("ta/x", "x", props=p_u16(0x23, 0)))
        assert c.expect_disconnect() == 0x94


def test_a_response_topic_with_a_wildcard_is_a_protocol_error():
    with mqtt_server("--threads", "1") as srv:
        sub = v5(srv, "rt-sub")
        sub.sub5([("rt/#", opts(0))])
        for i, bad in enumerate(["reply/+", "reply/#"]):
            pub = v5(srv, f"rt-pub-{i}")
            pub.send(publish5("rt/request", "q", props=p_str(0x08, bad)))
            assert pub.expect_disconnect() == 0x82  # [MQTT-3.3.2-14]
        sub.expect_nothing(0.3)  # nothing was forwarded
        ok = v5(srv, "rt-pub-ok")
        ok.send(publish5("rt/request", "q", props=p_str(0x08, "reply/rt-pub-ok")))
        m = sub.read_pub()
        assert m.payload == b"q" and dict(m.props)[0x08] == b"reply/rt-pub-ok"
        # A will's Response Topic too: the CONNECT is refused (closed, no session).
        w = V5(srv.port)
        w.send(connect5("rt-will", will=("rt/will", "gone", 0, False, p_str(0x08, "reply/#"))))
        w.expect_closed()
        assert srv.metrics()["tcpms_mqtt_sessions_connected"] == 3


def test_a_delayed_will_is_not_published_when_the_client_id_connects_again_in_time():
    # [MQTT-3.1.2-8]: the will is not published if "a new Network Connection for the ClientID
    # is opened before the Will Delay Interval has elapsed" -- with Clean Start 1 too, which
    # ends the old session [MQTT-3.1.3-9].
    with mqtt_server("--threads", "2") as srv:
        w = v5(srv, "wd-watch")
        w.sub5([("wd/#", opts(0))])
        will = lambda n: (f"wd/{n}", "gone", 0, False, p_u32(0x18, 3))  # noqa: E731
        # Lost, then back after 1 s with Clean Start 1.
        c = v5(srv, "wd-clean", clean=False, props=p_u32(0x11, 30), will=will("clean"))
        c.close()
        time.sleep(1.0)
        c = v5(srv, "wd-clean", clean=True)
        # Taken over while connected (session expiry 30 s, then 0), by Clean Start 1 and 0.
        newer = []
        for n, expiry, clean in [("t1", 30, True), ("t2", 30, False), ("t3", 0, True)]:
            old = v5(srv, f"wd-{n}", clean=False, props=p_u32(0x11, expiry), will=will(n))
            newer.append(v5(srv, f"wd-{n}", clean=clean, props=p_u32(0x11, expiry)))
            assert old.expect_disconnect() == 0x8E
        w.expect_nothing(4.0)  # past the 3 s delay of each
        # Without a new connection the will still goes out after its delay.
        c = v5(srv, "wd-lost", clean=False, props=p_u32(0x11, 30), will=will("lost"))
        c.close()
        m = w.read_pub(timeout=10)
        assert m.topic == "wd/lost"


# --- item 10: an acknowledgement of the wrong type is a protocol violation --------------------


def subscriber_with_one_message(srv, client_id, qos, v5_client=False, clean=True):
    """A subscriber that has received one QoS `qos` message and not acknowledged it."""
    if v5_client:
        sub = v5(srv, client_id)
        sub.sub5([(f"ack/{client_id}", opts(qos))])
    else:
        sub = connected(srv.port, client_id, clean=clean)
        sub.subscribe([(f"ack/{client_id}", qos)])
    pub = connected(srv.port, f"{client_id}-pub")
    pub.publish(f"ack/{client_id}", "m", qos=qos)
    m = sub.expect(PUBLISH)
    assert m.qos == qos
    return sub, m.pid


def test_an_ack_of_the_wrong_type_closes_the_connection():
    with mqtt_server("--threads", "1") as srv:
        for qos, wrong in [(1, PUBREC), (1, PUBCOMP), (2, PUBACK), (2, PUBCOMP)]:
            sub, pid = subscriber_with_one_message(srv, f"wrong-{qos}-{wrong}", qos)
            sub.send(frame(wrong << 4, struct.pack("!H", pid)))
            sub.expect_closed()  # [MQTT-4.8.0-1]
        # 5.0: DISCONNECT 0x82 first.
        sub, pid = subscriber_with_one_message(srv, "wrong-v5", 2, v5_client=True)
        sub.send(frame(PUBACK << 4, struct.pack("!H", pid)))
        assert sub.expect_disconnect() == 0x82
        assert srv.metrics()["tcpms_mqtt_protocol_violations_total"] == 5


def test_acks_a_client_may_legitimately_repeat_are_still_accepted():
    with mqtt_server("--threads", "1") as srv:
        # A PUBACK for an id no longer in flight: ignored.
        sub, pid = subscriber_with_one_message(srv, "dup-1", 1)
        sub.send(frame(PUBACK << 4, struct.pack("!H", pid)) * 2)
        sub.ping()
        # PUBREC repeated after our PUBREL (a reconnect in between): PUBREL again; PUBCOMP ends it.
        sub2, pid2 = subscriber_with_one_message(srv, "dup-2", 2, clean=False)
        sub2.send(frame(PUBREC << 4, struct.pack("!H", pid2)))
        assert sub2.expect(PUBREL).pid == pid2
        sub2.close()
        sub2 = RawClient(srv.port)
        sub2.send(connect_packet("dup-2", clean=False))
        assert sub2.expect(CONNACK).body[0] == 1
        assert sub2.expect(PUBREL).pid == pid2  # resent [MQTT-4.4.0-1]
        sub2.send(frame(PUBREC << 4, struct.pack("!H", pid2)))
        assert sub2.expect(PUBREL).pid == pid2
        sub2.send(frame((PUBCOMP << 4), struct.pack("!H", pid2)))
        sub2.send(frame((PUBCOMP << 4), struct.pack("!H", pid2)))  # late duplicate: ignored
        sub2.ping()
        assert srv.metrics()["tcpms_mqtt_protocol_violations_total"] == 0


# --- item 9: nothing larger than the client's Maximum Packet Size, a CONNACK included ----------


def connack_bytes_with_limit(srv, limit, client_id="mps"):
    """CONNECTs with Maximum Packet Size `limit`; returns the raw CONNACK (b"" if the server
    closed without one)."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.sendall(connect5(client_id, props=p_u32(0x27, limit)))
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
            if len(data) >= 2 and len(data) >= 2 + data[1]:
                break
    except ConnectionResetError:
        pass
    s.close()
    return data


def test_connack_fits_the_clients_maximum_packet_size():
    with mqtt_server("--threads", "1") as srv:
        full = connack_bytes_with_limit(srv, 1000)
        assert full[0] == 0x20 and full[3] == 0
        for limit in range(5, len(full) + 1):
            ack = connack_bytes_with_limit(srv, limit, f"mps-{limit}")
            assert ack and ack[0] == 0x20 and ack[3] == 0, (limit, ack)
            assert len(ack) <= limit, f"a {len(ack)}-byte CONNACK for Maximum Packet Size {limit}"
        # The limits the client must keep to come first: Maximum Packet Size (0x27) fits in 10.
        props, _ = props_of(connack_bytes_with_limit(srv, 10, "mps-10b")[2:], 2)
        assert dict(props).get(0x27) is not None
        # Below the smallest CONNACK (5 bytes) nothing can be sent: closed without one.
        for limit in (2, 4):
            assert connack_bytes_with_limit(srv, limit, f"mps-small-{limit}") == b""
        # An assigned id must be in the CONNACK [MQTT-3.2.2-16]: too big for 12 bytes.
        assert connack_bytes_with_limit(srv, 12, "") == b""
        ack = connack_bytes_with_limit(srv, 40, "")
        assert ack[3] == 0 and len(ack) <= 40 and 0x12 in dict(props_of(ack[2:], 2)[0])
        # Past CONNACK too: a SUBACK that would not fit is not sent, and the connection, whose
        # subscribe can then never complete, is closed. One that fits is sent.
        c = V5(srv.port)
        assert c.connect5("mps-sub", props=p_u32(0x27, 8))[1] == 0
        assert c.sub5([("a", opts(0))]) == [0]  # 6 bytes
        c.send(subscribe5(2, [(f"f/{i}", opts(0)) for i in range(5)]))  # SUBACK: 10 bytes
        c.expect_closed()


# --- item 4: one slow QoS 1 subscriber cannot grow the server without bound ------------------


def test_a_subscriber_that_never_reads_costs_bounded_memory_by_default():
    # Defaults only. The subscriber's kernel buffers fill, then its output queue in the server
    # (--max-queued-bytes, 16 MiB), then its session (--max-session-bytes, 16 MiB, queued and in
    # flight together); past that, messages for it are dropped and counted.
    payload = b"x" * 65536
    count = 4000  # 256 MiB published
    with mqtt_server("--threads", "2") as srv:
        slow = RawClient(srv.port, rcvbuf=4096)
        assert slow.connect("never-reads", clean=False) == (False, 0)
        slow.subscribe([("big/#", 1)])
        pub = connected(srv.port, "big-pub")
        time.sleep(0.2)
        rss0 = rss_bytes(srv.pid)
        window = 50
        for i in range(count):
            pub.send(publish_packet("big/t", payload, qos=1, pid=i % 60000 + 1))
            if i >= window:
                assert pub.expect(PUBACK, timeout=30).pid == (i - window) % 60000 + 1
        for i in range(count - window, count):
            assert pub.expect(PUBACK, timeout=30).pid == i % 60000 + 1
        grown = rss_bytes(srv.pid) - rss0
        m = srv.metrics()
        print(f"\nRSS growth {grown / 2**20:.1f} MiB after {count * len(payload) / 2**20:.0f} MiB "
              f"published to a subscriber that never reads; "
              f"{m['tcpms_mqtt_queue_dropped_total']:.0f} dropped")
        if not SANITIZED:  # ASan's quarantine keeps freed blocks: RSS means nothing there
            # At most 16 MiB of session (its in-flight window included) and 16 MiB of output
            # queue, plus one message each and the read buffers: under 40 MiB. The bound leaves
            # room for the allocator and is far under the 250 MiB unbounded queueing holds.
            assert grown < 96 * 2**20, f"RSS grew {grown / 2**20:.1f} MiB"
        assert m["tcpms_mqtt_queue_dropped_total"] > 0, "the drops must be counted"
        assert m["tcpms_connections_closed_total"] == 0, "nobody is disconnected for it"
        # The subscriber is served what was kept, in order, when it reads.
        first = slow.expect(PUBLISH, timeout=10)
        assert first.pid == 1 and len(first.payload) == len(payload)
