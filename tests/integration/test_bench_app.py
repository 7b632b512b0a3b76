"""tcpms-bench against the real tcpms-server (echo protocol) on loopback, at a few thousand
connections: the numbers it reports must add up (every connection established, every round
trip verified, failures counted by cause, worker processes merged by summing)."""
import json
import os
import re
import socket
import subprocess

import pytest

from tcpms_harness import Server, binary


def bench(*args, timeout=120):
    """Runs tcpms-bench with --json; returns (exit code, parsed JSON, stderr)."""
    proc = subprocess.run([binary("tcpms-bench"), *args, "--json"], capture_output=True, text=True,
                          timeout=timeout)
    assert proc.stdout.strip(), f"no JSON on stdout (rc {proc.returncode}):\n{proc.stderr}"
    return proc.returncode, json.loads(proc.stdout), proc.stderr


@pytest.fixture(scope="module")
def server():
    with Server("--protocol", "echo", "--threads", "1") as s:
        yield s


def target(server):
    return f"127.0.0.1:{server.port}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connect_establishes_and_pings_every_connection(server):
    rc, j, err = bench("connect", "--target", target(server), "--connections", "3000", "--rate", "20000",
                       "--hold", "0.5", "--ping", "--server-pid", str(server.pid))
    assert rc == 0, err
    c = j["counters"]
    assert j["workload"] == "connect"
    assert c["attempted"] == 3000
    assert c["established"] == 3000
    assert c["connections"] == 3000
    assert c["pings_ok"] == 3000
    assert j["failures"] == {} and j["failure_total"] == 0
    assert j["histograms"]["connect"]["count"] == 3000
    assert j["latency"]["ping"]["count"] == 3000
    for key in ("p50_ns", "p90_ns", "p99_ns", "p99.9_ns", "max_ns"):
        assert key in j["latency"]["connect"]
    assert c["connects_per_s"] > 0 and c["time_to_establish_ms"] >= 0
    # --rate 20000 for 3000 connections takes at least ~150 ms.
    assert c["time_to_establish_ms"] >= 100
    # --server-pid: before/after samples and the cost per connection.
    assert j["server_before"]["usage"]["pid"] == server.pid
    assert "rss_bytes_per_connection" in j["server_cost"]
    assert "cpu_us_per_op" in j["server_cost"]
    assert j["layout"]["processes"] == 1
    assert "connections_open" in j["series"]["fields"]
    assert max(j["series"]["fields"]["connections_open"]) <= 3000


def test_echo_closed_loop_verifies_every_round_trip(server):
    rc, j, err = bench("echo", "--target", target(server), "--connections", "2000", "--pipeline", "2",
                       "--payload", "100", "--duration", "2")
    assert rc == 0, err
    c = j["counters"]
    assert c["established"] == 2000
    assert c["ops"] > 2000 * 2
    assert c["ops"] == c["requests_sent"]
    assert c["bytes_verified"] == c["ops"] * 100
    assert j["histograms"]["round_trip"]["count"] == c["ops"]
    # ops over the sending time (2 s), replies of the last instant included.
    assert abs(c["round_trips_per_s"] - c["ops"] / 2) <= c["ops"] * 0.02
    assert j["failure_total"] == 0
    assert j["parameters"]["mode"] == "closed_loop"


def test_echo_open_loop_sends_on_schedule(server):
    rc, j, err = bench("echo", "--target", target(server), "--connections", "200", "--request-rate", "5000",
                       "--duration", "2")
    assert rc == 0, err
    c = j["counters"]
    assert c["ops"] == c["requests_sent"]
    # 5,000/s for 2 s, on a schedule: within a few ms' worth of messages.
    assert 9800 <= c["requests_sent"] <= 10100
    assert j["parameters"]["mode"] == "open_loop"


def test_churn_cycles_add_up(server):
    rc, j, err = bench("churn", "--target", target(server), "--concurrency", "20", "--connections", "3000",
                       "--duration", "30")
    assert rc == 0, err
    c = j["counters"]
    assert c["attempted"] == 3000
    assert c["established"] == 3000
    assert c["ops"] == 3000
    assert j["histograms"]["cycle"]["count"] == 3000
    # Reported even when 0; with an idle server no connect should need a SYN retry.
    assert c["connects_ge_1s"] == 0
    assert j["histograms"]["connect"]["max"] < 1_000_000_000
    assert "kernel.listen_overflows" in c and "kernel.listen_drops" in c
    assert set(j["netstat"]) == {"before", "after"}
    assert c["connects_per_s"] > 0


def test_refused_connections_are_counted_by_cause():
    rc, j, err = bench("connect", "--target", f"127.0.0.1:{free_port()}", "--connections", "500")
    assert rc == 1, "failures must make the exit code 1"
    c = j["counters"]
    assert c["attempted"] == 500
    assert c.get("established", 0) == 0
    assert j["failures"] == {"ECONNREFUSED": 500}
    assert c["connections"] == 0


def test_two_processes_merge_by_summing(server):
    rc, j, err = bench("echo", "--target", target(server), "--connections", "3001", "--processes", "2",
                       "--duration", "1", "--server-pid", str(server.pid))
    assert rc == 0, err
    c = j["counters"]
    assert j["workers"] == 2
    assert j["layout"]["processes"] == 2
    assert c["attempted"] == 3001
    assert c["established"] == 3001
    assert c["connections"] == 3001
    assert c["ops"] == c["requests_sent"] > 3001
    assert j["histograms"]["connect"]["count"] == 3001
    assert j["histograms"]["time_to_establish"]["count"] == 2  # one per worker loop
    assert j["failure_total"] == 0
    # The after-sample is taken while both workers still hold their connections.
    assert j["server_after"]["usage"]["rss_bytes"] > 0


def test_port_range_and_source_addresses(server):
    with Server("--protocol", "echo", "--threads", "1") as second:
        lo, hi = sorted([server.port, second.port])
        if hi != lo + 1:
            targets = ["--target", target(server), "--target", target(second)]
        else:
            targets = ["--target", f"127.0.0.1:{lo}-{hi}"]
        rc, j, err = bench("connect", *targets, "--connections", "2000", "--source-ips",
                           "127.0.0.2-127.0.0.5", "--ping")
        assert rc == 0, err
        assert j["counters"]["established"] == 2000
        assert j["counters"]["pings_ok"] == 2000
        assert j["layout"]["targets"] == 2
        assert j["layout"]["source_addresses"] == ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
        assert j["layout"]["max_connections_per_pair"] == 250


def test_html_report_is_self_contained(server, tmp_path):
    path = tmp_path / "run.html"
    rc, j, err = bench("echo", "--target", target(server), "--connections", "100", "--duration", "1",
                       "--report", str(path))
    assert rc == 0, err
    html = path.read_text()
    assert "<svg" in html and "echo" in html
    assert not re.search(r"https?://", html)


def test_usage_errors():
    proc = subprocess.run([binary("tcpms-bench"), "connect", "--target", "127.0.0.1:7000-6000"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 64
    assert "low to high" in proc.stderr
    proc = subprocess.run([binary("tcpms-bench"), "connect"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 64
