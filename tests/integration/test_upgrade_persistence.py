"""The upgrade handover with persistence.dir (docs/upgrade.md, "The store"): the sessions move
over the handover socket as without a store, the old process commits its last write and lets
go of the files as the handover commits, and the new process takes them and writes its whole
state anew before it acknowledges anything. Proved by what a kill -9 of the new process leaves
on disk for the next start, and by a handover that rolls back leaving the old process writing.
"""
import os
import signal

from mqtt_raw import PUBLISH, SUBACK, RawClient, mqtt_server, subscribe_packet
from test_mqtt_12_session_workers import wait_mesh
from test_upgrade_handover import TIMEOUT, fake_successor, read_pid, stop_pid, wait_until
from test_upgrade_mqtt import offline, upgraded


def read_pub(c, ack=True):
    p = c.expect(PUBLISH, TIMEOUT)
    if p.qos and ack:
        c.send(bytes([0x40, 2]) + p.pid.to_bytes(2, "big"))
    return p


def gone(pid):
    return not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def stored_server(store, *args, **kwargs):
    return mqtt_server("--persistence-dir", store, "--persistence-sync", "every-message", *args,
                       **kwargs)


def sessions_before_the_upgrade(srv):
    """A connected persistent subscriber with a QoS 1 message in flight, an offline one with
    it queued, a retained message. Returns the connected subscriber and the publisher."""
    sub = RawClient(srv.port)
    assert sub.connect("sub", clean=False) == (False, 0)
    assert sub.subscribe([("t/#", 1)]) == [1]
    away = RawClient(srv.port)
    away.connect("away", clean=False)
    assert away.subscribe([("t/#", 1)]) == [1]
    away.close()
    wait_until(lambda: offline(srv, "away"), "'away' to be offline")
    pub = RawClient(srv.port)
    pub.connect("pub")
    pub.publish("t/a", b"before", qos=1, pid=1)
    assert read_pub(sub, ack=False).payload == b"before"  # in flight across the upgrade
    pub.publish("keep/r", b"retained", qos=1, pid=2, retain=True)
    return sub, pub


def everything_is_back(store, *args):
    """A fresh start on the store: both sessions with both messages, the retained one."""
    with stored_server(store, *args) as srv:
        if "--processes" in args:
            wait_mesh(srv)  # else a persistent CONNECT may find no worker to ask for its session
        else:
            assert "recovered 2 sessions" in srv.output()
        sub = RawClient(srv.port)
        assert sub.connect("sub", clean=False) == (True, 0)
        assert [read_pub(sub).payload for _ in range(2)] == [b"before", b"after"]
        away = RawClient(srv.port)
        assert away.connect("away", clean=False) == (True, 0)
        assert [read_pub(away).payload for _ in range(2)] == [b"before", b"after"]
        late = RawClient(srv.port)
        late.connect("late")
        # The retained message may come before the SUBACK (3.1.1 §3.8.4 allows it: with worker
        # processes the SUBACK waits for the other workers to know the filter).
        late.send(subscribe_packet(1, [("keep/#", 0)]))
        got = [late.read(TIMEOUT) for _ in range(2)]
        assert sorted(p.type for p in got) == [PUBLISH, SUBACK]
        assert [p.payload for p in got if p.type == PUBLISH] == [b"retained"]
        for c in (sub, away, late):
            c.close()


def test_the_new_process_takes_the_store_and_a_kill9_after_the_upgrade_loses_nothing(tmp_path):
    store, pid_file = str(tmp_path / "store"), str(tmp_path / "tcpms.pid")
    with stored_server(store, "--threads", "2", "--pid-file", pid_file) as srv:
        wait_until(lambda: read_pid(pid_file) == srv.pid, "the pid file")
        sub, pub = sessions_before_the_upgrade(srv)
        new_pid = upgraded(srv, pid_file)
        try:
            assert srv.proc.wait(timeout=TIMEOUT) == 0
            out = srv.output()
            assert f"the store {store} is the new process's now" in out, out
            srv.wait_for(lambda: f"store: {store} taken over in" in srv.output(),
                         timeout=TIMEOUT, what="the new process to take the store")
            # Acknowledged only once the new process's store has it (every-message): its first
            # commit holds everything it took, and this message.
            pub.publish("t/a", b"after", qos=1, pid=3)
            # Same connection: the message in flight moved, so the window still holds it.
            assert read_pub(sub, ack=False).payload == b"after"
            os.kill(new_pid, signal.SIGKILL)
            wait_until(lambda: gone(new_pid), "the new process to die")
        finally:
            stop_pid(new_pid)
    everything_is_back(store, "--threads", "2")


def test_a_handover_that_rolls_back_leaves_the_store_with_the_old_process(tmp_path):
    store, pid_file = str(tmp_path / "store"), str(tmp_path / "tcpms.pid")
    with stored_server(store, "--threads", "2", "--pid-file", pid_file, "--upgrade-batch", "1",
                       "--upgrade-binary", fake_successor(tmp_path),
                       env={"HANDOVER_FAKE": "dies-at-done"}) as srv:
        wait_until(lambda: read_pid(pid_file) == srv.pid, "the pid file")
        sub, pub = sessions_before_the_upgrade(srv)
        srv.proc.send_signal(signal.SIGUSR2)
        srv.wait_for(lambda: "handover stopped" in srv.output(), timeout=TIMEOUT,
                     what="the handover to stop")
        assert "taken back from the new process" in srv.output()
        assert "is pid" not in srv.output()  # the store was never let go
        pub.publish("t/a", b"after", qos=1, pid=3)  # PUBACK: the old store writes on
        assert read_pub(sub, ack=False).payload == b"after"
        srv.kill()
    everything_is_back(store, "--threads", "2")


def test_worker_processes_hand_their_stores_over_one_each(tmp_path):
    store, pid_file = str(tmp_path / "store"), str(tmp_path / "tcpms.pid")
    args = ("--processes", "2", "--threads", "1")
    with stored_server(store, *args, "--pid-file", pid_file) as srv:
        wait_until(lambda: read_pid(pid_file) == srv.pid, "the pid file")
        wait_mesh(srv)
        sub, pub = sessions_before_the_upgrade(srv)
        new_pid = upgraded(srv, pid_file)
        try:
            assert srv.proc.wait(timeout=TIMEOUT) == 0
            for k in (0, 1):
                srv.wait_for(lambda: f"store: {store}/worker-{k} taken over in" in srv.output(),
                             timeout=TIMEOUT, what=f"worker {k} to take its store")
            pub.publish("t/a", b"after", qos=1, pid=3)
            assert read_pub(sub, ack=False).payload == b"after"
        finally:
            stop_pid(new_pid)
            wait_until(lambda: gone(new_pid), "the new server to stop")
    everything_is_back(store, *args)
