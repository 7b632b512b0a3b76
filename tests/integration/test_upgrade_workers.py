"""The upgrade handover of a server running as a supervisor and worker processes (--processes
P; docs/upgrade.md, "Worker processes"): SIGUSR2 to the supervisor, or `tcpms-server
--upgrade`, starts a new supervisor whose worker i takes over from old worker i. Every client
keeps its socket, wherever its worker; with MQTT, QoS 1 messages flowing between clients on
different workers before, during and after the upgrade all arrive; a new server that dies
halfway leaves every client with the old one; a changed process count is refused, from one
process to worker processes and back too. Raw sockets, so that a reconnect could not hide."""
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from crash_driver import holder_of
from mqtt_raw import PUBACK, PUBLISH, ack_packet, connected, mqtt_server, publish_packet
from tcpms_harness import binary, close_all, echo_all, echo_server
from test_upgrade_handover import TIMEOUT, fake_successor, payloads, read_pid, stop_pid, wait_until
from test_upgrade_mqtt import upgrade


def worker_pids(supervisor_pid):
    with open(f"/proc/{supervisor_pid}/task/{supervisor_pid}/children") as f:
        return {int(p) for p in f.read().split()}


def holder(port, sock):
    pid = holder_of(port, sock.getsockname()[1])
    assert pid is not None, "a connection no worker holds"
    return int(pid)


def spread(port, processes, make, each=2, most=200):
    """Connections made by `make()` until every worker holds at least `each` of them (the
    kernel spreads them over the workers by hash): [(connection, holder pid)]."""
    made = []
    for _ in range(most):
        c = make()
        sock = c.sock if hasattr(c, "sock") else c
        made.append((c, holder(port, sock)))
        counts = {}
        for _, pid in made:
            counts[pid] = counts.get(pid, 0) + 1
        if len(counts) == processes and min(counts.values()) >= each:
            return made
    raise AssertionError(f"{most} connections did not reach every one of {processes} workers")


