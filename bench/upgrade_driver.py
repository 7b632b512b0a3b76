"""Drives bench/upgrade.sh: N echo clients that keep pinging while the server is upgraded
(SIGUSR2), then reports what they saw. Each client sends a 16-byte ping (its index and a
sequence number), waits for the echo, and sends the next; a client whose echo does not match
what it sent, or whose socket closes or resets, is counted. The longest wait for an echo
during the run is the longest stall a client saw.

usage: upgrade_driver.py PORT N PID_FILE SERVER_BIN [baseline]  (prints one JSON object)
With "baseline" nothing is upgraded: the same clients for the same time, to see what stalls
the driver and the box cause on their own.
"""
import json
import os
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def main():
    port, n, pid_file, server_bin = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    sel = selectors.DefaultSelector()
    socks, sent_at, seq, want = [], [0.0] * n, [0] * n, [b""] * n
    got = [b""] * n
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.setblocking(False)
        socks.append(s)
        sel.register(s, selectors.EVENT_READ, i)
    failures = {"disconnects": 0, "mismatches": 0}
    dead = [False] * n
    longest_wait = 0.0
    pings = 0

    def ping(i, now):
        seq[i] += 1
        want[i] = struct.pack("<QQ", i, seq[i])
        got[i] = b""
        sent_at[i] = now
        try:
            socks[i].send(want[i])
        except OSError:
            dead[i] = True
            failures["disconnects"] += 1

    def pump(seconds):
        nonlocal longest_wait, pings
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            for key, _ in sel.select(timeout=0.05):
                i = key.data
                if dead[i]:
                    continue
                try:
                    chunk = socks[i].recv(64)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    dead[i] = True
                    failures["disconnects"] += 1
                    sel.unregister(socks[i])
                    continue
                got[i] += chunk
                if len(got[i]) < 16:
                    continue
                if got[i] != want[i]:
                    failures["mismatches"] += 1
                now = time.monotonic()
                longest_wait = max(longest_wait, now - sent_at[i])
                pings += 1
                ping(i, now)

    now = time.monotonic()
    for i in range(n):
        ping(i, now)
    pump(2.0)  # steady state before the upgrade
    old_pid = read_pid(pid_file)
    old_rss_before = rss_kb(old_pid)
    peak = {"old": old_rss_before, "new": 0}
    stop = threading.Event()
    new_pid_box = [0]

    def sample():
        while not stop.is_set():
            peak["old"] = max(peak["old"], rss_kb(old_pid))
            p = read_pid(pid_file)
            if p and p != old_pid:
                new_pid_box[0] = p
            if new_pid_box[0]:
                peak["new"] = max(peak["new"], rss_kb(new_pid_box[0]))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    longest_wait = 0.0  # only stalls from here on count
    t0 = time.monotonic()
    baseline = len(sys.argv) > 5 and sys.argv[5] == "baseline"
    up = subprocess.Popen(["sleep", "5"] if baseline else [server_bin, "--upgrade", "--pid-file", pid_file],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    took_over = None
    old_gone = None
    while time.monotonic() - t0 < 120 and (took_over is None or old_gone is None):
        pump(0.05)
        if took_over is None and up.poll() is not None:
            took_over = time.monotonic() - t0 if up.returncode == 0 else -1
        if baseline and took_over is not None:
            old_gone = took_over
        if old_gone is None and not os.path.exists(f"/proc/{old_pid}"):
            old_gone = time.monotonic() - t0
        if old_gone is None and os.path.exists(f"/proc/{old_pid}"):
            try:
                with open(f"/proc/{old_pid}/stat") as f:
                    if f.read().split()[2] == "Z":
                        old_gone = time.monotonic() - t0
            except OSError:
                pass
    pump(2.0)  # and after it
    stop.set()
    sampler.join()
    alive = sum(1 for d in dead if not d)
    print(json.dumps({
        "clients": n,
        "still_connected": alive,
        "disconnects": failures["disconnects"],
        "mismatched_echoes": failures["mismatches"],
        "echoes": pings,
        "upgrade_command_s": took_over,
        "old_process_gone_s": old_gone,
        "longest_echo_wait_during_upgrade_ms": round(longest_wait * 1000, 1),
        "old_rss_kb_before": old_rss_before,
        "old_rss_kb_peak": peak["old"],
        "new_rss_kb_peak": peak["new"],
        "new_rss_kb_after": rss_kb(new_pid_box[0]) if new_pid_box[0] else 0,
        "upgrade_output": up.stdout.read().strip() if up.stdout else "",
    }))
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
