#!/usr/bin/env python3
"""Cross-node against same-node delivery through a tcpms cluster (docs/benchmarks.md,
"Cluster through Redis").

Starts redis-server and two nodes on loopback. One publisher on node A sends timestamped
messages at a fixed rate; one subscriber on A and one on B receive each of them, so every
message is measured on both paths at once, with the same client library: the difference is
the cost of the crossing (A's command thread, an XADD to B's Redis Stream, B's stream thread,
B's loop; a PUBLISH and B's subscriber thread before the stream transport).
Then reads Redis INFO (commandstats, network bytes) and the nodes' counters for the Redis
operations and bytes per crossed message.

  bench/cluster_latency.py [--bin build/release/bin] [--messages 5000] [--rate 1000] [--qos 0]
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import paho.mqtt.client as mqtt  # noqa: E402


def node(redis_port, name):
    from tcpms_harness import Server  # after main() set TCPMS_BIN_DIR
    return Server("--protocol", "mqtt", "--sys-interval", "0", "--threads", "2",
                  "--cluster", f"redis://127.0.0.1:{redis_port}", "--node-id", name)


def info(redis):
    """commandstats calls per command and the network byte totals."""
    with socket.create_connection(("127.0.0.1", redis.port)) as s:
        out = {}
        for section in ("commandstats", "stats"):
            s.sendall(f"INFO {section}\r\n".encode())
            f = s.makefile("rb")
            n = int(f.readline()[1:])
            text = f.read(n + 2).decode()
            for line in text.splitlines():
                if line.startswith("cmdstat_"):
                    name, rest = line.split(":", 1)
                    out[name[8:]] = int(rest.split(",")[0].split("=")[1])
                elif line.startswith("total_net_input_bytes:") or line.startswith("total_net_output_bytes:"):
                    k, v = line.split(":")
                    out[k] = int(v)
    return out


class Sub:
    def __init__(self, port, n):
        self.lat_us = []
        self.done = threading.Event()
        self.n = n
        self.c = mqtt.Client(client_id=f"lat-{port}")
        self.c.on_message = self._on
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def _on(self, c, u, m):
        sent = int(m.payload[:20])
        self.lat_us.append((time.monotonic_ns() - sent) / 1000)
        if len(self.lat_us) >= self.n:
            self.done.set()


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p / 100))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build", "release", "bin"))
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--qos", type=int, default=0)
    ap.add_argument("--payload", type=int, default=64)
    a = ap.parse_args()
    os.environ["TCPMS_BIN_DIR"] = os.path.abspath(a.bin)
    from test_cluster import Redis
    redis = Redis().start()
    try:
        with node(redis.port, "A") as na, node(redis.port, "B") as nb:
            same, cross = Sub(na.port, a.messages), Sub(nb.port, a.messages)
            same.c.subscribe("lat/t", a.qos)
            cross.c.subscribe("lat/t", a.qos)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and na.metrics().get("tcpms_cluster_nodes_with_interest", 0) < 1:
                time.sleep(0.05)
            pub = mqtt.Client(client_id="lat-pub")
            pub.connect("127.0.0.1", na.port)
            pub.loop_start()
            time.sleep(0.3)
            before = info(redis)
            out_before = na.metrics()
            t0 = time.monotonic()
            pad = b"x" * max(0, a.payload - 20)
            for i in range(a.messages):
                due = t0 + i / a.rate
                while time.monotonic() < due:
                    time.sleep(max(0, min(0.001, due - time.monotonic())))
                pub.publish("lat/t", b"%020d" % time.monotonic_ns() + pad, a.qos)
            same.done.wait(30)
            cross.done.wait(30)
            time.sleep(0.5)
            after = info(redis)
            out_after = na.metrics()
            crossed = out_after["tcpms_routing_publishes_sent_total"] - out_before["tcpms_routing_publishes_sent_total"]
            frame_bytes = out_after["tcpms_cluster_bytes_out_total"] - out_before["tcpms_cluster_bytes_out_total"]
            ops = {k: after.get(k, 0) - before.get(k, 0) for k in after if not k.startswith("total_")}
            ops = {k: v for k, v in ops.items() if v and k != "info"}
            net_in = after["total_net_input_bytes"] - before["total_net_input_bytes"]
            net_out = after["total_net_output_bytes"] - before["total_net_output_bytes"]
            print(f"{a.messages} messages, QoS {a.qos}, {a.payload} B payload, {a.rate:.0f}/s, one publisher on A")
            print(f"{'path':<12}{'received':>9}{'p50 us':>9}{'p90 us':>9}{'p99 us':>9}{'p99.9 us':>10}{'max us':>9}")
            for name, s in (("same node", same), ("cross node", cross)):
                v = s.lat_us
                print(f"{name:<12}{len(v):>9}{pct(v, 50):>9.0f}{pct(v, 90):>9.0f}{pct(v, 99):>9.0f}"
                      f"{pct(v, 99.9):>10.0f}{max(v):>9.0f}")
            print(f"crossed: {crossed:.0f} messages; Redis commands in that time: {ops} "
                  f"(INFO excluded) = {sum(ops.values()) / max(crossed, 1):.2f} per crossed message")
            print(f"frame bytes per crossed message: {frame_bytes / max(crossed, 1):.0f}; Redis network "
                  f"per crossed message: {net_in / max(crossed, 1):.0f} B in, {net_out / max(crossed, 1):.0f} B out")
            print(f"median cross-node overhead: {statistics.median(cross.lat_us) - statistics.median(same.lat_us):.0f} us")
            pub.loop_stop()
            for s in (same, cross):
                s.c.loop_stop()
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