class QoS1Traffic:
    """Publishers send QoS 1 messages round robin to the subscribers' topics (each publisher
    one at a time, waiting for its PUBACK) and record what the broker acknowledged; each
    subscriber acknowledges and records what it gets. Any disconnect is an error."""

    def __init__(self, subscribers, publishers):
        self.subscribers = subscribers  # [(RawClient, topic)]
        self.publishers = publishers
        self.acked = set()
        self.received = set()
        self.errors = []
        self.lock = threading.Lock()
        self.stop_publishing = threading.Event()
        self.stop_reading = threading.Event()
        self.threads = [threading.Thread(target=self._read, args=(c,), daemon=True)
                        for c, _ in subscribers]
        self.threads += [threading.Thread(target=self._publish, args=(i, c), daemon=True)
                         for i, c in enumerate(publishers)]

    def start(self):
        for t in self.threads:
            t.start()

    def acked_count(self):
        with self.lock:
            return len(self.acked)

    def _read(self, client):
        while not self.stop_reading.is_set():
            try:
                p = client.read(timeout=0.2)
            except TimeoutError:
                continue
            except (ConnectionError, OSError) as e:
                self.errors.append(f"subscriber lost its connection: {e!r}")
                return
            if p.type == PUBLISH:
                with self.lock:
                    self.received.add((p.topic, p.payload))
                if p.qos == 1:
                    client.send(ack_packet(PUBACK, p.pid))

    def _publish(self, index, client):
        n = 0
        while not self.stop_publishing.is_set():
            n += 1
            topic = self.subscribers[(index + n) % len(self.subscribers)][1]
            payload = f"p{index}-{n}".encode()
            pid = n % 65535 + 1
            try:
                client.send(publish_packet(topic, payload, qos=1, pid=pid))
                ack = client.read(timeout=TIMEOUT)
                assert ack.type == PUBACK and ack.pid == pid, ack
            except (ConnectionError, OSError, AssertionError) as e:
                self.errors.append(f"publisher {index}: {e!r}")
                return
            with self.lock:
                self.acked.add((topic, payload))

    def finish(self):
        """Stops publishing, waits until everything acknowledged has arrived (or TIMEOUT),
        stops reading. Returns what was acknowledged and never arrived."""
        self.stop_publishing.set()
        for t in self.threads[len(self.subscribers):]:
            t.join(TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            with self.lock:
                missing = self.acked - self.received
            if not missing:
                break
            time.sleep(0.05)
        self.stop_reading.set()
        for t in self.threads[:len(self.subscribers)]:
            t.join(TIMEOUT)
        with self.lock:
            return self.acked - self.received


def stop_traffic(traffic, clients):
    """Ends start_traffic's publishers and readers and closes its clients."""
    traffic.stop_publishing.set()
    traffic.stop_reading.set()
    for c, _ in clients:
        c.close()


def flows_on_with_nothing_lost(traffic):
    """The traffic goes on after the upgrade (or its refusal); then everything acknowledged
    arrives, and nobody was disconnected."""
    during = traffic.acked_count()
    wait_until(lambda: traffic.acked_count() >= during + 20, "QoS 1 traffic after it")
    lost = traffic.finish()
    assert traffic.errors == [], traffic.errors
    assert lost == set(), f"{len(lost)} acknowledged messages lost"


def start_traffic(srv, processes):
    """Subscribers and publishers on every worker (so messages cross between workers), and
    their QoS 1 traffic running."""
    counter = iter(range(10 ** 6))

    def subscriber():
        k = next(counter)
        c = connected(srv.port, f"sub{k}")
        assert c.subscribe([(f"to/{k}", 1)]) == [1]
        c.topic = f"to/{k}"
        return c

    subs = spread(srv.port, processes, subscriber, each=1)
    pubs = spread(srv.port, processes, lambda: connected(srv.port, f"pub{next(counter)}"), each=1)
    traffic = QoS1Traffic([(c, c.topic) for c, _ in subs], [c for c, _ in pubs])
    traffic.start()
    return traffic, subs + pubs


@pytest.mark.parametrize("processes", [2, 3])
def test_mqtt_qos1_between_workers_flows_across_an_upgrade_with_nothing_lost(tmp_path, processes):
    pid_file = str(tmp_path / "tcpms.pid")
    with mqtt_server("--processes", str(processes), "--threads", "1", "--pid-file", pid_file,
                     "--upgrade-batch", "2") as srv:
        wait_until(lambda: read_pid(pid_file) == srv.pid, "the pid file")
        traffic, clients = start_traffic(srv, processes)
        old_workers = worker_pids(srv.pid)
        assert {pid for _, pid in clients} == old_workers
        try:
            wait_until(lambda: traffic.acked_count() >= 20, "QoS 1 traffic before the upgrade")
            up = upgrade(pid_file)
            assert up.returncode == 0, up.stdout + up.stderr + srv.output()
            new_pid = read_pid(pid_file)
            assert new_pid not in (0, srv.pid)
            assert srv.proc.wait(timeout=TIMEOUT) == 0, srv.output()
            flows_on_with_nothing_lost(traffic)
            new_workers = worker_pids(new_pid)
            assert len(new_workers) == processes and not new_workers & old_workers
            # Every client kept its socket, now held by a new worker.
            for c, _ in clients:
                assert holder(srv.port, c.sock) in new_workers
                c.ping()
        finally:
            stop_traffic(traffic, clients)
            stop_pid(read_pid(pid_file))


@pytest.mark.parametrize("processes", [2, 3])
def test_echo_clients_of_every_worker_keep_their_sockets_across_an_upgrade(tmp_path, processes):
    pid_file = str(tmp_path / "tcpms.pid")
    with echo_server("--processes", str(processes), "--threads", "1", "--pid-file", pid_file,
                     "--upgrade-batch", "3") as srv:
        wait_until(lambda: read_pid(pid_file) == srv.pid, "the pid file")
        made = spread(srv.port, processes,
                      lambda: socket.create_connection(("127.0.0.1", srv.port)))
        socks = [s for s, _ in made]
        for s in socks:
            s.setblocking(False)
        old_workers = worker_pids(srv.pid)
        try:
            assert echo_all(socks, payloads(len(socks), "before")) == len(socks)
            up = upgrade(pid_file)
            assert up.returncode == 0, up.stdout + up.stderr + srv.output()
            new_pid = read_pid(pid_file)
            assert new_pid not in (0, srv.pid)
            assert srv.proc.wait(timeout=TIMEOUT) == 0, srv.output()
            assert echo_all(socks, payloads(len(socks), "after")) == len(socks)
            new_workers = worker_pids(new_pid)
            assert len(new_workers) == processes and not new_workers & old_workers
            for s in socks:
                assert holder(srv.port, s) in new_workers
        finally:
            close_all(socks)
            stop_pid(read_pid(pid_file))


def test_tls_13_clients_of_every_worker_keep_their_connections_across_an_upgrade(tmp_path):
    """Worker by worker, TLS 1.3 connections move with their record keys (handover version
    6): each client goes on on its socket, held by a new worker, its records still in
    sequence."""
    import ssl

    from tls_certs import Pki
    pki = Pki()
    conf = tmp_path / "tcpms.toml"
    conf.write_text('listen = "127.0.0.1:0"\n' + pki.listener())
    pid_file = str(tmp_path / "tcpms.pid")
    ctx = ssl.create_default_context(cafile=pki.ca.cert)
    socks = []
    try:
        with echo_server("--config", str(conf), "--processes", "2", "--threads", "1",
                         "--pid-file", pid_file) as srv:
            wait_until(lambda: read_pid(pid_file) == srv.pid, "the pid file")
            port = srv.port_of("tls")
            made = spread(port, 2, lambda: ctx.wrap_socket(
                socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT),
                server_hostname="localhost"))
            socks = [s for s, _ in made]
            old_workers = worker_pids(srv.pid)
            for i, s in enumerate(socks):
                s.sendall(b"before %d" % i)
                assert s.recv(64) == b"before %d" % i
            up = upgrade(pid_file)
            assert up.returncode == 0, up.stdout + up.stderr + srv.output()
            assert srv.proc.wait(timeout=TIMEOUT) == 0, srv.output()
            new_workers = worker_pids(read_pid(pid_file))
            for i, s in enumerate(socks):
                s.sendall(b"after %d" % i)
                assert s.recv(64) == b"after %d" % i
                assert holder(port, s) in new_workers and not new_workers & old_workers
    finally:
        close_all(socks)
        stop_pid(read_pid(pid_file))
        pki.cleanup()


