"""The summary that bench/upgrade_mqtt_reach.sh (worker processes) and bench/upgrade_cluster.sh
(a cluster node) print of their run: tcpms-bench mqtt-reach's JSON (its stream stage during
`tcpms-server --upgrade`, then its publish and push stages), the peaks of
bench/server_memory.py and the time the upgrade command started. One place for both, so the
two reports read the bench the same way; each keeps its own figures, in its own order, under
the names docs/upgrade.md quotes.

Prints the figures as JSON and exits 1 unless every client subscribed, nobody was
disconnected, nothing acknowledged was lost, `--upgrade` returned 0, every client got its
published and pushed message and the bench counted no failure (and, for a cluster node, the
other node noticed nothing).

usage: upgrade_summary.py workers REACH_JSON MEMORY_JSON START_FILE N PUSHES PROCESSES
       upgrade_summary.py cluster REACH_JSON MEMORY_JSON START_FILE N PUSHES NOTICED
"""
import json
import sys

# The figures each script prints, in its order.
WORKERS = """clients server_processes bench_processes subscribed disconnects reconnects
    stream_published stream_acked stream_delivered stream_lost stream_unacked stream_duplicates
    stream_latency_p50_ms stream_latency_p99_ms stream_latency_max_ms longest_loop_gap_ms
    upgrade_command_rc upgrade_command_s old_supervisor_gone_s peak_server_rss_mib
    peak_server_pss_mib peak_old_rss_mib peak_new_rss_mib peak_old_pss_mib peak_new_pss_mib
    at_peak_rss_mib published_after delivered_after pushes_delivered_after failures""".split()
# One process per node: its memory is node a's, its root is no supervisor, and its pushes
# come through node b.
CLUSTER = """clients subscribed disconnects reconnects stream_acked stream_delivered stream_lost
    stream_duplicates longest_loop_gap_ms upgrade_command_rc upgrade_command_s
    old_process_gone_s peak_node_a_rss_mib published_after delivered_after
    pushes_through_b_delivered node_b_noticed failures""".split()


def load_json(path, default):
    # The sampler or the upgrade command may not have written theirs (a run that failed early).
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def load_float(path):
    try:
        with open(path) as f:
            return float(f.read())
    except (OSError, ValueError):
        return None


def figures(d, mem, started, n, processes=None, noticed=None):
    """Every figure either script prints, by name (a few under both scripts' names)."""
    c, lat = d["counters"], d["latency"]

    def ms(name, key):
        h = lat.get(name)
        return round(h[key] / 1e6, 1) if h else None

    def mib(key):
        return round(mem.get(key, 0) / 2**20)

    gone = mem.get("old_root_gone_unix")
    gone_s = round(gone - started, 2) if gone and started else None
    return {
        "clients": n,
        "server_processes": processes,
        "bench_processes": d.get("layout", {}).get("processes"),
        "subscribed": c.get("subscribed", 0),
        "disconnects": c.get("disconnects", 0),
        "reconnects": 0,  # the bench never reconnects
        "stream_published": c.get("stream_published", 0),
        "stream_acked": c.get("stream_acked", 0),
        "stream_delivered": c.get("stream_delivered", 0),
        "stream_lost": c.get("stream_lost", 0),
        "stream_unacked": c.get("stream_unacked", 0),
        "stream_duplicates": c.get("stream_duplicates", 0),
        "stream_latency_p50_ms": ms("stream_delivery", "p50_ns"),
        "stream_latency_p99_ms": ms("stream_delivery", "p99_ns"),
        "stream_latency_max_ms": ms("stream_delivery", "max_ns"),
        "longest_loop_gap_ms": ms("stream_loop_gap", "max_ns"),
        "upgrade_command_rc": c.get("during_command_rc"),
        "upgrade_command_s": c["during_command_ms"] / 1e3 if "during_command_ms" in c else None,
        "old_supervisor_gone_s": gone_s,
        "old_process_gone_s": gone_s,
        "peak_server_rss_mib": mib("peak_total_rss_bytes"),
        "peak_node_a_rss_mib": mib("peak_total_rss_bytes"),
        "peak_server_pss_mib": mib("peak_total_pss_bytes"),
        "peak_old_rss_mib": mib("peak_old_rss_bytes"),
        "peak_new_rss_mib": mib("peak_new_rss_bytes"),
        "peak_old_pss_mib": mib("peak_old_pss_bytes"),
        "peak_new_pss_mib": mib("peak_new_pss_bytes"),
        "at_peak_rss_mib": {k: round(v / 2**20) if k.endswith("rss") else v
                            for k, v in mem.get("at_peak_rss", {}).items()},
        "published_after": c.get("published", 0),
        "delivered_after": c.get("deliveries", 0),
        "pushes_delivered_after": c.get("pushes_delivered", 0),
        "pushes_through_b_delivered": c.get("pushes_delivered", 0),
        "node_b_noticed": noticed,
        "failures": d["failures"],
    }


def main():
    if len(sys.argv) != 8 or sys.argv[1] not in ("workers", "cluster"):
        sys.exit(__doc__.split("usage: ", 1)[1])
    kind = sys.argv[1]
    d = json.load(open(sys.argv[2]))
    mem = load_json(sys.argv[3], {})
    started = load_float(sys.argv[4])
    n, pushes, last = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
    if kind == "workers":
        f = figures(d, mem, started, n, processes=last)
    else:
        f = figures(d, mem, started, n, noticed=last)
    print(json.dumps({k: f[k] for k in (WORKERS if kind == "workers" else CLUSTER)}, indent=1))
    ok = (f["subscribed"] == n and f["disconnects"] == 0 and f["stream_lost"] == 0
          and f["stream_acked"] > 0 and f["upgrade_command_rc"] == 0 and f["delivered_after"] == n
          and f["pushes_delivered_after"] == min(pushes, n) and d["failure_total"] == 0)
    if kind == "cluster":
        ok = ok and f["node_b_noticed"] == 0
    if not ok:
        print("upgrade_cluster: FAILED (see disconnects, stream_lost, upgrade_command_rc, node_b_noticed, failures)"
              if kind == "cluster" else
              "upgrade: FAILED (see disconnects, stream_lost, upgrade_command_rc, failures)", file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
