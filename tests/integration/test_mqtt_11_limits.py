"""Limits against abuse (docs/auth.md, "Limits"): the CONNECT deadline, a per-client publish
rate (reading pauses, nothing is lost at QoS 1), the subscription cap (SUBACK 0x80), and the
per-source connection rate (closed right after accept, counted)."""
import socket
import time

from mqtt_raw import (PUBACK, PUBLISH, RawClient, connect_packet, connected, mqtt_server,
                      publish_packet)


def test_client_without_connect_is_closed_at_the_deadline():
    with mqtt_server("--threads", "1", "--connect-timeout", "1") as srv:
        c = RawClient(srv.port)
        t0 = time.monotonic()
        c.expect_closed(timeout=5)
        waited = time.monotonic() - t0
        assert 0.8 <= waited < 3.5, waited
        assert srv.metrics()["tcpms_mqtt_connect_timeouts_total"] == 1


def test_publish_rate_is_bounded_and_qos1_loses_nothing():
    rate, burst, n = 50, 10, 160
    with mqtt_server("--threads", "2", "--mqtt-client-messages-per-s", str(rate),
                     "--mqtt-client-message-burst", str(burst), "--max-inflight", "1000") as srv:
        sub = connected(srv.port, "rl-sub")
        assert sub.subscribe([("rl/#", 1)]) == [1]
        pub = connected(srv.port, "rl-pub")
        t0 = time.monotonic()
        # All at once: the broker reads them at its pace, not ours.
        pub.send(b"".join(publish_packet("rl/t", str(i).encode(), qos=1, pid=i + 1)
                          for i in range(n)))
        got, acks = [], set()
        while len(got) < n or len(acks) < n:
            if len(got) < n:
                p = sub.read(timeout=10)
                assert p.type == PUBLISH
                got.append(int(p.payload))
                sub.send(bytes([0x40, 2]) + p.pid.to_bytes(2, "big"))
            while len(acks) < n:
                try:
                    a = pub.read(timeout=0.001 if len(got) < n else 10)
                except Exception:
                    break
                assert a.type == PUBACK
                acks.add(a.pid)
        elapsed = time.monotonic() - t0
        assert got == list(range(n))  # nothing lost, in order
        # (n - burst) / rate = 3 s at least; well under what an unlimited broker takes.
        assert elapsed >= (n - burst) / rate * 0.9, elapsed
        assert srv.metrics()["tcpms_mqtt_rate_limit_pauses_total"] >= 1
        # Others are not held back meanwhile: a fresh client publishes at once.
        other = connected(srv.port, "rl-other")
        t1 = time.monotonic()
        other.publish("rl/other", b"x", qos=1, pid=1)
        assert time.monotonic() - t1 < 0.5


def test_byte_rate_is_bounded():
    with mqtt_server("--threads", "1", "--mqtt-client-bytes-per-s", "20000",
                     "--mqtt-client-bytes-burst", "20000") as srv:
        pub = connected(srv.port, "br-pub")
        payload = b"x" * 1000
        t0 = time.monotonic()
        pub.send(b"".join(publish_packet("b", payload, qos=1, pid=i + 1) for i in range(80)))
        for i in range(80):
            assert pub.read(timeout=10).type == PUBACK
        elapsed = time.monotonic() - t0
        # 80 KB at 20 KB/s after a 20 KB burst: about 3 s.
        assert elapsed >= 2.5, elapsed


def test_max_subscriptions_per_client():
    with mqtt_server("--threads", "1", "--max-subscriptions", "3") as srv:
        c = connected(srv.port, "subs")
        assert c.subscribe([("a", 0), ("b", 1), ("c", 0), ("d", 0), ("e", 1)]) == [0, 1, 0, 0x80, 0x80]
        # Replacing an existing subscription is not a new one [MQTT-3.8.4-3].
        assert c.subscribe([("b", 0), ("f", 0)], pid=2) == [0, 0x80]
        other = connected(srv.port, "subs-2")
        assert other.subscribe([("d", 0)]) == [0]
        assert srv.metrics()["tcpms_mqtt_subscriptions_over_limit_total"] == 3


def test_connection_rate_per_source():
    with mqtt_server("--threads", "2", "--mqtt-connects-per-s-per-source", "1",
                     "--mqtt-connect-burst-per-source", "5") as srv:
        socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(20)]
        # A client speaks first: an MQTT listener sees a connection only once its bytes arrive
        # (TCP_DEFER_ACCEPT), and the rate is applied as it is accepted.
        for i, s in enumerate(socks):
            s.sendall(connect_packet(f"rate-{i}"))
        closed = 0
        for s in socks:
            s.settimeout(0.5)
            try:
                if s.recv(1) == b"":
                    closed += 1
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed += 1
        for s in socks:
            s.close()
        assert closed >= 14, closed
        srv.wait_for(lambda: srv.metrics()["tcpms_mqtt_connects_over_rate_total"] >= 14,
                     what="refused connections counted")
        assert srv.metrics()["tcpms_mqtt_connect_rate_sources"] >= 1
    with mqtt_server("--threads", "2", "--mqtt-connects-per-s", "1",
                     "--mqtt-connect-burst", "3") as srv:
        ok = 0
        for i in range(6):
            c = RawClient(srv.port)
            try:
                if c.connect(f"t{i}")[1] == 0:
                    ok += 1
            except Exception:
                pass
        assert ok <= 4, ok
        assert srv.metrics()["tcpms_mqtt_connects_over_rate_total"] >= 2
