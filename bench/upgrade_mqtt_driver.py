"""Drives bench/upgrade.sh in MQTT mode: N MQTT 3.1.1 subscribers (one topic each, QoS 1,
acknowledging everything) and one publisher sending QoS 1 messages round robin to their
topics, at most WINDOW unacknowledged, before, during and after `tcpms-server --upgrade`.
Then it stops publishing, waits for every acknowledged message to arrive, and reports:
disconnects (a subscriber or the publisher closed or reset: a reconnect would be needed; this
driver never reconnects), lost (acknowledged to the publisher, never delivered), duplicates
(delivered more than once), and the times.

usage: upgrade_mqtt_driver.py PORT N PID_FILE SERVER_BIN [UPGRADE_ARG...]  (prints one JSON
object; the UPGRADE_ARGs go to `tcpms-server --upgrade`)
"""
import json
import os
import selectors
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from mqtt_raw import frame, s16  # noqa: E402  (the tests' MQTT 3.1.1 encoding)
from upgrade_driver import read_pid  # noqa: E402

WINDOW = 200


def connect_packet(cid):
    return frame(0x10, s16(b"MQTT") + bytes([4, 0x02]) + struct.pack("!H", 0) + s16(cid))


def packets(buf):
    """Complete packets at the head of `buf` (bytearray, consumed) as (byte0, body)."""
    out = []
    while len(buf) >= 2:
        mult, length, i, done = 1, 0, 1, False
        while i < len(buf) and i <= 4:
            b = buf[i]
            length += (b & 0x7F) * mult
            mult *= 128
            i += 1
            if not b & 0x80:
                done = True
                break
        if not done or len(buf) < i + length:
            break
        out.append((buf[0], bytes(buf[i:i + length])))
        del buf[:i + length]
    return out


