"""tcpms-bench's MQTT workloads (mqtt-conn, mqtt-fanout, mqtt-p2p) against the real tcpms-server
on loopback, at a small scale: the numbers must add up (every client connected and subscribed,
every publish delivered to every subscriber at QoS 1, losses counted when a subscriber stops
reading, refusals counted by CONNACK return code, worker processes meeting at the barrier)."""
import json
import subprocess
import time

import pytest

from mqtt_raw import mqtt_server
from tcpms_harness import binary
from test_upgrade_handover import read_pid, stop_pid, wait_until


def bench(*args, timeout=120):
    """Runs tcpms-bench with --json; returns (exit code, parsed JSON, stderr)."""
    proc = subprocess.run([binary("tcpms-bench"), *args, "--json", "--no-progress"], capture_output=True,
                          text=True, timeout=timeout)
    assert proc.stdout.strip(), f"no JSON on stdout (rc {proc.returncode}):\n{proc.stderr}"
    return proc.returncode, json.loads(proc.stdout), proc.stderr


@pytest.fixture(scope="module")
def server():
    with mqtt_server("--threads", "2") as s:
        yield s


def target(server):
    return f"127.0.0.1:{server.port}"


def assert_all_delivered(j, subscribers, receivers_per_publish):
    """Every client subscribed and every publish reached each of its receivers once."""
    c = j["counters"]
    assert c["subscribed"] == subscribers
    assert c["deliveries"] == c["ops"] == c["expected_deliveries"] == c["published"] * receivers_per_publish
    assert c["lost"] == 0
    assert c.get("duplicates", 0) == 0 and c.get("lost_in_gaps", 0) == 0
    assert j["latency"]["delivery"]["count"] == c["deliveries"]
    assert j["failure_total"] == 0, j["failures"]
    return c


def test_mqtt_conn_connects_and_subscribes_every_client(server):
    rc, j, err = bench("mqtt-conn", "--target", target(server), "--connections", "2000", "--rate", "10000",
                       "--hold", "0.3", "--server-pid", str(server.pid))
    assert rc == 0, err
    c = j["counters"]
    assert j["workload"] == "mqtt-conn"
    assert c["attempted"] == c["established"] == 2000
    assert c["subscribed"] == c["ops"] == c["connections"] == 2000
    assert j["failure_total"] == 0, j["failures"]
    assert j["latency"]["connack"]["count"] == 2000
    assert j["latency"]["suback"]["count"] == 2000
    assert c["subscribes_per_s"] > 0
    # ops are subscribed clients, so the server's cost per op is per CONNECT + SUBSCRIBE.
    assert j["server_cost"]["cpu_us_per_op"] > 0
    assert "rss_bytes_per_connection" in j["server_cost"]
    assert j["parameters"]["protocol"] == "mqtt-3.1.1"


def test_mqtt_conn_keep_alive_pings_hold_clients_past_the_deadline(server):
    # The broker closes a client silent for 1.5 x keep-alive; the bench pings every half of it.
    rc, j, err = bench("mqtt-conn", "--target", target(server), "--connections", "50", "--keep-alive", "1",
                       "--hold", "2.5")
    assert rc == 0, err
    assert j["counters"]["connections"] == 50
    assert j["failure_total"] == 0, j["failures"]


def test_mqtt_conn_refusals_are_counted_by_return_code():
    with mqtt_server("--auth-user", "alice:secret", "--deny-anonymous") as s:
        rc, j, err = bench("mqtt-conn", "--target", target(s), "--connections", "30", "--hold", "0")
    assert rc == 1, err
    assert j["failures"] == {"connack_rc_5": 30}
    assert j["counters"].get("subscribed", 0) == 0
    assert j["latency"]["connack"]["count"] == 30


