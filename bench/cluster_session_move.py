#!/usr/bin/env python3
"""What a CONNECT costs in a tcpms cluster when its session may be on another node
(docs/benchmarks.md, "Cluster through Redis"; design in docs/cluster.md, "Sessions follow the
client").

Starts redis-server and two nodes on loopback and times CONNECT -> CONNACK on raw sockets:
  clean        CleanSession 1: a claim at the id's home node (no session comes along)
  new          CleanSession 0, an id no node holds: the claim, and nobody is asked for a session
  moved        CleanSession 0, the session offline on the other node (one subscription and
               `--queued` QoS 1 messages waiting): lookup, request, export there, image back
The "moved" client hops A -> B -> A ... so every round moves its session.

  bench/cluster_session_move.py [--bin build/release/bin] [--rounds 200] [--queued 10]
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from cluster_latency import pct  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build", "release", "bin"))
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--queued", type=int, default=10)
    a = ap.parse_args()
    os.environ["TCPMS_BIN_DIR"] = os.path.abspath(a.bin)
    from mqtt_raw import DISCONNECT_PACKET, PUBACK, PUBLISH, RawClient, ack_packet, connected
    from test_cluster import Redis, node

    def timed_connect(port, client_id, clean):
        c = RawClient(port, timeout=10)
        t0 = time.perf_counter()
        present, rc = c.connect(client_id, clean=clean)
        dt = (time.perf_counter() - t0) * 1e6
        assert rc == 0
        return c, present, dt

    def leave(c):
        c.send(DISCONNECT_PACKET)
        c.close()

    redis = Redis().start()
    try:
        with node(redis.port, "A") as na, node(redis.port, "B") as nb:
            nodes = [na, nb]
            for n in nodes:
                n.wait_for(lambda n=n: n.metrics().get("tcpms_cluster_nodes_alive", 0) == 1, 10,
                           what="the other node")
            pub = {n.port: connected(n.port, f"mv-pub-{n.port}") for n in nodes}
            results = {"clean": [], "new": [], "moved": []}
            c, _, _ = timed_connect(na.port, "mover", False)
            assert c.subscribe([("mv/t", 1)]) == [1]
            leave(c)
            time.sleep(0.3)
            here = 0
            for r in range(a.rounds):
                c, _, dt = timed_connect(nodes[1 - here].port, f"clean-{r}", True)
                results["clean"].append(dt)
                leave(c)
                c, present, dt = timed_connect(nodes[1 - here].port, f"new-{r}", False)
                assert not present
                results["new"].append(dt)
                c.close()
                # Queue messages in the offline session (published on the node that holds it).
                for i in range(a.queued):
                    pub[nodes[here].port].publish("mv/t", b"q%d" % i, qos=1, pid=i + 1)
                c, present, dt = timed_connect(nodes[1 - here].port, "mover", False)
                assert present, f"round {r}: no session came along"
                results["moved"].append(dt)
                for _ in range(a.queued):
                    p = c.expect(PUBLISH)
                    c.send(ack_packet(PUBACK, p.pid))
                leave(c)
                here = 1 - here
                time.sleep(0.02)  # its disconnect reaches the registry before the next move
            print(f"{a.rounds} rounds, {a.queued} queued QoS 1 messages in the moved session")
            print(f"{'CONNECT':<8}{'p50 us':>9}{'p90 us':>9}{'p99 us':>9}{'max us':>9}")
            for k, v in results.items():
                print(f"{k:<8}{pct(v, 50):>9.0f}{pct(v, 90):>9.0f}{pct(v, 99):>9.0f}{max(v):>9.0f}")
            for n, name in ((na, "A"), (nb, "B")):
                m = n.metrics()
                print(name, {k: v for k, v in m.items()
                             if k in ("tcpms_routing_claims_total", "tcpms_routing_claims_timed_out_total",
                                      "tcpms_routing_sessions_moved_in_total", "tcpms_routing_sessions_late_total")})
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
