"""Regression tests for the defects of issue 14 that live in the engine and the broker, each
met as a client would meet it: raw sockets for exact bytes and timing of partial packets,
the real tcpms-server on kernel-chosen ports. One section per item of the issue."""
import socket
import struct
import threading
import time

from mqtt_raw import (CONNACK, PINGRESP, PUBACK, PUBLISH, RawClient, connect_packet, connected,
                      frame, mqtt_server)
from tcpms_harness import SANITIZED, rss_bytes

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
    with mqtt_server("--threads", "2", "--connect-timeout", "1") as srv:
        for round_ in range(2):
            time.sleep(2.5)  # longer than the connect timeout, with no connection open
            ids = [f"idle-{round_}-{i}" for i in range(16)]
            assert connack_for_each(srv.port, ids) == [], srv.output()
        assert srv.metrics()["tcpms_mqtt_connect_timeouts_total"] == 0