def test_mqtt_fanout_qos1_delivers_every_publish_to_every_subscriber(server):
    rc, j, err = bench("mqtt-fanout", "--target", target(server), "--subscribers", "200", "--publishers", "2",
                       "--qos", "1", "--publish-rate", "200", "--duration", "1", "--server-pid", str(server.pid))
    assert rc == 0, err
    c = assert_all_delivered(j, 200, 200)
    assert c["published"] >= 150  # 200/s for 1 s, open loop
    assert c["end_markers_sent"] == 2
    assert c["end_markers_received"] == 200 * 2
    assert c["deliveries_per_s"] > 0
    # The server's CPU over the publish phase, per delivery.
    assert c["phase_server_cpu_us"] >= 0 and c["phase_ms"] > 0
    assert j["parameters"]["mode"] == "open_loop"


def test_mqtt_fanout_worker_processes_meet_at_the_barrier(server):
    # Subscribers and the publisher sit in different processes and loops: publishing starts
    # only once every one of them is subscribed, so nothing is lost.
    rc, j, err = bench("mqtt-fanout", "--target", target(server), "--subscribers", "300", "--publishers", "1",
                       "--qos", "1", "--publish-rate", "100", "--duration", "1", "--processes", "2",
                       "--threads", "2")
    assert rc == 0, err
    assert j["layout"]["processes"] == 2
    assert_all_delivered(j, 300, 300)


def test_mqtt_fanout_flat_out_qos1_is_acknowledged(server):
    rc, j, err = bench("mqtt-fanout", "--target", target(server), "--subscribers", "20", "--publishers", "2",
                       "--qos", "1", "--inflight", "5", "--duration", "1")
    assert rc == 0, err
    c = j["counters"]
    assert j["parameters"]["mode"] == "as_fast_as_possible"
    assert c["published"] > 100
    assert c["expected_deliveries"] == c["published"] * 20
    # Flat out, the publishers are acknowledged faster than 20 subscribers read: whatever the
    # broker's per-client queue limit dropped shows up as lost, never as a failure.
    assert c["deliveries"] + c["lost"] == c["expected_deliveries"]
    assert c["end_markers_sent"] == 2
    assert j["failure_total"] == 0, j["failures"]


def test_mqtt_fanout_slow_subscribers_lose_qos0_and_losses_add_up():
    # Two of four subscribers stop reading while 20 MB/s is published; the broker drops QoS 0
    # to them past 64 KiB unsent. The fast two get everything.
    with mqtt_server("--threads", "1", "--max-queued-bytes", "65536") as s:
        rc, j, err = bench("mqtt-fanout", "--target", target(s), "--subscribers", "4", "--publishers", "1",
                           "--payload", "4000", "--publish-rate", "5000", "--duration", "2",
                           "--slow-subscribers", "2", "--drain", "1")
    assert rc == 0, err
    c = j["counters"]
    published = c["published"]
    assert c["expected_deliveries"] == published * 4
    assert c["lost"] == c["expected_deliveries"] - c["deliveries"]
    assert c["lost"] > 0
    assert c["lost"] <= published * 2  # only the slow ones lose
    assert c["deliveries"] >= published * 2
    assert j["failure_total"] == 0, j["failures"]


def test_mqtt_p2p_delivers_each_message_to_its_one_subscriber(server):
    rc, j, err = bench("mqtt-p2p", "--target", target(server), "--connections", "400", "--qos", "1",
                       "--publish-rate", "4000", "--duration", "1", "--threads", "2")
    assert rc == 0, err
    c = assert_all_delivered(j, 400, 1)
    assert c["published"] >= 3000
    assert c["end_markers_received"] == 400