def still_with_the_old_workers(srv, pid_file, traffic, clients, old_workers):
    """After a rollback: QoS 1 traffic flowed on with nothing lost, the old supervisor serves
    (its pid file), every client is held by an old worker and answers, and it accepts again."""
    flows_on_with_nothing_lost(traffic)
    assert srv.proc.poll() is None
    assert read_pid(pid_file) == srv.pid
    assert worker_pids(srv.pid) >= old_workers
    for c, _ in clients:
        assert holder(srv.port, c.sock) in old_workers
        c.ping()
    again = connected(srv.port, "after-rollback")
    again.ping()
    again.close()


def test_a_new_worker_that_dies_after_taking_a_batch_stops_every_pair_and_loses_no_one(tmp_path):
    # Handover version 4: an old worker lets go of nothing before its supervisor says every
    # pair got everything, so one new worker dying after it took clients leaves no split.
    pid_file = str(tmp_path / "tcpms.pid")
    with mqtt_server("--processes", "2", "--threads", "1", "--pid-file", pid_file,
                     "--upgrade-batch", "2", "--upgrade-binary", fake_successor(tmp_path),
                     env={"HANDOVER_FAKE": "worker-dies-after-a-batch"}) as srv:
        wait_until(lambda: read_pid(pid_file) == srv.pid, "the pid file")
        traffic, clients = start_traffic(srv, 2)
        old_workers = worker_pids(srv.pid)
        try:
            wait_until(lambda: traffic.acked_count() >= 20, "QoS 1 traffic before the upgrade")
            up = subprocess.run([binary("tcpms-server"), "--upgrade", "--pid-file", pid_file],
                                capture_output=True, text=True, timeout=TIMEOUT)
            assert up.returncode == 1, up.stdout + up.stderr
            assert "every worker keeps serving" in up.stderr, up.stderr
            srv.wait_for(lambda: "every old worker hung up" in srv.output(), timeout=TIMEOUT,
                         what="the stand-in to see every worker stop")
            out = srv.output()
            assert "handover fake: worker 0 took a batch; dying" in out, out
            assert "taken back from the new process" in out, out
            assert "was sent done (2)" not in out, out  # nobody committed
            # Worker 1's pair got everything, and was stopped because worker 0's did not.
            assert "handover fake: worker 1 was sent done (1)" in out, out
            assert "the supervisor stopped the handover: worker 0: " in out, out
            assert "halfway" not in out, out
            still_with_the_old_workers(srv, pid_file, traffic, clients, old_workers)
        finally:
            stop_traffic(traffic, clients)


def test_a_new_server_that_dies_halfway_leaves_every_mqtt_client_with_the_old_workers(tmp_path):
    pid_file = str(tmp_path / "tcpms.pid")
    with mqtt_server("--processes", "2", "--threads", "1", "--pid-file", pid_file,
                     "--upgrade-binary", fake_successor(tmp_path),
                     env={"HANDOVER_FAKE": "workers-die"}) as srv:
        wait_until(lambda: read_pid(pid_file) == srv.pid, "the pid file")
        traffic, clients = start_traffic(srv, 2)
        old_workers = worker_pids(srv.pid)
        try:
            wait_until(lambda: traffic.acked_count() >= 20, "QoS 1 traffic before the upgrade")
            srv.proc.send_signal(signal.SIGUSR2)
            srv.wait_for(lambda: "handover stopped; every worker keeps serving" in srv.output(),
                         timeout=TIMEOUT, what="the rollback")
            assert "handover fake: 2 workers sent frame kinds" in srv.output()
            still_with_the_old_workers(srv, pid_file, traffic, clients, old_workers)
        finally:
            stop_traffic(traffic, clients)


