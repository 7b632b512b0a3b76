"""Memory per idle client: 19,000 clients, each with a unique client id and one subscription
(a topic of its own, the costlier case for the topic tree), then quiet. The target is at most
400 bytes of server RSS per client (Mosquitto 2.0.11: about 1,015). Also checks that idle
clients hold no engine buffers (the querybuf.tcl idea)."""
import selectors
import socket
import struct
import time

import pytest

from mqtt_raw import connect_packet, mqtt_server, subscribe_packet
from tcpms_harness import SANITIZED, raise_nofile_limit, rss_bytes

WARM = 500
# Plus WARM: 19,000 in all, inside a 20,000-descriptor limit. Under ASan the number means
# nothing (its allocator pads every block), so a smaller run only checks it works.
CLIENTS = 4_000 if SANITIZED else 18_500


def open_mqtt_clients(port, first, count, deadline, shared=False):
    """`count` clients connected, subscribed (to a topic of their own, or all to one filter),
    acknowledged; returns their sockets."""
    sel = selectors.DefaultSelector()
    socks = []
    want = len(b"\x20\x02\x00\x00") + len(b"\x90\x03\x00\x01\x01")
    got = {}
    batch = 500
    for start in range(first, first + count, batch):
        opened = []
        for i in range(start, min(start + batch, first + count)):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            cid = f"mem-{i:06d}"
            s.sendall(connect_packet(cid, keepalive=600) +
                      subscribe_packet(1, [("fleet/+/cmd" if shared else f"dev/{cid}/cmd", 1)]))
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
            got[s.fileno()] = 0
            opened.append(s)
        pending = len(opened)
        while pending:
            if time.monotonic() > deadline:
                raise AssertionError("clients did not get CONNACK+SUBACK in time")
            for key, _ in sel.select(timeout=1.0):
                data = key.fileobj.recv(64)
                if not data:
                    raise AssertionError("server closed a client")
                got[key.fd] += len(data)
                if got[key.fd] >= want:
                    sel.unregister(key.fileobj)
                    pending -= 1
        socks += opened
    sel.close()
    return socks


@pytest.mark.skipif(raise_nofile_limit(20000) < 19_500, reason="needs 19,500 descriptors")
@pytest.mark.parametrize("shared", [False, True], ids=["own-filter", "shared-filter"])
def test_bytes_per_idle_client(shared):
    with mqtt_server("--threads", "2", "--max-connections", "19800") as srv:
        deadline = time.monotonic() + 50
        warm = open_mqtt_clients(srv.port, 0, WARM, deadline, shared)
        time.sleep(0.5)
        rss0 = rss_bytes(srv.pid)
        socks = open_mqtt_clients(srv.port, WARM, CLIENTS, deadline, shared)
        time.sleep(1.0)
        rss1 = rss_bytes(srv.pid)
        per_client = (rss1 - rss0) / CLIENTS
        m = srv.metrics()
        print(f"\n{CLIENTS} idle MQTT clients ({'shared' if shared else 'own'} filter): {rss1 - rss0} bytes RSS growth, "
              f"{per_client:.0f} bytes per client (RSS {rss1 / 1e6:.1f} MB)")
        assert m["tcpms_mqtt_sessions_connected"] == WARM + CLIENTS
        assert m["tcpms_mqtt_subscriptions"] == WARM + CLIENTS
        # Idle clients hold no input or output buffers in the engine.
        assert m["tcpms_pending_output_bytes"] == 0
        assert m["tcpms_pending_input_bytes"] == 0
        if not SANITIZED:
            assert per_client <= 400, f"{per_client:.0f} bytes per idle client"
        for s in warm + socks:
            s.close()