def test_mqtt_usage_errors(server):
    proc = subprocess.run([binary("tcpms-bench"), "mqtt-fanout", "--target", target(server), "--subscribers", "10",
                           "--connections", "5"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 64
    assert "--subscribers + --publishers" in proc.stderr
    proc = subprocess.run([binary("tcpms-bench"), "mqtt-p2p", "--target", target(server), "--connections", "1"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 64
    proc = subprocess.run([binary("tcpms-bench"), "mqtt-conn", "--target", target(server), "--qos", "3"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 64
    proc = subprocess.run([binary("tcpms-bench"), "mqtt-conn", "--target", target(server),
                           "--mqtt-version", "4"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 64


def test_shared_flags_may_come_before_the_workload(server):
    """`tcpms-bench --target X mqtt-fanout` said "--target is required"."""
    rc, j, err = bench("--target", target(server), "--connections", "20", "mqtt-conn", "--hold", "0")
    assert rc == 0, err
    assert j["counters"]["subscribed"] == 20
    rc, j, err = bench("--target", target(server), "mqtt-fanout", "--subscribers", "5", "--publishers", "1",
                       "--publish-rate", "50", "--duration", "0.5")
    assert rc == 0, err


def test_mqtt_fanout_qos2_over_mqtt5_with_a_user_name_and_password():
    """No --qos 2, no user name or password, no MQTT 5 in tcpms-bench before."""
    with mqtt_server("--threads", "2", "--auth-user", "bench:s3cret", "--deny-anonymous") as s:
        rc, j, err = bench("mqtt-fanout", "--target", target(s), "--subscribers", "50", "--publishers", "2",
                           "--qos", "2", "--mqtt-version", "5", "--username", "bench", "--password", "s3cret",
                           "--publish-rate", "200", "--duration", "1")
        assert rc == 0, err
        c = assert_all_delivered(j, 50, 50)
        assert c["published"] >= 150
        assert j["parameters"]["protocol"] == "mqtt-5.0" and j["parameters"]["qos"] == 2
        m = s.metrics()
        # The QoS 2 handshakes ran both ways: PUBREL from the publishers, PUBCOMP from the
        # subscribers.
        assert m['tcpms_mqtt_packets_received_total{type="pubrel"}'] >= c["published"]
        assert m['tcpms_mqtt_packets_received_total{type="pubcomp"}'] >= c["deliveries"]
        rc, j, err = bench("mqtt-conn", "--target", target(s), "--connections", "5", "--hold", "0",
                           "--mqtt-version", "5", "--username", "bench", "--password", "wrong")
        assert rc == 1
        assert j["failures"] == {"connack_rc_4": 5}, j["failures"]


def reach(s, *args, n=300, pushes=50, timeout=120):
    return bench("mqtt-reach", "--target", target(s), "--connections", str(n), "--pushes", str(pushes),
                 "--admin", f"127.0.0.1:{s.admin_port}", *args, timeout=timeout)


def test_mqtt_reach_publishes_to_every_client_and_pushes_to_k_by_id_across_workers():
    # Clients, publishers and the pusher sit in different bench processes and loops, and the
    # clients on different server workers: a push by id to a worker's admin API reaches the
    # worker that holds the client.
    with mqtt_server("--processes", "2", "--threads", "1") as s:
        rc, j, err = reach(s, "--qos", "1", "--processes", "2", "--threads", "2", "--server-pid", str(s.pid),
                           n=600, pushes=100)
    assert rc == 0, err
    c = j["counters"]
    assert j["workload"] == "mqtt-reach"
    assert c["subscribed"] == c["connections"] == 600
    assert c["published"] == c["deliveries"] == c["ops"] == c["publish_expected"] == 600
    assert j["latency"]["delivery"]["count"] == 600
    assert c["push_requests"] == c["push_http_200"] == c["pushes_delivered"] == c["pushes_expected"] == 100
    assert j["latency"]["push_delivery"]["count"] == 100
    assert j["failure_total"] == 0, j["failures"]
    assert c["time_to_deliver_all_us"] > 0
    # The server's CPU is sampled at each stage boundary (/proc counts in 10 ms ticks, so a
    # stage this small may well read 0).
    for name in ("phase_subscribe_server_cpu_us", "phase_publish_server_cpu_us", "phase_push_server_cpu_us"):
        assert name in c


def test_mqtt_reach_counts_missing_messages_as_failures(tmp_path):
    # The ACL lets a client write only to its own topic, so the publishers' messages are
    # dropped: every client misses its message, and the run fails. Admin pushes pass no ACL.
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite tb/#\npattern readwrite reach/%c\n")
    with mqtt_server("--threads", "1", "--acl-file", str(acl)) as s:
        rc, j, err = reach(s, "--drain", "0.5")
    assert rc == 1, err
    assert j["failures"] == {"missing_publish": 300}
    assert j["counters"]["published"] == 300 and j["counters"]["deliveries"] == 0
    assert j["counters"]["pushes_delivered"] == 50


def test_mqtt_reach_counts_admin_answers_by_status():
    with mqtt_server("--threads", "1", "--admin-token", "right") as s:
        rc, j, err = reach(s, "--admin-token", "wrong", "--drain", "0.5", n=100, pushes=20)
    assert rc == 1, err
    assert j["failures"] == {"push_http_401": 20, "missing_push": 20}
    assert j["counters"]["push_http_401"] == 20
    assert j["counters"]["deliveries"] == 100


def test_mqtt_reach_streams_qos1_through_a_real_upgrade_of_worker_processes(tmp_path):
    # The stream stage runs `tcpms-server --upgrade` while every bench loop streams QoS 1
    # messages to its own clients: nobody is disconnected, nothing the broker acknowledged is
    # lost, and the publish and push stages after it reach every client through the new server
    # (whose workers got the admin port too).
    pid_file = str(tmp_path / "tcpms.pid")
    with mqtt_server("--processes", "2", "--threads", "1", "--pid-file", pid_file) as s:
        wait_until(lambda: read_pid(pid_file) == s.pid, "the pid file")
        command = f"{binary('tcpms-server')} --upgrade --pid-file {pid_file}"
        try:
            rc, j, err = reach(s, "--qos", "1", "--processes", "2", "--threads", "1", "--stream-during", command,
                               "--stream-after", "1", "--stream-tail", "1", "--drain", "30",
                               "--sync-timeout", "120", "--max-time", "400", n=3000, pushes=100, timeout=420)
            new_pid = read_pid(pid_file)
        finally:
            if read_pid(pid_file) not in (0, s.pid):
                stop_pid(read_pid(pid_file))
    assert rc == 0, err
    c = j["counters"]
    assert new_pid not in (0, s.pid), err
    assert c["during_command_rc"] == 0 and "during_command_ms" in c
    assert c["disconnects"] == 0, err
    assert c["stream_acked"] > 0
    assert c["stream_lost"] == 0 and c["stream_unacked"] == 0
    assert c["stream_published"] == c["stream_acked"]
    assert c["stream_delivered"] == c["stream_acked"]
    assert j["latency"]["stream_delivery"]["count"] == c["stream_delivered"]
    assert c["subscribed"] == c["deliveries"] == 3000
    assert c["pushes_delivered"] == 100
    assert j["failure_total"] == 0, j["failures"]
    assert j["parameters"]["stream_during"] == command


def test_mqtt_reach_stream_counts_the_clients_a_killed_worker_disconnects():
    # The command kills one of two server workers: its clients' connections close under the
    # bench, which never reconnects, so each counts as a disconnect and the run fails.
    with mqtt_server("--processes", "2", "--threads", "1") as s:
        with open(f"/proc/{s.pid}/task/{s.pid}/children") as f:
            worker = int(f.read().split()[0])
        rc, j, err = reach(s, "--qos", "1", "--processes", "2", "--stream-during", f"kill -9 {worker}",
                           "--stream-after", "0.5", "--stream-tail", "0.5", "--drain", "2", "--sync-timeout", "5",
                           n=1000, pushes=0)
    assert rc == 1, err
    c = j["counters"]
    assert c["during_command_rc"] == 0
    assert 0 < c["disconnects"] <= 1000 + 2 * 3  # clients, and each loop's control and publishers
    assert j["failure_total"] > 0


def test_mqtt_reach_stream_counts_a_failing_command(server):
    rc, j, err = reach(server, "--qos", "1", "--stream-during", "exit 3", "--stream-after", "0",
                       "--stream-tail", "0.2", n=50, pushes=5)
    assert rc == 1, err
    c = j["counters"]
    assert c["during_command_rc"] == 3
    assert j["failures"] == {"during_command_rc_3": 1}
    assert c["stream_lost"] == 0 and c["disconnects"] == 0
    assert c["deliveries"] == 50


def test_mqtt_reach_usage_errors(server):
    for args in (["--pushes", "5"], ["--pushes", "5", "--admin", "nowhere"], ["--qos", "2", "--pushes", "0"],
                 ["--pushes", "0", "--stream-during", "true"]):
        proc = subprocess.run([binary("tcpms-bench"), "mqtt-reach", "--target", target(server), *args],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 64, (args, proc.stderr)


def start_storm(port, n, tmp_path, *args):
    """mqtt-storm in the background; returns (process, ready-file prefix)."""
    ready = tmp_path / "ready"
    proc = subprocess.Popen([binary("tcpms-bench"), "mqtt-storm", "--target", f"127.0.0.1:{port}",
                             "--connections", str(n), "--ready-file", str(ready), *args, "--json", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, ready


def wait_subscribed(proc, ready, n, timeout=60.0):
    """Until the loops' ready files add up to n (every client subscribed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        total = sum(int(p.read_text()) for p in ready.parent.glob(ready.name + ".*") if not p.name.endswith(".tmp"))
        if total >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"only {total} of {n} clients subscribed")


def finish_storm(proc):
    out, err = proc.communicate(timeout=120)
    return proc.returncode, json.loads(out), err


def test_mqtt_storm_every_client_comes_back_after_the_server_is_killed_and_restarted(tmp_path):
    n = 600
    with mqtt_server("--threads", "1") as s:
        port = s.port
        proc, ready = start_storm(port, n, tmp_path, "--processes", "2", "--retry-min", "0.05")
        wait_subscribed(proc, ready, n)
        s.kill()
        with mqtt_server("--threads", "1", "--listen", f"127.0.0.1:{port}"):
            rc, j, err = finish_storm(proc)
    assert rc == 0, err
    c = j["counters"]
    assert j["workload"] == "mqtt-storm"
    assert c["clients"] == c["subscribed"] == c["back"] == c["ops"] == c["connections"] == n
    assert c["drop.closed_by_server"] == n
    assert j["failure_total"] == 0, j["failures"]
    assert j["latency"]["outage"]["count"] == n
    # Every client took one attempt to come back, plus one per failed attempt.
    assert c["storm_attempts"] == n + c["attempt_fail_total"]
    assert c["time_to_all_back_ms"] >= 0 and "drop_spread_ms" in c


def test_mqtt_storm_counts_clients_not_back_as_failures_and_attempts_by_cause(tmp_path):
    # Nothing restarts: every attempt is refused, and every client is a failure at the timeout.
    n = 100
    with mqtt_server("--threads", "1") as s:
        proc, ready = start_storm(s.port, n, tmp_path, "--retry-min", "0.05", "--retry-max", "0.2",
                                  "--storm-timeout", "1")
        wait_subscribed(proc, ready, n)
        s.kill()
        rc, j, err = finish_storm(proc)
    assert rc == 1, err
    assert j["failures"] == {"not_back": n}
    c = j["counters"]
    assert c["attempt_fail.ECONNREFUSED"] >= n
    assert c.get("back", 0) == 0


def test_mqtt_storm_usage_errors(server):
    proc = subprocess.run([binary("tcpms-bench"), "mqtt-storm", "--target", target(server), "--retry-min", "2",
                           "--retry-max", "1"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 64, proc.stderr
