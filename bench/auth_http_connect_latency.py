#!/usr/bin/env python3
"""CONNECT to CONNACK with and without the HTTP auth service (docs/auth.md, "The cost"):
300 CONNECTs one after another from one raw client, first with --auth-user (no service), then
asking a python http.server on loopback every time (each CONNECT is a new client id, so the
cache never answers). Prints the median and p99 in milliseconds.

    TCPMS_BIN_DIR=build/release/bin python3 bench/auth_http_connect_latency.py
"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from mqtt_raw import RawClient, mqtt_server  # noqa: E402
from test_auth_http import AuthService  # noqa: E402


def run(extra, n=300):
    with mqtt_server("--threads", "1", *extra) as srv:
        ms = []
        for i in range(n):
            c = RawClient(srv.port)
            t = time.perf_counter()
            _, rc = c.connect(f"m{i}", username="alice", password="secret")
            ms.append((time.perf_counter() - t) * 1e3)
            assert rc == 0, rc
            c.close()
        ms.sort()
        return statistics.median(ms), ms[int(len(ms) * 0.99)]


if __name__ == "__main__":
    service = AuthService()
    try:
        print("--auth-user      median %.2f ms  p99 %.2f ms" % run(["--auth-user", "alice:secret"]))
        print("--auth-http-url  median %.2f ms  p99 %.2f ms" % run(["--auth-http-url", service.url]))
    finally:
        service.die()