def test_a_changed_process_count_is_refused_clearly_and_the_old_server_serves_on(tmp_path):
    pid_file = str(tmp_path / "tcpms.pid")
    config = tmp_path / "tcpms.toml"
    config.write_text('protocol = "echo"\nprocesses = 2\n')
    with echo_server("--config", str(config), "--threads", "1", "--pid-file", pid_file) as srv:
        wait_until(lambda: read_pid(pid_file) == srv.pid, "the pid file")
        made = spread(srv.port, 2,
                      lambda: socket.create_connection(("127.0.0.1", srv.port)),
                      each=1)
        socks = [s for s, _ in made]
        for s in socks:
            s.setblocking(False)
        try:
            config.write_text('protocol = "echo"\nprocesses = 3\n')
            srv.proc.send_signal(signal.SIGUSR2)
            srv.wait_for(lambda: "nothing changed, every worker keeps serving" in srv.output(),
                         timeout=TIMEOUT, what="the refusal")
            out = srv.output()
            assert "the running server has 2 worker processes, this one 3" in out, out
            assert "nothing changed, every worker keeps serving" in out, out
            assert srv.proc.poll() is None
            assert read_pid(pid_file) == srv.pid
            assert echo_all(socks, payloads(len(socks), "after")) == len(socks)
        finally:
            close_all(socks)


def refused_between_process_counts(tmp_path, running, successor, *args):
    """An MQTT server of `running` processes (1: no workers) gets SIGUSR2 through `tcpms-server
    --upgrade` while its configuration says `successor`: the new server must refuse, naming
    both counts, and exit non-zero; `--upgrade` returns non-zero; nothing moves, and QoS 1
    traffic between the clients flows on, nothing lost, no client disconnected."""
    pid_file = str(tmp_path / "tcpms.pid")
    config = tmp_path / "tcpms.toml"
    config.write_text(f"processes = {running}\n")
    with mqtt_server("--config", str(config), "--pid-file", pid_file, *args) as srv:
        wait_until(lambda: read_pid(pid_file) == srv.pid, "the pid file")
        traffic, clients = start_traffic(srv, running)
        workers_before = worker_pids(srv.pid) if running > 1 else set()
        try:
            wait_until(lambda: traffic.acked_count() >= 20, "QoS 1 traffic before SIGUSR2")
            config.write_text(f"processes = {successor}\n")
            # The front end returns with the running server's answer (F.upgrade), not after
            # its own long wait for a new pid.
            up = subprocess.run([binary("tcpms-server"), "--upgrade", "--pid-file", pid_file],
                                capture_output=True, text=True, timeout=TIMEOUT)
            assert up.returncode == 1, up.stdout + up.stderr
            assert f"pid {srv.pid} did not hand over: " in up.stderr, up.stderr
            stopped = re.compile(r"handover stopped: .*\(the new (?:process|server), pid \d+, "
                                 r"exited with code (\d+)\)")
            assert stopped.search(up.stderr) or "refused" in up.stderr, up.stderr
            out = srv.output()
            assert stopped.search(out), out
            assert "a changed process count cannot hand over yet (restart instead)" in out, out
            assert stopped.search(out).group(1) != "0", out
            flows_on_with_nothing_lost(traffic)
            assert srv.proc.poll() is None
            assert read_pid(pid_file) == srv.pid
            # Nothing moved: every client answers on its socket, and the only server processes
            # are the old ones (the new one exited), the same workers as before.
            for c, _ in clients:
                c.ping()
            if running > 1:
                assert worker_pids(srv.pid) == workers_before, out
            again = connected(srv.port, "after-refusal")
            again.ping()
            again.close()
            return out
        finally:
            stop_traffic(traffic, clients)


def test_a_server_of_one_process_is_not_handed_to_worker_processes(tmp_path):
    # Two loops and two processes: the Welcome's count matched by accident, and the new
    # supervisor took the old listening sockets for its port reservations.
    out = refused_between_process_counts(tmp_path, 1, 2, "--threads", "2")
    assert ("the running server has 1 process (no worker processes), this one 2 worker "
            "processes") in out, out
    assert "SIGUSR2: handover stopped: the new process refused" in out, out


def test_worker_processes_are_not_handed_to_a_server_of_one_process(tmp_path):
    # Without an admin port: the new process used to take the supervisor's reserved port (not
    # listening) for its listener and wrote the pid file before it was killed.
    out = refused_between_process_counts(tmp_path, 2, 1, "--threads", "1", "--no-admin")
    assert ("the running server has 2 worker processes, this one 1 process (no worker "
            "processes)") in out, out
    assert "nothing changed, every worker keeps serving" in out, out