def main():
    port, n, pid_file, server_bin = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    upgrade_args = sys.argv[5:]
    # UPGRADE_SETTLED_LOG and UPGRADE_SETTLED_TEXT: the upgrade counts as over only once that
    # file holds that text, not merely when `--upgrade` returns (a handover that fails returns
    # after a fixed wait, which a slow box may outlast).
    settled_log = os.environ.get("UPGRADE_SETTLED_LOG")
    settled_text = os.environ.get("UPGRADE_SETTLED_TEXT", "")
    log_seen = [0, ""]  # bytes of the log read so far, and its last partial line

    def settled():
        if not settled_log:
            return True
        with open(settled_log, "rb") as f:
            f.seek(log_seen[0])
            chunk = f.read()
        log_seen[0] += len(chunk)
        lines = (log_seen[1] + chunk.decode(errors="replace")).split("\n")
        log_seen[1] = lines.pop()
        return any(settled_text in line for line in lines)
    old_pid = read_pid(pid_file)
    sel = selectors.DefaultSelector()
    socks, bufs = [], []
    for i in range(n + 1):  # index n: the publisher
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cid = f"sub-{i}".encode() if i < n else b"publisher"
        out = connect_packet(cid)
        if i < n:
            out += frame(0x82, struct.pack("!H", 1) + s16(f"up/{i}".encode()) + b"\x01")
        s.sendall(out)
        s.setblocking(False)
        socks.append(s)
        bufs.append(bytearray())
        sel.register(s, selectors.EVENT_READ, i)
    dead = [False] * (n + 1)
    ready = 0
    delivered = {}      # seq -> times delivered
    acked = set()       # seqs the broker acknowledged to the publisher
    outstanding = {}    # packet id -> seq
    next_seq, next_pid = 0, 1
    publishing = False
    upgrade = None
    t_upgrade = t_done = t_old_gone = None
    acked_when_done = None

    def handle(i, byte0, body):
        nonlocal ready
        t = byte0 >> 4
        if t == 9:       # SUBACK
            ready += 1
        elif t == 3:     # PUBLISH to a subscriber
            n_topic = struct.unpack("!H", body[:2])[0]
            pid = struct.unpack("!H", body[2 + n_topic:4 + n_topic])[0]
            seq = int(body[4 + n_topic:].decode())
            delivered[seq] = delivered.get(seq, 0) + 1
            try:
                socks[i].sendall(frame(0x40, struct.pack("!H", pid)))
            except OSError:
                pass
        elif t == 4 and i == n:  # PUBACK to the publisher
            pid = struct.unpack("!H", body[:2])[0]
            seq = outstanding.pop(pid, None)
            if seq is not None:
                acked.add(seq)

    def pump(timeout):
        for key, _ in sel.select(timeout):
            i = key.data
            try:
                chunk = socks[i].recv(1 << 16)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                dead[i] = True
                sel.unregister(socks[i])
                continue
            bufs[i] += chunk
            for byte0, body in packets(bufs[i]):
                handle(i, byte0, body)

    start = time.monotonic()
    while ready < n and time.monotonic() - start < 300:
        pump(0.5)
    if ready < n:
        # Messages to a topic nobody subscribes yet would count as lost: no upgrade then (on a
        # starved box the listener's accept queue can overflow while the clients connect).
        print(json.dumps({"clients": n, "setup_failed":
                          f"only {ready} of {n} subscribers had their SUBACK after 300 s; "
                          "no upgrade was tried", "disconnects": sum(dead)}))
        return
    t0 = time.monotonic()
    phase_end = None
    while True:
        now = time.monotonic()
        if not dead[n] and (phase_end is None or now < phase_end):
            burst = b""
            while len(outstanding) < WINDOW:
                seq = next_seq
                next_seq += 1
                pid = next_pid
                next_pid = next_pid % 65535 + 1
                outstanding[pid] = seq
                burst += frame(0x32, s16(f"up/{seq % n}".encode()) + struct.pack("!H", pid) +
                               str(seq).encode())
            if burst:
                try:
                    socks[n].sendall(burst)
                except OSError:
                    dead[n] = True
        if upgrade is None and now - t0 > 2.0:
            t_upgrade = now
            upgrade = subprocess.Popen([server_bin, "--upgrade", "--pid-file", pid_file, *upgrade_args],
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if upgrade is not None and t_done is None and upgrade.poll() is not None and settled():
            t_done = now
            acked_when_done = len(acked)
            phase_end = now + 2.0  # publish on a little after the new process took over
        if t_old_gone is None and t_upgrade is not None and old_pid and not alive(old_pid):
            t_old_gone = now
        if phase_end is not None and now >= phase_end:
            break
        if now - t0 > 600:
            break
        pump(0.01)
    # Drain: the acknowledged messages in flight to subscribers.
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < 5.0:
        before = (len(delivered), len(acked))
        pump(0.2)
        if (len(delivered), len(acked)) != before:
            quiet_since = time.monotonic()
        if t_old_gone is None and old_pid and not alive(old_pid):
            t_old_gone = time.monotonic()
    lost = sum(1 for s in acked if s not in delivered)
    print(json.dumps({
        "clients": n,
        "still_connected": sum(1 for i in range(n) if not dead[i]),
        "publisher_connected": not dead[n],
        "disconnects": sum(dead),
        "reconnects": 0,
        "published": next_seq,
        "acked": len(acked),
        "delivered_unique": len(delivered),
        "lost_acked_messages": lost,
        "duplicates": sum(c - 1 for c in delivered.values()),
        "upgrade_command_rc": upgrade.returncode if upgrade else None,
        "upgrade_command_s": round(t_done - t_upgrade, 2) if t_done and t_upgrade else None,
        "old_process_gone_s": round(t_old_gone - t_upgrade, 2) if t_old_gone and t_upgrade else None,
        "upgrade_output": upgrade.stdout.read().decode().strip() if upgrade else "",
        # After `--upgrade` returned: acknowledged since, and who serves (a handover that
        # failed must leave the old process serving, its pid still in the pid file).
        "acked_after_upgrade_command":
            None if acked_when_done is None else len(acked) - acked_when_done,
        "old_pid": old_pid,
        "old_process_alive": bool(old_pid) and alive(old_pid),
        "pid_file_after": read_pid(pid_file),
    }))


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


if __name__ == "__main__":
    main()
